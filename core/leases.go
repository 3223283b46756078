package core

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/secrethub/secrethub/core/lease"
	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/mount"
	"github.com/secrethub/secrethub/core/token"
)

// leaseStoragePrefix holds the lease records in the barrier.
const leaseStoragePrefix = "sys/lease/"

// leaseRevokeTimeout bounds the immediate revocation of a credential
// that could not be leased.
const leaseRevokeTimeout = 30 * time.Second

// coreClock is the lease manager's clock over the core's Now, with real
// timers.
type coreClock struct{ now func() time.Time }

func (c coreClock) Now() time.Time { return c.now() }
func (c coreClock) At(t time.Time) <-chan time.Time {
	return time.After(t.Sub(c.now()))
}

// newLeaseManager builds the lease manager of one unseal. It reaches
// engines through the active state, never through a pointer it keeps.
func (c *Core) newLeaseManager() (*lease.Manager, error) {
	clock := c.leaseClock
	if clock == nil {
		clock = coreClock{c.now}
	}
	return lease.New(lease.Options{
		Storage:  mount.NewView(c.barrier, leaseStoragePrefix),
		Resolver: c.resolveEngine,
		Clock:    clock,
		Rand:     c.rand,
		Logger:   c.log.With("component", "lease"),
	})
}

// resolveEngine returns the engine mounted at mountPath.
func (c *Core) resolveEngine(mountPath string) (logical.Engine, bool) {
	st := c.active.Load()
	if st == nil {
		return nil, false
	}
	e, ok := st.engines[mountPath]
	return e, ok
}

// leaseSecret leases the credential an engine answered with, before the
// answer leaves the core. When the lease cannot be stored, the credential
// is revoked at once and the request fails: no credential without a
// lease.
func (c *Core) leaseSecret(ctx context.Context, st *activeState, req *logical.Request, caller *token.Entry, rt route, resp *logical.Response) error {
	s := resp.Secret
	l, err := st.leases.Create(ctx, lease.CreateParams{
		MountPath: req.MountPath, IssuePath: req.RelativePath, Secret: s, TokenAccessor: req.TokenAccessor,
		NotAfter: tokenEnd(caller),
	})
	if err == nil {
		s.LeaseID, s.TTL = l.ID, l.ExpireTime.Sub(l.IssueTime)
		return nil
	}
	rv, ok := rt.engine.(logical.SecretRevoker)
	if !ok {
		c.log.ErrorContext(ctx, "an engine issued a credential it cannot revoke; it was not handed out but may exist at the target",
			"request_id", req.ID, "mount", req.MountPath, "path", req.RelativePath)
		return fmt.Errorf("lease the credential of %s: %w", req.Path, err)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaseRevokeTimeout)
	defer cancel()
	if rerr := rv.RevokeSecret(rctx, &logical.SecretLease{
		IssuePath: req.RelativePath, InternalData: s.InternalData, IssueTime: req.Time, ExpireTime: req.Time,
	}); rerr != nil {
		c.log.ErrorContext(ctx, "a credential was issued but could neither be leased nor revoked; remove it at the target by hand",
			"request_id", req.ID, "mount", req.MountPath, "path", req.RelativePath,
			"lease_error", err.Error(), "revoke_error", rerr.Error())
	}
	return fmt.Errorf("lease the credential of %s (the credential was revoked): %w", req.Path, err)
}

// tokenEnd is when the token ends for good, renewals included: its
// maximum expiry, or its expiry when it cannot be renewed; zero for a
// token that never ends (root) or no token.
func tokenEnd(e *token.Entry) time.Time {
	switch {
	case e == nil:
		return time.Time{}
	case !e.MaxExpiresAt.IsZero():
		return e.MaxExpiresAt
	case !e.Renewable:
		return e.ExpiresAt
	}
	return time.Time{}
}

// revokeTokenLeases revokes the leases of revoked tokens. The tokens stay
// revoked whatever happens: leases whose revocation fails are retried in
// the background.
func (c *Core) revokeTokenLeases(ctx context.Context, accessors []string) {
	st := c.active.Load()
	if st == nil || len(accessors) == 0 {
		return
	}
	if err := st.leases.RevokeByToken(ctx, accessors...); err != nil {
		c.log.WarnContext(ctx, "some leases of revoked tokens could not be revoked yet; retrying in the background",
			"error", err.Error())
	}
}

