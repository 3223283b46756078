package main

// End-to-end test of the agent daemon: a real `secrethub server` process on
// file storage and a real `secrethub agent` process holding its WebSocket.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// coreNode is a core process on file storage, restartable on another
// agent address.
type coreNode struct {
	t       *testing.T
	storage string
	keys    []string
	root    string
	srv     *process
}

// freeAddr finds a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// start runs the core with its agent listener at agentAddr and unseals it
// (initializing it the first time).
func (n *coreNode) start(agentAddr string) {
	t := n.t
	t.Helper()
	n.srv = startServer(t, []string{noRaceExitSleep}, "-storage", "file", "-storage-path", n.storage,
		"-listen-address", "127.0.0.1:0", "-agent-listen-address", agentAddr)
	sys := vaultClient(t, n.srv.addr).Sys()
	if n.keys == nil {
		init, err := sys.Init(&vault.InitRequest{SecretShares: 1, SecretThreshold: 1})
		if err != nil {
			t.Fatalf("init: %v", err)
		}
		n.keys, n.root = init.Keys, init.RootToken
	}
	if st, err := sys.Unseal(n.keys[0]); err != nil || st.Sealed {
		t.Fatalf("unseal: %+v, %v", st, err)
	}
}

// cli runs the CLI against the node with the root token.
func (n *coreNode) cli(args ...string) string {
	n.t.Helper()
	code, out, errOut := cli(n.t, []string{"SECRETHUB_ADDR=" + n.srv.addr, "SECRETHUB_TOKEN=" + n.root, "SECRETHUB_CACERT=", noRaceExitSleep}, "", args...)
	if code != 0 {
		n.t.Fatalf("secrethub %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// agentProc is a running agent daemon.
type agentProc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan error
}

func startAgent(t *testing.T, cfg string) *agentProc {
	t.Helper()
	cmd := exec.Command(binary, "agent", "-config", cfg)
	cmd.Env = append(os.Environ(), noRaceExitSleep, "SECRETHUB_CORE_URL=", "SECRETHUB_ROLE_ID=", "SECRETHUB_SECRET_ID=")
	a := &agentProc{cmd: cmd, stderr: newSyncBuffer(), done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = a.stderr, a.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.done <- cmd.Wait() }()
	t.Cleanup(func() { a.stop(t) })
	return a
}

func (a *agentProc) stop(t *testing.T) {
	t.Helper()
	if a.cmd.ProcessState != nil {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGCONT)
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.done:
		if err != nil {
			t.Errorf("agent exit after SIGTERM: %v\n%s", err, a.stderr.String())
		}
	case <-time.After(30 * time.Second):
		_ = a.cmd.Process.Kill()
		t.Errorf("agent did not stop within 30s of SIGTERM")
	}
}

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t *testing.T, what string, a *agentProc, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			msg := ""
			if a != nil {
				msg = a.stderr.String()
			}
			t.Fatalf("timed out waiting for %s\nagent log:\n%s", what, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fileIs(p, want string) func() bool {
	return func() bool {
		b, err := os.ReadFile(p)
		return err == nil && string(b) == want
	}
}

// lines counts the lines of a file (0 when it does not exist).
func lines(p string) int {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}

// testCA makes a CA and a client certificate signed by it, written as PEM
// files in dir; it returns the CA file and a TLS client certificate.
func testCA(t *testing.T, dir, name string) (string, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name + " client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, name+"-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return caFile, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// socketClient is an HTTP client for the agent's Unix socket.
func socketClient(sock string, cert *tls.Certificate) *http.Client {
	tc := &tls.Config{InsecureSkipVerify: true} // the socket's file mode authenticates the agent
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
		TLSClientConfig: tc,
	}}
}

// socketGet reads a secret from the agent's socket.
func socketGet(t *testing.T, c *http.Client, path string) (int, map[string]any) {
	t.Helper()
	resp, err := c.Get("https://agent/v1/secrets/" + path)
	if err != nil {
		t.Fatalf("GET %s on the socket: %v", path, err)
	}
	defer resp.Body.Close()
	var body struct {
		Data map[string]any `json:"data"`
	}
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &body)
	return resp.StatusCode, body.Data
}

