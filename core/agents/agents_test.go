package agents

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newRegistry(t *testing.T, maxWatched int) (*Registry, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 11, 22, 21, 0, 0, 0, time.UTC)}
	return New(Options{Now: clk.now, MaxWatched: maxWatched}), clk
}

func register(t *testing.T, r *Registry, name string) *Conn {
	t.Helper()
	c, err := r.Register(Info{Name: name, Version: "1", Identity: "spiffe://secrethub/agent/" + name, Accessor: "acc-" + name, Address: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// signalled reports whether c's signal is set, without waiting.
func signalled(c *Conn) bool {
	select {
	case <-c.Changed():
		return true
	default:
		return false
	}
}

func TestPublishReachesOnlyWatchers(t *testing.T) {
	r, _ := newRegistry(t, 0)
	a, b := register(t, r, "a"), register(t, r, "b")
	if r.Watching() {
		t.Fatal("Watching with no watches")
	}
	if err := a.Watch("secrets/x"); err != nil {
		t.Fatal(err)
	}
	if err := b.Watch("secrets/y"); err != nil {
		t.Fatal(err)
	}
	r.Publish("secrets/x", OpWrite, 3)
	r.Publish("secrets/z", OpWrite, 1)
	if !signalled(a) || signalled(b) {
		t.Fatalf("signals: a %v b %v, want a only", signalled(a), signalled(b))
	}
	got := a.TakeChanges()
	if want := []Change{{Path: "secrets/x", Operation: OpWrite, NewVersion: 3}}; !slices.Equal(got, want) {
		t.Fatalf("changes %+v, want %+v", got, want)
	}
	if got := b.TakeChanges(); len(got) != 0 {
		t.Fatalf("b got %+v", got)
	}
}

// TestCoalescing: many publishes before the writer runs are one signal
// and one change per path, carrying the latest operation and version.
func TestCoalescing(t *testing.T) {
	r, _ := newRegistry(t, 0)
	c := register(t, r, "a")
	for _, p := range []string{"p/1", "p/2"} {
		if err := c.Watch(p); err != nil {
			t.Fatal(err)
		}
	}
	for v := int64(1); v <= 100; v++ {
		r.Publish("p/1", OpWrite, v)
	}
	r.Publish("p/2", OpWrite, 7)
	r.Publish("p/2", OpDelete, 0)
	if !signalled(c) {
		t.Fatal("no signal")
	}
	if signalled(c) {
		t.Fatal("more than one signal queued")
	}
	want := []Change{{"p/1", OpWrite, 100}, {"p/2", OpDelete, 0}}
	if got := c.TakeChanges(); !slices.Equal(got, want) {
		t.Fatalf("changes %+v, want %+v", got, want)
	}
}

func TestWatchLimitsAndUnwatch(t *testing.T) {
	r, _ := newRegistry(t, 2)
	c := register(t, r, "a")
	steps := []struct {
		op, path string
		wantErr  error
	}{
		{"watch", "a", nil},
		{"watch", "a", nil}, // twice is one watch
		{"watch", "b", nil},
		{"watch", "c", ErrTooManyWatched},
		{"unwatch", "a", nil},
		{"watch", "c", nil},
	}
	for i, s := range steps {
		var err error
		if s.op == "watch" {
			err = c.Watch(s.path)
		} else {
			c.Unwatch(s.path)
		}
		if err != s.wantErr {
			t.Fatalf("step %d %s %s: %v, want %v", i, s.op, s.path, err, s.wantErr)
		}
	}
	info, _ := r.Get(c.ID())
	if !slices.Equal(info.Watched, []string{"b", "c"}) {
		t.Fatalf("watched %v", info.Watched)
	}
	r.Publish("a", OpWrite, 1)
	if signalled(c) {
		t.Fatal("unwatched path pushed")
	}
	// An unwatch drops the path's pending change too.
	r.Publish("b", OpWrite, 1)
	c.Unwatch("b")
	if got := c.TakeChanges(); len(got) != 0 {
		t.Fatalf("pending after unwatch: %+v", got)
	}
}

func TestListGetHeartbeatUnregister(t *testing.T) {
	r, clk := newRegistry(t, 0)
	a := register(t, r, "a")
	clk.advance(time.Second)
	b := register(t, r, "b")
	if err := b.Watch("secrets/y"); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Minute)
	b.Heartbeat()
	list := r.List()
	if len(list) != 2 || list[0].ID != a.ID() || list[1].ID != b.ID() {
		t.Fatalf("list %+v", list)
	}
	got := list[1]
	if got.Name != "b" || got.Identity != "spiffe://secrethub/agent/b" || got.Address != "127.0.0.1:1" || got.Version != "1" ||
		got.ConnectedSince != "2026-11-22T21:00:01Z" || got.LastHeartbeat != "2026-11-22T21:01:01Z" ||
		!slices.Equal(got.Watched, []string{"secrets/y"}) {
		t.Fatalf("info %+v", got)
	}
	if a.ID() == b.ID() || len(a.ID()) != 32 {
		t.Fatalf("ids %q %q", a.ID(), b.ID())
	}
	r.Unregister(b)
	r.Unregister(b) // idempotent
	if _, ok := r.Get(b.ID()); ok || r.Len() != 1 || r.Watching() {
		t.Fatalf("after unregister: len %d watching %v", r.Len(), r.Watching())
	}
	select {
	case <-b.Done():
	default:
		t.Fatal("unregistered connection not closed")
	}
	if err := b.Watch("x"); err != ErrClosed {
		t.Fatalf("watch after unregister: %v", err)
	}
}

func TestCloseAllAndCloseAccessor(t *testing.T) {
	r, _ := newRegistry(t, 0)
	a, b, c := register(t, r, "a"), register(t, r, "b"), register(t, r, "c")
	if n := r.CloseAccessor("acc-b", "token revoked"); n != 1 {
		t.Fatalf("closed %d", n)
	}
	isDone := func(c *Conn) bool {
		select {
		case <-c.Done():
			return true
		default:
			return false
		}
	}
	if isDone(a) || !isDone(b) || isDone(c) || b.CloseReason() != "token revoked" {
		t.Fatalf("after CloseAccessor: %v %v %v %q", isDone(a), isDone(b), isDone(c), b.CloseReason())
	}
	r.CloseAll("sealed")
	if !isDone(a) || !isDone(c) || a.CloseReason() != "sealed" || b.CloseReason() != "token revoked" {
		t.Fatal("CloseAll")
	}
	// A closed connection takes no more changes.
	if err := a.Watch("p"); err != nil {
		t.Fatal(err)
	}
	r.Publish("p", OpWrite, 1)
	if got := a.TakeChanges(); len(got) != 0 {
		t.Fatalf("closed connection got %+v", got)
	}
}

// TestConcurrent exercises every operation at once under -race: each
// watcher's writer eventually sees the last version published.
func TestConcurrent(t *testing.T) {
	r, _ := newRegistry(t, 0)
	const conns, writes = 20, 200
	var wg sync.WaitGroup
	results := make(chan int64, conns)
	start := make(chan struct{})
	for i := range conns {
		c := register(t, r, fmt.Sprint(i))
		if err := c.Watch("hot"); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var last int64
			for last < writes {
				<-c.Changed()
				for _, ch := range c.TakeChanges() {
					if ch.NewVersion < last {
						t.Errorf("version went back from %d to %d", last, ch.NewVersion)
					}
					last = ch.NewVersion
				}
				_ = r.List()
				c.Heartbeat()
			}
			results <- last
		}()
	}
	churn := make(chan struct{})
	go func() {
		defer close(churn)
		for i := range 100 {
			c := register(t, r, fmt.Sprint("churn", i))
			_ = c.Watch("hot")
			_ = c.Watch(fmt.Sprint("cold", i))
			r.Unregister(c)
		}
	}()
	close(start)
	for v := int64(1); v <= writes; v++ {
		r.Publish("hot", OpWrite, v)
	}
	wg.Wait()
	<-churn
	close(results)
	for last := range results {
		if last != writes {
			t.Fatalf("a watcher ended at %d, want %d", last, writes)
		}
	}
}

func BenchmarkPublishNoWatchers(b *testing.B) {
	r := New(Options{})
	for b.Loop() {
		r.Publish("secrets/x", OpWrite, 1)
	}
}

func BenchmarkPublish10kWatchers(b *testing.B) {
	r := New(Options{})
	for i := range 10000 {
		c, _ := r.Register(Info{Name: fmt.Sprint(i)})
		_ = c.Watch("secrets/x")
	}
	for b.Loop() {
		r.Publish("secrets/x", OpWrite, 1)
	}
}
