package lease_test

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/barrier"
	"github.com/secrethub/secrethub/core/lease"
	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/mount"
	"github.com/secrethub/secrethub/core/storage/inmem"
)

// fakeClock is a settable clock whose At channels fire when Advance
// passes them.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) At(t time.Time) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if !t.After(c.now) {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{t, ch})
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// engine is an in-test dynamic engine: it records renewals and
// revocations and fails revocations while fail is set, as a target that
// is down would.
type engine struct {
	mu      sync.Mutex
	fail    error
	revoked []string
	renewed []time.Time
	calls   chan string
}

func newEngine() *engine { return &engine{calls: make(chan string, 100)} }

func (e *engine) HandleRequest(context.Context, *logical.Request) (*logical.Response, error) {
	return nil, logical.ErrUnsupportedPath
}

func (e *engine) RevokeSecret(_ context.Context, l *logical.SecretLease) error {
	e.mu.Lock()
	err := e.fail
	if err == nil {
		e.revoked = append(e.revoked, l.InternalData["user"].(string))
	}
	e.mu.Unlock()
	e.calls <- "revoke " + l.LeaseID
	return err
}

func (e *engine) RenewSecret(_ context.Context, l *logical.SecretLease) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.renewed = append(e.renewed, l.ExpireTime)
	return nil
}

func (e *engine) setFail(err error) {
	e.mu.Lock()
	e.fail = err
	e.mu.Unlock()
}

func (e *engine) revokedUsers() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.revoked)
}

// waitCall waits for the engine's next call.
func (e *engine) waitCall(t *testing.T) string {
	t.Helper()
	select {
	case c := <-e.calls:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("the engine was not called")
		return ""
	}
}

type fixture struct {
	t       *testing.T
	store   logical.Storage
	clock   *fakeClock
	engines map[string]logical.Engine
	mu      sync.Mutex
	m       *lease.Manager
}

// newFixture builds a Manager over the real barrier on in-memory storage,
// with one engine mounted at "database/".
func newFixture(t *testing.T) (*fixture, *engine) {
	t.Helper()
	ctx := context.Background()
	b := barrier.New(inmem.New(), barrier.Options{})
	root := make([]byte, barrier.KeySize)
	if _, err := rand.Read(root); err != nil {
		t.Fatal(err)
	}
	if err := b.Initialize(ctx, root, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	eng := newEngine()
	f := &fixture{t: t, store: mount.NewView(b, "sys/lease/"), clock: newClock(),
		engines: map[string]logical.Engine{"database/": eng}}
	f.start()
	t.Cleanup(func() { f.m.Stop() })
	return f, eng
}

func (f *fixture) resolve(p string) (logical.Engine, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.engines[p]
	return e, ok
}

// start makes a new Manager over the fixture's storage and starts it.
func (f *fixture) start() {
	f.t.Helper()
	m, err := lease.New(lease.Options{Storage: f.store, Resolver: f.resolve, Clock: f.clock,
		Logger: slog.New(slog.DiscardHandler), MinBackoff: time.Second, MaxBackoff: time.Minute})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	f.m = m
}

func (f *fixture) create(user, accessor string, ttl, maxTTL time.Duration, renewable bool) *lease.Lease {
	f.t.Helper()
	l, err := f.m.Create(context.Background(), lease.CreateParams{
		MountPath: "database/", IssuePath: "creds/app", TokenAccessor: accessor,
		Secret: &logical.Secret{TTL: ttl, MaxTTL: maxTTL, Renewable: renewable, InternalData: map[string]any{"user": user}},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return l
}

// waitGone polls until the lease is no longer known.
func (f *fixture) waitGone(id string) {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := f.m.Lookup(id); errors.Is(err, lease.ErrNotFound) {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("lease %s still present", id)
		}
		<-time.After(time.Millisecond)
	}
}

// waitAttempts polls until the lease's revocation failed n times.
func (f *fixture) waitAttempts(id string, n int) *lease.Lease {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := f.m.Lookup(id)
		if err != nil {
			f.t.Fatal(err)
		}
		if l.Revocation != nil && l.Revocation.Attempts >= n {
			return l
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("lease %s: revocation attempts %+v, want %d", id, l.Revocation, n)
		}
		<-time.After(time.Millisecond)
	}
}

func TestCreate(t *testing.T) {
	f, _ := newFixture(t)
	now := f.clock.Now()
	tests := map[string]struct {
		ttl, maxTTL       time.Duration
		wantTTL, wantMaxT time.Duration
	}{
		"as asked":                     {ttl: time.Hour, maxTTL: 2 * time.Hour, wantTTL: time.Hour, wantMaxT: 2 * time.Hour},
		"zero TTL takes the default":   {ttl: 0, maxTTL: 0, wantTTL: lease.DefaultTTL, wantMaxT: lease.DefaultMaxTTL},
		"TTL capped by max":            {ttl: 3 * time.Hour, maxTTL: time.Hour, wantTTL: time.Hour, wantMaxT: time.Hour},
		"max capped by the manager's":  {ttl: time.Hour, maxTTL: 10000 * time.Hour, wantTTL: time.Hour, wantMaxT: lease.DefaultMaxTTL},
		"zero max takes the manager's": {ttl: time.Hour, wantTTL: time.Hour, wantMaxT: lease.DefaultMaxTTL},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l := f.create("u", "acc", tc.ttl, tc.maxTTL, true)
			if got := l.ExpireTime.Sub(now); got != tc.wantTTL {
				t.Errorf("TTL %v, want %v", got, tc.wantTTL)
			}
			if got := l.MaxExpireTime.Sub(now); got != tc.wantMaxT {
				t.Errorf("max TTL %v, want %v", got, tc.wantMaxT)
			}
			if len(l.ID) <= len("database/creds/app/") || l.ID[:len("database/creds/app/")] != "database/creds/app/" {
				t.Errorf("lease id %q, want database/creds/app/<random>", l.ID)
			}
		})
	}
	if _, err := f.m.Create(context.Background(), lease.CreateParams{MountPath: "gone/", IssuePath: "x", Secret: &logical.Secret{}}); !errors.Is(err, lease.ErrMountGone) {
		t.Errorf("create on a missing mount: %v, want ErrMountGone", err)
	}
}

