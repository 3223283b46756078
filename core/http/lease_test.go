package http_test

// Leases end to end through the REST API: a real core over in-memory
// storage with an in-test dynamic engine mounted (type "leasetest"),
// whose "target" is a set of users standing in for a database that can
// be taken down. The lease clock is a fake the tests advance.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/secrethub/secrethub/core"
	"github.com/secrethub/secrethub/core/audit"
	corehttp "github.com/secrethub/secrethub/core/http"
	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/storage"
	"github.com/secrethub/secrethub/core/storage/inmem"
	"github.com/secrethub/secrethub/core/wire"
)

// leaseClock is a settable clock; its At channels fire when Advance
// passes them.
type leaseClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []leaseWaiter
}

type leaseWaiter struct {
	at time.Time
	ch chan time.Time
}

func (c *leaseClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *leaseClock) At(t time.Time) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if !t.After(c.now) {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, leaseWaiter{t, ch})
	return ch
}

func (c *leaseClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// target stands in for the system a dynamic engine creates users in.
type target struct {
	mu    sync.Mutex
	users map[string]bool
	down  bool
	next  int
}

func (t *target) has(u string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.users[u]
}

func (t *target) setDown(d bool) {
	t.mu.Lock()
	t.down = d
	t.mu.Unlock()
}

// testEngine issues users at creds/<role>: role "app" renewable with a
// 1h TTL and 2h max, role "fixed" not renewable.
type testEngine struct{ t *target }

func (e *testEngine) HandleRequest(_ context.Context, req *logical.Request) (*logical.Response, error) {
	role, ok := strings.CutPrefix(req.RelativePath, "creds/")
	if !ok || req.Operation != logical.OpRead {
		return nil, logical.ErrUnsupportedPath
	}
	e.t.mu.Lock()
	defer e.t.mu.Unlock()
	if e.t.down {
		return nil, errors.New("target 127.0.0.1:1 unreachable")
	}
	e.t.next++
	u := fmt.Sprintf("%s-%d", role, e.t.next)
	e.t.users[u] = true
	return &logical.Response{
		Data:   map[string]any{"username": u, "password": "pw-" + u},
		Secret: &logical.Secret{TTL: time.Hour, MaxTTL: 2 * time.Hour, Renewable: role != "fixed", InternalData: map[string]any{"user": u}},
	}, nil
}

func (e *testEngine) RevokeSecret(_ context.Context, l *logical.SecretLease) error {
	e.t.mu.Lock()
	defer e.t.mu.Unlock()
	if e.t.down {
		return errors.New("target 127.0.0.1:1 unreachable")
	}
	delete(e.t.users, l.InternalData["user"].(string))
	return nil
}

func (e *testEngine) RenewSecret(context.Context, *logical.SecretLease) error {
	e.t.mu.Lock()
	defer e.t.mu.Unlock()
	if e.t.down {
		return errors.New("target 127.0.0.1:1 unreachable")
	}
	return nil
}

type leaseEnv struct {
	t       *testing.T
	backend storage.Backend
	clock   *leaseClock
	target  *target
	core    *core.Core
	srv     *httptest.Server
	keys    []string
	root    string
}

func newLeaseEnv(t *testing.T) *leaseEnv {
	t.Helper()
	return newLeaseEnvOn(t, inmem.New())
}

// newLeaseEnvOn initializes and unseals a core over backend and mounts the
// in-test engine at dyn/.
func newLeaseEnvOn(t *testing.T, backend storage.Backend) *leaseEnv {
	t.Helper()
	e := &leaseEnv{t: t, backend: backend, clock: &leaseClock{now: time.Now().UTC()}, target: &target{users: map[string]bool{}}}
	e.start()
	code, body := e.do("PUT", "/v1/sys/init", `{"secret_shares":1,"secret_threshold":1}`, "")
	if code != 200 {
		t.Fatalf("init: %d %s", code, body)
	}
	var res wire.InitResponse
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatal(err)
	}
	e.keys, e.root = res.Keys, res.RootToken
	e.unseal()
	e.must(204, "PUT", "/v1/sys/mounts/dyn", `{"type":"leasetest"}`, e.root)
	return e
}

