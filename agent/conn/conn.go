// Package conn is the agent's one mTLS WebSocket to the core, the client
// side of the agent protocol (docs/agent-protocol.md, core/wire/agent.go).
//
// A Conn dials the core's agent listener, says hello, and then serves
// requests (Read, Unwatch, RenewToken) over the live connection while
// handing the core's pushes to a callback. Run keeps it connected: on any
// failure it moves to the next address and reconnects with jittered
// exponential backoff, until its context ends. Requests never wait for a
// connection: while there is none they fail with ErrNotConnected, and the
// caller serves from its cache.
package conn

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/secrethub/secrethub/core/client"
	"github.com/secrethub/secrethub/core/wire"
)

// DefaultHeartbeat is the interval between pings when Config.Heartbeat is
// zero.
const DefaultHeartbeat = 30 * time.Second

// MaxPathLength is the longest path a request may carry; longer ones fail
// locally with ErrInvalidPath.
const MaxPathLength = 1024

// maxFrame is the protocol's largest frame (1 MiB).
const maxFrame = 1 << 20

// handshakeTimeout bounds the TLS handshake and HTTP upgrade, and then the
// wait for the welcome.
const handshakeTimeout = 10 * time.Second

// writeTimeout bounds one write (message, ping or close frame). A write
// that times out breaks the connection, which is then reconnected.
const writeTimeout = 10 * time.Second

// Small buffers keep an idle agent small; the write buffer is only held
// while a message is written.
const (
	readBufferSize  = 4 << 10
	writeBufferSize = 4 << 10
)

// writeBufferPool lends write buffers to connections while they write.
var writeBufferPool sync.Pool

var (
	// ErrNotConnected is returned by a request made while there is no live
	// connection, or whose connection dropped before the answer came.
	ErrNotConnected = errors.New("not connected to the core")
	// ErrClosed is returned by Run called a second time, and by requests
	// and WaitConnected once Run has returned.
	ErrClosed = errors.New("connection closed")
	// ErrUnauthorized wraps a refused upgrade (403): the token the agent's
	// certificate names is revoked or expired, and the agent must log in
	// again.
	ErrUnauthorized = errors.New("agent token revoked or expired")
	// ErrInvalidPath is returned, without contacting the core, for an
	// empty path or one longer than MaxPathLength.
	ErrInvalidPath = errors.New("invalid path")
	// ErrProtocol wraps an answer that breaks the agent protocol.
	ErrProtocol = errors.New("agent protocol violation")
)

// RemoteError is an error answer from the core. Code is the HTTP status the
// same REST request would have had. errors.Is matches it against
// client.ErrNotFound (404), client.ErrPermissionDenied (403) and
// client.ErrSealed (503).
type RemoteError struct {
	Code    int
	Message string
}

func (e *RemoteError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Code)
	}
	return fmt.Sprintf("core answered %d: %s", e.Code, msg)
}

// Is matches the core/client sentinel errors by status.
func (e *RemoteError) Is(target error) bool {
	switch target {
	case client.ErrNotFound:
		return e.Code == http.StatusNotFound
	case client.ErrPermissionDenied:
		return e.Code == http.StatusForbidden
	case client.ErrSealed:
		return e.Code == http.StatusServiceUnavailable
	}
	return false
}

