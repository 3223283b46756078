package conn

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBackoffDelayBounds(t *testing.T) {
	defaults := Backoff{}
	custom := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	tests := []struct {
		b    Backoff
		n    int
		want time.Duration // d: the delay lies in [d/2, d]
	}{
		{defaults, 0, time.Second}, // n < 1 counts as 1
		{defaults, 1, time.Second},
		{defaults, 2, 2 * time.Second},
		{defaults, 3, 4 * time.Second},
		{defaults, 6, 32 * time.Second},
		{defaults, 7, 60 * time.Second}, // 64 s capped
		{defaults, 8, 60 * time.Second},
		{defaults, 100, 60 * time.Second}, // no overflow
		{defaults, 1 << 30, 60 * time.Second},
		{custom, 1, 100 * time.Millisecond},
		{custom, 4, 800 * time.Millisecond},
		{custom, 5, time.Second},
		{Backoff{Min: time.Second, Max: time.Second}, 3, time.Second},
		{Backoff{Min: time.Duration(1) << 62, Max: time.Duration(1<<63 - 1)}, 5, time.Duration(1<<63 - 1)},
	}
	for _, tc := range tests {
		for _, f := range []float64{0, 0.25, 0.5, 0.999999} {
			got := tc.b.Delay(tc.n, func() float64 { return f })
			if got < tc.want/2 || got > tc.want {
				t.Errorf("%+v.Delay(%d, %v) = %s, want in [%s, %s]", tc.b, tc.n, f, got, tc.want/2, tc.want)
			}
			if min := tc.b.withDefaults().Min / 2; got < min {
				t.Errorf("%+v.Delay(%d, %v) = %s, below Min/2 %s", tc.b, tc.n, f, got, min)
			}
		}
		if lo := tc.b.Delay(tc.n, func() float64 { return 0 }); lo != tc.want/2 {
			t.Errorf("%+v.Delay(%d, 0) = %s, want %s", tc.b, tc.n, lo, tc.want/2)
		}
	}
}

func TestBackoffJitterVaries(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	seen := map[time.Duration]bool{}
	for range 100 {
		d := Backoff{}.Delay(3, rnd.Float64)
		if d < 2*time.Second || d > 4*time.Second {
			t.Fatalf("Delay(3) = %s, want in [2s, 4s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 50 {
		t.Errorf("100 delays took only %d values: no jitter", len(seen))
	}
	// The default source jitters too.
	a, b := Backoff{}.Delay(5, nil), Backoff{}.Delay(5, nil)
	for i := 0; a == b && i < 10; i++ {
		b = Backoff{}.Delay(5, nil)
	}
	if a == b {
		t.Errorf("Delay(5, nil) returned %s eleven times", a)
	}
}