// start builds a core over the env's storage (a restart of the server).
func (e *leaseEnv) start() {
	c, err := core.New(core.Config{
		Backend: e.backend, StorageType: "inmem", Logger: slog.New(slog.DiscardHandler),
		AuditSinks: []core.AuditSink{{Name: "memory", Sink: audit.NewMemory()}},
		Now:        e.clock.Now, LeaseClock: e.clock,
		ExtraEngines: map[string]core.EngineFactory{"leasetest": func(logical.Storage) (logical.Engine, error) {
			return &testEngine{t: e.target}, nil
		}},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	srv := httptest.NewServer(corehttp.New(c, corehttp.Options{Logger: slog.New(slog.DiscardHandler)}))
	e.t.Cleanup(func() { srv.Close(); c.Shutdown(context.Background()) })
	e.core, e.srv = c, srv
}

// restart shuts the core down and starts a new one over the same storage.
func (e *leaseEnv) restart() {
	e.core.Shutdown(context.Background())
	e.srv.Close()
	e.start()
	e.unseal()
}

func (e *leaseEnv) unseal() {
	if code, body := e.do("PUT", "/v1/sys/unseal", `{"key":"`+e.keys[0]+`"}`, ""); code != 200 {
		e.t.Fatalf("unseal: %d %s", code, body)
	}
}

func (e *leaseEnv) do(method, path, body, tok string) (int, string) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("X-Vault-Token", tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *leaseEnv) must(want int, method, path, body, tok string) map[string]any {
	e.t.Helper()
	code, out := e.do(method, path, body, tok)
	if code != want {
		e.t.Fatalf("%s %s: %d %s, want %d", method, path, code, out, want)
	}
	var m map[string]any
	if out != "" {
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, out)
		}
	}
	return m
}

// creds issues a credential and returns its user name and lease ID.
func (e *leaseEnv) creds(role, tok string) (string, string) {
	e.t.Helper()
	m := e.must(200, "GET", "/v1/dyn/creds/"+role, "", tok)
	return m["data"].(map[string]any)["username"].(string), m["lease_id"].(string)
}

// waitRevoked polls until the target no longer has user.
func (e *leaseEnv) waitRevoked(user string) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.target.has(user) {
		if time.Now().After(deadline) {
			e.t.Fatalf("user %s was not revoked", user)
		}
		<-time.After(time.Millisecond)
	}
}

func TestLeaseIssueLookupRenewRevoke(t *testing.T) {
	e := newLeaseEnv(t)
	m := e.must(200, "GET", "/v1/dyn/creds/app", "", e.root)
	id, _ := m["lease_id"].(string)
	if !strings.HasPrefix(id, "dyn/creds/app/") || m["lease_duration"] != float64(3600) || m["renewable"] != true {
		t.Fatalf("issue answer: %v", m)
	}
	user := m["data"].(map[string]any)["username"].(string)

	look := e.must(200, "PUT", "/v1/sys/leases/lookup", `{"lease_id":"`+id+`"}`, e.root)["data"].(map[string]any)
	for _, k := range []string{"id", "issue_time", "expire_time", "last_renewal", "renewable", "ttl"} {
		if _, ok := look[k]; !ok {
			t.Errorf("lookup lacks %q: %v", k, look)
		}
	}
	if look["id"] != id || look["ttl"] != float64(3600) || look["last_renewal"] != nil {
		t.Errorf("lookup: %v", look)
	}
	keys := e.must(200, "LIST", "/v1/sys/leases/lookup/dyn/creds/app/", "", e.root)["data"].(map[string]any)["keys"]
	if ks, _ := keys.([]any); len(ks) != 1 || "dyn/creds/app/"+ks[0].(string) != id {
		t.Errorf("list keys: %v", keys)
	}
	all := e.must(200, "GET", "/v1/sys/leases", "", e.root)["data"].(map[string]any)
	if ls := all["leases"].([]any); len(ls) != 1 || ls[0].(map[string]any)["id"] != id {
		t.Errorf("sys/leases: %v", all)
	}

	e.clock.Advance(30 * time.Minute)
	r := e.must(200, "PUT", "/v1/sys/leases/renew", `{"lease_id":"`+id+`","increment":"3h"}`, e.root)
	// Issued with a 2h max: 30 minutes in, 90 minutes are left.
	if r["lease_id"] != id || r["lease_duration"] != float64(5400) || r["renewable"] != true || len(r["warnings"].([]any)) != 1 {
		t.Errorf("renew capped by max TTL: %v", r)
	}
	r = e.must(200, "PUT", "/v1/sys/leases/renew/"+id, `{"increment":600}`, e.root)
	if r["lease_duration"] != float64(600) {
		t.Errorf("renew by path: %v", r)
	}

	_, fixed := e.creds("fixed", e.root)
	if code, body := e.do("PUT", "/v1/sys/leases/renew", `{"lease_id":"`+fixed+`"}`, e.root); code != 400 || !strings.Contains(body, fixed) {
		t.Errorf("renew non-renewable: %d %s, want 400 naming the lease", code, body)
	}
	if code, body := e.do("PUT", "/v1/sys/leases/lookup", `{"lease_id":"dyn/creds/app/nope"}`, e.root); code != 400 {
		t.Errorf("lookup unknown: %d %s", code, body)
	}

	e.must(204, "PUT", "/v1/sys/leases/revoke", `{"lease_id":"`+id+`"}`, e.root)
	if e.target.has(user) {
		t.Fatal("revoke left the user at the target")
	}
	if code, _ := e.do("PUT", "/v1/sys/leases/lookup", `{"lease_id":"`+id+`"}`, e.root); code != 400 {
		t.Errorf("lookup after revoke: %d", code)
	}
}

