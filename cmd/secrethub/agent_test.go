package main

// End-to-end tests of `secrethub agent -init` against a real dev server:
// AppRole login, the agent certificate kept in the state directory,
// templates rendered from secrets fetched over REST, change-only writes and
// reloads.

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/agent/bootstrap"
)

// agentEnv is a dev server with an AppRole role "web" that may read
// secrets/app/*, and files for an agent that logs in with it.
type agentEnv struct {
	*cliEnv
	roleIDFile, secretIDFile string
	stateDir                 string
	out                      string // rendered files, reload log, marker
}

func newAgentEnv(t *testing.T) *agentEnv {
	t.Helper()
	e := newCLIEnv(t)
	e.root("policy", "write", "app-read", e.file("app.yaml", "rules:\n  - path: \"secrets/app/*\"\n    capabilities: [read, list]\n"))
	e.root("approle", "write", "web", "-policy=app-read")
	var roleID, secretID struct {
		Data map[string]any `json:"data"`
	}
	decodeJSON(t, e.root("approle", "role-id", "-format=json", "web"), &roleID)
	decodeJSON(t, e.root("approle", "secret-id", "-format=json", "web"), &secretID)
	rid, _ := roleID.Data["role_id"].(string)
	sid, _ := secretID.Data["secret_id"].(string)
	if rid == "" || sid == "" {
		t.Fatalf("role ID set %v, secret ID set %v", rid != "", sid != "")
	}
	out := filepath.Join(e.dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	return &agentEnv{
		cliEnv:     e,
		roleIDFile: e.file("role-id", rid+"\n"), secretIDFile: e.file("secret-id", sid+"\n"),
		stateDir: filepath.Join(e.dir, "state"), out: out,
	}
}

// config writes an agent configuration with the given templates block
// (YAML, indented as a list under "templates:") and returns its path.
func (e *agentEnv) config(name, templates string) string {
	e.t.Helper()
	return e.configWithSecretID(name, e.secretIDFile, templates)
}

// configWithSecretID is config with another secret ID file.
func (e *agentEnv) configWithSecretID(name, secretIDFile, templates string) string {
	e.t.Helper()
	return e.file(name, fmt.Sprintf(`core:
  addresses: [%q]
auth:
  role_id_file: %s
  secret_id_file: %s
state_dir: %s
init_marker: %s
templates:
%s`, e.addr, e.roleIDFile, secretIDFile, e.stateDir, filepath.Join(e.out, ".rendered"), templates))
}

// agent runs `secrethub agent args...`.
func (e *agentEnv) agent(args ...string) cliResult {
	e.t.Helper()
	env := append(e.env(""), "SECRETHUB_CORE_URL=")
	code, out, errOut := cli(e.t, env, "", append([]string{"agent"}, args...)...)
	return cliResult{code, out, errOut}
}

func (e *agentEnv) mustAgent(args ...string) {
	e.t.Helper()
	if r := e.agent(args...); r.code != 0 {
		e.t.Fatalf("secrethub agent %s: exit %d\nstderr: %s", strings.Join(args, " "), r.code, r.err)
	}
}

// serial reads the serial number of the certificate in the state directory.
func (e *agentEnv) serial() string {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.stateDir, bootstrap.CertFile))
	if err != nil {
		e.t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		e.t.Fatalf("%s holds no PEM block", bootstrap.CertFile)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		e.t.Fatal(err)
	}
	return c.SerialNumber.String()
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestAgentInit(t *testing.T) {
	t.Parallel()
	e := newAgentEnv(t)
	e.root("kv", "put", "app/db", "user=app", "password=p@ss/1")
	e.root("kv", "put", "app/pg", "host=db.internal", "port=5432", "dbname=orders")

	dbFile, pgFile := filepath.Join(e.out, "db.env"), filepath.Join(e.out, "pg.url")
	reloads := filepath.Join(e.out, "reloads")
	marker := filepath.Join(e.out, ".rendered")
	cfg := e.config("agent.yaml", fmt.Sprintf(`  - name: db
    contents: '{{ with secret "secrets/app/db" }}DB_USER={{ .user }}{{ "\n" }}DB_PASSWORD={{ .password }}{{ end }}'
    destination: %[1]s
    perms: "0600"
    reload:
      command: ["/bin/sh", "-c", "echo db >> %[3]s"]
  - name: pg
    contents: '{{ $c := secret "secrets/app/pg" }}{{ $u := secret "secrets/app/db" }}{{ pgURL (dict "host" $c.host "port" $c.port "dbname" $c.dbname "user" $u.user "password" $u.password) }}'
    destination: %[2]s
    perms: "0640"
    reload:
      command: ["/bin/sh", "-c", "echo pg >> %[3]s"]
`, dbFile, pgFile, reloads))

	pgWant := func(host, pass string) string {
		u := url.URL{Scheme: "postgres", User: url.UserPassword("app", pass), Host: host + ":5432", Path: "/orders"}
		return u.String()
	}
	steps := []struct {
		name    string
		before  func()
		db, pg  string
		reloads string
	}{
		{name: "first run renders both, creating the files: no reload", db: "DB_USER=app\nDB_PASSWORD=p@ss/1", pg: pgWant("db.internal", "p@ss/1"),
			reloads: ""},
		{name: "nothing changed: no reload", db: "DB_USER=app\nDB_PASSWORD=p@ss/1", pg: pgWant("db.internal", "p@ss/1"),
			reloads: ""},
		{name: "host changed: only pg", before: func() { e.root("kv", "put", "app/pg", "host=db2.internal", "port=5432", "dbname=orders") },
			db: "DB_USER=app\nDB_PASSWORD=p@ss/1", pg: pgWant("db2.internal", "p@ss/1"), reloads: "pg\n"},
		{name: "password changed: both", before: func() { e.root("kv", "put", "app/db", "user=app", "password=n3w") },
			db: "DB_USER=app\nDB_PASSWORD=n3w", pg: pgWant("db2.internal", "n3w"), reloads: "pg\ndb\npg\n"},
	}
	var firstSerial string
	for i, s := range steps {
		if s.before != nil {
			s.before()
		}
		e.mustAgent("-config", cfg, "-init")
		if got := readFile(t, dbFile); got != s.db {
			t.Errorf("%s: db file = %q, want %q", s.name, got, s.db)
		}
		if got := readFile(t, pgFile); got != s.pg {
			t.Errorf("%s: pg file = %q, want %q", s.name, got, s.pg)
		}
		if got, _ := os.ReadFile(reloads); string(got) != s.reloads {
			t.Errorf("%s: reloads = %q, want %q", s.name, got, s.reloads)
		}
		if i == 0 {
			firstSerial = e.serial()
		} else if got := e.serial(); got != firstSerial {
			t.Errorf("%s: certificate serial %s, want the first run's %s (reused)", s.name, got, firstSerial)
		}
	}
	if m := mode(t, dbFile); m != 0o600 {
		t.Errorf("db file mode %v, want 0600", m)
	}
	if m := mode(t, pgFile); m != 0o640 {
		t.Errorf("pg file mode %v, want 0640", m)
	}
	if !strings.HasPrefix(readFile(t, marker), "rendered 2 templates") {
		t.Errorf("init marker = %q", readFile(t, marker))
	}
	if m := mode(t, e.stateDir); m != 0o700 {
		t.Errorf("state dir mode %v, want 0700", m)
	}
	if m := mode(t, filepath.Join(e.stateDir, bootstrap.KeyFile)); m != 0o600 {
		t.Errorf("key mode %v, want 0600", m)
	}
	if !strings.Contains(readFile(t, filepath.Join(e.stateDir, bootstrap.KeyFile)), "BEGIN PRIVATE KEY") {
		t.Error("key file holds no PEM private key")
	}
	if !strings.Contains(readFile(t, filepath.Join(e.stateDir, bootstrap.CAFile)), "BEGIN CERTIFICATE") {
		t.Error("CA file holds no PEM certificate")
	}

	// Removing the stored certificate makes the next run get a new one.
	if err := os.Remove(filepath.Join(e.stateDir, bootstrap.CertFile)); err != nil {
		t.Fatal(err)
	}
	e.mustAgent("-config", cfg, "-init")
	if got := e.serial(); got == firstSerial {
		t.Errorf("serial %s after the certificate was removed, want a new one", got)
	}
}

