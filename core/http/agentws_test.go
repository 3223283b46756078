package http_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	corehttp "github.com/secrethub/secrethub/core/http"
	"github.com/secrethub/secrethub/core/wire"
)

// agentEnv is an unsealed core with a REST listener and an mTLS agent
// listener, and a policy "app" that reads secrets/app/*, secrets/zz/* and
// kv2/data/*.
type agentEnv struct {
	*unsealedServer
	agentSrv *httptest.Server
	caPool   *x509.CertPool
}

func newAgentEnv(t *testing.T) *agentEnv {
	t.Helper()
	// TLS checks certificates against the real time: start the core's
	// clock there.
	s := newUnsealedServerAt(t, time.Now())
	agentSrv := httptest.NewUnstartedServer(corehttp.New(s.core, corehttp.Options{Logger: slog.New(slog.DiscardHandler)}))
	agentSrv.TLS = s.core.AgentTLSConfig()
	agentSrv.StartTLS()
	t.Cleanup(agentSrv.Close)
	s.must(204, "PUT", "/v1/sys/policies/acl/app", `{"policy":"rules:\n- path: secrets/app/*\n  capabilities: [read]\n- path: secrets/zz/*\n  capabilities: [read]\n- path: kv2/data/*\n  capabilities: [read]\n"}`, s.root)
	s.must(204, "PUT", "/v1/sys/mounts/kv2", `{"type":"kv","options":{"version":"2"}}`, s.root)
	return &agentEnv{unsealedServer: s, agentSrv: agentSrv}
}

// agentCert makes a token with ttl and policy app (and explicit max TTL
// maxTTL when set) and gets an agent certificate for it.
func (e *agentEnv) agentCert(ttl, maxTTL string) (tls.Certificate, string) {
	e.t.Helper()
	body := map[string]any{"policies": []string{"app"}, "ttl": ttl}
	if maxTTL != "" {
		body["explicit_max_ttl"] = maxTTL
	}
	raw, _ := json.Marshal(body)
	tok := e.must(200, "POST", "/v1/auth/token/create", string(raw), e.root).Auth.ClientToken
	key, csr := newCSR(e.t)
	raw, _ = json.Marshal(map[string]string{"csr": csr, "name": "web-1"})
	resp := e.must(200, "PUT", "/v1/sys/agent/certificate", string(raw), tok)
	if e.caPool == nil {
		e.caPool = x509.NewCertPool()
		if !e.caPool.AppendCertsFromPEM([]byte(resp.Data["issuing_ca"].(string))) {
			e.t.Fatal("bad CA PEM")
		}
	}
	block, _ := pem.Decode([]byte(resp.Data["certificate"].(string)))
	return tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: key}, tok
}

