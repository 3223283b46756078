package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoCore keeps the slim agent slim: of the core it may link only
// the REST client and the wire types (docs/decisions/0007).
func TestLinksNoCore(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{
		"github.com/secrethub/secrethub/core/client": true,
		"github.com/secrethub/secrethub/core/wire":   true,
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/secrethub/secrethub/core") && !allowed[pkg] {
			t.Errorf("secrethub-agent links %s", pkg)
		}
	}
}
