package main

// End-to-end tests of the CLI client commands (kv, policy, approle, token,
// login, help) against a real `secrethub server -dev` process, run as a
// user would run them: the built binary, environment variables, files and
// standard input. Each test has its own server and its own HOME and token
// file, so `login` never touches the real home directory.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// cliRootToken is the dev server's root token in these tests.
const cliRootToken = "shs.cli-test-root-token"

// noRaceExitSleep stops the race-enabled binary from sleeping a second
// at every successful exit (the race runtime's atexit_sleep_ms default).
const noRaceExitSleep = "GORACE=atexit_sleep_ms=0"

// cliEnv is a dev server plus an isolated environment to run the CLI in.
type cliEnv struct {
	t         *testing.T
	addr      string
	dir       string // scratch files
	home      string // HOME of every CLI run
	tokenFile string // SECRETHUB_TOKEN_FILE of every CLI run
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	srv := startServer(t, []string{noRaceExitSleep}, "-dev", "-listen-address", "127.0.0.1:0", "-dev-root-token-id", cliRootToken)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	return &cliEnv{t: t, addr: srv.addr, dir: dir, home: home, tokenFile: filepath.Join(home, "token")}
}

// env is the environment of a CLI run with token in SECRETHUB_TOKEN ("" for
// none, so the stored token file is used).
func (e *cliEnv) env(token string) []string {
	return []string{
		"SECRETHUB_ADDR=" + e.addr, "SECRETHUB_TOKEN=" + token, "SECRETHUB_CACERT=",
		"HOME=" + e.home, "SECRETHUB_TOKEN_FILE=" + e.tokenFile,
		"SECRETHUB_ROLE_ID=", "SECRETHUB_SECRET_ID=", noRaceExitSleep,
	}
}

// cliResult is one CLI run's exit code and output.
type cliResult struct {
	code     int
	out, err string
}

func (e *cliEnv) run(token, stdin string, args ...string) cliResult {
	e.t.Helper()
	code, out, errOut := cli(e.t, e.env(token), stdin, args...)
	return cliResult{code, out, errOut}
}

// root runs the CLI with the root token and fails the test unless it
// succeeds; it returns standard output.
func (e *cliEnv) root(args ...string) string {
	e.t.Helper()
	r := e.run(cliRootToken, "", args...)
	if r.code != 0 {
		e.t.Fatalf("secrethub %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.out, r.err)
	}
	return r.out
}

// file writes a scratch file and returns its path.
func (e *cliEnv) file(name, content string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// tableRows parses the CLI's two-column "Key Value" table into a map.
func tableRows(out string) map[string]string {
	rows := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, " ")
		if line == "" || strings.HasPrefix(line, "---") {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		rows[k] = strings.TrimSpace(v)
	}
	return rows
}

// decodeJSON decodes CLI JSON output, keeping numbers exact.
func decodeJSON(t *testing.T, out string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
}

// cliStep is one CLI run and what it must produce.
type cliStep struct {
	name  string
	token string // SECRETHUB_TOKEN; cliRootToken unless noToken
	// noToken runs without SECRETHUB_TOKEN (the token file applies).
	noToken bool
	stdin   string
	args    []string
	fail    bool              // want a non-zero exit (else exit 0)
	out     []string          // substrings of stdout
	notOut  []string          // strings stdout must not contain
	exact   *string           // stdout, exactly
	rows    map[string]string // rows of a Key/Value table on stdout
	errs    []string          // substrings of stderr
	check   func(t *testing.T, r cliResult)
}

func str(s string) *string { return &s }

// runSteps runs steps in order, each as a subtest.
func (e *cliEnv) runSteps(steps []cliStep) {
	e.t.Helper()
	for _, s := range steps {
		e.t.Run(s.name, func(t *testing.T) {
			tok := s.token
			if tok == "" && !s.noToken {
				tok = cliRootToken
			}
			code, out, errOut := cli(t, e.env(tok), s.stdin, s.args...)
			r := cliResult{code, out, errOut}
			if s.fail != (code != 0) {
				t.Fatalf("secrethub %s: exit %d, want failure %v\nstdout: %s\nstderr: %s", strings.Join(s.args, " "), code, s.fail, out, errOut)
			}
			for _, want := range s.out {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			for _, bad := range s.notOut {
				if strings.Contains(out, bad) {
					t.Errorf("stdout contains %q:\n%s", bad, out)
				}
			}
			if s.exact != nil && out != *s.exact {
				t.Errorf("stdout = %q, want %q", out, *s.exact)
			}
			if s.rows != nil {
				got := tableRows(out)
				for k, want := range s.rows {
					if got[k] != want {
						t.Errorf("row %q = %q, want %q\n%s", k, got[k], want, out)
					}
				}
			}
			for _, want := range s.errs {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
			if s.check != nil {
				s.check(t, r)
			}
		})
	}
}

// historyStates parses `kv history` table output into version -> [deleted
// time or "-", destroyed].
func historyStates(t *testing.T, out string) map[string][2]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "Version") {
		t.Fatalf("history has no header:\n%s", out)
	}
	states := map[string][2]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 4 {
			t.Fatalf("history row %q: want 4 columns", l)
		}
		states[f[0]] = [2]string{f[2], f[3]}
	}
	return states
}

