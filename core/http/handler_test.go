package http_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/core"
	"github.com/secrethub/secrethub/core/audit"
	corehttp "github.com/secrethub/secrethub/core/http"
	"github.com/secrethub/secrethub/core/storage/inmem"
	"github.com/secrethub/secrethub/core/wire"
)

type fixture struct {
	t    *testing.T
	core *core.Core
	srv  *httptest.Server
}

func newFixture(t *testing.T, opts corehttp.Options) *fixture {
	t.Helper()
	c, err := core.New(core.Config{Backend: inmem.New(), StorageType: "inmem", Logger: slog.New(slog.DiscardHandler),
		AuditSinks: []core.AuditSink{{Name: "memory", Sink: audit.NewMemory()}}})
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(corehttp.New(c, opts))
	t.Cleanup(srv.Close)
	return &fixture{t: t, core: c, srv: srv}
}

// do sends a request and returns the status and body.
func (f *fixture) do(method, path, body string, header ...string) (int, string) {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// initAndUnseal initializes with 3 shares, threshold 2, unseals, and
// returns the init response.
func (f *fixture) initAndUnseal() wire.InitResponse {
	f.t.Helper()
	code, body := f.do("PUT", "/v1/sys/init", `{"secret_shares":3,"secret_threshold":2}`)
	if code != 200 {
		f.t.Fatalf("init: %d %s", code, body)
	}
	var res wire.InitResponse
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		f.t.Fatal(err)
	}
	for _, k := range res.Keys[:2] {
		if code, body := f.do("PUT", "/v1/sys/unseal", `{"key":"`+k+`"}`); code != 200 {
			f.t.Fatalf("unseal: %d %s", code, body)
		}
	}
	return res
}

func TestBadInputIsA4xxNamingTheProblem(t *testing.T) {
	f := newFixture(t, corehttp.Options{MaxRequestBytes: 256})
	cases := map[string]struct {
		method, path, body string
		wantCode           int
		wantMsg            string
	}{
		"syntax error":             {"PUT", "/v1/sys/init", `{"secret_shares":`, 400, "invalid JSON body"},
		"not an object":            {"PUT", "/v1/sys/init", `[1,2]`, 400, "invalid JSON body"},
		"wrong type":               {"PUT", "/v1/sys/init", `{"secret_shares":"five"}`, 400, `field "secret_shares"`},
		"unknown field":            {"PUT", "/v1/sys/init", `{"secret_sharez":5}`, 400, `unknown field "secret_sharez"`},
		"two values":               {"PUT", "/v1/sys/init", `{} {}`, 400, "more than one value"},
		"bad counts":               {"PUT", "/v1/sys/init", `{"secret_shares":2,"secret_threshold":3}`, 400, "secret_threshold"},
		"threshold 1 of many":      {"PUT", "/v1/sys/init", `{"secret_shares":3,"secret_threshold":1}`, 400, "secret_threshold"},
		"negative":                 {"PUT", "/v1/sys/init", `{"secret_shares":-1}`, 400, "negative"},
		"too many shares":          {"PUT", "/v1/sys/init", `{"secret_shares":300,"secret_threshold":3}`, 400, "secret_shares"},
		"pgp keys":                 {"PUT", "/v1/sys/init", `{"pgp_keys":["x"]}`, 400, "pgp_keys"},
		"too large":                {"PUT", "/v1/sys/init", `{"pgp_keys":["` + strings.Repeat("a", 300) + `"]}`, 413, "larger than 256 bytes"},
		"wrong method":             {"DELETE", "/v1/sys/init", "", 405, "allowed: GET, POST, PUT"},
		"sys path while sealed":    {"GET", "/v1/sys/mounts", "", 503, "sealed"},
		"outside /v1":              {"GET", "/secrets", "", 404, "/v1/"},
		"sealed non-sys path":      {"GET", "/v1/secrets/app", "", 503, "sealed"},
		"unseal uninitialized":     {"PUT", "/v1/sys/unseal", `{"key":"00"}`, 400, "not initialized"},
		"unseal without key":       {"PUT", "/v1/sys/unseal", `{}`, 400, "key: missing"},
		"unseal undecodable key":   {"PUT", "/v1/sys/unseal", `{"key":"zz!"}`, 400, "neither hex nor base64"},
		"unseal migrate":           {"PUT", "/v1/sys/unseal", `{"migrate":true}`, 400, "migrate"},
		"seal while sealed":        {"PUT", "/v1/sys/seal", "", 503, "sealed"},
		"health bad code override": {"GET", "/v1/sys/health?sealedcode=abc", "", 400, "sealedcode"},
		"health bad standbyok":     {"GET", "/v1/sys/health?standbyok=maybe", "", 400, "standbyok"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			code, body := f.do(tc.method, tc.path, tc.body)
			if code != tc.wantCode {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, code, body, tc.wantCode)
			}
			var er wire.ErrorResponse
			if err := json.Unmarshal([]byte(body), &er); err != nil || len(er.Errors) == 0 {
				t.Fatalf("body %q is not an errors envelope", body)
			}
			if !strings.Contains(strings.Join(er.Errors, " "), tc.wantMsg) {
				t.Fatalf("errors %q do not mention %q", er.Errors, tc.wantMsg)
			}
		})
	}
}