// dial opens the agent WebSocket with cert (none when nil) offering
// protocols.
func (e *agentEnv) dial(cert *tls.Certificate, protocols ...string) (*websocket.Conn, *http.Response, error) {
	cfg := &tls.Config{RootCAs: e.caPool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	d := websocket.Dialer{TLSClientConfig: cfg, Subprotocols: protocols, HandshakeTimeout: 10 * time.Second}
	return d.Dial("wss://"+strings.TrimPrefix(e.agentSrv.URL, "https://")+wire.AgentConnectPath, nil)
}

// testAgent is a connected agent whose messages arrive on msgs.
type testAgent struct {
	t     *testing.T
	ws    *websocket.Conn
	msgs  chan wire.AgentMessage
	pongs chan struct{}
	// closed receives the error that ended the reading.
	closed chan error
	seq    int
}

// connect dials with cert and says hello; it returns the agent and the
// welcome.
func (e *agentEnv) connect(cert tls.Certificate, heartbeat int) (*testAgent, wire.AgentMessage) {
	e.t.Helper()
	ws, resp, err := e.dial(&cert, wire.AgentSubprotocol)
	if err != nil {
		e.t.Fatalf("dial: %v (%v)", err, resp)
	}
	if ws.Subprotocol() != wire.AgentSubprotocol {
		e.t.Fatalf("subprotocol %q", ws.Subprotocol())
	}
	a := &testAgent{t: e.t, ws: ws, msgs: make(chan wire.AgentMessage, 64), pongs: make(chan struct{}, 4), closed: make(chan error, 1)}
	ws.SetPongHandler(func(string) error { a.pongs <- struct{}{}; return nil })
	go func() {
		for {
			var m wire.AgentMessage
			if err := ws.ReadJSON(&m); err != nil {
				a.closed <- err
				close(a.msgs)
				return
			}
			a.msgs <- m
		}
	}()
	e.t.Cleanup(func() { ws.Close() })
	a.sendMsg(wire.AgentMessage{Type: wire.AgentHello, ID: "h", Name: "web-1", Version: "0.1.0", HeartbeatSeconds: heartbeat})
	w := a.next()
	if w.Type != wire.AgentWelcome || w.ID != "h" {
		e.t.Fatalf("answer to hello: %+v", w)
	}
	return a, w
}

func (a *testAgent) sendMsg(m wire.AgentMessage) {
	a.t.Helper()
	if err := a.ws.WriteJSON(m); err != nil {
		a.t.Fatalf("send %s: %v", m.Type, err)
	}
}

// next returns the next message, failing after 10 seconds.
func (a *testAgent) next() wire.AgentMessage {
	a.t.Helper()
	select {
	case m, ok := <-a.msgs:
		if !ok {
			a.t.Fatalf("connection ended: %v", <-a.closed)
		}
		return m
	case <-time.After(10 * time.Second):
		a.t.Fatal("no message within 10s")
	}
	return wire.AgentMessage{}
}

// request sends m with a fresh ID and returns its answer, and the pushes
// that arrived before it.
func (a *testAgent) request(m wire.AgentMessage) (answer wire.AgentMessage, pushed []wire.AgentMessage) {
	a.t.Helper()
	a.seq++
	m.ID = "r" + strconv.Itoa(a.seq)
	a.sendMsg(m)
	for {
		got := a.next()
		if got.Type == wire.AgentChanged {
			pushed = append(pushed, got)
			continue
		}
		if got.ID != m.ID {
			a.t.Fatalf("answer for %q, want %q: %+v", got.ID, m.ID, got)
		}
		return got, pushed
	}
}

// nextChanged returns the next changed push, failing on anything else.
func (a *testAgent) nextChanged() wire.AgentMessage {
	a.t.Helper()
	m := a.next()
	if m.Type != wire.AgentChanged {
		a.t.Fatalf("got %+v, want a changed push", m)
	}
	return m
}

// expectClosed waits for the core's closing error and close frame.
func (a *testAgent) expectClosed(wantCode, wantClose int) {
	a.t.Helper()
	for {
		m, ok := <-a.msgs
		if !ok {
			break
		}
		if m.Type == wire.AgentError && m.ID == "" {
			if m.Code != wantCode {
				a.t.Fatalf("closing error %+v, want code %d", m, wantCode)
			}
		}
	}
	err := <-a.closed
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != wantClose {
		a.t.Fatalf("connection ended with %v, want close code %d", err, wantClose)
	}
}

func TestAgentReadWatchAndPush(t *testing.T) {
	e := newAgentEnv(t)
	e.must(200, "PUT", "/v1/secrets/app/db", `{"password":"hunter2"}`, e.root)
	cert, _ := e.agentCert("1h", "")
	a, welcome := e.connect(cert, 0)
	if welcome.AgentID == "" || !strings.HasPrefix(welcome.Identity, "spiffe://secrethub/agent/") || welcome.TokenTTLSeconds != 3600 || !welcome.TokenRenewable {
		t.Fatalf("welcome %+v", welcome)
	}
	b, _ := e.connect(cert, 0)

	// A read answers what REST answers.
	got, _ := a.request(wire.AgentMessage{Type: wire.AgentRead, Path: "secrets/app/db"})
	rest := e.must(200, "GET", "/v1/secrets/app/db", "", e.root)
	if got.Type != wire.AgentSecret || got.Path != "secrets/app/db" || got.Response == nil ||
		!reflect.DeepEqual(got.Response.Data, rest.Data) || got.Response.RequestID == "" {
		t.Fatalf("read: %+v, REST data %v", got, rest.Data)
	}
	// b watches another path only.
	if got, _ := b.request(wire.AgentMessage{Type: wire.AgentRead, Path: "secrets/zz/b"}); got.Type != wire.AgentError || got.Code != 404 {
		t.Fatalf("read of a missing path: %+v", got)
	}

	// A denied read is a 403 and is not watched.
	if got, _ := a.request(wire.AgentMessage{Type: wire.AgentRead, Path: "secrets/forbidden/x"}); got.Type != wire.AgentError || got.Code != 403 || got.Error != "permission denied" {
		t.Fatalf("denied read: %+v", got)
	}
	// A path no mount serves is a 404, as over REST, but not watched:
	// the token may not read it.
	if got, _ := a.request(wire.AgentMessage{Type: wire.AgentRead, Path: "nomount/x"}); got.Code != 404 {
		t.Fatalf("read outside mounts: %+v", got)
	}

	// A REST write pushes changed to the watcher only. Pushes of one
	// connection come in path order, so a push b should not get would
	// arrive before the one it should.
	e.must(200, "PUT", "/v1/secrets/app/db", `{"password":"rotated"}`, e.root)
	e.must(200, "PUT", "/v1/secrets/forbidden/x", `{"v":"1"}`, e.root)
	if m := a.nextChanged(); m.Path != "secrets/app/db" || m.Operation != "write" || m.NewVersion != 2 {
		t.Fatalf("push: %+v", m)
	}
	e.must(200, "PUT", "/v1/secrets/zz/b", `{"v":"1"}`, e.root)
	if m := b.nextChanged(); m.Path != "secrets/zz/b" || m.Operation != "write" || m.NewVersion != 1 {
		t.Fatalf("b's first push: %+v, want secrets/zz/b only", m)
	}
	// a read secrets/forbidden/x (denied): its write reached a only if
	// watched; the next push a gets must be for a path it watches.
	a.request(wire.AgentMessage{Type: wire.AgentRead, Path: "secrets/zz/s"})
	e.must(200, "PUT", "/v1/secrets/forbidden/x", `{"v":"2"}`, e.root)
	e.must(200, "PUT", "/v1/secrets/zz/s", `{"v":"1"}`, e.root)
	if m := a.nextChanged(); m.Path != "secrets/zz/s" {
		t.Fatalf("a got %+v after the denied read's path was written", m)
	}

	// A delete pushes a delete.
	e.must(204, "DELETE", "/v1/secrets/app/db", "", e.root)
	if m := a.nextChanged(); m.Path != "secrets/app/db" || m.Operation != "delete" {
		t.Fatalf("delete push: %+v", m)
	}
	// After unwatch, no more pushes for the path.
	if got, _ := a.request(wire.AgentMessage{Type: wire.AgentUnwatch, Path: "secrets/app/db"}); got.Type != wire.AgentOK {
		t.Fatalf("unwatch: %+v", got)
	}
	e.must(200, "PUT", "/v1/secrets/app/db", `{"password":"again"}`, e.root)
	e.must(200, "PUT", "/v1/secrets/zz/s", `{"v":"2"}`, e.root)
	if m := a.nextChanged(); m.Path != "secrets/zz/s" || m.NewVersion != 2 {
		t.Fatalf("after unwatch: %+v", m)
	}

	info := e.must(200, "GET", "/v1/sys/agents/"+welcome.AgentID, "", e.root)
	if !reflect.DeepEqual(info.Data["watched"], []any{"secrets/zz/s"}) {
		t.Fatalf("watched %v, want secrets/zz/s only", info.Data["watched"])
	}

	// Unknown types and a second hello are answered with errors.
	if got, _ := a.request(wire.AgentMessage{Type: "launch"}); got.Type != wire.AgentError || got.Code != 400 || !strings.Contains(got.Error, "launch") {
		t.Fatalf("unknown type: %+v", got)
	}
	if got, _ := a.request(wire.AgentMessage{Type: wire.AgentHello}); got.Type != wire.AgentError || got.Code != 400 {
		t.Fatalf("second hello: %+v", got)
	}
}

// TestAgentKVv2Pushes: writes, soft deletes and metadata deletes of a
// kv-v2 secret are pushed to agents reading its data/ path, which they
// may watch before it exists.
func TestAgentKVv2Pushes(t *testing.T) {
	e := newAgentEnv(t)
	cert, _ := e.agentCert("1h", "")
	a, _ := e.connect(cert, 0)
	if got, _ := a.request(wire.AgentMessage{Type: wire.AgentRead, Path: "kv2/data/app"}); got.Code != 404 {
		t.Fatalf("read before the secret exists: %+v", got)
	}
	steps := []struct {
		method, path, body string
		status             int
		wantOp             string
		wantVersion        int64
	}{
		{"PUT", "/v1/kv2/data/app", `{"data":{"k":"v1"}}`, 200, "write", 1},
		{"PUT", "/v1/kv2/data/app", `{"data":{"k":"v2"}}`, 200, "write", 2},
		{"PUT", "/v1/kv2/delete/app", `{"versions":[2]}`, 204, "delete", 0},
		{"PUT", "/v1/kv2/undelete/app", `{"versions":[2]}`, 204, "write", 0},
		{"PUT", "/v1/kv2/destroy/app", `{"versions":[1]}`, 204, "delete", 0},
		{"POST", "/v1/kv2/metadata/app", `{"max_versions":5}`, 204, "write", 0},
		{"DELETE", "/v1/kv2/metadata/app", "", 204, "delete", 0},
	}
	for _, s := range steps {
		e.must(s.status, s.method, s.path, s.body, e.root)
		m := a.nextChanged()
		if m.Path != "kv2/data/app" || m.Operation != s.wantOp || m.NewVersion != s.wantVersion {
			t.Fatalf("%s %s: push %+v, want %s v%d", s.method, s.path, m, s.wantOp, s.wantVersion)
		}
	}
	// A read after the change gets the value.
	e.must(200, "PUT", "/v1/kv2/data/app", `{"data":{"k":"v3"}}`, e.root)
	a.nextChanged()
	got, _ := a.request(wire.AgentMessage{Type: wire.AgentRead, Path: "kv2/data/app"})
	if got.Type != wire.AgentSecret || got.Response.Data["data"].(map[string]any)["k"] != "v3" {
		t.Fatalf("read after write: %+v", got)
	}
}

func TestAgentConnectRefusals(t *testing.T) {
	e := newAgentEnv(t)
	cert, tok := e.agentCert("1h", "")

	// No subprotocol: 400 before the upgrade.
	if _, resp, err := e.dial(&cert); err == nil || resp == nil || resp.StatusCode != 400 {
		t.Fatalf("no subprotocol: %v %v", err, resp)
	}
	if _, resp, err := e.dial(&cert, "secrethub.agent.v0"); err == nil || resp == nil || resp.StatusCode != 400 {
		t.Fatalf("wrong subprotocol: %v %v", err, resp)
	}
	// No client certificate: the TLS handshake fails.
	if _, _, err := e.dial(nil, wire.AgentSubprotocol); err == nil {
		t.Fatal("connected without a client certificate")
	}
	// The plain listener does not serve agents.
	if code, body := e.do("GET", wire.AgentConnectPath, "", "Connection", "Upgrade", "Upgrade", "websocket",
		"Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol", wire.AgentSubprotocol); code != 403 {
		t.Fatalf("agent connect on the plain listener: %d %s", code, body)
	}

	// A first message other than hello closes the connection.
	ws, _, err := e.dial(&cert, wire.AgentSubprotocol)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteJSON(wire.AgentMessage{Type: wire.AgentRead, ID: "1", Path: "secrets/app/db"}); err != nil {
		t.Fatal(err)
	}
	var m wire.AgentMessage
	if err := ws.ReadJSON(&m); err != nil || m.Type != wire.AgentError || m.Code != 400 {
		t.Fatalf("read before hello: %+v %v", m, err)
	}
	if err := ws.ReadJSON(&m); !websocket.IsCloseError(err, websocket.CloseProtocolError) {
		t.Fatalf("after read before hello: %v, want close 1002", err)
	}
	ws.Close()

	// A malformed message after the hello closes the connection too.
	a, _ := e.connect(cert, 0)
	if err := a.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":`)); err != nil {
		t.Fatal(err)
	}
	a.expectClosed(400, websocket.CloseProtocolError)

	// Revoking the token closes its connections and refuses new ones.
	b, _ := e.connect(cert, 0)
	e.must(204, "POST", "/v1/auth/token/revoke", `{"token":"`+tok+`"}`, e.root)
	b.expectClosed(403, websocket.CloseGoingAway)
	if _, resp, err := e.dial(&cert, wire.AgentSubprotocol); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("revoked token: %v %v", err, resp)
	}
}

