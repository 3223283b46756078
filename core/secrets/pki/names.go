package pki

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/ryanuber/go-glob"
	"github.com/secrethub/secrethub/core/logical/field"
)

// hostnameRE is Vault's check of a host name (enforce_hostnames): labels
// of letters, digits and inner hyphens, joined by dots.
var hostnameRE = regexp.MustCompile(`^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9])$`)

// isHostname reports whether s is a host name: Vault's pattern, at most
// 253 bytes, labels of at most 63.
func isHostname(s string) bool {
	if len(s) > 253 || !hostnameRE.MatchString(s) {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if len(label) > 63 {
			return false
		}
	}
	return true
}

// nameSource says where a requested name came from, so a refusal names the
// right field.
type nameSource string

const (
	fromCommonName nameSource = "common_name"
	fromAltNames   nameSource = "alt_names"
	fromIPSANs     nameSource = "ip_sans"
	fromURISANs    nameSource = "uri_sans"
	fromCSR        nameSource = "csr"
)

// encodable checks that a DNS name or e-mail address can be written in a
// certificate and parsed back by crypto/x509: printable ASCII (IA5 without
// spaces), no empty label, no trailing dot, at most one '@'.
func encodable(name string) error {
	if !printableASCII(name) {
		return fmt.Errorf("%q must be printable ASCII without spaces (encode international names as punycode)", field.Truncate(name, 64))
	}
	host := name
	if i := strings.IndexByte(name, '@'); i >= 0 {
		if i == 0 || strings.Count(name, "@") > 1 {
			return fmt.Errorf("%q is not an e-mail address", field.Truncate(name, 64))
		}
		host = name[i+1:]
	}
	if !domainLike(host) {
		return fmt.Errorf("%q is not a domain name (empty label or trailing dot)", field.Truncate(name, 64))
	}
	return nil
}

// checkName checks one DNS name or e-mail address against the role, the
// way Vault's validateNames does, and says why it is refused ("" when it
// is allowed).
func (r *roleEntry) checkName(name string) string {
	sanitized := name
	isEmail, isWildcard := false, false
	if i := strings.IndexByte(name, '@'); i >= 0 {
		isEmail = true
		sanitized = name[i+1:]
	}
	emailDomain := sanitized
	if strings.HasPrefix(sanitized, "*.") {
		sanitized = sanitized[2:]
		isWildcard = true
	}
	switch {
	case isEmail && isWildcard:
		return "an e-mail address cannot hold a wildcard"
	case isWildcard && !r.AllowWildcardCertificates:
		return "wildcard certificates are not allowed by this role"
	case strings.Contains(sanitized, "*"):
		return "a wildcard is allowed only as the whole leftmost label (*.example.com)"
	case r.EnforceHostnames && !isHostname(sanitized):
		return "not a valid host name"
	case r.AllowAnyName:
		return ""
	}
	lname := strings.ToLower(name)
	lsan := strings.ToLower(sanitized)
	lemail := strings.ToLower(emailDomain)
	if r.AllowLocalhost {
		for _, local := range []string{"localhost", "localdomain"} {
			if lname == local || (isEmail && lemail == local) {
				return ""
			}
			if r.AllowSubdomains && (strings.HasSuffix(lsan, "."+local) || (isWildcard && lsan == local)) {
				return ""
			}
		}
	}
	for _, d := range r.AllowedDomains {
		d = strings.ToLower(d)
		if d == "" {
			continue
		}
		if r.AllowBareDomains && (lname == d || (isEmail && lemail == d)) {
			return ""
		}
		if r.AllowSubdomains && (strings.HasSuffix(lsan, "."+d) || (isWildcard && lsan == d)) {
			return ""
		}
		if r.AllowGlobDomains && strings.Contains(d, "*") && glob.Glob(d, lname) {
			return ""
		}
	}
	return "not allowed by this role"
}

// checkIPs checks IP SANs against the role.
func (r *roleEntry) checkIPs(ips []net.IP) string {
	if len(ips) > 0 && !r.AllowIPSANs {
		return fmt.Sprintf("IP subject alternative names are not allowed by this role (got %s)", ips[0])
	}
	return ""
}

// checkURI checks one URI SAN against the role's allowed_uri_sans globs.
func (r *roleEntry) checkURI(u *url.URL) string {
	if len(r.AllowedURISANs) == 0 {
		return "URI subject alternative names are not allowed by this role"
	}
	s := u.String()
	for _, pattern := range r.AllowedURISANs {
		if glob.Glob(pattern, s) {
			return ""
		}
	}
	return fmt.Sprintf("URI %q does not match the role's allowed_uri_sans", field.Truncate(s, 128))
}