// TestAgentDaemon is the end-to-end check: bootstrap, render,
// push on write with exactly one reload, no reload for an unchanged value,
// the socket answering from cache while the core is down, reconnection to
// the core restarted on another address with catch-up of a change made
// while the agent was away, and an offline start from the persisted cache.
func TestAgentDaemon(t *testing.T) {
	dir := t.TempDir()
	node := &coreNode{t: t, storage: filepath.Join(dir, "core.db")}
	agentAddr1, agentAddr2 := freeAddr(t), freeAddr(t)
	node.start(agentAddr1)

	node.cli("policy", "write", "app-read", writeFile(t, "rules:\n  - path: \"secrets/app/*\"\n    capabilities: [read, list]\n"))
	node.cli("approle", "write", "web", "-policy=app-read")
	var roleID, secretID struct {
		Data map[string]any `json:"data"`
	}
	decodeJSON(t, node.cli("approle", "role-id", "-format=json", "web"), &roleID)
	decodeJSON(t, node.cli("approle", "secret-id", "-format=json", "web"), &secretID)
	node.cli("kv", "put", "app/db", "password=one")
	node.cli("kv", "put", "app/other", "value=a")

	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	sockDir, err := os.MkdirTemp("", "agent-sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "agent.sock")
	clientCA, clientCert := testCA(t, dir, "apps")
	_, strangerCert := testCA(t, dir, "stranger")

	dbFile, otherFile := filepath.Join(out, "db"), filepath.Join(out, "other")
	dbReloads, otherReloads := filepath.Join(out, "db.reloads"), filepath.Join(out, "other.reloads")
	marker := filepath.Join(out, ".rendered")
	stateDir := filepath.Join(dir, "state")
	cfg := filepath.Join(dir, "agent.yaml")
	write := func(p, s string) string {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write(cfg, fmt.Sprintf(`core:
  addresses: [%q]
  agent_addresses: ["https://%s", "https://%s"]
auth:
  role_id_file: %s
  secret_id_file: %s
state_dir: %s
cache:
  persist: true
init_marker: %s
listener:
  unix_socket: %s
  client_ca_file: %s
templates:
  - name: db
    contents: '{{ (secret "secrets/app/db").password }}'
    destination: %s
    reload:
      command: ["/bin/sh", "-c", "echo x >> %s"]
  - name: other
    contents: '{{ (secret "secrets/app/other").value }}'
    destination: %s
    reload:
      command: ["/bin/sh", "-c", "echo x >> %s"]
`, node.srv.addr, agentAddr1, agentAddr2,
		write(filepath.Join(dir, "role-id"), roleID.Data["role_id"].(string)),
		write(filepath.Join(dir, "secret-id"), secretID.Data["secret_id"].(string)),
		stateDir, marker, sock, clientCA, dbFile, dbReloads, otherFile, otherReloads))

	agent := startAgent(t, cfg)
	waitFor(t, "the first render", agent, func() bool { _, err := os.Stat(marker); return err == nil })
	if got := readFile(t, dbFile); got != "one" {
		t.Fatalf("db file = %q, want %q", got, "one")
	}
	// A file the agent creates needs no reload: no application has read
	// it yet.
	if n := lines(dbReloads); n != 0 {
		t.Fatalf("db reloads after the first render = %d, want 0", n)
	}

	// A new version is pushed: the file changes and reloads once.
	node.cli("kv", "put", "app/db", "password=two")
	waitFor(t, "db file = two", agent, fileIs(dbFile, "two"))
	waitFor(t, "the db reload", agent, func() bool { return lines(dbReloads) == 1 })

	// The same value again: no reload. A later change of the other secret
	// shows the agent has handled the first push (the core sends pushes
	// in commit order).
	node.cli("kv", "put", "app/db", "password=two")
	node.cli("kv", "put", "app/other", "value=b")
	waitFor(t, "other file = b", agent, fileIs(otherFile, "b"))
	waitFor(t, "the other reload", agent, func() bool { return lines(otherReloads) == 1 })
	if n := lines(dbReloads); n != 1 {
		t.Fatalf("db reloads after an unchanged write = %d, want 1", n)
	}

	// The socket: a client with a certificate from the configured CA reads
	// the secret; one without a certificate or with a stranger's is refused.
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode: %v, %v", st, err)
	}
	apps := socketClient(sock, &clientCert)
	if code, data := socketGet(t, apps, "app/db"); code != 200 || data["password"] != "two" {
		t.Fatalf("socket read: %d %v", code, data)
	}
	for name, c := range map[string]*http.Client{"no certificate": socketClient(sock, nil), "stranger": socketClient(sock, &strangerCert)} {
		if resp, err := c.Get("https://agent/v1/secrets/app/db"); err == nil {
			resp.Body.Close()
			t.Errorf("%s: socket answered %d, want a refused handshake", name, resp.StatusCode)
		}
	}

	// Core down: the socket still answers from the cache.
	node.srv.stop(t)
	if code, data := socketGet(t, apps, "app/db"); code != 200 || data["password"] != "two" {
		t.Fatalf("socket read with the core down: %d %v", code, data)
	}

	// The agent is frozen while the core comes back on the second address
	// and a change is made, so the agent can only learn of it by catching
	// up after it reconnects.
	if err := agent.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	node.start(agentAddr2)
	node.cli("kv", "put", "app/db", "password=three")
	if err := agent.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "db file = three after reconnecting", agent, fileIs(dbFile, "three"))
	waitFor(t, "the db reload after catching up", agent, func() bool { return lines(dbReloads) == 2 })
	if n := lines(otherReloads); n != 1 {
		t.Errorf("other reloads after catching up = %d, want 1 (unchanged)", n)
	}
	if !strings.Contains(agent.stderr.String(), agentAddr2) {
		t.Errorf("agent log does not mention the second address %s", agentAddr2)
	}
	var agents struct {
		Agents []struct {
			Watched []string `json:"watched"`
		} `json:"agents"`
	}
	decodeJSON(t, node.cli("sys", "agents", "-format=json"), &agents)
	if len(agents.Agents) != 1 || !strings.Contains(strings.Join(agents.Agents[0].Watched, ","), "secrets/app/db") {
		t.Errorf("sys agents = %+v, want one agent watching secrets/app/db", agents)
	}

	// -init over the WebSocket: a template the role may not read fails the
	// run with the reason; a readable one renders and exits 0.
	initCfg := func(name, secretPath string) string {
		return write(filepath.Join(dir, name+".yaml"), fmt.Sprintf(`core:
  addresses: [%q]
  agent_addresses: ["https://%s"]
auth:
  role_id_file: %s
  secret_id_file: %s
state_dir: %s
templates:
  - name: %s
    contents: '{{ (secret %q).password }}'
    destination: %s
`, node.srv.addr, agentAddr2, filepath.Join(dir, "role-id"), filepath.Join(dir, "secret-id"),
			filepath.Join(dir, "state-"+name), name, secretPath, filepath.Join(out, name)))
	}
	node.cli("kv", "put", "other/x", "password=hidden")
	env := []string{noRaceExitSleep, "SECRETHUB_CORE_URL=", "SECRETHUB_ROLE_ID=", "SECRETHUB_SECRET_ID="}
	if code, _, errOut := cli(t, env, "", "agent", "-config", initCfg("denied", "secrets/other/x"), "-init"); code == 0 ||
		!strings.Contains(errOut, "permission denied") || strings.Contains(errOut, "hidden") {
		t.Errorf("-init of a denied secret: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := cli(t, env, "", "agent", "-config", initCfg("allowed", "secrets/app/db"), "-init"); code != 0 {
		t.Errorf("-init: exit %d\n%s", code, errOut)
	} else if got := readFile(t, filepath.Join(out, "allowed")); got != "three" {
		t.Errorf("-init rendered %q, want three", got)
	}

	// Offline start: with the core down, a restarted agent renders from
	// its persisted cache.
	agent.stop(t)
	node.srv.stop(t)
	for _, p := range []string{dbFile, otherFile, marker} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	agent = startAgent(t, cfg)
	waitFor(t, "the render from the persisted cache", agent, func() bool { _, err := os.Stat(marker); return err == nil })
	if got := readFile(t, dbFile); got != "three" {
		t.Errorf("db file from the persisted cache = %q, want three", got)
	}
	for _, s := range []string{"one", "two", "three"} {
		if strings.Contains(agent.stderr.String(), "password="+s) {
			t.Errorf("agent log contains a secret value")
		}
	}
}