func TestInitUnsealSealFlow(t *testing.T) {
	f := newFixture(t, corehttp.Options{})
	if code, body := f.do("GET", "/v1/sys/init", ""); code != 200 || !strings.Contains(body, `"initialized":false`) {
		t.Fatalf("init status: %d %s", code, body)
	}
	if code, _ := f.do("GET", "/v1/sys/health", ""); code != 501 {
		t.Fatalf("health uninitialized: %d, want 501", code)
	}

	code, body := f.do("POST", "/v1/sys/init", `{"secret_shares":3,"secret_threshold":2}`)
	if code != 200 {
		t.Fatalf("init: %d %s", code, body)
	}
	var res wire.InitResponse
	_ = json.Unmarshal([]byte(body), &res)
	if len(res.Keys) != 3 || len(res.KeysBase64) != 3 || !strings.HasPrefix(res.RootToken, "shs.") {
		t.Fatalf("init response: %+v", res)
	}
	if code, body := f.do("PUT", "/v1/sys/init", `{}`); code != 400 || !strings.Contains(body, "already initialized") {
		t.Fatalf("second init: %d %s", code, body)
	}
	if code, _ := f.do("GET", "/v1/sys/health", ""); code != 503 {
		t.Fatalf("health sealed: %d, want 503", code)
	}
	if code, _ := f.do("GET", "/v1/sys/health?sealedcode=299&uninitcode=299", ""); code != 299 {
		t.Fatalf("health sealed with override: %d, want 299", code)
	}

	// One share: progress 1/2, still sealed. base64 form accepted.
	code, body = f.do("PUT", "/v1/sys/unseal", `{"key":"`+res.KeysBase64[0]+`"}`)
	var st wire.SealStatusResponse
	_ = json.Unmarshal([]byte(body), &st)
	if code != 200 || !st.Sealed || st.Progress != 1 || st.T != 2 || st.N != 3 || st.Nonce == "" {
		t.Fatalf("after one share: %d %s", code, body)
	}
	// Reset, then the threshold unseals.
	if code, body := f.do("PUT", "/v1/sys/unseal", `{"reset":true}`); code != 200 || !strings.Contains(body, `"progress":0`) {
		t.Fatalf("reset: %d %s", code, body)
	}
	f.do("PUT", "/v1/sys/unseal", `{"key":"`+res.Keys[1]+`"}`)
	code, body = f.do("PUT", "/v1/sys/unseal", `{"key":"`+res.Keys[2]+`"}`)
	_ = json.Unmarshal([]byte(body), &st)
	if code != 200 || st.Sealed || st.ClusterID == "" {
		t.Fatalf("after threshold: %d %s", code, body)
	}
	if code, _ := f.do("HEAD", "/v1/sys/health", ""); code != 200 {
		t.Fatalf("health active: %d", code)
	}
	if code, body := f.do("GET", "/v1/nomount/app", ""); code != 403 {
		t.Fatalf("unknown path without a token: %d %s, want 403 (mounts are not shown to anonymous clients)", code, body)
	}
	if code, body := f.do("GET", "/v1/nomount/app", "", "X-Vault-Token", res.RootToken); code != 404 || !strings.Contains(body, "no mount") {
		t.Fatalf("unknown path while unsealed: %d %s, want 404", code, body)
	}

	// Sealing needs a root token; every header form is accepted.
	for _, hdr := range [][]string{{}, {"X-Vault-Token", "shs.wrong-token"}} {
		if code, body := f.do("PUT", "/v1/sys/seal", "", hdr...); code != 403 || strings.Contains(body, "wrong-token") {
			t.Fatalf("seal with %v: %d %s, want 403 without echo", hdr, code, body)
		}
	}
	if code, body := f.do("GET", "/v1/sys/key-status", "", "Authorization", "Bearer "+res.RootToken); code != 200 || !strings.Contains(body, `"term":1`) {
		t.Fatalf("key-status: %d %s", code, body)
	}
	if code, body := f.do("POST", "/v1/sys/rotate", "", "X-SecretHub-Token", res.RootToken); code != 204 {
		t.Fatalf("rotate: %d %s", code, body)
	}
	if code, body := f.do("GET", "/v1/sys/key-status", "", "X-Vault-Token", res.RootToken); code != 200 || !strings.Contains(body, `"term":2`) {
		t.Fatalf("key-status after rotate: %d %s", code, body)
	}
	if code, body := f.do("PUT", "/v1/sys/seal", "", "X-Vault-Token", res.RootToken); code != 204 {
		t.Fatalf("seal: %d %s", code, body)
	}
	if !f.core.Sealed() {
		t.Fatal("core not sealed after sys/seal")
	}
	if code, _ := f.do("GET", "/v1/sys/key-status", "", "X-Vault-Token", res.RootToken); code != 503 {
		t.Fatalf("key-status sealed: %d, want 503", code)
	}
}

