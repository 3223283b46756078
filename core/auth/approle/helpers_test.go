package approle_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/auth/approle"
	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/storage/inmem"
)

// clock is a settable clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is an engine over inmem storage, with its clock.
type env struct {
	t   testing.TB
	e   *approle.Engine
	be  *inmem.Backend
	clk *clock
}

// defaultAddr is the client address requests come from unless a test says
// otherwise.
var defaultAddr = netip.MustParseAddr("192.0.2.10")

func newEnv(t testing.TB, cfg approle.Config) *env {
	t.Helper()
	be := inmem.New()
	clk := newClock()
	if cfg.Now == nil {
		cfg.Now = clk.Now
	}
	e, err := approle.New(be, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, e: e, be: be, clk: clk}
}

// body decodes a JSON object the way the HTTP layer does, so numbers
// arrive as float64.
func body(t testing.TB, s string) map[string]any {
	t.Helper()
	if s == "" {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("bad test body %s: %v", s, err)
	}
	return m
}

func (v *env) doFrom(addr netip.Addr, op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return v.e.HandleRequest(context.Background(), &logical.Request{
		Operation: op, Path: "auth/approle/" + path, MountPath: "auth/approle/",
		RelativePath: path, Data: data, ClientAddr: addr, Time: v.clk.Now(),
	})
}

func (v *env) do(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return v.doFrom(defaultAddr, op, path, data)
}

// must runs a request that must succeed.
func (v *env) must(op logical.Operation, path string, data map[string]any) *logical.Response {
	v.t.Helper()
	resp, err := v.do(op, path, data)
	if err != nil {
		v.t.Fatalf("%s %s: %v", op, path, err)
	}
	return resp
}

// role creates a role from a JSON body and returns its role ID.
func (v *env) role(name, js string) string {
	v.t.Helper()
	v.must(logical.OpUpdate, "role/"+name, body(v.t, js))
	return v.must(logical.OpRead, "role/"+name+"/role-id", nil).Data["role_id"].(string)
}

// secretID generates a secret ID from a JSON body and returns it and its
// accessor.
func (v *env) secretID(name, js string) (id, accessor string) {
	v.t.Helper()
	resp := v.must(logical.OpUpdate, "role/"+name+"/secret-id", body(v.t, js))
	return resp.Data["secret_id"].(string), resp.Data["secret_id_accessor"].(string)
}

func (v *env) login(addr netip.Addr, roleID, secretID string) (*logical.Response, error) {
	return v.doFrom(addr, logical.OpUpdate, "login", map[string]any{"role_id": roleID, "secret_id": secretID})
}

// invalidField returns the field of an InvalidRequestError, failing the
// test for any other error.
func invalidField(t testing.TB, err error) string {
	t.Helper()
	var inv *logical.InvalidRequestError
	if !errors.As(err, &inv) {
		t.Fatalf("error %v (%T), want InvalidRequestError", err, err)
	}
	return inv.Field
}