// wantHistory checks each version's state: "live", "deleted" or
// "destroyed" (destroyed whatever its deletion time).
func wantHistory(want map[string]string) func(t *testing.T, r cliResult) {
	return func(t *testing.T, r cliResult) {
		t.Helper()
		got := historyStates(t, r.out)
		if len(got) != len(want) {
			t.Fatalf("history has %d versions, want %d:\n%s", len(got), len(want), r.out)
		}
		for v, state := range want {
			s, ok := got[v]
			if !ok {
				t.Fatalf("history lacks version %s:\n%s", v, r.out)
			}
			var have string
			switch {
			case s[1] == "true":
				have = "destroyed"
			case s[0] != "-":
				have = "deleted"
			default:
				have = "live"
			}
			if have != state {
				t.Errorf("version %s is %s, want %s:\n%s", v, have, state, r.out)
			}
		}
	}
}

func TestCLIKV(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	dbJSON := e.file("db.json", `{"user":"app","password":"from-json","port":5432,"big":12345678901234567890}`)
	dbYAML := e.file("db.yaml", "# a YAML secret\nuser: app\npassword: from-yaml\nnested:\n  a: 1\n")
	cert := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	certFile := e.file("cert.pem", cert)
	listYAML := e.file("list.yaml", "- a\n- b\n")
	badYAML := e.file("bad.yaml", "a: [1\n")

	e.runSteps([]cliStep{
		// Writes, each a new version.
		{name: "put KEY=VALUE", args: []string{"kv", "put", "app/db", "user=app", "password=s3cr3t"}, rows: map[string]string{"version": "1"}},
		{name: "put @file.json", args: []string{"kv", "put", "app/db", "@" + dbJSON}, rows: map[string]string{"version": "2"}},
		{name: "put @file.yaml", args: []string{"kv", "put", "app/db", "@" + dbYAML}, rows: map[string]string{"version": "3"}},
		{name: "put - from stdin", stdin: "password: from-stdin\n", args: []string{"kv", "put", "app/db", "-"}, rows: map[string]string{"version": "4"}},
		{name: "put -cas current", args: []string{"kv", "put", "-cas=4", "app/db", "password=cas"}, rows: map[string]string{"version": "5"}},
		{name: "put -cas stale", args: []string{"kv", "put", "-cas", "4", "app/db", "password=late"}, fail: true,
			errs: []string{"check-and-set parameter did not match the current version"}},
		{name: "put -cas 0 on existing", args: []string{"kv", "put", "-cas=0", "app/db", "password=late"}, fail: true,
			errs: []string{"check-and-set"}},
		{name: "put -cas 0 creates", args: []string{"kv", "put", "-cas=0", "app/new", "k=v"}, rows: map[string]string{"version": "1"}},
		{name: "put values from file and stdin", stdin: "from stdin", args: []string{"kv", "put", "app/files", "cert=@" + certFile, "note=-"},
			rows: map[string]string{"version": "1"}},
		{name: "put nested folder", args: []string{"kv", "put", "app/nested/deep", "x=1"}},
		// A secret whose fields are "action" and "versions" is data, not an
		// instruction to destroy version 1.
		{name: "put tricky v1", args: []string{"kv", "put", "app/tricky", "a=1"}},
		{name: "put fields named action and versions", args: []string{"kv", "put", "app/tricky", "action=destroy", "versions=1"},
			rows: map[string]string{"version": "2"}},
		{name: "tricky v1 intact", args: []string{"kv", "get", "-version=1", "-field=a", "app/tricky"}, exact: str("1\n")},
		{name: "tricky v2 is data", args: []string{"kv", "get", "app/tricky"}, rows: map[string]string{"action": "destroy", "versions": "1"}},

		// Reads.
		{name: "get table", args: []string{"kv", "get", "app/db"}, out: []string{"Key", "Value"}, rows: map[string]string{"password": "cas"}, notOut: []string{"from-"}},
		{name: "get -field", args: []string{"kv", "get", "-field=password", "app/db"}, exact: str("cas\n")},
		{name: "get -version -field", args: []string{"kv", "get", "-version=2", "-field=password", "app/db"}, exact: str("from-json\n")},
		{name: "big number kept exactly", args: []string{"kv", "get", "-version", "2", "-field", "big", "app/db"}, exact: str("12345678901234567890\n")},
		{name: "nested YAML field", args: []string{"kv", "get", "-version=3", "-field=nested", "app/db"}, exact: str("{\"a\":1}\n")},
		{name: "get version from stdin", args: []string{"kv", "get", "-version=4", "app/db"}, rows: map[string]string{"password": "from-stdin"}},
		{name: "get -format=json", args: []string{"kv", "get", "-format=json", "-version=2", "app/db"}, check: func(t *testing.T, r cliResult) {
			var resp struct {
				Data map[string]any `json:"data"`
			}
			decodeJSON(t, r.out, &resp)
			want := map[string]any{"user": "app", "password": "from-json", "port": json.Number("5432"), "big": json.Number("12345678901234567890")}
			for k, v := range want {
				if resp.Data[k] != v {
					t.Errorf("data[%q] = %#v, want %#v", k, resp.Data[k], v)
				}
			}
		}},
		{name: "file value verbatim", args: []string{"kv", "get", "-field=cert", "app/files"}, exact: str(cert + "\n")},
		{name: "stdin value", args: []string{"kv", "get", "-field=note", "app/files"}, exact: str("from stdin\n")},

		// Listing.
		{name: "list folder", args: []string{"kv", "list", "app"}, check: func(t *testing.T, r cliResult) {
			got := strings.Split(strings.TrimSpace(r.out), "\n")
			want := []string{"Keys", "----", "db", "files", "nested/", "new", "tricky"}
			if !slices.Equal(got, want) {
				t.Errorf("list = %q, want %q", got, want)
			}
		}},
		{name: "list json", args: []string{"kv", "list", "-format=json", "app/nested"}, check: func(t *testing.T, r cliResult) {
			var keys []string
			decodeJSON(t, r.out, &keys)
			if !slices.Equal(keys, []string{"deep"}) {
				t.Errorf("keys = %q", keys)
			}
		}},
		{name: "history", args: []string{"kv", "history", "app/db"},
			check: wantHistory(map[string]string{"1": "live", "2": "live", "3": "live", "4": "live", "5": "live"})},

		// Delete, undelete, destroy.
		{name: "delete latest", args: []string{"kv", "delete", "app/db"}, out: []string{"Deleted the latest version of app/db"}},
		{name: "get deleted latest", args: []string{"kv", "get", "app/db"}, fail: true, errs: []string{"version 5 of app/db is deleted", "undelete"}},
		{name: "older version still readable", args: []string{"kv", "get", "-version=4", "-field=password", "app/db"}, exact: str("from-stdin\n")},
		{name: "delete -versions", args: []string{"kv", "delete", "-versions=1,2", "app/db"}, out: []string{"Deleted versions 1,2 of app/db"}},
		{name: "get deleted version", args: []string{"kv", "get", "-version=1", "app/db"}, fail: true, errs: []string{"version 1 of app/db is deleted"}},
		{name: "history after deletes", args: []string{"kv", "history", "app/db"},
			check: wantHistory(map[string]string{"1": "deleted", "2": "deleted", "3": "live", "4": "live", "5": "deleted"})},
		{name: "undelete -versions", args: []string{"kv", "undelete", "-versions", "5,1", "app/db"}, out: []string{"Undeleted versions 5,1 of app/db"}},
		{name: "get undeleted latest", args: []string{"kv", "get", "-field=password", "app/db"}, exact: str("cas\n")},
		{name: "get undeleted version", args: []string{"kv", "get", "-version=1", "-field=password", "app/db"}, exact: str("s3cr3t\n")},
		{name: "destroy -versions", args: []string{"kv", "destroy", "-versions=2", "app/db"}, out: []string{"Destroyed version 2 of app/db"}},
		{name: "get destroyed version", args: []string{"kv", "get", "-version=2", "app/db"}, fail: true, errs: []string{"version 2 of app/db is destroyed"}},
		{name: "undelete cannot restore destroyed", args: []string{"kv", "undelete", "-versions=2", "app/db"}},
		{name: "history after destroy", args: []string{"kv", "history", "app/db"},
			check: wantHistory(map[string]string{"1": "live", "2": "destroyed", "3": "live", "4": "live", "5": "live"})},
		{name: "history json", args: []string{"kv", "history", "-format=json", "app/db"}, check: func(t *testing.T, r cliResult) {
			var h struct {
				Current  json.Number `json:"current_version"`
				Versions []struct {
					Version   json.Number `json:"version"`
					Deleted   string      `json:"deletion_time"`
					Destroyed bool        `json:"destroyed"`
				} `json:"versions"`
			}
			decodeJSON(t, r.out, &h)
			if h.Current != "5" || len(h.Versions) != 5 || !h.Versions[1].Destroyed || h.Versions[0].Destroyed || h.Versions[0].Deleted != "" {
				t.Errorf("history json: %+v", h)
			}
		}},

		// Errors.
		{name: "get missing secret", args: []string{"kv", "get", "app/nope"}, fail: true, errs: []string{"no secret at app/nope"}},
		{name: "get missing version", args: []string{"kv", "get", "-version=9", "app/db"}, fail: true, errs: []string{"app/db has no version 9"}},
		{name: "get missing field", args: []string{"kv", "get", "-field=nope", "app/db"}, fail: true, errs: []string{`has no field "nope"`}},
		{name: "history missing secret", args: []string{"kv", "history", "app/nope"}, fail: true, errs: []string{"no secret at app/nope"}},
		{name: "list missing folder", args: []string{"kv", "list", "nope"}, fail: true, errs: []string{`nothing under "nope"`}},
		{name: "put without =", args: []string{"kv", "put", "app/x", "novalue"}, fail: true, errs: []string{`"novalue": want KEY=VALUE`}},
		{name: "put empty key", args: []string{"kv", "put", "app/x", "=v"}, fail: true, errs: []string{`"=v": want KEY=VALUE`}},
		{name: "put key twice", args: []string{"kv", "put", "app/x", "a=1", "a=2"}, fail: true, errs: []string{"a: given twice"}},
		{name: "put stdin twice", stdin: "x", args: []string{"kv", "put", "app/x", "a=-", "b=-"}, fail: true, errs: []string{"read only once"}},
		{name: "put YAML list", args: []string{"kv", "put", "app/x", "@" + listYAML}, fail: true, errs: []string{"want a JSON or YAML object"}},
		{name: "put bad YAML", args: []string{"kv", "put", "app/x", "@" + badYAML}, fail: true, errs: []string{"want a JSON or YAML object", "line"}},
		{name: "put empty stdin", args: []string{"kv", "put", "app/x", "-"}, fail: true, errs: []string{"want a JSON or YAML object"}},
		{name: "put missing file", args: []string{"kv", "put", "app/x", "@" + filepath.Join(e.dir, "missing.json")}, fail: true, errs: []string{"no such file"}},
		{name: "put without data", args: []string{"kv", "put", "app/x"}, fail: true, errs: []string{"arg"}},
		{name: "undelete without -versions", args: []string{"kv", "undelete", "app/db"}, fail: true, errs: []string{"-versions"}},
		{name: "failed puts wrote nothing", args: []string{"kv", "get", "app/x"}, fail: true, errs: []string{"no secret at app/x"}},
		{name: "no token", noToken: true, args: []string{"kv", "get", "app/db"}, fail: true, errs: []string{"permission denied", "SECRETHUB_TOKEN", "secrethub login"}},
	})
}