// Config configures a Conn.
type Config struct {
	// Addresses are the base URLs of the core's agent listener
	// (core.agent_addresses), https:// (wss:// is accepted too). Each
	// attempt to connect moves to the next one. Required.
	Addresses []string
	// TLS returns the client TLS configuration: the agent's certificate
	// and the agent CA as RootCAs. It is called at each dial, so a renewed
	// certificate is used from the next connection on. Required.
	TLS func() (*tls.Config, error)
	// Name and Version are sent in hello and shown in sys/agents.
	Name, Version string
	// Heartbeat is the interval between pings; the connection counts as
	// dead after 2 × Heartbeat without receiving anything. The core is
	// told it in whole seconds, rounded up. Default DefaultHeartbeat.
	Heartbeat time.Duration
	// Backoff paces reconnection. Zero fields take their defaults.
	Backoff Backoff
	// Logger receives connection state changes (never message contents).
	// Default slog.Default().
	Logger *slog.Logger

	// OnConnected, optional, is called in its own goroutine after each
	// welcome, so the caller can read its watched paths again to catch up.
	// Its context ends when that connection ends. Run waits for it to
	// return before returning itself.
	OnConnected func(ctx context.Context)
	// OnChanged, optional, receives each changed push. It is called from
	// the connection's reader, so it must not block for long (hand off to
	// another goroutine) and must not wait for a request on this Conn.
	OnChanged func(path, operation string, newVersion int64)
	// OnTokenTTL, optional, receives the token's remaining time to live
	// from each welcome (called from Run's goroutine before OnConnected)
	// and each RenewToken answer (called from RenewToken's caller). It must
	// not block long.
	OnTokenTTL func(ttl time.Duration, renewable bool)
	// OnUnauthorized, optional, is called when an upgrade is refused with
	// 403, or the core closes the connection with a 403 error: the token is
	// revoked or expired and the caller should log in
	// again (and hand a new certificate through TLS). Run keeps retrying
	// with backoff and calls it again at each refused attempt, so it must
	// be idempotent. Called from Run's goroutine; it must not block long.
	OnUnauthorized func()
}

// Conn is the agent's connection to the core. Create it with New, keep it
// connected with Run, and make requests from any goroutine.
type Conn struct {
	cfg       Config
	urls      []string // wss:// connect URLs, one per address
	heartbeat time.Duration
	log       *slog.Logger

	nextID atomic.Uint64

	// mu guards the fields below.
	mu        sync.Mutex
	started   bool
	closed    bool          // Run has returned
	cur       *session      // live (welcomed) session, or nil
	address   string        // address of the current or last welcomed session
	connected chan struct{} // closed while cur != nil or closed; replaced on disconnect
}

// New checks cfg and returns a Conn that is not yet connected.
func New(cfg Config) (*Conn, error) {
	if len(cfg.Addresses) == 0 {
		return nil, errors.New("conn: no agent address")
	}
	if cfg.TLS == nil {
		return nil, errors.New("conn: TLS is required")
	}
	if cfg.Heartbeat < 0 {
		return nil, fmt.Errorf("conn: heartbeat %s is negative", cfg.Heartbeat)
	}
	if cfg.Backoff.Min < 0 || cfg.Backoff.Max < 0 {
		return nil, errors.New("conn: backoff bounds must not be negative")
	}
	cfg.Backoff = cfg.Backoff.withDefaults()
	if cfg.Backoff.Min > cfg.Backoff.Max {
		return nil, fmt.Errorf("conn: backoff min %s exceeds max %s", cfg.Backoff.Min, cfg.Backoff.Max)
	}
	urls := make([]string, len(cfg.Addresses))
	for i, a := range cfg.Addresses {
		u, err := connectURL(a)
		if err != nil {
			return nil, fmt.Errorf("conn: address %d: %w", i, err)
		}
		urls[i] = u
	}
	c := &Conn{
		cfg:       cfg,
		urls:      urls,
		heartbeat: cfg.Heartbeat,
		log:       cfg.Logger,
		connected: make(chan struct{}),
	}
	if c.heartbeat == 0 {
		c.heartbeat = DefaultHeartbeat
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	return c, nil
}

// connectURL turns an agent listener base URL into its WebSocket URL.
func connectURL(address string) (string, error) {
	u, err := url.Parse(address)
	if err != nil {
		return "", fmt.Errorf("parse %q: %w", address, err)
	}
	switch u.Scheme {
	case "https", "wss":
	default:
		return "", fmt.Errorf("%q: want https://", address)
	}
	if u.Host == "" {
		return "", fmt.Errorf("%q: no host", address)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q: want scheme, host, port and path only", address)
	}
	u.Scheme = "wss"
	u.Path = trimSlash(u.Path) + wire.AgentConnectPath
	u.RawPath = ""
	return u.String(), nil
}

func trimSlash(p string) string {
	for len(p) > 0 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
	}
	return p
}

