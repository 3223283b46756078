package core

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/secrethub/secrethub/core/audit"
	"github.com/secrethub/secrethub/core/auth/approle"
	"github.com/secrethub/secrethub/core/lease"
	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/mount"
	"github.com/secrethub/secrethub/core/policy"
	"github.com/secrethub/secrethub/core/token"
)

// ErrAuditFailed is returned, instead of the answer, for a request whose
// audit event could not be written: SecretHub fails closed.
var ErrAuditFailed = errors.New("audit log unavailable: request refused")

// DeniedError is a refusal with the reason, for the audit log and the
// server log. Clients see only "permission denied": it matches
// ErrPermissionDenied.
type DeniedError struct {
	Reason string
}

func (e *DeniedError) Error() string { return "permission denied: " + e.Reason }

// Is makes a DeniedError match ErrPermissionDenied.
func (e *DeniedError) Is(target error) bool {
	return target == ErrPermissionDenied || target == logical.ErrPermissionDenied
}

func denied(format string, args ...any) error {
	return &DeniedError{Reason: fmt.Sprintf(format, args...)}
}

// route says who serves a path and how it is authorized.
type route struct {
	// handler serves the request; engine is set instead for mounts.
	handler func(ctx context.Context, req *logical.Request, caller *token.Entry) (*logical.Response, error)
	engine  logical.Engine
	mount   mount.Entry
	// unauthenticated paths (logins) need no token.
	unauthenticated bool
	// sudo paths need the sudo capability besides the operation's.
	sudo bool
	// sealAfter seals the core once the request is audited.
	sealAfter bool
	// certAuth handlers authenticate the caller by its agent client
	// certificate instead of a token (they are also unauthenticated).
	certAuth bool
}

// HandleRequest is the one request path every API call outside the seal
// endpoints takes: sealed? → validate → route → authenticate → authorize
// → engine → audit. The audit event is written before the answer is
// returned; if it cannot be, the answer is withheld and ErrAuditFailed
// returned.
func (c *Core) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	// Requests hold reqLock shared from here to their audit event, so a
	// seal waits for them and never closes the audit log under them.
	c.reqLock.RLock()
	st := c.active.Load()
	if st == nil {
		c.reqLock.RUnlock()
		return nil, ErrSealed
	}
	if req.ID == "" {
		req.ID = c.newRequestID()
	}
	req.Time = c.now().UTC()
	resp, caller, rt, err := c.handle(ctx, st, req)
	if aerr := c.record(ctx, st, c.auditEvent(req, caller, resp, err)); aerr != nil {
		c.reqLock.RUnlock()
		c.log.ErrorContext(ctx, "audit write failed; refusing request", "request_id", req.ID, "path", req.Path, "error", aerr.Error())
		return nil, ErrAuditFailed
	}
	c.reqLock.RUnlock()
	if err == nil && req.Operation != logical.OpRead && req.Operation != logical.OpList {
		c.publishCommitted(req, rt, resp)
	}
	if err == nil && rt.sealAfter {
		// Sealing closes the audit log, so it happens once the request's
		// own event is written and its shared lock released.
		c.stateMu.Lock()
		c.sealLocked(ctx)
		c.stateMu.Unlock()
		c.log.InfoContext(ctx, "core sealed", "accessor", req.TokenAccessor)
	}
	return resp, err
}

