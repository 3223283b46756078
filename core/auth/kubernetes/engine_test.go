package kubernetes_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/auth/kubernetes"
	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/storage/inmem"
)

var addr = netip.MustParseAddr("192.0.2.10")

type env struct {
	t   testing.TB
	e   *kubernetes.Engine
	log *bytes.Buffer
}

func newEnv(t testing.TB, cfg kubernetes.Config) *env {
	t.Helper()
	var buf bytes.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	if cfg.LocalCACertFile == "" {
		cfg.LocalCACertFile = t.TempDir() + "/no-ca.crt"
	}
	if cfg.LocalTokenFile == "" {
		cfg.LocalTokenFile = t.TempDir() + "/no-token"
	}
	e, err := kubernetes.New(inmem.New(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, e: e, log: &buf}
}

func body(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("bad test body %s: %v", s, err)
	}
	return m
}

func (v *env) do(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return v.e.HandleRequest(context.Background(), &logical.Request{
		Operation: op, Path: "auth/kubernetes/" + path, MountPath: "auth/kubernetes/",
		RelativePath: path, Data: data, ClientAddr: addr,
	})
}

func (v *env) must(op logical.Operation, path string, data map[string]any) *logical.Response {
	v.t.Helper()
	resp, err := v.do(op, path, data)
	if err != nil {
		v.t.Fatalf("%s %s: %v", op, path, err)
	}
	return resp
}

func invalidField(t testing.TB, err error) string {
	t.Helper()
	var inv *logical.InvalidRequestError
	if !errors.As(err, &inv) {
		t.Fatalf("error %v (%T), want InvalidRequestError", err, err)
	}
	return inv.Field
}

// testCA returns a self-signed CA certificate in PEM.
func testCA(t testing.TB) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// fakeJWT is a JWT-shaped token with the given claims and no valid
// signature: enough for the checks made before a TokenReview.
func fakeJWT(sub string, aud ...string) string {
	enc := base64.RawURLEncoding.EncodeToString
	claims, _ := json.Marshal(map[string]any{"iss": "https://kubernetes.default.svc", "sub": sub, "aud": aud})
	return enc([]byte(`{"alg":"RS256","kid":"x"}`)) + "." + enc(claims) + ".bm90LWEtc2lnbmF0dXJl"
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

func TestConfigValidationNamesTheField(t *testing.T) {
	ca := testCA(t)
	caJSON, _ := json.Marshal(ca)
	cases := map[string]struct {
		body, field string
	}{
		"no host":          {`{}`, "kubernetes_host"},
		"empty host":       {`{"kubernetes_host":""}`, "kubernetes_host"},
		"host not a URL":   {`{"kubernetes_host":"https://"}`, "kubernetes_host"},
		"host scheme":      {`{"kubernetes_host":"ftp://k8s"}`, "kubernetes_host"},
		"host with user":   {`{"kubernetes_host":"https://u:p@k8s"}`, "kubernetes_host"},
		"host number":      {`{"kubernetes_host":3}`, "kubernetes_host"},
		"CA not PEM":       {`{"kubernetes_host":"https://k8s","kubernetes_ca_cert":"hello"}`, "kubernetes_ca_cert"},
		"CA a key":         {`{"kubernetes_host":"https://k8s","kubernetes_ca_cert":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}`, "kubernetes_ca_cert"},
		"CA trailing junk": {`{"kubernetes_host":"https://k8s","kubernetes_ca_cert":` + strings.TrimSuffix(string(caJSON), `"`) + `junk"}`, "kubernetes_ca_cert"},
		"reviewer spaces":  {`{"kubernetes_host":"https://k8s","token_reviewer_jwt":"a b"}`, "token_reviewer_jwt"},
		"reviewer number":  {`{"kubernetes_host":"https://k8s","token_reviewer_jwt":5}`, "token_reviewer_jwt"},
		"disable not bool": {`{"kubernetes_host":"https://k8s","disable_local_ca_jwt":"maybe"}`, "disable_local_ca_jwt"},
		"pem_keys":         {`{"kubernetes_host":"https://k8s","pem_keys":["x"]}`, "pem_keys"},
		"unknown field":    {`{"kubernetes_host":"https://k8s","kubernetes_hots":"x"}`, "kubernetes_hots"},
	}
	v := newEnv(t, kubernetes.Config{})
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := v.do(logical.OpUpdate, "config", body(t, tc.body))
			if got := invalidField(t, err); got != tc.field {
				t.Fatalf("field %q (%v), want %q", got, err, tc.field)
			}
		})
	}
	if _, err := v.do(logical.OpRead, "config", nil); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("config after refused writes: %v, want not found", err)
	}
}

