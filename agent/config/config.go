// Package config reads the SecretHub agent's configuration: a YAML (or
// JSON) file given with -config, overridden by a few environment
// variables, with defaults filled in and every field checked.
//
// Load is the entry point. Unknown fields are errors naming the field, so a
// typo never falls back silently to a default; Validate names the field
// path of every problem it finds ("templates[1].destination: must be
// absolute"). The AppRole role ID and secret ID never live in the file
// itself: they come from files the config names or from the environment,
// and no error ever quotes them.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/secrethub/secrethub/agent/render"
)

// Environment variables that override the configuration file. A variable
// set to the empty string counts as unset.
const (
	// EnvCoreURL holds one or more core REST addresses, comma-separated;
	// it replaces core.addresses.
	EnvCoreURL = "SECRETHUB_CORE_URL"
	// EnvRoleID holds the AppRole role ID; it wins over auth.role_id_file.
	EnvRoleID = "SECRETHUB_ROLE_ID"
	// EnvSecretID holds the AppRole secret ID; it wins over
	// auth.secret_id_file.
	EnvSecretID = "SECRETHUB_SECRET_ID"
)

// Defaults filled in by Load (and FillDefaults).
const (
	DefaultAuthMethod      = AuthAppRole
	DefaultCacheMaxEntries = 1000
	DefaultCacheTTL        = 5 * time.Minute
	DefaultPerms           = "0640"
	DefaultMissingKey      = MissingKeyError
	DefaultReloadTimeout   = 10 * time.Second
	DefaultHTTPMethod      = "POST"
	// DefaultKubernetesTokenFile is where the agent reads its service
	// account token for auth.method kubernetes: a projected token volume
	// with the audience of the core's role.
	DefaultKubernetesTokenFile = "/var/run/secrets/tokens/secrethub"
	// DefaultKubernetesMount is the core's mount of the Kubernetes auth
	// method, below auth/.
	DefaultKubernetesMount = "kubernetes"
)

// Auth methods.
const (
	AuthAppRole = "approle"
	// AuthKubernetes logs in with the pod's service account token.
	AuthKubernetes = "kubernetes"
)

// Values of Template.MissingKey: the renderer's own (agent/render), so
// the two never drift apart.
const (
	// MissingKeyError fails the render when a template reads a key the
	// secret does not have.
	MissingKeyError = render.MissingKeyError
	// MissingKeyZero renders the zero value (an empty string) instead.
	MissingKeyZero = render.MissingKeyZero
)

// maxCredentialFileBytes bounds role_id_file and secret_id_file: both
// hold one short line, and a bound keeps a wrong path (a device, a log)
// from being read whole.
const maxCredentialFileBytes = 4096

// Config is the agent's configuration.
type Config struct {
	// Core says where the core is.
	Core Core `json:"core"`
	// Auth says how the agent logs in to the core.
	Auth Auth `json:"auth"`
	// StateDir holds the agent's private key, its certificate and the
	// persisted cache. Optional; required when cache.persist is true.
	StateDir string `json:"state_dir,omitempty"`
	// Cache sizes the in-memory secret cache.
	Cache Cache `json:"cache"`
	// Templates are rendered into files.
	Templates []Template `json:"templates,omitempty"`
	// TemplateSources are core paths that hold more templates, as
	// {"templates": [...]} in this file's template format (the operator
	// stores each AgentTemplate so). The agent reads them before its first
	// render and follows their changes; a template there may not use
	// source. Optional; at most 16.
	TemplateSources []string `json:"template_sources,omitempty"`
	// Listener serves secrets to local applications. Optional.
	Listener Listener `json:"listener"`
	// RevokeLeasesOnShutdown revokes the leases of the dynamic credentials
	// the agent rendered when it stops (SIGTERM), so they do not outlive
	// the workload. Default false: they expire at the end of their TTL.
	RevokeLeasesOnShutdown bool `json:"revoke_leases_on_shutdown,omitempty"`
	// InitMarker, when set, is a file written after the first full render
	// of every template (a Kubernetes startup probe checks it). Optional.
	InitMarker string `json:"init_marker,omitempty"`
}

