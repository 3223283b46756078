// Package bootstrap gives the agent its identity on the core: a client
// certificate signed by the core's agent CA for a private key the agent
// made itself, obtained with a token from a login: AppRole (role ID and
// secret ID) or Kubernetes (the pod's service account token, read from
// auth.token_file at each login because the kubelet rotates it).
//
// Run is the entry point at start. The key (mode 0600), the certificate
// and the CA chain are kept in the configuration's state directory (mode
// 0700), each written atomically. A certificate names the accessor of the
// token it was issued for, so a restarted agent that finds a stored
// certificate not yet due for renewal (see RenewAt) reuses it without
// logging in again: the token behind it is still the agent's identity.
// Otherwise Run logs in, has a certificate issued and stores it.
//
// While running, Renew replaces the certificate before it expires, over
// the core's mTLS agent listener with the current certificate; Reissue
// logs in again when the core says the token behind the certificate is
// revoked or expired. Callers serialise Run, Renew and Reissue: they
// write the same files. No error names the secret ID, a token or a key.
package bootstrap

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/secrethub/secrethub/agent/config"
	"github.com/secrethub/secrethub/agent/sink"
	"github.com/secrethub/secrethub/core/client"
)

// RenewBefore is how long before its expiry a certificate is replaced
// (see RenewAt).
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

// Paths on the core's API (below /v1/).
const (
	loginPath       = "auth/approle/login"
	loginPathFormat = "auth/%s/login" // Kubernetes, with auth.mount
	certificatePath = "sys/agent/certificate"
	renewPath       = "sys/agent/renew"
)

// renewTimeout bounds one renewal request when ctx has no deadline.
const renewTimeout = 60 * time.Second

var (
	// ErrLoginRefused is wrapped by Run's and Reissue's error when the
	// core refuses the login: AppRole (unknown role ID, wrong, used-up or
	// expired secret ID) or Kubernetes (a service account token the role
	// does not bind, or for another audience).
	ErrLoginRefused = errors.New("login refused")
	// ErrNoSecretID is wrapped when a login is needed but there is no
	// secret ID: remove_secret_id_file removed it after an earlier login,
	// and no stored certificate can be reused. The operator must supply a
	// new secret ID.
	ErrNoSecretID = errors.New("no secret ID")
	// ErrBadCertificate is wrapped when the core's answer to a
	// certificate request is not a certificate for the agent's key that
	// chains to the agent CA.
	ErrBadCertificate = errors.New("bad agent certificate from the core")
	// ErrLoginRequired is wrapped by Renew's error when the core refuses
	// the renewal because the token behind the certificate is revoked or
	// expired (a 403): call Reissue.
	ErrLoginRequired = errors.New("the agent's token is revoked or expired: log in again")
	// ErrRemoveSecretIDFile is wrapped by Identity.Warning when the secret
	// ID file could not be removed after a successful login.
	ErrRemoveSecretIDFile = errors.New("remove secret ID file")
	// ErrNoServiceAccountToken is wrapped when auth.token_file cannot be
	// read or is empty (Kubernetes login).
	ErrNoServiceAccountToken = errors.New("no service account token")
)

// maxServiceAccountTokenBytes bounds auth.token_file: a JWT is a few
// kilobytes, and a bound keeps a wrong path from being read whole.
const maxServiceAccountTokenBytes = 64 << 10

// Identity is what the agent proves itself with.
type Identity struct {
	// Token is the core token from the login. It is empty when
	// Run reused a stored certificate without logging in, and after
	// Renew: the agent then acts through its certificate on the agent
	// listener, whose token the core finds by the certificate's accessor.
	Token string
	// Certificate is the agent's client certificate from the agent CA.
	Certificate *x509.Certificate
	// Key is the certificate's private key.
	Key crypto.Signer
	// CAPEM is the PEM CA chain that issued Certificate; it also verifies
	// the core's agent listener.
	CAPEM string
	// Warning, when not nil, is a problem that did not fail the bootstrap
	// but that the operator should see (log it at warning level): the
	// secret ID file could not be removed (ErrRemoveSecretIDFile).
	Warning error
}

// TLSCertificate returns the certificate and key for a tls.Config.
func (id *Identity) TLSCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{id.Certificate.Raw}, PrivateKey: id.Key, Leaf: id.Certificate}
}

// RenewAt is when cert should be replaced: RenewBefore before it expires,
// or, for a certificate whose whole lifetime is at most twice RenewBefore
// (a token with a short max TTL bounds it), at two thirds of its lifetime.
func RenewAt(cert *x509.Certificate) time.Time {
	life := cert.NotAfter.Sub(cert.NotBefore)
	if life <= 2*RenewBefore {
		return cert.NotBefore.Add(life / 3 * 2)
	}
	return cert.NotAfter.Add(-RenewBefore)
}

