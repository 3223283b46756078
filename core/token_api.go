package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/token"
)

// Token TTL defaults, as Vault's.
const (
	DefaultTokenTTL = 768 * time.Hour
	MaxTokenTTL     = 768 * time.Hour
)

type tokenHandler func(ctx context.Context, req *logical.Request, caller *token.Entry) (*logical.Response, error)

// tokenRoute serves auth/token/*, Vault's token endpoints.
func (c *Core) tokenRoute(req *logical.Request) (route, error) {
	type def struct {
		h    tokenHandler
		ops  []logical.Operation
		sudo bool
	}
	write := []logical.Operation{logical.OpCreate, logical.OpUpdate}
	readWrite := []logical.Operation{logical.OpRead, logical.OpCreate, logical.OpUpdate}
	defs := map[string]def{
		"create":          {c.tokenCreate(false), write, false},
		"create-orphan":   {c.tokenCreate(true), write, true},
		"lookup":          {c.tokenLookup, readWrite, false},
		"lookup-self":     {c.tokenLookupSelf, readWrite, false},
		"lookup-accessor": {c.tokenLookupAccessor, write, false},
		"renew":           {c.tokenRenew, write, false},
		"renew-self":      {c.tokenRenewSelf, write, false},
		"renew-accessor":  {c.tokenRenewAccessor, write, false},
		"revoke":          {c.tokenRevoke, write, false},
		"revoke-self":     {c.tokenRevokeSelf, write, false},
		"revoke-accessor": {c.tokenRevokeAccessor, write, false},
		"revoke-orphan":   {c.tokenRevokeOrphan, write, true},
		"accessors":       {c.tokenAccessors, []logical.Operation{logical.OpList}, true},
	}
	d, ok := defs[req.RelativePath]
	if !ok {
		return route{}, fmt.Errorf("%w: %q", logical.ErrUnsupportedPath, req.Path)
	}
	if !slices.Contains(d.ops, req.Operation) {
		return route{}, fmt.Errorf("%w: %s on %s", logical.ErrUnsupportedOperation, req.Operation, req.Path)
	}
	return route{handler: d.h, sudo: d.sudo}, nil
}

func (c *Core) tokenCreate(orphan bool) tokenHandler {
	return func(ctx context.Context, req *logical.Request, caller *token.Entry) (*logical.Response, error) {
		d := req.Data
		if err := checkFields(d, "id", "policies", "meta", "ttl", "explicit_max_ttl", "display_name",
			"no_parent", "no_default_policy", "renewable", "num_uses", "type", "entity_alias", "lease", "period"); err != nil {
			return nil, err
		}
		policies, err := fieldStrings(d, "policies")
		if err != nil {
			return nil, err
		}
		meta, err := fieldStringMap(d, "meta")
		if err != nil {
			return nil, err
		}
		ttl, err := fieldDuration(d, "ttl")
		if err != nil {
			return nil, err
		}
		if ttl == 0 {
			if ttl, err = fieldDuration(d, "lease"); err != nil {
				return nil, err
			}
		}
		maxTTL, err := fieldDuration(d, "explicit_max_ttl")
		if err != nil {
			return nil, err
		}
		display, err := fieldString(d, "display_name")
		if err != nil {
			return nil, err
		}
		id, err := fieldString(d, "id")
		if err != nil {
			return nil, err
		}
		noParent, err := fieldBool(d, "no_parent", false)
		if err != nil {
			return nil, err
		}
		noDefault, err := fieldBool(d, "no_default_policy", false)
		if err != nil {
			return nil, err
		}
		renewable, err := fieldBool(d, "renewable", true)
		if err != nil {
			return nil, err
		}
		if n, ok := d["num_uses"]; ok && n != nil && fmt.Sprint(n) != "0" {
			return nil, logical.Invalid("num_uses", "limited-use tokens are not supported")
		}
		if p, ok := d["period"]; ok && p != nil && fmt.Sprint(p) != "" && fmt.Sprint(p) != "0" {
			return nil, logical.Invalid("period", "periodic tokens are not supported")
		}
		if t, _ := d["type"].(string); t != "" && t != "service" {
			return nil, logical.Invalid("type", "only service tokens are supported")
		}
		if id != "" && !caller.IsRoot() {
			return nil, denied("only a root token may choose a token id")
		}
		if noParent && !orphan && !caller.IsRoot() {
			return nil, denied("only a root token may create an orphan through create; use create-orphan")
		}
		orphan = orphan || noParent

		if len(policies) == 0 {
			policies = slices.Clone(caller.Policies)
		}
		policies = normalizePolicies(policies)
		if !noDefault && !slices.Contains(policies, token.RootPolicy) {
			policies = normalizePolicies(append(policies, "default"))
		}
		if !caller.IsRoot() {
			for _, p := range policies {
				if p != "default" && !slices.Contains(caller.Policies, p) {
					return nil, denied("a child token may only carry its parent's policies; %q is not one of them", p)
				}
			}
		}
		if ttl == 0 {
			ttl = c.defaultTokenTTL
		}
		if maxTTL == 0 || maxTTL > c.maxTokenTTL {
			maxTTL = c.maxTokenTTL
		}
		if slices.Contains(policies, token.RootPolicy) {
			// A root token made by a root token may live forever only if
			// asked to; otherwise it gets a TTL like any other.
			if d["ttl"] == nil && d["explicit_max_ttl"] == nil {
				ttl, maxTTL = 0, 0
			}
		}
		e := token.Entry{
			Policies: policies, DisplayName: "token", Meta: meta, Path: req.Path,
			TTL: ttl, ExplicitMaxTTL: maxTTL, Renewable: renewable,
		}
		if display != "" {
			e.DisplayName = "token-" + display
		}
		if !orphan {
			e.Parent = caller.Accessor
			// A child never outlives its parent.
			if !caller.ExpiresAt.IsZero() {
				if left := caller.ExpiresAt.Sub(req.Time); e.ExplicitMaxTTL == 0 || left < e.ExplicitMaxTTL {
					e.ExplicitMaxTTL = max(left, time.Second)
				}
			}
		}
		newID, entry, err := c.tokens.Create(ctx, id, e)
		if err != nil {
			if errors.Is(err, token.ErrNotFound) {
				return nil, denied("parent token no longer exists")
			}
			if errors.Is(err, token.ErrExists) {
				return nil, logical.Invalid("id", "a token with this id exists")
			}
			if id != "" && token.ValidateID(id) != nil {
				return nil, logical.Invalid("id", "%v", err)
			}
			return nil, err
		}
		return &logical.Response{Auth: authOf(newID, entry, entry.CreatedAt)}, nil
	}
}