func TestConfigNeverReturnsTheReviewerJWT(t *testing.T) {
	v := newEnv(t, kubernetes.Config{})
	ca := testCA(t)
	const reviewer = "reviewer.jwt.value"
	v.must(logical.OpUpdate, "config", map[string]any{
		"kubernetes_host": "https://k8s.example:6443", "kubernetes_ca_cert": ca, "token_reviewer_jwt": reviewer,
	})
	read := func() map[string]any {
		d := v.must(logical.OpRead, "config", nil).Data
		js, _ := json.Marshal(d)
		if strings.Contains(string(js), reviewer) {
			t.Fatalf("config read shows the reviewer JWT: %s", js)
		}
		return d
	}
	d := read()
	if d["kubernetes_host"] != "https://k8s.example:6443" || d["kubernetes_ca_cert"] != ca || d["token_reviewer_jwt_set"] != true {
		t.Fatalf("config read: %v", d)
	}
	// Rewritten without token_reviewer_jwt: the stored one is kept.
	v.must(logical.OpUpdate, "config", map[string]any{"kubernetes_host": "https://k8s.example:6443", "kubernetes_ca_cert": ca})
	if d := read(); d["token_reviewer_jwt_set"] != true {
		t.Fatalf("reviewer dropped by a write that left it out: %v", d)
	}
	// "" removes it.
	v.must(logical.OpUpdate, "config", map[string]any{"kubernetes_host": "https://k8s.example:6443", "token_reviewer_jwt": ""})
	if d := read(); d["token_reviewer_jwt_set"] != false || d["kubernetes_ca_cert"] != "" {
		t.Fatalf("after clearing: %v", d)
	}
}

func TestRoleValidationNamesTheField(t *testing.T) {
	cases := map[string]struct {
		body, field string
	}{
		"no names":         {`{"bound_service_account_namespaces":["ns"]}`, "bound_service_account_names"},
		"no namespaces":    {`{"bound_service_account_names":["app"]}`, "bound_service_account_namespaces"},
		"both star":        {`{"bound_service_account_names":"*","bound_service_account_namespaces":"*"}`, "bound_service_account_names"},
		"bad name":         {`{"bound_service_account_names":["App!"],"bound_service_account_namespaces":["ns"]}`, "bound_service_account_names"},
		"bad namespace":    {`{"bound_service_account_names":["app"],"bound_service_account_namespaces":["a/b"]}`, "bound_service_account_namespaces"},
		"root policy":      {`{"bound_service_account_names":["app"],"bound_service_account_namespaces":["ns"],"token_policies":["root"]}`, "token_policies"},
		"policies differ":  {`{"bound_service_account_names":["app"],"bound_service_account_namespaces":["ns"],"token_policies":["a"],"policies":["b"]}`, "policies"},
		"bad ttl":          {`{"bound_service_account_names":["app"],"bound_service_account_namespaces":["ns"],"token_ttl":"soon"}`, "token_ttl"},
		"ttl over max":     {`{"bound_service_account_names":["app"],"bound_service_account_namespaces":["ns"],"token_ttl":"2h","token_max_ttl":"1h"}`, "token_ttl"},
		"legacy ttl clash": {`{"bound_service_account_names":["app"],"bound_service_account_namespaces":["ns"],"token_ttl":"2h","ttl":"1h"}`, "ttl"},
		"alias source":     {`{"bound_service_account_names":["app"],"bound_service_account_namespaces":["ns"],"alias_name_source":"pod"}`, "alias_name_source"},
		"num uses":         {`{"bound_service_account_names":["app"],"bound_service_account_namespaces":["ns"],"token_num_uses":3}`, "token_num_uses"},
		"bad cidr":         {`{"bound_service_account_names":["app"],"bound_service_account_namespaces":["ns"],"token_bound_cidrs":["10.0.0.0/99"]}`, "token_bound_cidrs"},
		"audience type":    {`{"bound_service_account_names":["app"],"bound_service_account_namespaces":["ns"],"audience":5}`, "audience"},
		"unknown field":    {`{"bound_service_account_names":["app"],"bound_service_account_namespaces":["ns"],"token_type":"batch"}`, "token_type"},
	}
	v := newEnv(t, kubernetes.Config{})
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			// A fresh role each: nothing of a refused write is stored.
			_, err := v.do(logical.OpUpdate, "role/"+strings.ReplaceAll(name, " ", "-"), body(t, tc.body))
			if got := invalidField(t, err); got != tc.field {
				t.Fatalf("field %q (%v), want %q", got, err, tc.field)
			}
		})
	}
	if keys := v.must(logical.OpList, "role", nil).Data["keys"].([]string); len(keys) != 0 {
		t.Fatalf("refused writes stored roles %v", keys)
	}
	if _, err := v.do(logical.OpUpdate, "role/bad%name", body(t, `{}`)); invalidField(t, err) != "role" {
		t.Fatalf("bad role name: %v", err)
	}
}

