package main

// End-to-end tests: the real secrethub binary, run as a process, driven by
// the unmodified Vault Go client and by the CLI.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5"

	"github.com/secrethub/secrethub/internal/pgtest"
)

// binary is the secrethub binary built once for this package's tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "secrethub-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "secrethub")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building secrethub:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a running secrethub server.
type process struct {
	cmd    *exec.Cmd
	addr   string
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan error
}

// syncBuffer collects a process's output and signals each write.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // one pending signal at most
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{}, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
	return s.b.Write(p)
}

// waitFor waits until ok holds for the output, or the timeout passes.
func (s *syncBuffer) waitFor(timeout time.Duration, ok func(string) bool) bool {
	deadline := time.After(timeout)
	for {
		if ok(s.String()) {
			return true
		}
		select {
		case <-s.changed:
		case <-deadline:
			return ok(s.String())
		}
	}
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listenLine = regexp.MustCompile(`"msg":"secrethub server listening","address":"([^"]+)"`)

// startServer runs `secrethub server args...` with env added to the
// environment, and waits until it logs its listening address.
func startServer(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"server"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	p := &process{cmd: cmd, stdout: newSyncBuffer(), stderr: newSyncBuffer(), done: make(chan error, 1)}
	cmd.Stdout = p.stdout
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(p.stderr, pw)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() { p.stop(t) })

	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := listenLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case p.addr = <-found:
	case err := <-p.done:
		t.Fatalf("server exited before listening: %v\nstderr:\n%s", err, p.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("server did not start listening within 60s\nstderr:\n%s", p.stderr.String())
	}
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("server exit after SIGTERM: %v\nstderr:\n%s", err, p.stderr.String())
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Errorf("server did not stop within 30s of SIGTERM")
	}
}

func vaultClient(t *testing.T, addr string) *vault.Client {
	t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = addr
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.ClearToken()
	return c
}

// TestVaultClientAndRestartOnPostgres drives init → unseal → health →
// rotate → seal with the unmodified Vault Go client against a server on
// Postgres, restarts it, and checks it comes back sealed with everything
// still there.
func TestVaultClientAndRestartOnPostgres(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	env := []string{"DATABASE_URL=" + dbURL}
	srv := startServer(t, env, "-listen-address", "127.0.0.1:0")
	vc := vaultClient(t, srv.addr)
	sys := vc.Sys()

	h, err := sys.Health()
	if err != nil || h.Initialized || !h.Sealed {
		t.Fatalf("health before init: %+v, %v", h, err)
	}
	init, err := sys.Init(&vault.InitRequest{SecretShares: 5, SecretThreshold: 3})
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	if len(init.Keys) != 5 || len(init.KeysB64) != 5 || init.RootToken == "" {
		t.Fatalf("Init response: %d keys, %d base64, token %v", len(init.Keys), len(init.KeysB64), init.RootToken != "")
	}
	if _, err := sys.Init(&vault.InitRequest{SecretShares: 5, SecretThreshold: 3}); err == nil {
		t.Fatal("second Init succeeded")
	}
	st, err := sys.SealStatus()
	if err != nil || !st.Initialized || !st.Sealed || st.T != 3 || st.N != 5 || st.Type != "shamir" {
		t.Fatalf("SealStatus: %+v, %v", st, err)
	}
	unseal := func(keys []string) *vault.SealStatusResponse {
		t.Helper()
		var st *vault.SealStatusResponse
		for i, k := range keys {
			if st, err = sys.Unseal(k); err != nil {
				t.Fatalf("Unseal share %d: %v", i, err)
			}
			if i < len(keys)-1 && (st.Progress != i+1 || !st.Sealed) {
				t.Fatalf("after share %d: %+v", i, st)
			}
		}
		return st
	}
	if st := unseal(init.Keys[:3]); st.Sealed {
		t.Fatalf("still sealed after 3 shares: %+v", st)
	}
	h, err = sys.Health()
	if err != nil || !h.Initialized || h.Sealed || h.ClusterID == "" {
		t.Fatalf("health after unseal: %+v, %v", h, err)
	}

	vc.SetToken(init.RootToken)
	if err := sys.Rotate(); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	ks, err := sys.KeyStatus()
	if err != nil || ks.Term != 2 {
		t.Fatalf("KeyStatus: %+v, %v", ks, err)
	}
	if err := sys.Seal(); err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if h, err = sys.Health(); err != nil || !h.Sealed {
		t.Fatalf("health after seal: %+v, %v", h, err)
	}
	// A raw GET of health answers 503 while sealed (the client above asks
	// for 299 instead).
	resp, err := vc.Logical().ReadRawWithDataWithContext(context.Background(), "sys/health", nil)
	if resp == nil || resp.StatusCode != 503 {
		t.Fatalf("raw health while sealed: %v, %v", resp, err)
	}
	resp.Body.Close()

	// Restart: the server comes back sealed; the last three shares unseal
	// it, the rotated key term and the root token are still there.
	srv.stop(t)
	srv = startServer(t, env, "-listen-address", "127.0.0.1:0")
	vc = vaultClient(t, srv.addr)
	sys = vc.Sys()
	if st, err := sys.SealStatus(); err != nil || !st.Initialized || !st.Sealed {
		t.Fatalf("after restart: %+v, %v", st, err)
	}
	unseal(init.KeysB64[2:5])
	vc.SetToken(init.RootToken)
	if ks, err := sys.KeyStatus(); err != nil || ks.Term != 2 {
		t.Fatalf("KeyStatus after restart: %+v, %v", ks, err)
	}
	if err := sys.Seal(); err != nil {
		t.Fatalf("Seal after restart: %v", err)
	}
	if strings.Contains(srv.stderr.String(), init.RootToken) || strings.Contains(srv.stderr.String(), init.Keys[0]) {
		t.Fatal("server log contains the root token or a share")
	}
}

