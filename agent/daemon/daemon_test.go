package daemon_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/secrethub/secrethub/agent/bootstrap"
	"github.com/secrethub/secrethub/agent/config"
	"github.com/secrethub/secrethub/agent/daemon"
	"github.com/secrethub/secrethub/core"
	"github.com/secrethub/secrethub/core/client"
	"github.com/secrethub/secrethub/internal/coretest"
	"github.com/secrethub/secrethub/internal/pgtest"
)

// testCore is a core in-process: REST and mTLS agent listeners, inmem
// storage, initialized and unsealed, with a root client.
type testCore struct {
	root      *client.Client
	agentURL  string
	restURL   string
	agentCore *core.Core
}

func newTestCore(tb testing.TB, agentCertTTL time.Duration) *testCore {
	tb.Helper()
	env := coretest.Start(tb, core.Config{AgentCertTTL: agentCertTTL})
	return &testCore{root: env.Root, agentURL: env.AgentURL, restURL: env.RESTURL, agentCore: env.Core}
}

// identity gives an agent identity for a token with the given policy and
// time to live.
func (tc *testCore) identity(tb testing.TB, policy, ttl string) *bootstrap.Identity {
	tb.Helper()
	ctx := context.Background()
	if _, err := tc.root.Write(ctx, "sys/policies/acl/agent", map[string]any{"policy": policy}); err != nil {
		tb.Fatal(err)
	}
	tok, err := tc.root.Write(ctx, "auth/token/create", map[string]any{"policies": []string{"agent"}, "ttl": ttl, "explicit_max_ttl": "1h"})
	if err != nil {
		tb.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "bench"}}, key)
	if err != nil {
		tb.Fatal(err)
	}
	ac, err := client.New(client.Config{Address: tc.restURL})
	if err != nil {
		tb.Fatal(err)
	}
	ac.SetToken(tok.Auth.ClientToken)
	resp, err := ac.Write(ctx, "sys/agent/certificate", map[string]any{
		"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), "name": "bench"})
	if err != nil {
		tb.Fatal(err)
	}
	blk, _ := pem.Decode([]byte(resp.Data["certificate"].(string)))
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return &bootstrap.Identity{Certificate: cert, Key: key, CAPEM: resp.Data["issuing_ca"].(string)}
}

// BenchmarkWriteToRender measures the time from the start of a KV write
// (REST, audited) to the agent's reload of the re-rendered file (the reload is an HTTP
// request to a loopback server, made right after the file's rename). Each
// iteration is one change; p50 and p99 are reported.
//
//	go test -run '^$' -bench WriteToRender -benchtime 1000x ./agent/daemon
func BenchmarkWriteToRender(b *testing.B) {
	ctx := context.Background()
	tc := newTestCore(b, 0)
	id := tc.identity(b, "rules:\n- path: secrets/app/*\n  capabilities: [read]\n", "24h")
	if _, err := tc.root.Write(ctx, "secrets/app/db", map[string]any{"password": "v0"}); err != nil {
		b.Fatal(err)
	}
	reloaded := make(chan time.Time, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reloaded <- time.Now()
	}))
	b.Cleanup(hook.Close)
	dir := b.TempDir()
	cfg := &config.Config{
		Core: config.Core{Addresses: []string{tc.restURL}, AgentAddresses: []string{tc.agentURL}},
		Templates: []config.Template{{
			Name: "db", Contents: `{{ (secret "secrets/app/db").password }}`, Destination: filepath.Join(dir, "db"),
			Reload: &config.Reload{HTTP: &config.HTTPReload{URL: hook.URL}},
		}},
	}
	cfg.FillDefaults()
	runDaemon(b, daemon.Options{Config: cfg, Identity: id})
	// The first render creates the file, without a reload.
	waitUntil(b, "the first render", func() bool { return readOr(filepath.Join(dir, "db")) != "" })

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		written := time.Now()
		if _, err := tc.root.Write(ctx, "secrets/app/db", map[string]any{"password": fmt.Sprintf("v%d", i+1)}); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-reloaded:
			lat = append(lat, at.Sub(written))
		case <-time.After(30 * time.Second):
			b.Fatalf("change %d not rendered", i+1)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// TestRenewalWhileRunning runs the daemon with a certificate that must be
