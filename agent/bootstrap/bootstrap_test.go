package bootstrap

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/agent/config"
	"github.com/secrethub/secrethub/core/client"
)

// t0 is when the fake core issues certificates: valid from t0-1h to
// t0+certTTL.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	certTTL  = 30 * 24 * time.Hour
	roleID   = "role-1"
	secretID = "secret-xyz-123"
	token    = "shs.agent-token"
)

// fakeCore answers AppRole logins and agent certificate requests, signing
// with its own CA, the way the core's REST API does.
type fakeCore struct {
	t      *testing.T
	caKey  *ecdsa.PrivateKey
	ca     *x509.Certificate
	caPEM  string
	mu     sync.Mutex
	issued int
	logins int
}

func newFakeCore(t *testing.T) (*fakeCore, *client.Client) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "agent CA"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(10 * certTTL),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	f := &fakeCore{t: t, caKey: key, ca: ca,
		caPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := client.New(client.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func (f *fakeCore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]string
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, `{"errors":["bad body"]}`, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/v1/auth/approle/login":
		if body["role_id"] != roleID || body["secret_id"] != secretID {
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"errors":["permission denied"]}`))
			return
		}
		f.mu.Lock()
		f.logins++
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"auth": map[string]any{"client_token": token}})
	case "/v1/sys/agent/certificate":
		if r.Header.Get("X-SecretHub-Token") != token {
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"errors":["permission denied"]}`))
			return
		}
		blk, _ := pem.Decode([]byte(body["csr"]))
		if blk == nil {
			http.Error(w, `{"errors":["csr: not PEM"]}`, http.StatusBadRequest)
			return
		}
		csr, err := x509.ParseCertificateRequest(blk.Bytes)
		if err != nil || csr.CheckSignature() != nil {
			http.Error(w, `{"errors":["csr: invalid"]}`, http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.issued++
		serial := int64(100 + f.issued)
		f.mu.Unlock()
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "agent web"},
			NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(certTTL),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, f.ca, csr.PublicKey, f.caKey)
		if err != nil {
			f.t.Errorf("sign: %v", err)
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{
			"certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
			"issuing_ca":  f.caPEM, "ca_chain": []string{f.caPEM},
		}})
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeCore) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issued
}

func (f *fakeCore) loginCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logins
}

func at(d time.Duration) func() time.Time { return func() time.Time { return t0.Add(d) } }

func TestRunRenewal(t *testing.T) {
	tests := map[string]struct {
		// second is when the second start happens, after a first at t0.
		second time.Duration
		// tamper changes the state directory between the two starts.
		tamper func(t *testing.T, dir string)
		// reused: the second start keeps the first certificate.
		reused bool
	}{
		"a day later: reused":             {second: 24 * time.Hour, reused: true},
		"8 days before expiry: reused":    {second: certTTL - 8*24*time.Hour, reused: true},
		"7 days before expiry: renewed":   {second: certTTL - RenewBefore},
		"6 days before expiry: renewed":   {second: certTTL - 6*24*time.Hour},
		"after expiry: renewed":           {second: certTTL + time.Hour},
		"before NotBefore (clock skew)":   {second: -2 * time.Hour},
		"certificate removed: renewed":    {second: time.Hour, tamper: remove(CertFile)},
		"CA chain removed: renewed":       {second: time.Hour, tamper: remove(CAFile)},
		"key of another pair: renewed":    {second: time.Hour, tamper: otherKey},
		"garbage certificate: renewed":    {second: time.Hour, tamper: overwrite(CertFile, "not pem")},
		"state directory removed: issued": {second: time.Hour, tamper: func(t *testing.T, dir string) { _ = os.RemoveAll(dir) }},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f, c := newFakeCore(t)
			cfg := testConfig(filepath.Join(t.TempDir(), "state"))
			first, err := Run(context.Background(), cfg, c, at(0))
			if err != nil {
				t.Fatal(err)
			}
			if first.Token != token || first.CAPEM == "" {
				t.Fatalf("first identity: token set %v, CA %q", first.Token == token, first.CAPEM)
			}
			checkState(t, cfg.StateDir, first)
			if tc.tamper != nil {
				tc.tamper(t, cfg.StateDir)
			}
			c.SetToken("")
			second, err := Run(context.Background(), cfg, c, at(tc.second))
			if err != nil {
				t.Fatal(err)
			}
			// A reused certificate needs no login; a new one does.
			if (second.Token == token) == tc.reused {
				t.Errorf("second start has token %v, want %v", second.Token == token, !tc.reused)
			}
			if want := map[bool]int{true: 1, false: 2}[tc.reused]; f.loginCount() != want {
				t.Errorf("logins = %d, want %d", f.loginCount(), want)
			}
			same := second.Certificate.SerialNumber.Cmp(first.Certificate.SerialNumber) == 0
			if same != tc.reused {
				t.Errorf("reused = %v, want %v", same, tc.reused)
			}
			if want := map[bool]int{true: 1, false: 2}[tc.reused]; f.count() != want {
				t.Errorf("certificates issued = %d, want %d", f.count(), want)
			}
			checkState(t, cfg.StateDir, second)
		})
	}
}

