package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FieldError is one problem with one field. Field is the path from the
// document's root, like "templates[1].destination".
type FieldError struct {
	Field  string
	Detail string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Detail }

// maxReloadTimeout bounds reload.timeout: a reload that takes longer is
// stuck, and a stuck reload holds up the renders after it.
const maxReloadTimeout = 10 * time.Minute

// kubernetesRole is a role name of the core's Kubernetes auth method, and
// mountPath a mount below auth/ (segments without the leading auth/).
var (
	kubernetesRole = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
	mountPath      = regexp.MustCompile(`^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$`)
)

var templateName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// permsPattern is a quoted octal mode with a leading zero. The leading
// zero is required because YAML reads an unquoted 0640 as the number 416,
// which would otherwise pass as the mode 0416.
var permsPattern = regexp.MustCompile(`^0[0-7]{3}$`)

// Validate checks the configuration (defaults already filled) and returns
// every problem found, joined; each is a *FieldError naming its field. It
// does no I/O.
func (c *Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
	}

	// core
	if len(c.Core.Addresses) == 0 {
		add("core.addresses", "missing: set core.addresses or %s", EnvCoreURL)
	}
	checkURLs := func(field string, urls []string, allowHTTP bool) {
		seen := map[string]bool{}
		for i, a := range urls {
			f := fmt.Sprintf("%s[%d]", field, i)
			shown, err := checkBaseURL(a, allowHTTP)
			if err != nil {
				add(f, "%s", err)
				continue
			}
			if seen[shown] {
				add(f, "%q: duplicate", shown)
			}
			seen[shown] = true
		}
	}
	checkURLs("core.addresses", c.Core.Addresses, true)
	checkURLs("core.agent_addresses", c.Core.AgentAddresses, false)
	checkPath := func(field, p string) {
		if p != "" && !isAbs(p) {
			add(field, "%q: must be absolute", p)
		}
	}
	checkPath("core.ca_file", c.Core.CAFile)
	switch {
	case c.Core.CAPEM != "" && c.Core.CAFile != "":
		add("core.ca_pem", "set either core.ca_file or core.ca_pem, not both")
	case c.Core.CAPEM != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(c.Core.CAPEM)):
		add("core.ca_pem", "holds no PEM certificate")
	}

	// auth
	switch c.Auth.Method {
	case AuthAppRole:
		if c.Auth.RoleID == "" {
			add("auth.role_id", "missing: set auth.role_id_file or %s", EnvRoleID)
		}
		// With remove_secret_id_file the file may be gone after the first
		// login; the agent then starts from its stored certificate.
		if c.Auth.SecretID == "" && !(c.Auth.RemoveSecretIDFile && c.Auth.SecretIDFile != "") {
			add("auth.secret_id", "missing: set auth.secret_id_file or %s", EnvSecretID)
		}
		for _, f := range []struct{ name, value string }{{"auth.role", c.Auth.Role}, {"auth.token_file", c.Auth.TokenFile}, {"auth.mount", c.Auth.Mount}} {
			if f.value != "" {
				add(f.name, "only for auth.method kubernetes")
			}
		}
	case AuthKubernetes:
		switch {
		case c.Auth.Role == "":
			add("auth.role", "missing: the core's Kubernetes auth role to log in with")
		case !kubernetesRole.MatchString(c.Auth.Role):
			add("auth.role", "%q: want 1 to 128 letters, digits, '_', '.' or '-'", truncate(c.Auth.Role, 40))
		}
		if c.Auth.TokenFile == "" {
			add("auth.token_file", "missing: the service account token file")
		}
		checkPath("auth.token_file", c.Auth.TokenFile)
		if !mountPath.MatchString(c.Auth.Mount) || strings.Contains("/"+c.Auth.Mount+"/", "/../") || strings.Contains("/"+c.Auth.Mount+"/", "/./") {
			add("auth.mount", "%q: want the path below auth/ where the core mounts the method, like kubernetes", truncate(c.Auth.Mount, 40))
		}
		for _, f := range []struct {
			name  string
			isSet bool
		}{{"auth.role_id_file", c.Auth.RoleIDFile != ""}, {"auth.secret_id_file", c.Auth.SecretIDFile != ""}, {"auth.remove_secret_id_file", c.Auth.RemoveSecretIDFile}} {
			if f.isSet {
				add(f.name, "only for auth.method approle")
			}
		}
	default:
		add("auth.method", "%q: want approle or kubernetes", truncate(c.Auth.Method, 40))
	}
	checkPath("auth.role_id_file", c.Auth.RoleIDFile)
	checkPath("auth.secret_id_file", c.Auth.SecretIDFile)
	if c.Auth.RemoveSecretIDFile && c.Auth.SecretIDFile == "" {
		add("auth.remove_secret_id_file", "set without auth.secret_id_file")
	}

	// state and cache
	checkPath("state_dir", c.StateDir)
	if c.Cache.MaxEntries < 0 {
		add("cache.max_entries", "%d: must be positive", c.Cache.MaxEntries)
	}
	if c.Cache.TTL < 0 {
		add("cache.ttl", "%s: must be positive", c.Cache.TTL)
	}
	if c.Cache.Persist && c.StateDir == "" {
		add("cache.persist", "needs state_dir")
	}

	// templates
	seen := newTemplateSeen()
	errs = append(errs, validateTemplates("templates", c.Templates, seen, c.InitMarker, true)...)
	if len(c.TemplateSources) > maxTemplateSources {
		add("template_sources", "%d sources: at most %d", len(c.TemplateSources), maxTemplateSources)
	}
	sources := map[string]int{}
	for i, p := range c.TemplateSources {
		f := fmt.Sprintf("template_sources[%d]", i)
		if err := CheckCorePath(p); err != nil {
			add(f, "%q: %s", truncate(p, 70), err)
			continue
		}
		if j, dup := sources[p]; dup {
			add(f, "%q: duplicate of template_sources[%d]", p, j)
		}
		sources[p] = i
	}

	// listener
	checkPath("listener.unix_socket", c.Listener.UnixSocket)
	checkPath("listener.client_ca_file", c.Listener.ClientCAFile)
	if c.Listener.UnixSocket != "" && c.Listener.ClientCAFile == "" {
		add("listener.client_ca_file", "missing: required with listener.unix_socket (clients authenticate with mTLS)")
	}
	if c.Listener.UnixSocket == "" && c.Listener.ClientCAFile != "" {
		add("listener.unix_socket", "missing: listener.client_ca_file is set without a socket")
	}
	checkPath("listener.tls_cert_file", c.Listener.TLSCertFile)
	checkPath("listener.tls_key_file", c.Listener.TLSKeyFile)
	if (c.Listener.TLSCertFile == "") != (c.Listener.TLSKeyFile == "") {
		if c.Listener.TLSCertFile == "" {
			add("listener.tls_cert_file", "missing: set both listener.tls_cert_file and listener.tls_key_file, or neither")
		} else {
			add("listener.tls_key_file", "missing: set both listener.tls_cert_file and listener.tls_key_file, or neither")
		}
	}
	if c.Listener.UnixSocket == "" && c.Listener.TLSCertFile != "" {
		add("listener.unix_socket", "missing: listener.tls_cert_file is set without a socket")
	}
	checkPath("init_marker", c.InitMarker)

	return errors.Join(errs...)
}

