// Command agentrss measures an idle agent's resident memory: it sets up a
// dev core (policy, AppRole role, ten secrets), starts `secrethub agent`
// as a daemon with ten templates reading them, waits for the first full
// render, lets the agent settle, and reports its VmRSS from
// /proc/<pid>/status. It then writes one secret and reports the RSS again
// after the change was rendered.
//
// The core must be a dev server with an agent listener, started by the
// caller (see `make bench-agents`). It talks only to the addresses it is
// given, and stops the agent before it exits.
//
//	go run ./hack/agentrss -bin bin/secrethub-agent -addr http://127.0.0.1:4210 \
//	    -token <root> -agent-addr 127.0.0.1:4211
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/secrethub/secrethub/core/client"
)

const templates = 10

func main() {
	bin := flag.String("bin", "bin/secrethub-agent", "agent binary (built without -race): secrethub-agent, or secrethub with -subcommand")
	addr := flag.String("addr", "http://127.0.0.1:4210", "core REST address")
	token := flag.String("token", "", "root token of the dev core")
	agentAddr := flag.String("agent-addr", "127.0.0.1:4211", "core agent listener host:port")
	sub := flag.String("subcommand", "", `subcommand before the flags: "agent" to measure "secrethub agent"`)
	settle := flag.Duration("settle", 3*time.Second, "how long the agent idles before the measurement")
	flag.Parse()
	if err := run(*bin, *sub, *addr, *token, *agentAddr, *settle); err != nil {
		fmt.Fprintln(os.Stderr, "agentrss:", err)
		os.Exit(1)
	}
}

func run(bin, sub, addr, token, agentAddr string, settle time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.New(client.Config{Address: addr})
	if err != nil {
		return err
	}
	c.SetToken(token)
	for {
		if _, err = c.Health(ctx); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("core at %s not up: %w", addr, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	dir, err := os.MkdirTemp("", "agentrss-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	if _, err := c.Write(ctx, "sys/policies/acl/agentrss", map[string]any{
		"policy": "rules:\n- path: secrets/agentrss/*\n  capabilities: [read]\n"}); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	if _, err := c.Write(ctx, "auth/approle/role/agentrss", map[string]any{"token_policies": []string{"agentrss"}}); err != nil {
		return fmt.Errorf("approle role: %w", err)
	}
	rid, err := c.Read(ctx, "auth/approle/role/agentrss/role-id", nil)
	if err != nil {
		return fmt.Errorf("role id: %w", err)
	}
	sid, err := c.Write(ctx, "auth/approle/role/agentrss/secret-id", nil)
	if err != nil {
		return fmt.Errorf("secret id: %w", err)
	}
	var tmpl strings.Builder
	for i := range templates {
		p := fmt.Sprintf("secrets/agentrss/s%d", i)
		if _, err := c.Write(ctx, p, map[string]any{"user": "app", "password": fmt.Sprintf("pw-%d", i)}); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		fmt.Fprintf(&tmpl, "  - name: t%d\n    contents: '{{ with secret %q }}USER={{ .user }} PASSWORD={{ .password }}{{ end }}'\n    destination: %s\n",
			i, p, filepath.Join(dir, fmt.Sprintf("t%d", i)))
	}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err == nil {
			err = os.WriteFile(p, []byte(content), 0o600)
		}
		return p
	}
	marker := filepath.Join(dir, ".rendered")
	cfg := write("agent.yaml", fmt.Sprintf("core:\n  addresses: [%q]\n  agent_addresses: [\"https://%s\"]\nauth:\n  role_id_file: %s\n  secret_id_file: %s\nstate_dir: %s\ninit_marker: %s\ntemplates:\n%s",
		addr, agentAddr, write("role-id", rid.Data["role_id"].(string)), write("secret-id", sid.Data["secret_id"].(string)),
		filepath.Join(dir, "state"), marker, tmpl.String()))
	if err != nil {
		return err
	}

	args := []string{"-config", cfg}
	if sub != "" {
		args = append([]string{sub}, args...)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "SECRETHUB_CORE_URL=", "SECRETHUB_ROLE_ID=", "SECRETHUB_SECRET_ID=")
	logFile := write("agent.log", "")
	lf, err := os.Create(logFile)
	if err != nil {
		return err
	}
	defer lf.Close()
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	if err := waitFile(ctx, marker, ""); err != nil {
		b, _ := os.ReadFile(logFile)
		return fmt.Errorf("agent never rendered: %w\n%s", err, b)
	}
	time.Sleep(settle) // idle on purpose: the measurement is of an idle agent
	idle, err := rss(cmd.Process.Pid)
	if err != nil {
		return err
	}
	if _, err := c.Write(ctx, "secrets/agentrss/s0", map[string]any{"user": "app", "password": "changed"}); err != nil {
		return err
	}
	if err := waitFile(ctx, filepath.Join(dir, "t0"), "USER=app PASSWORD=changed"); err != nil {
		return fmt.Errorf("change not rendered: %w", err)
	}
	after, err := rss(cmd.Process.Pid)
	if err != nil {
		return err
	}
	fmt.Printf("agent with %d templates: idle RSS %.1f MiB; after one change %.1f MiB\n", templates, idle, after)
	if os.Getenv("AGENTRSS_DETAIL") != "" {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "Rss") || strings.HasPrefix(l, "VmData") || strings.HasPrefix(l, "Threads") {
				fmt.Println(l)
			}
		}
	}
	return nil
}

// waitFile waits for path to exist (and hold want, when want is set).
func waitFile(ctx context.Context, path, want string) error {
	for {
		b, err := os.ReadFile(path)
		if err == nil && (want == "" || string(b) == want) {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// rss reads a process's resident set size in MiB.
func rss(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				return 0, err
			}
			return float64(kb) / 1024, nil
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}