// leaseError turns the lease manager's refusals into 400s naming the
// lease.
func leaseError(id string, err error) error {
	switch {
	case errors.Is(err, lease.ErrNotFound):
		return logical.Invalid("lease_id", "invalid lease: no lease %q (it never existed or was revoked)", id)
	case errors.Is(err, lease.ErrNotRenewable):
		return logical.Invalid("lease_id", "lease %q is not renewable", id)
	case errors.Is(err, lease.ErrExpired):
		return logical.Invalid("lease_id", "lease %q has expired", id)
	case errors.Is(err, lease.ErrRevoking):
		return logical.Invalid("lease_id", "lease %q is being revoked and cannot be renewed", id)
	}
	return err
}

// leaseRoute serves sys/leases and its Vault paths (p is below "sys/").
// The old Vault paths sys/renew, sys/revoke, sys/revoke-prefix and
// sys/revoke-force are served too.
func (c *Core) leaseRoute(req *logical.Request, p string) (route, error) {
	op := req.Operation
	isWrite := op == logical.OpCreate || op == logical.OpUpdate
	bad := func() (route, error) {
		return route{}, fmt.Errorf("%w: %s on %s", logical.ErrUnsupportedOperation, op, req.Path)
	}
	if p == "leases" {
		if op != logical.OpRead && op != logical.OpList {
			return bad()
		}
		return route{handler: c.sysLeasesList}, nil
	}
	p = strings.TrimPrefix(p, "leases/")
	switch {
	case p == "lookup" && isWrite:
		return route{handler: c.sysLeaseLookup}, nil
	case p == "lookup" || strings.HasPrefix(p, "lookup/"):
		if op != logical.OpList && op != logical.OpRead {
			return bad()
		}
		req.Operation = logical.OpList
		return route{handler: c.sysLeaseKeys(strings.TrimPrefix(strings.TrimPrefix(p, "lookup"), "/")), sudo: true}, nil
	case p == "renew" || strings.HasPrefix(p, "renew/"):
		if !isWrite {
			return bad()
		}
		return route{handler: c.sysLeaseRenew(strings.TrimPrefix(strings.TrimPrefix(p, "renew"), "/"))}, nil
	case p == "revoke" || strings.HasPrefix(p, "revoke/"):
		if !isWrite {
			return bad()
		}
		return route{handler: c.sysLeaseRevoke(strings.TrimPrefix(strings.TrimPrefix(p, "revoke"), "/"))}, nil
	case strings.HasPrefix(p, "revoke-prefix/"), strings.HasPrefix(p, "revoke-force/"):
		if !isWrite {
			return bad()
		}
		force := strings.HasPrefix(p, "revoke-force/")
		prefix := p[strings.IndexByte(p, '/')+1:]
		return route{handler: c.sysLeaseRevokePrefix(prefix, force), sudo: true}, nil
	}
	return route{}, fmt.Errorf("%w: %q", logical.ErrUnsupportedPath, req.Path)
}

// isLeasePath reports whether sys/<p> is a lease path.
func isLeasePath(p string) bool {
	if p == "leases" || strings.HasPrefix(p, "leases/") {
		return true
	}
	for _, old := range []string{"renew", "revoke", "revoke-prefix", "revoke-force"} {
		if p == old || strings.HasPrefix(p, old+"/") {
			return true
		}
	}
	return false
}

func (c *Core) leasesOf() (*lease.Manager, error) {
	st := c.active.Load()
	if st == nil {
		return nil, ErrSealed
	}
	return st.leases, nil
}

// leaseID is the lease named in the path, or else in the body.
func leaseID(req *logical.Request, fromPath string) (string, error) {
	if fromPath != "" {
		return fromPath, nil
	}
	id, err := fieldString(req.Data, "lease_id")
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", logical.Invalid("lease_id", "missing")
	}
	return id, nil
}

func timeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Format(time.RFC3339Nano)
}

// leaseData is Vault's lookup answer, plus the revocation state of a
// lease whose revocation failed.
func leaseData(l *lease.Lease, now time.Time) map[string]any {
	d := map[string]any{
		"id": l.ID, "issue_time": timeOrNil(l.IssueTime), "expire_time": timeOrNil(l.ExpireTime),
		"last_renewal": timeOrNil(l.LastRenewal), "last_renewal_time": timeOrNil(l.LastRenewal),
		"renewable": l.Renewable, "ttl": int64(l.RemainingTTL(now).Seconds()),
	}
	if r := l.Revocation; r != nil {
		d["revocation"] = map[string]any{
			"attempts": r.Attempts, "next_attempt": timeOrNil(r.NextAttempt), "last_error": r.LastError, "failed": r.Failed,
		}
	}
	return d
}

