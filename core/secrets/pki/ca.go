package pki

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
	"github.com/secrethub/secrethub/core/storage"
)

// Kinds of CA.
const (
	kindRoot         = "root"
	kindIntermediate = "intermediate"
)

// caEntry is the CA as stored.
type caEntry struct {
	Kind        string   `json:"kind"`
	Certificate []byte   `json:"certificate"`     // DER
	Chain       [][]byte `json:"chain,omitempty"` // DER of the parents, nearest first
	PrivateKey  []byte   `json:"private_key"`     // PKCS#8 DER
}

// pendingEntry is an intermediate key waiting for its signed certificate.
type pendingEntry struct {
	PrivateKey []byte `json:"private_key"` // PKCS#8 DER
	CSR        []byte `json:"csr"`         // DER
}

// caBundle is the CA parsed, as the signing paths use it. It is never
// changed once built.
type caBundle struct {
	kind     string
	cert     *x509.Certificate
	signer   crypto.Signer
	chain    []*x509.Certificate // cert first, then its parents
	chainPEM []string            // PEM of chain
	serial   string              // cert's serial, colon form
}

// caState is what Engine.ca points to: the CA, or nil for none.
type caState struct {
	ca *caBundle
}

// newBundle parses a stored CA.
func newBundle(ent *caEntry) (*caBundle, error) {
	cert, err := x509.ParseCertificate(ent.Certificate)
	if err != nil {
		return nil, fmt.Errorf("pki: decode CA certificate: %w", err)
	}
	signer, err := parseStoredKey(ent.PrivateKey)
	if err != nil {
		return nil, err
	}
	b := &caBundle{kind: ent.Kind, cert: cert, signer: signer, serial: formatSerial(cert.SerialNumber, ":")}
	b.chain = append(b.chain, cert)
	for i, der := range ent.Chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("pki: decode CA chain certificate %d: %w", i+1, err)
		}
		b.chain = append(b.chain, c)
	}
	for _, c := range b.chain {
		b.chainPEM = append(b.chainPEM, pemString("CERTIFICATE", c.Raw))
	}
	return b, nil
}

// loadCA returns the CA, or nil when the mount has none. It reads and
// parses storage only the first time.
func (e *Engine) loadCA(ctx context.Context) (*caBundle, error) {
	if st := e.ca.Load(); st != nil {
		return st.ca, nil
	}
	e.caMu.Lock()
	defer e.caMu.Unlock()
	return e.loadCALocked(ctx)
}

// loadCALocked is loadCA for a caller holding caMu.
func (e *Engine) loadCALocked(ctx context.Context) (*caBundle, error) {
	if st := e.ca.Load(); st != nil {
		return st.ca, nil
	}
	raw, err := logical.GetOptional(ctx, e.storage, caKey)
	if err != nil {
		return nil, fmt.Errorf("pki: read CA: %w", err)
	}
	st := &caState{}
	if raw != nil {
		var ent caEntry
		if err := json.Unmarshal(raw, &ent); err != nil {
			return nil, fmt.Errorf("pki: decode CA: %w", err)
		}
		if st.ca, err = newBundle(&ent); err != nil {
			return nil, err
		}
	}
	e.ca.Store(st)
	return st.ca, nil
}

// mustCA returns the CA, or ErrNoCA.
func (e *Engine) mustCA(ctx context.Context) (*caBundle, error) {
	ca, err := e.loadCA(ctx)
	if err == nil && ca == nil {
		err = ErrNoCA
	}
	return ca, err
}

// caFields are the fields of root/generate; intermediate/generate takes
// the same but ttl, max_path_length and permitted_dns_domains.
var caFields = []string{
	"common_name", "alt_names", "ip_sans", "uri_sans", "exclude_cn_from_sans",
	"organization", "ou", "country", "locality", "province", "street_address", "postal_code",
	"key_type", "key_bits", "ttl", "max_path_length", "permitted_dns_domains",
	"format", "private_key_format",
}

