package kv_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/secrets/kv"
	"github.com/secrethub/secrethub/core/storage"
	"github.com/secrethub/secrethub/core/storage/inmem"
)

// t0 is the fixed start of every test clock.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

// clock is a manual clock.
type clock struct {
	mu  sync.Mutex
	now time.Time // guarded by mu
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// recorder is a logical.Storage over inmem that records the calls that
// change data, so tests can check what went into one transaction.
type recorder struct {
	*inmem.Backend
	mu    sync.Mutex
	calls []string       // guarded by mu: "put k", "delete k", "txn"
	txns  [][]storage.Op // guarded by mu
}

func (r *recorder) Put(ctx context.Context, key string, value []byte) error {
	r.mu.Lock()
	r.calls = append(r.calls, "put "+key)
	r.mu.Unlock()
	return r.Backend.Put(ctx, key, value)
}

func (r *recorder) Delete(ctx context.Context, key string) error {
	r.mu.Lock()
	r.calls = append(r.calls, "delete "+key)
	r.mu.Unlock()
	return r.Backend.Delete(ctx, key)
}

func (r *recorder) Txn(ctx context.Context, ops []storage.Op) error {
	r.mu.Lock()
	r.calls = append(r.calls, "txn")
	r.txns = append(r.txns, slices.Clone(ops))
	r.mu.Unlock()
	return r.Backend.Txn(ctx, ops)
}

// reset forgets the recorded calls.
func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls, r.txns = nil, nil
}

type fixture struct {
	t     testing.TB
	e     *kv.Engine
	store *recorder
	clock *clock
}

func newFixture(t testing.TB, cfg kv.Config) *fixture {
	t.Helper()
	c := &clock{now: t0}
	cfg.Now = c.Now
	store := &recorder{Backend: inmem.New()}
	e, err := kv.New(store, cfg)
	if err != nil {
		t.Fatalf("kv.New: %v", err)
	}
	return &fixture{t: t, e: e, store: store, clock: c}
}

// do runs one request.
func (f *fixture) do(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return f.e.HandleRequest(context.Background(), &logical.Request{Operation: op, RelativePath: path, Data: data, Time: f.clock.Now()})
}

// must runs one request that must succeed.
func (f *fixture) must(op logical.Operation, path string, data map[string]any) *logical.Response {
	f.t.Helper()
	resp, err := f.do(op, path, data)
	if err != nil {
		f.t.Fatalf("%s %q: %v", op, path, err)
	}
	return resp
}

// keys returns every key stored under prefix, sorted.
func (f *fixture) keys(prefix string) []string {
	f.t.Helper()
	var out []string
	var walk func(p string)
	walk = func(p string) {
		children, err := f.store.Backend.List(context.Background(), p)
		if err != nil {
			f.t.Fatalf("list %q: %v", p, err)
		}
		for _, c := range children {
			if strings.HasSuffix(c, "/") {
				walk(p + c)
				continue
			}
			out = append(out, p+c)
		}
	}
	walk(prefix)
	slices.Sort(out)
	return out
}

// body decodes a JSON object the way the HTTP layer does (numbers as
// json.Number).
func body(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return m
}

// asJSON renders v as canonical JSON, to compare responses.
func asJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(b)
}

// wantInvalid checks that err is an InvalidRequestError naming field.
func wantInvalid(t testing.TB, err error, field string) {
	t.Helper()
	var ire *logical.InvalidRequestError
	if !errors.As(err, &ire) {
		t.Fatalf("error = %v; want an InvalidRequestError naming %q", err, field)
	}
	if ire.Field != field {
		t.Fatalf("error names field %q (%v); want %q", ire.Field, err, field)
	}
}

// num reads an integer from response data.
func num(t testing.TB, v any) int {
	t.Helper()
	switch x := v.(type) {
	case int:
		return x
	case json.Number:
		n, err := x.Int64()
		if err != nil {
			t.Fatalf("not an integer: %v", x)
		}
		return int(n)
	}
	t.Fatalf("not an integer: %T %v", v, v)
	return 0
}