// Run connects and keeps reconnecting until ctx ends. Each attempt moves
// to the next address; a welcome resets the backoff, so a connection that
// drops is retried after Backoff.Delay(1), and the n-th failure in a row
// waits Backoff.Delay(n). When ctx ends Run closes the connection, waits for
// its goroutines and OnConnected calls, and returns ctx.Err(). A Conn runs
// once: a second call returns ErrClosed.
func (c *Conn) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return ErrClosed
	}
	c.started = true
	c.mu.Unlock()

	var callbacks sync.WaitGroup
	defer func() {
		callbacks.Wait()
		c.mu.Lock()
		c.closed = true
		select {
		case <-c.connected:
		default:
			close(c.connected) // wake WaitConnected, which sees closed
		}
		c.mu.Unlock()
	}()

	failures := 0
	for attempt := 0; ; attempt++ {
		idx := attempt % len(c.urls)
		address := c.cfg.Addresses[idx]
		welcomed, err := c.runSession(ctx, c.urls[idx], address, &callbacks)
		if ctx.Err() != nil {
			c.log.Info("agent connection closed", "address", address)
			return ctx.Err()
		}
		if welcomed {
			failures = 0
		}
		failures++
		if errors.Is(err, ErrUnauthorized) && c.cfg.OnUnauthorized != nil {
			c.cfg.OnUnauthorized()
		}
		delay := c.cfg.Backoff.Delay(failures, nil)
		next := c.cfg.Addresses[(attempt+1)%len(c.urls)]
		if welcomed {
			c.log.Info("agent connection lost", "address", address, "error", err, "next_address", next, "delay", delay)
		} else {
			c.log.Info("agent connection failed", "address", address, "attempt", failures, "error", err, "next_address", next, "delay", delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// runSession dials, says hello, and serves the connection until it ends.
// welcomed says whether the core welcomed it.
func (c *Conn) runSession(ctx context.Context, wsURL, address string, callbacks *sync.WaitGroup) (welcomed bool, err error) {
	ws, welcome, err := c.dial(ctx, wsURL)
	if err != nil {
		return false, err
	}
	sctx, cancel := context.WithCancel(ctx)
	s := &session{
		ws:      ws,
		pending: make(map[string]chan *wire.AgentMessage),
		done:    make(chan struct{}),
	}

	// The closer pings every heartbeat and, when the session or Run ends,
	// closes the socket, which ends the read loop below.
	var closer sync.WaitGroup
	closer.Add(1)
	go func() {
		defer closer.Done()
		c.keepAlive(sctx, s)
	}()

	c.mu.Lock()
	c.cur = s
	c.address = address
	close(c.connected)
	c.mu.Unlock()
	c.log.Info("agent connected", "address", address, "agent_id", welcome.AgentID)

	if c.cfg.OnTokenTTL != nil {
		c.cfg.OnTokenTTL(time.Duration(welcome.TokenTTLSeconds)*time.Second, welcome.TokenRenewable)
	}
	if c.cfg.OnConnected != nil {
		callbacks.Add(1)
		go func() {
			defer callbacks.Done()
			c.cfg.OnConnected(sctx)
		}()
	}

	err = c.readLoop(s)

	cancel()
	closer.Wait()
	c.mu.Lock()
	c.cur = nil
	c.connected = make(chan struct{})
	c.mu.Unlock()
	s.end()
	return true, err
}

// dial opens the WebSocket, sends hello and waits for the welcome.
func (c *Conn) dial(ctx context.Context, wsURL string) (*websocket.Conn, *wire.AgentMessage, error) {
	tlsConf, err := c.cfg.TLS()
	if err != nil {
		return nil, nil, fmt.Errorf("agent TLS configuration: %w", err)
	}
	d := websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		TLSClientConfig:  tlsConf,
		HandshakeTimeout: handshakeTimeout,
		ReadBufferSize:   readBufferSize,
		WriteBufferSize:  writeBufferSize,
		WriteBufferPool:  &writeBufferPool,
		Subprotocols:     []string{wire.AgentSubprotocol},
	}
	ws, resp, err := d.DialContext(ctx, wsURL, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			switch resp.StatusCode {
			case http.StatusForbidden:
				return nil, nil, fmt.Errorf("upgrade refused: %w", ErrUnauthorized)
			case http.StatusServiceUnavailable:
				return nil, nil, fmt.Errorf("upgrade refused: %w", client.ErrSealed)
			case http.StatusSwitchingProtocols:
			default:
				return nil, nil, fmt.Errorf("upgrade refused with %d: %w", resp.StatusCode, err)
			}
		}
		return nil, nil, fmt.Errorf("dial: %w", err)
	}
	if ws.Subprotocol() != wire.AgentSubprotocol {
		_ = ws.Close()
		return nil, nil, fmt.Errorf("%w: core chose subprotocol %q", ErrProtocol, ws.Subprotocol())
	}
	ws.SetReadLimit(maxFrame)

	hello := &wire.AgentMessage{
		Type:             wire.AgentHello,
		ID:               c.newID(),
		Name:             c.cfg.Name,
		Version:          c.cfg.Version,
		HeartbeatSeconds: int((c.heartbeat + time.Second - 1) / time.Second),
	}
	welcome, err := handshake(ctx, ws, hello)
	if err != nil {
		_ = ws.Close()
		return nil, nil, err
	}
	return ws, welcome, nil
}

// handshake sends hello and reads the welcome, within handshakeTimeout.
func handshake(ctx context.Context, ws *websocket.Conn, hello *wire.AgentMessage) (*wire.AgentMessage, error) {
	deadline := time.Now().Add(handshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	stop := context.AfterFunc(ctx, func() { _ = ws.Close() })
	defer stop()

	_ = ws.SetWriteDeadline(deadline)
	if err := ws.WriteJSON(hello); err != nil {
		return nil, fmt.Errorf("send hello: %w", err)
	}
	_ = ws.SetReadDeadline(deadline)
	var m wire.AgentMessage
	if err := ws.ReadJSON(&m); err != nil {
		return nil, fmt.Errorf("wait for welcome: %w", err)
	}
	switch m.Type {
	case wire.AgentWelcome:
		if m.ID != hello.ID {
			return nil, fmt.Errorf("%w: welcome answers id %q, hello was %q", ErrProtocol, m.ID, hello.ID)
		}
		return &m, nil
	case wire.AgentError:
		return nil, fmt.Errorf("hello refused: %w", &RemoteError{Code: m.Code, Message: m.Error})
	default:
		return nil, fmt.Errorf("%w: %q instead of welcome", ErrProtocol, m.Type)
	}
}

// keepAlive pings every heartbeat until ctx ends, then closes the socket.
func (c *Conn) keepAlive(ctx context.Context, s *session) {
	t := time.NewTicker(c.heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// Best effort: say goodbye, then close without waiting for
			// the core's close frame.
			msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
			_ = s.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			_ = s.ws.Close()
			return
		case <-t.C:
			if err := s.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				// A broken socket: closing it ends the read loop.
				_ = s.ws.Close()
				return
			}
		}
	}
}