// caParams is a parsed request for a CA key and certificate (or CSR).
type caParams struct {
	subject      pkix.Name
	dnsNames     []string
	emails       []string
	ips          []net.IP
	uris         []*url.URL
	keyType      string
	keyBits      int
	ttl          time.Duration
	maxPathLen   int // -1: unlimited
	permittedDNS []string
	format       string
	pkcs8        bool
}

// parseSubject reads common_name and the subject fields shared by CA
// requests; common_name is required.
func parseSubject(data map[string]any) (pkix.Name, error) {
	var n pkix.Name
	var err error
	if n.CommonName, err = field.GetOr(data, "common_name", parseString, ""); err != nil {
		return n, err
	}
	if n.CommonName == "" {
		return n, logical.Invalid("common_name", "missing")
	}
	for _, f := range []struct {
		name string
		dst  *[]string
	}{
		{"organization", &n.Organization}, {"ou", &n.OrganizationalUnit}, {"country", &n.Country},
		{"locality", &n.Locality}, {"province", &n.Province}, {"street_address", &n.StreetAddress},
		{"postal_code", &n.PostalCode},
	} {
		if *f.dst, _, err = field.GetNonNull(data, f.name, parseStrings); err != nil {
			return n, err
		}
	}
	return n, nil
}

// parseSANs reads alt_names (DNS names and e-mail addresses), ip_sans and
// uri_sans, checking only that a certificate can carry them, and adds the
// common name to the DNS names or e-mail addresses (when it is one) unless
// exclude_cn_from_sans.
func parseSANs(data map[string]any, cn string) (dns, emails []string, ips []net.IP, uris []*url.URL, err error) {
	alt, _, err := field.GetNonNull(data, "alt_names", parseStrings)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	for _, n := range alt {
		if err := encodable(n); err != nil {
			return nil, nil, nil, nil, logical.Invalid("alt_names", "%v", err)
		}
	}
	if ips, _, err = field.GetNonNull(data, "ip_sans", parseIPs); err != nil {
		return nil, nil, nil, nil, err
	}
	if uris, _, err = field.GetNonNull(data, "uri_sans", parseURIs); err != nil {
		return nil, nil, nil, nil, err
	}
	exclude, err := field.GetOr(data, "exclude_cn_from_sans", field.Bool, false)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if !exclude {
		alt = addCN(alt, cn)
	}
	dns, emails = splitEmails(alt)
	return dns, emails, ips, uris, nil
}

// addCN adds a common name to the SAN names when it is a host name (or a
// wildcard of one) or an e-mail address, as Vault does.
func addCN(names []string, cn string) []string {
	if cn == "" {
		return names
	}
	host := strings.TrimPrefix(cn, "*.")
	if i := strings.IndexByte(cn, '@'); i > 0 {
		host = cn[i+1:]
	}
	if !isHostname(host) {
		return names
	}
	for _, n := range names {
		if strings.EqualFold(n, cn) {
			return names
		}
	}
	return append([]string{cn}, names...)
}

// splitEmails separates e-mail addresses from DNS names.
func splitEmails(names []string) (dns, emails []string) {
	for _, n := range names {
		if strings.Contains(n, "@") {
			emails = append(emails, n)
		} else {
			dns = append(dns, n)
		}
	}
	return dns, emails
}

