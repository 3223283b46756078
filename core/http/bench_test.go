package http_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/core"
	"github.com/secrethub/secrethub/core/audit/pgsink"
	corehttp "github.com/secrethub/secrethub/core/http"
	"github.com/secrethub/secrethub/core/storage/cache"
	"github.com/secrethub/secrethub/core/storage/postgres"
	"github.com/secrethub/secrethub/internal/pgtest"
)

// benchServer is the production stack in one process: Postgres storage
// behind the read cache, the Postgres audit table, the HTTP handler.
func benchServer(b *testing.B) (*httptest.Server, string) {
	ctx := context.Background()
	url := pgtest.NewDatabase(b)
	pg, err := postgres.Open(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	be, _ := cache.New(pg, cache.Options{})
	b.Cleanup(func() { be.Close() })
	sink, err := pgsink.Open(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sink.Close() })
	c, err := core.New(core.Config{Backend: be, Logger: slog.New(slog.DiscardHandler),
		AuditSinks: []core.AuditSink{{Name: "postgres", Sink: sink}}})
	if err != nil {
		b.Fatal(err)
	}
	res, err := c.Init(ctx, core.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.Unseal(ctx, res.Shares[0]); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Shutdown(ctx) })
	srv := httptest.NewServer(corehttp.New(c, corehttp.Options{Logger: slog.New(slog.DiscardHandler)}))
	b.Cleanup(srv.Close)
	return srv, res.RootToken
}

func benchRequest(b *testing.B, srv *httptest.Server, method, path, token, body string) {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	b.ReportAllocs()
	b.SetParallelism(8) // 16 clients on 2 CPUs, as the load generator's middle level
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
			req.Header.Set("X-SecretHub-Token", token)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 300 {
				b.Errorf("%s %s: %d", method, path, resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkKV measures audited KV reads and writes over HTTP with 8
// goroutines per CPU, in one process (make bench-http measures across
// processes against a trivial handler).
func BenchmarkKV(b *testing.B) {
	srv, root := benchServer(b)
	req, _ := http.NewRequest("PUT", srv.URL+"/v1/secrets/bench/read", strings.NewReader(`{"password":"x"}`))
	req.Header.Set("X-SecretHub-Token", root)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		b.Fatalf("seed: %v %v", resp, err)
	}
	b.Run("read", func(b *testing.B) { benchRequest(b, srv, "GET", "/v1/secrets/bench/read", root, "") })
	b.Run("write", func(b *testing.B) {
		benchRequest(b, srv, "PUT", "/v1/secrets/bench/write", root, `{"password":"y"}`)
	})
}