// checkState checks the state directory holds id, with the right modes.
func checkState(t *testing.T, dir string, id *Identity) {
	t.Helper()
	for name, want := range map[string]os.FileMode{"": 0o700, KeyFile: 0o600, CertFile: 0o644, CAFile: 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%q mode %v, want %v", name, st.Mode().Perm(), want)
		}
	}
	cert, err := parseCert(mustRead(t, filepath.Join(dir, CertFile)))
	if err != nil || !cert.Equal(id.Certificate) {
		t.Errorf("stored certificate is not the identity's (%v)", err)
	}
	key, err := parseKey(mustRead(t, filepath.Join(dir, KeyFile)))
	if err != nil || !sameKey(cert, key) || !sameKey(id.Certificate, id.Key) {
		t.Errorf("stored key does not match the certificate (%v)", err)
	}
	if got := string(mustRead(t, filepath.Join(dir, CAFile))); got != id.CAPEM {
		t.Errorf("stored CA %q, identity's %q", got, id.CAPEM)
	}
}

func TestRunWithoutStateDir(t *testing.T) {
	f, c := newFakeCore(t)
	cfg := testConfig("")
	for range 2 {
		if _, err := Run(context.Background(), cfg, c, at(0)); err != nil {
			t.Fatal(err)
		}
	}
	if f.count() != 2 {
		t.Errorf("certificates issued = %d, want 2 (nothing stored)", f.count())
	}
}

func TestRunLoginRefused(t *testing.T) {
	const wrong = "wrong-secret-id-456"
	f, c := newFakeCore(t)
	cfg := testConfig(filepath.Join(t.TempDir(), "state"))
	cfg.Auth.SecretID = wrong
	_, err := Run(context.Background(), cfg, c, at(0))
	if !errors.Is(err, ErrLoginRefused) {
		t.Fatalf("err = %v, want ErrLoginRefused", err)
	}
	if strings.Contains(err.Error(), wrong) {
		t.Errorf("error quotes the secret ID: %v", err)
	}
	if f.count() != 0 {
		t.Error("a certificate was issued after a refused login")
	}
	if _, err := os.Stat(cfg.StateDir); !os.IsNotExist(err) {
		t.Errorf("state directory made after a refused login (%v)", err)
	}
}

func TestRunCoreUnreachable(t *testing.T) {
	c, err := client.New(client.Config{Address: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), testConfig(t.TempDir()), c, at(0))
	if !errors.Is(err, client.ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
}

func testConfig(stateDir string) *config.Config {
	return &config.Config{
		Auth:     config.Auth{Method: config.AuthAppRole, RoleID: roleID, SecretID: secretID},
		StateDir: stateDir,
	}
}

func remove(name string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func overwrite(name, content string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func otherKey(t *testing.T, dir string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	overwrite(KeyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))(t, dir)
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
