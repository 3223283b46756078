package approle

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/secrethub/secrethub/core/auth/internal/ratelimit"
	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
	"github.com/secrethub/secrethub/core/storage"
)

// Keys of a successful login's Response.Data: the token parameters that
// logical.Auth has no field for. The core reads them (LoginTokenParams does
// it typed), applies them to the token it creates, and should drop them
// from the response.
const (
	// DataTokenMaxTTL is the token's maximum lifetime, in whole seconds (an
	// int; 0: the core's maximum).
	DataTokenMaxTTL = "token_max_ttl"
	// DataTokenNumUses is how many requests the token may make (an int; 0:
	// unlimited).
	DataTokenNumUses = "token_num_uses"
	// DataTokenBoundCIDRs are the CIDR blocks the token may be used from (a
	// []string; empty: anywhere).
	DataTokenBoundCIDRs = "token_bound_cidrs"
)

// MetadataRoleName is the Auth.Metadata key holding the role's name.
const MetadataRoleName = reservedMetaKey

// LoginError is a refused login. Its message is the same whatever the
// reason, so a client cannot tell an unknown role ID from a wrong, expired
// or used-up secret ID or a refused address; Reason (and RoleName, when
// the role ID named one) say what happened, for the server's log. Neither
// holds a secret. It matches logical.ErrPermissionDenied.
type LoginError struct {
	Reason   string
	RoleName string
}

func (e *LoginError) Error() string {
	return "approle: login: " + logical.ErrPermissionDenied.Error() + ": invalid role_id or secret_id"
}

// Unwrap makes a LoginError match logical.ErrPermissionDenied.
func (e *LoginError) Unwrap() error { return logical.ErrPermissionDenied }

// RateLimitError is a login refused, before its credentials were looked
// at, because its source or its role ID failed too often. It matches
// logical.ErrRateLimited. Scope ("source" or "role_id") is for the log.
type RateLimitError struct {
	Scope string
	// RetryAfter is when the next attempt would be let through, for a
	// Retry-After header.
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return "approle: login: " + logical.ErrRateLimited.Error() + ": too many failed logins, retry later"
}

// Unwrap makes a RateLimitError match logical.ErrRateLimited.
func (e *RateLimitError) Unwrap() error { return logical.ErrRateLimited }

// TokenParams are the parameters of the token a login earns.
type TokenParams struct {
	Policies   []string
	TTL        time.Duration // 0: the core's default
	MaxTTL     time.Duration // 0: the core's maximum
	NumUses    int           // 0: unlimited
	BoundCIDRs []netip.Prefix
}

// LoginTokenParams reads the token parameters of a successful login
// response: Auth's policies and lease duration, and the Data keys above.
func LoginTokenParams(resp *logical.Response) (*TokenParams, error) {
	if resp == nil || resp.Auth == nil {
		return nil, errors.New("approle: not a login response")
	}
	p := &TokenParams{Policies: slices.Clone(resp.Auth.Policies), TTL: resp.Auth.LeaseDuration}
	if v, ok := resp.Data[DataTokenMaxTTL]; ok {
		n, ok := v.(int)
		if !ok || n < 0 {
			return nil, fmt.Errorf("approle: %s: want non-negative int seconds, got %T", DataTokenMaxTTL, v)
		}
		p.MaxTTL = time.Duration(n) * time.Second
	}
	if v, ok := resp.Data[DataTokenNumUses]; ok {
		n, ok := v.(int)
		if !ok || n < 0 {
			return nil, fmt.Errorf("approle: %s: want non-negative int, got %T", DataTokenNumUses, v)
		}
		p.NumUses = n
	}
	if v, ok := resp.Data[DataTokenBoundCIDRs]; ok {
		ss, ok := v.([]string)
		if !ok {
			return nil, fmt.Errorf("approle: %s: want []string, got %T", DataTokenBoundCIDRs, v)
		}
		cidrs, err := parsePrefixes(ss)
		if err != nil {
			return nil, fmt.Errorf("approle: %s: %w", DataTokenBoundCIDRs, err)
		}
		p.BoundCIDRs = cidrs
	}
	return p, nil
}

// login checks a role ID and secret ID and answers the Auth of the token
// they earn. Order: parse (400 on malformed input), rate limits, then the
// credentials; every credential failure is the same *LoginError.
func (e *Engine) login(ctx context.Context, req *logical.Request, data map[string]any) (*logical.Response, error) {
	if err := field.CheckFields(data, "role_id", "secret_id"); err != nil {
		return nil, err
	}
	roleID, err := loginField(data, "role_id")
	if err != nil {
		return nil, err
	}
	secretID, err := loginField(data, "secret_id")
	if err != nil {
		return nil, err
	}

	now := e.now()
	srcKey := ratelimit.SourceKey(req.ClientAddr)
	sum := sha256.Sum256([]byte(roleID))
	roleKey := string(sum[:])
	if e.sources != nil {
		if ok, wait := e.sources.Allow(srcKey, now); !ok {
			return nil, &RateLimitError{Scope: "source", RetryAfter: wait}
		}
		if ok, wait := e.roles.Allow(roleKey, now); !ok {
			return nil, &RateLimitError{Scope: "role_id", RetryAfter: wait}
		}
	}

	resp, err := e.checkLogin(ctx, req.ClientAddr, roleID, secretID)
	var denied *LoginError
	if e.sources != nil && errors.As(err, &denied) {
		// Only a failure that is the caller's counts; success and storage
		// errors do not.
		e.sources.Take(srcKey, now)
		e.roles.Take(roleKey, now)
	}
	return resp, err
}