// parseCAParams reads a root/generate or intermediate/generate request.
func parseCAParams(data map[string]any, root bool) (*caParams, error) {
	allowed := caFields
	if !root {
		allowed = []string{
			"common_name", "alt_names", "ip_sans", "uri_sans", "exclude_cn_from_sans",
			"organization", "ou", "country", "locality", "province", "street_address", "postal_code",
			"key_type", "key_bits", "format", "private_key_format",
		}
	}
	if err := field.CheckFields(data, allowed...); err != nil {
		return nil, err
	}
	p := &caParams{}
	var err error
	if p.subject, err = parseSubject(data); err != nil {
		return nil, err
	}
	if p.dnsNames, p.emails, p.ips, p.uris, err = parseSANs(data, p.subject.CommonName); err != nil {
		return nil, err
	}
	if p.keyType, err = field.GetOr(data, "key_type", parseString, ""); err != nil {
		return nil, err
	}
	if p.keyType == "" {
		p.keyType = KeyTypeEC
	}
	bits, err := field.GetOr(data, "key_bits", parseInt(0, 8192), 0)
	if err != nil {
		return nil, err
	}
	if p.keyBits, err = checkGenKey(p.keyType, int(bits), 384, 4096); err != nil {
		name := "key_bits"
		if p.keyType != KeyTypeEC && p.keyType != KeyTypeRSA {
			name = "key_type"
		}
		return nil, logical.Invalid(name, "%v", err)
	}
	if p.ttl, err = field.GetOr(data, "ttl", parseTTL, 0); err != nil {
		return nil, err
	}
	if p.ttl == 0 {
		p.ttl = DefaultRootTTL
	}
	mpl, err := field.GetOr(data, "max_path_length", parseInt(-1, 64), -1)
	if err != nil {
		return nil, err
	}
	p.maxPathLen = int(mpl)
	if p.permittedDNS, err = parsePermittedDNS(data); err != nil {
		return nil, err
	}
	if p.format, err = field.GetOr(data, "format", parseFormat, "pem"); err != nil {
		return nil, err
	}
	if p.pkcs8, err = field.GetOr(data, "private_key_format", parseKeyFormat, false); err != nil {
		return nil, err
	}
	return p, nil
}

// parsePermittedDNS reads permitted_dns_domains, the name constraints of a
// CA certificate.
func parsePermittedDNS(data map[string]any) ([]string, error) {
	ds, _, err := field.GetNonNull(data, "permitted_dns_domains", parseStrings)
	if err != nil {
		return nil, err
	}
	for _, d := range ds {
		if !domainLike(strings.TrimPrefix(d, ".")) {
			return nil, logical.Invalid("permitted_dns_domains", "%q is not a domain name", field.Truncate(d, 64))
		}
	}
	return ds, nil
}

// caTemplate is the template of a CA certificate.
func caTemplate(subject pkix.Name, maxPathLen int) *x509.Certificate {
	t := &x509.Certificate{
		Subject:               subject,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            maxPathLen,
		MaxPathLenZero:        maxPathLen == 0,
	}
	return t
}

func (e *Engine) handleGenerateRoot(ctx context.Context, data map[string]any, exported bool) (*logical.Response, error) {
	p, err := parseCAParams(data, true)
	if err != nil {
		return nil, err
	}
	ca, key, err := e.generateRoot(ctx, p)
	if err != nil {
		return nil, err
	}
	var export crypto.Signer
	if exported {
		export = key
	}
	out, err := certData(ca, ca.cert, p.format, export, p.pkcs8)
	if err != nil {
		return nil, err
	}
	kt, _, _ := describeKey(key.Public())
	out["private_key_type"] = kt
	return &logical.Response{Data: out}, nil
}

// generateRoot makes a root key and self-signed certificate and stores
// them as the mount's CA, with the certificate under certs/ too. The key
// is generated before taking caMu (RSA keys take long), and the absence of
// a CA is checked before and after.
func (e *Engine) generateRoot(ctx context.Context, p *caParams) (*caBundle, crypto.Signer, error) {
	if ca, err := e.loadCA(ctx); err != nil {
		return nil, nil, err
	} else if ca != nil {
		return nil, nil, ErrCAExists
	}
	key, err := generateKey(e.rand, p.keyType, p.keyBits)
	if err != nil {
		return nil, nil, err
	}
	tmpl := caTemplate(p.subject, p.maxPathLen)
	tmpl.DNSNames, tmpl.EmailAddresses, tmpl.IPAddresses, tmpl.URIs = p.dnsNames, p.emails, p.ips, p.uris
	tmpl.PermittedDNSDomains = p.permittedDNS
	tmpl.PermittedDNSDomainsCritical = len(p.permittedDNS) > 0

	e.caMu.Lock()
	defer e.caMu.Unlock()
	if ca, err := e.loadCALocked(ctx); err != nil {
		return nil, nil, err
	} else if ca != nil {
		return nil, nil, ErrCAExists
	}
	cert, err := e.buildCert(ctx, tmpl, nil, key, key.Public(), p.ttl)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: encode root key: %w", err)
	}
	ent := &caEntry{Kind: kindRoot, Certificate: cert.Raw, PrivateKey: keyDER}
	raw, err := json.Marshal(ent)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: encode CA: %w", err)
	}
	bundle, err := newBundle(ent)
	if err != nil {
		return nil, nil, err
	}
	certOp, err := certPutOp(cert, bundle.serial)
	if err != nil {
		return nil, nil, err
	}
	ops := []storage.Op{storage.PutOp(caKey, raw), storage.DeleteOp(pendingKey), certOp}
	if err := e.storage.Txn(ctx, ops); err != nil {
		return nil, nil, fmt.Errorf("pki: store root CA: %w", err)
	}
	e.ca.Store(&caState{ca: bundle})
	return bundle, key, nil
}