// renewed within half a minute and a token that lives three seconds: the daemon
// replaces the certificate in the state directory through the agent
// listener and keeps the token alive, so a change made after both would
// have expired still reaches the file.
func TestRenewalWhileRunning(t *testing.T) {
	ctx := context.Background()
	// Agent certificates live at least a minute and are backdated 30s, so
	// this one lives 90s and is due for renewal at two thirds of that, 30s
	// after it is issued.
	tc := newTestCore(t, time.Minute)
	id := tc.identity(t, "rules:\n- path: secrets/app/*\n  capabilities: [read]\n", "3s")
	if _, err := tc.root.Write(ctx, "secrets/app/db", map[string]any{"password": "v0"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dest := filepath.Join(dir, "db")
	cfg := &config.Config{
		Core:      config.Core{Addresses: []string{tc.restURL}, AgentAddresses: []string{tc.agentURL}},
		StateDir:  filepath.Join(dir, "state"),
		Templates: []config.Template{{Name: "db", Contents: `{{ (secret "secrets/app/db").password }}`, Destination: dest}},
	}
	cfg.FillDefaults()
	runDaemon(t, daemon.Options{Config: cfg, Identity: id})
	waitUntil(t, "first render", func() bool { return readOr(dest) == "v0" })
	waitUntil(t, "a renewed certificate in the state directory", func() bool {
		b, err := os.ReadFile(filepath.Join(cfg.StateDir, bootstrap.CertFile))
		if err != nil {
			return false
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return false
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		return err == nil && c.SerialNumber.Cmp(id.Certificate.SerialNumber) != 0
	})
	if _, err := tc.root.Write(ctx, "secrets/app/db", map[string]any{"password": "v1"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the change after renewals", func() bool { return readOr(dest) == "v1" })
	if st, err := os.Stat(filepath.Join(cfg.StateDir, bootstrap.KeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, %v", st, err)
	}
}

// runDaemon runs the daemon with opts (a discarded log unless
// opts.Logger is set) until the test ends; an error from Run then fails
// the test.
func runDaemon(tb testing.TB, opts daemon.Options) {
	tb.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, opts) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run: %v", err)
		}
	})
}

func readOr(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// waitUntil polls cond for up to a minute.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDynamicCredentialLease renders a PostgreSQL credential from a real
// database engine: the agent renews its lease at two thirds of the TTL and,
// when renewal is capped by the lease's max TTL, fetches a new credential,
// renders it and reloads — before the old one ends.
// databaseCore is a core with a database engine on a fresh PostgreSQL
// database, its role agentapp issuing credentials with the given TTLs, and
// a superuser connection to that database.
func databaseCore(t *testing.T, defaultTTL, maxTTL string) (*testCore, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t)
	super, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { super.Close(context.Background()) })
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	admin := fmt.Sprintf("sh_agent_admin_%x", suffix)
	if _, err := super.Exec(ctx, fmt.Sprintf("CREATE ROLE %s WITH LOGIN SUPERUSER PASSWORD 'agent-admin-pw'", pgx.Identifier{admin}.Sanitize())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), dbURL)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		rows, _ := c.Query(context.Background(), "SELECT rolname FROM pg_roles WHERE rolname LIKE 'v-agentapp-%' OR rolname = $1", admin)
		names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, n := range names {
			_, _ = c.Exec(context.Background(), "DROP ROLE IF EXISTS "+pgx.Identifier{n}.Sanitize())
		}
	})
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	tc := newTestCore(t, 0)
	root := tc.root
	for _, w := range []struct {
		path string
		data map[string]any
	}{
		{"sys/mounts/database", map[string]any{"type": "database"}},
		{"database/config/pg", map[string]any{
			"plugin_name":    "postgresql-database-plugin",
			"connection_url": fmt.Sprintf("postgresql://{{username}}:{{password}}@%s%s?%s", u.Host, u.Path, u.RawQuery),
			"username":       admin, "password": "agent-admin-pw", "allowed_roles": "agentapp",
		}},
		{"database/roles/agentapp", map[string]any{"db_name": "pg", "default_ttl": defaultTTL, "max_ttl": maxTTL}},
	} {
		if _, err := root.Write(ctx, w.path, w.data); err != nil {
			t.Fatalf("write %s: %v", w.path, err)
		}
	}
	return tc, super
}

func TestDynamicCredentialLease(t *testing.T) {
	ctx := context.Background()
	tc, super := databaseCore(t, "3s", "7s")
	id := tc.identity(t, "rules:\n- path: database/creds/agentapp\n  capabilities: [read]\n", "1h")

	dir := t.TempDir()
	dest, reloads := filepath.Join(dir, "db"), filepath.Join(dir, "reloads")
	cfg := &config.Config{
		Core: config.Core{Addresses: []string{tc.restURL}, AgentAddresses: []string{tc.agentURL}},
		Templates: []config.Template{{
			Name: "db", Contents: `{{ (secret "database/creds/agentapp").username }}`, Destination: dest,
			Reload: &config.Reload{Command: []string{"/bin/sh", "-c", "echo x >> " + reloads}},
		}},
	}
	cfg.FillDefaults()
	runDaemon(t, daemon.Options{Config: cfg, Identity: id})
	waitUntil(t, "first render", func() bool { return readOr(dest) != "" })
	first := readOr(dest)
	issued := time.Now()
	// The lease lives 3s and is renewed at 2s and 4s; at 6s a renewal is
	// capped by the 7s max TTL, so a new credential replaces it then.
	waitUntil(t, "a new credential before the max TTL", func() bool {
		got := readOr(dest)
		return got != "" && got != first
	})
	if elapsed := time.Since(issued); elapsed < 3*time.Second {
		t.Errorf("credential replaced after %s: the lease was not renewed first", elapsed)
	}
	waitUntil(t, "the reload after the new credential", func() bool { return lines(reloads) == 1 })
	var n int
	if err := super.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", readOr(dest)).Scan(&n); err != nil || n != 1 {
		t.Errorf("new credential %q in pg_roles: %d, %v", readOr(dest), n, err)
	}
	// The lease manager revokes the first credential once its max TTL is up.
	waitUntil(t, "the first credential revoked at its max TTL", func() bool {
		var n int
		return super.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", first).Scan(&n) == nil && n == 0
	})
}

// lines counts the lines of a file (0 when it does not exist).
func lines(p string) int {
	return strings.Count(readOr(p), "\n")
}
