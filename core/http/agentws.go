package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/secrethub/secrethub/core"
	"github.com/secrethub/secrethub/core/agents"
	"github.com/secrethub/secrethub/core/wire"
)

// The agent WebSocket, /v1/agent/connect on the agent listener:
// docs/agent-protocol.md. One connection costs two goroutines (a reader
// and a writer) and a few kilobytes of buffers, so one core holds many
// thousands of agents.

const (
	// agentMaxMessageBytes bounds one incoming frame.
	agentMaxMessageBytes = 1 << 20
	// agentMaxInFlight bounds the requests of one connection being
	// served at once; the reader waits for a slot before reading on.
	agentMaxInFlight = 8
	// agentWriteTimeout bounds one write to the agent.
	agentWriteTimeout = 10 * time.Second
	// The heartbeat the agent announces in its hello is bounded to
	// [agentMinHeartbeat, agentMaxHeartbeat], agentDefaultHeartbeat when
	// absent; the core closes a connection silent for twice that.
	agentDefaultHeartbeat = 30 * time.Second
	agentMinHeartbeat     = time.Second
	agentMaxHeartbeat     = 5 * time.Minute
	// agentMaxHelloField bounds the name and version in a hello.
	agentMaxHelloField = 256
	// agentMaxID bounds a request ID, in bytes.
	agentMaxID = 64
	// agentMaxIncrement bounds a renewal increment (ten years); the
	// token's maximum TTL caps it anyway.
	agentMaxIncrement = 10 * 365 * 24 * 3600
	// agentCloseGrace is how long the core waits for the agent's close
	// frame after sending its own.
	agentCloseGrace = 2 * time.Second
)

// agentUpgrader upgrades agent connections with small buffers and a
// shared write buffer pool: an idle connection holds no write buffer.
var agentUpgrader = websocket.Upgrader{
	HandshakeTimeout: 10 * time.Second,
	ReadBufferSize:   1024,
	WriteBufferSize:  1024,
	WriteBufferPool:  &sync.Pool{},
	Subprotocols:     []string{wire.AgentSubprotocol},
	Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
		writeError(w, status, reason.Error())
	},
}

// agentConnect serves /v1/agent/connect. Everything that can be refused is
// refused before the upgrade, as a plain HTTP answer: 403 without an
// agent certificate (or on the plain listener) or with a revoked token,
// 503 while sealed, 400 without the agent subprotocol.
func (h *handler) agentConnect(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.PeerCertificates) == 0 {
		if h.core.Sealed() {
			writeError(w, http.StatusServiceUnavailable, "SecretHub is sealed")
			return
		}
		writeError(w, http.StatusForbidden, "permission denied: agents connect to the agent listener with an agent certificate")
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		writeError(w, http.StatusBadRequest, "a WebSocket upgrade is required")
		return
	}
	if !slices.Contains(websocket.Subprotocols(r), wire.AgentSubprotocol) {
		writeError(w, http.StatusBadRequest, "the WebSocket subprotocol "+wire.AgentSubprotocol+" is required")
		return
	}
	sess, err := h.core.AgentSession(r.Context(), r.TLS.PeerCertificates, r.RemoteAddr)
	if err != nil {
		h.respondError(w, r, err)
		return
	}
	ws, err := agentUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered
	}
	a := &agentConn{h: h, ws: ws, sess: sess, remote: r.RemoteAddr}
	// The connection outlives this handler: returning lets net/http free
	// its per-request state, and the reader starts on a small stack.
	go a.serve(context.Background())
}

// agentConn is one agent's WebSocket.
type agentConn struct {
	h    *handler
	ws   *websocket.Conn
	sess *core.AgentSession
	// remote is the agent's address, for the server log.
	remote string

	// reg is set by the hello, before the writer starts.
	reg *agents.Conn
	// silence is how long the connection may stay silent (2 × heartbeat),
	// in nanoseconds.
	silence atomic.Int64
	// closing is set once the core sent its close frame: deadlines no
	// longer move.
	closing atomic.Bool

	ctx    context.Context
	cancel context.CancelFunc
	out    chan wire.AgentMessage
	slots  chan struct{}
	wg     sync.WaitGroup
	// writerDone is closed when the writer ends; nil before the hello.
	writerDone chan struct{}
	// fatal asks the writer to close the connection with an error (a
	// protocol violation seen by the reader).
	fatal chan wire.AgentMessage
}