func TestCLIPolicy(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	appYAML := `# read the app's secrets
rules:
  - path: "secrets/app/*"
    capabilities: [read, list]
  - path: "secrets/app/admin"
    capabilities: [deny]
  - path: "secrets/office/*"
    capabilities: [read]
    conditions:
      source_ip: ["10.0.0.0/8"]
`
	appFile := e.file("app.yaml", appYAML)
	jsonDoc := `{"rules":[{"path":"secrets/json/*","capabilities":["read"]}]}` + "\n"
	jsonFile := e.file("json.json", jsonDoc)

	e.runSteps([]cliStep{
		{name: "write YAML", args: []string{"policy", "write", "app-read", appFile}, out: []string{"Wrote policy app-read"}},
		{name: "write JSON", args: []string{"policy", "write", "json-read", jsonFile}, out: []string{"Wrote policy json-read"}},
		{name: "write from stdin", stdin: jsonDoc, args: []string{"policy", "write", "stdin-read", "-"}, out: []string{"Wrote policy stdin-read"}},
		{name: "read YAML as written", args: []string{"policy", "read", "app-read"}, exact: str(appYAML)},
		{name: "read JSON", args: []string{"policy", "read", "-format=json", "json-read"}, check: func(t *testing.T, r cliResult) {
			var d map[string]any
			decodeJSON(t, r.out, &d)
			if d["name"] != "json-read" || d["policy"] != jsonDoc {
				t.Errorf("read json: %v", d)
			}
		}},
		{name: "list", args: []string{"policy", "list"}, check: func(t *testing.T, r cliResult) {
			got := strings.Split(strings.TrimSpace(r.out), "\n")
			want := []string{"Keys", "----", "app-read", "default", "json-read", "root", "stdin-read"}
			if !slices.Equal(got, want) {
				t.Errorf("list = %q, want %q", got, want)
			}
		}},
		{name: "delete", args: []string{"policy", "delete", "json-read"}, out: []string{"Deleted policy json-read"}},
		{name: "list after delete", args: []string{"policy", "list", "-format=json"}, check: func(t *testing.T, r cliResult) {
			var keys []string
			decodeJSON(t, r.out, &keys)
			if slices.Contains(keys, "json-read") || !slices.Contains(keys, "app-read") {
				t.Errorf("keys = %q", keys)
			}
		}},
		{name: "read deleted", args: []string{"policy", "read", "json-read"}, fail: true, errs: []string{`no policy named "json-read"`}},
		{name: "root is reserved", args: []string{"policy", "write", "root", appFile}, fail: true, errs: []string{"root", "reserved"}},
		{name: "missing file", args: []string{"policy", "write", "x", filepath.Join(e.dir, "nope.yaml")}, fail: true, errs: []string{"no such file"}},
	})

	// Bad documents: a non-zero exit naming the rule and field, and
	// nothing written.
	bad := map[string]struct {
		doc  string
		errs []string
	}{
		"unknown capability": {"rules:\n  - path: secrets/a\n    capabilities: [read, raed]\n",
			[]string{`rules[0].capabilities[1]`, `unknown capability "raed"`}},
		"unknown field": {"rules:\n  - path: secrets/a\n    capabilities: [read]\n  - path: secrets/b\n    capability: [read]\n",
			[]string{"rules[1].capability", "unknown field"}},
		"bad glob": {"rules:\n  - path: secrets/a\n    capabilities: [read]\n  - path: \"secrets/a**\"\n    capabilities: [read]\n",
			[]string{"rules[1].path", `"**" must be a whole segment`}},
		"bad CIDR": {"rules:\n  - path: secrets/a\n    capabilities: [read]\n    conditions:\n      source_ip: [\"10.0.0/33\"]\n",
			[]string{"rules[0].conditions.source_ip[0]", `invalid CIDR "10.0.0/33"`}},
		"bad time zone": {"rules:\n  - path: secrets/a\n    capabilities: [read]\n    conditions:\n      time_of_day: {start: \"08:00\", end: \"18:00\", time_zone: \"Mars/Base\"}\n",
			[]string{"rules[0].conditions.time_of_day.time_zone", "Mars/Base"}},
		"several problems at once": {"rules:\n  - path: secrets/a\n    capabilities: [raed]\n  - path: \"a//b\"\n    capabilities: [read]\n",
			[]string{"rules[0].capabilities[0]", "rules[1].path"}},
	}
	for name, tc := range bad {
		t.Run("bad policy/"+name, func(t *testing.T) {
			f := e.file("bad-"+strings.ReplaceAll(name, " ", "-")+".yaml", tc.doc)
			r := e.run(cliRootToken, "", "policy", "write", "bad", f)
			if r.code == 0 {
				t.Fatalf("bad policy written: %s", r.out)
			}
			for _, want := range tc.errs {
				if !strings.Contains(r.err, want) {
					t.Errorf("stderr lacks %q: %s", want, r.err)
				}
			}
			if r := e.run(cliRootToken, "", "policy", "read", "bad"); r.code == 0 {
				t.Errorf("a bad policy was stored: %s", r.out)
			}
		})
	}

	// Explain, for a token with app-read (and default).
	var created struct {
		Auth struct {
			ClientToken string `json:"client_token"`
			Accessor    string `json:"accessor"`
		} `json:"auth"`
	}
	decodeJSON(t, e.root("token", "create", "-policy=app-read", "-ttl=1h", "-format=json"), &created)
	tok, acc := created.Auth.ClientToken, created.Auth.Accessor
	explain := func(extra ...string) []string {
		return append([]string{"policy", "explain"}, extra...)
	}
	e.runSteps([]cliStep{
		{name: "explain allowed", args: explain("-path", "secrets/app/db", "-token", tok, "-capability", "read"),
			out: []string{"ALLOWED: read on secrets/app/db", "allowed by policy app-read rule 0 (secrets/app/*)", "Rules examined"}},
		{name: "explain denied by rule", args: explain("-path=secrets/app/admin", "-token="+tok, "-capability=read"),
			out: []string{"DENIED: read on secrets/app/admin", "denied by policy app-read rule 1 (secrets/app/admin)"}},
		{name: "explain failing condition", args: explain("-path=secrets/office/x", "-token="+tok, "-capability=read"),
			out: []string{"DENIED: read on secrets/office/x", "policy app-read rule 2", "failed condition: source_ip",
				"condition source_ip is not met: 127.0.0.1 is in none of 10.0.0.0/8"}},
		{name: "explain no rule grants", args: explain("-path=secrets/app/db", "-token="+tok, "-capability=update"),
			out: []string{"DENIED: update on secrets/app/db", "no rule grants update on secrets/app/db"}},
		{name: "explain by accessor", args: explain("-path=secrets/app/db", "-accessor="+acc),
			out: []string{"ALLOWED: read on secrets/app/db", "policy app-read rule 0"}},
		{name: "explain own token", token: tok, args: explain("-path=secrets/app/admin"),
			out: []string{"DENIED: read on secrets/app/admin", "policy app-read rule 1"}},
		{name: "explain json", args: explain("-path=secrets/office/x", "-token="+tok, "-format=json"), check: func(t *testing.T, r cliResult) {
			var d struct {
				Allowed         bool   `json:"allowed"`
				Policy          string `json:"policy"`
				FailedCondition string `json:"failed_condition"`
			}
			decodeJSON(t, r.out, &d)
			if d.Allowed || d.FailedCondition != "source_ip" {
				t.Errorf("explain json: %+v", d)
			}
		}},
		// Another token's access is explained by sys/policies/explain, which
		// needs sudo: a token without it may not ask about root's.
		{name: "explain another token needs sudo", token: tok, args: explain("-path=secrets/app/db", "-token="+cliRootToken),
			fail: true, errs: []string{"permission denied"}},
		{name: "explain -token and -accessor", args: explain("-path=x", "-token="+tok, "-accessor="+acc), fail: true, errs: []string{"give one"}},
		{name: "explain without -path", args: explain(), fail: true, errs: []string{"-path"}},
	})
}

