package operator

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core"
	"github.com/secrethub/secrethub/core/client"
	"github.com/secrethub/secrethub/internal/coretest"
)

// TestAuthenticatorRelogin: the operator's token is replaced when it is
// due, and once after a 403 (the request is sent again, body included);
// a 403 right after a login is returned as is, so a policy that really
// denies does not make the operator log in in a loop. The login is an
// AppRole login against a real core, standing in for the Kubernetes one
// (which needs an API server to review the token).
func TestAuthenticatorRelogin(t *testing.T) {
	ctx := context.Background()
	env := coretest.Start(t, core.Config{})
	addr, root := env.RESTURL, env.Root
	if _, err := root.Write(ctx, "sys/policies/acl/op", map[string]any{"policy": `{"rules":[{"path":"secrets/**","capabilities":["create","read","update"]}]}`}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Write(ctx, "auth/approle/role/op", map[string]any{"token_policies": []string{"op"}, "token_ttl": "1h"}); err != nil {
		t.Fatal(err)
	}
	rid, err := root.Read(ctx, "auth/approle/role/op/role-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	sid, err := root.Write(ctx, "auth/approle/role/op/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	anon, err := client.New(client.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		logins int
		last   string
	)
	now := time.Now()
	a := &Authenticator{
		now:         func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
		reloginWait: time.Minute,
		login: func(ctx context.Context) (string, time.Duration, error) {
			resp, err := anon.Write(ctx, "auth/approle/login", map[string]any{"role_id": rid.Data["role_id"], "secret_id": sid.Data["secret_id"]})
			if err != nil {
				return "", 0, err
			}
			mu.Lock()
			defer mu.Unlock()
			logins++
			last = resp.Auth.ClientToken
			return resp.Auth.ClientToken, time.Duration(resp.Auth.LeaseDuration) * time.Second, nil
		},
	}
	c, err := client.New(client.Config{Address: addr, HTTPClient: httpClient(a.Transport(http.DefaultTransport.(*http.Transport).Clone()))})
	if err != nil {
		t.Fatal(err)
	}
	put := func(path string) error {
		_, err := c.Write(ctx, path, map[string]any{"data": map[string]any{"v": "1"}, "options": map[string]any{}})
		return err
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return logins }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	revoke := func() {
		t.Helper()
		mu.Lock()
		tok := last
		mu.Unlock()
		if _, err := root.Write(ctx, "auth/token/revoke", map[string]any{"token": tok}); err != nil {
			t.Fatal(err)
		}
	}

	if err := put("secrets/a"); err != nil || count() != 1 {
		t.Fatalf("first request: %v, %d logins", err, count())
	}
	// Revoked right after the login: the 403 is returned, no new login.
	revoke()
	if err := put("secrets/b"); !errors.Is(err, client.ErrPermissionDenied) || count() != 1 {
		t.Fatalf("403 within the re-login wait: %v, %d logins", err, count())
	}
	// Later, the 403 brings a new login and the request goes through.
	advance(2 * time.Minute)
	if err := put("secrets/b"); err != nil || count() != 2 {
		t.Fatalf("403 after the wait: %v, %d logins", err, count())
	}
	if resp, err := root.Read(ctx, "secrets/b", nil); err != nil || resp.Data["v"] != "1" {
		t.Fatalf("the retried write did not land: %v %v", resp, err)
	}
	// Past two thirds of the TTL, the token is renewed before use.
	advance(41 * time.Minute)
	if err := put("secrets/c"); err != nil || count() != 3 {
		t.Fatalf("due token: %v, %d logins", err, count())
	}
	if err := put("secrets/d"); err != nil || count() != 3 {
		t.Fatalf("fresh token: %v, %d logins", err, count())
	}
}

func TestServiceAccountLoginErrors(t *testing.T) {
	addr := coretest.Start(t, core.Config{}).RESTURL
	base, err := client.New(client.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ServiceAccountLogin(base, LoginConfig{TokenFile: "/x"}); err == nil || !strings.Contains(err.Error(), "auth role") {
		t.Fatalf("no role: %v", err)
	}
	if _, _, err := CoreClient(Options{CoreAddress: addr}); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("no credentials: %v", err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("not-a-jwt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// No Kubernetes auth is mounted: the login fails, naming the path,
	// and the token is not in the error.
	a, err := ServiceAccountLogin(base, LoginConfig{Role: "op", TokenFile: tokenFile})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Token(context.Background())
	if err == nil || !strings.Contains(err.Error(), "auth/kubernetes/login") || strings.Contains(err.Error(), "not-a-jwt") {
		t.Fatalf("login without the auth method: %v", err)
	}
	// The token file is read at login, not before.
	a, err = ServiceAccountLogin(base, LoginConfig{Role: "op", TokenFile: filepath.Join(t.TempDir(), "missing")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "read service account token") {
		t.Fatalf("missing token file: %v", err)
	}
}
