package conn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/secrethub/secrethub/core/client"
	"github.com/secrethub/secrethub/core/wire"
	"github.com/secrethub/secrethub/internal/syncbuf"
)

// The peer in these tests is a small in-test core speaking the agent
// protocol (docs/agent-protocol.md) over mTLS; the real core's side is
// exercised by the core/http tests and the agent's integration tests.

// secretValue is the value the fake core serves; it must never reach a log.
const secretValue = "s3cret-value"

// clientCert is a self-signed agent certificate; the fake core requires a
// client certificate, as the core's agent listener does.
var clientCert = sync.OnceValue(func() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "agent"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
})

// fakeCore is an agent listener: mTLS, the subprotocol, hello → welcome,
// answers to read/unwatch/renew_token, and pushes.
type fakeCore struct {
	t   *testing.T
	srv *httptest.Server

	refuse atomic.Int32 // when set, upgrades are refused with this status
	silent atomic.Bool  // when set, the core stops reading after welcome (no pongs, no answers)
	pings  atomic.Int32 // pings received

	mu     sync.Mutex
	hellos []wire.AgentMessage
	conns  map[*fakeConn]bool
	quit   chan struct{}
}

type fakeConn struct {
	ws  *websocket.Conn
	wmu sync.Mutex
}

func (fc *fakeConn) send(m *wire.AgentMessage) error {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	return fc.ws.WriteJSON(m)
}

func newFakeCore(t *testing.T) *fakeCore {
	t.Helper()
	f := &fakeCore{t: t, conns: map[*fakeConn]bool{}, quit: make(chan struct{})}
	f.srv = httptest.NewUnstartedServer(f)
	f.srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	f.srv.StartTLS()
	t.Cleanup(f.stop)
	return f
}

// stop closes the server and every connection and waits for nothing more.
func (f *fakeCore) stop() {
	f.mu.Lock()
	select {
	case <-f.quit:
	default:
		close(f.quit)
	}
	f.mu.Unlock()
	f.drop()
	f.srv.Close()
}

// drop closes every open WebSocket (the server stays up).
func (f *fakeCore) drop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for fc := range f.conns {
		_ = fc.ws.Close()
	}
}

func (f *fakeCore) helloCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.hellos)
}

// push sends m to every connection.
func (f *fakeCore) push(m *wire.AgentMessage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for fc := range f.conns {
		if err := fc.send(m); err != nil {
			f.t.Errorf("push: %v", err)
		}
	}
}

func (f *fakeCore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != wire.AgentConnectPath {
		http.NotFound(w, r)
		return
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		http.Error(w, "no client certificate", http.StatusUnauthorized)
		return
	}
	if status := f.refuse.Load(); status != 0 {
		http.Error(w, "refused", int(status))
		return
	}
	if !slices.Contains(websocket.Subprotocols(r), wire.AgentSubprotocol) {
		http.Error(w, "subprotocol "+wire.AgentSubprotocol+" required", http.StatusBadRequest)
		return
	}
	up := websocket.Upgrader{Subprotocols: []string{wire.AgentSubprotocol}}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	fc := &fakeConn{ws: ws}
	ws.SetPingHandler(func(data string) error {
		f.pings.Add(1)
		return ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	f.mu.Lock()
	f.conns[fc] = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.conns, fc)
		f.mu.Unlock()
		_ = ws.Close()
	}()

	var hello wire.AgentMessage
	if err := ws.ReadJSON(&hello); err != nil {
		return
	}
	if hello.Type != wire.AgentHello {
		_ = fc.send(&wire.AgentMessage{Type: wire.AgentError, Code: 400, Error: "hello first"})
		return
	}
	f.mu.Lock()
	f.hellos = append(f.hellos, hello)
	n := len(f.hellos)
	f.mu.Unlock()
	welcome := &wire.AgentMessage{
		Type: wire.AgentWelcome, ID: hello.ID, AgentID: "agent-" + string(rune('0'+n)),
		Identity: "spiffe://secrethub/agent/x", TokenTTLSeconds: 3600, TokenRenewable: true,
	}
	if err := fc.send(welcome); err != nil {
		return
	}
	if f.silent.Load() {
		<-f.quit // never read again: pings go unanswered
		return
	}
	for {
		var m wire.AgentMessage
		if err := ws.ReadJSON(&m); err != nil {
			return
		}
		if m.Path == "secrets/garbage" {
			fc.wmu.Lock()
			err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type": "secret", "id": `))
			fc.wmu.Unlock()
			if err != nil {
				return
			}
			continue
		}
		if a := answer(&m); a != nil {
			if err := fc.send(a); err != nil {
				return
			}
		}
	}
}