// handle runs a request up to its answer; HandleRequest audits it. A
// request that may change state is audited once more before it runs
// (ResultStarted), so a change never happens without an event: if that
// event cannot be written, the request is refused unrun.
func (c *Core) handle(ctx context.Context, st *activeState, req *logical.Request) (*logical.Response, *token.Entry, route, error) {
	clean, folder, err := logical.CleanPath(req.Path)
	if err != nil {
		return nil, nil, route{}, err
	}
	req.Path = clean
	if folder && req.Operation == logical.OpRead {
		req.Operation = logical.OpList
	}
	rt, routeErr := c.route(st, req)
	var caller *token.Entry
	if routeErr != nil || !rt.unauthenticated {
		// Without a live token, an unknown path is refused like any
		// other: mount names are not shown to anonymous clients.
		if caller, err = c.authenticate(ctx, req); err != nil {
			return nil, nil, rt, err
		}
	}
	if routeErr != nil {
		return nil, caller, rt, routeErr
	}
	if err := c.resolveWrite(ctx, rt, req); err != nil {
		return nil, caller, rt, err
	}
	if !rt.unauthenticated {
		if err := c.authorize(ctx, req, caller, rt.sudo); err != nil {
			return nil, caller, rt, err
		}
	}
	if req.Operation != logical.OpRead && req.Operation != logical.OpList {
		started := c.auditEvent(req, caller, nil, nil)
		started.Result, started.StatusCode = audit.ResultStarted, 0
		if err := c.record(ctx, st, started); err != nil {
			c.log.ErrorContext(ctx, "audit write failed; refusing request unrun", "request_id", req.ID, "path", req.Path, "error", err.Error())
			return nil, caller, rt, ErrAuditFailed
		}
	}
	var resp *logical.Response
	if rt.engine != nil {
		resp, err = rt.engine.HandleRequest(ctx, req)
	} else {
		resp, err = rt.handler(ctx, req, caller)
	}
	if err != nil {
		return nil, caller, rt, err
	}
	if resp != nil && resp.Secret != nil && rt.engine != nil {
		if err := c.leaseSecret(ctx, st, req, caller, rt, resp); err != nil {
			return nil, caller, rt, err
		}
	}
	if rt.unauthenticated && resp != nil && resp.Auth != nil {
		if err := c.issueLoginToken(ctx, req, resp); err != nil {
			return nil, caller, rt, err
		}
	}
	return resp, caller, rt, nil
}

// auditTimeout bounds the wait for an audit write.
const auditTimeout = 30 * time.Second

// record writes one audit event. It waits for the real outcome even when
// the client has gone: the request may already have taken effect, and its
// event must not be reported lost when it is only late.
func (c *Core) record(ctx context.Context, st *activeState, ev audit.Event) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	return st.audit.Record(ctx, ev)
}

// RejectRequest audits a request the HTTP layer refused before it could
// enter the request path (a body that is not a JSON object, too large, a
// method no operation maps to), and returns err, or ErrAuditFailed when
// the event cannot be written. While sealed there is no audit key, and
// ErrSealed is returned instead.
func (c *Core) RejectRequest(ctx context.Context, req *logical.Request, err error) error {
	c.reqLock.RLock()
	defer c.reqLock.RUnlock()
	st := c.active.Load()
	if st == nil {
		return ErrSealed
	}
	if req.ID == "" {
		req.ID = c.newRequestID()
	}
	req.Time = c.now().UTC()
	if aerr := c.record(ctx, st, c.auditEvent(req, nil, nil, err)); aerr != nil {
		c.log.ErrorContext(ctx, "audit write failed; refusing request", "request_id", req.ID, "path", req.Path, "error", aerr.Error())
		return ErrAuditFailed
	}
	return err
}

// route finds who serves req.Path and sets the mount-relative path.
func (c *Core) route(st *activeState, req *logical.Request) (route, error) {
	p := req.Path
	switch {
	case p == "sys" || strings.HasPrefix(p, "sys/"):
		return c.sysRoute(req)
	case p == "auth/token" || strings.HasPrefix(p, "auth/token/"):
		req.MountPath, req.RelativePath = "auth/token/", strings.TrimPrefix(strings.TrimPrefix(p, "auth/token"), "/")
		return c.tokenRoute(req)
	}
	m, ok := st.mounts.Match(p)
	if !ok {
		return route{}, fmt.Errorf("%w: no mount serves %q", logical.ErrUnsupportedPath, p)
	}
	req.MountPath = m.Path
	req.RelativePath = strings.TrimPrefix(strings.TrimPrefix(p, strings.TrimSuffix(m.Path, "/")), "/")
	rt := route{engine: st.engines[m.Path], mount: m}
	if engineIsAuth(m.Type) && req.RelativePath == "login" {
		rt.unauthenticated = true
	}
	if m.Type == "pki" && req.Operation == logical.OpRead && isPublicPKIPath(req.RelativePath) {
		// CA certificates and CRLs are public, as in Vault: TLS clients
		// fetch them from the URLs in certificates, without a token.
		rt.unauthenticated = true
	}
	return rt, nil
}

