package bootstrap

// Tests against a real core in-process: inmem storage, initialized and
// unsealed, its REST API on one loopback listener and its mTLS agent
// listener on another.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/agent/config"
	"github.com/secrethub/secrethub/core"
	"github.com/secrethub/secrethub/core/client"
	"github.com/secrethub/secrethub/internal/coretest"
)

// realCore is a running core with an AppRole role "web" whose tokens may
// read secrets/app/*.
type realCore struct {
	t        *testing.T
	root     *client.Client // holds the root token
	restURL  string
	agentURL string
	roleID   string
}

func newRealCore(t *testing.T, certTTL time.Duration, secretIDUses int) *realCore {
	t.Helper()
	ctx := context.Background()
	env := coretest.Start(t, core.Config{AgentCertTTL: certTTL})
	root := env.Root
	rc := &realCore{t: t, root: root, restURL: env.RESTURL, agentURL: env.AgentURL}
	rc.write("sys/policies/acl/app", map[string]any{"policy": "rules:\n- path: secrets/app/*\n  capabilities: [read]\n"})
	rc.write("auth/approle/role/web", map[string]any{"token_policies": []string{"app"}, "secret_id_num_uses": secretIDUses})
	resp, err := root.Read(ctx, "auth/approle/role/web/role-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	rc.roleID, _ = resp.Data["role_id"].(string)
	if rc.roleID == "" {
		t.Fatal("no role ID")
	}
	return rc
}

func (rc *realCore) write(path string, data map[string]any) map[string]any {
	rc.t.Helper()
	resp, err := rc.root.Write(context.Background(), path, data)
	if err != nil {
		rc.t.Fatalf("write %s: %v", path, err)
	}
	return resp.Data
}

// secretID makes a new secret ID for the role.
func (rc *realCore) secretID() config.Secret {
	rc.t.Helper()
	sid, _ := rc.write("auth/approle/role/web/secret-id", nil)["secret_id"].(string)
	if sid == "" {
		rc.t.Fatal("no secret ID")
	}
	return config.Secret(sid)
}

// client is a REST client without a token, like the agent's.
func (rc *realCore) client() *client.Client {
	rc.t.Helper()
	c, err := client.New(client.Config{Address: rc.restURL})
	if err != nil {
		rc.t.Fatal(err)
	}
	return c
}

func (rc *realCore) config(stateDir string) *config.Config {
	return &config.Config{
		Auth:     config.Auth{Method: config.AuthAppRole, RoleID: rc.roleID, SecretID: rc.secretID()},
		StateDir: stateDir,
	}
}

// whoami asks the agent listener who id is, over mTLS; it returns the
// HTTP status or an error for a refused handshake.
func (rc *realCore) whoami(id *Identity) (int, error) {
	rc.t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(id.CAPEM)) {
		rc.t.Fatal("bad CA PEM")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: roots, Certificates: []tls.Certificate{id.TLSCertificate()}, MinVersion: tls.VersionTLS12,
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(rc.agentURL + "/v1/sys/agent/whoami")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestRestartReusesCertificateWithoutLogin: the secret ID allows one
// login. The first start uses it; a restart still gets its identity (the
// stored certificate, no login), which the agent listener accepts; a
// forced Reissue then fails because the secret ID is used up, and works
// with a new one, replacing the stored key and certificate.
func TestRestartReusesCertificateWithoutLogin(t *testing.T) {
	ctx := context.Background()
	rc := newRealCore(t, 0, 1)
	cfg := rc.config(filepath.Join(t.TempDir(), "state"))

	first, err := Run(ctx, cfg, rc.client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if first.Token == "" || first.Warning != nil {
		t.Fatalf("first start: token set %v, warning %v", first.Token != "", first.Warning)
	}
	checkState(t, cfg.StateDir, first)

	c := rc.client()
	second, err := Run(ctx, cfg, c, nil)
	if err != nil {
		t.Fatalf("restart with a used-up secret ID: %v (it must not log in)", err)
	}
	if second.Token != "" {
		t.Error("restart has a token: it logged in")
	}
	if second.Certificate.SerialNumber.Cmp(first.Certificate.SerialNumber) != 0 {
		t.Errorf("restart serial %v, want the stored %v", second.Certificate.SerialNumber, first.Certificate.SerialNumber)
	}
	if code, err := rc.whoami(second); err != nil || code != 200 {
		t.Fatalf("agent listener with the reused certificate: %d %v", code, err)
	}

	// The secret ID is used up: only a login can tell, and it fails.
	_, err = Reissue(ctx, cfg, c)
	if !errors.Is(err, ErrLoginRefused) {
		t.Fatalf("Reissue with a used-up secret ID: %v, want ErrLoginRefused", err)
	}
	if strings.Contains(err.Error(), string(cfg.Auth.SecretID)) {
		t.Error("error quotes the secret ID")
	}
	checkState(t, cfg.StateDir, first) // left as it was

	cfg.Auth.SecretID = rc.secretID()
	third, err := Reissue(ctx, cfg, c)
	if err != nil {
		t.Fatal(err)
	}
	if third.Token == "" || third.Certificate.SerialNumber.Cmp(first.Certificate.SerialNumber) == 0 || sameKey(first.Certificate, third.Key) {
		t.Fatal("Reissue did not log in and make a new key and certificate")
	}
	checkState(t, cfg.StateDir, third)
	if code, err := rc.whoami(third); err != nil || code != 200 {
		t.Fatalf("agent listener with the reissued certificate: %d %v", code, err)
	}
}

// TestRenew renews over the real mTLS agent listener: a new key and a new
// certificate, stored over the old ones; after the token behind the
// certificate is revoked, Renew says to log in again and Reissue mends it.
func TestRenew(t *testing.T) {
	ctx := context.Background()
	rc := newRealCore(t, time.Hour, 0)
	cfg := rc.config(filepath.Join(t.TempDir(), "state"))
	old, err := Run(ctx, cfg, rc.client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	oldKeyPEM := mustRead(t, filepath.Join(cfg.StateDir, KeyFile))

	renewed, err := Renew(ctx, cfg, rc.agentURL, old, nil)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Certificate.SerialNumber.Cmp(old.Certificate.SerialNumber) == 0 {
		t.Error("renewed certificate has the old serial")
	}
	if sameKey(renewed.Certificate, old.Key) {
		t.Error("renewed certificate is for the old key")
	}
	if renewed.Token != "" {
		t.Error("Renew returned a token")
	}
	if !strings.Contains(renewed.Certificate.URIs[0].String(), strings.TrimPrefix(old.Certificate.URIs[0].String(), "spiffe://secrethub/agent/")) {
		t.Errorf("renewed identity %v, want the old %v", renewed.Certificate.URIs, old.Certificate.URIs)
	}
	checkState(t, cfg.StateDir, renewed)
	if bytes.Equal(mustRead(t, filepath.Join(cfg.StateDir, KeyFile)), oldKeyPEM) {
		t.Error("key file not replaced")
	}
	if code, err := rc.whoami(renewed); err != nil || code != 200 {
		t.Fatalf("agent listener with the renewed certificate: %d %v", code, err)
	}

	// A restart reuses the renewed certificate.
	again, err := Run(ctx, cfg, rc.client(), nil)
	if err != nil || again.Token != "" || again.Certificate.SerialNumber.Cmp(renewed.Certificate.SerialNumber) != 0 {
		t.Fatalf("restart after renewal: err %v, token set %v, not the renewed certificate", err, again != nil && again.Token != "")
	}

	// Revoke the token behind the certificate: Renew wants a login.
	rc.write("auth/token/revoke-accessor", map[string]any{"accessor": strings.TrimPrefix(renewed.Certificate.URIs[0].String(), "spiffe://secrethub/agent/")})
	if _, err := Renew(ctx, cfg, rc.agentURL, renewed, nil); !errors.Is(err, ErrLoginRequired) {
		t.Fatalf("Renew after the token was revoked: %v, want ErrLoginRequired", err)
	}
	checkState(t, cfg.StateDir, renewed)
	fresh, err := Reissue(ctx, cfg, rc.client())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Renew(ctx, cfg, rc.agentURL, fresh, nil); err != nil {
		t.Fatalf("Renew after Reissue: %v", err)
	}
}

func TestRenewRefusals(t *testing.T) {
	ctx := context.Background()
	rc := newRealCore(t, time.Hour, 0)
	other := newRealCore(t, time.Hour, 0)
	cfg := rc.config(t.TempDir())
	id, err := Run(ctx, cfg, rc.client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Another core's listener: its certificate does not chain to our CA.
	if _, err := Renew(ctx, cfg, other.agentURL, id, nil); !errors.Is(err, client.ErrUnreachable) {
		t.Errorf("Renew at a core of another CA: %v, want a failed handshake", err)
	}
	if _, err := Renew(ctx, cfg, strings.Replace(rc.agentURL, "https", "http", 1), id, nil); err == nil {
		t.Error("Renew over http:// was accepted")
	}
	// A certificate checked at a time past its end is refused.
	late := func() time.Time { return time.Now().Add(2 * time.Hour) }
	if _, err := Renew(ctx, cfg, rc.agentURL, id, late); !errors.Is(err, ErrBadCertificate) {
		t.Errorf("Renew checked two hours late: %v, want ErrBadCertificate", err)
	}
}

// TestRemoveSecretIDFile: the file is removed after a successful login
// with the secret ID read from it, and only then.
func TestRemoveSecretIDFile(t *testing.T) {
	rc := newRealCore(t, 0, 0)
	tests := map[string]struct {
		// fromFile: the secret ID came from the file, not the environment.
		fromFile bool
		// wrong: the secret ID is refused.
		wrong bool
		// undeletable: the path cannot be removed (a non-empty directory).
		undeletable bool
		wantGone    bool
		wantWarning bool
	}{
		"read from the file: removed":        {fromFile: true, wantGone: true},
		"from the environment: kept":         {},
		"login refused: kept":                {fromFile: true, wrong: true},
		"removal fails: warning, no failure": {fromFile: true, undeletable: true, wantWarning: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := rc.config(filepath.Join(dir, "state"))
			cfg.Auth.SecretIDFile = filepath.Join(dir, "secret-id")
			cfg.Auth.RemoveSecretIDFile, cfg.Auth.SecretIDFromFile = true, tc.fromFile
			if tc.undeletable {
				if err := os.MkdirAll(filepath.Join(cfg.Auth.SecretIDFile, "x"), 0o700); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(cfg.Auth.SecretIDFile, []byte(cfg.Auth.SecretID), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.wrong {
				cfg.Auth.SecretID = "not-the-secret-id"
			}
			id, err := Run(context.Background(), cfg, rc.client(), nil)
			if tc.wrong {
				if !errors.Is(err, ErrLoginRefused) {
					t.Fatalf("err = %v, want ErrLoginRefused", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			_, statErr := os.Stat(cfg.Auth.SecretIDFile)
			if gone := errors.Is(statErr, os.ErrNotExist); gone != tc.wantGone {
				t.Errorf("file gone = %v, want %v", gone, tc.wantGone)
			}
			if id != nil && (id.Warning != nil) != tc.wantWarning {
				t.Errorf("warning = %v, want one: %v", id.Warning, tc.wantWarning)
			}
			if tc.wantWarning && !errors.Is(id.Warning, ErrRemoveSecretIDFile) {
				t.Errorf("warning = %v, want ErrRemoveSecretIDFile", id.Warning)
			}
		})
	}
}

// TestRestartAfterSecretIDFileRemoved goes through config.Load: the
// secret ID file is gone after the first start, a restart loads the
// config and starts from the stored certificate, and without one it says
// a new secret ID is needed.
func TestRestartAfterSecretIDFileRemoved(t *testing.T) {
	ctx := context.Background()
	rc := newRealCore(t, 0, 0)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	roleFile, secretFile := write("role-id", rc.roleID), write("secret-id", string(rc.secretID()))
	stateDir := filepath.Join(dir, "state")
	cfgFile := write("agent.yaml", "core: {addresses: [\""+rc.restURL+"\"]}\nauth: {role_id_file: "+roleFile+
		", secret_id_file: "+secretFile+", remove_secret_id_file: true}\nstate_dir: "+stateDir+"\n")
	noEnv := func(string) (string, bool) { return "", false }

	load := func() *config.Config {
		t.Helper()
		cfg, err := config.Load(cfgFile, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	first, err := Run(ctx, load(), rc.client(), nil)
	if err != nil || first.Token == "" {
		t.Fatalf("first start: %v", err)
	}
	if _, err := os.Stat(secretFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("secret ID file still there after login (%v)", err)
	}
	second, err := Run(ctx, load(), rc.client(), nil)
	if err != nil || second.Certificate.SerialNumber.Cmp(first.Certificate.SerialNumber) != 0 {
		t.Fatalf("restart without the secret ID file: %v", err)
	}
	if err := os.Remove(filepath.Join(stateDir, CertFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx, load(), rc.client(), nil); !errors.Is(err, ErrNoSecretID) {
		t.Fatalf("no certificate and no secret ID: %v, want ErrNoSecretID", err)
	}
}

func TestRenewAt(t *testing.T) {
	start := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		life time.Duration
		want time.Time
	}{
		"30 days: 7 days before the end": {30 * 24 * time.Hour, start.Add(23 * 24 * time.Hour)},
		"15 days: 7 days before the end": {15 * 24 * time.Hour, start.Add(8 * 24 * time.Hour)},
		"14 days: at two thirds":         {14 * 24 * time.Hour, start.Add(14 * 24 * time.Hour / 3 * 2)},
		"1 hour: at 40 minutes":          {time.Hour, start.Add(40 * time.Minute)},
		"1 minute: at 40 seconds":        {time.Minute, start.Add(40 * time.Second)},
	}
	for name, tc := range tests {
		got := RenewAt(&x509.Certificate{NotBefore: start, NotAfter: start.Add(tc.life)})
		if !got.Equal(tc.want) {
			t.Errorf("%s: RenewAt = %v, want %v", name, got, tc.want)
		}
	}
}
