package http_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/core"
	"github.com/secrethub/secrethub/core/audit"
	corehttp "github.com/secrethub/secrethub/core/http"
	"github.com/secrethub/secrethub/core/storage/inmem"
)

// FuzzAPIBodies sends arbitrary bodies to every endpoint that reads one.
// Whatever the body, the answer is never a 5xx other than 503 (sealed)
// and always valid JSON (or empty, for 204).
func FuzzAPIBodies(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `{"secret_shares":5,"secret_threshold":3}`, `{"key":"abcd"}`, `{"reset":true}`,
		`{"secret_shares":1e400}`, `{"key":null}`, `[]`, `"x"`, `{"a":{"b":[1,2,{}]}}`, "\x00\xff",
		`{"secret_shares":2,"secret_threshold":1}`, `{"pgp_keys":[""]}`, `{"key":"` + strings.Repeat("0", 66) + `"}`,
	} {
		for _, path := range []string{"sys/init", "sys/unseal", "sys/seal", "sys/rotate"} {
			f.Add(path, seed)
		}
	}
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, path, body string) {
		c, err := core.New(core.Config{Backend: inmem.New(), Logger: log, AuditSinks: []core.AuditSink{{Name: "memory", Sink: audit.NewMemory()}}})
		if err != nil {
			t.Fatal(err)
		}
		h := corehttp.New(c, corehttp.Options{Logger: log, MaxRequestBytes: 4096})
		for _, method := range []string{http.MethodPut, http.MethodPost} {
			req := httptest.NewRequest(method, "/", strings.NewReader(body))
			req.URL.Path = "/v1/" + path
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
				t.Fatalf("%s %q with body %q: status %d %s", method, path, body, rec.Code, rec.Body)
			}
			if rec.Code != http.StatusNoContent && !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%s %q: answer is not JSON: %q", method, path, rec.Body)
			}
		}
	})
}