// readLoop reads until the connection fails or goes silent for
// 2 × heartbeat, dispatching answers to their requests and pushes to the
// callbacks.
func (c *Conn) readLoop(s *session) error {
	ws := s.ws
	dead := 2 * c.heartbeat
	alive := func() { _ = ws.SetReadDeadline(time.Now().Add(dead)) }
	alive()
	ws.SetPongHandler(func(string) error { alive(); return nil })
	ws.SetPingHandler(func(data string) error {
		alive()
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeTimeout))
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			return err
		}
		return nil
	})
	var closeReason error
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			if closeReason != nil {
				return fmt.Errorf("%w (%w)", closeReason, err)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("core silent for %s (2 × heartbeat): %w", dead, err)
			}
			return fmt.Errorf("read: %w", err)
		}
		alive()
		var m wire.AgentMessage
		if err := json.Unmarshal(data, &m); err != nil {
			// Closing fails the requests in flight at once rather than
			// leaving one waiting for an answer that cannot be matched.
			return fmt.Errorf("%w: undecodable message: %w", ErrProtocol, err)
		}
		if m.ID != "" {
			if !s.deliver(&m) {
				c.log.Debug("agent answer for no waiting request", "type", m.Type)
			}
			continue
		}
		switch m.Type {
		case wire.AgentChanged:
			if c.cfg.OnChanged != nil {
				c.cfg.OnChanged(m.Path, m.Operation, m.NewVersion)
			}
		case wire.AgentError:
			re := &RemoteError{Code: m.Code, Message: m.Error}
			closeReason = fmt.Errorf("core closing the connection: %w", re)
			if m.Code == http.StatusForbidden {
				// The token was revoked: Run tells OnUnauthorized now
				// rather than after the next upgrade is refused.
				closeReason = fmt.Errorf("core closing the connection: %w: %w", ErrUnauthorized, re)
			}
			c.log.Warn("core closing the agent connection", "code", m.Code, "reason", m.Error)
		default:
			c.log.Debug("agent message ignored", "type", m.Type)
		}
	}
}