// answer is the fake core's answer to one request; nil: none.
func answer(m *wire.AgentMessage) *wire.AgentMessage {
	fail := func(code int, msg string) *wire.AgentMessage {
		return &wire.AgentMessage{Type: wire.AgentError, ID: m.ID, Path: m.Path, Code: code, Error: msg}
	}
	switch m.Type {
	case wire.AgentRead:
		switch m.Path {
		case "secrets/app/db":
			return &wire.AgentMessage{Type: wire.AgentSecret, ID: m.ID, Path: m.Path,
				Response: &wire.Response{Data: map[string]any{"password": secretValue}}}
		case "secrets/denied":
			return fail(403, "permission denied")
		case "secrets/sealed":
			return fail(503, "SecretHub is sealed")
		case "secrets/hang":
			return nil
		case "secrets/odd":
			return &wire.AgentMessage{Type: wire.AgentOK, ID: m.ID}
		default:
			return fail(404, "no secret at "+m.Path)
		}
	case wire.AgentUnwatch:
		return &wire.AgentMessage{Type: wire.AgentOK, ID: m.ID}
	case wire.AgentRenewToken:
		ttl := m.Increment
		if ttl == 0 {
			ttl = 3600
		}
		return &wire.AgentMessage{Type: wire.AgentToken, ID: m.ID, TokenTTLSeconds: ttl, TokenRenewable: true}
	}
	return fail(400, "unknown type "+m.Type)
}

// tlsFor returns a Config.TLS trusting the fake cores and counting its calls.
func tlsFor(calls *atomic.Int32, cores ...*fakeCore) func() (*tls.Config, error) {
	pool := x509.NewCertPool()
	for _, f := range cores {
		pool.AddCert(f.srv.Certificate())
	}
	return func() (*tls.Config, error) {
		if calls != nil {
			calls.Add(1)
		}
		return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientCert()}, MinVersion: tls.VersionTLS12}, nil
	}
}

// fastBackoff keeps reconnection quick in tests.
var fastBackoff = Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}

// run starts c.Run and stops it at cleanup, checking that it returns
// context.Canceled.
func run(t *testing.T, c *Conn) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run returned %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

// recv waits for a value from ch.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// eventually polls cond until it holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitConnected(t *testing.T, c *Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatalf("WaitConnected: %v", err)
	}
}

func TestReadOverConnection(t *testing.T) {
	core := newFakeCore(t)
	var logs syncbuf.Buffer
	type ttl struct {
		ttl       time.Duration
		renewable bool
	}
	ttls := make(chan ttl, 4)
	changes := make(chan string, 4)
	var tlsCalls atomic.Int32
	c, err := New(Config{
		Addresses: []string{core.srv.URL},
		TLS:       tlsFor(&tlsCalls, core),
		Name:      "web-1",
		Version:   "0.1.0",
		Heartbeat: 2500 * time.Millisecond,
		Backoff:   fastBackoff,
		Logger:    slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnTokenTTL: func(d time.Duration, renewable bool) {
			ttls <- ttl{d, renewable}
		},
		OnChanged: func(path, op string, v int64) {
			changes <- path + " " + op + " " + string(rune('0'+v))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Connected() {
		t.Fatal("Connected before Run")
	}
	run(t, c)
	waitConnected(t, c)
	if !c.Connected() || c.Address() != core.srv.URL {
		t.Fatalf("Connected() = %v, Address() = %q", c.Connected(), c.Address())
	}
	if got := tlsCalls.Load(); got != 1 {
		t.Errorf("TLS called %d times for one dial", got)
	}

	core.mu.Lock()
	hello := core.hellos[0]
	core.mu.Unlock()
	if hello.Name != "web-1" || hello.Version != "0.1.0" || hello.HeartbeatSeconds != 3 || hello.ID == "" {
		t.Errorf("hello = %+v, want name web-1, version 0.1.0, heartbeat 3 s, an id", hello)
	}
	if got := recv(t, ttls, "welcome TTL"); got != (ttl{time.Hour, true}) {
		t.Errorf("welcome TTL = %+v", got)
	}

	ctx := context.Background()
	resp, err := c.Read(ctx, "secrets/app/db")
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if resp.Data["password"] != secretValue {
		t.Errorf("Read data = %v", resp.Data)
	}

	// Concurrent requests are matched to their answers by id.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := c.Read(ctx, "secrets/app/db"); err != nil {
				t.Errorf("concurrent Read: %v", err)
			}
			if err := c.Unwatch(ctx, "secrets/app/db"); err != nil {
				t.Errorf("concurrent Unwatch: %v", err)
			}
		})
	}
	wg.Wait()

	got, renewable, err := c.RenewToken(ctx, 90*time.Minute)
	if err != nil || got != 90*time.Minute || !renewable {
		t.Errorf("RenewToken = %s, %v, %v", got, renewable, err)
	}
	if got := recv(t, ttls, "renewed TTL"); got != (ttl{90 * time.Minute, true}) {
		t.Errorf("renewed TTL = %+v", got)
	}

	core.push(&wire.AgentMessage{Type: wire.AgentChanged, Path: "secrets/app/db", Operation: "write", NewVersion: 2})
	if got := recv(t, changes, "changed push"); got != "secrets/app/db write 2" {
		t.Errorf("OnChanged got %q", got)
	}

	// A request the core does not answer is abandoned with its context.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.Read(short, "secrets/hang"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("unanswered Read = %v, want DeadlineExceeded", err)
	}
	// A wrong answer type is a protocol error.
	if _, err := c.Read(ctx, "secrets/odd"); !errors.Is(err, ErrProtocol) {
		t.Errorf("Read answered ok = %v, want ErrProtocol", err)
	}

	if strings.Contains(logs.String(), secretValue) {
		t.Error("a secret value reached the log")
	}
}

