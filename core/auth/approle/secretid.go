package approle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
	"github.com/secrethub/secrethub/core/storage"
)

// secretIDEntry is a secret ID as stored, under the hash of the ID. The ID
// itself is not part of it.
type secretIDEntry struct {
	Accessor        string            `json:"accessor"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	CIDRList        []string          `json:"cidr_list,omitempty"`
	TokenBoundCIDRs []string          `json:"token_bound_cidrs,omitempty"`
	// NumUses is the number of logins left; 0 means unlimited.
	NumUses int `json:"num_uses"`
	// TTL is the lifetime given at creation; ExpiresAt is zero without one.
	TTL         time.Duration `json:"ttl"`
	CreatedAt   time.Time     `json:"created_at"`
	ExpiresAt   time.Time     `json:"expires_at,omitzero"`
	LastUpdated time.Time     `json:"last_updated"`
}

func (s *secretIDEntry) expired(now time.Time) bool {
	return !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt)
}

func secretIDKey(role, hash string) string { return secretIDPrefix + role + "/" + hash }
func accessorKey(role, acc string) string  { return accessorPrefix + role + "/" + acc }

// getSecretID reads the secret ID entry stored under hash; nil when there
// is none.
func (e *Engine) getSecretID(ctx context.Context, role, hash string) (*secretIDEntry, error) {
	raw, err := logical.GetOptional(ctx, e.storage, secretIDKey(role, hash))
	if err != nil {
		return nil, fmt.Errorf("approle: read secret ID of role %q: %w", role, err)
	}
	if raw == nil {
		return nil, nil
	}
	var s secretIDEntry
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("approle: decode secret ID of role %q: %w", role, err)
	}
	return &s, nil
}

// generateSecretID makes a new secret ID for a role. Its ttl, num_uses and
// CIDR lists may only narrow the role's.
func (e *Engine) generateSecretID(ctx context.Context, name string, data map[string]any) (*logical.Response, error) {
	if err := field.CheckFields(data, "metadata", "cidr_list", "token_bound_cidrs", "ttl", "num_uses"); err != nil {
		return nil, err
	}
	meta, _, err := field.Get(data, "metadata", parseMetadata)
	if err != nil {
		return nil, err
	}
	cidrs, _, err := field.Get(data, "cidr_list", parseCIDRs)
	if err != nil {
		return nil, err
	}
	tokenCIDRs, _, err := field.Get(data, "token_bound_cidrs", parseCIDRs)
	if err != nil {
		return nil, err
	}
	ttl, hasTTL, err := field.Get(data, "ttl", parseTTL)
	if err != nil {
		return nil, err
	}
	uses, hasUses, err := field.Get(data, "num_uses", parseInt)
	if err != nil {
		return nil, err
	}

	unlock := e.lockRole(name)
	defer unlock()
	r, err := e.mustRole(ctx, name)
	if err != nil {
		return nil, err
	}
	switch {
	case !hasTTL:
		ttl = r.SecretIDTTL
	case r.SecretIDTTL > 0 && (ttl == 0 || ttl > r.SecretIDTTL):
		return nil, logical.Invalid("ttl", "must be set and at most the role's secret_id_ttl (%d seconds)", seconds(r.SecretIDTTL))
	}
	switch {
	case !hasUses:
		uses = r.SecretIDNumUses
	case r.SecretIDNumUses > 0 && (uses == 0 || uses > r.SecretIDNumUses):
		return nil, logical.Invalid("num_uses", "must be set and at most the role's secret_id_num_uses (%d)", r.SecretIDNumUses)
	}
	if err := narrows("cidr_list", cidrs, r.SecretIDBoundCIDRs, "secret_id_bound_cidrs"); err != nil {
		return nil, err
	}
	if err := narrows("token_bound_cidrs", tokenCIDRs, r.TokenBoundCIDRs, "token_bound_cidrs"); err != nil {
		return nil, err
	}

	id, err := e.newSecretID()
	if err != nil {
		return nil, err
	}
	acc, err := e.newUUID()
	if err != nil {
		return nil, err
	}
	now := e.now().UTC()
	s := secretIDEntry{
		Accessor: acc, Metadata: meta, NumUses: uses, TTL: ttl,
		CreatedAt: now, LastUpdated: now,
	}
	if len(cidrs) > 0 {
		s.CIDRList = prefixStrings(cidrs)
	}
	if len(tokenCIDRs) > 0 {
		s.TokenBoundCIDRs = prefixStrings(tokenCIDRs)
	}
	if ttl > 0 {
		s.ExpiresAt = now.Add(ttl)
	}
	raw, err := json.Marshal(&s)
	if err != nil {
		return nil, fmt.Errorf("approle: encode secret ID: %w", err)
	}
	h := hashID(id)
	if err := e.storage.Txn(ctx, []storage.Op{
		storage.PutOp(secretIDKey(name, h), raw),
		storage.PutOp(accessorKey(name, acc), []byte(h)),
	}); err != nil {
		return nil, fmt.Errorf("approle: store secret ID of role %q: %w", name, err)
	}
	return &logical.Response{Data: map[string]any{
		"secret_id":          id,
		"secret_id_accessor": acc,
		"secret_id_ttl":      seconds(ttl),
		"secret_id_num_uses": uses,
	}}, nil
}

// narrows checks that the blocks given for field lie inside the role's
// (when the role has any).
func narrows(field string, given []netip.Prefix, role []string, roleField string) error {
	if len(role) == 0 || len(given) == 0 {
		return nil
	}
	r, err := parsePrefixes(role)
	if err != nil {
		return fmt.Errorf("approle: role's %s: %w", roleField, err)
	}
	if p, ok := within(given, r); !ok {
		return logical.Invalid(field, "%s is not within the role's %s", p, roleField)
	}
	return nil
}

func (e *Engine) listSecretIDs(ctx context.Context, name string) (*logical.Response, error) {
	if _, err := e.mustRole(ctx, name); err != nil {
		return nil, err
	}
	accs, err := logical.ListKeys(ctx, e.storage, accessorPrefix+name+"/")
	if err != nil {
		return nil, fmt.Errorf("approle: list secret IDs of role %q: %w", name, err)
	}
	return logical.ListResponse(accs), nil
}

// secretIDFromData reads the secret_id field of a lookup or destroy.
func secretIDFromData(data map[string]any, strict bool) (string, error) {
	if strict {
		if err := field.CheckFields(data, "secret_id"); err != nil {
			return "", err
		}
	}
	id, ok, err := field.Get(data, "secret_id", field.String)
	if err != nil {
		return "", err
	}
	if !ok || strings.TrimSpace(id) == "" {
		return "", logical.Invalid("secret_id", "missing")
	}
	return strings.TrimSpace(id), nil
}

// accessorFromData reads the secret_id_accessor field.
func accessorFromData(data map[string]any, strict bool) (string, error) {
	if strict {
		if err := field.CheckFields(data, "secret_id_accessor"); err != nil {
			return "", err
		}
	}
	acc, ok, err := field.Get(data, "secret_id_accessor", field.String)
	if err != nil {
		return "", err
	}
	acc = strings.TrimSpace(acc)
	if !ok || acc == "" {
		return "", logical.Invalid("secret_id_accessor", "missing")
	}
	if !validAccessor(acc) {
		return "", logical.Invalid("secret_id_accessor", "not an accessor")
	}
	return acc, nil
}

// describe is what lookups answer of a secret ID: never the ID itself.
func describe(s *secretIDEntry) map[string]any {
	meta := maps.Clone(s.Metadata)
	if meta == nil {
		meta = map[string]string{}
	}
	var expires string
	if !s.ExpiresAt.IsZero() {
		expires = s.ExpiresAt.Format(time.RFC3339Nano)
	}
	return map[string]any{
		"secret_id_accessor": s.Accessor,
		"metadata":           meta,
		"cidr_list":          nonNil(s.CIDRList),
		"token_bound_cidrs":  nonNil(s.TokenBoundCIDRs),
		"secret_id_num_uses": s.NumUses,
		"secret_id_ttl":      seconds(s.TTL),
		"creation_time":      s.CreatedAt.Format(time.RFC3339Nano),
		"expiration_time":    expires,
		"last_updated_time":  s.LastUpdated.Format(time.RFC3339Nano),
	}
}

func (e *Engine) lookupSecretID(ctx context.Context, name string, data map[string]any) (*logical.Response, error) {
	id, err := secretIDFromData(data, true)
	if err != nil {
		return nil, err
	}
	if _, err := e.mustRole(ctx, name); err != nil {
		return nil, err
	}
	s, err := e.getSecretID(ctx, name, hashID(id))
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("approle: secret ID of role %q: %w", name, logical.ErrNotFound)
	}
	return &logical.Response{Data: describe(s)}, nil
}

// destroySecretID deletes a secret ID given by value. Destroying one that
// does not exist is not an error, as in Vault. A delete takes its fields
// from the query, where other parameters may ride along; a write is
// checked strictly.
func (e *Engine) destroySecretID(ctx context.Context, name string, data map[string]any, strict bool) (*logical.Response, error) {
	id, err := secretIDFromData(data, strict)
	if err != nil {
		return nil, err
	}
	unlock := e.lockRole(name)
	defer unlock()
	if _, err := e.mustRole(ctx, name); err != nil {
		return nil, err
	}
	h := hashID(id)
	s, err := e.getSecretID(ctx, name, h)
	if err != nil || s == nil {
		return nil, err
	}
	return nil, e.deleteSecretID(ctx, name, h, s.Accessor)
}

// deleteSecretID removes a secret ID and its accessor. The caller holds the
// role's lock.
func (e *Engine) deleteSecretID(ctx context.Context, name, hash, acc string) error {
	ops := []storage.Op{storage.DeleteOp(secretIDKey(name, hash))}
	if validAccessor(acc) {
		ops = append(ops, storage.DeleteOp(accessorKey(name, acc)))
	}
	if err := e.storage.Txn(ctx, ops); err != nil {
		return fmt.Errorf("approle: delete secret ID of role %q: %w", name, err)
	}
	return nil
}

// byAccessor resolves an accessor to its secret ID's hash and entry. A
// missing accessor, or one whose secret ID is gone, is logical.ErrNotFound.
func (e *Engine) byAccessor(ctx context.Context, name, acc string) (string, *secretIDEntry, error) {
	raw, err := logical.GetOptional(ctx, e.storage, accessorKey(name, acc))
	if err != nil {
		return "", nil, fmt.Errorf("approle: read accessor of role %q: %w", name, err)
	}
	if raw == nil {
		return "", nil, fmt.Errorf("approle: secret ID accessor of role %q: %w", name, logical.ErrNotFound)
	}
	h := string(raw)
	s, err := e.getSecretID(ctx, name, h)
	if err != nil {
		return "", nil, err
	}
	if s == nil || s.Accessor != acc {
		return h, nil, fmt.Errorf("approle: secret ID accessor of role %q: %w", name, logical.ErrNotFound)
	}
	return h, s, nil
}

func (e *Engine) lookupAccessor(ctx context.Context, name string, data map[string]any) (*logical.Response, error) {
	acc, err := accessorFromData(data, true)
	if err != nil {
		return nil, err
	}
	if _, err := e.mustRole(ctx, name); err != nil {
		return nil, err
	}
	_, s, err := e.byAccessor(ctx, name, acc)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: describe(s)}, nil
}

// destroyAccessor deletes the secret ID an accessor names. An unknown
// accessor is logical.ErrNotFound, as Vault refuses it too. A dangling
// accessor (its secret ID gone) is removed.
func (e *Engine) destroyAccessor(ctx context.Context, name string, data map[string]any, strict bool) (*logical.Response, error) {
	acc, err := accessorFromData(data, strict)
	if err != nil {
		return nil, err
	}
	unlock := e.lockRole(name)
	defer unlock()
	if _, err := e.mustRole(ctx, name); err != nil {
		return nil, err
	}
	h, s, err := e.byAccessor(ctx, name, acc)
	switch {
	case errors.Is(err, logical.ErrNotFound) && h != "":
		if err := e.storage.Delete(ctx, accessorKey(name, acc)); err != nil {
			return nil, fmt.Errorf("approle: delete accessor of role %q: %w", name, err)
		}
		return nil, nil
	case err != nil:
		return nil, err
	}
	return nil, e.deleteSecretID(ctx, name, h, s.Accessor)
}

// deleteBatch is how many secret IDs one transaction deletes.
const deleteBatch = 256

// deleteSecretIDsOf deletes the secret IDs of role name for which drop
// answers true (an undecodable entry is always dropped), with their
// accessors, and then accessors left without a secret ID. It returns how
// many secret IDs it deleted. The caller holds the role's lock.
func (e *Engine) deleteSecretIDsOf(ctx context.Context, name string, drop func(*secretIDEntry) bool) (int, error) {
	hashes, err := e.storage.List(ctx, secretIDPrefix+name+"/")
	if err != nil {
		return 0, fmt.Errorf("approle: list secret IDs of role %q: %w", name, err)
	}
	deleted := 0
	var ops []storage.Op
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		if err := e.storage.Txn(ctx, ops); err != nil {
			return fmt.Errorf("approle: delete secret IDs of role %q: %w", name, err)
		}
		ops = ops[:0]
		return nil
	}
	for _, h := range hashes {
		if strings.HasSuffix(h, "/") {
			continue
		}
		raw, err := logical.GetOptional(ctx, e.storage, secretIDKey(name, h))
		if err != nil {
			return deleted, fmt.Errorf("approle: read secret ID of role %q: %w", name, err)
		}
		if raw == nil {
			continue
		}
		var s *secretIDEntry
		if json.Unmarshal(raw, &s) != nil {
			s = nil // undecodable: always dropped
		} else if s != nil && !drop(s) {
			continue
		}
		ops = append(ops, storage.DeleteOp(secretIDKey(name, h)))
		if s != nil && validAccessor(s.Accessor) {
			ops = append(ops, storage.DeleteOp(accessorKey(name, s.Accessor)))
		}
		deleted++
		if len(ops) >= deleteBatch {
			if err := flush(); err != nil {
				return deleted, err
			}
		}
	}
	if err := flush(); err != nil {
		return deleted, err
	}
	// Accessors whose secret ID is gone (left by an interrupted write).
	accs, err := e.storage.List(ctx, accessorPrefix+name+"/")
	if err != nil {
		return deleted, fmt.Errorf("approle: list accessors of role %q: %w", name, err)
	}
	for _, acc := range accs {
		if strings.HasSuffix(acc, "/") {
			continue
		}
		raw, err := logical.GetOptional(ctx, e.storage, accessorKey(name, acc))
		if err != nil {
			return deleted, fmt.Errorf("approle: read accessor of role %q: %w", name, err)
		}
		if raw != nil {
			if s, err := logical.GetOptional(ctx, e.storage, secretIDKey(name, string(raw))); err != nil {
				return deleted, fmt.Errorf("approle: read secret ID of role %q: %w", name, err)
			} else if s != nil {
				continue
			}
		}
		ops = append(ops, storage.DeleteOp(accessorKey(name, acc)))
		if len(ops) >= deleteBatch {
			if err := flush(); err != nil {
				return deleted, err
			}
		}
	}
	return deleted, flush()
}

// Tidy deletes expired secret IDs, secret IDs of roles that no longer
// exist, and accessors without a secret ID. Expired secret IDs cannot be
// used but stay in storage until a login attempt, a destroy or Tidy
// removes them; the core should call Tidy periodically. It is also served
// at tidy/secret-id. It returns how many secret IDs it deleted.
func (e *Engine) Tidy(ctx context.Context) (int, error) {
	names, err := e.storage.List(ctx, secretIDPrefix)
	if err != nil {
		return 0, fmt.Errorf("approle: tidy: list: %w", err)
	}
	accNames, err := e.storage.List(ctx, accessorPrefix)
	if err != nil {
		return 0, fmt.Errorf("approle: tidy: list: %w", err)
	}
	seen := map[string]bool{}
	total := 0
	for _, folder := range append(names, accNames...) {
		name, ok := strings.CutSuffix(folder, "/")
		if !ok || seen[name] {
			continue
		}
		seen[name] = true
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("approle: tidy: %w", err)
		}
		n, err := e.tidyRole(ctx, name)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (e *Engine) tidyRole(ctx context.Context, name string) (int, error) {
	unlock := e.lockRole(name)
	defer unlock()
	r, err := e.roleStore.Get(ctx, name)
	if err != nil {
		return 0, err
	}
	now := e.now()
	return e.deleteSecretIDsOf(ctx, name, func(s *secretIDEntry) bool {
		return r == nil || s.expired(now)
	})
}
