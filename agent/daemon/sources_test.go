package daemon_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/agent/config"
	"github.com/secrethub/secrethub/agent/daemon"
	"github.com/secrethub/secrethub/internal/syncbuf"
)

const sourcePath = "secrets/secrethub/agent-templates/web/app"

// sourcePolicy lets the agent read the app's secrets and its template
// source.
const sourcePolicy = "rules:\n- path: secrets/app/*\n  capabilities: [read]\n- path: " + sourcePath + "\n  capabilities: [read]\n"

// putSource stores templates at sourcePath as the operator stores an
// AgentTemplate (the wrapped form, so the document is kept as is).
func (tc *testCore) putSource(t *testing.T, templates ...map[string]any) {
	t.Helper()
	list := make([]any, len(templates))
	for i, tm := range templates {
		list[i] = tm
	}
	if _, err := tc.root.Write(context.Background(), sourcePath, map[string]any{
		"data": map[string]any{"templates": list}, "options": map[string]any{},
	}); err != nil {
		t.Fatal(err)
	}
}

// TestTemplateSources runs the daemon with a template source: its
// templates render before the init marker is written, a change of the
// source brings in new and changed templates, and an invalid change is
// refused while the templates in use keep following their secrets.
func TestTemplateSources(t *testing.T) {
	ctx := context.Background()
	tc := newTestCore(t, time.Hour)
	if _, err := tc.root.Write(ctx, "secrets/app/db", map[string]any{"password": "v0"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	db, extra, local, marker := filepath.Join(dir, "db"), filepath.Join(dir, "extra"), filepath.Join(dir, "local"), filepath.Join(dir, ".rendered")
	reloads := filepath.Join(dir, "extra.reloads")
	tc.putSource(t, map[string]any{"name": "db", "contents": `{{ (secret "secrets/app/db").password }}`, "destination": db})
	id := tc.identity(t, sourcePolicy, "1h")

	cfg := &config.Config{
		Core:            config.Core{Addresses: []string{tc.restURL}, AgentAddresses: []string{tc.agentURL}},
		Templates:       []config.Template{{Name: "local", Contents: `local {{ (secret "secrets/app/db").password }}`, Destination: local}},
		TemplateSources: []string{sourcePath},
		InitMarker:      marker,
	}
	cfg.FillDefaults()
	logs := &syncbuf.Buffer{}
	runDaemon(t, daemon.Options{Config: cfg, Identity: id, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	waitUntil(t, "the init marker", func() bool { return readOr(marker) != "" })
	if got := readOr(db); got != "v0" {
		t.Fatalf("sourced template at the init marker = %q, want v0", got)
	}
	if got := readOr(local); got != "local v0" {
		t.Fatalf("local template = %q", got)
	}
	if !strings.Contains(readOr(marker), "rendered 2 templates") {
		t.Errorf("marker = %q, want 2 templates counted", readOr(marker))
	}

	// The source changes: one template changes, one is added (with a
	// reload that runs only when its file is replaced, not created).
	tc.putSource(t,
		map[string]any{"name": "db", "contents": `pw={{ (secret "secrets/app/db").password }}`, "destination": db, "perms": "0600"},
		map[string]any{"name": "extra", "contents": `extra {{ (secret "secrets/app/db").password }}`, "destination": extra,
			"reload": map[string]any{"command": []string{"/bin/sh", "-c", "echo x >> " + reloads}}},
	)
	waitUntil(t, "the changed template", func() bool { return readOr(db) == "pw=v0" })
	waitUntil(t, "the added template", func() bool { return readOr(extra) == "extra v0" })
	if st, err := os.Stat(db); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("db mode after the change: %v, %v", st, err)
	}
	if _, err := os.Stat(reloads); err == nil {
		t.Errorf("the added template's reload ran for a file it created")
	}
	if _, err := tc.root.Write(ctx, "secrets/app/db", map[string]any{"password": "v1"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "every template after a secret change", func() bool {
		return readOr(db) == "pw=v1" && readOr(extra) == "extra v1" && readOr(local) == "local v1"
	})
	waitUntil(t, "the reload of the replaced file", func() bool { return lines(reloads) == 1 })

	// An invalid source (a destination taken by the local template) is
	// refused, naming the field; the templates in use stay and follow
	// their secrets.
	tc.putSource(t, map[string]any{"name": "db", "contents": "clash", "destination": local})
	waitUntil(t, "the refusal in the log", func() bool {
		return strings.Contains(logs.String(), `template_sources[0].templates[0].destination: \"`+local+`\": duplicate of templates[0].destination`)
	})
	if _, err := tc.root.Write(ctx, "secrets/app/db", map[string]any{"password": "v2"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the kept templates after a refused source", func() bool {
		return readOr(db) == "pw=v2" && readOr(extra) == "extra v2" && readOr(local) == "local v2"
	})
	if strings.Contains(logs.String(), "v2") || strings.Contains(logs.String(), "v1") {
		t.Errorf("a secret value reached the log:\n%s", logs.String())
	}
}

// TestTemplateSourceInit renders a template source once (-init): a file
// replaced runs its reload, whose failure (the application may not be
// running yet) does not fail the render, and a source the core does not
// have fails with the field and path named.
func TestTemplateSourceInit(t *testing.T) {
	ctx := context.Background()
	tc := newTestCore(t, time.Hour)
	if _, err := tc.root.Write(ctx, "secrets/app/db", map[string]any{"password": "v0"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	db, reloads := filepath.Join(dir, "db"), filepath.Join(dir, "reloads")
	if err := os.WriteFile(db, []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	tc.putSource(t, map[string]any{"name": "db", "contents": `{{ (secret "secrets/app/db").password }}`, "destination": db,
		"reload": map[string]any{"command": []string{"/bin/sh", "-c", "echo x >> " + reloads + "; exit 3"}}})
	id := tc.identity(t, sourcePolicy, "1h")
	run := func(sources ...string) error {
		cfg := &config.Config{
			Core:            config.Core{Addresses: []string{tc.restURL}, AgentAddresses: []string{tc.agentURL}},
			TemplateSources: sources,
		}
		cfg.FillDefaults()
		runCtx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		return daemon.Run(runCtx, daemon.Options{Config: cfg, Identity: id, Logger: slog.New(slog.DiscardHandler), Once: true})
	}
	if err := run(sourcePath); err != nil {
		t.Fatalf("-init: %v", err)
	}
	if got := readOr(db); got != "v0" {
		t.Fatalf("rendered %q, want v0", got)
	}
	if n := lines(reloads); n != 1 {
		t.Errorf("-init ran %d reloads of the replaced file, want 1", n)
	}
	err := run(sourcePath, "secrets/app/none")
	if err == nil || !strings.Contains(err.Error(), `template_sources[1] "secrets/app/none"`) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("-init with a missing source = %v, want the source named", err)
	}
}