func (c *Core) sysLeaseLookup(_ context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	if err := checkFields(req.Data, "lease_id"); err != nil {
		return nil, err
	}
	id, err := leaseID(req, "")
	if err != nil {
		return nil, err
	}
	m, err := c.leasesOf()
	if err != nil {
		return nil, err
	}
	l, err := m.Lookup(id)
	if err != nil {
		return nil, leaseError(id, err)
	}
	return &logical.Response{Data: leaseData(l, req.Time)}, nil
}

func (c *Core) sysLeaseKeys(prefix string) tokenHandler {
	return func(_ context.Context, _ *logical.Request, _ *token.Entry) (*logical.Response, error) {
		m, err := c.leasesOf()
		if err != nil {
			return nil, err
		}
		keys := m.Keys(prefix)
		if len(keys) == 0 {
			return nil, logical.ErrNotFound
		}
		return &logical.Response{Data: map[string]any{"keys": keys}}, nil
	}
}

// sysLeasesList answers GET sys/leases: every lease (below ?prefix=),
// with its times and revocation state.
func (c *Core) sysLeasesList(_ context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	if err := checkFields(req.Data, "prefix"); err != nil {
		return nil, err
	}
	prefix, err := fieldString(req.Data, "prefix")
	if err != nil {
		return nil, err
	}
	m, err := c.leasesOf()
	if err != nil {
		return nil, err
	}
	ls := m.List(prefix)
	keys := make([]any, len(ls))
	leases := make([]any, len(ls))
	for i, l := range ls {
		keys[i] = l.ID
		d := leaseData(l, req.Time)
		d["mount"] = l.MountPath
		d["token_accessor"] = l.TokenAccessor
		leases[i] = d
	}
	return &logical.Response{Data: map[string]any{"keys": keys, "leases": leases}}, nil
}

func (c *Core) sysLeaseRenew(fromPath string) tokenHandler {
	return func(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
		if err := checkFields(req.Data, "lease_id", "increment"); err != nil {
			return nil, err
		}
		id, err := leaseID(req, fromPath)
		if err != nil {
			return nil, err
		}
		inc, err := fieldDuration(req.Data, "increment")
		if err != nil {
			return nil, err
		}
		m, err := c.leasesOf()
		if err != nil {
			return nil, err
		}
		l, capped, err := m.Renew(ctx, id, inc)
		if err != nil {
			return nil, leaseError(id, err)
		}
		resp := &logical.Response{Secret: &logical.Secret{LeaseID: l.ID, TTL: l.RemainingTTL(req.Time), Renewable: l.Renewable}}
		if capped {
			resp.Warnings = []string{"TTL capped by the lease's maximum TTL"}
		}
		return resp, nil
	}
}

func (c *Core) sysLeaseRevoke(fromPath string) tokenHandler {
	return func(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
		if err := checkFields(req.Data, "lease_id", "sync"); err != nil {
			return nil, err
		}
		id, err := leaseID(req, fromPath)
		if err != nil {
			return nil, err
		}
		sync, err := fieldBool(req.Data, "sync", true)
		if err != nil {
			return nil, err
		}
		m, err := c.leasesOf()
		if err != nil {
			return nil, err
		}
		if !sync {
			if err := m.RevokeAsync(ctx, id); err != nil {
				return nil, leaseError(id, err)
			}
			return &logical.Response{StatusCode: 202}, nil
		}
		if err := m.Revoke(ctx, id); err != nil {
			return nil, leaseError(id, err)
		}
		return nil, nil
	}
}

func (c *Core) sysLeaseRevokePrefix(prefix string, force bool) tokenHandler {
	return func(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
		if err := checkFields(req.Data, "sync"); err != nil {
			return nil, err
		}
		if strings.Trim(prefix, "/") == "" {
			return nil, logical.Invalid("prefix", "missing: give the lease ID prefix in the path")
		}
		m, err := c.leasesOf()
		if err != nil {
			return nil, err
		}
		if err := m.RevokePrefix(ctx, prefix, force); err != nil {
			return nil, err
		}
		return nil, nil
	}
}
