package approle

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
	"github.com/secrethub/secrethub/core/storage"
)

// roleEntry is a role as stored.
type roleEntry struct {
	RoleID             string        `json:"role_id"`
	TokenPolicies      []string      `json:"token_policies"`
	TokenTTL           time.Duration `json:"token_ttl"`
	TokenMaxTTL        time.Duration `json:"token_max_ttl"`
	TokenNumUses       int           `json:"token_num_uses"`
	TokenBoundCIDRs    []string      `json:"token_bound_cidrs"`
	SecretIDTTL        time.Duration `json:"secret_id_ttl"`
	SecretIDNumUses    int           `json:"secret_id_num_uses"`
	SecretIDBoundCIDRs []string      `json:"secret_id_bound_cidrs"`
}

// roleFields are the fields a write to role/<name> accepts.
var roleFields = []string{
	"role_id", "token_policies", "policies", "token_ttl", "token_max_ttl", "token_num_uses",
	"token_bound_cidrs", "secret_id_ttl", "secret_id_num_uses", "secret_id_bound_cidrs", "bind_secret_id",
}

// rolePatch is a parsed write to a role: nil fields were not given.
type rolePatch struct {
	roleID             *string
	tokenPolicies      []string
	tokenTTL           *time.Duration
	tokenMaxTTL        *time.Duration
	tokenNumUses       *int
	tokenBoundCIDRs    []netip.Prefix
	secretIDTTL        *time.Duration
	secretIDNumUses    *int
	secretIDBoundCIDRs []netip.Prefix
	hasPolicies        bool
	hasTokenCIDRs      bool
	hasSecretCIDRs     bool
}

// parseRolePatch checks and parses a role write, before any storage is
// touched.
func parseRolePatch(data map[string]any) (*rolePatch, error) {
	if err := field.CheckFields(data, roleFields...); err != nil {
		return nil, err
	}
	var p rolePatch
	var err error
	var ok bool
	if bind, ok, err := field.Get(data, "bind_secret_id", field.Bool); err != nil {
		return nil, err
	} else if ok && !bind {
		return nil, logical.Invalid("bind_secret_id", "false is not supported: every login must present a secret_id (bind logins to addresses with secret_id_bound_cidrs in addition, not instead)")
	}
	if id, ok, err := field.Get(data, "role_id", parseRoleID); err != nil {
		return nil, err
	} else if ok {
		p.roleID = &id
	}
	tp, hasTP, err := field.Get(data, "token_policies", parsePolicies)
	if err != nil {
		return nil, err
	}
	lp, hasLP, err := field.Get(data, "policies", parsePolicies)
	if err != nil {
		return nil, err
	}
	switch {
	case hasTP && hasLP && !slices.Equal(tp, lp):
		return nil, logical.Invalid("policies", "conflicts with token_policies; give only token_policies (policies is its legacy name)")
	case hasTP:
		p.tokenPolicies, p.hasPolicies = tp, true
	case hasLP:
		p.tokenPolicies, p.hasPolicies = lp, true
	}
	for _, d := range []struct {
		name string
		dst  **time.Duration
	}{{"token_ttl", &p.tokenTTL}, {"token_max_ttl", &p.tokenMaxTTL}, {"secret_id_ttl", &p.secretIDTTL}} {
		var v time.Duration
		if v, ok, err = field.Get(data, d.name, parseTTL); err != nil {
			return nil, err
		} else if ok {
			*d.dst = &v
		}
	}
	for _, n := range []struct {
		name string
		dst  **int
	}{{"token_num_uses", &p.tokenNumUses}, {"secret_id_num_uses", &p.secretIDNumUses}} {
		var v int
		if v, ok, err = field.Get(data, n.name, parseInt); err != nil {
			return nil, err
		} else if ok {
			*n.dst = &v
		}
	}
	if p.tokenBoundCIDRs, p.hasTokenCIDRs, err = field.Get(data, "token_bound_cidrs", parseCIDRs); err != nil {
		return nil, err
	}
	if p.secretIDBoundCIDRs, p.hasSecretCIDRs, err = field.Get(data, "secret_id_bound_cidrs", parseCIDRs); err != nil {
		return nil, err
	}
	return &p, nil
}