func TestAgentRegistryAndHeartbeat(t *testing.T) {
	e := newAgentEnv(t)
	cert, _ := e.agentCert("1h", "")
	a, welcome := e.connect(cert, 5)
	a.request(wire.AgentMessage{Type: wire.AgentRead, Path: "secrets/zz/one"})
	a.request(wire.AgentMessage{Type: wire.AgentRead, Path: "secrets/app/two"})

	for _, method := range []string{"LIST", "GET"} {
		list := e.must(200, method, "/v1/sys/agents", "", e.root)
		agentsList, _ := list.Data["agents"].([]any)
		if keys, _ := list.Data["keys"].([]any); len(keys) != 1 || keys[0] != welcome.AgentID || len(agentsList) != 1 {
			t.Fatalf("%s sys/agents: %+v", method, list.Data)
		}
		got := agentsList[0].(map[string]any)
		if got["name"] != "web-1" || got["version"] != "0.1.0" || got["identity"] != welcome.Identity ||
			!strings.HasPrefix(got["address"].(string), "127.0.0.1:") ||
			!reflect.DeepEqual(got["watched"], []any{"secrets/app/two", "secrets/zz/one"}) {
			t.Fatalf("agent %+v", got)
		}
	}
	one := e.must(200, "GET", "/v1/sys/agents/"+welcome.AgentID, "", e.root)
	before := one.Data["last_heartbeat"].(string)

	// A ping moves the last heartbeat (the core's clock is the test's).
	e.clock.advance(time.Minute)
	if err := a.ws.WriteControl(websocket.PingMessage, []byte("hb"), time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.pongs:
	case <-time.After(10 * time.Second):
		t.Fatal("no pong")
	}
	after := e.must(200, "GET", "/v1/sys/agents/"+welcome.AgentID, "", e.root).Data["last_heartbeat"].(string)
	tb, _ := time.Parse(time.RFC3339, before)
	ta, _ := time.Parse(time.RFC3339, after)
	if ta.Sub(tb) < time.Minute {
		t.Fatalf("last heartbeat %s -> %s, want a minute later", before, after)
	}

	// The default policy does not show agents; unknown IDs are 404.
	plain := e.createToken("1h", "app")
	e.must(403, "GET", "/v1/sys/agents", "", plain)
	e.must(403, "LIST", "/v1/sys/agents", "", plain)
	e.must(403, "GET", "/v1/sys/agents/"+welcome.AgentID, "", plain)
	e.must(404, "GET", "/v1/sys/agents/nope", "", e.root)

	// A closed connection leaves the registry.
	a.ws.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		list := e.must(200, "LIST", "/v1/sys/agents", "", e.root)
		if keys, _ := list.Data["keys"].([]any); len(keys) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("closed connection still listed")
		}
		time.Sleep(10 * time.Millisecond) // polling, with a deadline
	}
}