// Core says where the core is.
type Core struct {
	// Addresses are the core's REST base URLs, tried in order
	// (env SECRETHUB_CORE_URL, comma-separated, replaces them). https://,
	// or http:// on a loopback host only. Required.
	Addresses []string `json:"addresses,omitempty"`
	// AgentAddresses are the base URLs of the core's agent listener, where
	// the agent holds its mTLS WebSocket (/v1/agent/connect). https://
	// only. Optional.
	AgentAddresses []string `json:"agent_addresses,omitempty"`
	// CAFile is a PEM bundle that verifies the core's REST TLS certificate.
	// Optional: the system roots are used without it.
	CAFile string `json:"ca_file,omitempty"`
	// CAPEM is that PEM bundle inline (the sidecar injector passes the
	// core's CA this way). At most one of CAFile and CAPEM.
	CAPEM string `json:"ca_pem,omitempty"`
}

// Auth says how the agent logs in to the core.
type Auth struct {
	// Method is the login method: "approle" (default) or "kubernetes".
	Method string `json:"method,omitempty"`

	// Role is the core's Kubernetes auth role to log in with. Required for
	// method kubernetes, refused for approle.
	Role string `json:"role,omitempty"`
	// TokenFile is the service account token (a JWT) for method
	// kubernetes. It is read at each login, not at load: the kubelet
	// rotates projected tokens. Default DefaultKubernetesTokenFile.
	TokenFile string `json:"token_file,omitempty"`
	// Mount is where the core mounts the Kubernetes auth method, below
	// auth/ (the login is auth/<mount>/login). Default
	// DefaultKubernetesMount.
	Mount string `json:"mount,omitempty"`

	// RoleIDFile is a file holding the AppRole role ID, read at load and
	// trimmed of surrounding white space. SECRETHUB_ROLE_ID wins over it.
	RoleIDFile string `json:"role_id_file,omitempty"`
	// SecretIDFile is a file holding the AppRole secret ID, read at load
	// and trimmed. SECRETHUB_SECRET_ID wins over it.
	SecretIDFile string `json:"secret_id_file,omitempty"`
	// RemoveSecretIDFile asks that the secret ID file be deleted once the
	// agent has logged in with it (agent/bootstrap does it). Load never
	// deletes anything; with this set, a secret ID file that no longer
	// exists is not an error: the secret ID is then empty, and the agent
	// can start only from a certificate it stored earlier.
	RemoveSecretIDFile bool `json:"remove_secret_id_file,omitempty"`

	// RoleID is the role ID Load found (environment, then file). It is
	// never read from the config file itself.
	RoleID string `json:"-"`
	// SecretID is the secret ID Load found (environment, then file). It is
	// never read from the config file and prints as "<redacted>".
	SecretID Secret `json:"-"`
	// SecretIDFromFile is true when SecretID was read from SecretIDFile
	// (not from SECRETHUB_SECRET_ID): only then may RemoveSecretIDFile
	// delete the file.
	SecretIDFromFile bool `json:"-"`
}

// Cache sizes the agent's secret cache.
type Cache struct {
	// MaxEntries bounds the number of cached secrets. Default 1000.
	MaxEntries int `json:"max_entries,omitempty"`
	// TTL is how long a cached secret is served without the core
	// confirming it. Default 5m.
	TTL Duration `json:"ttl,omitempty"`
	// Persist keeps the cache, encrypted, under state_dir, so the agent
	// can start while the core is unreachable. Default false.
	Persist bool `json:"persist,omitempty"`
}

// Template is one file rendered from secrets.
type Template struct {
	// Name identifies the template in logs and errors; unique; letters,
	// digits, '.', '_' and '-'.
	Name string `json:"name"`
	// Contents is the template text (Go text/template). Exactly one of
	// Contents and Source is set.
	Contents string `json:"contents,omitempty"`
	// Source is an absolute path to a file holding the template text.
	Source string `json:"source,omitempty"`
	// Destination is the absolute path of the rendered file; unique.
	Destination string `json:"destination"`
	// Perms is the rendered file's mode as a quoted octal string with a
	// leading zero, like "0640" (the default). Group and other write are
	// refused. See Mode.
	Perms string `json:"perms,omitempty"`
	// MissingKey is "error" (default) or "zero": what a reference to a key
	// the secret lacks does.
	MissingKey string `json:"missing_key,omitempty"`
	// Reload, when set, runs after the file's content changes.
	Reload *Reload `json:"reload,omitempty"`
}

// Mode returns Perms as a file mode. It is meaningful once Validate has
// accepted the config; an unparsable Perms gives DefaultPerms' mode.
func (t Template) Mode() fs.FileMode {
	m, err := parsePerms(t.Perms)
	if err != nil {
		m, _ = parsePerms(DefaultPerms)
	}
	return m
}