// validate checks one reload block; f is its field path.
func (r *Reload) validate(f string) []error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
	}
	kinds := 0
	if r.Command != nil {
		kinds++
	}
	if r.Signal != nil {
		kinds++
	}
	if r.HTTP != nil {
		kinds++
	}
	if kinds != 1 {
		add(f, "set exactly one of command, signal and http (%d set)", kinds)
	}
	if r.Command != nil {
		if len(r.Command) == 0 || r.Command[0] == "" {
			add(f+".command", "want a non-empty argv, like [\"/bin/sh\", \"-c\", \"kill -HUP 1\"]")
		}
	}
	if s := r.Signal; s != nil {
		if _, err := ParseSignal(s.Name); err != nil {
			add(f+".signal.name", "%s", err)
		}
		switch {
		case s.PIDFile == "":
			add(f+".signal.pid_file", "missing")
		case !isAbs(s.PIDFile):
			add(f+".signal.pid_file", "%q: must be absolute", s.PIDFile)
		}
	}
	if h := r.HTTP; h != nil {
		if err := CheckReloadURL(h.URL, h.AllowRemote); err != nil {
			add(f+".http.url", "%s", err)
		}
		switch h.Method {
		case "GET", "POST", "PUT":
		default:
			add(f+".http.method", "%q: want GET, POST or PUT", truncate(h.Method, 20))
		}
	}
	switch {
	case r.Timeout < 0:
		add(f+".timeout", "%s: must be positive", r.Timeout)
	case time.Duration(r.Timeout) > maxReloadTimeout:
		add(f+".timeout", "%s: at most %s", r.Timeout, maxReloadTimeout)
	}
	return errs
}

