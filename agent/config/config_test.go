package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// secretMarker is a secret ID no error, log or print may contain.
const secretMarker = "s3cret-id-7f3a9c-never-print-me"

// envMap turns a map into an env lookup function.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// credEnv gives the role and secret IDs through the environment.
var credEnv = envMap(map[string]string{EnvRoleID: "role-1", EnvSecretID: secretMarker})

const fullYAML = `
core:
  addresses: ["https://core-1:4000", "https://core-2:4000"]
  agent_addresses: ["https://core-1:4001"]
  ca_file: /etc/secrethub/ca.pem
auth:
  method: approle
  role_id_file: /etc/secrethub/role-id
  secret_id_file: /etc/secrethub/secret-id
  remove_secret_id_file: true
state_dir: /var/lib/secrethub-agent
cache:
  max_entries: 50
  ttl: 90s
  persist: true
templates:
  - name: db
    contents: '{{ with secret "secrets/app/db" }}{{ .password }}{{ end }}'
    destination: /secrethub/secrets/db
    perms: "0600"
    missing_key: zero
    reload:
      command: ["/bin/sh", "-c", "kill -HUP 1"]
      timeout: 3s
  - name: tls.crt
    source: /etc/secrethub/tls.tmpl
    destination: /secrethub/secrets/tls.crt
    reload:
      signal: {name: SIGHUP, pid_file: /run/app.pid}
  - name: web
    contents: x
    destination: /secrethub/secrets/web
    reload:
      http: {url: "http://127.0.0.1:8080/-/reload"}
listener:
  unix_socket: /run/secrethub/agent.sock
  client_ca_file: /etc/secrethub/clients-ca.pem
init_marker: /secrethub/.rendered
`

func TestParseFull(t *testing.T) {
	// The role and secret ID files do not exist: the environment wins, so
	// they are never read.
	c, err := Parse([]byte(fullYAML), credEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Core: Core{
			Addresses:      []string{"https://core-1:4000", "https://core-2:4000"},
			AgentAddresses: []string{"https://core-1:4001"},
			CAFile:         "/etc/secrethub/ca.pem",
		},
		Auth: Auth{
			Method: "approle", RoleIDFile: "/etc/secrethub/role-id", SecretIDFile: "/etc/secrethub/secret-id",
			RemoveSecretIDFile: true, RoleID: "role-1", SecretID: secretMarker,
		},
		StateDir: "/var/lib/secrethub-agent",
		Cache:    Cache{MaxEntries: 50, TTL: Duration(90 * time.Second), Persist: true},
		Templates: []Template{
			{
				Name: "db", Contents: `{{ with secret "secrets/app/db" }}{{ .password }}{{ end }}`,
				Destination: "/secrethub/secrets/db", Perms: "0600", MissingKey: "zero",
				Reload: &Reload{Command: []string{"/bin/sh", "-c", "kill -HUP 1"}, Timeout: Duration(3 * time.Second)},
			},
			{
				Name: "tls.crt", Source: "/etc/secrethub/tls.tmpl", Destination: "/secrethub/secrets/tls.crt",
				Perms: "0640", MissingKey: "error", // defaults
				Reload: &Reload{Signal: &SignalReload{Name: "SIGHUP", PIDFile: "/run/app.pid"}, Timeout: Duration(10 * time.Second)},
			},
			{
				Name: "web", Contents: "x", Destination: "/secrethub/secrets/web", Perms: "0640", MissingKey: "error",
				Reload: &Reload{HTTP: &HTTPReload{URL: "http://127.0.0.1:8080/-/reload", Method: "POST"}, Timeout: Duration(10 * time.Second)},
			},
		},
		Listener:   Listener{UnixSocket: "/run/secrethub/agent.sock", ClientCAFile: "/etc/secrethub/clients-ca.pem"},
		InitMarker: "/secrethub/.rendered",
	}
	if !reflect.DeepEqual(c, want) {
		got, _ := json.MarshalIndent(c, "", " ")
		exp, _ := json.MarshalIndent(want, "", " ")
		t.Fatalf("got\n%s\nwant\n%s", got, exp)
	}
	if m := c.Templates[0].Mode(); m != 0o600 {
		t.Errorf("Mode() = %o, want 600", m)
	}
	if m := c.Templates[1].Mode(); m != 0o640 {
		t.Errorf("default Mode() = %o, want 640", m)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(`
core: {addresses: ["http://127.0.0.1:4000"]}
templates: [{name: a, contents: x, destination: /out/a, reload: {command: [true]}}]
`), credEnv)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct{ got, want any }{
		"auth.method":        {c.Auth.Method, "approle"},
		"cache.max_entries":  {c.Cache.MaxEntries, 1000},
		"cache.ttl":          {time.Duration(c.Cache.TTL), 5 * time.Minute},
		"cache.persist":      {c.Cache.Persist, false},
		"perms":              {c.Templates[0].Perms, "0640"},
		"missing_key":        {c.Templates[0].MissingKey, "error"},
		"reload.timeout":     {time.Duration(c.Templates[0].Reload.Timeout), 10 * time.Second},
		"state_dir (unset)":  {c.StateDir, ""},
		"listener (unset)":   {c.Listener, Listener{}},
		"init_marker(unset)": {c.InitMarker, ""},
	}
	for name, tc := range tests {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %v, want %v", name, tc.got, tc.want)
		}
	}
}

func TestEnvAndCredentialFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	roleFile := write("role-id", "  role-from-file\n")
	secretFile := write("secret-id", "\n"+secretMarker+"-file\n\n")
	emptyFile := write("empty", " \n\t")
	bigFile := write("big", strings.Repeat("x", maxCredentialFileBytes+1))
	missing := filepath.Join(dir, "missing")

	doc := func(role, secret string) string {
		return fmt.Sprintf("core: {addresses: [\"https://core:4000\"]}\nauth: {role_id_file: %q, secret_id_file: %q}\n", role, secret)
	}
	removeDoc := func(role, secret string) string {
		return fmt.Sprintf("core: {addresses: [\"https://core:4000\"]}\nauth: {role_id_file: %q, secret_id_file: %q, remove_secret_id_file: true}\n", role, secret)
	}
	tests := map[string]struct {
		doc          string
		env          map[string]string
		wantAddrs    []string
		wantRole     string
		wantSecret   string
		wantFromFile bool
		wantErr      string // substring; "" means success
	}{
		"files read and trimmed": {
			doc: doc(roleFile, secretFile), wantAddrs: []string{"https://core:4000"},
			wantRole: "role-from-file", wantSecret: secretMarker + "-file", wantFromFile: true,
		},
		"env wins over files, which are then not read": {
			doc: doc(missing, missing), env: map[string]string{EnvRoleID: " role-env ", EnvSecretID: secretMarker},
			wantAddrs: []string{"https://core:4000"}, wantRole: "role-env", wantSecret: secretMarker,
		},
		"env wins over a secret file that is to be removed": {
			doc: removeDoc(roleFile, secretFile), env: map[string]string{EnvSecretID: secretMarker},
			wantAddrs: []string{"https://core:4000"}, wantRole: "role-from-file", wantSecret: secretMarker,
		},
		"secret file to be removed, still there": {
			doc: removeDoc(roleFile, secretFile), wantAddrs: []string{"https://core:4000"},
			wantRole: "role-from-file", wantSecret: secretMarker + "-file", wantFromFile: true,
		},
		"secret file removed by an earlier login: no secret ID, no error": {
			doc: removeDoc(roleFile, missing), wantAddrs: []string{"https://core:4000"}, wantRole: "role-from-file",
		},
		"secret file to be removed is a directory": {
			doc: removeDoc(roleFile, dir), wantErr: "auth.secret_id_file: " + fmt.Sprintf("%q", dir) + ": not a regular file",
		},
		"empty env counts as unset": {
			doc: doc(roleFile, secretFile), env: map[string]string{EnvRoleID: "", EnvSecretID: "  ", EnvCoreURL: ""},
			wantAddrs: []string{"https://core:4000"}, wantRole: "role-from-file", wantSecret: secretMarker + "-file", wantFromFile: true,
		},
		"core url env replaces addresses, comma-separated": {
			doc: doc(roleFile, secretFile), env: map[string]string{EnvCoreURL: " https://a:4000, ,http://127.0.0.1:4000 "},
			wantAddrs: []string{"https://a:4000", "http://127.0.0.1:4000"}, wantRole: "role-from-file", wantSecret: secretMarker + "-file",
			wantFromFile: true,
		},
		"core url env alone is enough": {
			doc: "auth: {}\n", env: map[string]string{EnvCoreURL: "https://a:4000", EnvRoleID: "r", EnvSecretID: secretMarker},
			wantAddrs: []string{"https://a:4000"}, wantRole: "r", wantSecret: secretMarker,
		},
		"bad core url from env is named like the field": {
			doc: doc(roleFile, secretFile), env: map[string]string{EnvCoreURL: "https://a:4000,http://core-2:4000"},
			wantErr: `core.addresses[1]: "http://core-2:4000": want https:// or http:// (http only on loopback)`,
		},
		"missing secret file": {
			doc: doc(roleFile, missing), wantErr: `auth.secret_id_file: "` + missing + `": no such file or directory`,
		},
		"empty role file": {
			doc: doc(emptyFile, secretFile), wantErr: `auth.role_id_file: "` + emptyFile + `": empty`,
		},
		"oversized secret file": {
			doc: doc(roleFile, bigFile), wantErr: "auth.secret_id_file: " + fmt.Sprintf("%q", bigFile) + ": larger than 4096 bytes",
		},
		"secret file is a directory": {
			doc: doc(roleFile, dir), wantErr: "auth.secret_id_file: " + fmt.Sprintf("%q", dir) + ": not a regular file",
		},
		"device is refused, not read forever": {
			doc: doc("/dev/zero", secretFile), wantErr: `auth.role_id_file: "/dev/zero": not a regular file`,
		},
		"relative credential file": {
			doc: doc("role-id", secretFile), wantErr: `auth.role_id_file: "role-id": must be absolute`,
		},
		"no credentials at all": {
			doc:     "core: {addresses: [\"https://core:4000\"]}\n",
			wantErr: "auth.role_id: missing: set auth.role_id_file or SECRETHUB_ROLE_ID\nauth.secret_id: missing: set auth.secret_id_file or SECRETHUB_SECRET_ID",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := Parse([]byte(tc.doc), envMap(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), secretMarker) {
					t.Fatalf("error shows the secret ID: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Core.Addresses, tc.wantAddrs) {
				t.Errorf("addresses = %q, want %q", c.Core.Addresses, tc.wantAddrs)
			}
			if c.Auth.RoleID != tc.wantRole {
				t.Errorf("role ID = %q, want %q", c.Auth.RoleID, tc.wantRole)
			}
			if string(c.Auth.SecretID) != tc.wantSecret {
				t.Errorf("secret ID mismatch (len %d, want len %d)", len(c.Auth.SecretID), len(tc.wantSecret))
			}
			if c.Auth.SecretIDFromFile != tc.wantFromFile {
				t.Errorf("SecretIDFromFile = %v, want %v", c.Auth.SecretIDFromFile, tc.wantFromFile)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(p, []byte(fullYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p, credEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Templates) != 3 {
		t.Fatalf("templates = %d, want 3", len(c.Templates))
	}
	_, err = Load(filepath.Join(dir, "nope.yaml"), credEnv)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: err = %v, want fs.ErrNotExist", err)
	}
	if err := os.WriteFile(p, []byte("core: {adresses: []}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(p, credEnv)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), `"adresses"`) {
		t.Fatalf("err = %v, want the file and the unknown field named", err)
	}
}

// TestDecodeErrors covers problems the decoder finds.
func TestDecodeErrors(t *testing.T) {
	tests := map[string]struct {
		doc     string
		wantErr string
	}{
		"unknown top-level field":   {"core: {}\nstate_dri: /x\n", `unknown field "state_dri"`},
		"unknown nested field":      {"cache: {max_entires: 3}\n", `unknown field "max_entires"`},
		"unknown field in template": {"templates: [{name: a, destinaton: /x}]\n", `unknown field "destinaton"`},
		"duplicate key":             {"state_dir: /a\nstate_dir: /b\n", `key "state_dir" already set`},
		"inline secret id refused with a hint, value not shown": {
			"auth: {secret_id: " + secretMarker + "}\n",
			`unknown field "secret_id" (auth.secret_id is not read from the config file: set auth.secret_id_file or SECRETHUB_SECRET_ID)`,
		},
		"inline role id refused with a hint": {
			"auth: {role_id: abc}\n", `set auth.role_id_file or SECRETHUB_ROLE_ID`,
		},
		"bad duration":            {"cache: {ttl: soon}\n", `duration "soon": want a string like "10s" or "5m"`},
		"numeric duration":        {"cache: {ttl: 300}\n", `duration 300: want a string like`},
		"wrong type":              {"cache: {max_entries: lots}\n", "cannot unmarshal"},
		"not yaml":                {"core: [\n", "yaml"},
		"a list, not a map":       {"- a\n- b\n", "cannot unmarshal"},
		"addresses not a list":    {"core: {addresses: https://x}\n", "cannot unmarshal"},
		"command not a list":      {"templates: [{reload: {command: 'kill -HUP 1'}}]\n", "cannot unmarshal"},
		"empty document is valid": {"", "core.addresses: missing"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), credEnv)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), secretMarker) {
				t.Fatalf("error shows the secret ID: %v", err)
			}
		})
	}
}

