package uds

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/client"
)

// secretMarker is a secret value no error body may contain.
const secretMarker = "s3cret-value-91c2-never-show"

// testCA signs client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// client issues a client certificate.
func (ca *testCA) client(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// answer is what the test Source gives for one path.
type answer struct {
	data  map[string]any
	stale bool
	err   error
}

// mapSource is the daemon's seam: a fixed answer per path.
type mapSource struct {
	mu    sync.Mutex
	byKey map[string]answer
	asked []string
}

func (s *mapSource) Secret(_ context.Context, path string) (map[string]any, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, path)
	a, ok := s.byKey[path]
	if !ok {
		return nil, false, fmt.Errorf("read %s: %w", path, &client.ResponseError{StatusCode: 404})
	}
	return a.data, a.stale, a.err
}

func (s *mapSource) paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.asked...)
}

// shortDir is a temporary directory with a path short enough for a Unix
// socket (t.TempDir() paths can pass the ~108-byte limit).
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "uds")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// server is a listener serving src, stopped at the end of the test.
type server struct {
	path string
	ca   *testCA
}

func startServer(t *testing.T, src Source) *server {
	t.Helper()
	ca := newCA(t, "clients CA")
	serverCert, err := SelfSigned("secrethub-agent")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(shortDir(t), "run", "agent.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, Options{ClientCAs: ca.pool, ServerCert: serverCert, Source: src}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("socket file left behind (%v)", err)
		}
	})
	return &server{path: path, ca: ca}
}