func TestExpiryRevokes(t *testing.T) {
	f, eng := newFixture(t)
	short := f.create("short", "acc", time.Minute, 0, true)
	long := f.create("long", "acc", time.Hour, 0, true)
	f.clock.Advance(time.Minute)
	if c := eng.waitCall(t); c != "revoke "+short.ID {
		t.Fatalf("engine call %q, want the revocation of %s", c, short.ID)
	}
	f.waitGone(short.ID)
	if _, err := f.m.Lookup(long.ID); err != nil {
		t.Fatalf("the longer lease went too: %v", err)
	}
	if got := eng.revokedUsers(); !slices.Equal(got, []string{"short"}) {
		t.Fatalf("revoked %v, want [short]", got)
	}
	// The record is gone from storage too: a restart does not bring it back.
	f.m.Stop()
	f.start()
	if _, err := f.m.Lookup(short.ID); !errors.Is(err, lease.ErrNotFound) {
		t.Fatalf("after restart, the revoked lease: %v", err)
	}
}

func TestRevocationRetriesUntilTheTargetIsBack(t *testing.T) {
	f, eng := newFixture(t)
	l := f.create("u1", "acc", time.Hour, 0, true)
	down := errors.New("connect 127.0.0.1:5432: connection refused")
	eng.setFail(down)

	err := f.m.Revoke(context.Background(), l.ID)
	if !errors.Is(err, lease.ErrRevokeFailed) {
		t.Fatalf("revoke while down: %v, want ErrRevokeFailed", err)
	}
	eng.waitCall(t)
	got := f.waitAttempts(l.ID, 1)
	if got.Revocation.LastError != down.Error() || got.Revocation.NextAttempt.IsZero() {
		t.Fatalf("revocation state %+v", got.Revocation)
	}
	// The background retry fails again and backs off further.
	f.clock.Advance(time.Minute)
	eng.waitCall(t)
	f.waitAttempts(l.ID, 2)

	// The state survives a restart, and the retry completes once the
	// target is back.
	f.m.Stop()
	eng.setFail(nil)
	f.start()
	if got, err := f.m.Lookup(l.ID); err != nil || got.Revocation == nil || got.Revocation.Attempts != 2 {
		t.Fatalf("after restart: %+v, %v", got, err)
	}
	f.clock.Advance(time.Minute)
	eng.waitCall(t)
	f.waitGone(l.ID)
	if got := eng.revokedUsers(); !slices.Equal(got, []string{"u1"}) {
		t.Fatalf("revoked %v", got)
	}
	// Renewing a lease under revocation is refused.
	l2 := f.create("u2", "acc", time.Hour, 0, true)
	eng.setFail(down)
	_ = f.m.Revoke(context.Background(), l2.ID)
	if _, _, err := f.m.Renew(context.Background(), l2.ID, 0); !errors.Is(err, lease.ErrRevoking) {
		t.Fatalf("renew while revoking: %v", err)
	}
}

