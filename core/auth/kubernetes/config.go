package kubernetes

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
)

// Limits on what a config write may hold.
const (
	maxHostLen   = 2048
	maxCALen     = 256 << 10 // a PEM bundle of many certificates
	maxJWTLen    = 16 << 10  // a JWT, reviewer's or login's
	maxIssuerLen = 2048
)

// configEntry is the auth method's configuration as stored. The barrier
// encrypts it; TokenReviewerJWT never leaves the engine.
type configEntry struct {
	Host                 string `json:"kubernetes_host"`
	CACert               string `json:"kubernetes_ca_cert,omitempty"`
	TokenReviewerJWT     string `json:"token_reviewer_jwt,omitempty"`
	DisableLocalCAJWT    bool   `json:"disable_local_ca_jwt,omitempty"`
	Issuer               string `json:"issuer,omitempty"`
	DisableIssValidation bool   `json:"disable_iss_validation,omitempty"`
}

// configFields are the fields a write to config accepts.
var configFields = []string{
	"kubernetes_host", "kubernetes_ca_cert", "token_reviewer_jwt", "disable_local_ca_jwt",
	"issuer", "disable_iss_validation", "pem_keys",
}

// parseConfig checks a config write. A config write replaces the whole
// config, as in Vault, except token_reviewer_jwt: left out, the stored
// one is kept (it cannot be read back to be sent again); "" removes it.
// old is the stored config, or nil.
func parseConfig(data map[string]any, old *configEntry) (*configEntry, error) {
	if err := field.CheckFields(data, configFields...); err != nil {
		return nil, err
	}
	if v, ok := data["pem_keys"]; ok && v != nil {
		if keys, err := field.Strings(v, 64, maxCALen); err != nil || len(keys) > 0 {
			return nil, logical.Invalid("pem_keys", "not supported: every login is verified by the API server's TokenReview; leave pem_keys out")
		}
	}
	c := &configEntry{}
	host, ok, err := field.GetNonNull(data, "kubernetes_host", parseHost)
	if err != nil {
		return nil, err
	}
	if !ok || host == "" {
		return nil, logical.Invalid("kubernetes_host", "missing: the URL of the Kubernetes API server, like https://kubernetes.default.svc")
	}
	c.Host = host
	if c.CACert, _, err = field.GetNonNull(data, "kubernetes_ca_cert", parseCACert); err != nil {
		return nil, err
	}
	jwt, hasJWT, err := field.GetNonNull(data, "token_reviewer_jwt", parseReviewerJWT)
	if err != nil {
		return nil, err
	}
	switch {
	case hasJWT:
		c.TokenReviewerJWT = jwt
	case old != nil:
		c.TokenReviewerJWT = old.TokenReviewerJWT
	}
	if c.DisableLocalCAJWT, _, err = field.GetNonNull(data, "disable_local_ca_jwt", field.Bool); err != nil {
		return nil, err
	}
	if c.DisableIssValidation, _, err = field.GetNonNull(data, "disable_iss_validation", field.Bool); err != nil {
		return nil, err
	}
	if c.Issuer, _, err = field.GetNonNull(data, "issuer", parseIssuer); err != nil {
		return nil, err
	}
	return c, nil
}

