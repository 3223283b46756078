package operator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/secrethub/secrethub/core/client"
)

// TokenHeader is the header the core reads a token from.
const TokenHeader = "X-SecretHub-Token"

// Default paths of the operator's service account token: a projected token
// with the core as audience, else the pod's standard token.
const (
	DefaultTokenFile   = "/var/run/secrets/tokens/secrethub"
	StandardTokenFile  = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	defaultReloginWait = 30 * time.Second
)

// LoginConfig is how the operator logs in to the core with its service
// account.
type LoginConfig struct {
	// Mount is the Kubernetes auth method's mount below auth/. Default
	// "kubernetes".
	Mount string
	// Role is the auth role to log in with. Required.
	Role string
	// TokenFile holds the service account token (JWT). It is read again
	// at every login, since the kubelet rotates projected tokens.
	TokenFile string
}

// Authenticator holds the operator's core token and keeps it fresh: it
// logs in when it has none, when the token is past two thirds of its
// lifetime, and (at most every 30 s) when the core answers 403 with it.
// With a static token it never logs in. It is safe for concurrent use.
type Authenticator struct {
	// login gets a new token and its lifetime (0: no expiry); nil for a
	// static token.
	login func(ctx context.Context) (token string, ttl time.Duration, err error)
	now   func() time.Time
	// reloginWait is the least time between two logins forced by 403s.
	reloginWait time.Duration

	mu sync.Mutex // guards the fields below
	// token is the current token; "" before the first login.
	token string
	// refreshAt is when the token should be replaced (zero: never).
	refreshAt time.Time
	// loggedInAt is when the last login succeeded.
	loggedInAt time.Time
}

// StaticToken returns an Authenticator that always sends token (a
// development setup: SECRETHUB_TOKEN).
func StaticToken(token string) *Authenticator {
	return &Authenticator{token: token, now: time.Now}
}

// ServiceAccountLogin returns an Authenticator that logs in to the core at
// auth/<mount>/login with the service account token in cfg.TokenFile.
// base talks to the core without a token (its HTTP client is the one
// requests go through).
func ServiceAccountLogin(base *client.Client, cfg LoginConfig) (*Authenticator, error) {
	if cfg.Role == "" {
		return nil, errors.New("service account login: no auth role (-auth-role)")
	}
	if cfg.TokenFile == "" {
		return nil, errors.New("service account login: no token file (-token-file)")
	}
	mount := strings.Trim(cfg.Mount, "/")
	if mount == "" {
		mount = "kubernetes"
	}
	login := func(ctx context.Context) (string, time.Duration, error) {
		jwt, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return "", 0, fmt.Errorf("read service account token: %w", err)
		}
		resp, err := base.Write(ctx, "auth/"+mount+"/login", map[string]any{
			"role": cfg.Role, "jwt": strings.TrimSpace(string(jwt)),
		})
		if err != nil {
			return "", 0, fmt.Errorf("log in to the core at auth/%s/login as role %q: %w", mount, cfg.Role, err)
		}
		if resp.Auth == nil || resp.Auth.ClientToken == "" {
			return "", 0, fmt.Errorf("log in to the core at auth/%s/login: the answer holds no token", mount)
		}
		return resp.Auth.ClientToken, time.Duration(resp.Auth.LeaseDuration) * time.Second, nil
	}
	return &Authenticator{login: login, now: time.Now, reloginWait: defaultReloginWait}, nil
}

// Token returns the token to send, logging in first when there is none or
// it is due for renewal. When a renewal fails but the old token is still
// valid, the old token is returned and the next call tries again.
func (a *Authenticator) Token(ctx context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.login == nil || (a.token != "" && (a.refreshAt.IsZero() || a.now().Before(a.refreshAt))) {
		return a.token, nil
	}
	return a.loginLocked(ctx)
}

func (a *Authenticator) loginLocked(ctx context.Context) (string, error) {
	tok, ttl, err := a.login(ctx)
	if err != nil {
		return "", err
	}
	now := a.now()
	a.token, a.loggedInAt = tok, now
	a.refreshAt = time.Time{}
	if ttl > 0 {
		a.refreshAt = now.Add(ttl * 2 / 3)
	}
	return tok, nil
}

// Denied reports that the core answered 403 to a request made with
// token. When that token is still the current one and the last login is
// older than the re-login wait, it logs in again and returns the new
// token and true: the caller may retry once. Otherwise it returns false.
func (a *Authenticator) Denied(ctx context.Context, token string) (string, bool) {
	if a.login == nil {
		return "", false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token != token {
		// Someone logged in meanwhile: retry with that token.
		return a.token, a.token != ""
	}
	if a.now().Sub(a.loggedInAt) < a.reloginWait {
		return "", false
	}
	tok, err := a.loginLocked(ctx)
	if err != nil {
		return "", false
	}
	return tok, true
}

// Transport returns a RoundTripper that sends each request through base
// with the current token, and retries a request once with a new token
// when the core answers 403 and Denied allows it.
func (a *Authenticator) Transport(base http.RoundTripper) http.RoundTripper {
	return &tokenTransport{auth: a, base: base}
}

type tokenTransport struct {
	auth *Authenticator
	base http.RoundTripper
}

func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := t.auth.Token(req.Context())
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Header.Set(TokenHeader, tok)
	resp, err := t.base.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusForbidden {
		return resp, err
	}
	if req.Body != nil && req.GetBody == nil {
		return resp, nil // the body cannot be sent again
	}
	next, ok := t.auth.Denied(req.Context(), tok)
	if !ok {
		return resp, nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	r = req.Clone(req.Context())
	if req.GetBody != nil {
		if r.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	r.Header.Set(TokenHeader, next)
	return t.base.RoundTrip(r)
}