func TestRoleCRUD(t *testing.T) {
	v := newEnv(t, kubernetes.Config{})
	resp := v.must(logical.OpUpdate, "role/web", body(t, `{"bound_service_account_names":"app, app-*","bound_service_account_namespaces":["team-a"],
		"policies":["p1","p2","p1"],"ttl":"1h","token_max_ttl":7200,"token_bound_cidrs":["10.0.0.1"]}`))
	if resp == nil || len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "audience") {
		t.Fatalf("a role without audience gives no warning: %+v", resp)
	}
	// An update changes only the fields given.
	if resp := v.must(logical.OpUpdate, "role/web", body(t, `{"audience":"secrethub"}`)); resp != nil {
		t.Fatalf("warnings with an audience: %+v", resp)
	}
	d := v.must(logical.OpRead, "role/web", nil).Data
	want := map[string]any{
		"bound_service_account_names": []string{"app", "app-*"}, "bound_service_account_namespaces": []string{"team-a"},
		"audience": "secrethub", "alias_name_source": "serviceaccount_uid", "token_policies": []string{"p1", "p2"},
		"policies": []string{"p1", "p2"}, "token_ttl": 3600, "token_max_ttl": 7200, "token_bound_cidrs": []string{"10.0.0.1/32"},
		"token_num_uses": 0,
	}
	gotJS, _ := json.Marshal(d)
	wantJS, _ := json.Marshal(want)
	if string(gotJS) != string(wantJS) {
		t.Fatalf("role read:\n got %s\nwant %s", gotJS, wantJS)
	}
	if keys := v.must(logical.OpList, "role", nil).Data["keys"].([]string); len(keys) != 1 || keys[0] != "web" {
		t.Fatalf("list: %v", keys)
	}
	exists, err := v.e.Exists(context.Background(), &logical.Request{RelativePath: "role/web"})
	if err != nil || !exists {
		t.Fatalf("Exists(role/web) = %v, %v", exists, err)
	}
	v.must(logical.OpDelete, "role/web", nil)
	if _, err := v.do(logical.OpRead, "role/web", nil); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("read after delete: %v", err)
	}
	exists, err = v.e.Exists(context.Background(), &logical.Request{RelativePath: "role/web"})
	if err != nil || exists {
		t.Fatalf("Exists after delete = %v, %v", exists, err)
	}
}