// isPublicPKIPath reports whether a PKI mount serves a read path without
// a token.
func isPublicPKIPath(p string) bool {
	switch p {
	case "ca", "ca/pem", "ca_chain", "crl", "crl/pem":
		return true
	}
	return false
}

// authenticate looks up the request's token.
func (c *Core) authenticate(ctx context.Context, req *logical.Request) (*token.Entry, error) {
	var e *token.Entry
	var err error
	if acc, ok := agentAccessorFrom(ctx); ok {
		// A request of an AgentSession: the token its certificate named,
		// looked up again so a revoked token stops working at once.
		e, err = c.tokens.LookupAccessor(ctx, acc)
	} else if req.ClientToken == "" {
		return nil, denied("no token")
	} else {
		e, err = c.tokens.Lookup(ctx, req.ClientToken)
	}
	switch {
	case errors.Is(err, token.ErrNotFound):
		return nil, denied("unknown or revoked token")
	case errors.Is(err, token.ErrExpired):
		return nil, denied("token expired")
	case err != nil:
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	if len(e.BoundCIDRs) > 0 && !addrIn(req.ClientAddr, e.BoundCIDRs) {
		return nil, denied("token used from %s, outside its bound CIDRs", addrString(req.ClientAddr))
	}
	req.TokenAccessor = e.Accessor
	req.Policies = slices.Clone(e.Policies)
	req.DisplayName = e.DisplayName
	req.TokenTTL = e.RemainingTTL(req.Time)
	return e, nil
}

// addrIn reports whether addr lies in one of cidrs. An unknown address
// lies in none.
func addrIn(addr netip.Addr, cidrs []string) bool {
	if !addr.IsValid() {
		return false
	}
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil && p.Contains(addr) {
			return true
		}
	}
	return false
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "an unknown address"
	}
	return a.String()
}

// resolveWrite turns a write into a create or an update, asking the
// engine whether something exists at the path. Without an engine that
// knows, a write is an update.
func (c *Core) resolveWrite(ctx context.Context, rt route, req *logical.Request) error {
	if req.Operation != logical.OpCreate && req.Operation != logical.OpUpdate {
		return nil
	}
	req.Operation = logical.OpUpdate
	if ec, ok := rt.engine.(logical.ExistenceChecker); ok {
		exists, err := ec.Exists(ctx, req)
		if err != nil {
			return err
		}
		if !exists {
			req.Operation = logical.OpCreate
		}
	}
	return nil
}

// capabilityOf maps an operation to the capability it needs.
func capabilityOf(op logical.Operation) policy.Capability {
	switch op {
	case logical.OpRead:
		return policy.Read
	case logical.OpCreate:
		return policy.Create
	case logical.OpDelete:
		return policy.Delete
	case logical.OpList:
		return policy.List
	default:
		return policy.Update
	}
}

// aclFor returns the compiled ACL of a token's policies. Tokens carry
// "default" unless created with no_default_policy.
func (c *Core) aclFor(ctx context.Context, e *token.Entry) (*policy.ACL, error) {
	acl, err := c.policies.ACL(ctx, e.Policies)
	if err != nil {
		return nil, fmt.Errorf("authorize: load policies: %w", err)
	}
	return acl, nil
}

// authorize evaluates the caller's policies for req.
func (c *Core) authorize(ctx context.Context, req *logical.Request, caller *token.Entry, sudo bool) error {
	acl, err := c.aclFor(ctx, caller)
	if err != nil {
		return err
	}
	pr := policy.Request{
		Path: req.Path, Capability: capabilityOf(req.Operation), Time: req.Time,
		ClientAddr: req.ClientAddr, TTL: c.requestedTTL(req),
	}
	if d := acl.Evaluate(pr); !d.Allowed {
		return denied("%s", d.Reason)
	}
	if sudo {
		pr.Capability = policy.Sudo
		if d := acl.Evaluate(pr); !d.Allowed {
			return denied("sudo needed on %s: %s", req.Path, d.Reason)
		}
	}
	return nil
}