func TestRestartKeepsLeasesAndRevokesAtExpiry(t *testing.T) {
	f, eng := newFixture(t)
	l := f.create("u", "acc", time.Hour, 0, true)
	f.m.Stop()
	f.start()
	got, err := f.m.Lookup(l.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.ExpireTime.Equal(l.ExpireTime) || got.InternalData["user"] != "u" || got.TokenAccessor != "acc" {
		t.Fatalf("reloaded lease %+v, want %+v", got, l)
	}
	// Expired while "sealed": revoked as soon as the manager starts.
	f.m.Stop()
	f.clock.Advance(2 * time.Hour)
	f.start()
	eng.waitCall(t)
	f.waitGone(l.ID)
}

func TestRenew(t *testing.T) {
	f, eng := newFixture(t)
	tests := map[string]struct {
		ttl, maxTTL, increment time.Duration
		renewable              bool
		want                   time.Duration // new remaining TTL
		capped                 bool
		err                    error
	}{
		"increment":                 {ttl: time.Hour, maxTTL: 10 * time.Hour, increment: 2 * time.Hour, renewable: true, want: 2 * time.Hour},
		"zero increment is the TTL": {ttl: time.Hour, maxTTL: 10 * time.Hour, renewable: true, want: time.Hour},
		"capped by max TTL":         {ttl: time.Hour, maxTTL: 90 * time.Minute, increment: 5 * time.Hour, renewable: true, want: 80 * time.Minute, capped: true},
		"not renewable":             {ttl: time.Hour, maxTTL: 10 * time.Hour, increment: time.Hour, err: lease.ErrNotRenewable},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l := f.create("u", "acc", tc.ttl, tc.maxTTL, tc.renewable)
			f.clock.Advance(10 * time.Minute)
			got, capped, err := f.m.Renew(context.Background(), l.ID, tc.increment)
			if !errors.Is(err, tc.err) {
				t.Fatalf("renew: %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if rem := got.RemainingTTL(f.clock.Now()); rem != tc.want || capped != tc.capped {
				t.Fatalf("remaining %v capped %v, want %v %v", rem, capped, tc.want, tc.capped)
			}
			if !got.LastRenewal.Equal(f.clock.Now()) {
				t.Errorf("last renewal %v", got.LastRenewal)
			}
			eng.mu.Lock()
			last := eng.renewed[len(eng.renewed)-1]
			eng.mu.Unlock()
			if !last.Equal(got.ExpireTime) {
				t.Errorf("engine renewed to %v, lease expires %v", last, got.ExpireTime)
			}
		})
	}
	if _, _, err := f.m.Renew(context.Background(), "database/creds/app/nope", 0); !errors.Is(err, lease.ErrNotFound) {
		t.Errorf("renew unknown: %v", err)
	}
}