func TestAgentInitFailures(t *testing.T) {
	t.Parallel()
	e := newAgentEnv(t)
	e.root("kv", "put", "app/db", "password=s3cr3t")
	e.root("kv", "put", "other/x", "password=hidden")
	// Each template writes out/<name>; no failed run may write any.
	tmpl := func(name, contents string) string {
		return fmt.Sprintf("  - name: %s\n    contents: '%s'\n    destination: %s\n", name, contents, filepath.Join(e.out, name))
	}
	sid := strings.TrimSpace(readFile(t, e.secretIDFile))

	tests := map[string]struct {
		cfg    string
		args   []string // after -config FILE
		code   int
		errs   []string // substrings of stderr
		notErr []string // strings stderr must not contain
	}{
		"secret the role may not read": {
			cfg: e.config("denied.yaml", tmpl("ok", `{{ (secret "secrets/app/db").password }}`)+
				tmpl("forbidden", `{{ (secret "secrets/other/x").password }}`)),
			args: []string{"-init"}, code: 1,
			errs:   []string{`template "forbidden"`, `"secrets/other/x"`, "permission denied"},
			notErr: []string{"hidden", "s3cr3t"},
		},
		"secret that does not exist": {
			cfg:  e.config("missing.yaml", tmpl("gone", `{{ (secret "secrets/app/nope").password }}`)),
			args: []string{"-init"}, code: 1,
			errs: []string{`template "gone"`, `"secrets/app/nope"`, "does not exist"},
		},
		"key the secret lacks": {
			cfg:  e.config("key.yaml", tmpl("nokey", `{{ secretKey "secrets/app/db" "user" }}`)),
			args: []string{"-init"}, code: 1,
			errs:   []string{`template "nokey"`, "user"},
			notErr: []string{"s3cr3t"},
		},
		"invalid config": {
			cfg:  e.config("bad.yaml", "  - name: rel\n    contents: x\n    destination: out/f\n"),
			args: []string{"-init"}, code: 1,
			errs: []string{"templates[0].destination", "must be absolute"},
		},
		"unknown field": {
			cfg:  e.config("typo.yaml", tmpl("t", "x")+"    destinaton: /tmp/x\n"),
			args: []string{"-init"}, code: 1,
			errs: []string{"destinaton"},
		},
		"wrong secret ID": {
			cfg:  e.configWithSecretID("wrongsid.yaml", e.file("bad-sid", "not-the-secret-id\n"), tmpl("t", "x")),
			args: []string{"-init"}, code: 1,
			errs: []string{"login refused"}, notErr: []string{"not-the-secret-id", sid},
		},
		"daemon mode without an agent listener": {
			cfg:  e.config("daemon.yaml", tmpl("t", "x")),
			code: 1, errs: []string{"core.agent_addresses", "missing"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := e.agent(append([]string{"-config", tc.cfg}, tc.args...)...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstderr: %s", r.code, tc.code, r.err)
			}
			for _, s := range tc.errs {
				if !strings.Contains(r.err, s) {
					t.Errorf("stderr lacks %q:\n%s", s, r.err)
				}
			}
			for _, s := range tc.notErr {
				if strings.Contains(r.err, s) {
					t.Errorf("stderr contains %q:\n%s", s, r.err)
				}
			}
			if left, err := os.ReadDir(e.out); err != nil || len(left) != 0 {
				t.Errorf("a failed run wrote files: %v (%v)", left, err)
			}
		})
	}
}