func (e *Engine) handleGenerateIntermediate(ctx context.Context, data map[string]any, exported bool) (*logical.Response, error) {
	p, err := parseCAParams(data, false)
	if err != nil {
		return nil, err
	}
	if ca, err := e.loadCA(ctx); err != nil {
		return nil, err
	} else if ca != nil {
		return nil, ErrCAExists
	}
	key, err := generateKey(e.rand, p.keyType, p.keyBits)
	if err != nil {
		return nil, err
	}
	csrDER, err := x509.CreateCertificateRequest(e.rand, &x509.CertificateRequest{
		Subject: p.subject, DNSNames: p.dnsNames, EmailAddresses: p.emails, IPAddresses: p.ips, URIs: p.uris,
	}, key)
	if err != nil {
		return nil, fmt.Errorf("pki: create intermediate CSR: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encode intermediate key: %w", err)
	}
	raw, err := json.Marshal(&pendingEntry{PrivateKey: keyDER, CSR: csrDER})
	if err != nil {
		return nil, fmt.Errorf("pki: encode pending intermediate: %w", err)
	}

	e.caMu.Lock()
	defer e.caMu.Unlock()
	if ca, err := e.loadCALocked(ctx); err != nil {
		return nil, err
	} else if ca != nil {
		return nil, ErrCAExists
	}
	if err := e.storage.Put(ctx, pendingKey, raw); err != nil {
		return nil, fmt.Errorf("pki: store pending intermediate: %w", err)
	}
	kt, _, _ := describeKey(key.Public())
	out := map[string]any{
		"csr":              encodeDER(p.format, "CERTIFICATE REQUEST", csrDER),
		"private_key_type": kt,
	}
	if exported {
		if err := addKey(out, key, p.format, p.pkcs8); err != nil {
			return nil, err
		}
	}
	return &logical.Response{Data: out}, nil
}

