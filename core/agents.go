package core

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/secrethub/secrethub/core/agents"
	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/policy"
	"github.com/secrethub/secrethub/core/secrets/kv"
	"github.com/secrethub/secrethub/core/token"
	"github.com/secrethub/secrethub/core/wire"
)

// Connected agents: the HTTP layer holds each agent's WebSocket and talks
// to the core through an AgentSession. Every read goes through
// HandleRequest with the token the agent's certificate names, so it is
// authorized and audited like a REST read; committed writes are published
// to the registry, which pushes "changed" to the connections watching the
// path.

// agentAuthKey is the context key under which an AgentSession hands
// HandleRequest the accessor of the token it authenticates with. Only
// this package can set it: nothing a client sends reaches it.
type agentAuthKey struct{}

// agentAccessorFrom returns the accessor an AgentSession put in ctx.
func agentAccessorFrom(ctx context.Context) (string, bool) {
	acc, ok := ctx.Value(agentAuthKey{}).(string)
	return acc, ok && acc != ""
}

// Agents is the registry of connected agents.
func (c *Core) Agents() *agents.Registry { return c.agents }

// AgentSession is one agent connection's view of the core, authenticated
// by its client certificate.
type AgentSession struct {
	c        *Core
	accessor string
	identity string
	addr     netip.Addr
	remote   string
	peer     []*x509.Certificate
	conn     *agents.Conn
}

// AgentSession authenticates an agent connection by its verified client
// certificate chain (leaf first). It fails with ErrSealed while sealed,
// and with an error matching ErrPermissionDenied for a missing, revoked
// or foreign certificate, or when the token it names is revoked or
// expired.
func (c *Core) AgentSession(ctx context.Context, peerCerts []*x509.Certificate, remoteAddr string) (*AgentSession, error) {
	if c.Sealed() {
		return nil, ErrSealed
	}
	req := &logical.Request{PeerCertificates: peerCerts}
	e, err := c.certCaller(ctx, req)
	if err != nil {
		if c.Sealed() {
			return nil, ErrSealed
		}
		return nil, err
	}
	return &AgentSession{
		c: c, accessor: e.Accessor, identity: agentURIPrefix + e.Accessor,
		addr: remoteIP(remoteAddr), remote: remoteAddr, peer: peerCerts,
	}, nil
}