// parsePerms reads a mode like "0640" and refuses group or other write.
func parsePerms(s string) (fs.FileMode, error) {
	if !permsPattern.MatchString(s) {
		return 0, fmt.Errorf("%q: want a quoted octal mode with a leading zero, like \"0640\" (unquoted, YAML reads 0640 as the number 416)", truncate(s, 20))
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return 0, fmt.Errorf("%q: not octal", s)
	}
	m := fs.FileMode(v)
	if m&0o022 != 0 {
		return 0, fmt.Errorf("%q: group or other write is not allowed", s)
	}
	return m, nil
}

// signals are the signals a reload may send, by name without "SIG".
var signals = map[string]syscall.Signal{
	"HUP":   syscall.SIGHUP,
	"INT":   syscall.SIGINT,
	"QUIT":  syscall.SIGQUIT,
	"TERM":  syscall.SIGTERM,
	"USR1":  syscall.SIGUSR1,
	"USR2":  syscall.SIGUSR2,
	"WINCH": syscall.SIGWINCH,
	"KILL":  syscall.SIGKILL,
}

// ParseSignal maps a signal name ("SIGHUP", "HUP", "sighup") to its
// number. Only HUP, INT, QUIT, TERM, USR1, USR2, WINCH and KILL are
// accepted.
func ParseSignal(name string) (syscall.Signal, error) {
	n := strings.TrimPrefix(strings.ToUpper(name), "SIG")
	if s, ok := signals[n]; ok {
		return s, nil
	}
	return 0, fmt.Errorf("%q: unknown signal; want one of SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGKILL", truncate(name, 20))
}

// checkBaseURL checks a core base URL and returns it as it may be shown
// (credentials never are). allowHTTP permits http:// on loopback hosts.
func checkBaseURL(raw string, allowHTTP bool) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("not a URL")
	}
	shown := u.Redacted()
	want := "want https://"
	if allowHTTP {
		want = "want https:// or http:// (http only on loopback)"
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowHTTP:
		if !IsLoopback(u.Hostname()) {
			return "", fmt.Errorf("%q: %s", shown, want)
		}
	default:
		return "", fmt.Errorf("%q: %s", shown, want)
	}
	switch {
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("%q: no host", shown)
	case u.User != nil:
		return "", fmt.Errorf("%q: credentials do not belong in the URL", shown)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", fmt.Errorf("%q: want a base URL without query or fragment", shown)
	case u.Path != "" && u.Path != "/":
		return "", fmt.Errorf("%q: want a base URL without a path", shown)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("%q: port must be 1-65535", shown)
		}
	}
	return shown, nil
}