// handleSetSigned imports the signed certificate of the pending
// intermediate key, optionally followed by its parents.
func (e *Engine) handleSetSigned(ctx context.Context, data map[string]any) (*logical.Response, error) {
	if err := field.CheckFields(data, "certificate"); err != nil {
		return nil, err
	}
	text, ok, err := field.GetNonNull(data, "certificate", parsePEMText)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, logical.Invalid("certificate", "missing")
	}
	certs, err := parseCertChain(text)
	if err != nil {
		return nil, err
	}
	e.caMu.Lock()
	defer e.caMu.Unlock()
	if ca, err := e.loadCALocked(ctx); err != nil {
		return nil, err
	} else if ca != nil {
		return nil, ErrCAExists
	}
	raw, err := logical.GetOptional(ctx, e.storage, pendingKey)
	if err != nil {
		return nil, fmt.Errorf("pki: read pending intermediate: %w", err)
	}
	if raw == nil {
		return nil, logical.Invalid("certificate", "no pending intermediate key: generate one with intermediate/generate first")
	}
	var pend pendingEntry
	if err := json.Unmarshal(raw, &pend); err != nil {
		return nil, fmt.Errorf("pki: decode pending intermediate: %w", err)
	}
	key, err := parseStoredKey(pend.PrivateKey)
	if err != nil {
		return nil, err
	}
	leaf := certs[0]
	if pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(key.Public()) {
		return nil, logical.Invalid("certificate", "the certificate's public key does not match the pending intermediate key")
	}
	switch {
	case !leaf.BasicConstraintsValid || !leaf.IsCA:
		return nil, logical.Invalid("certificate", "not a CA certificate (basic constraints CA:true missing)")
	case leaf.KeyUsage&x509.KeyUsageCertSign == 0 || leaf.KeyUsage&x509.KeyUsageCRLSign == 0:
		return nil, logical.Invalid("certificate", "the certificate's key usage must allow certificate and CRL signing")
	case len(leaf.SubjectKeyId) == 0:
		return nil, logical.Invalid("certificate", "the certificate has no subject key identifier")
	case !e.now().Before(leaf.NotAfter):
		return nil, logical.Invalid("certificate", "the certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	for i := 1; i < len(certs); i++ {
		if err := certs[i-1].CheckSignatureFrom(certs[i]); err != nil {
			return nil, logical.Invalid("certificate", "certificate %d of the chain is not signed by certificate %d: %v", i, i+1, err)
		}
	}
	ent := &caEntry{Kind: kindIntermediate, Certificate: leaf.Raw, PrivateKey: pend.PrivateKey}
	for _, c := range certs[1:] {
		ent.Chain = append(ent.Chain, c.Raw)
	}
	bundle, err := newBundle(ent)
	if err != nil {
		return nil, err
	}
	rawCA, err := json.Marshal(ent)
	if err != nil {
		return nil, fmt.Errorf("pki: encode CA: %w", err)
	}
	if err := e.storage.Txn(ctx, []storage.Op{storage.PutOp(caKey, rawCA), storage.DeleteOp(pendingKey)}); err != nil {
		return nil, fmt.Errorf("pki: store intermediate CA: %w", err)
	}
	e.ca.Store(&caState{ca: bundle})
	return nil, nil
}

// parseCertChain decodes one or more PEM certificates.
func parseCertChain(text string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := []byte(text)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, logical.Invalid("certificate", "PEM block %d is a %q, not a CERTIFICATE", len(certs)+1, field.Truncate(block.Type, 32))
		}
		if len(certs) == maxChainLen {
			return nil, logical.Invalid("certificate", "more than %d certificates", maxChainLen)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, logical.Invalid("certificate", "certificate %d: %v", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, logical.Invalid("certificate", "no PEM certificate found")
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, logical.Invalid("certificate", "text after the last PEM certificate")
	}
	return certs, nil
}

// deleteCA removes the CA and any pending intermediate key (Vault's
// DELETE root). Issued certificates and revocations stay.
func (e *Engine) deleteCA(ctx context.Context) (*logical.Response, error) {
	e.caMu.Lock()
	defer e.caMu.Unlock()
	if err := e.storage.Txn(ctx, []storage.Op{storage.DeleteOp(caKey), storage.DeleteOp(pendingKey)}); err != nil {
		return nil, fmt.Errorf("pki: delete CA: %w", err)
	}
	e.ca.Store(&caState{})
	return nil, nil
}

// signIntermediateFields are the fields of root/sign-intermediate.
var signIntermediateFields = []string{
	"csr", "common_name", "alt_names", "ip_sans", "uri_sans", "exclude_cn_from_sans", "use_csr_values",
	"organization", "ou", "country", "locality", "province", "street_address", "postal_code",
	"ttl", "max_path_length", "permitted_dns_domains", "format",
}

