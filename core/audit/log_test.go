package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/audit"
)

func TestRecordChains(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	mem := audit.NewMemory()
	l := openLog(t, keys, mem)
	record(t, l, 1, 5)

	recs := collect(t, mem)
	if len(recs) != 5 {
		t.Fatalf("%d records, want 5", len(recs))
	}
	prev := make([]byte, audit.HashSize)
	for i, r := range recs {
		if r.Seq != int64(i+1) {
			t.Errorf("record %d has seq %d", i, r.Seq)
		}
		if !bytes.Equal(r.PrevHash, prev) {
			t.Errorf("record %d: prev hash does not link", r.Seq)
		}
		want, err := audit.EncodeCanonical(r.Seq, r.Event)
		if err != nil || !bytes.Equal(want, r.Canonical) {
			t.Errorf("record %d: canonical %s, want EncodeCanonical of its event %s", r.Seq, r.Canonical, want)
		}
		prev = r.Hash
	}
	if seq, hash := l.Head(); seq != 5 || !bytes.Equal(hash, recs[4].Hash) {
		t.Errorf("Head = %d %x, want 5 %x", seq, hash, recs[4].Hash)
	}
	if rep := verify(t, mem, &keys); !rep.OK || rep.Records != 5 || rep.LastSeq != 5 {
		t.Errorf("Verify = %+v, want OK over 5 records", rep)
	}
}