func TestLoginInputErrors(t *testing.T) {
	v := newEnv(t, kubernetes.Config{})
	cases := map[string]struct {
		data  map[string]any
		field string
	}{
		"no role":      {map[string]any{"jwt": "a.b.c"}, "role"},
		"bad role":     {map[string]any{"role": "a/b", "jwt": "a.b.c"}, "role"},
		"no jwt":       {map[string]any{"role": "r"}, "jwt"},
		"empty jwt":    {map[string]any{"role": "r", "jwt": " "}, "jwt"},
		"jwt number":   {map[string]any{"role": "r", "jwt": 3.0}, "jwt"},
		"jwt too long": {map[string]any{"role": "r", "jwt": strings.Repeat("a", 17<<10)}, "jwt"},
		"extra field":  {map[string]any{"role": "r", "jwt": "a.b.c", "password": "x"}, "password"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := v.do(logical.OpUpdate, "login", tc.data)
			if got := invalidField(t, err); got != tc.field {
				t.Fatalf("field %q (%v), want %q", got, err, tc.field)
			}
		})
	}
	// Not configured yet: a 400 that says so.
	_, err := v.do(logical.OpUpdate, "login", map[string]any{"role": "r", "jwt": fakeJWT("system:serviceaccount:ns:app")})
	if invalidField(t, err) != "config" {
		t.Fatalf("login before config: %v", err)
	}
}

// TestLoginRefusedBeforeReview checks the refusals decided on the JWT's
// claims. The API server address is closed, so a review attempt would
// answer 502, not 403: these never reach it.
func TestLoginRefusedBeforeReview(t *testing.T) {
	v := newEnv(t, kubernetes.Config{FailuresPerMinute: -1})
	v.must(logical.OpUpdate, "config", map[string]any{"kubernetes_host": "https://" + closedAddr(t), "kubernetes_ca_cert": testCA(t), "token_reviewer_jwt": "reviewer"})
	v.must(logical.OpUpdate, "role/web", body(t, `{"bound_service_account_names":["app"],"bound_service_account_namespaces":["team-*"],"audience":"secrethub","token_policies":["p1"]}`))
	cases := map[string]struct {
		role, jwt, reason string
	}{
		"unknown role":     {"nope", fakeJWT("system:serviceaccount:team-a:app", "secrethub"), "no such role"},
		"not a JWT":        {"web", "opaque-token", "not a JWT"},
		"not an SA":        {"web", fakeJWT("admin", "secrethub"), "not a service account"},
		"wrong namespace":  {"web", fakeJWT("system:serviceaccount:other:app", "secrethub"), "bound_service_account_namespaces"},
		"wrong name":       {"web", fakeJWT("system:serviceaccount:team-a:db", "secrethub"), "bound_service_account_names"},
		"wrong audience":   {"web", fakeJWT("system:serviceaccount:team-a:app", "vault"), "audience"},
		"missing audience": {"web", fakeJWT("system:serviceaccount:team-a:app"), "audience"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v.log.Reset()
			_, err := v.do(logical.OpUpdate, "login", map[string]any{"role": tc.role, "jwt": tc.jwt})
			var le *kubernetes.LoginError
			if !errors.As(err, &le) || !errors.Is(err, logical.ErrPermissionDenied) {
				t.Fatalf("err %v (%T), want a LoginError", err, err)
			}
			if !strings.Contains(le.Reason, tc.reason) {
				t.Fatalf("reason %q does not mention %q", le.Reason, tc.reason)
			}
			if strings.Contains(err.Error(), tc.jwt) || strings.Contains(v.log.String(), tc.jwt) {
				t.Fatal("the JWT appears in the error or the log")
			}
			if !strings.Contains(v.log.String(), "kubernetes login refused") || !strings.Contains(v.log.String(), tc.reason) {
				t.Fatalf("log does not record the refusal: %s", v.log.String())
			}
		})
	}
}

