package kubernetes

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/secrethub/secrethub/core/auth/approle"
	"github.com/secrethub/secrethub/core/auth/internal/ratelimit"
	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
)

// Keys of a successful login's Auth.Metadata, as Vault names them.
const (
	MetadataRole                    = "role"
	MetadataServiceAccountName      = "service_account_name"
	MetadataServiceAccountNamespace = "service_account_namespace"
	MetadataServiceAccountUID       = "service_account_uid"
)

// saPrefix starts the user name the API server gives a service account.
const saPrefix = "system:serviceaccount:"

// LoginError is a refused login: the JWT is not valid, not of a service
// account the role binds, or not for the role's audience; or the role
// does not exist. It matches logical.ErrPermissionDenied, so the client
// is told only "permission denied"; Reason (in the error text, which the
// audit log records, and in the server log) says why. It never holds the
// JWT.
type LoginError struct {
	Role   string
	Reason string
}

func (e *LoginError) Error() string {
	return fmt.Sprintf("kubernetes auth: login with role %q: %s: %s", e.Role, logical.ErrPermissionDenied, e.Reason)
}

// Unwrap makes a LoginError match logical.ErrPermissionDenied.
func (e *LoginError) Unwrap() error { return logical.ErrPermissionDenied }

// RateLimitError is a login refused, before any TokenReview, because its
// source address failed too often. It matches logical.ErrRateLimited.
type RateLimitError struct {
	// RetryAfter is when the next attempt would be let through.
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return "kubernetes auth: login: " + logical.ErrRateLimited.Error() + ": too many failed logins, retry later"
}

// Unwrap makes a RateLimitError match logical.ErrRateLimited.
func (e *RateLimitError) Unwrap() error { return logical.ErrRateLimited }

// UpstreamError is a login that could not be checked because the
// Kubernetes API server could not be reached or refused the TokenReview
// itself (a reviewer token that is invalid or lacks system:auth-delegator).
// It matches logical.ErrUpstream (502); its text names the API server and
// the cause, never a token.
type UpstreamError struct {
	Host   string
	Reason string
}

func (e *UpstreamError) Error() string {
	return fmt.Sprintf("kubernetes auth: TokenReview at %s: %s: %s", e.Host, logical.ErrUpstream, e.Reason)
}

// Unwrap makes an UpstreamError match logical.ErrUpstream.
func (e *UpstreamError) Unwrap() error { return logical.ErrUpstream }

// login checks a service account JWT against a role and answers the Auth
// of the token it earns. Order: parse (400 on malformed input), rate
// limits, then the role and the JWT; every refusal is a *LoginError.
func (e *Engine) login(ctx context.Context, req *logical.Request, data map[string]any) (*logical.Response, error) {
	if err := field.CheckFields(data, "role", "jwt"); err != nil {
		return nil, err
	}
	role, ok, err := field.GetNonNull(data, "role", field.String)
	if err != nil {
		return nil, err
	}
	if role = strings.TrimSpace(role); !ok || role == "" {
		return nil, logical.Invalid("role", "missing")
	}
	if err := validateName(role); err != nil {
		return nil, err
	}
	jwt, err := loginJWT(data)
	if err != nil {
		return nil, err
	}

	now := e.now()
	srcKey := ratelimit.SourceKey(req.ClientAddr)
	if e.sources != nil {
		if ok, wait := e.sources.Allow(srcKey, now); !ok {
			return nil, &RateLimitError{RetryAfter: wait}
		}
	}

	resp, err := e.checkLogin(ctx, role, jwt)
	var denied *LoginError
	var upstream *UpstreamError
	switch {
	case errors.As(err, &denied):
		// Only a failure that is the caller's counts against the limit.
		if e.sources != nil {
			e.sources.Take(srcKey, now)
		}
		e.log.InfoContext(ctx, "kubernetes login refused", "mount", req.MountPath, "role", role,
			"client_addr", clientAddr(req), "reason", denied.Reason)
	case errors.As(err, &upstream):
		e.log.ErrorContext(ctx, "kubernetes login could not be checked", "mount", req.MountPath, "role", role,
			"kubernetes_host", upstream.Host, "reason", upstream.Reason)
	}
	return resp, err
}

func clientAddr(req *logical.Request) string {
	if !req.ClientAddr.IsValid() {
		return "unknown"
	}
	return req.ClientAddr.String()
}

// loginJWT reads the jwt field. Its value never appears in an error.
func loginJWT(data map[string]any) (string, error) {
	v, ok := data["jwt"]
	if !ok || v == nil {
		return "", logical.Invalid("jwt", "missing: the service account token")
	}
	s, ok := field.Single(v).(string)
	if !ok {
		return "", logical.Invalid("jwt", "want a string, got %s", field.TypeName(v))
	}
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", logical.Invalid("jwt", "missing: the service account token")
	case len(s) > maxJWTLen:
		return "", logical.Invalid("jwt", "longer than %d bytes", maxJWTLen)
	}
	return s, nil
}