// serve is the reader: the hello, then requests, until the connection
// ends. It then tears the connection down.
func (a *agentConn) serve(ctx context.Context) {
	a.ctx, a.cancel = context.WithCancel(ctx)
	defer a.teardown()
	a.ws.SetReadLimit(agentMaxMessageBytes)
	a.silence.Store(int64(2 * agentDefaultHeartbeat))
	a.extend()
	a.ws.SetPingHandler(func(data string) error {
		a.extend()
		if a.reg != nil {
			a.reg.Heartbeat()
		}
		err := a.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(agentWriteTimeout))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	a.ws.SetPongHandler(func(string) error {
		a.extend()
		return nil
	})

	if !a.hello() {
		return
	}
	for {
		_, data, err := a.ws.ReadMessage()
		if err != nil {
			return
		}
		if a.closing.Load() {
			continue // the close handshake is under way: drain until it ends
		}
		a.extend()
		msg, derr := decodeAgentMessage(data)
		if derr != nil {
			// The writer sends the reason and the close frame; the
			// reader reads on until the agent answers or the grace ends.
			select {
			case a.fatal <- errorMessage("", "", http.StatusBadRequest, derr.Error()):
			default:
			}
			continue
		}
		if !a.dispatch(msg) && !a.closing.Load() {
			return
		}
	}
}

// hello reads and answers the first message; false ends the connection.
func (a *agentConn) hello() bool {
	_, data, err := a.ws.ReadMessage()
	if err != nil {
		return false
	}
	a.extend()
	msg, derr := decodeAgentMessage(data)
	switch {
	case derr != nil:
		a.closeWith(websocket.CloseProtocolError, errorMessage("", "", http.StatusBadRequest, derr.Error()))
		return false
	case msg.Type != wire.AgentHello:
		a.closeWith(websocket.CloseProtocolError, errorMessage(msg.ID, "", http.StatusBadRequest, "the first message must be a hello"))
		return false
	case len(msg.Name) > agentMaxHelloField || len(msg.Version) > agentMaxHelloField:
		a.closeWith(websocket.CloseProtocolError, errorMessage(msg.ID, "", http.StatusBadRequest,
			fmt.Sprintf("hello: name and version must be at most %d bytes", agentMaxHelloField)))
		return false
	}
	hb := agentDefaultHeartbeat
	if msg.HeartbeatSeconds > 0 {
		hb = min(max(time.Duration(min(msg.HeartbeatSeconds, 3600))*time.Second, agentMinHeartbeat), agentMaxHeartbeat)
	}
	tok, err := a.sess.Token(a.ctx)
	if err != nil {
		a.closeWith(websocket.ClosePolicyViolation, errorMessage(msg.ID, "", core.StatusOf(err), core.PublicMessage(err)))
		return false
	}
	reg, err := a.sess.Register(msg.Name, msg.Version)
	if err != nil {
		a.h.log.Error("agent registration failed", "remote_addr", a.remote, "error", err.Error())
		a.closeWith(websocket.CloseInternalServerErr, errorMessage(msg.ID, "", http.StatusInternalServerError, "internal error; see the server log"))
		return false
	}
	a.reg = reg
	a.silence.Store(int64(2 * hb))
	a.extend()
	welcome := wire.AgentMessage{
		Type: wire.AgentWelcome, ID: msg.ID, AgentID: reg.ID(), Identity: a.sess.Identity(),
		TokenTTLSeconds: int64(tok.TTL / time.Second), TokenRenewable: tok.Renewable,
	}
	if err := a.write(welcome); err != nil {
		return false
	}
	a.out = make(chan wire.AgentMessage, 1)
	a.slots = make(chan struct{}, agentMaxInFlight)
	a.writerDone = make(chan struct{})
	a.fatal = make(chan wire.AgentMessage, 1)
	go a.writer()
	return true
}

// dispatch serves one request after the hello; false ends the
// connection.
func (a *agentConn) dispatch(msg wire.AgentMessage) bool {
	switch msg.Type {
	case wire.AgentRead, wire.AgentRenewToken, wire.AgentRenewLease, wire.AgentRevokeLease:
		select {
		case a.slots <- struct{}{}:
		case <-a.writerDone:
			return false
		}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			defer func() { <-a.slots }()
			switch msg.Type {
			case wire.AgentRead:
				a.send(a.read(msg))
			case wire.AgentRenewToken:
				a.send(a.renew(msg))
			case wire.AgentRenewLease:
				a.send(a.renewLease(msg))
			default:
				a.send(a.revokeLease(msg))
			}
		}()
		return true
	case wire.AgentUnwatch:
		a.sess.Unwatch(msg.Path)
		return a.send(wire.AgentMessage{Type: wire.AgentOK, ID: msg.ID})
	case wire.AgentHello:
		return a.send(errorMessage(msg.ID, "", http.StatusBadRequest, "hello: already received"))
	}
	t := msg.Type
	if len(t) > 32 {
		t = t[:32] + "…"
	}
	return a.send(errorMessage(msg.ID, msg.Path, http.StatusBadRequest, "unknown message type "+strconv.Quote(t)))
}

