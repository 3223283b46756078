package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
)

// issueFields are the fields of issue/:role; signFields those of
// sign/:role.
var (
	issueFields = []string{
		"common_name", "alt_names", "ip_sans", "uri_sans", "ttl", "format", "private_key_format",
		"exclude_cn_from_sans", "remove_roots_from_chain",
	}
	signFields = []string{
		"csr", "common_name", "alt_names", "ip_sans", "uri_sans", "ttl", "format",
		"exclude_cn_from_sans", "remove_roots_from_chain",
	}
)

// leafRequest is a parsed issue or sign request.
type leafRequest struct {
	cn          string
	cnSource    nameSource
	names       []string // DNS names and e-mail addresses
	namesSource nameSource
	ips         []net.IP
	ipsSource   nameSource
	uris        []*url.URL
	urisSource  nameSource
	excludeCN   bool
	ttl         time.Duration // 0: the role's
	format      string
	pkcs8       bool
	removeRoots bool
}

// parseLeafRequest reads the fields shared by issue and sign.
func parseLeafRequest(data map[string]any) (*leafRequest, error) {
	l := &leafRequest{cnSource: fromCommonName, namesSource: fromAltNames, ipsSource: fromIPSANs, urisSource: fromURISANs}
	var err error
	if l.cn, err = field.GetOr(data, "common_name", parseString, ""); err != nil {
		return nil, err
	}
	if l.names, _, err = field.GetNonNull(data, "alt_names", parseStrings); err != nil {
		return nil, err
	}
	if l.ips, _, err = field.GetNonNull(data, "ip_sans", parseIPs); err != nil {
		return nil, err
	}
	if l.uris, _, err = field.GetNonNull(data, "uri_sans", parseURIs); err != nil {
		return nil, err
	}
	if l.excludeCN, err = field.GetOr(data, "exclude_cn_from_sans", field.Bool, false); err != nil {
		return nil, err
	}
	if l.ttl, err = field.GetOr(data, "ttl", parseTTL, 0); err != nil {
		return nil, err
	}
	if l.format, err = field.GetOr(data, "format", parseFormat, "pem"); err != nil {
		return nil, err
	}
	if l.pkcs8, err = field.GetOr(data, "private_key_format", parseKeyFormat, false); err != nil {
		return nil, err
	}
	if l.removeRoots, err = field.GetOr(data, "remove_roots_from_chain", field.Bool, false); err != nil {
		return nil, err
	}
	return l, nil
}

