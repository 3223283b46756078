package ratelimit

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestLimiterBoundedMemory(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(10, 10, 100)
	for i := range 1000 {
		if ok, _ := l.Take(fmt.Sprint("k", i), t0); !ok {
			t.Fatalf("first failure of key %d refused", i)
		}
	}
	if n := l.Len(); n != 100 {
		t.Fatalf("%d keys tracked, want the cap of 100", n)
	}
	// The most recent keys are the ones kept.
	if _, ok := l.buckets["k999"]; !ok {
		t.Fatal("most recent key evicted")
	}
	if _, ok := l.buckets["k0"]; ok {
		t.Fatal("oldest key kept")
	}
	// Once every bucket has refilled, activity on any key prunes the idle
	// ones, a few per call.
	later := t0.Add(time.Minute)
	for range 20 {
		l.Take("busy", later)
	}
	if n := l.Len(); n != 1 {
		t.Fatalf("%d keys tracked after all went idle, want 1", n)
	}
}

func TestLimiterRefundForgetsFullBuckets(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(10, 2, 100)
	for range 5 {
		if ok, _ := l.Take("k", t0); !ok {
			t.Fatal("refunded attempts were charged")
		}
		l.Refund("k", t0)
	}
	if n := l.Len(); n != 0 {
		t.Fatalf("%d keys tracked after only successes", n)
	}
	l.Take("k", t0)
	l.Take("k", t0)
	if ok, wait := l.Take("k", t0); ok || wait != 6*time.Second {
		t.Fatalf("third failure with burst 2: ok=%v wait=%v; want refused, 6s", ok, wait)
	}
	if ok, _ := l.Take("k", t0.Add(6*time.Second)); !ok {
		t.Fatal("refused after one interval")
	}
	l.Refund("unknown", t0) // no effect, no panic
}

func TestSourceKey(t *testing.T) {
	cases := map[string]string{
		"192.0.2.1":          "192.0.2.1",
		"::ffff:192.0.2.1":   "192.0.2.1",
		"2001:db8:1:2::1":    "2001:db8:1:2::/64",
		"2001:db8:1:2:ff::9": "2001:db8:1:2::/64",
		"fe80::1%eth0":       "fe80::/64",
	}
	for in, want := range cases {
		if got := SourceKey(netip.MustParseAddr(in)); got != want {
			t.Errorf("SourceKey(%s) = %s, want %s", in, got, want)
		}
	}
	if got := SourceKey(netip.Addr{}); got != "unknown" {
		t.Errorf("SourceKey(invalid) = %s", got)
	}
}
func TestSettings(t *testing.T) {
	if l := (Settings{PerMinute: -1}).New(); l != nil {
		t.Error("a negative PerMinute gave a limiter")
	}
	tests := map[string]struct {
		s          Settings
		interval   time.Duration
		burst, max int
	}{
		"defaults":      {Settings{}, time.Minute / DefaultPerMinute, DefaultPerMinute, DefaultMaxKeys},
		"burst follows": {Settings{PerMinute: 30}, 2 * time.Second, 30, DefaultMaxKeys},
		"all given":     {Settings{PerMinute: 60, Burst: 5, MaxKeys: 7}, time.Second, 5, 7},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l := tc.s.New()
			if l == nil || l.interval != tc.interval || l.burst != tc.burst || l.max != tc.max {
				t.Fatalf("limiter = %+v, want interval %s burst %d max %d", l, tc.interval, tc.burst, tc.max)
			}
		})
	}
}