func TestAgentSealClosesConnections(t *testing.T) {
	e := newAgentEnv(t)
	cert, _ := e.agentCert("1h", "")
	a, _ := e.connect(cert, 0)
	e.must(204, "PUT", "/v1/sys/seal", "", e.root)
	a.expectClosed(503, websocket.CloseGoingAway)
}

// TestAgentRenewToken: renew_token extends the token's TTL up to its
// maximum, and is audited.
func TestAgentRenewToken(t *testing.T) {
	e := newAgentEnv(t)
	cert, _ := e.agentCert("1h", "3h")
	a, welcome := e.connect(cert, 0)
	if welcome.TokenTTLSeconds != 3600 {
		t.Fatalf("welcome TTL %d", welcome.TokenTTLSeconds)
	}
	e.clock.advance(30 * time.Minute)
	got, _ := a.request(wire.AgentMessage{Type: wire.AgentRenewToken, Increment: 7200})
	if got.Type != wire.AgentToken || got.TokenTTLSeconds != 7200 || !got.TokenRenewable {
		t.Fatalf("renew: %+v", got)
	}
	// Past the maximum: capped at 3h from creation.
	got, _ = a.request(wire.AgentMessage{Type: wire.AgentRenewToken, Increment: 10 * 3600})
	if got.Type != wire.AgentToken || got.TokenTTLSeconds != 9000 {
		t.Fatalf("capped renew: %+v, want 9000s", got)
	}
	if got, _ := a.request(wire.AgentMessage{Type: wire.AgentRenewToken, Increment: -1}); got.Code != 400 {
		t.Fatalf("negative increment: %+v", got)
	}
	accessor := strings.TrimPrefix(welcome.Identity, "spiffe://secrethub/agent/")
	renewals := 0
	for _, r := range e.records() {
		if r.Event.Path == "auth/token/renew-self" && r.Event.TokenAccessor == accessor && r.Event.Result == "ok" {
			renewals++
		}
	}
	if renewals != 2 {
		t.Fatalf("%d audited renewals, want 2", renewals)
	}
	// Reads are audited with the agent's token too.
	a.request(wire.AgentMessage{Type: wire.AgentRead, Path: "secrets/app/x"})
	found := false
	for _, r := range e.records() {
		found = found || (r.Event.Path == "secrets/app/x" && r.Event.TokenAccessor == accessor && r.Event.Operation == "read")
	}
	if !found {
		t.Fatal("agent read not audited")
	}
}
