package conn

import (
	"math/rand/v2"
	"time"
)

// Default backoff bounds, from the agent protocol.
const (
	DefaultBackoffMin = time.Second
	DefaultBackoffMax = 60 * time.Second
)

// Backoff is jittered exponential backoff: the n-th consecutive failure
// waits a random time in [d/2, d], d = min(Max, Min × 2^(n-1)). Its zero
// value uses DefaultBackoffMin and DefaultBackoffMax.
type Backoff struct {
	// Min is the ceiling of the first wait. Default 1 s.
	Min time.Duration
	// Max caps every wait. Default 60 s.
	Max time.Duration
}

func (b Backoff) withDefaults() Backoff {
	if b.Min <= 0 {
		b.Min = DefaultBackoffMin
	}
	if b.Max <= 0 {
		b.Max = DefaultBackoffMax
	}
	return b
}

// Delay returns the wait before the next attempt after n consecutive
// failures (n < 1 counts as 1): a time in [d/2, d], d = min(Max, Min ×
// 2^(n-1)), placed by rnd, which returns values in [0, 1) like
// rand.Float64 (nil: math/rand/v2's rand.Float64).
func (b Backoff) Delay(n int, rnd func() float64) time.Duration {
	b = b.withDefaults()
	if rnd == nil {
		rnd = rand.Float64
	}
	d := b.Min
	for i := 1; i < n && d < b.Max; i++ {
		if d > b.Max/2 {
			d = b.Max // doubling would pass Max (or overflow)
			break
		}
		d *= 2
	}
	d = min(d, b.Max)
	half := d / 2
	f := rnd()
	if f < 0 {
		f = 0
	}
	if f > 1 {
		f = 1
	}
	return half + time.Duration(f*float64(d-half))
}
