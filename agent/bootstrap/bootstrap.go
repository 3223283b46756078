// Package bootstrap gives the agent its identity on the core: it logs in
// with AppRole for a token, and holds a client certificate signed by the
// core's agent CA for a private key it made itself.
//
// Run is the entry point. The key (mode 0600), the certificate and the CA
// chain are kept in the configuration's state directory (mode 0700), each
// written atomically, so a restarted agent reuses a certificate that is
// still valid for more than RenewBefore instead of asking for a new one.
// The token is never stored: every start logs in again. No error names the
// secret ID or the token.
package bootstrap

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/secrethub/secrethub/agent/config"
	"github.com/secrethub/secrethub/agent/sink"
	"github.com/secrethub/secrethub/core/client"
)

// RenewBefore is how long before its expiry a stored certificate is
// replaced by a new one at start.
const RenewBefore = 7 * 24 * time.Hour

// Files in the state directory.
const (
	// KeyFile holds the agent's private key, PKCS#8 PEM, mode 0600.
	KeyFile = "agent-key.pem"
	// CertFile holds the agent's certificate, PEM.
	CertFile = "agent-cert.pem"
	// CAFile holds the CA chain that issued the certificate, PEM.
	CAFile = "agent-ca.pem"
)

// File modes.
const (
	stateDirMode fs.FileMode = 0o700
	keyMode      fs.FileMode = 0o600
	certMode     fs.FileMode = 0o644
)

// Paths on the core's REST API (below /v1/).
const (
	loginPath       = "auth/approle/login"
	certificatePath = "sys/agent/certificate"
)

var (
	// ErrLoginRefused is wrapped by Run's error when the core refuses the
	// AppRole login (unknown role ID, wrong, used-up or expired secret ID).
	ErrLoginRefused = errors.New("login refused")
	// ErrBadCertificate is wrapped by Run's error when the core's answer
	// to the certificate request is not a certificate for the agent's key.
	ErrBadCertificate = errors.New("bad agent certificate from the core")
)

// Identity is what the agent proves itself with.
type Identity struct {
	// Token is the core token from the AppRole login.
	Token string
	// Certificate is the agent's client certificate from the agent CA.
	Certificate *x509.Certificate
	// Key is the certificate's private key.
	Key crypto.Signer
	// CAPEM is the PEM CA chain that issued Certificate; it also verifies
	// the core's agent listener.
	CAPEM string
}

// Run logs in to the core with the AppRole credentials in cfg.Auth and
// leaves c holding the token. It then reuses the certificate stored in
// cfg.StateDir when one is there, matches the stored key and is valid for
// more than RenewBefore at now(); otherwise it makes a fresh ECDSA P-256
// key, has the core sign a CSR for it and stores key, certificate and CA
// chain. With cfg.StateDir empty nothing is stored and every start gets a
// new certificate. now nil means time.Now.
func Run(ctx context.Context, cfg *config.Config, c *client.Client, now func() time.Time) (*Identity, error) {
	if now == nil {
		now = time.Now
	}
	tok, err := login(ctx, cfg.Auth, c)
	if err != nil {
		return nil, err
	}
	id := &Identity{Token: tok}

	if cfg.StateDir != "" {
		if cert, key, ca, ok := loadStored(cfg.StateDir, now()); ok {
			id.Certificate, id.Key, id.CAPEM = cert, key, ca
			return id, nil
		}
	}
	cert, key, ca, err := issue(ctx, c)
	if err != nil {
		return nil, err
	}
	if cfg.StateDir != "" {
		if err := store(cfg.StateDir, cert, key, ca); err != nil {
			return nil, err
		}
	}
	id.Certificate, id.Key, id.CAPEM = cert, key, ca
	return id, nil
}

// login does the AppRole login and sets the token on c.
func login(ctx context.Context, a config.Auth, c *client.Client) (string, error) {
	if a.Method != "" && a.Method != config.AuthAppRole {
		return "", fmt.Errorf("bootstrap: auth method %q is not supported", a.Method)
	}
	if a.RoleID == "" || a.SecretID == "" {
		return "", errors.New("bootstrap: approle login: role ID or secret ID missing")
	}
	// A login carries no token.
	c.SetToken("")
	resp, err := c.Write(ctx, loginPath, map[string]any{"role_id": a.RoleID, "secret_id": string(a.SecretID)})
	switch {
	case errors.Is(err, client.ErrPermissionDenied):
		return "", fmt.Errorf("bootstrap: approle login at %s: %w: invalid role ID or secret ID (or the secret ID is used up or expired)",
			c.Address(), ErrLoginRefused)
	case err != nil:
		return "", fmt.Errorf("bootstrap: approle login at %s: %w", c.Address(), err)
	case resp.Auth == nil || resp.Auth.ClientToken == "":
		return "", fmt.Errorf("bootstrap: approle login at %s: the core answered without a token", c.Address())
	}
	c.SetToken(resp.Auth.ClientToken)
	return resp.Auth.ClientToken, nil
}