// Run gives the agent its identity at start. When cfg.StateDir holds a
// key, a certificate for it and a CA chain, and now() is before the
// certificate's RenewAt, it returns them without logging in (Token is
// then empty). Otherwise it logs in with the AppRole credentials in
// cfg.Auth, leaving c holding the token, makes a fresh ECDSA P-256 key,
// has the core sign a CSR for it, and stores key, certificate and CA
// chain. With cfg.StateDir empty nothing is stored and every start logs
// in. now nil means time.Now.
//
// A reused certificate may belong to a token the core has revoked since;
// the core then answers 403 on the agent listener, and the caller uses
// Reissue.
func Run(ctx context.Context, cfg *config.Config, c *client.Client, now func() time.Time) (*Identity, error) {
	if now == nil {
		now = time.Now
	}
	if cfg.StateDir != "" {
		if cert, key, ca, ok := loadStored(cfg.StateDir, now()); ok {
			return &Identity{Certificate: cert, Key: key, CAPEM: ca}, nil
		}
	}
	return Reissue(ctx, cfg, c)
}

// Reissue logs in again, makes a new key, has a certificate issued for it
// and stores them over the old ones (each file replaced atomically),
// whatever the state directory holds. The daemon calls it when the core
// says the token behind the certificate is revoked or expired.
func Reissue(ctx context.Context, cfg *config.Config, c *client.Client) (*Identity, error) {
	tok, name, warn, err := login(ctx, cfg, c)
	if err != nil {
		return nil, err
	}
	cert, key, ca, err := issue(ctx, c, name)
	if err != nil {
		return nil, err
	}
	if cfg.StateDir != "" {
		if err := store(cfg.StateDir, cert, key, ca); err != nil {
			return nil, err
		}
	}
	return &Identity{Token: tok, Certificate: cert, Key: key, CAPEM: ca, Warning: warn}, nil
}

// Login logs in with cfg.Auth's method and sets the token on c.
//
// AppRole: after a successful login with a secret ID read from
// auth.secret_id_file (not from the environment) it removes that file
// when auth.remove_secret_id_file is set; a failed removal does not fail
// the login but is returned as warn (wrapping ErrRemoveSecretIDFile).
//
// Kubernetes: it reads the service account token from auth.token_file
// and logs in at auth/<auth.mount>/login with auth.role.
func Login(ctx context.Context, cfg *config.Config, c *client.Client) (tok string, warn, err error) {
	tok, _, warn, err = login(ctx, cfg, c)
	return tok, warn, err
}

// login is Login, also returning the name the agent's certificate should
// carry ("" lets the core choose).
func login(ctx context.Context, cfg *config.Config, c *client.Client) (tok, name string, warn, err error) {
	switch cfg.Auth.Method {
	case "", config.AuthAppRole:
		tok, warn, err = loginAppRole(ctx, cfg.Auth, c)
		return tok, "", warn, err
	case config.AuthKubernetes:
		tok, name, err = loginKubernetes(ctx, cfg.Auth, c)
		return tok, name, nil, err
	}
	return "", "", nil, fmt.Errorf("bootstrap: auth method %q is not supported", cfg.Auth.Method)
}

// loginKubernetes logs in with the service account token of auth.token_file.
// The certificate name is the service account, "<namespace>/<name>".
func loginKubernetes(ctx context.Context, a config.Auth, c *client.Client) (tok, name string, err error) {
	mount := a.Mount
	if mount == "" {
		mount = config.DefaultKubernetesMount
	}
	tokenFile := a.TokenFile
	if tokenFile == "" {
		tokenFile = config.DefaultKubernetesTokenFile
	}
	switch {
	case a.Role == "":
		return "", "", errors.New("bootstrap: kubernetes login: auth.role missing")
	case strings.Contains("/"+mount+"/", "/../") || strings.HasPrefix(mount, "/"):
		return "", "", fmt.Errorf("bootstrap: kubernetes login: auth.mount %q: not a path below auth/", mount)
	}
	jwt, err := readServiceAccountToken(tokenFile)
	if err != nil {
		return "", "", fmt.Errorf("bootstrap: kubernetes login: %w", err)
	}
	c.SetToken("")
	path := fmt.Sprintf(loginPathFormat, mount)
	resp, err := c.Write(ctx, path, map[string]any{"role": a.Role, "jwt": jwt})
	switch {
	case errors.Is(err, client.ErrPermissionDenied):
		return "", "", fmt.Errorf("bootstrap: kubernetes login at %s/v1/%s with role %q: %w: the core refused the service account token of %s (is the service account bound by the role, in a bound namespace, and the token projected for the role's audience? the core's log says which)",
			c.Address(), path, a.Role, ErrLoginRefused, tokenFile)
	case err != nil:
		return "", "", fmt.Errorf("bootstrap: kubernetes login at %s/v1/%s with role %q: %w", c.Address(), path, a.Role, err)
	case resp.Auth == nil || resp.Auth.ClientToken == "":
		return "", "", fmt.Errorf("bootstrap: kubernetes login at %s/v1/%s: the core answered without a token", c.Address(), path)
	}
	c.SetToken(resp.Auth.ClientToken)
	if ns, sa := resp.Auth.Metadata["service_account_namespace"], resp.Auth.Metadata["service_account_name"]; ns != "" && sa != "" {
		name = ns + "/" + sa
	}
	return resp.Auth.ClientToken, name, nil
}