// httpClient talks HTTPS over the socket with cert (none when nil),
// without verifying the server, as documented.
func (s *server) httpClient(t *testing.T, cert *tls.Certificate) *http.Client {
	t.Helper()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true} //nolint:gosec // the socket's mode authenticates the server
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{
		TLSClientConfig: cfg,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", s.path)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

type reply struct {
	code   int
	header http.Header
	body   string
}

func do(t *testing.T, c *http.Client, method, path string) (reply, error) {
	t.Helper()
	req, err := http.NewRequest(method, "https://agent"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{code: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

func TestSocketModeAndClientCertificates(t *testing.T) {
	src := &mapSource{byKey: map[string]answer{"secrets/app/db": {data: map[string]any{"password": secretMarker}}}}
	s := startServer(t, src)

	fi, err := os.Lstat(s.path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != SocketMode {
		t.Fatalf("socket %v, want a socket with mode %v", fi.Mode(), SocketMode)
	}
	if entries, _ := os.ReadDir(filepath.Dir(s.path)); len(entries) != 1 {
		t.Errorf("socket directory holds %d entries, want only the socket", len(entries))
	}

	good := s.ca.client(t, "app")
	r, err := do(t, s.httpClient(t, &good), "GET", "/v1/secrets/app/db")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Data  map[string]any `json:"data"`
		Stale bool           `json:"stale"`
	}
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.code != 200 || got.Data["password"] != secretMarker || got.Stale {
		t.Fatalf("GET with a valid certificate: %d %v (%v)", r.code, got, err)
	}
	if r.header.Get(StaleHeader) != "" || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", r.header)
	}

	refused := map[string]*tls.Certificate{"no certificate": nil}
	foreign := newCA(t, "another CA").client(t, "intruder")
	refused["certificate of another CA"] = &foreign
	for name, cert := range refused {
		if r, err := do(t, s.httpClient(t, cert), "GET", "/v1/secrets/app/db"); err == nil {
			t.Errorf("%s: served %d %s", name, r.code, r.body)
		}
	}
	if n := len(src.paths()); n != 1 {
		t.Errorf("source asked %d times, want once (refused clients reach nothing)", n)
	}
}

func TestResponses(t *testing.T) {
	sealed := &client.ResponseError{StatusCode: 503}
	src := &mapSource{byKey: map[string]answer{
		"secrets/app/db":       {data: map[string]any{"user": "app"}},
		"secrets/app/old":      {data: map[string]any{"user": "old"}, stale: true},
		"secrets/app/empty":    {},
		"secrets/app/denied":   {err: fmt.Errorf("read: %w", &client.ResponseError{StatusCode: 403, Errors: []string{"permission denied"}})},
		"secrets/app/offline":  {err: fmt.Errorf("not cached: %w", ErrUnavailable)},
		"secrets/app/sealed":   {err: sealed},
		"secrets/app/down":     {err: fmt.Errorf("dial: %w", client.ErrUnreachable)},
		"secrets/app/broken":   {err: errors.New("decode " + secretMarker)},
		"secrets/a b/ü":        {data: map[string]any{"k": "v"}},
		"secrets/app/leak-err": {err: fmt.Errorf("%s: %w", secretMarker, ErrUnavailable)},
	}}
	s := startServer(t, src)
	cert := s.ca.client(t, "app")
	c := s.httpClient(t, &cert)

	tests := map[string]struct {
		method, path string
		code         int
		body         string // substring
		stale        bool
	}{
		"secret":                     {"GET", "/v1/secrets/app/db", 200, `{"data":{"user":"app"},"stale":false}`, false},
		"stale secret":               {"GET", "/v1/secrets/app/old", 200, `{"data":{"user":"old"},"stale":true}`, true},
		"no data is an empty object": {"GET", "/v1/secrets/app/empty", 200, `{"data":{},"stale":false}`, false},
		"escaped characters":         {"GET", "/v1/secrets/a%20b/%C3%BC", 200, `"k":"v"`, false},
		"not found":                  {"GET", "/v1/secrets/app/none", 404, `{"errors":["secret not found"]}`, false},
		"denied":                     {"GET", "/v1/secrets/app/denied", 403, `{"errors":["permission denied"]}`, false},
		"unavailable":                {"GET", "/v1/secrets/app/offline", 503, "not cached", false},
		"sealed":                     {"GET", "/v1/secrets/app/sealed", 503, "sealed", false},
		"unreachable":                {"GET", "/v1/secrets/app/down", 503, "unreachable", false},
		"other error":                {"GET", "/v1/secrets/app/broken", 500, "internal error", false},
		"error text is not sent":     {"GET", "/v1/secrets/app/leak-err", 503, "errors", false},
		"health":                     {"GET", "/v1/health", 200, `{"ok":true}`, false},
		"POST secret":                {"POST", "/v1/secrets/app/db", 405, "method not allowed", false},
		"DELETE secret":              {"DELETE", "/v1/secrets/app/db", 405, "method not allowed", false},
		"POST health":                {"POST", "/v1/health", 405, "method not allowed", false},
		"other path":                 {"GET", "/v1/sys/health", 404, "no such endpoint", false},
		"root":                       {"GET", "/", 404, "no such endpoint", false},
		"secrets without a path":     {"GET", "/v1/secrets/", 400, "bad secret path", false},
		"dot dot":                    {"GET", "/v1/secrets/app/../sys", 400, "bad secret path", false},
		"escaped dot dot":            {"GET", "/v1/secrets/app/%2e%2e/x", 400, "bad secret path", false},
		"empty segment":              {"GET", "/v1/secrets/app//db", 400, "bad secret path", false},
		"trailing slash":             {"GET", "/v1/secrets/app/", 400, "bad secret path", false},
		"encoded slash":              {"GET", "/v1/secrets/app%2Fdb", 400, "bad secret path", false},
		"too long":                   {"GET", "/v1/secrets/" + strings.Repeat("a", MaxPathBytes), 400, "longer than", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, err := do(t, c, tc.method, tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if r.code != tc.code || !strings.Contains(r.body, tc.body) {
				t.Errorf("%s %s: %d %s, want %d with %q", tc.method, tc.path, r.code, r.body, tc.code, tc.body)
			}
			if got := r.header.Get(StaleHeader) == "true"; got != tc.stale {
				t.Errorf("stale header %v, want %v", got, tc.stale)
			}
			if r.code != 200 && strings.Contains(r.body, secretMarker) {
				t.Errorf("error body shows a secret: %s", r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
	for _, p := range src.paths() {
		if !strings.HasPrefix(p, SecretsMount) || strings.Contains(p, "..") {
			t.Errorf("source asked for %q", p)
		}
	}
}

func TestListen(t *testing.T) {
	t.Run("stale socket is replaced", func(t *testing.T) {
		path := filepath.Join(shortDir(t), "a.sock")
		old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		old.SetUnlinkOnClose(false)
		old.Close() // the file stays, nobody answers
		ln, err := Listen(path)
		if err != nil {
			t.Fatalf("Listen over a stale socket: %v", err)
		}
		if ln.Addr().String() != path {
			t.Errorf("Addr = %v, want %s", ln.Addr(), path)
		}
		ln.Close()
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Close left the socket file (%v)", err)
		}
	})
	t.Run("live socket is in use", func(t *testing.T) {
		path := filepath.Join(shortDir(t), "a.sock")
		ln, err := Listen(path)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if _, err := Listen(path); !errors.Is(err, ErrInUse) {
			t.Fatalf("second Listen: %v, want ErrInUse", err)
		}
	})
	t.Run("a regular file is left alone", func(t *testing.T) {
		path := filepath.Join(shortDir(t), "a.sock")
		if err := os.WriteFile(path, []byte("keep"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Fatalf("Listen over a file: %v", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "keep" {
			t.Error("the file was changed")
		}
	})
	t.Run("relative path", func(t *testing.T) {
		if _, err := Listen("a.sock"); err == nil {
			t.Fatal("relative path accepted")
		}
	})
	t.Run("closing an old listener keeps a newer socket", func(t *testing.T) {
		path := filepath.Join(shortDir(t), "a.sock")
		first, err := Listen(path)
		if err != nil {
			t.Fatal(err)
		}
		// Another listener replaces the file (the first stopped answering
		// is simulated by closing its socket without removing the file).
		first.(*socketListener).UnixListener.Close()
		second, err := Listen(path)
		if err != nil {
			t.Fatal(err)
		}
		defer second.Close()
		first.Close()
		if _, err := os.Lstat(path); err != nil {
			t.Fatalf("closing the old listener removed the new socket: %v", err)
		}
	})
}

func TestServeOptions(t *testing.T) {
	cert, err := SelfSigned("x")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for name, opts := range map[string]Options{
		"no client CA":   {ServerCert: cert, Source: &mapSource{}},
		"no server cert": {ClientCAs: pool, Source: &mapSource{}},
		"no source":      {ClientCAs: pool, ServerCert: cert},
	} {
		if err := Serve(context.Background(), nil, opts); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSelfSigned(t *testing.T) {
	c, err := SelfSigned("secrethub-agent")
	if err != nil {
		t.Fatal(err)
	}
	if c.Leaf.Subject.CommonName != "secrethub-agent" || c.Leaf.PublicKeyAlgorithm != x509.ECDSA ||
		c.Leaf.PublicKey.(*ecdsa.PublicKey).Curve != elliptic.P256() || !time.Now().Before(c.Leaf.NotAfter) {
		t.Fatalf("certificate %+v", c.Leaf.Subject)
	}
	if err := c.Leaf.VerifyHostname("secrethub-agent"); err != nil {
		t.Error(err)
	}
}

func TestSecretPath(t *testing.T) {
	tests := map[string]struct {
		in, want string
		ok       bool
	}{
		"simple":           {"app/db", "app/db", true},
		"escaped space":    {"a%20b", "a b", true},
		"utf-8":            {"%C3%BC", "ü", true},
		"empty":            {"", "", false},
		"leading slash":    {"/app", "", false},
		"dot":              {"app/./db", "", false},
		"escaped dot":      {"app/%2E/db", "", false},
		"dot dot":          {"..", "", false},
		"encoded slash":    {"a%2fb", "", false},
		"bad escape":       {"a%zz", "", false},
		"short escape":     {"a%2", "", false},
		"control":          {"a%0Ab", "", false},
		"backslash":        {"a%5Cb", "", false},
		"question mark":    {"a%3Fb", "", false},
		"hash":             {"a%23b", "", false},
		"bad utf-8":        {"%FF", "", false},
		"at the limit":     {strings.Repeat("a", MaxPathBytes-len(SecretsMount)), strings.Repeat("a", MaxPathBytes-len(SecretsMount)), true},
		"past the limit":   {strings.Repeat("a", MaxPathBytes-len(SecretsMount)+1), "", false},
		"escaped too long": {strings.Repeat("%41", MaxPathBytes), "", false},
	}
	for name, tc := range tests {
		got, err := SecretPath(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s: SecretPath(%q) = %q, %v; want %q, ok %v", name, tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzSecretPath: whatever a client sends, an accepted path is relative,
// clean, bounded and has no segment that could climb out of secrets/.
func FuzzSecretPath(f *testing.F) {
	for _, s := range []string{"app/db", "a%20b", "..", "a/../b", "%2e%2e", "a//b", "/a", "a/", "%2F", "%00", "%C3%BC", "%", "a%2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, err := SecretPath(in)
		if err != nil {
			return
		}
		if p == "" || len(SecretsMount)+len(p) > MaxPathBytes || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
			t.Fatalf("SecretPath(%q) accepted %q", in, p)
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("SecretPath(%q) = %q has segment %q", in, p, seg)
			}
		}
		if strings.ContainsAny(p, "\\?#\x00\n\r") || filepath.Clean(p) != p {
			t.Fatalf("SecretPath(%q) = %q is not clean", in, p)
		}
	})
}
