package rotation_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/mount"
	"github.com/secrethub/secrethub/core/rotation"
	"github.com/secrethub/secrethub/core/secrets/kv"
	"github.com/secrethub/secrethub/core/storage/inmem"
)

// t0 is the start of every test clock.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeClock is a rotation.Clock moved by hand: Advance fires the timers
// whose time has come.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time    // guarded by mu
	timers []*fakeTimer // guarded by mu: pending timers
}

type fakeTimer struct {
	c   *fakeClock
	at  time.Time
	ch  chan time.Time
	off bool // guarded by c.mu: fired or stopped
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) rotation.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.off = true
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves the clock and fires the timers now due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.off {
			continue
		}
		if !t.at.After(c.now) {
			t.off = true
			t.ch <- c.now
			continue
		}
		kept = append(kept, t)
	}
	c.timers = kept
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.off
	t.off = true
	return was
}

// env stands in for the core around a Scheduler: inmem storage, real KV
// engines mounted at secrets/ (simple layout) and secret/ (kv-v2), and a
// requester that routes to them as the core's router does and records
// who asked for what.
type env struct {
	t       *testing.T
	store   *inmem.Backend
	clock   *fakeClock
	engines map[string]*kv.Engine

	mu       sync.Mutex
	requests []string // guarded by mu: "display op path"
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, store: inmem.New(), clock: newFakeClock(), engines: map[string]*kv.Engine{}}
	for path, layout := range map[string]kv.Layout{"secrets/": kv.LayoutSimple, "secret/": kv.LayoutKVv2} {
		eng, err := kv.New(mount.NewView(e.store, "logical/"+strings.TrimSuffix(path, "/")+"/"), kv.Config{Layout: layout, Now: e.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		e.engines[path] = eng
	}
	return e
}

// mounts is the rotation.MountFunc: the two KV mounts and a pki mount.
func (e *env) mounts(path string) (rotation.MountInfo, bool) {
	for p, eng := range e.engines {
		if strings.HasPrefix(path, p) {
			return rotation.MountInfo{Path: p, Type: "kv", Layout: eng.Layout()}, true
		}
	}
	if strings.HasPrefix(path, "pki/") {
		return rotation.MountInfo{Path: "pki/", Type: "pki"}, true
	}
	return rotation.MountInfo{}, false
}

// request routes req to its KV engine, telling create from update as the
// core does.
func (e *env) request(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	m, ok := e.mounts(req.Path)
	eng := e.engines[m.Path]
	if !ok || eng == nil {
		return nil, logical.ErrUnsupportedPath
	}
	req.MountPath, req.RelativePath = m.Path, strings.TrimPrefix(req.Path, m.Path)
	if req.Operation == logical.OpUpdate {
		exists, err := eng.Exists(ctx, req)
		if err != nil {
			return nil, err
		}
		if !exists {
			req.Operation = logical.OpCreate
		}
	}
	e.mu.Lock()
	e.requests = append(e.requests, req.DisplayName+" "+string(req.Operation)+" "+req.Path)
	e.mu.Unlock()
	return eng.HandleRequest(ctx, req)
}

// requestsBy returns the recorded requests of display name who.
func (e *env) requestsBy(who string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, r := range e.requests {
		if strings.HasPrefix(r, who+" ") {
			out = append(out, r)
		}
	}
	return out
}

// scheduler returns a Scheduler over e with cfg's non-zero fields.
func (e *env) scheduler(cfg rotation.Config) *rotation.Scheduler {
	e.t.Helper()
	if cfg.Storage == nil {
		cfg.Storage = e.store
	}
	if cfg.Locker == nil {
		cfg.Locker = e.store
	}
	cfg.Request, cfg.Mounts, cfg.Clock = e.request, e.mounts, e.clock
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := rotation.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(s.Stop)
	return s
}

// write writes a version of the secret at the API path p (simple or
// kv-v2 data path).
func (e *env) write(p string, data map[string]any) {
	e.t.Helper()
	if _, err := e.request(e.t.Context(), &logical.Request{Operation: logical.OpUpdate, Path: p, DisplayName: "test",
		Data: map[string]any{"data": data, "options": map[string]any{}}}); err != nil {
		e.t.Fatalf("write %s: %v", p, err)
	}
}

// errDeleted is read's answer for a version that is deleted.
var errDeleted = errors.New("version deleted")

// read reads version n (0: latest) of the secret at API path p.
func (e *env) read(p string, n int) (map[string]any, error) {
	e.t.Helper()
	data := map[string]any{}
	if n > 0 {
		data["version"] = n
	}
	resp, err := e.request(e.t.Context(), &logical.Request{Operation: logical.OpRead, Path: p, DisplayName: "test", Data: data})
	if err != nil {
		if errors.Is(err, logical.ErrNotFound) {
			return nil, errDeleted
		}
		return nil, err
	}
	if strings.Contains(p, "/data/") {
		if resp.StatusCode == 404 {
			return nil, errDeleted
		}
		return resp.Data["data"].(map[string]any), nil
	}
	return resp.Data, nil
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-time.After(5 * time.Millisecond)
	}
}

func ptr[T any](v T) *T { return &v }