// parseRoleID checks a role ID chosen by an operator.
func parseRoleID(v any) (string, error) {
	s, err := field.String(v)
	if err != nil {
		return "", err
	}
	switch {
	case s == "" || len(s) > maxStringLen:
		return "", fmt.Errorf("must be 1 to %d bytes", maxStringLen)
	case strings.TrimSpace(s) != s || field.HasControl(s):
		return "", fmt.Errorf("must not have leading or trailing spaces or control characters")
	}
	return s, nil
}

// apply merges p into r.
func (p *rolePatch) apply(r *roleEntry) {
	if p.hasPolicies {
		r.TokenPolicies = p.tokenPolicies
	}
	if p.tokenTTL != nil {
		r.TokenTTL = *p.tokenTTL
	}
	if p.tokenMaxTTL != nil {
		r.TokenMaxTTL = *p.tokenMaxTTL
	}
	if p.tokenNumUses != nil {
		r.TokenNumUses = *p.tokenNumUses
	}
	if p.hasTokenCIDRs {
		r.TokenBoundCIDRs = prefixStrings(p.tokenBoundCIDRs)
	}
	if p.secretIDTTL != nil {
		r.SecretIDTTL = *p.secretIDTTL
	}
	if p.secretIDNumUses != nil {
		r.SecretIDNumUses = *p.secretIDNumUses
	}
	if p.hasSecretCIDRs {
		r.SecretIDBoundCIDRs = prefixStrings(p.secretIDBoundCIDRs)
	}
}

// validate checks what only the merged role can tell.
func (r *roleEntry) validate() error {
	if r.TokenTTL > 0 && r.TokenMaxTTL > 0 && r.TokenTTL > r.TokenMaxTTL {
		return logical.Invalid("token_ttl", "%d seconds exceeds token_max_ttl (%d seconds)",
			int64(r.TokenTTL/time.Second), int64(r.TokenMaxTTL/time.Second))
	}
	return nil
}

// mustRole reads a role that the request needs to exist.
func (e *Engine) mustRole(ctx context.Context, name string) (*roleEntry, error) {
	r, err := e.roleStore.Get(ctx, name)
	if err == nil && r == nil {
		err = e.roleStore.NotFound(name)
	}
	return r, err
}

func (e *Engine) readRole(ctx context.Context, name string) (*logical.Response, error) {
	r, err := e.mustRole(ctx, name)
	if err != nil {
		return nil, err
	}
	policies := slices.Clone(r.TokenPolicies)
	if policies == nil {
		policies = []string{}
	}
	return &logical.Response{Data: map[string]any{
		"bind_secret_id":        true,
		"token_policies":        policies,
		"policies":              slices.Clone(policies),
		"token_ttl":             seconds(r.TokenTTL),
		"token_max_ttl":         seconds(r.TokenMaxTTL),
		"token_num_uses":        r.TokenNumUses,
		"token_bound_cidrs":     nonNil(r.TokenBoundCIDRs),
		"secret_id_ttl":         seconds(r.SecretIDTTL),
		"secret_id_num_uses":    r.SecretIDNumUses,
		"secret_id_bound_cidrs": nonNil(r.SecretIDBoundCIDRs),
	}}, nil
}

func seconds(d time.Duration) int { return int(d / time.Second) }

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return slices.Clone(ss)
}

// writeRole creates the role, or updates the fields given of an existing
// one, as Vault does.
func (e *Engine) writeRole(ctx context.Context, name string, data map[string]any) (*logical.Response, error) {
	p, err := parseRolePatch(data)
	if err != nil {
		return nil, err
	}
	unlock := e.lockRole(name)
	defer unlock()
	r, err := e.roleStore.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	creating := r == nil
	if creating {
		r = &roleEntry{}
	}
	oldRoleID := r.RoleID
	p.apply(r)
	if err := r.validate(); err != nil {
		return nil, err
	}
	newRoleID := oldRoleID
	switch {
	case p.roleID != nil:
		newRoleID = *p.roleID
	case creating:
		if newRoleID, err = e.newUUID(); err != nil {
			return nil, err
		}
	}
	return nil, e.storeRole(ctx, name, r, oldRoleID, newRoleID)
}