func (c *Conn) newID() string {
	return strconv.FormatUint(c.nextID.Add(1), 10)
}

// session is one welcomed connection.
type session struct {
	ws *websocket.Conn
	// wmu serialises writes of messages (gorilla allows one writer;
	// control frames go through WriteControl, which is safe beside it).
	wmu sync.Mutex
	// done is closed when the session has ended.
	done chan struct{}

	// mu guards pending and ended.
	mu      sync.Mutex
	pending map[string]chan *wire.AgentMessage
	ended   bool
}

// register makes a channel for the answer to id; false if the session ended.
func (s *session) register(id string) (chan *wire.AgentMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil, false
	}
	ch := make(chan *wire.AgentMessage, 1)
	s.pending[id] = ch
	return ch, true
}

func (s *session) forget(id string) {
	s.mu.Lock()
	delete(s.pending, id)
	s.mu.Unlock()
}

// deliver hands m to the request waiting for its id.
func (s *session) deliver(m *wire.AgentMessage) bool {
	s.mu.Lock()
	ch, ok := s.pending[m.ID]
	delete(s.pending, m.ID)
	s.mu.Unlock()
	if ok {
		ch <- m // buffered, one answer per id
	}
	return ok
}

// end marks the session over and wakes the requests waiting on it.
func (s *session) end() {
	s.mu.Lock()
	s.ended = true
	s.pending = nil
	s.mu.Unlock()
	close(s.done)
}

// write sends m; an error breaks the connection, which is closed so that
// the read loop ends and Run reconnects.
func (s *session) write(m *wire.AgentMessage) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := s.ws.WriteJSON(m); err != nil {
		_ = s.ws.Close()
		return err
	}
	return nil
}

// session returns the live session, or the error to give a request.
func (c *Conn) session() (*session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil {
		return c.cur, nil
	}
	if c.closed {
		return nil, ErrClosed
	}
	return nil, ErrNotConnected
}

