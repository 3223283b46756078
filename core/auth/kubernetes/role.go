package kubernetes

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
)

// Limits on what a role may hold.
const (
	maxListLen     = 256
	maxStringLen   = 512
	maxAudienceLen = 512
	maxTTL         = 100 * 8766 * time.Hour // ~100 years: far from time.Time overflow
)

// Values of alias_name_source.
const (
	AliasSourceUID  = "serviceaccount_uid"
	AliasSourceName = "serviceaccount_name"
)

// roleEntry is a role as stored.
type roleEntry struct {
	BoundNames      []string      `json:"bound_service_account_names"`
	BoundNamespaces []string      `json:"bound_service_account_namespaces"`
	Audience        string        `json:"audience,omitempty"`
	AliasNameSource string        `json:"alias_name_source"`
	TokenPolicies   []string      `json:"token_policies"`
	TokenTTL        time.Duration `json:"token_ttl"`
	TokenMaxTTL     time.Duration `json:"token_max_ttl"`
	TokenBoundCIDRs []string      `json:"token_bound_cidrs"`
}

// roleFields are the fields a write to role/<name> accepts.
var roleFields = []string{
	"bound_service_account_names", "bound_service_account_namespaces", "audience", "alias_name_source",
	"token_policies", "policies", "token_ttl", "token_max_ttl", "ttl", "max_ttl", "token_bound_cidrs",
	"token_num_uses",
}

// globRE is what one entry of a bound list may be: a Kubernetes name
// (DNS label or subdomain characters) with '*' standing for any run of
// characters, or "*" alone.
var globRE = regexp.MustCompile(`^[a-z0-9*]([-a-z0-9.*]*[a-z0-9*])?$`)

// parseGlobs reads a bound list: names or globs, deduplicated in order.
func parseGlobs(v any) ([]string, error) {
	ss, err := field.Strings(v, maxListLen, 253)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		if !globRE.MatchString(s) {
			return nil, fmt.Errorf("%q is not a Kubernetes name or a glob of one (lower-case letters, digits, '-', '.', and '*' for any run of characters)", field.Truncate(s, 64))
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// globMatch reports whether name matches pattern, in which each '*'
// stands for any run of characters (possibly empty) and everything else
// for itself.
func globMatch(pattern, name string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == name
	}
	if !strings.HasPrefix(name, parts[0]) {
		return false
	}
	name = name[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(name, p)
		if i < 0 {
			return false
		}
		name = name[i+len(p):]
	}
	return len(name) >= len(last) && strings.HasSuffix(name, last)
}

// matchAny reports whether name matches one of the patterns.
func matchAny(patterns []string, name string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return globMatch(p, name) })
}

