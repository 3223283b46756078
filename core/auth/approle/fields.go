package approle

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-secure-stdlib/parseutil"

	"github.com/secrethub/secrethub/core/logical"
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

// checkFields refuses fields of data that are not in allowed, naming the
// first unknown one in sorted order so the message does not vary.
func checkFields(data map[string]any, allowed ...string) error {
	var unknown []string
	for k := range data {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	name := unknown[0]
	if !utf8.ValidString(name) || len(name) > 64 || hasControl(name) {
		name = strconv.QuoteToASCII(truncate(name, 64))
	}
	return logical.Invalid(name, "unknown field; accepted: %s", strings.Join(allowed, ", "))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// typeName describes a decoded JSON value for an error message.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, float32, json.Number, int, int64, int32, uint, uint64, uint32:
		return "a number"
	case []any, []string:
		return "a list"
	case map[string]any, map[string]string:
		return "an object"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// single unwraps a one-element list, the form query parameters take.
func single(v any) any {
	switch x := v.(type) {
	case []string:
		if len(x) == 1 {
			return x[0]
		}
	case []any:
		if len(x) == 1 {
			return x[0]
		}
	}
	return v
}

// parseString reads a string field.
func parseString(v any) (string, error) {
	s, ok := single(v).(string)
	if !ok {
		return "", fmt.Errorf("want a string, got %s", typeName(v))
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("not valid UTF-8")
	}
	return s, nil
}

// parseWhole reads a whole number in [0, limit], given as a JSON number or
// a string of digits.
func parseWhole(v any, limit int64) (int64, error) {
	var f float64
	switch x := single(v).(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case int32:
		f = float64(x)
	case json.Number:
		return parseWhole(string(x), limit)
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a whole number", truncate(x, 32))
		}
		f = float64(n)
	default:
		return 0, fmt.Errorf("want a number, got %s", typeName(v))
	}
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f):
		return 0, fmt.Errorf("want a whole number")
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

// parseTTL reads a duration: a number of seconds (JSON number or string of
// digits) or a duration string as Vault accepts it ("90s", "30m", "1h",
// "7d"). It must be whole seconds, non-negative and at most maxTTL.
func parseTTL(v any) (time.Duration, error) {
	limit := int64(maxTTL / time.Second)
	var d time.Duration
	switch x := single(v).(type) {
	case float64, float32, int, int64, int32, json.Number:
		n, err := parseWhole(x, limit)
		if err != nil {
			return 0, fmt.Errorf("seconds: %w", err)
		}
		d = time.Duration(n) * time.Second
	case string:
		s := strings.TrimSpace(x)
		if s == "" {
			return 0, nil
		}
		var err error
		if d, err = parseutil.ParseDurationSecond(s); err != nil {
			return 0, fmt.Errorf("%q is not a duration (use seconds or a form like 90s, 30m, 1h, 7d)", truncate(s, 32))
		}
	default:
		return 0, fmt.Errorf("want a duration, got %s", typeName(v))
	}
	switch {
	case d < 0:
		return 0, fmt.Errorf("must not be negative")
	case d > maxTTL:
		return 0, fmt.Errorf("must be at most %d seconds", limit)
	case d%time.Second != 0:
		return 0, fmt.Errorf("must be a whole number of seconds")
	}
	return d, nil
}

// parseBool reads a boolean, given as a JSON boolean or a string.
func parseBool(v any) (bool, error) {
	switch x := single(v).(type) {
	case bool:
		return x, nil
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(x))
		if err != nil {
			return false, fmt.Errorf("want true or false, got %q", truncate(x, 32))
		}
		return b, nil
	}
	return false, fmt.Errorf("want a boolean, got %s", typeName(v))
}

// parseStrings reads a list of strings, given as a JSON list or as one
// comma-separated string (as Vault accepts). Elements are trimmed; empty
// ones are dropped.
func parseStrings(v any) ([]string, error) {
	var raw []string
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		raw = strings.Split(x, ",")
	case []string:
		raw = x
		if len(x) == 1 {
			raw = strings.Split(x[0], ",")
		}
	case []any:
		raw = make([]string, 0, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("element %d: want a string, got %s", i, typeName(e))
			}
			raw = append(raw, s)
		}
	default:
		return nil, fmt.Errorf("want a list of strings, got %s", typeName(v))
	}
	if len(raw) > maxListLen {
		return nil, fmt.Errorf("more than %d elements", maxListLen)
	}
	out := make([]string, 0, len(raw))
	for _, s := range raw {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !utf8.ValidString(s) || len(s) > maxStringLen {
			return nil, fmt.Errorf("element %q: not valid UTF-8 or longer than %d bytes", truncate(s, 32), maxStringLen)
		}
		if hasControl(s) {
			return nil, fmt.Errorf("element %q: contains a control character", truncate(s, 32))
		}
		out = append(out, s)
	}
	return out, nil
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
				return netip.Prefix{}, fmt.Errorf("%q mixes IPv4-mapped and IPv6 addresses; give an IPv4 block", truncate(s, 64))
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR block or IP address", truncate(s, 64))
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
			return fmt.Errorf("key %q: want a string value, got %s", truncate(k, 32), typeName(val))
		}
		switch {
		case k == "" || len(k) > maxMetadataKey || !utf8.ValidString(k) || hasControl(k):
			return fmt.Errorf("key %q: must be 1 to %d bytes of UTF-8 without control characters", truncate(k, 32), maxMetadataKey)
		case k == reservedMetaKey:
			return fmt.Errorf("key %q is reserved: logins set it to the role's name", k)
		case len(s) > maxStringLen || !utf8.ValidString(s):
			return fmt.Errorf("key %q: value must be at most %d bytes of UTF-8", truncate(k, 32), maxStringLen)
		}
		out[k] = s
		return nil
	}
	switch x := single(v).(type) {
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
		return nil, fmt.Errorf("want an object of strings, got %s", typeName(v))
	}
	return out, nil
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
}

// field runs parse on data[name] when present, turning its error into an
// InvalidRequestError naming the field.
func field[T any](data map[string]any, name string, parse func(any) (T, error)) (T, bool, error) {
	var zero T
	v, ok := data[name]
	if !ok {
		return zero, false, nil
	}
	t, err := parse(v)
	if err != nil {
		return zero, true, logical.Invalid(name, "%v", err)
	}
	return t, true, nil
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