// storeRole writes r under name with role ID newRoleID, moving the role ID
// index from oldRoleID when they differ. The caller holds the role's lock.
func (e *Engine) storeRole(ctx context.Context, name string, r *roleEntry, oldRoleID, newRoleID string) error {
	r.RoleID = newRoleID
	raw, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("approle: encode role %q: %w", name, err)
	}
	ops := []storage.Op{storage.PutOp(rolePrefix+name, raw)}
	if newRoleID != oldRoleID {
		e.roleIDMu.Lock()
		defer e.roleIDMu.Unlock()
		owner, err := logical.GetOptional(ctx, e.storage, roleIDPrefix+hashID(newRoleID))
		if err != nil {
			return fmt.Errorf("approle: read role_id index: %w", err)
		}
		if owner != nil && string(owner) != name {
			return logical.Invalid("role_id", "already in use by another role")
		}
		ops = append(ops, storage.PutOp(roleIDPrefix+hashID(newRoleID), []byte(name)))
		if oldRoleID != "" {
			ops = append(ops, storage.DeleteOp(roleIDPrefix+hashID(oldRoleID)))
		}
	}
	if err := e.storage.Txn(ctx, ops); err != nil {
		return fmt.Errorf("approle: write role %q: %w", name, err)
	}
	return nil
}

// deleteRole removes a role with all its secret IDs. Secret IDs go first,
// in batches, so that a role re-created under the same name never finds a
// secret ID of its predecessor; the role and its role ID index go last.
func (e *Engine) deleteRole(ctx context.Context, name string) (*logical.Response, error) {
	unlock := e.lockRole(name)
	defer unlock()
	r, err := e.roleStore.Get(ctx, name)
	if err != nil || r == nil {
		return nil, err
	}
	if _, err := e.deleteSecretIDsOf(ctx, name, func(*secretIDEntry) bool { return true }); err != nil {
		return nil, err
	}
	e.roleIDMu.Lock()
	defer e.roleIDMu.Unlock()
	ops := []storage.Op{storage.DeleteOp(rolePrefix + name)}
	if r.RoleID != "" {
		// The index may already point at another role only if storage was
		// tampered with; delete it only if it is this role's.
		owner, err := logical.GetOptional(ctx, e.storage, roleIDPrefix+hashID(r.RoleID))
		if err != nil {
			return nil, fmt.Errorf("approle: read role_id index: %w", err)
		}
		if string(owner) == name {
			ops = append(ops, storage.DeleteOp(roleIDPrefix+hashID(r.RoleID)))
		}
	}
	if err := e.storage.Txn(ctx, ops); err != nil {
		return nil, fmt.Errorf("approle: delete role %q: %w", name, err)
	}
	return nil, nil
}

func (e *Engine) readRoleID(ctx context.Context, name string) (*logical.Response, error) {
	r, err := e.mustRole(ctx, name)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"role_id": r.RoleID}}, nil
}

// writeRoleID sets a role ID chosen by the operator; it must be unique.
func (e *Engine) writeRoleID(ctx context.Context, name string, data map[string]any) (*logical.Response, error) {
	if err := field.CheckFields(data, "role_id"); err != nil {
		return nil, err
	}
	id, ok, err := field.Get(data, "role_id", parseRoleID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, logical.Invalid("role_id", "missing")
	}
	unlock := e.lockRole(name)
	defer unlock()
	r, err := e.mustRole(ctx, name)
	if err != nil {
		return nil, err
	}
	if r.RoleID == id {
		return nil, nil
	}
	return nil, e.storeRole(ctx, name, r, r.RoleID, id)
}

// RoleTokenParams returns the token parameters that role name grants now,
// for the core to re-check a token of this mount at renewal (a deleted
// role answers logical.ErrNotFound, and its tokens should not renew).
func (e *Engine) RoleTokenParams(ctx context.Context, name string) (*TokenParams, error) {
	if err := validateName(name); err != nil {
		return nil, err
	}
	r, err := e.mustRole(ctx, name)
	if err != nil {
		return nil, err
	}
	cidrs, err := parsePrefixes(r.TokenBoundCIDRs)
	if err != nil {
		return nil, fmt.Errorf("approle: role %q: %w", name, err)
	}
	return &TokenParams{
		Policies: slices.Clone(r.TokenPolicies), TTL: r.TokenTTL, MaxTTL: r.TokenMaxTTL,
		NumUses: r.TokenNumUses, BoundCIDRs: cidrs,
	}, nil
}

// validAccessor reports whether s can be an accessor: one path segment.
func validAccessor(s string) bool {
	return s != "" && len(s) <= maxAccessorLen && utf8.ValidString(s) && !field.HasControl(s) &&
		!strings.Contains(s, "/") && s != "." && s != ".."
}