// leafTemplate checks a leaf request against its role and returns the
// certificate template (without serial, validity, key identifiers and key
// usage, which depend on the key).
func (r *roleEntry) leafTemplate(l *leafRequest) (*x509.Certificate, error) {
	if l.cn == "" && r.RequireCN {
		return nil, logical.Invalid(string(l.cnSource), "missing: the role requires a common name")
	}
	ips := l.ips
	if err := checkText(l.cn); err != nil {
		return nil, logical.Invalid(string(l.cnSource), "%v", err)
	}
	if l.cn != "" {
		if ip := net.ParseIP(l.cn); ip != nil {
			if why := r.checkIPs([]net.IP{ip}); why != "" {
				return nil, logical.Invalid(string(l.cnSource), "%s", why)
			}
			if !l.excludeCN {
				ips = append([]net.IP{normalizeIP(ip)}, ips...)
			}
		} else if why := r.checkName(l.cn); why != "" {
			return nil, logical.Invalid(string(l.cnSource), "common name %q: %s", field.Truncate(l.cn, 128), why)
		}
	}
	for _, n := range l.names {
		if err := encodable(n); err != nil {
			return nil, logical.Invalid(string(l.namesSource), "%v", err)
		}
		if why := r.checkName(n); why != "" {
			return nil, logical.Invalid(string(l.namesSource), "subject alternative name %q: %s", field.Truncate(n, 128), why)
		}
	}
	if why := r.checkIPs(l.ips); why != "" {
		return nil, logical.Invalid(string(l.ipsSource), "%s", why)
	}
	for _, u := range l.uris {
		if why := r.checkURI(u); why != "" {
			return nil, logical.Invalid(string(l.urisSource), "%s", why)
		}
	}
	names := l.names
	if !l.excludeCN && net.ParseIP(l.cn) == nil {
		names = addCN(names, l.cn)
	}
	dns, emails := splitEmails(names)
	t := &x509.Certificate{
		Subject: pkix.Name{
			CommonName:         l.cn,
			Organization:       r.Organization,
			OrganizationalUnit: r.OU,
			Country:            r.Country,
			Locality:           r.Locality,
			Province:           r.Province,
			StreetAddress:      r.StreetAddress,
			PostalCode:         r.PostalCode,
		},
		DNSNames:       dns,
		EmailAddresses: emails,
		IPAddresses:    dedupeIPs(ips),
		URIs:           l.uris,
	}
	if r.ServerFlag {
		t.ExtKeyUsage = append(t.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if r.ClientFlag {
		t.ExtKeyUsage = append(t.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	if r.CodeSigningFlag {
		t.ExtKeyUsage = append(t.ExtKeyUsage, x509.ExtKeyUsageCodeSigning)
	}
	if r.EmailProtectionFlag {
		t.ExtKeyUsage = append(t.ExtKeyUsage, x509.ExtKeyUsageEmailProtection)
	}
	return t, nil
}

func dedupeIPs(ips []net.IP) []net.IP {
	out := make([]net.IP, 0, len(ips))
	for _, ip := range ips {
		dup := false
		for _, o := range out {
			if o.Equal(ip) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, ip)
		}
	}
	return out
}

// leafKeyUsage is the key usage of a leaf certificate for pub:
// digitalSignature, and keyEncipherment for RSA keys.
func leafKeyUsage(pub crypto.PublicKey) x509.KeyUsage {
	ku := x509.KeyUsageDigitalSignature
	if _, ok := pub.(*rsa.PublicKey); ok {
		ku |= x509.KeyUsageKeyEncipherment
	}
	return ku
}

// leafTTL resolves a leaf certificate's TTL: the requested one, refused
// when over the role's maximum; else the role's, else the mount's default,
// capped at the maximum.
func (e *Engine) leafTTL(r *roleEntry, requested time.Duration) (time.Duration, error) {
	limit := e.effectiveMaxTTL(r)
	if requested > 0 {
		if requested > limit {
			return 0, logical.Invalid("ttl", "%d seconds exceeds the role's max_ttl (%d seconds)", seconds(requested), seconds(limit))
		}
		return requested, nil
	}
	ttl := r.TTL
	if ttl == 0 {
		ttl = e.defaultTTL
	}
	return min(ttl, limit), nil
}

// handleIssue makes a key pair and a certificate for it.
func (e *Engine) handleIssue(ctx context.Context, roleName string, data map[string]any) (*logical.Response, error) {
	if err := field.CheckFields(data, issueFields...); err != nil {
		return nil, err
	}
	r, err := e.mustRole(ctx, roleName)
	if err != nil {
		return nil, err
	}
	l, err := parseLeafRequest(data)
	if err != nil {
		return nil, err
	}
	tmpl, err := r.leafTemplate(l)
	if err != nil {
		return nil, err
	}
	ttl, err := e.leafTTL(r, l.ttl)
	if err != nil {
		return nil, err
	}
	ca, err := e.mustCA(ctx)
	if err != nil {
		return nil, err
	}
	keyType, bits := r.KeyType, r.KeyBits
	if keyType == KeyTypeAny {
		keyType, bits = KeyTypeEC, 256
	}
	key, err := generateKey(e.rand, keyType, bits)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = leafKeyUsage(key.Public())
	cert, err := e.buildCert(ctx, tmpl, ca, ca.signer, key.Public(), ttl)
	if err != nil {
		return nil, err
	}
	if !r.NoStore {
		if err := e.storeCert(ctx, cert, ca.serial); err != nil {
			return nil, err
		}
	}
	out, err := certData(ca, cert, l.format, key, l.pkcs8)
	if err != nil {
		return nil, err
	}
	if l.removeRoots {
		out["ca_chain"] = chainWithoutRoots(ca, l.format)
	}
	return &logical.Response{Data: out}, nil
}

// handleSign signs a CSR under a role.
func (e *Engine) handleSign(ctx context.Context, roleName string, data map[string]any) (*logical.Response, error) {
	if err := field.CheckFields(data, signFields...); err != nil {
		return nil, err
	}
	r, err := e.mustRole(ctx, roleName)
	if err != nil {
		return nil, err
	}
	csr, err := csrField(data)
	if err != nil {
		return nil, err
	}
	if why := r.checkCSRKey(csr.PublicKey); why != "" {
		return nil, logical.Invalid("csr", "%s", why)
	}
	l, err := parseLeafRequest(data)
	if err != nil {
		return nil, err
	}
	if r.UseCSRCommonName && csr.Subject.CommonName != "" {
		l.cn, l.cnSource = csr.Subject.CommonName, fromCSR
	}
	if r.UseCSRSANs {
		l.names = append(append([]string(nil), csr.DNSNames...), csr.EmailAddresses...)
		l.ips, l.uris = nil, csr.URIs
		for _, ip := range csr.IPAddresses {
			l.ips = append(l.ips, normalizeIP(ip))
		}
		for _, u := range l.uris {
			if _, err := parseURI(u.String()); err != nil {
				return nil, logical.Invalid("csr", "%v", err)
			}
		}
		l.namesSource, l.ipsSource, l.urisSource = fromCSR, fromCSR, fromCSR
	}
	tmpl, err := r.leafTemplate(l)
	if err != nil {
		return nil, err
	}
	ttl, err := e.leafTTL(r, l.ttl)
	if err != nil {
		return nil, err
	}
	ca, err := e.mustCA(ctx)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = leafKeyUsage(csr.PublicKey)
	cert, err := e.buildCert(ctx, tmpl, ca, ca.signer, csr.PublicKey, ttl)
	if err != nil {
		return nil, err
	}
	if !r.NoStore {
		if err := e.storeCert(ctx, cert, ca.serial); err != nil {
			return nil, err
		}
	}
	out, err := certData(ca, cert, l.format, nil, false)
	if err != nil {
		return nil, err
	}
	if l.removeRoots {
		out["ca_chain"] = chainWithoutRoots(ca, l.format)
	}
	return &logical.Response{Data: out}, nil
}

// checkCSRKey checks a CSR's key against the role's key_type and key_bits
// (a minimum), and says why it is refused ("" when allowed).
func (r *roleEntry) checkCSRKey(pub crypto.PublicKey) string {
	kt, bits, _ := describeKey(pub)
	switch {
	case r.KeyType == KeyTypeAny:
		return ""
	case kt != r.KeyType:
		return fmt.Sprintf("the role requires %s keys, the CSR has a %s key", r.KeyType, kt)
	case bits < r.KeyBits:
		return fmt.Sprintf("the role requires %s keys of at least %d bits, the CSR's key has %d", r.KeyType, r.KeyBits, bits)
	}
	return ""
}

// csrField reads and checks the csr field.
func csrField(data map[string]any) (*x509.CertificateRequest, error) {
	text, ok, err := field.GetNonNull(data, "csr", parsePEMText)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, logical.Invalid("csr", "missing")
	}
	return parseCSR([]byte(text))
}

// parseCSR decodes a PEM certificate request and checks its key and its
// signature. Every refusal is an InvalidRequestError naming "csr".
func parseCSR(text []byte) (*x509.CertificateRequest, error) {
	if len(text) > maxPEMLen {
		return nil, logical.Invalid("csr", "longer than %d bytes", maxPEMLen)
	}
	block, rest := pem.Decode(text)
	if block == nil {
		return nil, logical.Invalid("csr", "not a PEM-encoded certificate request")
	}
	if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return nil, logical.Invalid("csr", "PEM block is a %q, not a CERTIFICATE REQUEST", field.Truncate(block.Type, 32))
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, logical.Invalid("csr", "text after the certificate request")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, logical.Invalid("csr", "malformed certificate request: %v", err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, logical.Invalid("csr", "%v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, logical.Invalid("csr", "the certificate request's signature is invalid: %v", err)
	}
	return csr, nil
}

// buildCert signs tmpl for pub with signer, as ca (nil: self-signed). It
// sets the serial number, the validity (from ClockSkew before now to ttl
// after, never beyond the CA's NotAfter), the key identifiers and the
// mount's URLs, and parses the result back, so a certificate that
// crypto/x509 cannot read is never handed out.
func (e *Engine) buildCert(ctx context.Context, tmpl *x509.Certificate, ca *caBundle, signer crypto.Signer, pub crypto.PublicKey, ttl time.Duration) (*x509.Certificate, error) {
	now := e.now().UTC().Truncate(time.Second)
	serial, err := newSerial(e.rand)
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-ClockSkew)
	tmpl.NotAfter = now.Add(ttl)
	parent := tmpl
	if ca != nil {
		parent = ca.cert
		if !now.Before(ca.cert.NotAfter) {
			return nil, logical.Invalid("", "this mount's CA certificate expired at %s", ca.cert.NotAfter.UTC().Format(time.RFC3339))
		}
		if tmpl.NotAfter.After(ca.cert.NotAfter) {
			tmpl.NotAfter = ca.cert.NotAfter
		}
	}
	if tmpl.SubjectKeyId, err = subjectKeyID(pub); err != nil {
		return nil, err
	}
	if ca == nil {
		tmpl.AuthorityKeyId = tmpl.SubjectKeyId
	}
	urls, err := e.loadURLs(ctx)
	if err != nil {
		return nil, err
	}
	tmpl.IssuingCertificateURL = urls.IssuingCertificates
	tmpl.CRLDistributionPoints = urls.CRLDistributionPoints
	tmpl.OCSPServer = urls.OCSPServers
	der, err := x509.CreateCertificate(e.rand, tmpl, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("pki: sign certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, logical.Invalid("", "the requested certificate cannot be encoded: %v", err)
	}
	return cert, nil
}

// certData is the response data for a certificate signed by ca, with its
// private key when key is set, in format (pem, der or pem_bundle).
func certData(ca *caBundle, cert *x509.Certificate, format string, key crypto.Signer, pkcs8 bool) (map[string]any, error) {
	chain := make([]string, len(ca.chain))
	for i, c := range ca.chain {
		chain[i] = encodeDER(format, "CERTIFICATE", c.Raw)
	}
	out := map[string]any{
		"certificate":   encodeDER(format, "CERTIFICATE", cert.Raw),
		"issuing_ca":    encodeDER(format, "CERTIFICATE", ca.cert.Raw),
		"ca_chain":      chain,
		"serial_number": formatSerial(cert.SerialNumber, ":"),
		"expiration":    cert.NotAfter.Unix(),
	}
	if key != nil {
		if err := addKey(out, key, format, pkcs8); err != nil {
			return nil, err
		}
	}
	if format == "pem_bundle" {
		parts := make([]string, 0, 2+len(chain))
		if k, ok := out["private_key"].(string); ok {
			parts = append(parts, k)
		}
		parts = append(parts, out["certificate"].(string))
		if !bytes.Equal(cert.Raw, ca.cert.Raw) {
			parts = append(parts, chain...)
		}
		out["certificate"] = strings.Join(parts, "\n")
	}
	return out, nil
}

// addKey adds a private key and its type to response data.
func addKey(out map[string]any, key crypto.Signer, format string, pkcs8 bool) error {
	der, blockType, err := marshalKey(key, pkcs8)
	if err != nil {
		return err
	}
	kt, _, _ := describeKey(key.Public())
	out["private_key"] = encodeDER(format, blockType, der)
	out["private_key_type"] = kt
	return nil
}

// checkText checks a subject string taken from a request or a CSR: valid
// UTF-8, no control characters, at most maxStringLen bytes.
func checkText(s string) error {
	switch {
	case !utf8.ValidString(s):
		return fmt.Errorf("not valid UTF-8")
	case field.HasControl(s):
		return fmt.Errorf("contains a control character")
	case len(s) > maxStringLen:
		return fmt.Errorf("longer than %d bytes", maxStringLen)
	}
	return nil
}

// checkSubject checks every string of a subject taken from a CSR.
func checkSubject(n pkix.Name) error {
	all := [][]string{
		{n.CommonName, n.SerialNumber}, n.Country, n.Organization, n.OrganizationalUnit,
		n.Locality, n.Province, n.StreetAddress, n.PostalCode,
	}
	for _, ss := range all {
		for _, s := range ss {
			if err := checkText(s); err != nil {
				return fmt.Errorf("subject %q: %w", field.Truncate(s, 64), err)
			}
		}
	}
	return nil
}

// chainWithoutRoots is ca's chain in format without self-signed
// certificates (remove_roots_from_chain).
func chainWithoutRoots(ca *caBundle, format string) []string {
	out := []string{}
	for _, c := range ca.chain {
		if bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil {
			continue
		}
		out = append(out, encodeDER(format, "CERTIFICATE", c.Raw))
	}
	return out
}