// parsePolicies reads token_policies: a list of names, deduplicated in
// order. The root policy is refused: an auth method must not mint root
// tokens.
func parsePolicies(v any) ([]string, error) {
	names, err := field.Strings(v, maxListLen, maxStringLen)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		if n == "root" {
			return nil, fmt.Errorf("an auth method cannot grant the root policy")
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func parseTTL(v any) (time.Duration, error) {
	limit := int64(maxTTL / time.Second)
	return field.Duration(v, maxTTL, func(x any) (int64, error) {
		f, err := field.Whole(x)
		switch {
		case err != nil:
			return 0, err
		case f < 0:
			return 0, fmt.Errorf("must not be negative")
		case f > float64(limit):
			return 0, fmt.Errorf("must be at most %d", limit)
		}
		return int64(f), nil
	})
}

func parseAudience(v any) (string, error) {
	s, err := field.String(v)
	if err != nil {
		return "", err
	}
	s = strings.TrimSpace(s)
	if len(s) > maxAudienceLen || field.HasControl(s) {
		return "", fmt.Errorf("must be at most %d bytes without control characters", maxAudienceLen)
	}
	return s, nil
}

func parseAliasSource(v any) (string, error) {
	s, err := field.String(v)
	if err != nil {
		return "", err
	}
	switch s = strings.TrimSpace(s); s {
	case "", AliasSourceUID:
		return AliasSourceUID, nil
	case AliasSourceName:
		return s, nil
	}
	return "", fmt.Errorf("%q: want %s or %s", field.Truncate(s, 32), AliasSourceUID, AliasSourceName)
}

// parseCIDRs reads token_bound_cidrs: CIDR blocks or bare addresses,
// canonical and deduplicated.
func parseCIDRs(v any) ([]string, error) {
	ss, err := field.Strings(v, maxListLen, maxStringLen)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%q is not a CIDR block or IP address", field.Truncate(s, 64))
			}
			a = a.Unmap()
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() {
			return nil, fmt.Errorf("%q mixes IPv4-mapped and IPv6 addresses; give an IPv4 block", field.Truncate(s, 64))
		}
		if c := p.Masked().String(); !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// applyRole checks a role write and merges it into r (a new role, or the
// stored one: fields not given keep their values, as in Vault).
func applyRole(r *roleEntry, data map[string]any) error {
	if err := field.CheckFields(data, roleFields...); err != nil {
		return err
	}
	var err error
	var ok bool
	var globs []string
	if globs, ok, err = field.Get(data, "bound_service_account_names", parseGlobs); err != nil {
		return err
	} else if ok {
		r.BoundNames = globs
	}
	if globs, ok, err = field.Get(data, "bound_service_account_namespaces", parseGlobs); err != nil {
		return err
	} else if ok {
		r.BoundNamespaces = globs
	}
	if s, ok, err := field.Get(data, "audience", parseAudience); err != nil {
		return err
	} else if ok {
		r.Audience = s
	}
	if s, ok, err := field.Get(data, "alias_name_source", parseAliasSource); err != nil {
		return err
	} else if ok {
		r.AliasNameSource = s
	}
	if r.AliasNameSource == "" {
		r.AliasNameSource = AliasSourceUID
	}
	tp, hasTP, err := field.Get(data, "token_policies", parsePolicies)
	if err != nil {
		return err
	}
	lp, hasLP, err := field.Get(data, "policies", parsePolicies)
	if err != nil {
		return err
	}
	switch {
	case hasTP && hasLP && !slices.Equal(tp, lp):
		return logical.Invalid("policies", "conflicts with token_policies; give only token_policies (policies is its legacy name)")
	case hasTP:
		r.TokenPolicies = tp
	case hasLP:
		r.TokenPolicies = lp
	}
	for _, d := range []struct {
		name, legacy string
		dst          *time.Duration
	}{{"token_ttl", "ttl", &r.TokenTTL}, {"token_max_ttl", "max_ttl", &r.TokenMaxTTL}} {
		v, has, err := field.Get(data, d.name, parseTTL)
		if err != nil {
			return err
		}
		lv, hasLegacy, err := field.Get(data, d.legacy, parseTTL)
		if err != nil {
			return err
		}
		switch {
		case has && hasLegacy && v != lv:
			return logical.Invalid(d.legacy, "conflicts with %s; give only %s (%s is its legacy name)", d.name, d.name, d.legacy)
		case has:
			*d.dst = v
		case hasLegacy:
			*d.dst = lv
		}
	}
	if n, ok, err := field.GetNonNull(data, "token_num_uses", field.Whole); err != nil {
		return err
	} else if ok && n != 0 {
		return logical.Invalid("token_num_uses", "tokens limited to a number of uses are not supported; leave it out or set 0")
	}
	if cidrs, ok, err := field.Get(data, "token_bound_cidrs", parseCIDRs); err != nil {
		return err
	} else if ok {
		r.TokenBoundCIDRs = cidrs
	}
	return r.validate()
}

// validate checks what only the merged role can tell.
func (r *roleEntry) validate() error {
	switch {
	case len(r.BoundNames) == 0:
		return logical.Invalid("bound_service_account_names", "missing: list the service account names (or globs, \"*\" for any) the role binds")
	case len(r.BoundNamespaces) == 0:
		return logical.Invalid("bound_service_account_namespaces", "missing: list the namespaces (or globs, \"*\" for any) the role binds")
	case slices.Contains(r.BoundNames, "*") && slices.Contains(r.BoundNamespaces, "*"):
		return logical.Invalid("bound_service_account_names", "\"*\" together with bound_service_account_namespaces \"*\" would let every service account of the cluster log in; narrow one of them")
	case r.TokenTTL > 0 && r.TokenMaxTTL > 0 && r.TokenTTL > r.TokenMaxTTL:
		return logical.Invalid("token_ttl", "%d seconds exceeds token_max_ttl (%d seconds)",
			int64(r.TokenTTL/time.Second), int64(r.TokenMaxTTL/time.Second))
	}
	return nil
}

// bound reports whether the role binds the service account ns/name; when
// not, the reason says which list refused it.
func (r *roleEntry) bound(namespace, name string) (bool, string) {
	if !matchAny(r.BoundNamespaces, namespace) {
		return false, fmt.Sprintf("namespace %q not in bound_service_account_namespaces", namespace)
	}
	if !matchAny(r.BoundNames, name) {
		return false, fmt.Sprintf("service account %q not in bound_service_account_names", name)
	}
	return true, ""
}

func (e *Engine) writeRole(ctx context.Context, name string, data map[string]any) (*logical.Response, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, err := e.roleStore.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		r = &roleEntry{}
	}
	if err := applyRole(r, data); err != nil {
		return nil, err
	}
	if err := e.roleStore.Put(ctx, name, r); err != nil {
		return nil, err
	}
	if r.Audience == "" {
		return &logical.Response{Warnings: []string{"no audience: any token of a bound service account logs in, including tokens issued for other services; set audience and project tokens for it"}}, nil
	}
	return nil, nil
}

func (e *Engine) readRole(ctx context.Context, name string) (*logical.Response, error) {
	r, err := e.roleStore.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, e.roleStore.NotFound(name)
	}
	return &logical.Response{Data: map[string]any{
		"bound_service_account_names":      nonNil(r.BoundNames),
		"bound_service_account_namespaces": nonNil(r.BoundNamespaces),
		"audience":                         r.Audience,
		"alias_name_source":                r.AliasNameSource,
		"token_policies":                   nonNil(r.TokenPolicies),
		"policies":                         nonNil(r.TokenPolicies),
		"token_ttl":                        seconds(r.TokenTTL),
		"token_max_ttl":                    seconds(r.TokenMaxTTL),
		"token_bound_cidrs":                nonNil(r.TokenBoundCIDRs),
		"token_num_uses":                   0,
	}}, nil
}

func (e *Engine) deleteRole(ctx context.Context, name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.roleStore.Delete(ctx, name)
}

func seconds(d time.Duration) int { return int(d / time.Second) }

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return slices.Clone(ss)
}