// request sends m with a fresh id and waits for its answer.
func (c *Conn) request(ctx context.Context, m *wire.AgentMessage) (*wire.AgentMessage, error) {
	s, err := c.session()
	if err != nil {
		return nil, err
	}
	m.ID = c.newID()
	ch, ok := s.register(m.ID)
	if !ok {
		return nil, ErrNotConnected
	}
	defer s.forget(m.ID)
	if err := s.write(m); err != nil {
		return nil, fmt.Errorf("send %s: %w: %w", m.Type, ErrNotConnected, err)
	}
	select {
	case a := <-ch:
		return a, nil
	case <-s.done:
		select {
		case a := <-ch: // answered just before the drop
			return a, nil
		default:
		}
		return nil, fmt.Errorf("%s: connection dropped: %w", m.Type, ErrNotConnected)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func checkPath(path string) error {
	if path == "" {
		return fmt.Errorf("%w: empty", ErrInvalidPath)
	}
	if len(path) > MaxPathLength {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidPath, len(path), MaxPathLength)
	}
	return nil
}

// answerError turns an error answer into a *RemoteError and any other type
// than want into ErrProtocol.
func answerError(a *wire.AgentMessage, want string) error {
	switch a.Type {
	case want:
		return nil
	case wire.AgentError:
		return &RemoteError{Code: a.Code, Message: a.Error}
	default:
		return fmt.Errorf("%w: %q answered with %q", ErrProtocol, want, a.Type)
	}
}

// Read reads path (like GET /v1/<path>) over the connection, which makes
// the core watch it (a 404 is watched too, a 403 is not). It does not wait
// for a connection: without one it fails with ErrNotConnected. An error
// answer is a *RemoteError.
func (c *Conn) Read(ctx context.Context, path string) (*wire.Response, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	a, err := c.request(ctx, &wire.AgentMessage{Type: wire.AgentRead, Path: path})
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if err := answerError(a, wire.AgentSecret); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if a.Response == nil {
		return nil, fmt.Errorf("read: %w: secret without response", ErrProtocol)
	}
	return a.Response, nil
}

// Unwatch stops the core's pushes for path on the current connection.
func (c *Conn) Unwatch(ctx context.Context, path string) error {
	if err := checkPath(path); err != nil {
		return err
	}
	a, err := c.request(ctx, &wire.AgentMessage{Type: wire.AgentUnwatch, Path: path})
	if err != nil {
		return fmt.Errorf("unwatch: %w", err)
	}
	if err := answerError(a, wire.AgentOK); err != nil {
		return fmt.Errorf("unwatch: %w", err)
	}
	return nil
}

// RenewToken renews the token the agent's certificate names by increment
// (whole seconds; 0: the token's default) and returns its new time to live.
// The answer is also handed to OnTokenTTL.
func (c *Conn) RenewToken(ctx context.Context, increment time.Duration) (ttl time.Duration, renewable bool, err error) {
	if increment < 0 {
		return 0, false, fmt.Errorf("renew token: negative increment %s", increment)
	}
	a, err := c.request(ctx, &wire.AgentMessage{Type: wire.AgentRenewToken, Increment: int64(increment / time.Second)})
	if err != nil {
		return 0, false, fmt.Errorf("renew token: %w", err)
	}
	if err := answerError(a, wire.AgentToken); err != nil {
		return 0, false, fmt.Errorf("renew token: %w", err)
	}
	ttl = time.Duration(a.TokenTTLSeconds) * time.Second
	if c.cfg.OnTokenTTL != nil {
		c.cfg.OnTokenTTL(ttl, a.TokenRenewable)
	}
	return ttl, a.TokenRenewable, nil
}

// RenewLease renews a lease the agent holds (a dynamic credential it read)
// by increment (0: the lease's own TTL). It returns the lease's remaining
// duration, which the core caps at the lease's maximum TTL, and whether it
// may be renewed again.
func (c *Conn) RenewLease(ctx context.Context, leaseID string, increment time.Duration) (ttl time.Duration, renewable bool, err error) {
	if leaseID == "" || len(leaseID) > MaxPathLength {
		return 0, false, fmt.Errorf("renew lease: %w", ErrInvalidPath)
	}
	if increment < 0 {
		return 0, false, fmt.Errorf("renew lease: negative increment %s", increment)
	}
	a, err := c.request(ctx, &wire.AgentMessage{Type: wire.AgentRenewLease, LeaseID: leaseID, Increment: int64(increment / time.Second)})
	if err != nil {
		return 0, false, fmt.Errorf("renew lease: %w", err)
	}
	if err := answerError(a, wire.AgentLease); err != nil {
		return 0, false, fmt.Errorf("renew lease: %w", err)
	}
	return time.Duration(a.LeaseDurationSeconds) * time.Second, a.LeaseRenewable, nil
}

// RevokeLease revokes a lease the agent holds.
func (c *Conn) RevokeLease(ctx context.Context, leaseID string) error {
	if leaseID == "" || len(leaseID) > MaxPathLength {
		return fmt.Errorf("revoke lease: %w", ErrInvalidPath)
	}
	a, err := c.request(ctx, &wire.AgentMessage{Type: wire.AgentRevokeLease, LeaseID: leaseID})
	if err != nil {
		return fmt.Errorf("revoke lease: %w", err)
	}
	if err := answerError(a, wire.AgentOK); err != nil {
		return fmt.Errorf("revoke lease: %w", err)
	}
	return nil
}

// Connected reports whether a welcomed connection is live.
func (c *Conn) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur != nil
}

// WaitConnected blocks until a welcomed connection is live. It returns
// ctx.Err() if ctx ends first, and ErrClosed once Run has returned.
func (c *Conn) WaitConnected(ctx context.Context) error {
	for {
		c.mu.Lock()
		switch {
		case c.cur != nil:
			c.mu.Unlock()
			return nil
		case c.closed:
			c.mu.Unlock()
			return ErrClosed
		}
		ch := c.connected
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Address returns the address of the current connection, or of the last
// one while disconnected; empty before the first welcome.
func (c *Conn) Address() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.address
}