// read answers a read, and the registry watches the path.
func (a *agentConn) read(msg wire.AgentMessage) wire.AgentMessage {
	req, resp, err := a.sess.Read(a.ctx, msg.Path)
	path := msg.Path
	if req != nil && req.Path != "" {
		path = req.Path
	}
	if err != nil {
		return a.errorFor(msg.ID, path, err)
	}
	switch {
	case resp != nil && resp.StatusCode >= 400:
		// A kv-v2 version that is deleted: REST answers 404 with its
		// metadata; an agent has nothing to render.
		return errorMessage(msg.ID, path, resp.StatusCode, http.StatusText(resp.StatusCode))
	case resp != nil && resp.Raw != nil:
		return errorMessage(msg.ID, path, http.StatusNotAcceptable, "this path answers a raw body, not JSON; read it over REST")
	}
	out := wire.Response{RequestID: req.ID}
	if resp != nil {
		out = envelope(req, resp)
	}
	return wire.AgentMessage{Type: wire.AgentSecret, ID: msg.ID, Path: path, Response: &out}
}

// renew answers a renew_token.
func (a *agentConn) renew(msg wire.AgentMessage) wire.AgentMessage {
	if msg.Increment < 0 || msg.Increment > agentMaxIncrement {
		return errorMessage(msg.ID, "", http.StatusBadRequest, fmt.Sprintf("increment: must be 0 to %d seconds", agentMaxIncrement))
	}
	tok, err := a.sess.RenewToken(a.ctx, time.Duration(msg.Increment)*time.Second)
	if err != nil {
		return a.errorFor(msg.ID, "", err)
	}
	return wire.AgentMessage{Type: wire.AgentToken, ID: msg.ID, TokenTTLSeconds: int64(tok.TTL / time.Second), TokenRenewable: tok.Renewable}
}

// maxLeaseIDBytes bounds a lease id in a message: a mount path, an
// issue path and a random suffix.
const maxLeaseIDBytes = 1024

// renewLease answers a renew_lease.
func (a *agentConn) renewLease(msg wire.AgentMessage) wire.AgentMessage {
	if msg.Increment < 0 || msg.Increment > agentMaxIncrement {
		return errorMessage(msg.ID, "", http.StatusBadRequest, fmt.Sprintf("increment: must be 0 to %d seconds", agentMaxIncrement))
	}
	if msg.LeaseID == "" || len(msg.LeaseID) > maxLeaseIDBytes {
		return errorMessage(msg.ID, "", http.StatusBadRequest, "lease_id: missing or too long")
	}
	req, resp, err := a.sess.RenewLease(a.ctx, msg.LeaseID, time.Duration(msg.Increment)*time.Second)
	if err != nil {
		return a.errorFor(msg.ID, "", err)
	}
	out := wire.Response{}
	if resp != nil {
		out = envelope(req, resp)
	}
	return wire.AgentMessage{Type: wire.AgentLease, ID: msg.ID, LeaseID: msg.LeaseID,
		LeaseDurationSeconds: out.LeaseDuration, LeaseRenewable: out.Renewable}
}

// revokeLease answers a revoke_lease.
func (a *agentConn) revokeLease(msg wire.AgentMessage) wire.AgentMessage {
	if msg.LeaseID == "" || len(msg.LeaseID) > maxLeaseIDBytes {
		return errorMessage(msg.ID, "", http.StatusBadRequest, "lease_id: missing or too long")
	}
	if err := a.sess.RevokeLease(a.ctx, msg.LeaseID); err != nil {
		return a.errorFor(msg.ID, "", err)
	}
	return wire.AgentMessage{Type: wire.AgentOK, ID: msg.ID}
}