func (e *Engine) handleSignIntermediate(ctx context.Context, data map[string]any) (*logical.Response, error) {
	if err := field.CheckFields(data, signIntermediateFields...); err != nil {
		return nil, err
	}
	csr, err := csrField(data)
	if err != nil {
		return nil, err
	}
	useCSR, err := field.GetOr(data, "use_csr_values", field.Bool, false)
	if err != nil {
		return nil, err
	}
	var tmpl *x509.Certificate
	if useCSR {
		if err := checkSubject(csr.Subject); err != nil {
			return nil, logical.Invalid("csr", "%v", err)
		}
		tmpl = caTemplate(csr.Subject, -1)
		tmpl.DNSNames, tmpl.EmailAddresses, tmpl.IPAddresses, tmpl.URIs = csr.DNSNames, csr.EmailAddresses, csr.IPAddresses, csr.URIs
		for _, n := range slices.Concat(csr.DNSNames, csr.EmailAddresses) {
			if err := encodable(n); err != nil {
				return nil, logical.Invalid("csr", "%v", err)
			}
		}
	} else {
		if _, ok := data["common_name"]; !ok && csr.Subject.CommonName != "" {
			data = withField(data, "common_name", csr.Subject.CommonName)
		}
		subject, err := parseSubject(data)
		if err != nil {
			return nil, err
		}
		tmpl = caTemplate(subject, -1)
		if tmpl.DNSNames, tmpl.EmailAddresses, tmpl.IPAddresses, tmpl.URIs, err = parseSANs(data, subject.CommonName); err != nil {
			return nil, err
		}
	}
	mpl, err := field.GetOr(data, "max_path_length", parseInt(-1, 64), -1)
	if err != nil {
		return nil, err
	}
	if tmpl.PermittedDNSDomains, err = parsePermittedDNS(data); err != nil {
		return nil, err
	}
	tmpl.PermittedDNSDomainsCritical = len(tmpl.PermittedDNSDomains) > 0
	ttl, err := field.GetOr(data, "ttl", parseTTL, 0)
	if err != nil {
		return nil, err
	}
	if ttl == 0 {
		ttl = DefaultIntermediateTTL
	}
	format, err := field.GetOr(data, "format", parseFormat, "pem")
	if err != nil {
		return nil, err
	}
	ca, err := e.mustCA(ctx)
	if err != nil {
		return nil, err
	}
	// A CA limited to n intermediates below it gives its child at most n-1.
	if ca.cert.MaxPathLen > 0 || ca.cert.MaxPathLenZero {
		limit := ca.cert.MaxPathLen - 1
		switch {
		case limit < 0:
			return nil, logical.Invalid("csr", "this mount's CA has max_path_length 0: it may sign only leaf certificates")
		case mpl == -1:
			mpl = int64(limit)
		case mpl > int64(limit):
			return nil, logical.Invalid("max_path_length", "at most %d below this mount's CA", limit)
		}
	}
	tmpl.MaxPathLen, tmpl.MaxPathLenZero = int(mpl), mpl == 0
	cert, err := e.buildCert(ctx, tmpl, ca, ca.signer, csr.PublicKey, ttl)
	if err != nil {
		return nil, err
	}
	if err := e.storeCert(ctx, cert, ca.serial); err != nil {
		return nil, err
	}
	out, err := certData(ca, cert, format, nil, false)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: out}, nil
}

// withField returns a copy of data with name set to v.
func withField(data map[string]any, name string, v any) map[string]any {
	out := make(map[string]any, len(data)+1)
	for k, x := range data {
		out[k] = x
	}
	out[name] = v
	return out
}

// readCARaw serves ca (DER), ca/pem and ca_chain (PEM) as raw bodies.
func (e *Engine) readCARaw(ctx context.Context, kind string) (*logical.Response, error) {
	ca, err := e.loadCA(ctx)
	if err != nil {
		return nil, err
	}
	if ca == nil {
		return nil, fmt.Errorf("pki: no CA: %w", logical.ErrNotFound)
	}
	switch kind {
	case "ca":
		return &logical.Response{Raw: ca.cert.Raw, RawContentType: "application/pkix-cert", StatusCode: 200}, nil
	case "ca/pem":
		return &logical.Response{Raw: []byte(ca.chainPEM[0] + "\n"), RawContentType: "application/pem-certificate-chain", StatusCode: 200}, nil
	}
	return &logical.Response{Raw: []byte(strings.Join(ca.chainPEM, "\n") + "\n"), RawContentType: "application/pem-certificate-chain", StatusCode: 200}, nil
}