// readServiceAccountToken reads a service account token file. Errors
// name the file, never its content.
func readServiceAccountToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%w: auth.token_file %s: %w", ErrNoServiceAccountToken, path, unwrapPath(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxServiceAccountTokenBytes+1))
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: auth.token_file %s: %w", ErrNoServiceAccountToken, path, unwrapPath(err))
	case len(b) > maxServiceAccountTokenBytes:
		return "", fmt.Errorf("%w: auth.token_file %s: larger than %d bytes", ErrNoServiceAccountToken, path, maxServiceAccountTokenBytes)
	}
	jwt := strings.TrimSpace(string(b))
	if jwt == "" {
		return "", fmt.Errorf("%w: auth.token_file %s is empty", ErrNoServiceAccountToken, path)
	}
	return jwt, nil
}

// loginAppRole does the AppRole login with a.
func loginAppRole(ctx context.Context, a config.Auth, c *client.Client) (tok string, warn, err error) {
	switch {
	case a.RoleID == "":
		return "", nil, errors.New("bootstrap: approle login: role ID missing")
	case a.SecretID == "" && a.RemoveSecretIDFile:
		return "", nil, fmt.Errorf("bootstrap: approle login: %w: %s was removed after an earlier login and there is no reusable certificate; provide a new secret ID",
			ErrNoSecretID, a.SecretIDFile)
	case a.SecretID == "":
		return "", nil, fmt.Errorf("bootstrap: approle login: %w", ErrNoSecretID)
	}
	// A login carries no token.
	c.SetToken("")
	resp, err := c.Write(ctx, loginPath, map[string]any{"role_id": a.RoleID, "secret_id": string(a.SecretID)})
	switch {
	case errors.Is(err, client.ErrPermissionDenied):
		return "", nil, fmt.Errorf("bootstrap: approle login at %s: %w: invalid role ID or secret ID (or the secret ID is used up or expired)",
			c.Address(), ErrLoginRefused)
	case err != nil:
		return "", nil, fmt.Errorf("bootstrap: approle login at %s: %w", c.Address(), err)
	case resp.Auth == nil || resp.Auth.ClientToken == "":
		return "", nil, fmt.Errorf("bootstrap: approle login at %s: the core answered without a token", c.Address())
	}
	c.SetToken(resp.Auth.ClientToken)
	if a.RemoveSecretIDFile && a.SecretIDFromFile && a.SecretIDFile != "" {
		if err := os.Remove(a.SecretIDFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			warn = fmt.Errorf("bootstrap: %w %s after login: %w", ErrRemoveSecretIDFile, a.SecretIDFile, unwrapPath(err))
		}
	}
	return resp.Auth.ClientToken, warn, nil
}

