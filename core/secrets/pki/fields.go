package pki

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-secure-stdlib/parseutil"

	"github.com/secrethub/secrethub/core/logical"
)

// Limits on what a request may carry. They bound the work and the storage
// one request can cause, whatever a caller sends.
const (
	maxListLen   = 256                    // names, domains, URLs of one field
	maxStringLen = 1024                   // one element of a list, one string field
	maxPEMLen    = 64 << 10               // a CSR or a certificate chain, in bytes
	maxTTL       = 100 * 8766 * time.Hour // ~100 years: far from time.Time overflow
	maxChainLen  = 8                      // certificates in set-signed's chain
)

// Request parameters arrive as whatever the HTTP layer decoded: float64 or
// json.Number from a JSON body, strings (or one-element lists of strings)
// from a query, Go values from in-process callers. The parsers below accept
// those and answer anything else with an error; field turns the error into
// an InvalidRequestError naming the field. They never echo a whole value.

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

// field runs parse on data[name] when present, turning its error into an
// InvalidRequestError naming the field.
func field[T any](data map[string]any, name string, parse func(any) (T, error)) (T, bool, error) {
	var zero T
	v, ok := data[name]
	if !ok || v == nil {
		return zero, false, nil
	}
	t, err := parse(v)
	if err != nil {
		return zero, true, logical.Invalid(name, "%v", err)
	}
	return t, true, nil
}

// fieldOr is field with a default for an absent field.
func fieldOr[T any](data map[string]any, name string, parse func(any) (T, error), def T) (T, error) {
	t, ok, err := field(data, name, parse)
	if err != nil || !ok {
		return def, err
	}
	return t, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
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

// parseString reads a string field: valid UTF-8, at most maxStringLen
// bytes, no control characters, trimmed of surrounding spaces.
func parseString(v any) (string, error) {
	s, ok := single(v).(string)
	if !ok {
		return "", fmt.Errorf("want a string, got %s", typeName(v))
	}
	switch {
	case !utf8.ValidString(s):
		return "", fmt.Errorf("not valid UTF-8")
	case len(s) > maxStringLen:
		return "", fmt.Errorf("longer than %d bytes", maxStringLen)
	case hasControl(s):
		return "", fmt.Errorf("contains a control character")
	}
	return strings.TrimSpace(s), nil
}

// parsePEMText reads a PEM field (a CSR, a certificate chain): a string of
// at most maxPEMLen bytes. Newlines are allowed; it is decoded by pem.
func parsePEMText(v any) (string, error) {
	s, ok := single(v).(string)
	if !ok {
		return "", fmt.Errorf("want a PEM string, got %s", typeName(v))
	}
	if len(s) > maxPEMLen {
		return "", fmt.Errorf("longer than %d bytes", maxPEMLen)
	}
	if strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("empty")
	}
	return s, nil
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

// parseInt reads a whole number in [lo, hi], given as a JSON number or a
// string of digits.
func parseInt(lo, hi int64) func(any) (int64, error) {
	return func(v any) (int64, error) {
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
			n, err := strconv.ParseInt(string(x), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("want a whole number")
			}
			f = float64(n)
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
		case f < float64(lo) || f > float64(hi):
			return 0, fmt.Errorf("must be from %d to %d", lo, hi)
		}
		return int64(f), nil
	}
}

// parseTTL reads a duration: a number of seconds (JSON number or string of
// digits) or a duration string as Vault accepts it ("90s", "30m", "1h",
// "7d", "2160h0m0s"). It must be whole seconds, non-negative and at most
// maxTTL.
func parseTTL(v any) (time.Duration, error) {
	limit := int64(maxTTL / time.Second)
	var d time.Duration
	switch x := single(v).(type) {
	case float64, float32, int, int64, int32, json.Number:
		n, err := parseInt(0, limit)(x)
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

// parseStrings reads a list of strings, given as a JSON list or as one
// comma-separated string (as Vault accepts). Elements are trimmed; empty
// ones are dropped.
func parseStrings(v any) ([]string, error) {
	var raw []string
	switch x := v.(type) {
	case nil:
		return []string{}, nil
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

// parseIPs reads a list of IP addresses.
func parseIPs(v any) ([]net.IP, error) {
	ss, err := parseStrings(v)
	if err != nil {
		return nil, err
	}
	out := make([]net.IP, 0, len(ss))
	for _, s := range ss {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("%q is not an IP address", truncate(s, 64))
		}
		out = append(out, normalizeIP(ip))
	}
	return out, nil
}

// normalizeIP returns an IPv4 address in its 4-byte form.
func normalizeIP(ip net.IP) net.IP {
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	return ip
}

// parseURIs reads a list of URIs for subject alternative names.
func parseURIs(v any) ([]*url.URL, error) {
	ss, err := parseStrings(v)
	if err != nil {
		return nil, err
	}
	out := make([]*url.URL, 0, len(ss))
	for _, s := range ss {
		u, err := parseURI(s)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// parseURI checks that s is an absolute URI a certificate can carry and
// that crypto/x509 parses back: printable ASCII, a scheme, and a host (if
// any) that is a domain name.
func parseURI(s string) (*url.URL, error) {
	if !printableASCII(s) {
		return nil, fmt.Errorf("URI %q: must be printable ASCII without spaces", truncate(s, 64))
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("%q is not an absolute URI", truncate(s, 64))
	}
	if u.Host != "" && !domainLike(u.Host) {
		return nil, fmt.Errorf("URI %q: the host must be a domain name", truncate(s, 64))
	}
	if u.String() != s {
		return nil, fmt.Errorf("URI %q is not in canonical form (%q)", truncate(s, 64), truncate(u.String(), 64))
	}
	return u, nil
}

// parseURLs reads a list of http(s) URLs (config/urls).
func parseURLs(v any) ([]string, error) {
	ss, err := parseStrings(v)
	if err != nil {
		return nil, err
	}
	for _, s := range ss {
		u, err := parseURI(s)
		if err != nil {
			return nil, err
		}
		if (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "ldap") || u.Host == "" {
			return nil, fmt.Errorf("%q is not an http, https or ldap URL", truncate(s, 64))
		}
	}
	return ss, nil
}

// printableASCII reports whether s is non-empty and holds only the
// characters 33 to 126.
func printableASCII(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}

// domainLike reports whether s passes crypto/x509's check of the host of a
// URI SAN: printable ASCII labels, none empty, no trailing dot.
func domainLike(s string) bool {
	if !printableASCII(s) || strings.HasSuffix(s, ".") {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" {
			return false
		}
	}
	return true
}

// parseFormat reads format: pem (the default), der or pem_bundle.
func parseFormat(v any) (string, error) {
	s, err := parseString(v)
	if err != nil {
		return "", err
	}
	switch s {
	case "", "pem":
		return "pem", nil
	case "der", "pem_bundle":
		return s, nil
	}
	return "", fmt.Errorf("want pem, der or pem_bundle, got %q", truncate(s, 32))
}

// parseKeyFormat reads private_key_format: der or pem (the key in its own
// format: PKCS#1 for RSA, SEC 1 for EC) or pkcs8.
func parseKeyFormat(v any) (bool, error) {
	s, err := parseString(v)
	if err != nil {
		return false, err
	}
	switch s {
	case "", "der", "pem":
		return false, nil
	case "pkcs8":
		return true, nil
	}
	return false, fmt.Errorf("want der, pem or pkcs8, got %q", truncate(s, 32))
}

func seconds(d time.Duration) int64 { return int64(d / time.Second) }

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return slices.Clone(ss)
}
