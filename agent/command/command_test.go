package command

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/internal/cliargs"
)

const testConfig = `
core: {addresses: ["http://127.0.0.1:4000"]}
auth: {method: kubernetes, role: app}
templates:
  - {name: db, contents: "x", destination: /secrethub/secrets/db}
`

func TestLoadConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(file, []byte(testConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(vars map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	tests := map[string]struct {
		o      agentOptions
		env    map[string]string
		errHas string
	}{
		"file":        {o: agentOptions{configPath: file}},
		"env":         {o: agentOptions{configEnv: "AGENT_CFG"}, env: map[string]string{"AGENT_CFG": testConfig}},
		"env unset":   {o: agentOptions{configEnv: "AGENT_CFG"}, errHas: "-config-env AGENT_CFG: the variable is not set"},
		"env empty":   {o: agentOptions{configEnv: "AGENT_CFG"}, env: map[string]string{"AGENT_CFG": " "}, errHas: "not set"},
		"env invalid": {o: agentOptions{configEnv: "AGENT_CFG"}, env: map[string]string{"AGENT_CFG": "core: {}\nauth: {method: kubernetes, role: app}"}, errHas: "config $AGENT_CFG: core.addresses: missing"},
		"neither":     {errHas: "set -config FILE or -config-env NAME"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := loadConfig(tc.o, env(tc.env))
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Auth.Role != "app" || len(c.Templates) != 1 || c.Templates[0].Destination != "/secrethub/secrets/db" {
				t.Fatalf("config = %+v", c)
			}
		})
	}
}

func TestCheckFile(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, ".rendered")
	run := func() error {
		cmd := New("secrethub-agent")
		cmd.SetArgs(cliargs.Normalize([]string{"-check-file", marker}))
		cmd.SetOut(new(strings.Builder))
		cmd.SetErr(new(strings.Builder))
		return cmd.Execute()
	}
	if err := run(); err == nil {
		t.Fatal("-check-file passed before the file exists")
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(); err != nil {
		t.Fatalf("-check-file with the file: %v", err)
	}
}

func TestConfigFlagsExclusive(t *testing.T) {
	cmd := New("secrethub-agent")
	cmd.SetArgs(cliargs.Normalize([]string{"-config", "/x", "-config-env", "Y"}))
	cmd.SetOut(new(strings.Builder))
	cmd.SetErr(new(strings.Builder))
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "config") {
		t.Fatalf("err = %v, want the flags refused together", err)
	}
}