func authOf(id string, e *token.Entry, now time.Time) *logical.Auth {
	return &logical.Auth{
		ClientToken: id, Accessor: e.Accessor, Policies: e.Policies, TokenPolicies: e.Policies,
		Metadata: e.Meta, LeaseDuration: e.RemainingTTL(now), Renewable: e.Renewable && !e.ExpiresAt.IsZero(),
		TokenType: "service", Orphan: e.Parent == "",
	}
}

// lookupData is Vault's token lookup answer. id is the token itself, shown
// only to a caller who presented it.
func lookupData(id string, e *token.Entry, now time.Time) map[string]any {
	var expire any
	if !e.ExpiresAt.IsZero() {
		expire = e.ExpiresAt.Format(time.RFC3339Nano)
	}
	meta := map[string]any{}
	for k, v := range e.Meta {
		meta[k] = v
	}
	return map[string]any{
		"accessor": e.Accessor, "creation_time": e.CreatedAt.Unix(), "creation_ttl": int64(e.TTL.Seconds()),
		"display_name": e.DisplayName, "entity_id": "", "expire_time": expire,
		"explicit_max_ttl": int64(e.ExplicitMaxTTL.Seconds()), "id": id, "issue_time": e.CreatedAt.Format(time.RFC3339Nano),
		"meta": meta, "num_uses": 0, "orphan": e.Parent == "", "path": e.Path, "policies": e.Policies,
		"renewable": e.Renewable && !e.ExpiresAt.IsZero(), "ttl": int64(e.RemainingTTL(now).Seconds()), "type": "service",
	}
}

// targetToken reads the "token" field and looks it up.
func (c *Core) targetToken(ctx context.Context, req *logical.Request) (string, *token.Entry, error) {
	id, err := fieldString(req.Data, "token")
	if err != nil {
		return "", nil, err
	}
	if id == "" {
		return "", nil, logical.Invalid("token", "missing")
	}
	e, err := c.tokens.Lookup(ctx, id)
	if errors.Is(err, token.ErrNotFound) || errors.Is(err, token.ErrExpired) {
		return "", nil, logical.Invalid("token", "bad token: unknown, revoked or expired")
	}
	return id, e, err
}