// valid returns a valid, defaulted configuration for Validate tests to
// break one field at a time.
func valid() *Config {
	c := &Config{
		Core: Core{Addresses: []string{"https://core-1:4000"}, AgentAddresses: []string{"https://core-1:4001"}},
		Auth: Auth{RoleID: "r", SecretID: secretMarker, SecretIDFile: "/etc/secret-id"},
		Templates: []Template{
			{Name: "a", Contents: "x", Destination: "/out/a"},
			{Name: "b", Source: "/in/b.tmpl", Destination: "/out/b", Reload: &Reload{Command: []string{"true"}}},
		},
	}
	c.FillDefaults()
	return c
}

// kube returns a mutation that switches a valid config to method
// kubernetes, then applies more.
func kube(more func(a *Auth)) func(c *Config) {
	return func(c *Config) {
		c.Auth = Auth{Method: AuthKubernetes, Role: "web", TokenFile: DefaultKubernetesTokenFile, Mount: DefaultKubernetesMount}
		if more != nil {
			more(&c.Auth)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := map[string]struct {
		mutate  func(c *Config)
		wantErr string // "" means valid
	}{
		"valid as is": {func(c *Config) {}, ""},
		"ca_pem without a certificate": {func(c *Config) { c.Core.CAPEM = "-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n" },
			"core.ca_pem: holds no PEM certificate"},
		"ca_pem and ca_file": {func(c *Config) { c.Core.CAPEM, c.Core.CAFile = "x", "/etc/ca.pem" },
			"core.ca_pem: set either core.ca_file or core.ca_pem, not both"},
		"http on loopback": {func(c *Config) {
			c.Core.Addresses = []string{"http://127.0.0.1:4000", "http://localhost:4000", "http://[::1]:4000/"}
		}, ""},
		"no core address": {func(c *Config) { c.Core.Addresses = nil },
			"core.addresses: missing: set core.addresses or SECRETHUB_CORE_URL"},
		"ftp address": {func(c *Config) { c.Core.Addresses = []string{"ftp://x"} },
			`core.addresses[0]: "ftp://x": want https:// or http:// (http only on loopback)`},
		"http off loopback": {func(c *Config) { c.Core.Addresses = []string{"https://a", "http://10.0.0.1:4000"} },
			`core.addresses[1]: "http://10.0.0.1:4000": want https:// or http:// (http only on loopback)`},
		"no scheme": {func(c *Config) { c.Core.Addresses = []string{"core:4000"} },
			`core.addresses[0]: "core:4000": want https://`},
		"no host": {func(c *Config) { c.Core.Addresses = []string{"https://"} },
			`core.addresses[0]: "https:": no host`},
		"unparsable": {func(c *Config) { c.Core.Addresses = []string{"https://a b:%zz"} },
			`core.addresses[0]: not a URL`},
		"password in URL not shown": {func(c *Config) { c.Core.Addresses = []string{"https://u:hunter2@core:4000"} },
			`core.addresses[0]: "https://u:xxxxx@core:4000": credentials do not belong in the URL`},
		"path": {func(c *Config) { c.Core.Addresses = []string{"https://core:4000/v1"} },
			`core.addresses[0]: "https://core:4000/v1": want a base URL without a path`},
		"query": {func(c *Config) { c.Core.Addresses = []string{"https://core:4000?x=1"} },
			`want a base URL without query or fragment`},
		"bad port": {func(c *Config) { c.Core.Addresses = []string{"https://core:99999"} },
			`core.addresses[0]: "https://core:99999": port must be 1-65535`},
		"duplicate address": {func(c *Config) { c.Core.Addresses = []string{"https://a:1", "https://a:1"} },
			`core.addresses[1]: "https://a:1": duplicate`},
		"agent address must be https even on loopback": {func(c *Config) { c.Core.AgentAddresses = []string{"http://127.0.0.1:4001"} },
			`core.agent_addresses[0]: "http://127.0.0.1:4001": want https://`},
		"relative ca file": {func(c *Config) { c.Core.CAFile = "ca.pem" },
			`core.ca_file: "ca.pem": must be absolute`},

		"unknown method": {func(c *Config) { c.Auth.Method = "token" }, `auth.method: "token": want approle or kubernetes`},
		"kubernetes field with approle": {func(c *Config) { c.Auth.Role = "web"; c.Auth.Mount = "k8s" },
			"auth.role: only for auth.method kubernetes\nauth.mount: only for auth.method kubernetes"},
		"kubernetes":                   {kube(nil), ""},
		"kubernetes mount with a path": {kube(func(a *Auth) { a.Mount = "k8s/cluster-1" }), ""},
		"kubernetes without role": {kube(func(a *Auth) { a.Role = "" }),
			"auth.role: missing: the core's Kubernetes auth role to log in with"},
		"kubernetes bad role": {kube(func(a *Auth) { a.Role = "web/x" }),
			`auth.role: "web/x": want 1 to 128 letters, digits, '_', '.' or '-'`},
		"kubernetes relative token file": {kube(func(a *Auth) { a.TokenFile = "token" }),
			`auth.token_file: "token": must be absolute`},
		"kubernetes no token file": {kube(func(a *Auth) { a.TokenFile = "" }),
			"auth.token_file: missing: the service account token file"},
		"kubernetes bad mount": {kube(func(a *Auth) { a.Mount = "/k8s" }),
			`auth.mount: "/k8s": want the path below auth/ where the core mounts the method, like kubernetes`},
		"kubernetes dot-dot mount": {kube(func(a *Auth) { a.Mount = "k8s/../sys" }),
			`auth.mount: "k8s/../sys"`},
		"kubernetes with approle files": {kube(func(a *Auth) { a.RoleIDFile = "/r"; a.SecretIDFile = "/s"; a.RemoveSecretIDFile = true }),
			"auth.role_id_file: only for auth.method approle\nauth.secret_id_file: only for auth.method approle\nauth.remove_secret_id_file: only for auth.method approle"},
		"no role id":   {func(c *Config) { c.Auth.RoleID = "" }, "auth.role_id: missing: set auth.role_id_file or SECRETHUB_ROLE_ID"},
		"no secret id": {func(c *Config) { c.Auth.SecretID = "" }, "auth.secret_id: missing: set auth.secret_id_file or SECRETHUB_SECRET_ID"},
		"remove without file": {func(c *Config) { c.Auth.RemoveSecretIDFile = true; c.Auth.SecretIDFile = "" },
			"auth.remove_secret_id_file: set without auth.secret_id_file"},

		"relative state dir":    {func(c *Config) { c.StateDir = "state" }, `state_dir: "state": must be absolute`},
		"negative max entries":  {func(c *Config) { c.Cache.MaxEntries = -1 }, "cache.max_entries: -1: must be positive"},
		"negative ttl":          {func(c *Config) { c.Cache.TTL = Duration(-time.Second) }, "cache.ttl: -1s: must be positive"},
		"persist without state": {func(c *Config) { c.Cache.Persist = true }, "cache.persist: needs state_dir"},
		"persist with state":    {func(c *Config) { c.Cache.Persist = true; c.StateDir = "/var/lib/a" }, ""},

		"relative destination": {func(c *Config) { c.Templates[1].Destination = "out/b" },
			`templates[1].destination: "out/b": must be absolute`},
		"unclean destination": {func(c *Config) { c.Templates[1].Destination = "/out/../etc/b" },
			`templates[1].destination: "/out/../etc/b": not clean; want "/etc/b"`},
		"missing destination": {func(c *Config) { c.Templates[0].Destination = "" }, "templates[0].destination: missing"},
		"duplicate destination": {func(c *Config) { c.Templates[1].Destination = "/out/a" },
			`templates[1].destination: "/out/a": duplicate of templates[0].destination`},
		"destination is init marker": {func(c *Config) { c.InitMarker = "/out/a" },
			`templates[0].destination: "/out/a": same file as init_marker`},
		"duplicate name": {func(c *Config) { c.Templates[1].Name = "a" },
			`templates[1].name: "a": duplicate of templates[0].name`},
		"missing name": {func(c *Config) { c.Templates[0].Name = "" }, "templates[0].name: missing"},
		"bad name":     {func(c *Config) { c.Templates[0].Name = "a/b" }, `templates[0].name: "a/b": want 1-63 letters`},
		"both contents and source": {func(c *Config) { c.Templates[0].Source = "/in/a" },
			"templates[0]: set exactly one of contents and source (both are set)"},
		"neither contents nor source": {func(c *Config) { c.Templates[1].Source = "" },
			"templates[1]: set exactly one of contents and source (neither is set)"},
		"relative source": {func(c *Config) { c.Templates[1].Source = "b.tmpl" },
			`templates[1].source: "b.tmpl": must be absolute`},
		"perms not octal": {func(c *Config) { c.Templates[0].Perms = "0689" },
			`templates[0].perms: "0689": want a quoted octal mode with a leading zero`},
		"perms as YAML read an unquoted 0640": {func(c *Config) { c.Templates[0].Perms = "416" },
			`templates[0].perms: "416": want a quoted octal mode`},
		"perms group write": {func(c *Config) { c.Templates[0].Perms = "0660" },
			`templates[0].perms: "0660": group or other write is not allowed`},
		"perms other write": {func(c *Config) { c.Templates[0].Perms = "0602" },
			`templates[0].perms: "0602": group or other write is not allowed`},
		"perms setuid": {func(c *Config) { c.Templates[0].Perms = "04640" },
			`templates[0].perms: "04640": want a quoted octal mode`},
		"perms 0400 ok": {func(c *Config) { c.Templates[0].Perms = "0400" }, ""},
		"missing key": {func(c *Config) { c.Templates[0].MissingKey = "default" },
			`templates[0].missing_key: "default": want error or zero`},

		"two reload kinds": {func(c *Config) {
			c.Templates[1].Reload.Signal = &SignalReload{Name: "SIGHUP", PIDFile: "/run/a.pid"}
		}, "templates[1].reload: set exactly one of command, signal and http (2 set)"},
		"no reload kind": {func(c *Config) { c.Templates[1].Reload = &Reload{Timeout: Duration(time.Second)} },
			"templates[1].reload: set exactly one of command, signal and http (0 set)"},
		"empty command": {func(c *Config) { c.Templates[1].Reload.Command = []string{} },
			"templates[1].reload.command: want a non-empty argv"},
		"empty argv0": {func(c *Config) { c.Templates[1].Reload.Command = []string{"", "x"} },
			"templates[1].reload.command: want a non-empty argv"},
		"unknown signal": {func(c *Config) {
			c.Templates[1].Reload = &Reload{Signal: &SignalReload{Name: "SIGFOO", PIDFile: "/run/a.pid"}, Timeout: Duration(time.Second)}
		}, `templates[1].reload.signal.name: "SIGFOO": unknown signal`},
		"signal without pid file": {func(c *Config) {
			c.Templates[1].Reload = &Reload{Signal: &SignalReload{Name: "HUP"}, Timeout: Duration(time.Second)}
		}, "templates[1].reload.signal.pid_file: missing"},
		"http remote refused": {func(c *Config) {
			c.Templates[1].Reload = &Reload{HTTP: &HTTPReload{URL: "http://app.internal/reload", Method: "POST"}, Timeout: Duration(time.Second)}
		}, `templates[1].reload.http.url: "http://app.internal/reload": host is not loopback; reloads reach only this machine unless allow_remote is true`},
		"http remote allowed": {func(c *Config) {
			c.Templates[1].Reload = &Reload{HTTP: &HTTPReload{URL: "https://app.internal/reload", Method: "PUT", AllowRemote: true}, Timeout: Duration(time.Second)}
		}, ""},
		"http bad scheme": {func(c *Config) {
			c.Templates[1].Reload = &Reload{HTTP: &HTTPReload{URL: "unix:///run/a.sock", Method: "POST"}, Timeout: Duration(time.Second)}
		}, `templates[1].reload.http.url: "unix:///run/a.sock": want http:// or https://`},
		"http bad method": {func(c *Config) {
			c.Templates[1].Reload = &Reload{HTTP: &HTTPReload{URL: "http://127.0.0.1/r", Method: "DELETE"}, Timeout: Duration(time.Second)}
		}, `templates[1].reload.http.method: "DELETE": want GET, POST or PUT`},
		"timeout too long": {func(c *Config) { c.Templates[1].Reload.Timeout = Duration(time.Hour) },
			"templates[1].reload.timeout: 1h0m0s: at most 10m0s"},
		"negative timeout": {func(c *Config) { c.Templates[1].Reload.Timeout = Duration(-time.Second) },
			"templates[1].reload.timeout: -1s: must be positive"},

		"socket without client CA": {func(c *Config) { c.Listener.UnixSocket = "/run/a.sock" },
			"listener.client_ca_file: missing: required with listener.unix_socket"},
		"client CA without socket": {func(c *Config) { c.Listener.ClientCAFile = "/etc/ca.pem" },
			"listener.unix_socket: missing"},
		"relative socket": {func(c *Config) { c.Listener = Listener{UnixSocket: "a.sock", ClientCAFile: "/ca.pem"} },
			`listener.unix_socket: "a.sock": must be absolute`},
		"listener with its own certificate": {func(c *Config) {
			c.Listener = Listener{UnixSocket: "/run/a.sock", ClientCAFile: "/ca.pem", TLSCertFile: "/tls.crt", TLSKeyFile: "/tls.key"}
		}, ""},
		"listener cert without key": {func(c *Config) {
			c.Listener = Listener{UnixSocket: "/run/a.sock", ClientCAFile: "/ca.pem", TLSCertFile: "/tls.crt"}
		}, "listener.tls_key_file: missing: set both listener.tls_cert_file and listener.tls_key_file, or neither"},
		"listener key without cert": {func(c *Config) {
			c.Listener = Listener{UnixSocket: "/run/a.sock", ClientCAFile: "/ca.pem", TLSKeyFile: "/tls.key"}
		}, "listener.tls_cert_file: missing: set both"},
		"relative listener cert": {func(c *Config) {
			c.Listener = Listener{UnixSocket: "/run/a.sock", ClientCAFile: "/ca.pem", TLSCertFile: "tls.crt", TLSKeyFile: "/tls.key"}
		}, `listener.tls_cert_file: "tls.crt": must be absolute`},
		"listener cert without socket": {func(c *Config) { c.Listener = Listener{TLSCertFile: "/tls.crt", TLSKeyFile: "/tls.key"} },
			"listener.unix_socket: missing: listener.tls_cert_file is set without a socket"},
		"secret id file removed after login": {func(c *Config) { c.Auth.SecretID = ""; c.Auth.RemoveSecretIDFile = true }, ""},
		"relative init marker":               {func(c *Config) { c.InitMarker = ".rendered" }, `init_marker: ".rendered": must be absolute`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := valid()
			tc.mutate(c)
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tc.wantErr)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err %v is not a *FieldError", err)
			}
			if strings.Contains(err.Error(), secretMarker) || strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error shows a secret: %v", err)
			}
		})
	}
}

