package http_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core"
	"github.com/secrethub/secrethub/core/audit"
	corehttp "github.com/secrethub/secrethub/core/http"
	"github.com/secrethub/secrethub/core/storage/inmem"
	"github.com/secrethub/secrethub/core/wire"
)

// testClock is a settable clock shared by the core and the test.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// unsealedServer is a core over inmem storage with a memory audit sink,
// initialized and unsealed, served over HTTP.
type unsealedServer struct {
	*fixture
	root  string
	audit *audit.Memory
	clock *testClock
	keys  []string
}

func newUnsealedServer(t *testing.T) *unsealedServer {
	t.Helper()
	return newUnsealedServerAt(t, time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)) // a Wednesday, noon UTC
}

// newUnsealedServerAt is newUnsealedServer with its clock starting at
// start.
func newUnsealedServerAt(t *testing.T, start time.Time) *unsealedServer {
	t.Helper()
	mem := audit.NewMemory()
	clk := &testClock{t: start}
	c, err := core.New(core.Config{
		Backend: inmem.New(), Logger: slog.New(slog.DiscardHandler), Now: clk.now,
		AuditSinks: []core.AuditSink{{Name: "memory", Sink: mem}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(corehttp.New(c, corehttp.Options{Logger: slog.New(slog.DiscardHandler)}))
	t.Cleanup(srv.Close)
	f := &fixture{t: t, core: c, srv: srv}
	res := f.initAndUnseal()
	return &unsealedServer{fixture: f, root: res.RootToken, audit: mem, clock: clk, keys: res.Keys}
}

// initAndUnsealKeys returns the unseal key shares.
func (s *unsealedServer) initAndUnsealKeys() []string { return s.keys }

// must sends a request as token and fails the test unless the status is
// want; it returns the decoded envelope.
func (s *unsealedServer) must(want int, method, path, body, tok string) wire.Response {
	s.t.Helper()
	code, out := s.do(method, path, body, "X-SecretHub-Token", tok)
	if code != want {
		s.t.Fatalf("%s %s: %d %s, want %d", method, path, code, out, want)
	}
	var resp wire.Response
	if out != "" {
		_ = json.Unmarshal([]byte(out), &resp)
	}
	return resp
}

// createToken makes a token with policies and ttl as root.
func (s *unsealedServer) createToken(ttl string, policies ...string) string {
	s.t.Helper()
	body, _ := json.Marshal(map[string]any{"policies": policies, "ttl": ttl})
	resp := s.must(200, "POST", "/v1/auth/token/create", string(body), s.root)
	return resp.Auth.ClientToken
}

func (s *unsealedServer) records() []audit.Record {
	s.t.Helper()
	var out []audit.Record
	for r, err := range s.audit.Records(context.Background()) {
		if err != nil {
			s.t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestAuthorizationMatrix: every endpoint × every kind of bad credential
// is refused with 403, the refusal is audited, and the body says nothing
// more than "permission denied".
func TestAuthorizationMatrix(t *testing.T) {
	s := newUnsealedServer(t)
	s.must(204, "PUT", "/v1/sys/policies/acl/other", `{"policy":"rules:\n- path: other/*\n  capabilities: [read]\n"}`, s.root)
	// Every capability on everything, but only from 10.0.0.0/8: the test
	// client is 127.0.0.1, so the condition fails.
	s.must(204, "PUT", "/v1/sys/policies/acl/remote-only", `{"policy":"{\"rules\":[{\"path\":\"**\",\"capabilities\":[\"create\",\"read\",\"update\",\"delete\",\"list\",\"sudo\"],\"conditions\":{\"source_ip\":[\"10.0.0.0/8\"]}}]}"}`, s.root)
	s.must(200, "PUT", "/v1/secrets/app/db", `{"password":"hunter2"}`, s.root)
	s.must(204, "PUT", "/v1/auth/approle/role/web", `{"token_policies":["other"]}`, s.root)

	insufficient := s.createToken("1h", "other")
	conditional := s.createToken("1h", "remote-only")
	expired := s.createToken("1m", "remote-only")
	revoked := s.createToken("1h", "remote-only")
	s.must(204, "POST", "/v1/auth/token/revoke", `{"token":"`+revoked+`"}`, s.root)
	s.clock.advance(2 * time.Minute)

	credentials := map[string]string{
		"no token":            "",
		"malformed":           "not a token at all",
		"unknown":             "shs.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"expired":             expired,
		"revoked":             revoked,
		"insufficient policy": insufficient,
		"failing condition":   conditional,
	}
	endpoints := []struct{ method, path, body string }{
		{"GET", "/v1/secrets/app/db", ""},
		{"PUT", "/v1/secrets/app/db", `{"password":"x"}`},
		{"DELETE", "/v1/secrets/app/db", ""},
		{"LIST", "/v1/secrets/app", ""},
		{"GET", "/v1/secrets/app/db?history=true", ""},
		{"PUT", "/v1/sys/policies/acl/evil", `{"policy":"rules: []"}`},
		{"GET", "/v1/sys/policies/acl/other", ""},
		{"DELETE", "/v1/sys/policies/acl/other", ""},
		{"LIST", "/v1/sys/policies/acl", ""},
		{"GET", "/v1/sys/mounts", ""},
		{"POST", "/v1/sys/mounts/kv2", `{"type":"kv"}`},
		{"DELETE", "/v1/sys/mounts/secrets", ""},
		{"PUT", "/v1/sys/rotate", ""},
		{"GET", "/v1/sys/key-status", ""},
		{"PUT", "/v1/sys/seal", ""},
		{"POST", "/v1/sys/audit-hash", `{"input":"x"}`},
		{"GET", "/v1/sys/audit/verify", ""},
		{"GET", "/v1/sys/audit/export", ""},
		{"POST", "/v1/sys/policies/explain", `{"token":"` + s.root + `","path":"secrets/x"}`},
		{"POST", "/v1/sys/capabilities", `{"token":"` + s.root + `","path":"secrets/x"}`},
		{"POST", "/v1/auth/token/create", `{"policies":["root"]}`},
		{"POST", "/v1/auth/token/create-orphan", `{}`},
		{"LIST", "/v1/auth/token/accessors", ""},
		{"POST", "/v1/auth/token/revoke-orphan", `{"token":"` + s.root + `"}`},
		{"POST", "/v1/auth/token/lookup", `{"token":"` + s.root + `"}`},
		{"PUT", "/v1/auth/approle/role/web", `{"token_policies":["root"]}`},
		{"GET", "/v1/auth/approle/role/web/role-id", ""},
		{"PUT", "/v1/auth/approle/role/web/secret-id", `{}`},
		{"LIST", "/v1/auth/approle/role", ""},
	}
	selfEndpoints := []struct{ method, path, body string }{
		{"GET", "/v1/auth/token/lookup-self", ""},
		{"POST", "/v1/auth/token/renew-self", `{}`},
		{"POST", "/v1/sys/capabilities-self", `{"path":"secrets/x"}`},
		{"POST", "/v1/sys/policies/explain-self", `{"path":"secrets/x"}`},
	}
	for credName, tok := range credentials {
		eps := endpoints
		if credName != "insufficient policy" && credName != "failing condition" {
			// The default policy grants these to any live token.
			eps = append(eps, selfEndpoints...)
		}
		for _, ep := range eps {
			t.Run(fmt.Sprintf("%s/%s %s", credName, ep.method, ep.path), func(t *testing.T) {
				before := len(s.records())
				code, body := s.do(ep.method, ep.path, ep.body, "X-SecretHub-Token", tok)
				if code != 403 {
					t.Fatalf("status %d, body %s; want 403", code, body)
				}
				if strings.TrimSpace(body) != `{"errors":["permission denied"]}` {
					t.Fatalf("body %s says more than permission denied", body)
				}
				recs := s.records()
				if len(recs) != before+1 {
					t.Fatalf("%d audit records written, want 1", len(recs)-before)
				}
				ev := recs[len(recs)-1].Event
				if ev.Result != audit.ResultDenied || ev.StatusCode != 403 || !strings.Contains(ep.path, ev.Path) {
					t.Fatalf("audit event %+v", ev)
				}
				if tok != "" && strings.Contains(string(recs[len(recs)-1].Canonical), tok) {
					t.Fatal("audit record holds the token")
				}
			})
		}
	}
	// The core is still unsealed and the secret untouched.
	resp := s.must(200, "GET", "/v1/secrets/app/db", "", s.root)
	if resp.Data["password"] != "hunter2" {
		t.Fatalf("secret changed: %v", resp.Data)
	}
}

// TestConditionsThroughTheCore checks policy conditions end to end, with
// the core's injected clock and the real client address (127.0.0.1).
func TestConditionsThroughTheCore(t *testing.T) {
	s := newUnsealedServer(t)
	doc := `rules:
- path: secrets/office/*
  capabilities: [read]
  conditions:
    time_of_day: {start: "09:00", end: "17:00", time_zone: Europe/Paris}
    days_of_week: [wed]
    source_ip: [127.0.0.0/8]
- path: secrets/remote/*
  capabilities: [read]
  conditions:
    source_ip: [10.0.0.0/8]
`
	body, _ := json.Marshal(map[string]string{"policy": doc})
	s.must(204, "PUT", "/v1/sys/policies/acl/office", string(body), s.root)
	s.must(200, "PUT", "/v1/secrets/office/door", `{"code":"1234"}`, s.root)
	s.must(200, "PUT", "/v1/secrets/remote/vpn", `{"key":"k"}`, s.root)
	tok := s.createToken("400h", "office")

	// Wednesday 12:00 UTC is 13:00 in Paris: inside the window.
	if resp := s.must(200, "GET", "/v1/secrets/office/door", "", tok); resp.Data["code"] != "1234" {
		t.Fatalf("read in office hours: %v", resp.Data)
	}
	s.must(403, "GET", "/v1/secrets/remote/vpn", "", tok) // 127.0.0.1 is not in 10.0.0.0/8

	explain := func(path string) map[string]any {
		t.Helper()
		return s.must(200, "POST", "/v1/sys/policies/explain-self", `{"path":"`+path+`","capability":"read"}`, tok).Data
	}
	if d := explain("secrets/remote/vpn"); d["allowed"] != false || !strings.Contains(fmt.Sprint(d["trace"]), "source_ip") {
		t.Fatalf("explain remote: %v", d)
	}

	s.clock.advance(5 * time.Hour) // 18:00 in Paris
	s.must(403, "GET", "/v1/secrets/office/door", "", tok)
	if d := explain("secrets/office/door"); d["allowed"] != false || !strings.Contains(fmt.Sprint(d["trace"]), "time_of_day") {
		t.Fatalf("explain after hours: %v", d)
	}
	s.clock.advance(19 * time.Hour) // Thursday 13:00 in Paris
	s.must(403, "GET", "/v1/secrets/office/door", "", tok)
	if d := explain("secrets/office/door"); !strings.Contains(fmt.Sprint(d["trace"]), "days_of_week") {
		t.Fatalf("explain on Thursday: %v", d)
	}
	s.clock.advance(6 * 24 * time.Hour) // the next Wednesday, 13:00 in Paris
	s.must(200, "GET", "/v1/secrets/office/door", "", tok)

	// capabilities-self agrees.
	caps := s.must(200, "POST", "/v1/sys/capabilities-self", `{"paths":["secrets/office/door","secrets/remote/vpn"]}`, tok).Data
	if fmt.Sprint(caps["secrets/office/door"]) != "[read]" || fmt.Sprint(caps["secrets/remote/vpn"]) != "[deny]" {
		t.Fatalf("capabilities-self: %v", caps)
	}
}

// TestBadInputThroughTheCore: bad paths, bodies and policies are 400s
// naming the problem, change nothing, and are audited.
func TestBadInputThroughTheCore(t *testing.T) {
	s := newUnsealedServer(t)
	cases := []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"PUT", "/v1/secrets/a/../b", `{"x":"y"}`, 400, `is not allowed`},
		{"PUT", "/v1/secrets/a//b", `{"x":"y"}`, 400, "empty segment"},
		{"PUT", "/v1/secrets/a%0Ab", `{"x":"y"}`, 400, "control character"},
		{"PUT", "/v1/secrets/app", `["not","an","object"]`, 400, "JSON object"},
		{"PUT", "/v1/secrets/app", `"string"`, 400, "JSON object"},
		{"GET", "/v1/nomount/x", "", 404, "no mount"},
		{"PUT", "/v1/sys/policies/acl/bad", `{"policy":"rules:\n- path: a/*\n  capabilities: [raed]\n"}`, 400, `rules[0].capabilities[0]`},
		{"PUT", "/v1/sys/policies/acl/bad", `{"policy":"rules:\n- path: a/**x\n  capabilities: [read]\n"}`, 400, `rules[0].path`},
		{"PUT", "/v1/sys/policies/acl/bad", `{"policy":"rules:\n- path: a/*\n  capabilities: [read]\n  conditions: {source_ip: [10.0.0/33]}\n"}`, 400, `source_ip[0]`},
		{"PUT", "/v1/sys/policies/acl/bad", `{"policy":"rules:\n- path: a/*\n  capabilities: [read]\n  conditions: {time_of_day: {start: '25:00', end: '26:00'}}\n"}`, 400, `time_of_day`},
		{"PUT", "/v1/sys/policies/acl/root", `{"policy":"rules: []"}`, 400, "root"},
		{"PATCH", "/v1/secrets/app", `{"x":"y"}`, 405, "PATCH"},
	}
	for _, tc := range cases {
		before := len(s.records())
		code, body := s.do(tc.method, tc.path, tc.body, "X-SecretHub-Token", s.root)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s: %d %s; want %d mentioning %q", tc.method, tc.path, code, body, tc.code, tc.want)
			continue
		}
		recs := s.records()[before:]
		// One event; two when the request got as far as running (a
		// "started" event, then the outcome).
		if n := len(recs); n == 0 || n > 2 || recs[n-1].Event.Result != audit.ResultInvalid ||
			(n == 2 && (recs[0].Event.Result != audit.ResultStarted || recs[0].Event.RequestID != recs[1].Event.RequestID)) {
			t.Errorf("%s %s: not audited as invalid (%d new records)", tc.method, tc.path, len(recs))
		}
	}
	// Nothing was written.
	s.must(404, "GET", "/v1/secrets/app", "", s.root)
	s.must(404, "GET", "/v1/sys/policies/acl/bad", "", s.root)
}

// TestAuditFailureRefusesChanges: when the audit log cannot be written, a
// write is refused before it runs and changes nothing; a read is refused
// too; once the log is back, everything works and the chain is whole.
func TestAuditFailureRefusesChanges(t *testing.T) {
	s := newUnsealedServer(t)
	s.must(200, "PUT", "/v1/secrets/app/db", `{"password":"v1"}`, s.root)
	s.audit.SetFault(errors.New("disk full"))
	for _, r := range []struct{ method, path, body string }{
		{"PUT", "/v1/secrets/app/db", `{"password":"v2"}`},
		{"PUT", "/v1/secrets/app/new", `{"password":"x"}`},
		{"POST", "/v1/auth/token/create", `{}`},
		{"GET", "/v1/secrets/app/db", ""},
	} {
		code, body := s.do(r.method, r.path, r.body, "X-SecretHub-Token", s.root)
		if code != 500 || !strings.Contains(body, "audit log unavailable") || strings.Contains(body, "v1") {
			t.Fatalf("%s %s with the audit log down: %d %s", r.method, r.path, code, body)
		}
	}
	s.audit.SetFault(nil)
	if resp := s.must(200, "GET", "/v1/secrets/app/db", "", s.root); resp.Data["password"] != "v1" {
		t.Fatalf("a refused write took effect: %v", resp.Data)
	}
	s.must(404, "GET", "/v1/secrets/app/new", "", s.root)
	accessors := s.must(200, "LIST", "/v1/auth/token/accessors", "", s.root)
	if keys := accessors.Data["keys"].([]any); len(keys) != 1 {
		t.Fatalf("a refused token create left a token: %v", keys)
	}
	rep, err := audit.Verify(context.Background(), s.audit, nil)
	if err != nil || !rep.OK {
		t.Fatalf("chain after the outage: %+v, %v", rep, err)
	}
}

// TestPrivilegeBoundaries covers ways to gain more than a policy grants.
func TestPrivilegeBoundaries(t *testing.T) {
	s := newUnsealedServer(t)
	// An operator who may manage AppRole roles and mounts, without sudo.
	s.must(204, "PUT", "/v1/sys/policies/acl/ops", `{"policy":"rules:\n- path: auth/approle/**\n  capabilities: [create, read, update, list]\n- path: sys/mounts/**\n  capabilities: [create, update, read, delete]\n- path: sys/auth/**\n  capabilities: [create, update, read, delete]\n- path: auth/token/create\n  capabilities: [create, update]\n"}`, s.root)
	ops := s.createToken("1h", "ops")

	// A role naming ROOT does not mint a root token.
	s.must(204, "PUT", "/v1/auth/approle/role/escalate", `{"token_policies":["ROOT"]}`, ops)
	rid := s.must(200, "GET", "/v1/auth/approle/role/escalate/role-id", "", ops).Data["role_id"].(string)
	sid := s.must(200, "PUT", "/v1/auth/approle/role/escalate/secret-id", `{}`, ops).Data["secret_id"].(string)
	code, body := s.do("POST", "/v1/auth/approle/login", `{"role_id":"`+rid+`","secret_id":"`+sid+`"}`)
	if code == 200 {
		var resp wire.Response
		_ = json.Unmarshal([]byte(body), &resp)
		s.must(403, "PUT", "/v1/sys/rotate", "", resp.Auth.ClientToken)
		s.must(403, "GET", "/v1/secrets/app", "", resp.Auth.ClientToken)
	}

	// Enabling or disabling auth methods needs sudo.
	s.must(403, "POST", "/v1/sys/auth/approle2", `{"type":"approle"}`, ops)
	s.must(403, "DELETE", "/v1/sys/auth/approle", "", ops)
	s.must(204, "POST", "/v1/sys/auth/approle2", `{"type":"approle"}`, s.root)

	// A secrets engine cannot be mounted where logins are anonymous.
	code, body = s.do("POST", "/v1/sys/mounts/auth/kvx", `{"type":"kv"}`, "X-SecretHub-Token", s.root)
	if code != 400 {
		t.Fatalf("kv mounted under auth/: %d %s", code, body)
	}
	s.must(403, "PUT", "/v1/auth/kvx/login", `{"x":"y"}`, "")

	// A child token carries only its parent's policies.
	s.must(403, "POST", "/v1/auth/token/create", `{"policies":["root"]}`, ops)
	s.must(403, "POST", "/v1/auth/token/create", `{"policies":["other"]}`, ops)
	child := s.must(200, "POST", "/v1/auth/token/create", `{"policies":["ops"]}`, ops).Auth
	if child == nil || child.LeaseDuration > 3600 {
		t.Fatalf("child token outlives its parent: %+v", child)
	}
	// Revoking the parent revokes the child.
	s.must(204, "POST", "/v1/auth/token/revoke-self", `{}`, ops)
	s.must(403, "GET", "/v1/auth/token/lookup-self", "", child.ClientToken)

	// no_default_policy takes the default policy away.
	bare := s.must(200, "POST", "/v1/auth/token/create", `{"policies":["ops"],"no_default_policy":true}`, s.root).Auth
	s.must(403, "GET", "/v1/auth/token/lookup-self", "", bare.ClientToken)

	// A root-chosen id that exists is refused, not overwritten.
	code, _ = s.do("POST", "/v1/auth/token/create", `{"id":"`+s.root+`"}`, "X-SecretHub-Token", s.root)
	if code != 400 {
		t.Fatalf("token create over an existing id: %d", code)
	}
	s.must(200, "GET", "/v1/auth/token/lookup-self", "", s.root)
}

// TestSealWaitsForRequestsInFlight: writes racing a seal either fail or
// are audited; none takes effect without its event.
func TestSealWaitsForRequestsInFlight(t *testing.T) {
	s := newUnsealedServer(t)
	keys := s.initAndUnsealKeys()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				code, _ := s.do("PUT", fmt.Sprintf("/v1/secrets/race/w%d", w), fmt.Sprintf(`{"n":"%d"}`, i), "X-SecretHub-Token", s.root)
				if code == 503 {
					return
				}
			}
		}()
	}
	s.must(204, "PUT", "/v1/sys/seal", "", s.root)
	wg.Wait()
	for _, k := range keys {
		s.do("PUT", "/v1/sys/unseal", `{"key":"`+k+`"}`)
	}
	okEvents := map[string]int{}
	for _, r := range s.records() {
		if r.Event.Result == audit.ResultOK && r.Event.Operation != "read" {
			okEvents[r.Event.Path]++
		}
	}
	for w := range 8 {
		path := fmt.Sprintf("secrets/race/w%d", w)
		code, body := s.do("GET", "/v1/"+path+"?history=true", "", "X-SecretHub-Token", s.root)
		if code == 404 {
			continue
		}
		var resp wire.Response
		_ = json.Unmarshal([]byte(body), &resp)
		current := int64(resp.Data["current_version"].(float64))
		if int64(okEvents[path]) < current {
			t.Fatalf("%s is at version %d but has %d audited writes", path, current, okEvents[path])
		}
	}
}
