package daemon_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/secrethub/secrethub/agent/config"
	"github.com/secrethub/secrethub/agent/daemon"
)

// TestInitHandsLeasesToDaemon is the pod's init container (-init) and
// then its sidecar, sharing the state directory: the sidecar keeps the
// credential the init container rendered and renews its lease, so the
// pod holds one lease, not one per phase.
func TestInitHandsLeasesToDaemon(t *testing.T) {
	ctx := context.Background()
	tc, _ := databaseCore(t, "1h", "2h")
	if _, err := tc.root.Write(ctx, "secrets/app/flag", map[string]any{"value": "v0"}); err != nil {
		t.Fatal(err)
	}
	id := tc.identity(t, "rules:\n- path: database/creds/agentapp\n  capabilities: [read]\n- path: secrets/app/*\n  capabilities: [read]\n", "1h")
	dir := t.TempDir()
	dest, flag := filepath.Join(dir, "db"), filepath.Join(dir, "flag")
	cfg := &config.Config{
		Core:     config.Core{Addresses: []string{tc.restURL}, AgentAddresses: []string{tc.agentURL}},
		StateDir: filepath.Join(dir, "state"),
		Cache:    config.Cache{Persist: true},
		Templates: []config.Template{
			{Name: "db", Contents: `{{ (secret "database/creds/agentapp").username }}`, Destination: dest},
			{Name: "flag", Contents: `{{ (secret "secrets/app/flag").value }}`, Destination: flag},
		},
	}
	cfg.FillDefaults()
	leases := func() int {
		t.Helper()
		resp, err := tc.root.List(ctx, "sys/leases/lookup/database/creds/agentapp/")
		if err != nil {
			t.Fatal(err)
		}
		keys, _ := resp.Data["keys"].([]any)
		return len(keys)
	}

	initCtx, cancelInit := context.WithTimeout(ctx, time.Minute)
	defer cancelInit()
	if err := daemon.Run(initCtx, daemon.Options{Config: cfg, Identity: id, Logger: slog.New(slog.DiscardHandler), Once: true}); err != nil {
		t.Fatalf("-init: %v", err)
	}
	user := readOr(dest)
	if user == "" || leases() != 1 {
		t.Fatalf("after -init: user %q, %d leases", user, leases())
	}

	runDaemon(t, daemon.Options{Config: cfg, Identity: id})
	// A change the sidecar can only see once connected and caught up.
	if _, err := tc.root.Write(ctx, "secrets/app/flag", map[string]any{"value": "v1"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the sidecar caught up", func() bool { return readOr(flag) == "v1" })
	if got := readOr(dest); got != user {
		t.Errorf("the sidecar replaced the init container's credential %q with %q", user, got)
	}
	if n := leases(); n != 1 {
		t.Errorf("%d leases for the pod, want 1", n)
	}
}