func TestRenewMovesExpiry(t *testing.T) {
	f, eng := newFixture(t)
	l := f.create("u", "acc", time.Hour, 0, true)
	f.clock.Advance(50 * time.Minute)
	if _, _, err := f.m.Renew(context.Background(), l.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(50 * time.Minute) // past the first expiry, before the renewed one
	if _, err := f.m.Lookup(l.ID); err != nil {
		t.Fatalf("renewed lease revoked at its old expiry: %v", err)
	}
	f.clock.Advance(10 * time.Minute)
	eng.waitCall(t)
	f.waitGone(l.ID)
}

func TestRevokePrefixTokenAndList(t *testing.T) {
	f, eng := newFixture(t)
	other := newEngine()
	f.mu.Lock()
	f.engines["redis/"] = other
	f.mu.Unlock()
	a1 := f.create("a1", "tokA", time.Hour, 0, true)
	a2 := f.create("a2", "tokA", time.Hour, 0, true)
	b1 := f.create("b1", "tokB", time.Hour, 0, true)
	r, err := f.m.Create(context.Background(), lease.CreateParams{MountPath: "redis/", IssuePath: "creds/x", TokenAccessor: "tokC",
		Secret: &logical.Secret{TTL: time.Hour, InternalData: map[string]any{"user": "r1"}}})
	if err != nil {
		t.Fatal(err)
	}

	if got := len(f.m.List("")); got != 4 {
		t.Fatalf("list all: %d leases", got)
	}
	if got := f.m.List("redis/"); len(got) != 1 || got[0].ID != r.ID {
		t.Fatalf("list redis/: %+v", got)
	}
	if got := f.m.Keys(""); !slices.Equal(got, []string{"database/", "redis/"}) {
		t.Fatalf("keys: %v", got)
	}
	if got := f.m.Keys("database/creds"); !slices.Equal(got, []string{"app/"}) {
		t.Fatalf("keys database/creds: %v", got)
	}
	if got := f.m.Keys("database/creds/app/"); len(got) != 3 {
		t.Fatalf("keys of app: %v", got)
	}

	if err := f.m.RevokeByToken(context.Background(), "tokA", "tokX"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{a1.ID, a2.ID} {
		if _, err := f.m.Lookup(id); !errors.Is(err, lease.ErrNotFound) {
			t.Errorf("lease of the revoked token: %v", err)
		}
	}
	if _, err := f.m.Lookup(b1.ID); err != nil {
		t.Errorf("another token's lease: %v", err)
	}
	if err := f.m.RevokePrefix(context.Background(), "database/", false); err != nil {
		t.Fatal(err)
	}
	if got := f.m.List(""); len(got) != 1 || got[0].ID != r.ID {
		t.Fatalf("after revoke-prefix database/: %+v", got)
	}
	users := eng.revokedUsers()
	slices.Sort(users)
	if !slices.Equal(users, []string{"a1", "a2", "b1"}) {
		t.Fatalf("revoked %v", users)
	}
	// Revoking an unknown lease succeeds, as in Vault.
	if err := f.m.Revoke(context.Background(), "database/creds/app/unknown"); err != nil {
		t.Fatal(err)
	}
}

func TestMountGoneMarksFailed(t *testing.T) {
	f, _ := newFixture(t)
	l := f.create("u", "acc", time.Minute, 0, true)
	f.mu.Lock()
	delete(f.engines, "database/")
	f.mu.Unlock()
	if err := f.m.Revoke(context.Background(), l.ID); !errors.Is(err, lease.ErrMountGone) {
		t.Fatalf("revoke: %v, want ErrMountGone", err)
	}
	got, err := f.m.Lookup(l.ID)
	if err != nil || got.Revocation == nil || !got.Revocation.Failed {
		t.Fatalf("lease %+v, %v: want kept and failed", got, err)
	}
	// Not retried: expiry passes, the lease stays for an operator.
	f.clock.Advance(time.Hour)
	if _, err := f.m.Lookup(l.ID); err != nil {
		t.Fatal(err)
	}
	// revoke-force removes it.
	if err := f.m.RevokePrefix(context.Background(), "database/", true); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Lookup(l.ID); !errors.Is(err, lease.ErrNotFound) {
		t.Fatalf("after revoke-force: %v", err)
	}
}

func TestRevokeAsync(t *testing.T) {
	f, eng := newFixture(t)
	l := f.create("u", "acc", time.Hour, 0, true)
	if err := f.m.RevokeAsync(context.Background(), l.ID); err != nil {
		t.Fatal(err)
	}
	eng.waitCall(t)
	f.waitGone(l.ID)
}

// Storage is the contract the Manager needs; the barrier's view meets it.
var _ logical.Storage = (*mount.View)(nil)

// Stopped managers refuse new leases.
func TestCreateWhenStopped(t *testing.T) {
	f, _ := newFixture(t)
	f.m.Stop()
	_, err := f.m.Create(context.Background(), lease.CreateParams{MountPath: "database/", IssuePath: "creds/app", Secret: &logical.Secret{}})
	if !errors.Is(err, lease.ErrStopped) {
		t.Fatalf("create when stopped: %v", err)
	}
	f.start()
}