func TestLeaseRevokeRetriesWhileTargetDown(t *testing.T) {
	e := newLeaseEnv(t)
	user, id := e.creds("app", e.root)
	e.target.setDown(true)
	code, body := e.do("PUT", "/v1/sys/leases/revoke/"+id, "", e.root)
	if code != 502 || !strings.Contains(body, id) || !strings.Contains(body, "unreachable") {
		t.Fatalf("revoke while down: %d %s, want 502 naming the lease and the reason", code, body)
	}
	look := e.must(200, "PUT", "/v1/sys/leases/lookup", `{"lease_id":"`+id+`"}`, e.root)["data"].(map[string]any)
	if rv, _ := look["revocation"].(map[string]any); rv == nil || rv["attempts"] != float64(1) {
		t.Fatalf("lookup after a failed revoke: %v", look)
	}
	// Kept across a restart, and revoked once the target is back.
	e.restart()
	e.target.setDown(false)
	e.clock.Advance(10 * time.Minute)
	e.waitRevoked(user)

	// sync=false queues the revocation: 202.
	user2, id2 := e.creds("app", e.root)
	e.must(202, "PUT", "/v1/sys/leases/revoke", `{"lease_id":"`+id2+`","sync":false}`, e.root)
	e.waitRevoked(user2)
}

func TestLeaseExpiryAfterRestart(t *testing.T) {
	e := newLeaseEnv(t)
	user, id := e.creds("app", e.root)
	e.restart()
	if look := e.must(200, "PUT", "/v1/sys/leases/lookup", `{"lease_id":"`+id+`"}`, e.root)["data"].(map[string]any); look["id"] != id {
		t.Fatalf("lease lost at restart: %v", look)
	}
	e.clock.Advance(time.Hour)
	e.waitRevoked(user)
}

func TestLeaseTokenRevocationCascades(t *testing.T) {
	e := newLeaseEnv(t)
	e.must(204, "PUT", "/v1/sys/policies/acl/dyn", `{"policy":"rules: [{path: 'dyn/**', capabilities: [read]}, {path: 'auth/token/create', capabilities: [update]}]"}`, e.root)
	parent := e.must(200, "PUT", "/v1/auth/token/create", `{"policies":["dyn"]}`, e.root)["auth"].(map[string]any)["client_token"].(string)
	child := e.must(200, "PUT", "/v1/auth/token/create", `{"policies":["dyn"]}`, parent)["auth"].(map[string]any)["client_token"].(string)
	pUser, _ := e.creds("app", parent)
	cUser, cID := e.creds("app", child)
	rootUser, _ := e.creds("app", e.root)

	// The default policy lets a token renew and look up a lease by ID, but
	// not list or revoke.
	e.must(200, "PUT", "/v1/sys/leases/lookup", `{"lease_id":"`+cID+`"}`, child)
	e.must(200, "PUT", "/v1/sys/leases/renew", `{"lease_id":"`+cID+`"}`, child)
	if code, _ := e.do("LIST", "/v1/sys/leases/lookup/dyn/", "", child); code != 403 {
		t.Errorf("list leases with the default policy: %d", code)
	}
	if code, _ := e.do("PUT", "/v1/sys/leases/revoke", `{"lease_id":"`+cID+`"}`, child); code != 403 {
		t.Errorf("revoke with the default policy: %d", code)
	}
	if code, _ := e.do("GET", "/v1/sys/leases", "", child); code != 403 {
		t.Errorf("sys/leases with the default policy: %d", code)
	}

	e.must(204, "PUT", "/v1/auth/token/revoke-self", "", parent)
	for _, u := range []string{pUser, cUser} {
		if e.target.has(u) {
			t.Errorf("user %s outlived its token", u)
		}
	}
	if !e.target.has(rootUser) {
		t.Error("another token's credential was revoked")
	}
}