func (a *agentConn) errorFor(id, path string, err error) wire.AgentMessage {
	status := core.StatusOf(err)
	if status == http.StatusInternalServerError {
		a.h.log.Error("agent request failed", "remote_addr", a.remote, "path", path, "error", err.Error())
	}
	return errorMessage(id, path, status, core.PublicMessage(err))
}

func errorMessage(id, path string, code int, msg string) wire.AgentMessage {
	return wire.AgentMessage{Type: wire.AgentError, ID: id, Path: path, Code: code, Error: msg}
}

// send queues an answer for the writer; false once the writer or the
// connection ended.
func (a *agentConn) send(m wire.AgentMessage) bool {
	select {
	case a.out <- m:
		return true
	case <-a.writerDone:
		return false
	case <-a.ctx.Done():
		return false
	}
}

// writer serializes every message to the agent: answers, coalesced
// changes, and the closing message when the core closes the connection.
func (a *agentConn) writer() {
	defer close(a.writerDone)
	for {
		select {
		case m := <-a.out:
			if a.write(m) != nil {
				a.abort()
				return
			}
		case <-a.reg.Changed():
			for _, ch := range a.reg.TakeChanges() {
				m := wire.AgentMessage{Type: wire.AgentChanged, Path: ch.Path, Operation: ch.Operation, NewVersion: ch.NewVersion}
				if a.write(m) != nil {
					a.abort()
					return
				}
			}
		case m := <-a.fatal:
			a.closeWith(websocket.CloseProtocolError, m)
			return
		case <-a.reg.Done():
			code := http.StatusForbidden
			if a.h.core.Sealed() {
				code = http.StatusServiceUnavailable
			}
			reason := a.reg.CloseReason()
			if reason == "" {
				reason = "the core closed the connection"
			}
			a.closeWith(websocket.CloseGoingAway, errorMessage("", "", code, reason))
			return
		case <-a.ctx.Done():
			return
		}
	}
}

// write writes one message within agentWriteTimeout.
func (a *agentConn) write(m wire.AgentMessage) error {
	if err := a.ws.SetWriteDeadline(time.Now().Add(agentWriteTimeout)); err != nil {
		return err
	}
	return a.ws.WriteJSON(m)
}

// closeWith tells the agent why the core closes the connection, sends
// the close frame with code, and gives the agent agentCloseGrace to
// answer it before the reader gives up. Only the goroutine that writes
// messages may call it.
func (a *agentConn) closeWith(code int, m wire.AgentMessage) {
	_ = a.write(m)
	a.closing.Store(true)
	reason := m.Error
	if len(reason) > 120 {
		reason = reason[:120]
	}
	_ = a.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(agentWriteTimeout))
	_ = a.ws.SetReadDeadline(time.Now().Add(agentCloseGrace))
}

// abort ends the connection at once (a write failed).
func (a *agentConn) abort() {
	a.closing.Store(true)
	_ = a.ws.Close()
}

// extend moves the read deadline: the connection is dead after 2 ×
// heartbeat of silence.
func (a *agentConn) extend() {
	if a.closing.Load() {
		return
	}
	_ = a.ws.SetReadDeadline(time.Now().Add(time.Duration(a.silence.Load())))
}

// teardown ends the connection once the reader stops: requests in flight
// are dropped, the writer stops and the agent leaves sys/agents.
func (a *agentConn) teardown() {
	a.cancel()
	a.closing.Store(true)
	_ = a.ws.Close()
	a.wg.Wait()
	if a.writerDone != nil {
		<-a.writerDone
	}
	a.sess.Close()
}

// decodeAgentMessage decodes one message from an agent. The input is
// untrusted: errors describe the problem without echoing it.
func decodeAgentMessage(data []byte) (wire.AgentMessage, error) {
	var m wire.AgentMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return wire.AgentMessage{}, errors.New("invalid message: " + describeJSONError(err) + "; want one JSON object")
	}
	if m.Type == "" {
		return wire.AgentMessage{}, errors.New("invalid message: no type")
	}
	if len(m.ID) > agentMaxID {
		return wire.AgentMessage{}, fmt.Errorf("invalid message: id longer than %d bytes", agentMaxID)
	}
	return m, nil
}
