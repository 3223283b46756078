package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// `secrethub rotation` against a real dev server: schedule, list, read,
// rotate, delete, bad input, and help.
func TestRotationCLI(t *testing.T) {
	e := newCLIEnv(t)
	e.root("kv", "put", "app/api", "user=app", "token=old-token")

	r := e.run(cliRootToken, "", "rotation", "schedule", "api", "-path", "secrets/app/api", "-key", "token", "-period", "30s")
	if r.code == 0 || !strings.Contains(r.err, "period") {
		t.Fatalf("schedule with a 30s period: exit %d, stderr %q; want a failure naming period", r.code, r.err)
	}
	out := e.root("rotation", "schedule", "api", "-path", "secrets/app/api", "-key", "token", "-period", "24h", "-grace", "1h", "-length", "24", "-charset", "hex")
	for _, want := range []string{"secrets/app/api", "24h0m0s", "hex", "pending_cleanup"} {
		if !strings.Contains(out, want) {
			t.Errorf("schedule output lacks %q:\n%s", want, out)
		}
	}
	// A change sends only the flags given.
	out = e.root("rotation", "schedule", "api", "-grace", "30m", "-format", "json")
	var resp struct {
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("schedule -format json: %v\n%s", err, out)
	}
	if resp.Data["grace"] != "30m0s" || resp.Data["length"] != float64(24) || resp.Data["key"] != "token" {
		t.Fatalf("after a change: %v", resp.Data)
	}
	if out := e.root("rotation", "list"); !strings.Contains(out, "api") {
		t.Fatalf("list: %s", out)
	}
	out = e.root("rotation", "rotate", "api")
	if !strings.Contains(out, "version 1 at") || strings.Contains(out, "old-token") {
		t.Fatalf("rotate output: %s", out)
	}
	tok := strings.TrimSpace(e.root("kv", "get", "-field", "token", "app/api"))
	if len(tok) != 24 || strings.Trim(tok, "0123456789abcdef") != "" {
		t.Fatalf("rotated token %q; want 24 hex digits", tok)
	}
	if old := strings.TrimSpace(e.root("kv", "get", "-version", "1", "-field", "token", "app/api")); old != "old-token" {
		t.Fatalf("version 1 during the grace: %q", old)
	}
	if out := e.root("rotation", "read", "api"); !strings.Contains(out, "last_version") || strings.Contains(out, tok) {
		t.Fatalf("read: %s", out)
	}
	e.root("rotation", "delete", "api")
	if r := e.run(cliRootToken, "", "rotation", "read", "api"); r.code == 0 {
		t.Fatalf("read after delete succeeded: %s", r.out)
	}
	help := e.root("rotation", "schedule", "--help")
	for _, want := range []string{"-period", "-grace", "-length", "-charset", "alnum-symbols"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}
