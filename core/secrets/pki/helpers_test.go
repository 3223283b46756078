package pki_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/secrets/pki"
	"github.com/secrethub/secrethub/core/storage/inmem"
)

// t0 is the start of every test clock.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// clock is a settable clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time // guarded by mu
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingStore is inmem storage that counts Gets per key, so tests can
// tell what the engine reads.
type countingStore struct {
	*inmem.Backend
	mu   sync.Mutex
	gets map[string]int // guarded by mu
}

func (s *countingStore) Get(ctx context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	s.gets[key]++
	s.mu.Unlock()
	return s.Backend.Get(ctx, key)
}

func (s *countingStore) getsOf(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets[key]
}

// env is an engine over inmem storage, with its clock.
type env struct {
	t     testing.TB
	e     *pki.Engine
	store *countingStore
	clk   *clock
	cfg   pki.Config
}

func newEnv(t testing.TB, cfg pki.Config) *env {
	t.Helper()
	return newEnvOn(t, &countingStore{Backend: inmem.New(), gets: map[string]int{}}, &clock{t: t0}, cfg)
}

// newEnvOn makes an engine over an existing store and clock (a restart).
func newEnvOn(t testing.TB, store *countingStore, clk *clock, cfg pki.Config) *env {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = clk.Now
	}
	e, err := pki.New(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, e: e, store: store, clk: clk, cfg: cfg}
}

// restart returns a new engine over the same storage and clock.
func (v *env) restart() *env {
	v.t.Helper()
	return newEnvOn(v.t, v.store, v.clk, v.cfg)
}

// body decodes a JSON object the way the HTTP layer does, so numbers
// arrive as float64.
func body(t testing.TB, s string) map[string]any {
	t.Helper()
	if s == "" {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("bad test body %s: %v", s, err)
	}
	return m
}

func (v *env) do(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return v.e.HandleRequest(context.Background(), &logical.Request{
		Operation: op, Path: "pki/" + path, MountPath: "pki/", RelativePath: path, Data: data, Time: v.clk.Now(),
	})
}

// must runs a request that must succeed.
func (v *env) must(op logical.Operation, path string, data map[string]any) *logical.Response {
	v.t.Helper()
	resp, err := v.do(op, path, data)
	if err != nil {
		v.t.Fatalf("%s %s: %v", op, path, err)
	}
	return resp
}

// write runs an update with a JSON body that must succeed.
func (v *env) write(path, js string) *logical.Response {
	v.t.Helper()
	return v.must(logical.OpUpdate, path, body(v.t, js))
}

// root generates an EC root on the engine and returns its certificate.
func (v *env) root(js string) *x509.Certificate {
	v.t.Helper()
	resp := v.write("root/generate/internal", js)
	return parseCertPEM(v.t, resp.Data["certificate"].(string))
}

// certCount is how many certificates certs lists.
func (v *env) certCount() int {
	v.t.Helper()
	return len(v.must(logical.OpList, "certs", nil).Data["keys"].([]string))
}

// invalid checks that err is an InvalidRequestError naming field whose
// message contains want.
func invalid(t testing.TB, err error, field, want string) {
	t.Helper()
	var inv *logical.InvalidRequestError
	if !errors.As(err, &inv) {
		t.Fatalf("error %v (%T), want an InvalidRequestError on %q", err, err, field)
	}
	if inv.Field != field || !strings.Contains(inv.Reason, want) {
		t.Fatalf("error field %q reason %q; want field %q, reason containing %q", inv.Field, inv.Reason, field, want)
	}
}

func parseCertPEM(t testing.TB, s string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM certificate: %.80q", s)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ecKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// csrPEM makes a PEM CSR for key with the given CN and DNS names.
func csrPEM(t testing.TB, key crypto.Signer, cn string, dns ...string) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: cn}, DNSNames: dns,
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// badSigCSR is a well-formed CSR whose signature does not verify.
func badSigCSR(t testing.TB, key crypto.Signer, cn string) string {
	t.Helper()
	block, _ := pem.Decode([]byte(csrPEM(t, key, cn)))
	block.Bytes[len(block.Bytes)-1] ^= 0x01
	if _, err := x509.ParseCertificateRequest(block.Bytes); err != nil {
		t.Fatalf("tampered CSR no longer parses: %v", err)
	}
	return string(pem.EncodeToMemory(block))
}

// chainPool is a pool of the given certificates.
func chainPool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}