// TestValidateReportsEveryProblem checks that one Validate call names all
// the broken fields, not only the first.
func TestValidateReportsEveryProblem(t *testing.T) {
	c := valid()
	c.Core.Addresses = nil
	c.Templates[0].Perms = "0777"
	c.Templates[1].Destination = "rel"
	err := c.Validate()
	for _, want := range []string{"core.addresses:", "templates[0].perms:", "templates[1].destination:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to contain %q", err, want)
		}
	}
}

func TestParseSignal(t *testing.T) {
	tests := map[string]struct {
		want    syscall.Signal
		wantErr bool
	}{
		"SIGHUP": {want: syscall.SIGHUP}, "HUP": {want: syscall.SIGHUP}, "sighup": {want: syscall.SIGHUP},
		"SIGUSR1": {want: syscall.SIGUSR1}, "USR2": {want: syscall.SIGUSR2}, "SIGTERM": {want: syscall.SIGTERM},
		"SIGKILL": {want: syscall.SIGKILL}, "SIGWINCH": {want: syscall.SIGWINCH},
		"": {wantErr: true}, "SIG": {wantErr: true}, "SIGSTOP": {wantErr: true}, "1": {wantErr: true}, "SIGSIGHUP": {wantErr: true},
	}
	for name, tc := range tests {
		got, err := ParseSignal(name)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v, error %v", name, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestSecretNeverPrinted checks every common way a config ends up in a
// log or an error.
func TestSecretNeverPrinted(t *testing.T) {
	c := valid()
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "auth", c.Auth, "secret", c.Auth.SecretID)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "auth", c.Auth, "secret", c.Auth.SecretID)
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v":    fmt.Sprintf("%v", c),
		"%+v":   fmt.Sprintf("%+v", c),
		"%#v":   fmt.Sprintf("%#v", c),
		"%s":    fmt.Sprintf("%s", c.Auth.SecretID), //lint:ignore S1025 the %s verb itself is under test
		"%q":    fmt.Sprintf("%q", c.Auth.SecretID),
		"%x":    fmt.Sprintf("%x", c.Auth.SecretID),
		"json":  string(js),
		"slog":  logged.String(),
		"json2": mustJSON(t, c.Auth.SecretID),
	}
	for name, out := range outputs {
		if strings.Contains(out, secretMarker) || strings.Contains(out, fmt.Sprintf("%x", secretMarker)) {
			t.Errorf("%s shows the secret ID: %s", name, out)
		}
	}
	if !strings.Contains(outputs["%+v"], "<redacted>") {
		t.Errorf("%%+v = %s, want <redacted> in place of the secret", outputs["%+v"])
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		fullYAML, "", "core: {}", "templates: [{}]", "templates: [{reload: {}}]", "templates: [{reload: {http: {}}}]",
		"cache: {ttl: 1x}", "auth: {role_id_file: /dev/null}", "- 1\n- 2", "{", "core: {addresses: ['http://[::1]:1']}",
		"templates: [{name: a, contents: x, destination: /a, perms: 0640, reload: {signal: {name: HUP, pid_file: /p}}}]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		c, err := Parse(doc, credEnv)
		if err != nil {
			if strings.Contains(err.Error(), secretMarker) {
				t.Fatalf("error shows the secret ID: %v", err)
			}
			return
		}
		// An accepted config is valid, and stays valid after a second pass.
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config Validate refuses: %v", err)
		}
		for _, tp := range c.Templates {
			if m := tp.Mode(); m&0o022 != 0 || m&^0o777 != 0 {
				t.Fatalf("accepted mode %o", m)
			}
		}
	})
}