// issue makes a key and has the core sign a certificate for it.
func issue(ctx context.Context, c *client.Client) (*x509.Certificate, *ecdsa.PrivateKey, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, "", fmt.Errorf("bootstrap: generate key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, nil, "", fmt.Errorf("bootstrap: make CSR: %w", err)
	}
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	// An empty name lets the core name the agent after its AppRole role.
	resp, err := c.Write(ctx, certificatePath, map[string]any{"csr": string(csr), "name": ""})
	if err != nil {
		return nil, nil, "", fmt.Errorf("bootstrap: request agent certificate: %w", err)
	}
	certPEM, _ := resp.Data["certificate"].(string)
	cert, err := parseCert([]byte(certPEM))
	if err != nil {
		return nil, nil, "", fmt.Errorf("bootstrap: request agent certificate: %w: %w", ErrBadCertificate, err)
	}
	if !sameKey(cert, key) {
		return nil, nil, "", fmt.Errorf("bootstrap: request agent certificate: %w: it is not for the agent's key", ErrBadCertificate)
	}
	ca := caChain(resp.Data)
	if ca == "" {
		return nil, nil, "", fmt.Errorf("bootstrap: request agent certificate: %w: no CA chain", ErrBadCertificate)
	}
	return cert, key, ca, nil
}

// caChain joins the answer's ca_chain, or gives its issuing_ca.
func caChain(data map[string]any) string {
	var b strings.Builder
	if list, ok := data["ca_chain"].([]any); ok {
		for _, e := range list {
			if s, ok := e.(string); ok && strings.TrimSpace(s) != "" {
				b.WriteString(strings.TrimSpace(s))
				b.WriteString("\n")
			}
		}
	}
	if b.Len() == 0 {
		if s, ok := data["issuing_ca"].(string); ok && strings.TrimSpace(s) != "" {
			b.WriteString(strings.TrimSpace(s))
			b.WriteString("\n")
		}
	}
	return b.String()
}

// store writes key, certificate and CA chain. The key goes first: a crash
// between writes leaves a key that does not match the certificate, which
// loadStored rejects.
func store(dir string, cert *x509.Certificate, key *ecdsa.PrivateKey, ca string) error {
	if err := os.MkdirAll(dir, stateDirMode); err != nil {
		return fmt.Errorf("bootstrap: state directory: %w", err)
	}
	if err := os.Chmod(dir, stateDirMode); err != nil {
		return fmt.Errorf("bootstrap: state directory: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("bootstrap: encode key: %w", err)
	}
	files := []struct {
		name string
		data []byte
		mode fs.FileMode
	}{
		{KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), keyMode},
		{CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), certMode},
		{CAFile, []byte(ca), certMode},
	}
	for _, f := range files {
		if _, err := sink.Write(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("bootstrap: store %s: %w", f.name, err)
		}
	}
	return nil
}

// loadStored returns the stored identity when all three files are there,
// parse, match, and the certificate is valid for more than RenewBefore.
// Anything else means a new certificate.
func loadStored(dir string, now time.Time) (*x509.Certificate, crypto.Signer, string, bool) {
	keyPEM, err1 := os.ReadFile(filepath.Join(dir, KeyFile))
	certPEM, err2 := os.ReadFile(filepath.Join(dir, CertFile))
	caPEM, err3 := os.ReadFile(filepath.Join(dir, CAFile))
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, nil, "", false
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, nil, "", false
	}
	key, err := parseKey(keyPEM)
	if err != nil || !sameKey(cert, key) {
		return nil, nil, "", false
	}
	if _, err := parseCert(caPEM); err != nil {
		return nil, nil, "", false
	}
	if now.Before(cert.NotBefore) || !now.Add(RenewBefore).Before(cert.NotAfter) {
		return nil, nil, "", false
	}
	return cert, key, string(caPEM), true
}

func parseCert(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

func parseKey(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("no PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key of type %T cannot sign", k)
	}
	return s, nil
}

// sameKey reports whether cert is for key's public key.
func sameKey(cert *x509.Certificate, key crypto.Signer) bool {
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(key.Public())
}