// requestedTTL is the TTL a request asks for, for ttl_max conditions: its
// "ttl" (or "lease") field; for token creation without one, the default
// TTL the token would get.
func (c *Core) requestedTTL(req *logical.Request) time.Duration {
	for _, name := range []string{"ttl", "lease"} {
		if v, ok := req.Data[name]; ok {
			if d, err := parseDuration(v); err == nil && d > 0 {
				return d
			}
		}
	}
	if strings.HasPrefix(req.Path, "auth/token/create") {
		return c.defaultTokenTTL
	}
	return 0
}

// issueLoginToken creates the token a successful login earned and puts it
// in the response, taking the token parameters the auth method returned.
func (c *Core) issueLoginToken(ctx context.Context, req *logical.Request, resp *logical.Response) error {
	params, err := approle.LoginTokenParams(resp)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	for _, k := range []string{approle.DataTokenMaxTTL, approle.DataTokenNumUses, approle.DataTokenBoundCIDRs} {
		delete(resp.Data, k)
	}
	if len(resp.Data) == 0 {
		resp.Data = nil
	}
	if params.NumUses > 0 {
		return logical.Invalid("token_num_uses", "the role limits its tokens to %d uses, which SecretHub does not support; set token_num_uses to 0", params.NumUses)
	}
	ttl, maxTTL := params.TTL, params.MaxTTL
	if ttl <= 0 {
		ttl = c.defaultTokenTTL
	}
	if maxTTL <= 0 || maxTTL > c.maxTokenTTL {
		maxTTL = c.maxTokenTTL
	}
	var cidrs []string
	for _, p := range params.BoundCIDRs {
		cidrs = append(cidrs, p.String())
	}
	a := resp.Auth
	policies := normalizePolicies(append(slices.Clone(params.Policies), "default"))
	if slices.Contains(policies, token.RootPolicy) {
		return denied("auth methods cannot create root tokens")
	}
	id, e, err := c.tokens.Create(ctx, "", token.Entry{
		Policies: policies, DisplayName: strings.TrimSuffix(req.MountPath, "/"), Meta: a.Metadata,
		Path: req.Path, TTL: ttl, ExplicitMaxTTL: maxTTL, Renewable: true, BoundCIDRs: cidrs,
	})
	if err != nil {
		return fmt.Errorf("login: create token: %w", err)
	}
	a.ClientToken, a.Accessor = id, e.Accessor
	a.Policies, a.TokenPolicies = policies, policies
	a.LeaseDuration = e.RemainingTTL(e.CreatedAt)
	a.Renewable, a.Orphan, a.TokenType = true, true, "service"
	return nil
}

// auditEvent builds the one event of a request. The audit log replaces
// every string value (secrets, tokens) by its HMAC.
func (c *Core) auditEvent(req *logical.Request, caller *token.Entry, resp *logical.Response, err error) audit.Event {
	ev := audit.Event{
		Time: req.Time, RequestID: req.ID, Operation: string(req.Operation), Path: req.Path,
		TokenAccessor: req.TokenAccessor, Policies: req.Policies, Result: "ok", StatusCode: 200,
		Request: req.Data,
	}
	if req.ClientAddr.IsValid() {
		ev.ClientAddr = req.ClientAddr.String()
	}
	if caller != nil && ev.TokenAccessor == "" {
		ev.TokenAccessor = caller.Accessor
	}
	if err != nil {
		ev.Result, ev.StatusCode = "error", StatusOf(err)
		switch ev.StatusCode {
		case 403:
			ev.Result = "denied"
		case 400, 404, 405, 413:
			ev.Result = "invalid"
		}
		ev.Error = err.Error()
		if ev.StatusCode >= 500 {
			// Internal errors may name storage keys; the server log has
			// the detail, the audit log the outcome.
			ev.Error = PublicMessage(err)
		}
		return ev
	}
	if resp == nil {
		ev.StatusCode = 204
		return ev
	}
	out := map[string]any{}
	if resp.Data != nil {
		out["data"] = resp.Data
	}
	if resp.Auth != nil {
		out["auth"] = map[string]any{
			"client_token": resp.Auth.ClientToken, "accessor": resp.Auth.Accessor,
			"policies": slices.Clone(resp.Auth.Policies), "lease_duration": int64(resp.Auth.LeaseDuration.Seconds()),
		}
	}
	if s := resp.Secret; s != nil && s.LeaseID != "" {
		out["lease_id"], out["lease_duration"], out["renewable"] = s.LeaseID, int64(s.TTL.Seconds()), s.Renewable
	}
	if len(out) > 0 {
		ev.Response = out
	} else if resp.Raw == nil {
		ev.StatusCode = 204
	}
	if resp.StatusCode != 0 {
		ev.StatusCode = resp.StatusCode
	}
	return ev
}