// unwrapPath drops a *fs.PathError's repetition of the path.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Renew replaces id's certificate before it expires: it makes a fresh
// ECDSA P-256 key and sends a CSR for it to sys/agent/renew on the core's
// agent listener at agentAddr (an https:// base URL), authenticating with
// id's current certificate and trusting only id.CAPEM. The answer must be
// a certificate for the new key that chains to id.CAPEM at now(). Key,
// certificate and CA chain are then stored in cfg.StateDir (when set) and
// the new Identity is returned (its Token empty). A 403 wraps
// ErrLoginRequired: the token behind the certificate is gone, call
// Reissue. A certificate the listener refuses (revoked, expired) fails the
// TLS handshake, which wraps client.ErrUnreachable. now nil means
// time.Now.
func Renew(ctx context.Context, cfg *config.Config, agentAddr string, id *Identity, now func() time.Time) (*Identity, error) {
	if now == nil {
		now = time.Now
	}
	if id == nil || id.Certificate == nil || id.Key == nil {
		return nil, errors.New("bootstrap: renew: no current certificate")
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(id.CAPEM)) {
		return nil, errors.New("bootstrap: renew: the identity's CA chain holds no PEM certificate")
	}
	if !strings.HasPrefix(agentAddr, "https://") {
		return nil, fmt.Errorf("bootstrap: renew: agent address %q: want https://", agentAddr)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the agent listener is reached directly
	tr.TLSClientConfig = &tls.Config{
		MinVersion: tls.VersionTLS12, RootCAs: roots, Certificates: []tls.Certificate{id.TLSCertificate()},
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{
		Transport: tr, Timeout: renewTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c, err := client.New(client.Config{Address: agentAddr, HTTPClient: hc})
	if err != nil {
		return nil, fmt.Errorf("bootstrap: renew: %w", err)
	}
	key, csr, err := newKeyAndCSR()
	if err != nil {
		return nil, err
	}
	resp, err := c.Write(ctx, renewPath, map[string]any{"csr": csr})
	switch {
	case errors.Is(err, client.ErrPermissionDenied):
		return nil, fmt.Errorf("bootstrap: renew at %s: %w (%w)", c.Address(), ErrLoginRequired, err)
	case err != nil:
		return nil, fmt.Errorf("bootstrap: renew at %s: %w", c.Address(), err)
	}
	cert, ca, err := checkIssued(resp.Data, key, roots, now())
	if err != nil {
		return nil, fmt.Errorf("bootstrap: renew at %s: %w", c.Address(), err)
	}
	if cfg.StateDir != "" {
		if err := store(cfg.StateDir, cert, key, ca); err != nil {
			return nil, err
		}
	}
	return &Identity{Certificate: cert, Key: key, CAPEM: ca}, nil
}

// newKeyAndCSR makes an ECDSA P-256 key and a PEM CSR for it. The CSR
// names nothing: the core names the agent after its token.
func newKeyAndCSR() (*ecdsa.PrivateKey, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("bootstrap: generate key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, "", fmt.Errorf("bootstrap: make CSR: %w", err)
	}
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

// checkIssued reads the core's answer to a certificate request: the
// certificate must be for key, and chain for client auth at now (zero:
// its NotBefore) to roots (nil: to the answer's own CA chain). It returns
// the certificate and the CA chain to store.
func checkIssued(data map[string]any, key *ecdsa.PrivateKey, roots *x509.CertPool, now time.Time) (*x509.Certificate, string, error) {
	certPEM, _ := data["certificate"].(string)
	cert, err := parseCert([]byte(certPEM))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrBadCertificate, err)
	}
	if !sameKey(cert, key) {
		return nil, "", fmt.Errorf("%w: it is not for the agent's key", ErrBadCertificate)
	}
	ca := caChain(data)
	if ca == "" {
		return nil, "", fmt.Errorf("%w: no CA chain", ErrBadCertificate)
	}
	if roots == nil {
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM([]byte(ca)) {
			return nil, "", fmt.Errorf("%w: the CA chain holds no PEM certificate", ErrBadCertificate)
		}
	}
	if now.IsZero() {
		now = cert.NotBefore
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrBadCertificate, err)
	}
	return cert, ca, nil
}

// issue makes a key and has the core sign a certificate for it, with the
// token c holds.
func issue(ctx context.Context, c *client.Client, name string) (*x509.Certificate, *ecdsa.PrivateKey, string, error) {
	key, csr, err := newKeyAndCSR()
	if err != nil {
		return nil, nil, "", err
	}
	// An empty name lets the core name the agent (after its AppRole role).
	resp, err := c.Write(ctx, certificatePath, map[string]any{"csr": csr, "name": name})
	if err != nil {
		return nil, nil, "", fmt.Errorf("bootstrap: request agent certificate: %w", err)
	}
	// The chain is checked against the CA the core sent (this is the first
	// contact, over the REST listener's own TLS), at the certificate's
	// start: a fresh certificate is checked for its signatures, not
	// against a clock that may be skewed from the core's.
	cert, ca, err := checkIssued(resp.Data, key, nil, time.Time{})
	if err != nil {
		return nil, nil, "", fmt.Errorf("bootstrap: request agent certificate: %w", err)
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
// parse, match, and now is between the certificate's NotBefore and its
// RenewAt. Anything else means a new certificate.
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
	if now.Before(cert.NotBefore) || !now.Before(RenewAt(cert)) {
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
