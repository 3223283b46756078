package core

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/secrets/pki"
	"github.com/secrethub/secrethub/core/token"
)

// The internal CA of agent mTLS is a PKI mount at AgentCAMount, made at
// the first unseal. Agents get a client certificate for their token's
// identity from sys/agent/certificate, renew it with the certificate itself
// at sys/agent/renew, and connect to the agent listener, which trusts only
// this CA and refuses revoked certificates.
const (
	AgentCAMount = "agent-ca/"
	// DefaultAgentCertTTL is how long an agent certificate is valid.
	DefaultAgentCertTTL = 30 * 24 * time.Hour
	// agentURIPrefix starts the URI SAN naming an agent's token accessor.
	agentURIPrefix = "spiffe://secrethub/agent/"
	// agentServerCertTTL is the validity of the agent listener's own
	// certificate, issued at each unseal.
	agentServerCertTTL = 90 * 24 * time.Hour
)

// ErrNoAgentCertificate is returned when a request that must be made
// with an agent certificate comes without one.
var ErrNoAgentCertificate = errors.New("no agent client certificate")

// agentCA returns the agent CA engine of st.
func (st *activeState) agentCA() (*pki.Engine, error) {
	eng, ok := st.engines[AgentCAMount].(*pki.Engine)
	if !ok {
		return nil, errors.New("agent CA mount is missing")
	}
	return eng, nil
}

// ensureAgentCA makes the agent CA's root if the mount has none, and
// issues the agent listener's server certificate.
func (c *Core) ensureAgentCA(ctx context.Context, st *activeState, clusterName string) error {
	ca, err := st.agentCA()
	if err != nil {
		return err
	}
	err = ca.GenerateRoot(ctx, pki.RootOptions{
		CommonName: "SecretHub agent CA " + clusterName, Organization: []string{"SecretHub"},
	})
	if err != nil && !errors.Is(err, pki.ErrCAExists) {
		return fmt.Errorf("agent CA: %w", err)
	}
	cert, err := c.issueServerCert(ctx, ca)
	if err != nil {
		return fmt.Errorf("agent listener certificate: %w", err)
	}
	st.agentServerCert = cert
	pool, err := ca.CAPool(ctx)
	if err != nil {
		return err
	}
	st.agentCAPool = pool
	return nil
}

// issueServerCert makes the agent listener's key and certificate, for the
// names in AgentServerNames (and localhost).
func (c *Core) issueServerCert(ctx context.Context, ca *pki.Engine) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.CertificateRequest{}
	for _, n := range append([]string{"localhost"}, c.agentServerNames...) {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	tmpl.IPAddresses = append(tmpl.IPAddresses, net.IPv4(127, 0, 0, 1), net.IPv6loopback)
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, err
	}
	issued, err := ca.SignCSR(ctx, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), pki.SignOptions{
		CommonName: "secrethub core", TTL: agentServerCertTTL, ServerAuth: true,
		DNSNames: tmpl.DNSNames, IPAddresses: tmpl.IPAddresses,
	})
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{issued.Certificate.Raw}, PrivateKey: key, Leaf: issued.Certificate}, nil
}

// AgentTLSConfig is the TLS configuration of the agent listener: the
// core's server certificate from the agent CA, client certificates
// required and verified against the agent CA, revoked ones refused. While
// sealed every handshake fails.
func (c *Core) AgentTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			st := c.active.Load()
			if st == nil || st.agentServerCert == nil {
				return nil, ErrSealed
			}
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{*st.agentServerCert},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    st.agentCAPool,
				VerifyConnection: func(cs tls.ConnectionState) error {
					return c.checkAgentCert(hello.Context(), cs.PeerCertificates)
				},
			}, nil
		},
	}
}

// checkAgentCert refuses a revoked agent certificate.
func (c *Core) checkAgentCert(ctx context.Context, chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return ErrNoAgentCertificate
	}
	st := c.active.Load()
	if st == nil {
		return ErrSealed
	}
	ca, err := st.agentCA()
	if err != nil {
		return err
	}
	revoked, err := ca.IsRevoked(ctx, chain[0].SerialNumber)
	if err != nil {
		return fmt.Errorf("agent certificate revocation check: %w", err)
	}
	if revoked {
		return errors.New("agent certificate is revoked")
	}
	return nil
}

// agentAccessor reads the token accessor an agent certificate names.
func agentAccessor(cert *x509.Certificate) (string, bool) {
	for _, u := range cert.URIs {
		if acc, ok := strings.CutPrefix(u.String(), agentURIPrefix); ok && acc != "" && !strings.Contains(acc, "/") {
			return acc, true
		}
	}
	return "", false
}

