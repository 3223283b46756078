package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/secrethub/secrethub/core/audit"
)

// pipeSink is a PipelineSink over Memory that keeps the PipelineSink rule
// (a batch is stored only if the record it follows is) and lets a test
// hold batches in flight and choose their outcome.
type pipeSink struct {
	*audit.Memory
	// started receives the size of each batch StartAppend takes, as it
	// is called.
	started chan int
	// startGate, when not nil, then holds each StartAppend until the
	// test sends a token.
	startGate chan struct{}
	// outcome, when not nil, holds each WaitAppend until the test sends
	// the outcome: nil (store the batch if it links), errLostAck (store
	// it if it links, then report a failure) or another error (store
	// nothing).
	outcome chan error

	mu      sync.Mutex
	flights [][]audit.Record
}

var errLostAck = errors.New("connection reset after commit")

func newPipeSink(gated bool) *pipeSink {
	s := &pipeSink{Memory: audit.NewMemory(), started: make(chan int, 1000)}
	if gated {
		s.startGate, s.outcome = make(chan struct{}), make(chan error)
	}
	return s
}

func (s *pipeSink) StartAppend(ctx context.Context, recs []audit.Record) error {
	if s.startGate != nil {
		s.started <- len(recs)
		<-s.startGate
	} else {
		// Ungated, nobody drains started: it only counts, and a run with
		// more batches than its buffer must not block on it.
		select {
		case s.started <- len(recs):
		default:
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flights = append(s.flights, recs)
	return nil
}

func (s *pipeSink) WaitAppend(ctx context.Context) error {
	var injected error
	if s.outcome != nil {
		injected = <-s.outcome
	}
	s.mu.Lock()
	recs := s.flights[0]
	s.flights = s.flights[1:]
	s.mu.Unlock()
	if injected != nil && !errors.Is(injected, errLostAck) {
		return injected
	}
	last, ok, err := s.Last(ctx)
	if err != nil {
		return err
	}
	linked := recs[0].Seq == 1 && !ok || ok && last.Seq == recs[0].Seq-1 && bytes.Equal(last.Hash, recs[0].PrevHash)
	if !linked {
		return fmt.Errorf("record %d is not stored: batch refused", recs[0].Seq-1)
	}
	if err := s.Append(ctx, recs); err != nil {
		return err
	}
	return injected
}

// recordAsync starts Record of event(i) and returns its outcome channel.
func recordAsync(t *testing.T, l *audit.Log, i int) chan error {
	done := make(chan error, 1)
	go func() { done <- l.Record(t.Context(), event(i)) }()
	return done
}

// startTwoBatches makes the log send event 1 as one batch and events 2..4
// as a second batch while the first is in flight, and returns their
// outcome channels.
func startTwoBatches(t *testing.T, l *audit.Log, s *pipeSink) []chan error {
	t.Helper()
	results := []chan error{recordAsync(t, l, 1)}
	if n := <-s.started; n != 1 {
		t.Fatalf("first batch has %d records, want 1", n)
	}
	for i := 2; i <= 4; i++ {
		results = append(results, recordAsync(t, l, i))
	}
	waitFor(t, "three queued events", func() bool { return audit.QueueLen(l) == 3 })
	s.startGate <- struct{}{}
	// The first batch is on its way and not yet stored: the writer sends
	// the three queued events behind it.
	if n := <-s.started; n != 3 {
		t.Fatalf("second batch has %d records, want 3", n)
	}
	s.startGate <- struct{}{}
	return results
}

func TestPipelineFailureFailsTheBatchesBehind(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	s := newPipeSink(true)
	l := openLog(t, keys, s)

	results := startTwoBatches(t, l, s)
	// Batch 1 fails while batch 2 is in flight behind it: batch 2 must
	// fail too, or records 2..4 would follow a record that is not there.
	fault := errors.New("disk full")
	s.outcome <- fault
	s.outcome <- nil
	for i, r := range results {
		if err := <-r; !errors.Is(err, audit.ErrNotRecorded) {
			t.Errorf("Record of event %d = %v, want ErrNotRecorded", i+1, err)
		}
	}
	if n := s.Len(); n != 0 {
		t.Fatalf("%d records stored after both batches failed, want 0", n)
	}
	if seq, _ := l.Head(); seq != 0 {
		t.Errorf("Head = %d, want 0", seq)
	}

	// The chain goes on from what the sink holds.
	next := recordAsync(t, l, 5)
	<-s.started
	s.startGate <- struct{}{}
	s.outcome <- nil
	if err := <-next; err != nil {
		t.Fatalf("Record after the failure: %v", err)
	}
	recs := collect(t, s)
	if len(recs) != 1 || recs[0].Seq != 1 || recs[0].Event.RequestID != "req-5" {
		t.Fatalf("stored %d records, first %+v; want req-5 as seq 1", len(recs), recs[0])
	}
	if rep := verify(t, s, &keys); !rep.OK {
		t.Errorf("Verify = %+v", rep)
	}
}

func TestPipelineLostAckThenSuccess(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	s := newPipeSink(true)
	l := openLog(t, keys, s)

	results := startTwoBatches(t, l, s)
	// Batch 1 is stored but its acknowledgement is lost; batch 2, which
	// links to it, is stored and acknowledged.
	s.outcome <- errLostAck
	s.outcome <- nil
	if err := <-results[0]; !errors.Is(err, audit.ErrNotRecorded) {
		t.Errorf("Record of event 1 = %v, want ErrNotRecorded", err)
	}
	for i, r := range results[1:] {
		if err := <-r; err != nil {
			t.Errorf("Record of event %d = %v", i+2, err)
		}
	}
	if seq, _ := l.Head(); seq != 4 {
		t.Errorf("Head = %d, want 4", seq)
	}
	next := recordAsync(t, l, 5)
	<-s.started
	s.startGate <- struct{}{}
	s.outcome <- nil
	if err := <-next; err != nil {
		t.Fatal(err)
	}
	if rep := verify(t, s, &keys); !rep.OK || rep.Records != 5 {
		t.Errorf("Verify = %+v, want OK over 5 records", rep)
	}
}

func TestPipelineConcurrentRecord(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	s := newPipeSink(false)
	l := openLog(t, keys, s)
	const writers, each = 32, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := l.Record(t.Context(), event(w*each+i)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Record: %v", err)
	}
	if rep := verify(t, s, &keys); !rep.OK || rep.Records != writers*each {
		t.Errorf("Verify = %+v", rep)
	}
	if seq, _ := l.Head(); seq != writers*each {
		t.Errorf("Head = %d, want %d", seq, writers*each)
	}
}

func TestPipelineCloseDrains(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	s := newPipeSink(true)
	l, err := audit.Open(t.Context(), keys, audit.Options{}, s)
	if err != nil {
		t.Fatal(err)
	}
	results := startTwoBatches(t, l, s)
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	s.outcome <- nil
	s.outcome <- nil
	for i, r := range results {
		if err := <-r; err != nil {
			t.Errorf("Record of event %d: %v", i+1, err)
		}
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	if n := s.Len(); n != 4 {
		t.Errorf("%d records after Close, want 4", n)
	}
}

func TestPipelineOffWithTwoSinks(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	s := newPipeSink(false)
	mem := audit.NewMemory()
	l := openLog(t, keys, s, mem)
	record(t, l, 1, 3)
	// With a second sink the log appends batch by batch, through Append.
	if len(s.started) != 0 {
		t.Errorf("StartAppend called %d times with two sinks", len(s.started))
	}
	for _, src := range []audit.Source{s, mem} {
		if rep := verify(t, src, &keys); !rep.OK || rep.Records != 3 {
			t.Errorf("Verify = %+v", rep)
		}
	}
}
