package pki

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/secrethub/secrethub/core/logical"
)

// The role-less API below is for the core itself, which uses a PKI mount
// (agent-ca/) as the internal CA of agent mTLS: it makes the root once,
// signs each agent's CSR with the identity it decided, and checks client
// certificates against CAPool and IsRevoked. Nothing here is reachable
// through HandleRequest.

// RootOptions describes a root CA made by GenerateRoot.
type RootOptions struct {
	// CommonName is the root's subject CN; required.
	CommonName string
	// Organization and OrganizationalUnit go into the subject.
	Organization       []string
	OrganizationalUnit []string
	// KeyType is "ec" (the default) or "rsa"; KeyBits its size (0: 384
	// for ec, 4096 for rsa).
	KeyType string
	KeyBits int
	// TTL is the root's lifetime; 0 means DefaultRootTTL (10 years).
	TTL time.Duration
	// MaxPathLength bounds the intermediates below the root. The zero
	// value lets the root sign leaf certificates only, which is what an
	// internal CA wants; -1 means unlimited.
	MaxPathLength int
}

// GenerateRoot makes a root key and certificate and stores them as the
// mount's CA. When the mount already has a CA it returns ErrCAExists and
// changes nothing, so a caller may call it at every start.
func (e *Engine) GenerateRoot(ctx context.Context, opts RootOptions) error {
	if opts.CommonName == "" {
		return logical.Invalid("common_name", "missing")
	}
	if err := checkText(opts.CommonName); err != nil {
		return logical.Invalid("common_name", "%v", err)
	}
	if opts.KeyType == "" {
		opts.KeyType = KeyTypeEC
	}
	bits, err := checkGenKey(opts.KeyType, opts.KeyBits, 384, 4096)
	if err != nil {
		return logical.Invalid("key_bits", "%v", err)
	}
	if opts.TTL < 0 || opts.TTL > maxTTL {
		return logical.Invalid("ttl", "out of range")
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultRootTTL
	}
	if opts.MaxPathLength < -1 {
		return logical.Invalid("max_path_length", "must be -1 or more")
	}
	p := &caParams{
		subject: pkix.Name{
			CommonName:         opts.CommonName,
			Organization:       opts.Organization,
			OrganizationalUnit: opts.OrganizationalUnit,
		},
		keyType:    opts.KeyType,
		keyBits:    bits,
		ttl:        opts.TTL,
		maxPathLen: opts.MaxPathLength,
	}
	_, _, err = e.generateRoot(ctx, p)
	return err
}

// SignOptions says what SignCSR writes into a certificate. Only these
// values decide its subject and names: the CSR contributes its public key
// (and, when CommonName is empty, its CN), never its requested SANs.
type SignOptions struct {
	// CommonName is the subject CN; empty means the CSR's.
	CommonName string
	// URIs are the URI SANs (an agent's identity, e.g. spiffe://...).
	URIs []*url.URL
	// DNSNames and IPAddresses are DNS and IP SANs, for server
	// certificates (the core's agent listener).
	DNSNames    []string
	IPAddresses []net.IP
	// TTL is the certificate's lifetime, never beyond the CA's; 0 means
	// the engine's default TTL.
	TTL time.Duration
	// ClientAuth and ServerAuth set the extended key usages.
	ClientAuth, ServerAuth bool
}

// Issued is a certificate signed by SignCSR.
type Issued struct {
	// Certificate is the parsed certificate.
	Certificate *x509.Certificate
	// CertificatePEM is its PEM encoding.
	CertificatePEM string
	// IssuingCA is the PEM of the CA certificate that signed it.
	IssuingCA string
	// CAChain is the PEM of the issuing CA's chain, the issuing CA first.
	CAChain []string
	// SerialNumber is the serial in Vault's form ("1a:2b:...").
	SerialNumber string
}

// SignCSR signs a PEM CSR with the mount's CA, without a role, and stores
// the certificate so that it can be revoked. A malformed CSR, one whose
// signature does not verify, or one with an unsupported key is an
// InvalidRequestError naming "csr"; a mount without a CA answers ErrNoCA.
func (e *Engine) SignCSR(ctx context.Context, csrPEM []byte, opts SignOptions) (*Issued, error) {
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	cn := opts.CommonName
	if cn == "" {
		cn = csr.Subject.CommonName
	}
	if err := checkText(cn); err != nil {
		return nil, logical.Invalid("common_name", "%v", err)
	}
	for _, u := range opts.URIs {
		if u == nil {
			return nil, logical.Invalid("uri_sans", "nil URI")
		}
		if _, err := parseURI(u.String()); err != nil {
			return nil, logical.Invalid("uri_sans", "%v", err)
		}
	}
	if opts.TTL < 0 || opts.TTL > maxTTL {
		return nil, logical.Invalid("ttl", "out of range")
	}
	ttl := opts.TTL
	if ttl == 0 {
		ttl = e.defaultTTL
	}
	ca, err := e.mustCA(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range opts.DNSNames {
		if err := checkText(d); err != nil || d == "" || strings.ContainsAny(d, " /") {
			return nil, logical.Invalid("alt_names", "bad DNS name %q", d)
		}
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		URIs:        opts.URIs,
		DNSNames:    opts.DNSNames,
		IPAddresses: opts.IPAddresses,
		KeyUsage:    leafKeyUsage(csr.PublicKey),
	}
	if opts.ServerAuth {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if opts.ClientAuth {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	cert, err := e.buildCert(ctx, tmpl, ca, ca.signer, csr.PublicKey, ttl)
	if err != nil {
		return nil, err
	}
	if err := e.storeCert(ctx, cert, ca.serial); err != nil {
		return nil, err
	}
	return &Issued{
		Certificate:    cert,
		CertificatePEM: pemString("CERTIFICATE", cert.Raw),
		IssuingCA:      ca.chainPEM[0],
		CAChain:        append([]string(nil), ca.chainPEM...),
		SerialNumber:   formatSerial(cert.SerialNumber, ":"),
	}, nil
}

// CAPool returns a pool holding the mount's CA certificate, to verify
// client certificates it issued. Only this mount's certificate is a trust
// anchor, not its parents: a certificate issued by a sibling intermediate
// under the same root does not verify. A mount without a CA answers
// ErrNoCA.
func (e *Engine) CAPool(ctx context.Context) (*x509.CertPool, error) {
	ca, err := e.mustCA(ctx)
	if err != nil {
		return nil, fmt.Errorf("pki: CA pool: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool, nil
}