// agentRoute serves sys/agent/*.
func (c *Core) agentRoute(req *logical.Request, p string) (route, error) {
	isWrite := req.Operation == logical.OpCreate || req.Operation == logical.OpUpdate
	switch {
	case p == "agent/certificate" && isWrite:
		return route{handler: c.sysAgentCertificate}, nil
	case p == "agent/renew" && isWrite:
		return route{handler: c.sysAgentRenew, certAuth: true, unauthenticated: true}, nil
	case p == "agent/whoami" && req.Operation == logical.OpRead:
		return route{handler: c.sysAgentWhoami, certAuth: true, unauthenticated: true}, nil
	}
	return route{}, fmt.Errorf("%w: %s on %s", logical.ErrUnsupportedPath, req.Operation, req.Path)
}

// signAgent signs an agent CSR for the token e.
func (c *Core) signAgent(ctx context.Context, req *logical.Request, e *token.Entry) (*logical.Response, error) {
	if err := checkFields(req.Data, "csr", "name"); err != nil {
		return nil, err
	}
	csr, err := fieldString(req.Data, "csr")
	if err != nil {
		return nil, err
	}
	if csr == "" {
		return nil, logical.Invalid("csr", "missing: a PEM certificate signing request for the agent's key")
	}
	name, err := fieldString(req.Data, "name")
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = e.DisplayName
	}
	if role := e.Meta["role_name"]; role != "" && name == e.DisplayName {
		name = role
	}
	st := c.active.Load()
	if st == nil {
		return nil, ErrSealed
	}
	ca, err := st.agentCA()
	if err != nil {
		return nil, err
	}
	// An agent certificate never outlives its token's hard end.
	ttl := c.agentCertTTL
	if !e.MaxExpiresAt.IsZero() {
		ttl = max(min(ttl, e.MaxExpiresAt.Sub(req.Time)), time.Minute)
	}
	u, err := url.Parse(agentURIPrefix + e.Accessor)
	if err != nil {
		return nil, err
	}
	issued, err := ca.SignCSR(ctx, []byte(csr), pki.SignOptions{
		CommonName: "agent " + name, URIs: []*url.URL{u}, TTL: ttl, ClientAuth: true,
	})
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{
		"certificate": issued.CertificatePEM, "issuing_ca": issued.IssuingCA, "ca_chain": issued.CAChain,
		"serial_number": issued.SerialNumber, "expiration": issued.Certificate.NotAfter.Unix(),
		"identity": u.String(),
	}}, nil
}

// sysAgentCertificate signs an agent's CSR for the caller's token.
func (c *Core) sysAgentCertificate(ctx context.Context, req *logical.Request, caller *token.Entry) (*logical.Response, error) {
	return c.signAgent(ctx, req, caller)
}

// certCaller finds the live token an agent certificate names.
func (c *Core) certCaller(ctx context.Context, req *logical.Request) (*token.Entry, error) {
	if len(req.PeerCertificates) == 0 {
		return nil, denied("no agent client certificate: use the agent listener with an agent certificate")
	}
	if err := c.checkAgentCert(ctx, req.PeerCertificates); err != nil {
		return nil, denied("%v", err)
	}
	acc, ok := agentAccessor(req.PeerCertificates[0])
	if !ok {
		return nil, denied("client certificate names no agent")
	}
	e, err := c.tokens.LookupAccessor(ctx, acc)
	if errors.Is(err, token.ErrNotFound) || errors.Is(err, token.ErrExpired) {
		return nil, denied("the agent's token is revoked or expired: log in again")
	}
	if err != nil {
		return nil, err
	}
	req.TokenAccessor, req.Policies = e.Accessor, e.Policies
	return e, nil
}

// sysAgentRenew signs a new CSR for the agent whose current certificate
// made the request.
func (c *Core) sysAgentRenew(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	e, err := c.certCaller(ctx, req)
	if err != nil {
		return nil, err
	}
	return c.signAgent(ctx, req, e)
}

// sysAgentWhoami tells an agent who the core takes it for.
func (c *Core) sysAgentWhoami(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	e, err := c.certCaller(ctx, req)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{
		"identity": agentURIPrefix + e.Accessor, "subject": req.PeerCertificates[0].Subject.CommonName,
		"policies": e.Policies, "serial_number": req.PeerCertificates[0].SerialNumber.Text(16),
	}}, nil
}