var bannerCommand = regexp.MustCompile(`(?m)^    (SECRETHUB_ADDR=\S+ .*)$`)

// TestDevServerPrintedCommandsWork runs the dev server and then, as a new
// user would in another shell, the two commands it printed.
func TestDevServerPrintedCommandsWork(t *testing.T) {
	srv := startServer(t, nil, "-dev", "-listen-address", "127.0.0.1:0")
	var cmds [][]string
	srv.stdout.waitFor(30*time.Second, func(out string) bool {
		cmds = bannerCommand.FindAllStringSubmatch(out, -1)
		return len(cmds) == 2
	})
	if len(cmds) != 2 {
		t.Fatalf("dev banner has %d example commands, want 2:\n%s", len(cmds), srv.stdout.String())
	}
	for _, c := range cmds {
		out, err := exec.Command("bash", "-c", c[1]).CombinedOutput()
		if err != nil {
			t.Fatalf("printed command %q failed: %v\n%s", c[1], err, out)
		}
	}
	if strings.Contains(srv.stderr.String(), "shs.") {
		t.Fatal("dev server log contains a token")
	}
}

// cli runs the secrethub CLI with env and returns its exit code and output.
func cli(t *testing.T, env []string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

func TestCLISysCommands(t *testing.T) {
	srv := startServer(t, []string{"SECRETHUB_STORAGE_TYPE=file", "SECRETHUB_STORAGE_PATH=" + filepath.Join(t.TempDir(), "data.db")},
		"-listen-address", "127.0.0.1:0")
	env := []string{"SECRETHUB_ADDR=" + srv.addr, "SECRETHUB_TOKEN="}

	code, out, _ := cli(t, env, "", "sys", "status")
	if code != 2 || !strings.Contains(out, "Initialized") || !strings.Contains(out, "false") {
		t.Fatalf("status before init: exit %d\n%s", code, out)
	}
	code, out, errOut := cli(t, env, "", "sys", "init", "-key-shares=3", "-key-threshold=2", "-format=json")
	if code != 0 {
		t.Fatalf("init: exit %d %s %s", code, out, errOut)
	}
	var res struct {
		Keys      []string `json:"keys"`
		RootToken string   `json:"root_token"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Keys) != 3 {
		t.Fatalf("init json: %v %s", err, out)
	}
	// Sealed: commands needing the barrier say so.
	tokenEnv := append(env, "SECRETHUB_TOKEN="+res.RootToken)
	code, _, errOut = cli(t, tokenEnv, "", "sys", "rotate")
	if code != 1 || !strings.Contains(errOut, "is sealed") || !strings.Contains(errOut, "sys unseal") {
		t.Fatalf("rotate while sealed: exit %d %q", code, errOut)
	}
	// One share from an argument, one from standard input.
	if code, out, errOut = cli(t, env, "", "sys", "unseal", res.Keys[0]); code != 0 || !strings.Contains(out, "1/2") {
		t.Fatalf("unseal 1: exit %d %s %s", code, out, errOut)
	}
	if code, out, errOut = cli(t, env, res.Keys[0]+"\n", "sys", "unseal"); code != 1 || !strings.Contains(errOut, "already provided") {
		t.Fatalf("duplicate share: exit %d %s %s", code, out, errOut)
	}
	if code, out, errOut = cli(t, env, res.Keys[1]+"\n", "sys", "unseal"); code != 0 || !strings.Contains(out, "Sealed") {
		t.Fatalf("unseal 2: exit %d %s %s", code, out, errOut)
	}
	if code, out, _ = cli(t, env, "", "sys", "status", "--format", "json"); code != 0 || !strings.Contains(out, `"sealed": false`) {
		t.Fatalf("status unsealed: exit %d %s", code, out)
	}
	if code, _, errOut = cli(t, env, "", "sys", "seal"); code != 1 || !strings.Contains(errOut, "permission denied") {
		t.Fatalf("seal without token: exit %d %q", code, errOut)
	}
	if code, out, errOut = cli(t, tokenEnv, "", "sys", "rotate"); code != 0 || !strings.Contains(out, "term 2") {
		t.Fatalf("rotate: exit %d %s %s", code, out, errOut)
	}
	if code, out, _ = cli(t, tokenEnv, "", "sys", "seal"); code != 0 || !strings.Contains(out, "sealed") {
		t.Fatalf("seal: exit %d %s", code, out)
	}
	if code, _, _ = cli(t, env, "", "sys", "status"); code != 2 {
		t.Fatalf("status after seal: exit %d, want 2", code)
	}

	// Unreachable server: a message that says what to do.
	code, _, errOut = cli(t, []string{"SECRETHUB_ADDR=http://127.0.0.1:1"}, "", "sys", "status")
	if code != 1 || !strings.Contains(errOut, "cannot reach SecretHub at http://127.0.0.1:1") || !strings.Contains(errOut, "SECRETHUB_ADDR") {
		t.Fatalf("unreachable: exit %d %q", code, errOut)
	}
	code, _, errOut = cli(t, env, "", "sys", "status", "-format=yaml")
	if code != 1 || !strings.Contains(errOut, "want table or json") {
		t.Fatalf("bad format: exit %d %q", code, errOut)
	}
}

func TestServerRefusesBadConfig(t *testing.T) {
	cases := map[string]struct {
		env  []string
		args []string
		want string
	}{
		"no storage":             {nil, nil, "storage: none configured"},
		"off loopback, no TLS":   {nil, []string{"-dev", "-listen-address", "0.0.0.0:0"}, "TLS is required off loopback"},
		"unknown storage":        {nil, []string{"-storage", "s3"}, `storage.type "s3"`},
		"half TLS":               {[]string{"SECRETHUB_TLS_CERT_FILE=/x"}, []string{"-dev"}, "set both or neither"},
		"bad log level":          {[]string{"SECRETHUB_LOG_LEVEL=loud"}, []string{"-dev"}, "log_level"},
		"file storage, no path":  {nil, []string{"-storage", "file"}, "storage.path"},
		"unknown config field":   {nil, []string{"-config", writeFile(t, "listen_adress: 1.2.3.4:5\n")}, "listen_adress"},
		"bad postgres reachable": {[]string{"DATABASE_URL=postgres://nobody@127.0.0.1:1/x?connect_timeout=2"}, nil, "storage (postgres)"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			code, _, errOut := cli(t, append([]string{"DATABASE_URL=", "SECRETHUB_STORAGE_TYPE="}, tc.env...), "", append([]string{"server"}, tc.args...)...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want failure mentioning %q", code, errOut, tc.want)
			}
		})
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAuditCLIOnPostgres: every request lands in the audit table; `audit
// verify` passes on a clean chain and names the first bad record after a
// row is edited with SQL; `audit export` writes CSV.
func TestAuditCLIOnPostgres(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t)
	srv := startServer(t, []string{"DATABASE_URL=" + dbURL}, "-listen-address", "127.0.0.1:0")
	env := []string{"SECRETHUB_ADDR=" + srv.addr, "SECRETHUB_TOKEN="}
	code, out, errOut := cli(t, env, "", "sys", "init", "-key-shares=1", "-key-threshold=1", "-format=json")
	if code != 0 {
		t.Fatalf("init: %d %s %s", code, out, errOut)
	}
	var res struct {
		Keys      []string `json:"keys"`
		RootToken string   `json:"root_token"`
	}
	_ = json.Unmarshal([]byte(out), &res)
	if code, _, errOut = cli(t, env, "", "sys", "unseal", res.Keys[0]); code != 0 {
		t.Fatalf("unseal: %s", errOut)
	}
	env = append(env, "SECRETHUB_TOKEN="+res.RootToken)
	for i := range 5 {
		if code, _, errOut = cli(t, env, "", "kv", "put", "app/db", fmt.Sprintf("password=pw-%d", i)); code != 0 {
			t.Fatalf("kv put: %s", errOut)
		}
	}
	if code, out, errOut = cli(t, env, "", "kv", "get", "-field=password", "app/db"); code != 0 || strings.TrimSpace(out) != "pw-4" {
		t.Fatalf("kv get: %d %q %s", code, out, errOut)
	}
	if code, out, errOut = cli(t, env, "", "audit", "verify"); code != 0 || !strings.Contains(out, "true") {
		t.Fatalf("verify clean chain: %d %s %s", code, out, errOut)
	}
	// 5 writes (each a "started" and an outcome event) and 1 read.
	code, out, errOut = cli(t, env, "", "audit", "export", "-format=csv", "-path-prefix=secrets/")
	if code != 0 || !strings.HasPrefix(out, "seq,time,request_id") || strings.Count(out, "secrets/app/db") != 11 || strings.Contains(out, "pw-") {
		t.Fatalf("export csv: %d %s %s", code, out, errOut)
	}
	hash := strings.TrimSpace(mustCLI(t, env, "audit", "hash", "pw-2"))
	if !strings.HasPrefix(hash, "hmac-sha256:") {
		t.Fatalf("audit hash: %q", hash)
	}
	if code, out, _ = cli(t, env, "", "audit", "export"); code != 0 || !strings.Contains(out, hash) {
		t.Fatal("the HMAC of a written value is not searchable in the export")
	}

	// Edit one row behind the server's back.
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE audit.events SET path = 'secrets/other' WHERE seq = 4`); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = cli(t, env, "", "audit", "verify", "-format=json")
	if code != 3 || !strings.Contains(out, `"first_bad_seq": 4`) {
		t.Fatalf("verify after edit: exit %d\n%s\n%s", code, out, errOut)
	}
}

func mustCLI(t *testing.T, env []string, args ...string) string {
	t.Helper()
	code, out, errOut := cli(t, env, "", args...)
	if code != 0 {
		t.Fatalf("secrethub %v: exit %d %s", args, code, errOut)
	}
	return out
}
