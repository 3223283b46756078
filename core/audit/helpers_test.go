package audit_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"iter"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/audit"
)

// newKeys returns fresh random keys.
func newKeys(t testing.TB) audit.Keys {
	t.Helper()
	root := make([]byte, 32)
	rand.Read(root)
	k, err := audit.DeriveKeys(root)
	if err != nil {
		t.Fatalf("DeriveKeys: %v", err)
	}
	return k
}

// fixedClock returns a clock, safe for concurrent use, that starts at a
// fixed time and advances a millisecond a call.
func fixedClock() func() time.Time {
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var ticks atomic.Int64
	return func() time.Time {
		return start.Add(time.Duration(ticks.Add(1)) * time.Millisecond)
	}
}

// openLog opens a Log over sinks and closes it when the test ends.
func openLog(t testing.TB, keys audit.Keys, sinks ...audit.Sink) *audit.Log {
	t.Helper()
	l, err := audit.Open(t.Context(), keys, audit.Options{Now: fixedClock()}, sinks...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// event returns a typical event numbered i.
func event(i int) audit.Event {
	return audit.Event{
		RequestID:     fmt.Sprintf("req-%d", i),
		Operation:     "update",
		Path:          fmt.Sprintf("secrets/app/%d", i),
		ClientAddr:    "127.0.0.1",
		TokenAccessor: "accessor-1",
		Policies:      []string{"default", "app"},
		Result:        audit.ResultOK,
		StatusCode:    200,
		Request:       map[string]any{"password": fmt.Sprintf("hunter%d", i), "ttl": 30},
		Response:      map[string]any{"version": i},
	}
}

// record writes n events numbered from first, failing the test on error.
func record(t testing.TB, l *audit.Log, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		if err := l.Record(t.Context(), event(i)); err != nil {
			t.Fatalf("Record %d: %v", i, err)
		}
	}
}

// collect reads every record of src.
func collect(t testing.TB, src audit.Source) []audit.Record {
	t.Helper()
	var out []audit.Record
	for r, err := range src.Records(t.Context()) {
		if err != nil {
			t.Fatalf("Records: %v", err)
		}
		out = append(out, r)
	}
	return out
}

// verify runs Verify, failing the test on a read error.
func verify(t testing.TB, src audit.Source, keys *audit.Keys) audit.Report {
	t.Helper()
	rep, err := audit.Verify(t.Context(), src, keys)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

// sliceSource is a Source over records and errors held in a slice.
type sliceSource []item

type item struct {
	rec audit.Record
	err error
}

func recordsOf(recs []audit.Record) sliceSource {
	s := make(sliceSource, len(recs))
	for i, r := range recs {
		s[i] = item{rec: r}
	}
	return s
}

func (s sliceSource) Records(ctx context.Context) iter.Seq2[audit.Record, error] {
	return func(yield func(audit.Record, error) bool) {
		for _, it := range s {
			if !yield(it.rec, it.err) {
				return
			}
		}
	}
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		// Let the goroutines under test run.
		select {
		case <-time.After(time.Millisecond):
		case <-t.Context().Done():
			t.Fatalf("test ended waiting for %s", what)
		}
	}
}