func (c *Core) targetAccessor(ctx context.Context, req *logical.Request) (*token.Entry, error) {
	acc, err := fieldString(req.Data, "accessor")
	if err != nil {
		return nil, err
	}
	if acc == "" {
		return nil, logical.Invalid("accessor", "missing")
	}
	e, err := c.tokens.LookupAccessor(ctx, acc)
	if errors.Is(err, token.ErrNotFound) || errors.Is(err, token.ErrExpired) {
		return nil, logical.Invalid("accessor", "no live token has this accessor")
	}
	return e, err
}

func (c *Core) tokenLookup(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	if err := checkFields(req.Data, "token"); err != nil {
		return nil, err
	}
	id, e, err := c.targetToken(ctx, req)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: lookupData(id, e, req.Time)}, nil
}

func (c *Core) tokenLookupSelf(_ context.Context, req *logical.Request, caller *token.Entry) (*logical.Response, error) {
	return &logical.Response{Data: lookupData(req.ClientToken, caller, req.Time)}, nil
}

func (c *Core) tokenLookupAccessor(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	if err := checkFields(req.Data, "accessor"); err != nil {
		return nil, err
	}
	e, err := c.targetAccessor(ctx, req)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: lookupData("", e, req.Time)}, nil
}

func (c *Core) renew(ctx context.Context, req *logical.Request, id string, e *token.Entry) (*logical.Response, error) {
	inc, err := fieldDuration(req.Data, "increment")
	if err != nil {
		return nil, err
	}
	ne, capped, err := c.tokens.Renew(ctx, e.Accessor, inc)
	if errors.Is(err, token.ErrNotRenewable) {
		return nil, logical.Invalid("token", "this token is not renewable")
	}
	if err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	resp := &logical.Response{Auth: authOf(id, ne, req.Time)}
	if capped {
		resp.Warnings = []string{"TTL capped by the token's maximum TTL"}
	}
	return resp, nil
}

func (c *Core) tokenRenew(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	if err := checkFields(req.Data, "token", "increment"); err != nil {
		return nil, err
	}
	id, e, err := c.targetToken(ctx, req)
	if err != nil {
		return nil, err
	}
	return c.renew(ctx, req, id, e)
}

func (c *Core) tokenRenewSelf(ctx context.Context, req *logical.Request, caller *token.Entry) (*logical.Response, error) {
	if err := checkFields(req.Data, "increment", "token"); err != nil {
		return nil, err
	}
	return c.renew(ctx, req, req.ClientToken, caller)
}

func (c *Core) tokenRenewAccessor(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	if err := checkFields(req.Data, "accessor", "increment"); err != nil {
		return nil, err
	}
	e, err := c.targetAccessor(ctx, req)
	if err != nil {
		return nil, err
	}
	resp, err := c.renew(ctx, req, "", e)
	if resp != nil && resp.Auth != nil {
		resp.Auth.ClientToken = ""
	}
	return resp, err
}

func (c *Core) revokeTree(ctx context.Context, accessor string) error {
	revoked, err := c.tokens.Revoke(ctx, accessor)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	c.log.InfoContext(ctx, "tokens revoked", "accessor", accessor, "count", len(revoked))
	c.closeAgentsOf(revoked)
	c.revokeTokenLeases(ctx, revoked)
	return nil
}

func (c *Core) tokenRevoke(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	if err := checkFields(req.Data, "token"); err != nil {
		return nil, err
	}
	_, e, err := c.targetToken(ctx, req)
	if err != nil {
		return nil, err
	}
	return nil, c.revokeTree(ctx, e.Accessor)
}

func (c *Core) tokenRevokeSelf(ctx context.Context, _ *logical.Request, caller *token.Entry) (*logical.Response, error) {
	return nil, c.revokeTree(ctx, caller.Accessor)
}

func (c *Core) tokenRevokeAccessor(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	if err := checkFields(req.Data, "accessor"); err != nil {
		return nil, err
	}
	e, err := c.targetAccessor(ctx, req)
	if err != nil {
		return nil, err
	}
	return nil, c.revokeTree(ctx, e.Accessor)
}

func (c *Core) tokenRevokeOrphan(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	if err := checkFields(req.Data, "token"); err != nil {
		return nil, err
	}
	_, e, err := c.targetToken(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := c.tokens.RevokeOrphan(ctx, e.Accessor); err != nil {
		return nil, fmt.Errorf("revoke-orphan: %w", err)
	}
	c.closeAgentsOf([]string{e.Accessor})
	c.revokeTokenLeases(ctx, []string{e.Accessor})
	return nil, nil
}

func (c *Core) tokenAccessors(ctx context.Context, _ *logical.Request, _ *token.Entry) (*logical.Response, error) {
	keys, err := c.tokens.Accessors(ctx)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"keys": keys}}, nil
}