// claims are the parts of a service account JWT read before the
// TokenReview, unverified: they only spare the API server a review of a
// token that could not pass. The TokenReview's answer decides.
type claims struct {
	Issuer   string    `json:"iss"`
	Subject  string    `json:"sub"`
	Audience audiences `json:"aud"`
}

// audiences is a JWT "aud" claim: one string or a list.
type audiences []string

func (a *audiences) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audiences{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud: want a string or a list of strings")
	}
	*a = many
	return nil
}

// parseClaims decodes a JWT's payload without checking its signature.
func parseClaims(jwt string) (*claims, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT (want three dot-separated parts)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, errors.New("JWT payload is not base64url")
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, errors.New("JWT payload is not a JSON object of claims")
	}
	return &c, nil
}

// splitServiceAccount splits "system:serviceaccount:<ns>:<name>".
func splitServiceAccount(user string) (namespace, name string, ok bool) {
	rest, ok := strings.CutPrefix(user, saPrefix)
	if !ok {
		return "", "", false
	}
	namespace, name, ok = strings.Cut(rest, ":")
	if !ok || namespace == "" || name == "" || strings.Contains(name, ":") {
		return "", "", false
	}
	return namespace, name, true
}

// checkAudience reports why the audiences a token has (from its claims or
// from the TokenReview) do not satisfy the role's; "" when they do. A
// role without an audience accepts what the API server accepts (its own
// audiences).
func checkAudience(want string, have []string) string {
	if want == "" || slices.Contains(have, want) {
		return ""
	}
	return fmt.Sprintf("token not issued for the role's audience %q (its audiences: %q)", want, have)
}

// checkLogin verifies the JWT for role.
func (e *Engine) checkLogin(ctx context.Context, role, jwt string) (*logical.Response, error) {
	deny := func(format string, args ...any) error {
		return &LoginError{Role: role, Reason: fmt.Sprintf(format, args...)}
	}
	cfg, err := e.getConfig(ctx)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, logical.Invalid("config", "the Kubernetes auth method is not configured yet: write its config (kubernetes_host, kubernetes_ca_cert, token_reviewer_jwt) first")
	}
	r, err := e.roleStore.Get(ctx, role)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, deny("no such role")
	}

	// Cheap checks on the unverified claims first.
	cl, err := parseClaims(jwt)
	if err != nil {
		return nil, deny("%v", err)
	}
	ns, name, ok := splitServiceAccount(cl.Subject)
	if !ok {
		return nil, deny("JWT subject %q is not a service account", field.Truncate(cl.Subject, 128))
	}
	if ok, why := r.bound(ns, name); !ok {
		return nil, deny("%s", why)
	}
	if why := checkAudience(r.Audience, cl.Audience); why != "" {
		return nil, deny("%s", why)
	}
	if cfg.Issuer != "" && !cfg.DisableIssValidation && cl.Issuer != cfg.Issuer {
		return nil, deny("JWT issuer %q is not the configured issuer %q", field.Truncate(cl.Issuer, 128), cfg.Issuer)
	}

	// The API server decides.
	st, err := e.review(ctx, cfg, jwt, r.Audience)
	if le := (*LoginError)(nil); errors.As(err, &le) {
		le.Role = role
	}
	if err != nil {
		return nil, err
	}
	if !st.Authenticated {
		reason := "the API server did not authenticate the token"
		if st.Error != "" {
			reason += ": " + field.Truncate(st.Error, 256)
		}
		return nil, deny("%s", reason)
	}
	rns, rname, ok := splitServiceAccount(st.User.Username)
	switch {
	case !ok:
		return nil, deny("the token authenticates %q, not a service account", field.Truncate(st.User.Username, 128))
	case rns != ns || rname != name:
		return nil, deny("the token authenticates %s%s:%s, not the subject %q it claims", saPrefix, rns, rname, field.Truncate(cl.Subject, 128))
	}
	if why := checkAudience(r.Audience, st.Audiences); why != "" {
		return nil, deny("TokenReview: %s", why)
	}

	policies := slices.Clone(r.TokenPolicies)
	if policies == nil {
		policies = []string{}
	}
	return &logical.Response{
		Auth: &logical.Auth{
			Policies:      policies,
			TokenPolicies: slices.Clone(policies),
			Metadata: map[string]string{
				MetadataRole:                    role,
				MetadataServiceAccountName:      name,
				MetadataServiceAccountNamespace: ns,
				MetadataServiceAccountUID:       st.User.UID,
			},
			LeaseDuration: r.TokenTTL,
			Renewable:     true,
		},
		Data: map[string]any{
			approle.DataTokenMaxTTL:     seconds(r.TokenMaxTTL),
			approle.DataTokenNumUses:    0,
			approle.DataTokenBoundCIDRs: nonNil(r.TokenBoundCIDRs),
		},
	}, nil
}

// readLocal reads a file of the pod the core runs in; a missing file
// reads as "".
func readLocal(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