// Reload tells the application that a file changed. Exactly one of
// Command, Signal and HTTP is set.
type Reload struct {
	// Command is an argv run without a shell (argv[0] is looked up in
	// PATH when it has no slash).
	Command []string `json:"command,omitempty"`
	// Signal sends a signal to the process named by a pid file.
	Signal *SignalReload `json:"signal,omitempty"`
	// HTTP sends a request and wants a 2xx answer.
	HTTP *HTTPReload `json:"http,omitempty"`
	// Timeout bounds a command or HTTP reload. Default 10s.
	Timeout Duration `json:"timeout,omitempty"`
}

// SignalReload sends a signal to a process.
type SignalReload struct {
	// Name is the signal, like "SIGHUP" or "HUP" (see ParseSignal).
	Name string `json:"name"`
	// PIDFile is an absolute path to a file holding the process ID.
	PIDFile string `json:"pid_file"`
}

// HTTPReload sends an HTTP request.
type HTTPReload struct {
	// URL is http:// or https://, on a loopback host unless AllowRemote.
	URL string `json:"url"`
	// Method is GET, POST (default) or PUT.
	Method string `json:"method,omitempty"`
	// AllowRemote lifts the loopback-only default.
	AllowRemote bool `json:"allow_remote,omitempty"`
}

// Listener serves secrets to local applications over a Unix socket with
// mTLS.
type Listener struct {
	// UnixSocket is the socket's absolute path; the socket is made mode
	// 0660. Optional: no listener without it.
	UnixSocket string `json:"unix_socket,omitempty"`
	// ClientCAFile is a PEM bundle that verifies clients' certificates.
	// Required with UnixSocket.
	ClientCAFile string `json:"client_ca_file,omitempty"`
	// TLSCertFile and TLSKeyFile are the listener's own certificate and
	// key (PEM). Optional, both or neither: without them the agent makes
	// an ephemeral self-signed certificate at start, and clients skip
	// verifying it (the socket's file mode authenticates the server).
	TLSCertFile string `json:"tls_cert_file,omitempty"`
	TLSKeyFile  string `json:"tls_key_file,omitempty"`
}

// Secret is a credential read at load. It formats, logs and marshals as
// "<redacted>"; string(s) gives the value.
type Secret string

const redacted = "<redacted>"

// String returns "<redacted>", so %v and %s never show the value.
func (Secret) String() string { return redacted }

// GoString returns "<redacted>", for %#v.
func (Secret) GoString() string { return redacted }

// MarshalJSON marshals "<redacted>".
func (Secret) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// Duration is a time.Duration written as a string such as "10s" or "5m".
type Duration time.Duration

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration %s: want a string like \"10s\" or \"5m\"", truncate(string(b), 40))
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: want a string like \"10s\" or \"5m\"", truncate(s, 40))
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// String formats the duration like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// Load reads the configuration file at path, applies the environment
// (env is os.LookupEnv in production; nil means os.LookupEnv), reads the
// role and secret ID files, fills defaults and validates. The error names
// the file and the field.
func Load(path string, env func(string) (string, bool)) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(raw, env)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse is Load for a document already in memory.
func Parse(raw []byte, env func(string) (string, bool)) (*Config, error) {
	if env == nil {
		env = os.LookupEnv
	}
	var c Config
	if err := yaml.UnmarshalStrict(raw, &c); err != nil {
		return nil, explainDecode(err)
	}
	c.applyEnv(env)
	if c.Auth.Method == AuthKubernetes {
		// The AppRole variables may be set for other agents of the host;
		// they mean nothing to this one.
		c.Auth.RoleID, c.Auth.SecretID = "", ""
	}
	if err := c.readCredentials(env); err != nil {
		return nil, err
	}
	c.FillDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// explainDecode adds a hint to the decoder's error where the cause is a
// known mistake.
func explainDecode(err error) error {
	msg := err.Error()
	for _, f := range []string{"role_id", "secret_id"} {
		if strings.Contains(msg, `unknown field "`+f+`"`) {
			return fmt.Errorf("%w (auth.%s is not read from the config file: set auth.%s_file or %s)",
				err, f, f, map[string]string{"role_id": EnvRoleID, "secret_id": EnvSecretID}[f])
		}
	}
	return err
}

// applyEnv replaces file values with the environment's.
func (c *Config) applyEnv(env func(string) (string, bool)) {
	if v, ok := env(EnvCoreURL); ok && strings.TrimSpace(v) != "" {
		var addrs []string
		for _, a := range strings.Split(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				addrs = append(addrs, a)
			}
		}
		c.Core.Addresses = addrs
	}
	if v, ok := env(EnvRoleID); ok && strings.TrimSpace(v) != "" {
		c.Auth.RoleID = strings.TrimSpace(v)
	}
	if v, ok := env(EnvSecretID); ok && strings.TrimSpace(v) != "" {
		c.Auth.SecretID = Secret(strings.TrimSpace(v))
	}
}