// parseHost reads kubernetes_host: an https:// (or http://) URL, or a
// host[:port] meaning https, as Vault accepts. It returns the URL.
func parseHost(v any) (string, error) {
	s, err := field.String(v)
	if err != nil {
		return "", err
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	if len(s) > maxHostLen || field.HasControl(s) {
		return "", fmt.Errorf("must be a URL of at most %d bytes", maxHostLen)
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("%q is not a URL", field.Truncate(s, 64))
	case u.Scheme != "https" && u.Scheme != "http":
		return "", fmt.Errorf("scheme %q: want https (or http)", field.Truncate(u.Scheme, 16))
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("%q has no host", field.Truncate(s, 64))
	case u.User != nil:
		return "", fmt.Errorf("must not hold user information; give the credentials in token_reviewer_jwt")
	case u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("must not have a query or fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("port %q is not a port number", field.Truncate(p, 16))
		}
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// parseCACert reads kubernetes_ca_cert: PEM holding one or more
// certificates, and nothing else.
func parseCACert(v any) (string, error) {
	s, err := field.String(v)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(s) == "" {
		return "", nil
	}
	if len(s) > maxCALen {
		return "", fmt.Errorf("longer than %d bytes", maxCALen)
	}
	if _, err := caPool(s); err != nil {
		return "", err
	}
	return s, nil
}

// caPool parses a PEM bundle of certificates.
func caPool(s string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	rest := []byte(s)
	n := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is a %q, want CERTIFICATE", n+1, field.Truncate(b.Type, 32))
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %v", n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, fmt.Errorf("not PEM: want one or more -----BEGIN CERTIFICATE----- blocks")
	}
	if n == 0 {
		return nil, fmt.Errorf("holds no certificate")
	}
	return pool, nil
}

// parseReviewerJWT reads token_reviewer_jwt: a bearer token (a JWT, or
// another token the API server accepts). Its value is never quoted in an
// error.
func parseReviewerJWT(v any) (string, error) {
	s, err := field.String(v)
	if err != nil {
		return "", err
	}
	s = strings.TrimSpace(s)
	switch {
	case len(s) > maxJWTLen:
		return "", fmt.Errorf("longer than %d bytes", maxJWTLen)
	case strings.ContainsAny(s, " \t\r\n") || field.HasControl(s):
		return "", fmt.Errorf("must be one token without spaces or control characters")
	}
	return s, nil
}

func parseIssuer(v any) (string, error) {
	s, err := field.String(v)
	if err != nil {
		return "", err
	}
	s = strings.TrimSpace(s)
	if len(s) > maxIssuerLen || !utf8.ValidString(s) || field.HasControl(s) {
		return "", fmt.Errorf("must be at most %d bytes without control characters", maxIssuerLen)
	}
	return s, nil
}

// getConfig reads the config; nil when none is written yet.
func (e *Engine) getConfig(ctx context.Context) (*configEntry, error) {
	raw, err := logical.GetOptional(ctx, e.storage, configKey)
	if err != nil {
		return nil, fmt.Errorf("kubernetes auth: read config: %w", err)
	}
	if raw == nil {
		return nil, nil
	}
	var c configEntry
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("kubernetes auth: decode config: %w", err)
	}
	return &c, nil
}

func (e *Engine) writeConfig(ctx context.Context, data map[string]any) (*logical.Response, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old, err := e.getConfig(ctx)
	if err != nil {
		return nil, err
	}
	c, err := parseConfig(data, old)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("kubernetes auth: encode config: %w", err)
	}
	if err := e.storage.Put(ctx, configKey, raw); err != nil {
		return nil, fmt.Errorf("kubernetes auth: write config: %w", err)
	}
	var warnings []string
	if strings.HasPrefix(c.Host, "http://") {
		warnings = append(warnings, "kubernetes_host is plain http: service account tokens will cross the network unencrypted")
	}
	if c.CACert == "" && c.DisableLocalCAJWT && strings.HasPrefix(c.Host, "https://") {
		warnings = append(warnings, "no kubernetes_ca_cert: the API server's certificate is checked against the system's trusted CAs")
	}
	if len(warnings) == 0 {
		return nil, nil
	}
	return &logical.Response{Warnings: warnings}, nil
}

// readConfig answers the config without the reviewer token: only whether
// one is set.
func (e *Engine) readConfig(ctx context.Context) (*logical.Response, error) {
	c, err := e.getConfig(ctx)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("kubernetes auth: config not written yet: %w", logical.ErrNotFound)
	}
	return &logical.Response{Data: map[string]any{
		"kubernetes_host":        c.Host,
		"kubernetes_ca_cert":     c.CACert,
		"token_reviewer_jwt_set": c.TokenReviewerJWT != "",
		"disable_local_ca_jwt":   c.DisableLocalCAJWT,
		"issuer":                 c.Issuer,
		"disable_iss_validation": c.DisableIssValidation,
		"pem_keys":               []string{},
	}}, nil
}