func remoteIP(hostport string) netip.Addr {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// Identity is who the core takes the agent for: its certificate's URI
// SAN.
func (s *AgentSession) Identity() string { return s.identity }

// Conn is the session's registry entry, nil before Register.
func (s *AgentSession) Conn() *agents.Conn { return s.conn }

// Register enters the connection in sys/agents with the name and version
// the agent gave in its hello.
func (s *AgentSession) Register(name, version string) (*agents.Conn, error) {
	if s.conn != nil {
		return s.conn, nil
	}
	conn, err := s.c.agents.Register(agents.Info{
		Name: name, Version: version, Identity: s.identity, Accessor: s.accessor, Address: s.remote,
	})
	if err != nil {
		return nil, err
	}
	s.conn = conn
	return conn, nil
}

// Close removes the connection from sys/agents.
func (s *AgentSession) Close() {
	if s.conn != nil {
		s.c.agents.Unregister(s.conn)
	}
}

// TokenStatus is the agent token's remaining time to live and whether it
// can be renewed.
type TokenStatus struct {
	TTL       time.Duration
	Renewable bool
}

// Token reports the agent's token's status. A revoked or expired token is
// an error matching ErrPermissionDenied.
func (s *AgentSession) Token(ctx context.Context) (TokenStatus, error) {
	e, err := s.c.tokens.LookupAccessor(ctx, s.accessor)
	if errors.Is(err, token.ErrNotFound) || errors.Is(err, token.ErrExpired) {
		return TokenStatus{}, denied("the agent's token is revoked or expired: log in again")
	}
	if err != nil {
		return TokenStatus{}, fmt.Errorf("agent token: %w", err)
	}
	return TokenStatus{TTL: e.RemainingTTL(s.c.now()), Renewable: e.Renewable && !e.ExpiresAt.IsZero()}, nil
}

// ErrTooManyWatched is returned by Read when the connection already
// watches as many paths as it may and path is not one of them.
var ErrTooManyWatched = &logical.InvalidRequestError{Field: "path", Reason: "this connection watches too many paths; unwatch some first"}

// Read reads path like GET /v1/<path> with the agent's token, through
// HandleRequest (authorized and audited), and watches it unless the read
// was refused: a missing path (404) is watched too, so the agent hears
// when it is created. It returns the request, for its ID and cleaned
// path, with the response.
func (s *AgentSession) Read(ctx context.Context, path string) (*logical.Request, *logical.Response, error) {
	req := &logical.Request{
		Operation: logical.OpRead, Path: path, ClientAddr: s.addr, PeerCertificates: s.peer,
	}
	if s.conn != nil {
		if clean, _, err := logical.CleanPath(path); err == nil && !s.conn.CanWatch(clean) {
			return req, nil, ErrTooManyWatched
		}
	}
	resp, err := s.c.HandleRequest(context.WithValue(ctx, agentAuthKey{}, s.accessor), req)
	// A dynamic credential is not watched: every read issues a new one,
	// and its lease, not pushes, says when it must be replaced.
	watch := err == nil && (resp == nil || resp.Secret == nil)
	if StatusOf(err) == 404 && req.TokenAccessor != "" {
		// A path no mount serves is a 404 before authorization: watch
		// it only if the token may read it.
		watch = s.mayRead(ctx, req.Path)
	}
	if s.conn != nil && watch {
		// req.Path is clean once the request path accepted it.
		if werr := s.conn.Watch(req.Path); errors.Is(werr, agents.ErrTooManyWatched) && err == nil {
			return req, nil, ErrTooManyWatched
		}
	}
	return req, resp, err
}

// mayRead reports whether the agent's token may read path now.
func (s *AgentSession) mayRead(ctx context.Context, path string) bool {
	e, err := s.c.tokens.LookupAccessor(ctx, s.accessor)
	if err != nil {
		return false
	}
	acl, err := s.c.aclFor(ctx, e)
	if err != nil {
		return false
	}
	return acl.Evaluate(policy.Request{Path: path, Capability: policy.Read, Time: s.c.now().UTC(), ClientAddr: s.addr}).Allowed
}

// Unwatch stops pushes for path.
func (s *AgentSession) Unwatch(path string) {
	if s.conn == nil {
		return
	}
	if clean, _, err := logical.CleanPath(path); err == nil {
		path = clean
	}
	s.conn.Unwatch(path)
}

// RenewToken renews the agent's token by increment (0: the token's
// default) through auth/token/renew-self, so it is authorized and audited
// like a REST renewal and capped by the token's maximum TTL.
func (s *AgentSession) RenewToken(ctx context.Context, increment time.Duration) (TokenStatus, error) {
	data := map[string]any{}
	if increment > 0 {
		data["increment"] = strconv.FormatInt(int64(increment/time.Second), 10) + "s"
	}
	req := &logical.Request{
		Operation: logical.OpUpdate, Path: "auth/token/renew-self", Data: data,
		ClientAddr: s.addr, PeerCertificates: s.peer,
	}
	resp, err := s.c.HandleRequest(context.WithValue(ctx, agentAuthKey{}, s.accessor), req)
	if err != nil {
		return TokenStatus{}, err
	}
	if resp == nil || resp.Auth == nil {
		return TokenStatus{}, errors.New("renew: no token in the answer")
	}
	return TokenStatus{TTL: resp.Auth.LeaseDuration, Renewable: resp.Auth.Renewable}, nil
}

// RenewLease renews a lease through sys/leases/renew with the agent's
// token (authorized and audited like a REST renewal; the lease's maximum
// TTL caps it). The answer's envelope carries the lease's new duration.
func (s *AgentSession) RenewLease(ctx context.Context, leaseID string, increment time.Duration) (*logical.Request, *logical.Response, error) {
	data := map[string]any{"lease_id": leaseID}
	if increment > 0 {
		data["increment"] = strconv.FormatInt(int64(increment/time.Second), 10)
	}
	req := &logical.Request{
		Operation: logical.OpUpdate, Path: "sys/leases/renew", Data: data,
		ClientAddr: s.addr, PeerCertificates: s.peer,
	}
	resp, err := s.c.HandleRequest(context.WithValue(ctx, agentAuthKey{}, s.accessor), req)
	return req, resp, err
}

// RevokeLease revokes a lease through sys/leases/revoke with the agent's
// token.
func (s *AgentSession) RevokeLease(ctx context.Context, leaseID string) error {
	req := &logical.Request{
		Operation: logical.OpUpdate, Path: "sys/leases/revoke", Data: map[string]any{"lease_id": leaseID},
		ClientAddr: s.addr, PeerCertificates: s.peer,
	}
	_, err := s.c.HandleRequest(context.WithValue(ctx, agentAuthKey{}, s.accessor), req)
	return err
}

// publishCommitted tells the agents watching it that a committed write or
// delete changed req's path. kv-v2 writes to metadata/, delete/,
// undelete/ and destroy/ also change what data/<path> reads. It costs one
// atomic load while no agent watches anything.
func (c *Core) publishCommitted(req *logical.Request, rt route, resp *logical.Response) {
	if !c.agents.Watching() || rt.engine == nil {
		return
	}
	op := agents.OpWrite
	if req.Operation == logical.OpDelete {
		op = agents.OpDelete
	}
	var version int64
	if resp != nil {
		version = versionOf(resp.Data["version"])
	}
	if eng, ok := rt.engine.(*kv.Engine); ok {
		switch eng.Layout() {
		case kv.LayoutKVv2:
			route, rest, _ := strings.Cut(req.RelativePath, "/")
			switch route {
			case "delete", "destroy":
				op = agents.OpDelete
				fallthrough
			case "metadata", "undelete":
				if rest != "" {
					c.agents.Publish(req.MountPath+"data/"+rest, op, 0)
				}
			}
		case kv.LayoutSimple:
			if a, _ := req.Data["action"].(string); a == "delete" || a == "destroy" {
				op = agents.OpDelete
			}
		}
	}
	c.agents.Publish(req.Path, op, version)
}

// versionOf reads a version number from an engine's response data.
func versionOf(v any) int64 {
	switch n := v.(type) {
	case int:
		return int64(n)
	case int64:
		return n
	case float64:
		return int64(n)
	}
	return 0
}

// closeAgentsOf closes the connections of the agents whose tokens were
// revoked.
func (c *Core) closeAgentsOf(accessors []string) {
	for _, acc := range accessors {
		c.agents.CloseAccessor(acc, "the agent's token was revoked")
	}
}

// sysAgentsRoute serves sys/agents and sys/agents/<id>: the connected
// agents, under the normal ACL of those paths.
func (c *Core) sysAgentsRoute(req *logical.Request, p string) (route, error) {
	if req.Operation != logical.OpRead && req.Operation != logical.OpList {
		return route{}, fmt.Errorf("%w: %s on %s", logical.ErrUnsupportedOperation, req.Operation, req.Path)
	}
	if p == "agents" {
		return route{handler: c.sysAgentsList}, nil
	}
	return route{handler: c.sysAgentsGet}, nil
}

func (c *Core) sysAgentsList(context.Context, *logical.Request, *token.Entry) (*logical.Response, error) {
	list := c.agents.List()
	keys := make([]string, len(list))
	for i, a := range list {
		keys[i] = a.ID
	}
	return &logical.Response{Data: map[string]any{"keys": keys, "agents": list}}, nil
}

func (c *Core) sysAgentsGet(_ context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	id := strings.TrimPrefix(req.RelativePath, "agents/")
	info, ok := c.agents.Get(id)
	if !ok {
		return nil, fmt.Errorf("%w: no connected agent %q", logical.ErrNotFound, id)
	}
	return &logical.Response{Data: agentData(info)}, nil
}

func agentData(a wire.AgentInfo) map[string]any {
	return map[string]any{
		"id": a.ID, "name": a.Name, "identity": a.Identity, "address": a.Address, "version": a.Version,
		"connected_since": a.ConnectedSince, "last_heartbeat": a.LastHeartbeat, "watched": a.Watched,
	}
}