// CheckReloadURL checks an HTTP reload URL: http:// or https://, a host,
// no credentials, and a loopback host unless allowRemote. It does no DNS
// lookup: "localhost" and loopback IPs are the loopback hosts.
func CheckReloadURL(raw string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a URL")
	}
	shown := u.Redacted()
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q: want http:// or https://", shown)
	case u.Hostname() == "":
		return fmt.Errorf("%q: no host", shown)
	case u.User != nil:
		return fmt.Errorf("%q: credentials do not belong in the URL", shown)
	case !allowRemote && !IsLoopback(u.Hostname()):
		return fmt.Errorf("%q: host is not loopback; reloads reach only this machine unless allow_remote is true", shown)
	}
	return nil
}

// IsLoopback reports whether host (a name or an IP, without port) is a
// loopback address: "localhost" or an IP in 127.0.0.0/8 or ::1.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isAbs(p string) bool { return strings.HasPrefix(p, "/") && filepath.IsAbs(p) }

// templateSeen records the template names and destinations met so far,
// each with the field that holds it, to name both ends of a duplicate.
type templateSeen struct {
	names map[string]string
	dests map[string]string
}

func newTemplateSeen() *templateSeen {
	return &templateSeen{names: map[string]string{}, dests: map[string]string{}}
}

// validateTemplates checks list, whose fields are named prefix[i]...
// (like "templates[1].destination"), against what seen holds and adds its
// names and destinations to seen. allowSource permits the source field
// (a file on the agent's host).
func validateTemplates(prefix string, list []Template, seen *templateSeen, initMarker string, allowSource bool) []error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
	}
	for i, t := range list {
		f := fmt.Sprintf("%s[%d]", prefix, i)
		switch {
		case t.Name == "":
			add(f+".name", "missing")
		case !templateName.MatchString(t.Name):
			add(f+".name", "%q: want 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", truncate(t.Name, 70))
		default:
			if other, dup := seen.names[t.Name]; dup {
				add(f+".name", "%q: duplicate of %s", t.Name, other)
			} else {
				seen.names[t.Name] = f + ".name"
			}
		}
		switch {
		case !allowSource && t.Source != "":
			add(f+".source", "not allowed here: the template text must be in contents")
		case t.Contents == "" && t.Source == "":
			add(f, "set exactly one of contents and source (neither is set)")
		case t.Contents != "" && t.Source != "":
			add(f, "set exactly one of contents and source (both are set)")
		case t.Source != "" && !isAbs(t.Source):
			add(f+".source", "%q: must be absolute", t.Source)
		}
		switch {
		case t.Destination == "":
			add(f+".destination", "missing")
		case !isAbs(t.Destination):
			add(f+".destination", "%q: must be absolute", t.Destination)
		case filepath.Clean(t.Destination) != t.Destination:
			add(f+".destination", "%q: not clean; want %q", t.Destination, filepath.Clean(t.Destination))
		default:
			if other, dup := seen.dests[t.Destination]; dup {
				add(f+".destination", "%q: duplicate of %s", t.Destination, other)
			} else {
				seen.dests[t.Destination] = f + ".destination"
			}
			if t.Destination == initMarker {
				add(f+".destination", "%q: same file as init_marker", t.Destination)
			}
		}
		if _, err := parsePerms(t.Perms); err != nil {
			add(f+".perms", "%s", err)
		}
		switch t.MissingKey {
		case MissingKeyError, MissingKeyZero:
		default:
			add(f+".missing_key", "%q: want error or zero", truncate(t.MissingKey, 40))
		}
		if t.Reload != nil {
			errs = append(errs, t.Reload.validate(f+".reload")...)
		}
	}
	return errs
}

// CheckCorePath refuses a path that is not a plain relative API path
// like secrets/app/db: no leading slash, no empty, "." or ".." segment,
// no query, fragment or backslash, at most 1024 bytes. Secret paths come
// from configuration, templates and pod annotations.
func CheckCorePath(p string) error {
	bad := errors.New("not a relative API path like secrets/app/db")
	if p == "" || len(p) > 1024 || strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#\\") {
		return bad
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return bad
		}
	}
	return nil
}