func TestRecordHMACsDataAndStampsTime(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	mem := audit.NewMemory()
	l := openLog(t, keys, mem)
	ev := event(1)
	ev.Request = map[string]any{"password": "hunter2", "nested": map[string]any{"token": "tok-abc"}, "ttl": 30}
	ev.Response = map[string]any{"data": []any{"s3cret-value"}}
	if err := l.Record(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	r := collect(t, mem)[0]
	for _, secret := range []string{"hunter2", "tok-abc", "s3cret-value"} {
		if bytes.Contains(r.Canonical, []byte(secret)) {
			t.Errorf("canonical holds %q: %s", secret, r.Canonical)
		}
		if !bytes.Contains(r.Canonical, []byte(l.HashValue(secret))) {
			t.Errorf("canonical lacks the HMAC of %q: %s", secret, r.Canonical)
		}
	}
	if !bytes.Contains(r.Canonical, []byte(`"ttl":30`)) || !bytes.Contains(r.Canonical, []byte(`"path":"secrets/app/1"`)) {
		t.Errorf("canonical lost clear fields: %s", r.Canonical)
	}
	// The event had no time: the injected clock's first tick stamped it.
	if want := time.Date(2025, 6, 1, 12, 0, 0, int(time.Millisecond), time.UTC); !r.Event.Time.Equal(want) || !r.Time.Equal(want) {
		t.Errorf("time = %v / %v, want %v", r.Event.Time, r.Time, want)
	}
	// The caller's maps are untouched.
	if ev.Request["password"] != "hunter2" {
		t.Error("Record changed the caller's request data")
	}
}

func TestChainContinuesAcrossReopen(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	mem := audit.NewMemory()
	l1 := openLog(t, keys, mem)
	record(t, l1, 1, 3)
	if err := l1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l1.Record(t.Context(), event(99)); !errors.Is(err, audit.ErrClosed) || !errors.Is(err, audit.ErrNotRecorded) {
		t.Errorf("Record after Close = %v, want ErrClosed and ErrNotRecorded", err)
	}

	l2 := openLog(t, keys, mem)
	if seq, _ := l2.Head(); seq != 3 {
		t.Errorf("reopened Head = %d, want 3", seq)
	}
	record(t, l2, 4, 2)
	recs := collect(t, mem)
	if len(recs) != 5 || recs[3].Seq != 4 || !bytes.Equal(recs[3].PrevHash, recs[2].Hash) {
		t.Fatalf("after reopen: %d records; record 4 seq %d links %v", len(recs), recs[3].Seq, bytes.Equal(recs[3].PrevHash, recs[2].Hash))
	}
	if rep := verify(t, mem, &keys); !rep.OK || rep.Records != 5 {
		t.Errorf("Verify = %+v", rep)
	}
}

// lostAck is a sink that stores a batch and then reports failure once: a
// commit whose acknowledgement was lost.
type lostAck struct {
	*audit.Memory
	mu   sync.Mutex
	once bool
}

func (s *lostAck) Append(ctx context.Context, recs []audit.Record) error {
	if err := s.Memory.Append(ctx, recs); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.once {
		s.once = false
		return errors.New("connection reset after commit")
	}
	return nil
}

func TestFailClosed(t *testing.T) {
	t.Parallel()
	fault := errors.New("disk full")

	t.Run("sink error fails the request, then the chain goes on", func(t *testing.T) {
		t.Parallel()
		keys := newKeys(t)
		mem := audit.NewMemory()
		l := openLog(t, keys, mem)
		record(t, l, 1, 3)
		mem.SetFault(fault)
		for i := range 3 {
			err := l.Record(t.Context(), event(10+i))
			if !errors.Is(err, audit.ErrNotRecorded) || !errors.Is(err, fault) {
				t.Fatalf("Record with failing sink = %v, want ErrNotRecorded wrapping the fault", err)
			}
		}
		if seq, _ := l.Head(); seq != 3 {
			t.Errorf("Head after failures = %d, want 3 (rolled back to the last committed)", seq)
		}
		mem.SetFault(nil)
		record(t, l, 4, 2)
		recs := collect(t, mem)
		if len(recs) != 5 || recs[3].Seq != 4 || recs[3].Event.RequestID != "req-4" {
			t.Fatalf("after recovery: %d records, record 4 = seq %d %q", len(recs), recs[3].Seq, recs[3].Event.RequestID)
		}
		if rep := verify(t, mem, &keys); !rep.OK {
			t.Errorf("Verify = %+v", rep)
		}
	})

	t.Run("lost acknowledgement: the chain continues from what was stored", func(t *testing.T) {
		t.Parallel()
		keys := newKeys(t)
		sink := &lostAck{Memory: audit.NewMemory()}
		l := openLog(t, keys, sink)
		record(t, l, 1, 2)
		sink.mu.Lock()
		sink.once = true
		sink.mu.Unlock()
		if err := l.Record(t.Context(), event(3)); !errors.Is(err, audit.ErrNotRecorded) {
			t.Fatalf("Record = %v, want ErrNotRecorded", err)
		}
		record(t, l, 4, 1)
		recs := collect(t, sink)
		if len(recs) != 4 || recs[3].Seq != 4 {
			t.Fatalf("%d records, last seq %d; want 4 and 4 (no reused sequence number)", len(recs), recs[len(recs)-1].Seq)
		}
		if rep := verify(t, sink, &keys); !rep.OK {
			t.Errorf("Verify = %+v", rep)
		}
	})

	t.Run("a failing second sink fails the request too", func(t *testing.T) {
		t.Parallel()
		keys := newKeys(t)
		primary, secondary := audit.NewMemory(), audit.NewMemory()
		l := openLog(t, keys, primary, secondary)
		record(t, l, 1, 2)
		secondary.SetFault(fault)
		if err := l.Record(t.Context(), event(3)); !errors.Is(err, fault) {
			t.Fatalf("Record = %v, want the second sink's fault", err)
		}
		secondary.SetFault(nil)
		record(t, l, 4, 1)
		// The chain of record (the first sink) holds all; the second
		// shows exactly the record it missed.
		if rep := verify(t, primary, &keys); !rep.OK || rep.Records != 4 {
			t.Errorf("primary: %+v, want OK over 4", rep)
		}
		if rep := verify(t, secondary, &keys); rep.OK || rep.FirstBadSeq != 3 {
			t.Errorf("secondary: %+v, want a gap at 3", rep)
		}
	})

	t.Run("head unreadable at open", func(t *testing.T) {
		t.Parallel()
		_, err := audit.New(newKeys(t), brokenLast{audit.NewMemory()})
		if err == nil || !strings.Contains(err.Error(), "chain head") {
			t.Errorf("New = %v, want a chain head error", err)
		}
	})
}

type brokenLast struct{ *audit.Memory }

func (brokenLast) Last(context.Context) (audit.Record, bool, error) {
	return audit.Record{}, false, errors.New("connection refused")
}

func TestConcurrentRecord(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	mem := audit.NewMemory()
	l := openLog(t, keys, mem)
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
	recs := collect(t, mem)
	if len(recs) != writers*each {
		t.Fatalf("%d records, want %d", len(recs), writers*each)
	}
	seen := map[string]bool{}
	for i, r := range recs {
		if r.Seq != int64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
		if seen[r.Event.RequestID] {
			t.Fatalf("request %s recorded twice", r.Event.RequestID)
		}
		seen[r.Event.RequestID] = true
	}
	if rep := verify(t, mem, &keys); !rep.OK || rep.Records != writers*each {
		t.Errorf("Verify = %+v", rep)
	}
}

// gate is a sink that blocks each Append until released, and counts the
// batches it sees.
type gate struct {
	*audit.Memory
	entered chan int // the size of each batch, when Append starts
	release chan struct{}
}

func newGate() *gate {
	return &gate{Memory: audit.NewMemory(), entered: make(chan int, 100), release: make(chan struct{})}
}

func (g *gate) Append(ctx context.Context, recs []audit.Record) error {
	g.entered <- len(recs)
	<-g.release
	return g.Memory.Append(ctx, recs)
}

func TestGroupCommit(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	g := newGate()
	l := openLog(t, keys, g)

	results := make(chan error, 11)
	go func() { results <- l.Record(t.Context(), event(0)) }()
	if n := <-g.entered; n != 1 {
		t.Fatalf("first batch has %d records, want 1", n)
	}
	// While the writer is busy, ten more callers queue.
	for i := 1; i <= 10; i++ {
		go func() { results <- l.Record(t.Context(), event(i)) }()
	}
	waitFor(t, "ten queued events", func() bool { return audit.QueueLen(l) == 10 })
	g.release <- struct{}{}
	if n := <-g.entered; n != 10 {
		t.Fatalf("second batch has %d records, want all 10 queued", n)
	}
	g.release <- struct{}{}
	for range 11 {
		if err := <-results; err != nil {
			t.Fatalf("Record: %v", err)
		}
	}
	if rep := verify(t, g, &keys); !rep.OK || rep.Records != 11 {
		t.Errorf("Verify = %+v", rep)
	}
}

func TestRecordContextCancelled(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	g := newGate()
	l := openLog(t, keys, g)

	// A: held inside Append. B: queued behind it, then its caller gives up.
	aDone := make(chan error, 1)
	go func() { aDone <- l.Record(t.Context(), event(1)) }()
	<-g.entered

	ctx, cancel := context.WithCancel(t.Context())
	bDone := make(chan error, 1)
	go func() { bDone <- l.Record(ctx, event(2)) }()
	waitFor(t, "B queued", func() bool { return audit.QueueLen(l) == 1 })
	cancel()
	if err := <-bDone; !errors.Is(err, context.Canceled) || !errors.Is(err, audit.ErrNotRecorded) {
		t.Errorf("cancelled Record = %v, want context.Canceled and ErrNotRecorded", err)
	}
	// An already-cancelled context fails at once.
	if err := l.Record(ctx, event(3)); !errors.Is(err, context.Canceled) {
		t.Errorf("Record with a done context = %v", err)
	}

	g.release <- struct{}{}
	if err := <-aDone; err != nil {
		t.Fatalf("A: %v", err)
	}
	// B's caller has gone, but B was queued and may describe a request
	// that took effect: it is written all the same, as seq 2. The event
	// whose context was done before it was queued is not.
	if n := <-g.entered; n != 1 {
		t.Errorf("batch after A has %d records, want B alone", n)
	}
	g.release <- struct{}{}
	go func() { aDone <- l.Record(t.Context(), event(4)) }()
	<-g.entered
	g.release <- struct{}{}
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	recs := collect(t, g)
	var ids []string
	for _, r := range recs {
		ids = append(ids, fmt.Sprintf("%d:%s", r.Seq, r.Event.RequestID))
	}
	if fmt.Sprint(ids) != "[1:req-1 2:req-2 3:req-4]" {
		t.Errorf("recorded %v, want [1:req-1 2:req-2 3:req-4]", ids)
	}
	if rep := verify(t, g, &keys); !rep.OK {
		t.Errorf("Verify = %+v", rep)
	}
}

func TestCloseDrains(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	g := newGate()
	l, err := audit.Open(t.Context(), keys, audit.Options{}, g)
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 6)
	go func() { results <- l.Record(t.Context(), event(0)) }()
	<-g.entered
	for i := 1; i <= 5; i++ {
		go func() { results <- l.Record(t.Context(), event(i)) }()
	}
	waitFor(t, "five queued events", func() bool { return audit.QueueLen(l) == 5 })
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	go func() {
		for range 2 {
			g.release <- struct{}{}
		}
	}()
	for range 6 {
		if err := <-results; err != nil {
			t.Errorf("Record: %v", err)
		}
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	if n := g.Len(); n != 6 {
		t.Errorf("%d records after Close, want all 6", n)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
