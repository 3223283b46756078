// Package ratelimit meters failed logins of the auth methods: token
// buckets per key (a source address, a role), charged only by failures,
// in memory and bounded in size. It is the limiter of the AppRole engine,
// shared so every auth method throttles guessing the same way.
package ratelimit

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// Limiter is a set of token buckets, one per key (a source address, a role
// ID), that meter failed logins. A login is let through while its buckets
// hold a token (Allow), and only a failed one takes a token (Take), so any
// number of concurrent successful logins — a deployment scaling up — are
// never limited. Concurrent failing attempts can overshoot the limit by
// at most the number in flight at once. A key whose bucket has
// refilled is forgotten, so memory holds only keys with recent failures,
// and at most max of those: beyond it the least recently charged key is
// dropped.
//
// A bucket is kept as the time at which it will be full again (the
// generic cell rate algorithm), so all arithmetic is in whole nanoseconds
// and exact under an injected clock. golang.org/x/time/rate would do the
// bucket arithmetic too, but its Reservation.CancelAt restores nothing once
// the reservation's time has passed — always the case by the time a
// login's storage reads are done — and the refund is what this design
// needs.
type Limiter struct {
	interval time.Duration // one token comes back per interval
	burst    int           // bucket size
	max      int           // most keys tracked

	mu      sync.Mutex
	buckets map[string]*list.Element // guarded by mu; values are *bucket
	order   *list.List               // guarded by mu; front: most recently charged
}

type bucket struct {
	key  string
	full time.Time // when the bucket holds burst tokens again
}

// Defaults of Settings, shared by the auth methods.
const (
	DefaultPerMinute = 10
	DefaultMaxKeys   = 100_000
)

// Settings are an auth method's failed-login limit as its configuration
// gives them: PerMinute negative turns the limit off; a zero field takes
// its default (Burst: PerMinute).
type Settings struct {
	PerMinute, Burst, MaxKeys int
}

// New returns the limiter s describes, or nil when the limit is off.
func (s Settings) New() *Limiter {
	if s.PerMinute < 0 {
		return nil
	}
	if s.PerMinute == 0 {
		s.PerMinute = DefaultPerMinute
	}
	if s.Burst == 0 {
		s.Burst = s.PerMinute
	}
	if s.MaxKeys == 0 {
		s.MaxKeys = DefaultMaxKeys
	}
	return New(s.PerMinute, s.Burst, s.MaxKeys)
}

// New returns a limiter that lets perMinute failures a minute through
// for each key on average, burst at once, and tracks at most maxKeys
// keys. All three must be positive.
func New(perMinute, burst, maxKeys int) *Limiter {
	return &Limiter{
		interval: time.Minute / time.Duration(perMinute), burst: burst, max: maxKeys,
		buckets: make(map[string]*list.Element), order: list.New(),
	}
}

// Take charges one attempt to key. It reports false, and how long until a
// token is back, when the bucket is empty; then nothing is charged.
func (l *Limiter) Take(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(now)
	el, ok := l.buckets[key]
	if !ok {
		for l.order.Len() >= l.max {
			l.remove(l.order.Back())
		}
		el = l.order.PushFront(&bucket{key: key, full: now})
		l.buckets[key] = el
	}
	b := el.Value.(*bucket)
	full := b.full
	if full.Before(now) {
		full = now
	}
	full = full.Add(l.interval)
	if over := full.Sub(now) - time.Duration(l.burst)*l.interval; over > 0 {
		return false, over
	}
	b.full = full
	l.order.MoveToFront(el)
	return true, 0
}

// Allow reports whether key's bucket holds a token, without taking it,
// and if not how long until one is back.
func (l *Limiter) Allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.buckets[key]
	if !ok {
		return true, 0
	}
	full := el.Value.(*bucket).full
	if full.Before(now) {
		full = now
	}
	if over := full.Add(l.interval).Sub(now) - time.Duration(l.burst)*l.interval; over > 0 {
		return false, over
	}
	return true, 0
}

// Refund gives back the token an attempt took, after it succeeded (or
// failed for a reason that is not the caller's). A full bucket is
// forgotten.
func (l *Limiter) Refund(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.buckets[key]
	if !ok {
		return
	}
	b := el.Value.(*bucket)
	b.full = b.full.Add(-l.interval)
	if !b.full.After(now) {
		l.remove(el)
	}
}

// prune forgets a few of the least recently charged keys whose buckets
// have refilled. Keys are pruned from the back, so each call does little.
func (l *Limiter) prune(now time.Time) {
	for range 8 {
		el := l.order.Back()
		if el == nil || el.Value.(*bucket).full.After(now) {
			return
		}
		l.remove(el)
	}
}

func (l *Limiter) remove(el *list.Element) {
	delete(l.buckets, el.Value.(*bucket).key)
	l.order.Remove(el)
}

// Len is how many keys are tracked.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// SourceKey is the rate-limit key of a client address: the address for
// IPv4, its /64 for IPv6 (one host commonly holds a whole /64), and one
// shared key for an unknown address.
func SourceKey(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		return netip.PrefixFrom(a, 64).Masked().String()
	}
	return a.String()
}