func TestLoginUnreachableAPIServerIs502NamingIt(t *testing.T) {
	v := newEnv(t, kubernetes.Config{})
	host := "https://" + closedAddr(t)
	v.must(logical.OpUpdate, "config", map[string]any{"kubernetes_host": host, "kubernetes_ca_cert": testCA(t), "token_reviewer_jwt": "reviewer-secret"})
	v.must(logical.OpUpdate, "role/web", body(t, `{"bound_service_account_names":["app"],"bound_service_account_namespaces":["ns"]}`))
	jwt := fakeJWT("system:serviceaccount:ns:app")
	_, err := v.do(logical.OpUpdate, "login", map[string]any{"role": "web", "jwt": jwt})
	var ue *kubernetes.UpstreamError
	if !errors.As(err, &ue) || !errors.Is(err, logical.ErrUpstream) {
		t.Fatalf("err %v (%T), want an UpstreamError", err, err)
	}
	if !strings.Contains(err.Error(), host) {
		t.Fatalf("error %q does not name the API server %s", err, host)
	}
	for _, secret := range []string{jwt, "reviewer-secret"} {
		if strings.Contains(err.Error(), secret) || strings.Contains(v.log.String(), secret) {
			t.Fatal("a token appears in the error or the log")
		}
	}
	if !strings.Contains(v.log.String(), "could not be checked") {
		t.Fatalf("upstream failure not logged: %s", v.log.String())
	}
}

func TestLoginFailuresAreRateLimited(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v := newEnv(t, kubernetes.Config{FailuresPerMinute: 6, Burst: 3, Now: func() time.Time { return now }})
	v.must(logical.OpUpdate, "config", map[string]any{"kubernetes_host": "https://" + closedAddr(t), "token_reviewer_jwt": "r"})
	v.must(logical.OpUpdate, "role/web", body(t, `{"bound_service_account_names":["app"],"bound_service_account_namespaces":["ns"]}`))
	bad := map[string]any{"role": "web", "jwt": fakeJWT("system:serviceaccount:other:app")}
	for i := range 3 {
		if _, err := v.do(logical.OpUpdate, "login", bad); !errors.Is(err, logical.ErrPermissionDenied) {
			t.Fatalf("attempt %d: %v, want denied", i, err)
		}
	}
	_, err := v.do(logical.OpUpdate, "login", bad)
	var rl *kubernetes.RateLimitError
	if !errors.As(err, &rl) || !errors.Is(err, logical.ErrRateLimited) || rl.RetryAfter <= 0 {
		t.Fatalf("fourth failure: %v, want rate limited with a retry time", err)
	}
	// Input errors are not the kind of failure that is counted, and are
	// refused before the limit is looked at.
	if _, err := v.do(logical.OpUpdate, "login", map[string]any{"role": "web"}); invalidField(t, err) != "jwt" {
		t.Fatalf("malformed login while limited: %v", err)
	}
	now = now.Add(10 * time.Second) // one token back
	if _, err := v.do(logical.OpUpdate, "login", bad); !errors.Is(err, logical.ErrPermissionDenied) {
		t.Fatalf("after the refill: %v, want denied (not limited)", err)
	}
}

// TestRateLimitIsPerSource: one source failing does not lock the role for
// another source (role names are not secret).
func TestRateLimitIsPerSource(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v := newEnv(t, kubernetes.Config{FailuresPerMinute: 6, Burst: 2, Now: func() time.Time { return now }})
	v.must(logical.OpUpdate, "config", map[string]any{"kubernetes_host": "https://" + closedAddr(t), "token_reviewer_jwt": "r"})
	v.must(logical.OpUpdate, "role/web", body(t, `{"bound_service_account_names":["app"],"bound_service_account_namespaces":["ns"]}`))
	bad := map[string]any{"role": "web", "jwt": fakeJWT("system:serviceaccount:other:app")}
	login := func(from string) error {
		_, err := v.e.HandleRequest(context.Background(), &logical.Request{
			Operation: logical.OpUpdate, Path: "auth/kubernetes/login", MountPath: "auth/kubernetes/",
			RelativePath: "login", Data: bad, ClientAddr: netip.MustParseAddr(from),
		})
		return err
	}
	for range 2 {
		if err := login("192.0.2.1"); !errors.Is(err, logical.ErrPermissionDenied) {
			t.Fatalf("attacker: %v", err)
		}
	}
	if err := login("192.0.2.1"); !errors.Is(err, logical.ErrRateLimited) {
		t.Fatalf("attacker's third failure: %v, want rate limited", err)
	}
	if err := login("192.0.2.2"); !errors.Is(err, logical.ErrPermissionDenied) {
		t.Fatalf("another source: %v, want denied on its own merits, not rate limited", err)
	}
}