// StatusOf maps an error of the request path to its HTTP status.
func StatusOf(err error) int {
	var invalid *logical.InvalidRequestError
	switch {
	case err == nil:
		return 200
	case errors.As(err, &invalid), errors.Is(err, logical.ErrConflict):
		return 400
	case errors.Is(err, ErrSealed):
		return 503
	case errors.Is(err, ErrPermissionDenied), errors.Is(err, logical.ErrPermissionDenied):
		return 403
	case errors.Is(err, logical.ErrNotFound), errors.Is(err, logical.ErrUnsupportedPath):
		return 404
	case errors.Is(err, logical.ErrUnsupportedOperation):
		return 405
	case errors.Is(err, logical.ErrRateLimited):
		return 429
	case errors.Is(err, logical.ErrRequestTooLarge):
		return 413
	case errors.Is(err, lease.ErrRevokeFailed), errors.Is(err, lease.ErrRenewFailed), errors.Is(err, lease.ErrMountGone),
		errors.Is(err, logical.ErrUpstream):
		// The target of a leased credential is down or gone.
		return 502
	case errors.Is(err, ErrNotInitialized), errors.Is(err, ErrAlreadyInitialized):
		return 400
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return 503
	default:
		return 500
	}
}

// PublicMessage is what a client is told of err: the reason for bad
// input, a fixed phrase for refusals and internal errors.
func PublicMessage(err error) string {
	var invalid *logical.InvalidRequestError
	switch StatusOf(err) {
	case 400:
		switch {
		case errors.As(err, &invalid):
			return invalid.Error()
		case errors.Is(err, ErrNotInitialized):
			return "SecretHub is not initialized"
		case errors.Is(err, ErrAlreadyInitialized):
			return "SecretHub is already initialized"
		}
		return err.Error()
	case 403:
		return "permission denied"
	case 404:
		if errors.Is(err, logical.ErrUnsupportedPath) {
			return err.Error()
		}
		return "not found"
	case 405, 413:
		return err.Error()
	case 429:
		return "too many attempts; try again later"
	case 502:
		// Lease errors name the lease and the engine's reason, which
		// engines keep free of secrets.
		return err.Error()
	case 503:
		if errors.Is(err, ErrSealed) {
			return "SecretHub is sealed"
		}
		return "request cancelled or timed out"
	}
	if errors.Is(err, ErrAuditFailed) {
		return ErrAuditFailed.Error()
	}
	return "internal error; see the server log"
}

// newRequestID names a request for the audit log and the server log. If
// the random source fails, the ID falls back to the time: a request ID
// identifies, it protects nothing.
func (c *Core) newRequestID() string {
	id, err := c.uuid()
	if err != nil {
		return fmt.Sprintf("req-%d", c.now().UnixNano())
	}
	return id
}

// normalizePolicies trims, sorts and deduplicates policy names, dropping
// empty ones. It does not change case: policy names are lowercase, so
// "ROOT" names no policy at all rather than the root policy.
func normalizePolicies(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
