package approle

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/secrethub/secrethub/core/logical/field"
)

// Limits on what a request may store. They keep one role or secret ID
// small, whatever a caller sends.
const (
	maxListLen      = 256                    // policies, CIDRs
	maxStringLen    = 512                    // one policy name, role_id, secret_id, metadata value
	maxMetadataKeys = 64                     // metadata pairs of one secret ID
	maxMetadataKey  = 128                    // bytes of one metadata key
	maxNumUses      = 1<<31 - 1              // token_num_uses, secret_id_num_uses
	maxTTL          = 100 * 8766 * time.Hour // ~100 years: far from time.Time overflow
	maxAccessorLen  = 128
	reservedMetaKey = "role_name"
)

// parseWhole reads a whole number in [0, limit], given as a JSON number or
// a string of digits.
func parseWhole(v any, limit int64) (int64, error) {
	f, err := field.Whole(v)
	if err != nil {
		return 0, err
	}
	switch {
	case f < 0:
		return 0, fmt.Errorf("must not be negative")
	case f > float64(limit):
		return 0, fmt.Errorf("must be at most %d", limit)
	}
	return int64(f), nil
}

// parseInt reads a use count: a whole number in [0, maxNumUses].
func parseInt(v any) (int, error) {
	n, err := parseWhole(v, maxNumUses)
	return int(n), err
}

// parseTTL reads a duration (see field.Duration): whole seconds,
// non-negative and at most maxTTL.
func parseTTL(v any) (time.Duration, error) {
	limit := int64(maxTTL / time.Second)
	return field.Duration(v, maxTTL, func(x any) (int64, error) { return parseWhole(x, limit) })
}

// parseStrings reads a list of strings (see field.Strings) within this
// engine's limits. Null reads as nil.
func parseStrings(v any) ([]string, error) {
	return field.Strings(v, maxListLen, maxStringLen)
}

// parsePolicies reads token_policies: a list of names, deduplicated in
// order. The root policy is refused: an auth method must not mint root
// tokens.
func parsePolicies(v any) ([]string, error) {
	names, err := parseStrings(v)
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

// parseCIDRs reads a list of CIDR blocks; a bare address means that one
// host. The result is canonical (masked) and deduplicated.
func parseCIDRs(v any) ([]netip.Prefix, error) {
	ss, err := parseStrings(v)
	if err != nil {
		return nil, err
	}
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		p, err := parseCIDR(s)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

func parseCIDR(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return netip.Prefix{}, fmt.Errorf("%q mixes IPv4-mapped and IPv6 addresses; give an IPv4 block", field.Truncate(s, 64))
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR block or IP address", field.Truncate(s, 64))
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parseMetadata reads secret ID metadata: a JSON object of strings, or, as
// Vault takes it, a string holding such an object.
func parseMetadata(v any) (map[string]string, error) {
	out := map[string]string{}
	put := func(k string, val any) error {
		s, ok := val.(string)
		if !ok {
			return fmt.Errorf("key %q: want a string value, got %s", field.Truncate(k, 32), field.TypeName(val))
		}
		switch {
		case k == "" || len(k) > maxMetadataKey || !utf8.ValidString(k) || field.HasControl(k):
			return fmt.Errorf("key %q: must be 1 to %d bytes of UTF-8 without control characters", field.Truncate(k, 32), maxMetadataKey)
		case k == reservedMetaKey:
			return fmt.Errorf("key %q is reserved: logins set it to the role's name", k)
		case len(s) > maxStringLen || !utf8.ValidString(s):
			return fmt.Errorf("key %q: value must be at most %d bytes of UTF-8", field.Truncate(k, 32), maxStringLen)
		}
		out[k] = s
		return nil
	}
	switch x := field.Single(v).(type) {
	case nil:
		return out, nil
	case string:
		if strings.TrimSpace(x) == "" {
			return out, nil
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(x), &m); err != nil {
			return nil, fmt.Errorf("want a JSON object of strings")
		}
		return parseMetadata(m)
	case map[string]any:
		if len(x) > maxMetadataKeys {
			return nil, fmt.Errorf("more than %d keys", maxMetadataKeys)
		}
		for k, val := range x {
			if err := put(k, val); err != nil {
				return nil, err
			}
		}
	case map[string]string:
		if len(x) > maxMetadataKeys {
			return nil, fmt.Errorf("more than %d keys", maxMetadataKeys)
		}
		for k, val := range x {
			if err := put(k, val); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("want an object of strings, got %s", field.TypeName(v))
	}
	return out, nil
}

// prefixStrings renders prefixes for storage and responses; never nil, so
// JSON shows [] rather than null.
func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// parsePrefixes reads prefixes back from storage.
func parsePrefixes(ss []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("stored CIDR %q: %w", s, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// within reports whether every prefix of inner lies inside some prefix of
// outer.
func within(inner, outer []netip.Prefix) (netip.Prefix, bool) {
	for _, p := range inner {
		if !slices.ContainsFunc(outer, func(q netip.Prefix) bool {
			return q.Bits() <= p.Bits() && q.Contains(p.Addr())
		}) {
			return p, false
		}
	}
	return netip.Prefix{}, true
}

// allowed reports whether addr lies in one of ps. An unknown address lies
// in none.
func allowed(addr netip.Addr, ps []netip.Prefix) bool {
	if !addr.IsValid() {
		return false
	}
	addr = addr.Unmap().WithZone("")
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Contains(addr) })
}