// TestDocsExample keeps the full example in docs/agent.md loadable.
func TestDocsExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/agent.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	if !ok {
		t.Fatal("docs/agent.md has no yaml block")
	}
	example, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("docs/agent.md: unterminated yaml block")
	}
	c, err := Parse([]byte(example), credEnv)
	if err != nil {
		t.Fatalf("the documented example does not load: %v", err)
	}
	if len(c.Templates) != 1 || c.Templates[0].Reload == nil || len(c.Templates[0].Reload.Command) != 3 {
		t.Fatalf("example parsed to %+v", c.Templates)
	}
}

func TestParseKubernetes(t *testing.T) {
	// The AppRole variables of the environment mean nothing to method
	// kubernetes; the token file is not read at load.
	c, err := Parse([]byte("core:\n  addresses: [\"https://core:4000\"]\nauth:\n  method: kubernetes\n  role: web\n"), credEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := Auth{Method: AuthKubernetes, Role: "web", TokenFile: DefaultKubernetesTokenFile, Mount: DefaultKubernetesMount}
	if !reflect.DeepEqual(c.Auth, want) {
		t.Fatalf("auth %+v, want %+v", c.Auth, want)
	}
	c, err = Parse([]byte("core:\n  addresses: [\"https://core:4000\"]\nauth:\n  method: kubernetes\n  role: web\n  token_file: /var/run/secrets/kubernetes.io/serviceaccount/token\n  mount: k8s/prod\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth.TokenFile != "/var/run/secrets/kubernetes.io/serviceaccount/token" || c.Auth.Mount != "k8s/prod" {
		t.Fatalf("auth %+v", c.Auth)
	}
	_, err = Parse([]byte("core:\n  addresses: [\"https://core:4000\"]\nauth:\n  method: kubernetes\n  jwt: abc\n"), nil)
	if err == nil || !strings.Contains(err.Error(), `unknown field "auth.jwt"`) && !strings.Contains(err.Error(), `unknown field "jwt"`) {
		t.Fatalf("a JWT in the file: %v, want unknown field", err)
	}
}