func TestCLIAppRoleAndLogin(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	e.root("policy", "write", "app-read", e.file("app.yaml", "rules:\n  - path: \"secrets/app/*\"\n    capabilities: [read, list]\n"))
	e.root("kv", "put", "app/db", "password=s3cr3t")

	var roleID, secretID, accessor1, accessor2 string
	e.runSteps([]cliStep{
		{name: "write", args: []string{"approle", "write", "web", "-policy=app-read", "-token-ttl=20m", "-secret-id-num-uses=2"},
			out: []string{"Wrote role web"}},
		{name: "read", args: []string{"approle", "read", "web"},
			rows: map[string]string{"token_policies": `["app-read"]`, "token_ttl": "1200", "secret_id_num_uses": "2"}},
		{name: "list", args: []string{"approle", "list"}, exact: str("Keys\n----\nweb\n")},
		{name: "role-id", args: []string{"approle", "role-id", "-format=json", "web"}, check: func(t *testing.T, r cliResult) {
			var resp struct {
				Data struct {
					RoleID string `json:"role_id"`
				} `json:"data"`
			}
			decodeJSON(t, r.out, &resp)
			if roleID = resp.Data.RoleID; roleID == "" {
				t.Fatalf("no role_id: %s", r.out)
			}
		}},
		{name: "role-id table", args: []string{"approle", "role-id", "web"}, check: func(t *testing.T, r cliResult) {
			if got := tableRows(r.out)["role_id"]; got != roleID {
				t.Errorf("role_id = %q, want %q", got, roleID)
			}
		}},
		{name: "secret-id", args: []string{"approle", "secret-id", "web"}, check: func(t *testing.T, r cliResult) {
			rows := tableRows(r.out)
			secretID, accessor1 = rows["secret_id"], rows["secret_id_accessor"]
			if secretID == "" || accessor1 == "" || rows["secret_id_num_uses"] != "2" {
				t.Fatalf("secret-id: %s", r.out)
			}
		}},
		{name: "second secret-id", args: []string{"approle", "secret-id", "-format=json", "web"}, check: func(t *testing.T, r cliResult) {
			var resp struct {
				Data map[string]any `json:"data"`
			}
			decodeJSON(t, r.out, &resp)
			accessor2, _ = resp.Data["secret_id_accessor"].(string)
		}},
	})
	if roleID == "" || secretID == "" || accessor1 == "" || accessor2 == "" {
		t.Fatalf("role ID %q, secret ID set %v, accessors %q %q", roleID, secretID != "", accessor1, accessor2)
	}
	e.runSteps([]cliStep{
		{name: "secret-id-list", args: []string{"approle", "secret-id-list", "-format=json", "web"}, check: func(t *testing.T, r cliResult) {
			var keys []string
			decodeJSON(t, r.out, &keys)
			slices.Sort(keys)
			want := []string{accessor1, accessor2}
			slices.Sort(want)
			if !slices.Equal(keys, want) {
				t.Errorf("accessors = %q, want %q", keys, want)
			}
		}},
		{name: "secret-id-destroy", args: []string{"approle", "secret-id-destroy", "web", "-accessor=" + accessor2}, out: []string{"Destroyed the secret ID"}},
		{name: "secret-id-list after destroy", args: []string{"approle", "secret-id-list", "web"}, exact: str("Keys\n----\n" + accessor1 + "\n")},
		{name: "secret-id-destroy unknown", args: []string{"approle", "secret-id-destroy", "web", "-accessor=nope"}, fail: true,
			errs: []string{`role "web" has no secret ID with accessor "nope"`}},
		{name: "read missing role", args: []string{"approle", "read", "nope"}, fail: true, errs: []string{`no role named "nope"`}},
		{name: "role-id missing role", args: []string{"approle", "role-id", "nope"}, fail: true, errs: []string{`no role named "nope"`}},
	})

	// A stale token with wide permissions in the token file: login replaces
	// it and the file ends up 0600.
	if err := os.WriteFile(e.tokenFile, []byte("shs.stale\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sidFile := e.file("secret-id", secretID+"\n")
	login := []string{"login", "-method=approle", "-role-id=" + roleID, "-secret-id-file=" + sidFile}
	var appToken string
	e.runSteps([]cliStep{
		{name: "approle login", noToken: true, args: login, errs: []string{"Token stored in " + e.tokenFile},
			rows: map[string]string{"token_policies": "app-read, default", "token_duration": "1200s"},
			check: func(t *testing.T, r cliResult) {
				appToken = tableRows(r.out)["token"]
				st, err := os.Stat(e.tokenFile)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != 0o600 {
					t.Errorf("token file mode %v, want 0600", st.Mode().Perm())
				}
				b, _ := os.ReadFile(e.tokenFile)
				if appToken == "" || strings.TrimSpace(string(b)) != appToken {
					t.Errorf("token file holds %q, login printed %q", b, appToken)
				}
			}},
		// Later commands without SECRETHUB_TOKEN use the stored token.
		{name: "stored token reads", noToken: true, args: []string{"kv", "get", "-field=password", "app/db"}, exact: str("s3cr3t\n")},
		{name: "stored token looks itself up", noToken: true, args: []string{"token", "lookup"},
			rows: map[string]string{"policies": `["app-read","default"]`, "creation_ttl": "1200", "path": "auth/approle/login"}},
		{name: "stored token may not write", noToken: true, args: []string{"kv", "put", "app/db", "password=x"}, fail: true,
			errs: []string{"permission denied", e.tokenFile}},
		{name: "SECRETHUB_TOKEN wins over the file", args: []string{"kv", "put", "app/db", "password=root"}},
		{name: "second login uses the secret ID up", noToken: true, args: login},
		{name: "used-up secret ID", noToken: true, args: login, fail: true, errs: []string{"login failed", "invalid role ID or secret ID"}},
		{name: "approle login without secret ID", noToken: true, args: []string{"login", "-method=approle", "-role-id=" + roleID},
			fail: true, errs: []string{"-secret-id-file"}},

		// Method token.
		{name: "login TOKEN", noToken: true, args: []string{"login", cliRootToken}, out: []string{"Success! Logged in", "root"}},
		{name: "root token stored", noToken: true, args: []string{"approle", "list"}, exact: str("Keys\n----\nweb\n")},
		{name: "login bad token", noToken: true, args: []string{"login", "shs.bogus"}, fail: true,
			errs: []string{"login failed", "does not accept this token"}},
		{name: "bad token not stored", noToken: true, args: []string{"token", "lookup"}, rows: map[string]string{"id": cliRootToken}},
	})
	if appToken == "" {
		t.Fatal("approle login printed no token")
	}
	e.runSteps([]cliStep{
		{name: "login token from stdin", noToken: true, stdin: appToken + "\n", args: []string{"login"}, out: []string{"app-read"}},
		{name: "stdin token stored", noToken: true, args: []string{"token", "lookup"}, rows: map[string]string{"policies": `["app-read","default"]`}},
		{name: "login without a token", noToken: true, args: []string{"login"}, fail: true, errs: []string{"no token given"}},
		{name: "login while SECRETHUB_TOKEN is set", token: appToken, args: []string{"login", appToken},
			errs: []string{"Token stored in", "SECRETHUB_TOKEN is set and takes precedence"}},
		{name: "login -no-store", noToken: true, args: []string{"login", "-no-store", cliRootToken}},
		{name: "-no-store kept the old token", noToken: true, args: []string{"token", "lookup"}, rows: map[string]string{"policies": `["app-read","default"]`}},
		{name: "login unknown method", noToken: true, args: []string{"login", "-method=ldap"}, fail: true, errs: []string{"want token or approle"}},

		{name: "delete role", args: []string{"approle", "delete", "web"}, out: []string{"Deleted role web"}},
		{name: "list after delete", args: []string{"approle", "list"}, notOut: []string{"web"}},
	})
}

func TestCLIToken(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	e.root("policy", "write", "app-read", e.file("app.yaml", "rules:\n  - path: \"secrets/app/*\"\n    capabilities: [read]\n"))

	var resp struct {
		Auth struct {
			ClientToken   string   `json:"client_token"`
			Accessor      string   `json:"accessor"`
			Policies      []string `json:"policies"`
			LeaseDuration int      `json:"lease_duration"`
			Renewable     bool     `json:"renewable"`
		} `json:"auth"`
	}
	decodeJSON(t, e.root("token", "create", "-policy", "app-read", "-ttl", "1h", "-format=json"), &resp)
	a := resp.Auth
	tok, acc := a.ClientToken, a.Accessor
	if tok == "" || acc == "" || a.LeaseDuration != 3600 || !a.Renewable || !slices.Equal(a.Policies, []string{"app-read", "default"}) {
		t.Fatalf("token create -format=json: %+v", a)
	}
	e.runSteps([]cliStep{
		{name: "create table", args: []string{"token", "create", "-policy=app-read", "-ttl=90m", "-display-name=ci"},
			rows: map[string]string{"token_duration": "5400s", "token_policies": "app-read, default", "token_renewable": "true"}},
		{name: "lookup self", args: []string{"token", "lookup"}, rows: map[string]string{"id": cliRootToken, "policies": `["root"]`}},
		{name: "lookup by token", args: []string{"token", "lookup", tok}, rows: map[string]string{
			"id": tok, "accessor": acc, "policies": `["app-read","default"]`, "creation_ttl": "3600", "renewable": "true"},
			// Numbers print as integers, not 1.7e+09.
			notOut: []string{"e+"}},
		{name: "lookup by accessor", args: []string{"token", "lookup", "-accessor=" + acc}, rows: map[string]string{"accessor": acc, "creation_ttl": "3600"},
			notOut: []string{tok}},
		{name: "lookup self as non-root", token: tok, args: []string{"token", "lookup"}, rows: map[string]string{"id": tok, "accessor": acc}},
		{name: "renew by token", args: []string{"token", "renew", "-increment=2h", tok}, rows: map[string]string{"token_duration": "7200s", "token_accessor": acc}},
		{name: "renew self", token: tok, args: []string{"token", "renew", "-increment=30m"}, rows: map[string]string{"token_duration": "1800s"}},
		{name: "renew by accessor", args: []string{"token", "renew", "-accessor=" + acc, "-increment=45m"}, rows: map[string]string{"token_duration": "2700s"}},
		{name: "ttl after renew", args: []string{"token", "lookup", "-format=json", tok}, check: func(t *testing.T, r cliResult) {
			var resp struct {
				Data struct {
					TTL int `json:"ttl"`
				} `json:"data"`
			}
			decodeJSON(t, r.out, &resp)
			if resp.Data.TTL <= 2600 || resp.Data.TTL > 2700 {
				t.Errorf("ttl = %d, want about 2700", resp.Data.TTL)
			}
		}},
		{name: "revoke", args: []string{"token", "revoke", tok}, out: []string{"Success!"}},
		{name: "lookup revoked", args: []string{"token", "lookup", tok}, fail: true, errs: []string{"revoked"}},
		{name: "revoked token cannot act", token: tok, args: []string{"token", "lookup"}, fail: true, errs: []string{"permission denied"}},
		{name: "lookup TOKEN and -accessor", args: []string{"token", "lookup", "-accessor=" + acc, tok}, fail: true, errs: []string{"give one"}},
		{name: "lookup unknown accessor", args: []string{"token", "lookup", "-accessor=nope"}, fail: true, errs: []string{"accessor"}},
		{name: "bad ttl", args: []string{"token", "create", "-ttl=soon"}, fail: true, errs: []string{"ttl"}},
	})

	// revoke -accessor and revoke (self).
	var created struct {
		Auth struct {
			ClientToken string `json:"client_token"`
			Accessor    string `json:"accessor"`
		} `json:"auth"`
	}
	decodeJSON(t, e.root("token", "create", "-policy=app-read", "-format=json"), &created)
	decodeJSON(t, e.root("token", "create", "-policy=app-read", "-format=json"), &created)
	self := created.Auth.ClientToken
	decodeJSON(t, e.root("token", "create", "-policy=app-read", "-format=json"), &created)
	e.runSteps([]cliStep{
		{name: "revoke by accessor", args: []string{"token", "revoke", "-accessor=" + created.Auth.Accessor}},
		{name: "revoked by accessor", args: []string{"token", "lookup", created.Auth.ClientToken}, fail: true},
		{name: "revoke self", token: self, args: []string{"token", "revoke"}},
		{name: "revoked self", args: []string{"token", "lookup", self}, fail: true},
	})
}

func TestCLIHelp(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		args []string
		want []string
	}{
		"root":           {[]string{"--help"}, []string{"SecretHub keeps secrets encrypted", "kv", "policy", "approle", "token", "login"}},
		"kv":             {[]string{"kv", "--help"}, []string{"versioned secrets", "put", "history", "undelete", "destroy", "-mount"}},
		"kv put":         {[]string{"kv", "put", "-h"}, []string{"KEY=VALUE", "@file.json", "standard input", "check-and-set"}},
		"kv destroy":     {[]string{"kv", "destroy", "--help"}, []string{"permanently", "cannot be undone", "--versions"}},
		"policy":         {[]string{"policy", "--help"}, []string{"policies", "capabilities", "explain"}},
		"policy explain": {[]string{"policy", "explain", "--help"}, []string{"which rule of which policy", "condition", "--token", "--accessor"}},
		"token":          {[]string{"token", "--help"}, []string{"Create, look up, renew and revoke tokens", "create", "renew"}},
		"approle":        {[]string{"approle", "--help"}, []string{"AppRole", "secret ID", "secret-id-destroy"}},
		"login":          {[]string{"login", "--help"}, []string{"0600", "SECRETHUB_TOKEN_FILE", "-method=approle", "--secret-id-file"}},
		"audit":          {[]string{"audit", "--help"}, []string{"hash-chained", "verify", "export"}},
	}
	home := t.TempDir()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := cli(t, []string{"HOME=" + home, "SECRETHUB_TOKEN_FILE=" + filepath.Join(home, "token"), noRaceExitSleep}, "", tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("help lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestCLIUnreachable: an unreachable server gives the network error, not a
// formatting artifact.
func TestCLIUnreachable(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	code, _, errOut := cli(t, []string{"SECRETHUB_ADDR=http://127.0.0.1:1", "SECRETHUB_TOKEN=x", "HOME=" + home}, "", "kv", "get", "app/db")
	if code != 1 || !strings.Contains(errOut, "cannot reach SecretHub at http://127.0.0.1:1") ||
		!strings.Contains(errOut, "connection refused") || strings.Contains(errOut, "%!") {
		t.Fatalf("exit %d: %q", code, errOut)
	}
	if strings.Contains(errOut, "server unreachable: 127.0.0.1:1: Get") {
		t.Errorf("error repeats the client's wrapping: %q", errOut)
	}
}