func TestRemoteErrors(t *testing.T) {
	core := newFakeCore(t)
	c, err := New(Config{Addresses: []string{core.srv.URL}, TLS: tlsFor(nil, core), Backoff: fastBackoff})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	waitConnected(t, c)

	tests := map[string]struct {
		path string
		code int
		is   error
	}{
		"missing": {"secrets/nope", 404, client.ErrNotFound},
		"denied":  {"secrets/denied", 403, client.ErrPermissionDenied},
		"sealed":  {"secrets/sealed", 503, client.ErrSealed},
	}
	sentinels := []error{client.ErrNotFound, client.ErrPermissionDenied, client.ErrSealed}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := c.Read(context.Background(), tc.path)
			var re *RemoteError
			if !errors.As(err, &re) || re.Code != tc.code || re.Message == "" {
				t.Fatalf("Read(%q) = %v, want a RemoteError %d with a message", tc.path, err, tc.code)
			}
			for _, s := range sentinels {
				if got := errors.Is(err, s); got != (s == tc.is) {
					t.Errorf("errors.Is(%v, %v) = %v", err, s, got)
				}
			}
		})
	}
}

func TestUndecodableMessageDropsConnection(t *testing.T) {
	core := newFakeCore(t)
	connects := make(chan struct{}, 4)
	c, err := New(Config{
		Addresses: []string{core.srv.URL}, TLS: tlsFor(nil, core), Backoff: fastBackoff,
		OnConnected: func(context.Context) { connects <- struct{}{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	recv(t, connects, "connection")
	// The answer cannot be matched to the request: the connection is
	// closed, which fails the request at once, and opened again.
	if _, err := c.Read(context.Background(), "secrets/garbage"); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Read answered with garbage = %v, want ErrNotConnected", err)
	}
	recv(t, connects, "reconnection")
	if _, err := c.Read(context.Background(), "secrets/app/db"); err != nil {
		t.Errorf("Read after reconnecting: %v", err)
	}
}

func TestInvalidPathFailsLocally(t *testing.T) {
	c, err := New(Config{Addresses: []string{"https://127.0.0.1:1"}, TLS: tlsFor(nil)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"", strings.Repeat("a", MaxPathLength+1)} {
		if _, err := c.Read(context.Background(), p); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("Read(%d bytes) = %v, want ErrInvalidPath", len(p), err)
		}
		if err := c.Unwatch(context.Background(), p); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("Unwatch(%d bytes) = %v, want ErrInvalidPath", len(p), err)
		}
	}
	// The longest valid path gets past validation (and fails for want of a
	// connection).
	if _, err := c.Read(context.Background(), strings.Repeat("a", MaxPathLength)); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Read(%d bytes) = %v, want ErrNotConnected", MaxPathLength, err)
	}
}

func TestNotConnected(t *testing.T) {
	core := newFakeCore(t)
	c, err := New(Config{Addresses: []string{core.srv.URL}, TLS: tlsFor(nil, core), Backoff: fastBackoff})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Before Run: no connection, and requests do not wait for one.
	if _, err := c.Read(ctx, "secrets/app/db"); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Read before Run = %v, want ErrNotConnected", err)
	}
	if _, _, err := c.RenewToken(ctx, 0); !errors.Is(err, ErrNotConnected) {
		t.Errorf("RenewToken before Run = %v, want ErrNotConnected", err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := c.WaitConnected(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitConnected before Run = %v, want DeadlineExceeded", err)
	}

	// A request in flight when the connection drops fails.
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- c.Run(runCtx) }()
	waitConnected(t, c)
	core.refuse.Store(http.StatusServiceUnavailable) // stay disconnected after the drop
	pending := make(chan error, 1)
	go func() {
		_, err := c.Read(ctx, "secrets/hang")
		pending <- err
	}()
	eventually(t, "the read to reach the core", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.cur == nil {
			return false
		}
		c.cur.mu.Lock()
		defer c.cur.mu.Unlock()
		return len(c.cur.pending) == 1
	})
	core.drop()
	if err := recv(t, pending, "the pending read"); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Read pending at the drop = %v, want ErrNotConnected", err)
	}
	eventually(t, "disconnection", func() bool { return !c.Connected() })
	if _, err := c.Read(ctx, "secrets/app/db"); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Read while disconnected = %v, want ErrNotConnected", err)
	}

	// After Run: closed for good.
	stop()
	if err := recv(t, ran, "Run"); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if _, err := c.Read(ctx, "secrets/app/db"); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Run = %v, want ErrClosed", err)
	}
	if err := c.WaitConnected(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("WaitConnected after Run = %v, want ErrClosed", err)
	}
	if err := c.Run(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("second Run = %v, want ErrClosed", err)
	}
}