// loginField reads role_id or secret_id. Values longer than any this
// engine issues or accepts are refused as malformed.
func loginField(data map[string]any, name string) (string, error) {
	v, ok, err := field.Get(data, name, field.String)
	if err != nil {
		return "", err
	}
	v = strings.TrimSpace(v)
	if !ok || v == "" {
		return "", logical.Invalid(name, "missing")
	}
	if len(v) > maxStringLen {
		return "", logical.Invalid(name, "longer than %d bytes", maxStringLen)
	}
	return v, nil
}

// checkLogin verifies the credentials, consuming one use of the secret ID.
func (e *Engine) checkLogin(ctx context.Context, addr netip.Addr, roleID, secretID string) (*logical.Response, error) {
	raw, err := logical.GetOptional(ctx, e.storage, roleIDPrefix+hashID(roleID))
	if err != nil {
		return nil, fmt.Errorf("approle: login: read role_id index: %w", err)
	}
	if raw == nil {
		return nil, &LoginError{Reason: "unknown role_id"}
	}
	name := string(raw)
	deny := func(format string, args ...any) error {
		return &LoginError{Reason: fmt.Sprintf(format, args...), RoleName: name}
	}

	unlock := e.lockRole(name)
	defer unlock()
	r, err := e.roleStore.Get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("approle: login: %w", err)
	}
	if r == nil || r.RoleID != roleID {
		return nil, deny("role_id index points to a role that is gone or has another role_id")
	}
	roleCIDRs, err := parsePrefixes(r.SecretIDBoundCIDRs)
	if err != nil {
		return nil, fmt.Errorf("approle: login: role %q: %w", name, err)
	}
	if len(roleCIDRs) > 0 && !allowed(addr, roleCIDRs) {
		return nil, deny("client address %s not in the role's secret_id_bound_cidrs", addrString(addr))
	}

	h := hashID(secretID)
	s, err := e.getSecretID(ctx, name, h)
	if err != nil {
		return nil, fmt.Errorf("approle: login: %w", err)
	}
	now := e.now()
	switch {
	case s == nil:
		return nil, deny("secret_id not found for the role")
	case s.expired(now):
		if err := e.deleteSecretID(ctx, name, h, s.Accessor); err != nil {
			return nil, fmt.Errorf("approle: login: %w", err)
		}
		return nil, deny("secret_id %s expired at %s", s.Accessor, s.ExpiresAt.Format(time.RFC3339))
	}
	idCIDRs, err := parsePrefixes(s.CIDRList)
	if err != nil {
		return nil, fmt.Errorf("approle: login: secret ID %s: %w", s.Accessor, err)
	}
	if len(idCIDRs) > 0 && !allowed(addr, idCIDRs) {
		return nil, deny("client address %s not in the cidr_list of secret_id %s", addrString(addr), s.Accessor)
	}

	switch {
	case s.NumUses == 1:
		if err := e.deleteSecretID(ctx, name, h, s.Accessor); err != nil {
			return nil, fmt.Errorf("approle: login: %w", err)
		}
	case s.NumUses > 1:
		s.NumUses--
		s.LastUpdated = now.UTC()
		raw, err := json.Marshal(s)
		if err != nil {
			return nil, fmt.Errorf("approle: login: encode secret ID: %w", err)
		}
		if err := e.storage.Txn(ctx, []storage.Op{storage.PutOp(secretIDKey(name, h), raw)}); err != nil {
			return nil, fmt.Errorf("approle: login: update secret ID of role %q: %w", name, err)
		}
	}

	tokenCIDRs := r.TokenBoundCIDRs
	if len(s.TokenBoundCIDRs) > 0 {
		tokenCIDRs = s.TokenBoundCIDRs
	}
	meta := maps.Clone(s.Metadata)
	if meta == nil {
		meta = map[string]string{}
	}
	meta[MetadataRoleName] = name
	policies := slices.Clone(r.TokenPolicies)
	if policies == nil {
		policies = []string{}
	}
	return &logical.Response{
		Auth: &logical.Auth{
			Policies:      policies,
			TokenPolicies: slices.Clone(policies),
			Metadata:      meta,
			LeaseDuration: r.TokenTTL,
			Renewable:     true,
		},
		Data: map[string]any{
			DataTokenMaxTTL:     seconds(r.TokenMaxTTL),
			DataTokenNumUses:    r.TokenNumUses,
			DataTokenBoundCIDRs: nonNil(tokenCIDRs),
		},
	}, nil
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "(unknown)"
	}
	return a.String()
}