// TestLeaseCappedByTokenLife: a credential never outlives the token it
// was issued to: its lease ends by the token's maximum expiry, renewals
// included, and is revoked then even if nobody revokes the token.
func TestLeaseCappedByTokenLife(t *testing.T) {
	e := newLeaseEnv(t)
	e.must(204, "PUT", "/v1/sys/policies/acl/dyn", `{"policy":"rules: [{path: 'dyn/**', capabilities: [read]}]"}`, e.root)
	tok := e.must(200, "PUT", "/v1/auth/token/create", `{"policies":["dyn"],"ttl":"25m","explicit_max_ttl":"30m"}`, e.root)["auth"].(map[string]any)["client_token"].(string)
	m := e.must(200, "GET", "/v1/dyn/creds/app", "", tok)
	user, id := m["data"].(map[string]any)["username"].(string), m["lease_id"].(string)
	if got := m["lease_duration"]; got != float64(30*60) {
		t.Fatalf("lease_duration = %v, want 1800 (the token's 30m maximum, below the role's 1h)", got)
	}
	e.clock.Advance(20 * time.Minute)
	renewed := e.must(200, "PUT", "/v1/sys/leases/renew", `{"lease_id":"`+id+`","increment":7200}`, tok)
	if got := renewed["lease_duration"]; got != float64(10*60) {
		t.Fatalf("renewed lease_duration = %v, want 600 (what is left of the token's life)", got)
	}
	// A root token's credential keeps the role's TTL.
	if m := e.must(200, "GET", "/v1/dyn/creds/app", "", e.root); m["lease_duration"] != float64(3600) {
		t.Errorf("root token's lease_duration = %v, want 3600", m["lease_duration"])
	}
	e.clock.Advance(10*time.Minute + time.Second)
	e.waitRevoked(user)
}

func TestLeaseUnmountRevokesFirst(t *testing.T) {
	e := newLeaseEnv(t)
	user, _ := e.creds("app", e.root)
	e.target.setDown(true)
	code, body := e.do("DELETE", "/v1/sys/mounts/dyn", "", e.root)
	if code != 502 || !strings.Contains(body, "unmount dyn/") {
		t.Fatalf("unmount with unrevocable leases: %d %s", code, body)
	}
	if e.must(200, "GET", "/v1/sys/mounts", "", e.root)["data"].(map[string]any)["dyn/"] == nil {
		t.Fatal("the mount went although its leases stayed")
	}
	e.target.setDown(false)
	e.must(204, "DELETE", "/v1/sys/mounts/dyn", "", e.root)
	if e.target.has(user) {
		t.Fatal("unmount left the credential")
	}
	if ls := e.must(200, "GET", "/v1/sys/leases", "", e.root)["data"].(map[string]any)["leases"].([]any); len(ls) != 0 {
		t.Fatalf("leases after unmount: %v", ls)
	}
}

func TestLeaseVaultClient(t *testing.T) {
	e := newLeaseEnv(t)
	cfg := vault.DefaultConfig()
	cfg.Address = e.srv.URL
	vc, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	vc.SetToken(e.root)
	s, err := vc.Logical().Read("dyn/creds/app")
	if err != nil {
		t.Fatal(err)
	}
	if s.LeaseID == "" || s.LeaseDuration != 3600 || !s.Renewable {
		t.Fatalf("vault read: %+v", s)
	}
	look, err := vc.Sys().Lookup(s.LeaseID)
	if err != nil || look.Data["id"] != s.LeaseID {
		t.Fatalf("Sys().Lookup: %+v %v", look, err)
	}
	r, err := vc.Sys().Renew(s.LeaseID, 1800)
	if err != nil || r.LeaseID != s.LeaseID || r.LeaseDuration != 1800 {
		t.Fatalf("Sys().Renew: %+v %v", r, err)
	}
	if err := vc.Sys().Revoke(s.LeaseID); err != nil {
		t.Fatalf("Sys().Revoke: %v", err)
	}
	u1 := s.Data["username"].(string)
	if e.target.has(u1) {
		t.Fatal("Sys().Revoke left the user")
	}
	var users []string
	for range 2 {
		s, err := vc.Logical().Read("dyn/creds/app")
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, s.Data["username"].(string))
	}
	if err := vc.Sys().RevokePrefix("dyn/creds"); err != nil {
		t.Fatalf("Sys().RevokePrefix: %v", err)
	}
	if slices.ContainsFunc(users, e.target.has) {
		t.Fatal("RevokePrefix left users")
	}
	// A renewer, as Vault's clients keep dynamic credentials alive.
	s, err = vc.Logical().Read("dyn/creds/app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vc.Sys().Renew(s.LeaseID, 0); err != nil {
		t.Fatalf("renew with no increment: %v", err)
	}
	if err := vc.Sys().RevokeForce("dyn/"); err != nil {
		t.Fatalf("Sys().RevokeForce: %v", err)
	}
}