// readCredentials reads the role and secret ID files the environment did
// not replace.
func (c *Config) readCredentials(env func(string) (string, bool)) error {
	if c.Auth.RoleID == "" && c.Auth.RoleIDFile != "" {
		v, err := readCredentialFile("auth.role_id_file", c.Auth.RoleIDFile)
		if err != nil {
			return err
		}
		c.Auth.RoleID = v
	}
	if c.Auth.SecretID == "" && c.Auth.SecretIDFile != "" {
		if c.Auth.RemoveSecretIDFile && isAbs(c.Auth.SecretIDFile) {
			// An earlier start logged in and removed the file: not an error.
			if _, err := os.Lstat(c.Auth.SecretIDFile); errors.Is(err, fs.ErrNotExist) {
				return nil
			}
		}
		v, err := readCredentialFile("auth.secret_id_file", c.Auth.SecretIDFile)
		if err != nil {
			return err
		}
		c.Auth.SecretID = Secret(v)
		c.Auth.SecretIDFromFile = true
	}
	return nil
}

// readCredentialFile reads a small regular file and trims it. Errors name
// the field and the path, never the content.
func readCredentialFile(field, path string) (string, error) {
	if !isAbs(path) {
		return "", &FieldError{Field: field, Detail: fmt.Sprintf("%q: must be absolute", path)}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", &FieldError{Field: field, Detail: describeFSError(path, err)}
	}
	if !fi.Mode().IsRegular() {
		return "", &FieldError{Field: field, Detail: fmt.Sprintf("%q: not a regular file", path)}
	}
	f, err := os.Open(path)
	if err != nil {
		return "", &FieldError{Field: field, Detail: describeFSError(path, err)}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCredentialFileBytes+1))
	if err != nil {
		return "", &FieldError{Field: field, Detail: describeFSError(path, err)}
	}
	if len(b) > maxCredentialFileBytes {
		return "", &FieldError{Field: field, Detail: fmt.Sprintf("%q: larger than %d bytes", path, maxCredentialFileBytes)}
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", &FieldError{Field: field, Detail: fmt.Sprintf("%q: empty", path)}
	}
	return v, nil
}

// describeFSError says what went wrong with a file without the wrapping
// that repeats the path.
func describeFSError(path string, err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Sprintf("%q: %v", path, err)
}

// FillDefaults sets what is unset to its default.
func (c *Config) FillDefaults() {
	if c.Auth.Method == "" {
		c.Auth.Method = DefaultAuthMethod
	}
	if c.Auth.Method == AuthKubernetes {
		if c.Auth.TokenFile == "" {
			c.Auth.TokenFile = DefaultKubernetesTokenFile
		}
		if c.Auth.Mount == "" {
			c.Auth.Mount = DefaultKubernetesMount
		}
	}
	if c.Cache.MaxEntries == 0 {
		c.Cache.MaxEntries = DefaultCacheMaxEntries
	}
	if c.Cache.TTL == 0 {
		c.Cache.TTL = Duration(DefaultCacheTTL)
	}
	fillTemplateDefaults(c.Templates)
}

// fillTemplateDefaults sets what is unset in each template to its default.
func fillTemplateDefaults(list []Template) {
	for i := range list {
		t := &list[i]
		if t.Perms == "" {
			t.Perms = DefaultPerms
		}
		if t.MissingKey == "" {
			t.MissingKey = DefaultMissingKey
		}
		if r := t.Reload; r != nil {
			if r.Timeout == 0 {
				r.Timeout = Duration(DefaultReloadTimeout)
			}
			if r.HTTP != nil && r.HTTP.Method == "" {
				r.HTTP.Method = DefaultHTTPMethod
			}
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