func TestWrongShareResetsProgressOverHTTP(t *testing.T) {
	f := newFixture(t, corehttp.Options{})
	other := newFixture(t, corehttp.Options{}).initAndUnseal()
	res := f.initAndUnseal()
	if code, body := f.do("PUT", "/v1/sys/seal", "", "X-Vault-Token", res.RootToken); code != 204 {
		t.Fatalf("seal failed: %d %s", code, body)
	}
	f.do("PUT", "/v1/sys/unseal", `{"key":"`+res.Keys[0]+`"}`)
	code, body := f.do("PUT", "/v1/sys/unseal", `{"key":"`+other.Keys[1]+`"}`)
	if code != 400 || !strings.Contains(body, "do not combine") {
		t.Fatalf("foreign share: %d %s", code, body)
	}
	if strings.Contains(body, other.Keys[1]) {
		t.Fatal("error echoes the share")
	}
	_, body = f.do("GET", "/v1/sys/seal-status", "")
	if !strings.Contains(body, `"progress":0`) || !strings.Contains(body, `"sealed":true`) {
		t.Fatalf("after foreign share: %s", body)
	}
	code, body = f.do("PUT", "/v1/sys/unseal", `{"key":"`+res.Keys[2]+`"}`)
	if code != 200 || !strings.Contains(body, `"progress":1`) {
		t.Fatalf("duplicate check setup: %d %s", code, body)
	}
	code, body = f.do("PUT", "/v1/sys/unseal", `{"key":"`+res.Keys[2]+`"}`)
	if code != 400 || !strings.Contains(body, "already provided") {
		t.Fatalf("duplicate share: %d %s", code, body)
	}
	if _, body = f.do("PUT", "/v1/sys/unseal", `{"key":"`+res.Keys[1]+`"}`); !strings.Contains(body, `"sealed":false`) {
		t.Fatalf("unseal after duplicate: %s", body)
	}
}

func TestCoreRequestCancelled(t *testing.T) {
	c, _ := core.New(core.Config{Backend: inmem.New()})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Init(ctx, core.InitRequest{}); err == nil {
		t.Fatal("Init with a cancelled context succeeded")
	}
}