func TestReconnectMovesToNextAddress(t *testing.T) {
	a, b := newFakeCore(t), newFakeCore(t)
	var tlsCalls atomic.Int32
	type connected struct {
		address string
		readErr error
	}
	connects := make(chan connected, 8)
	var c *Conn
	c, err := New(Config{
		Addresses: []string{a.srv.URL, b.srv.URL},
		TLS:       tlsFor(&tlsCalls, a, b),
		Backoff:   fastBackoff,
		OnConnected: func(ctx context.Context) {
			// What the daemon does: read the watched paths again.
			_, err := c.Read(ctx, "secrets/app/db")
			connects <- connected{c.Address(), err}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)

	check := func(want string) {
		t.Helper()
		got := recv(t, connects, "OnConnected")
		if got.address != want || got.readErr != nil {
			t.Errorf("OnConnected at %s, catch-up read %v; want at %s", got.address, got.readErr, want)
		}
	}
	check(a.srv.URL)

	// The first core goes away: the agent moves to the second.
	a.stop()
	check(b.srv.URL)

	// The second drops the connection: the next attempt goes to the first,
	// which is down, and the one after to the second again.
	b.drop()
	check(b.srv.URL)
	if got := b.helloCount(); got != 2 {
		t.Errorf("second core saw %d hellos, want 2", got)
	}
	if got := tlsCalls.Load(); got < 4 {
		t.Errorf("TLS called %d times for at least 4 dials", got)
	}
}

func TestDeadPeerDetected(t *testing.T) {
	core := newFakeCore(t)
	core.silent.Store(true)
	connects := make(chan struct{}, 8)
	c, err := New(Config{
		Addresses:   []string{core.srv.URL},
		TLS:         tlsFor(nil, core),
		Heartbeat:   200 * time.Millisecond,
		Backoff:     fastBackoff,
		OnConnected: func(context.Context) { connects <- struct{}{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	recv(t, connects, "first connection")
	// The core neither answers pings nor sends anything: the agent gives
	// up on it and connects again.
	recv(t, connects, "reconnection after a silent core")
	if got := core.helloCount(); got < 2 {
		t.Errorf("core saw %d hellos, want at least 2", got)
	}
}

func TestHeartbeatKeepsConnection(t *testing.T) {
	// A core that answers pings keeps the connection across many
	// heartbeats without any message; the agent must not take it for dead.
	core := newFakeCore(t)
	c, err := New(Config{Addresses: []string{core.srv.URL}, TLS: tlsFor(nil, core), Heartbeat: 100 * time.Millisecond, Backoff: fastBackoff})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	waitConnected(t, c)
	eventually(t, "20 pings", func() bool { return core.pings.Load() >= 20 })
	if _, err := c.Read(context.Background(), "secrets/app/db"); err != nil {
		t.Fatalf("Read: %v", err)
	}
	if got := core.helloCount(); got != 1 {
		t.Errorf("core saw %d hellos, want 1: the connection was dropped", got)
	}
}

func TestUnauthorizedUpgrade(t *testing.T) {
	core := newFakeCore(t)
	core.refuse.Store(http.StatusForbidden)
	unauthorized := make(chan struct{}, 16)
	c, err := New(Config{
		Addresses:      []string{core.srv.URL},
		TLS:            tlsFor(nil, core),
		Backoff:        fastBackoff,
		OnUnauthorized: func() { unauthorized <- struct{}{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	recv(t, unauthorized, "OnUnauthorized")
	if c.Connected() {
		t.Error("Connected after a refused upgrade")
	}
	// Once the agent has logged in again, it connects.
	core.refuse.Store(0)
	waitConnected(t, c)
}

func TestDialErrors(t *testing.T) {
	core := newFakeCore(t)
	tlsConf := tlsFor(nil, core)
	tests := map[string]struct {
		setup func()
		tls   func() (*tls.Config, error)
		is    error
	}{
		"forbidden": {func() { core.refuse.Store(http.StatusForbidden) }, tlsConf, ErrUnauthorized},
		"sealed":    {func() { core.refuse.Store(http.StatusServiceUnavailable) }, tlsConf, client.ErrSealed},
		"no certificate": {func() { core.refuse.Store(0) }, func() (*tls.Config, error) {
			return nil, errors.New("no certificate yet")
		}, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tc.setup()
			c, err := New(Config{Addresses: []string{core.srv.URL}, TLS: tc.tls})
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = c.dial(context.Background(), c.urls[0])
			if err == nil {
				t.Fatal("dial succeeded")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("dial = %v, want %v", err, tc.is)
			}
			if tc.is != ErrUnauthorized && errors.Is(err, ErrUnauthorized) {
				t.Errorf("dial = %v, is ErrUnauthorized", err)
			}
		})
	}
}

func TestRunLeavesNoGoroutines(t *testing.T) {
	core := newFakeCore(t)
	before := runtime.NumGoroutine()
	connected := make(chan struct{}, 4)
	var c *Conn
	c, err := New(Config{
		Addresses: []string{core.srv.URL},
		TLS:       tlsFor(nil, core),
		Backoff:   fastBackoff,
		OnConnected: func(ctx context.Context) {
			connected <- struct{}{}
			<-ctx.Done() // a catch-up that lasts until the connection ends
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	recv(t, connected, "OnConnected")
	if _, err := c.Read(context.Background(), "secrets/app/db"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := recv(t, done, "Run"); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if c.Connected() {
		t.Error("Connected after Run returned")
	}
	// Our goroutines are gone when Run returns; the fake core's handler
	// ends once it reads the close. Poll for both.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before Run, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNewValidates(t *testing.T) {
	okTLS := tlsFor(nil)
	tests := map[string]struct {
		cfg  Config
		want string // substring of the error; "" for success
	}{
		"ok":               {Config{Addresses: []string{"https://core-1:4001"}, TLS: okTLS}, ""},
		"no address":       {Config{TLS: okTLS}, "no agent address"},
		"no TLS":           {Config{Addresses: []string{"https://core-1:4001"}}, "TLS is required"},
		"http address":     {Config{Addresses: []string{"http://core-1:4001"}, TLS: okTLS}, "want https://"},
		"second bad":       {Config{Addresses: []string{"https://a:1", "ftp://b"}, TLS: okTLS}, "address 1"},
		"no host":          {Config{Addresses: []string{"https://"}, TLS: okTLS}, "no host"},
		"query":            {Config{Addresses: []string{"https://a:1?x=1"}, TLS: okTLS}, "path only"},
		"negative beat":    {Config{Addresses: []string{"https://a:1"}, TLS: okTLS, Heartbeat: -1}, "negative"},
		"min above max":    {Config{Addresses: []string{"https://a:1"}, TLS: okTLS, Backoff: Backoff{Min: 2 * time.Minute}}, "exceeds max"},
		"negative backoff": {Config{Addresses: []string{"https://a:1"}, TLS: okTLS, Backoff: Backoff{Max: -1}}, "negative"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New(tc.cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("New: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestConnectURL(t *testing.T) {
	tests := map[string]string{
		"https://core-1:4001":         "wss://core-1:4001/v1/agent/connect",
		"https://core-1:4001/":        "wss://core-1:4001/v1/agent/connect",
		"https://core-1/prefix/":      "wss://core-1/prefix/v1/agent/connect",
		"wss://[::1]:4001":            "wss://[::1]:4001/v1/agent/connect",
		"https://127.0.0.1:4001//x//": "wss://127.0.0.1:4001//x/v1/agent/connect",
	}
	for in, want := range tests {
		got, err := connectURL(in)
		if err != nil || got != want {
			t.Errorf("connectURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
