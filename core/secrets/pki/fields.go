package pki

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/secrethub/secrethub/core/logical/field"
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

// parseString reads a one-line string field of at most maxStringLen
// bytes (see field.Text).
func parseString(v any) (string, error) { return field.Text(v, maxStringLen) }

// parsePEMText reads a PEM field (a CSR, a certificate chain): a string of
// at most maxPEMLen bytes. Newlines are allowed; it is decoded by pem.
func parsePEMText(v any) (string, error) {
	s, ok := field.Single(v).(string)
	if !ok {
		return "", fmt.Errorf("want a PEM string, got %s", field.TypeName(v))
	}
	if len(s) > maxPEMLen {
		return "", fmt.Errorf("longer than %d bytes", maxPEMLen)
	}
	if strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("empty")
	}
	return s, nil
}

// parseInt reads a whole number in [lo, hi], given as a JSON number or a
// string of digits.
func parseInt(lo, hi int64) func(any) (int64, error) {
	return func(v any) (int64, error) {
		if x, ok := field.Single(v).(json.Number); ok {
			n, err := strconv.ParseInt(string(x), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("want a whole number")
			}
			v = n
		}
		f, err := field.Whole(v)
		if err != nil {
			return 0, err
		}
		if f < float64(lo) || f > float64(hi) {
			return 0, fmt.Errorf("must be from %d to %d", lo, hi)
		}
		return int64(f), nil
	}
}

// parseTTL reads a duration (see field.Duration): whole seconds,
// non-negative and at most maxTTL.
func parseTTL(v any) (time.Duration, error) {
	return field.Duration(v, maxTTL, parseInt(0, int64(maxTTL/time.Second)))
}

// parseStrings reads a list of strings (see field.Strings) within this
// engine's limits. Null reads as an empty list, never nil.
func parseStrings(v any) ([]string, error) {
	if v == nil {
		return []string{}, nil
	}
	return field.Strings(v, maxListLen, maxStringLen)
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
			return nil, fmt.Errorf("%q is not an IP address", field.Truncate(s, 64))
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
		return nil, fmt.Errorf("URI %q: must be printable ASCII without spaces", field.Truncate(s, 64))
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("%q is not an absolute URI", field.Truncate(s, 64))
	}
	if u.Host != "" && !domainLike(u.Host) {
		return nil, fmt.Errorf("URI %q: the host must be a domain name", field.Truncate(s, 64))
	}
	if u.String() != s {
		return nil, fmt.Errorf("URI %q is not in canonical form (%q)", field.Truncate(s, 64), field.Truncate(u.String(), 64))
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
			return nil, fmt.Errorf("%q is not an http, https or ldap URL", field.Truncate(s, 64))
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
	return "", fmt.Errorf("want pem, der or pem_bundle, got %q", field.Truncate(s, 32))
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
	return false, fmt.Errorf("want der, pem or pkcs8, got %q", field.Truncate(s, 32))
}

func seconds(d time.Duration) int64 { return int64(d / time.Second) }

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return slices.Clone(ss)
}
