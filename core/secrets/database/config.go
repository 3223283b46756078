package database

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
)

// Plugin names a config may give. The first is Vault's; the second is
// accepted as a short form and stored as the first.
const (
	PluginPostgres      = "postgresql-database-plugin"
	pluginPostgresShort = "postgresql"
)

// Placeholder markers stand for {{username}} and {{password}} in a
// connection URL while it is parsed; the real values are set on the parsed
// config, so they never need URL escaping and never reach a parse error.
const (
	userMarker = "secrethub-username-placeholder"
	passMarker = "secrethub-password-placeholder"
)

// connConfig is a stored connection config.
type connConfig struct {
	PluginName             string        `json:"plugin_name"`
	ConnectionURL          string        `json:"connection_url"`
	Username               string        `json:"username,omitempty"`
	Password               string        `json:"password,omitempty"`
	AllowedRoles           []string      `json:"allowed_roles"`
	VerifyConnection       bool          `json:"verify_connection"`
	MaxOpenConnections     int           `json:"max_open_connections"`
	MaxIdleConnections     int           `json:"max_idle_connections"`
	MaxConnectionLifetime  time.Duration `json:"max_connection_lifetime"`
	PasswordPolicy         string        `json:"password_policy,omitempty"`
	RootRotationStatements []string      `json:"root_rotation_statements"`
}

// configFields are the fields config/:name accepts.
var configFields = []string{
	"plugin_name", "plugin_version", "connection_url", "username", "password",
	"allowed_roles", "verify_connection", "max_open_connections",
	"max_idle_connections", "max_connection_lifetime", "password_policy",
	"root_rotation_statements", "username_template", "password_authentication",
}

// allows reports whether the config lets role use it: allowed_roles
// names it or holds "*" (empty allows none, as in Vault).
func (c *connConfig) allows(role string) bool {
	return slices.Contains(c.AllowedRoles, "*") || slices.Contains(c.AllowedRoles, role)
}

// pgxConfig parses the connection URL into a pool config with the admin
// user and password set.
func (c *connConfig) pgxConfig() (*pgxpool.Config, error) {
	s := strings.ReplaceAll(c.ConnectionURL, "{{username}}", userMarker)
	s = strings.ReplaceAll(s, "{{password}}", passMarker)
	pc, err := pgxpool.ParseConfig(s)
	if err != nil {
		// The URL holds no password (checkURLHasNoPassword), only markers.
		msg := strings.NewReplacer(userMarker, "{{username}}", passMarker, "{{password}}").Replace(err.Error())
		return nil, fmt.Errorf("%s", msg)
	}
	cc := pc.ConnConfig
	if cc.User == userMarker || c.Username != "" && !strings.Contains(c.ConnectionURL, "{{username}}") {
		cc.User = c.Username
	}
	if cc.Password == passMarker || c.Password != "" && !strings.Contains(c.ConnectionURL, "{{password}}") {
		cc.Password = c.Password
	}
	if c.MaxOpenConnections > 0 {
		pc.MaxConns = int32(c.MaxOpenConnections)
	}
	if c.MaxConnectionLifetime > 0 {
		pc.MaxConnLifetime = c.MaxConnectionLifetime
	}
	pc.MinConns = 0
	// No statement cache: statements carry passwords.
	cc.DefaultQueryExecMode = pgx.QueryExecModeExec
	cc.StatementCacheCapacity = 0
	cc.DescriptionCacheCapacity = 0
	return pc, nil
}

// hostOf names the server a parsed config connects to, for errors.
func hostOf(pc *pgxpool.Config) string {
	h := pc.ConnConfig.Host
	if strings.HasPrefix(h, "/") {
		return h
	}
	return net.JoinHostPort(h, strconv.Itoa(int(pc.ConnConfig.Port)))
}

// target is an open connection pool to the server of one config.
type target struct {
	name string // the config's name
	host string // host:port
	cfg  *connConfig
	pool *pgxpool.Pool
}

// scrub removes the passwords the engine knows from msg.
func scrub(msg string, secrets ...string) string {
	for _, s := range secrets {
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return msg
}

// targetError describes a failure of a database server: an
// InvalidRequestError naming the field, the config and the host, and the
// reason (scrubbed), which also wraps a sentinel. It keeps no cause: a
// cause could hold a password.
type targetError struct {
	invalid  *logical.InvalidRequestError
	sentinel error
}

func (e *targetError) Error() string   { return e.invalid.Error() }
func (e *targetError) Unwrap() []error { return []error{e.invalid, e.sentinel} }

// reason describes err for a client: a PostgreSQL error by its message,
// detail and SQLSTATE; anything else by its text.
func reason(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		s := pe.Message
		if pe.Detail != "" {
			s += " (" + pe.Detail + ")"
		}
		return s + " (SQLSTATE " + pe.Code + ")"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out: " + err.Error()
	}
	return err.Error()
}

// fail returns a targetError for t.
func (t *target) fail(fieldName string, sentinel error, err error, format string, args ...any) error {
	return targetFail(fieldName, t.name, t.host, sentinel, err, []string{t.cfg.Password}, format, args...)
}

// targetFail builds a targetError; secrets are scrubbed from the message.
func targetFail(fieldName, name, host string, sentinel, err error, secrets []string, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	msg := fmt.Sprintf("database %q at %s: %s: %s", name, host, what, reason(err))
	return &targetError{
		invalid:  &logical.InvalidRequestError{Field: fieldName, Reason: scrub(msg, secrets...)},
		sentinel: sentinel,
	}
}

// isConnectError reports whether err is a failure to connect (as opposed
// to a statement that failed on a working connection).
func isConnectError(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err)
}

// readConfigEntry loads config name, or nil.
func (e *Engine) readConfigEntry(ctx context.Context, name string) (*connConfig, error) {
	var c connConfig
	ok, err := logical.GetJSON(ctx, e.storage, configPrefix+name, &c)
	if err != nil || !ok {
		return nil, err
	}
	return &c, nil
}

// targetFor returns the pool of config name, opening it if need be.
// fieldName is the field an error names (db_name for a role's database).
func (e *Engine) targetFor(ctx context.Context, name, fieldName string) (*target, error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, errors.New("database: engine closed")
	}
	if t, ok := e.pools[name]; ok {
		e.mu.Unlock()
		return t, nil
	}
	e.mu.Unlock()

	e.configMu.Lock()
	defer e.configMu.Unlock()
	e.mu.Lock()
	t, ok := e.pools[name]
	e.mu.Unlock()
	if ok {
		return t, nil
	}
	c, err := e.readConfigEntry(ctx, name)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, logical.Invalid(fieldName, "no database config %q", name)
	}
	t, err = e.open(name, c)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		t.pool.Close()
		return nil, errors.New("database: engine closed")
	}
	e.pools[name] = t
	return t, nil
}

// open makes a pool for c; it does not connect yet.
func (e *Engine) open(name string, c *connConfig) (*target, error) {
	pc, err := c.pgxConfig()
	if err != nil {
		return nil, logical.Invalid("connection_url", "%s", scrub(err.Error(), c.Password))
	}
	if pc.ConnConfig.ConnectTimeout == 0 || pc.ConnConfig.ConnectTimeout > e.connectTimeout {
		pc.ConnConfig.ConnectTimeout = e.connectTimeout
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, logical.Invalid("connection_url", "%s", scrub(err.Error(), c.Password))
	}
	return &target{name: name, host: hostOf(pc), cfg: c, pool: pool}, nil
}

// poolRetireDelay is how long a pool that was replaced or dropped stays
// open for the requests still using it. Closing it at once would cancel
// their connection attempts.
const poolRetireDelay = 30 * time.Second

// dropPool forgets the pool of config name, if open; the next use opens a
// new one, and the old one closes after poolRetireDelay.
func (e *Engine) dropPool(name string) {
	e.mu.Lock()
	t, ok := e.pools[name]
	delete(e.pools, name)
	e.mu.Unlock()
	if ok {
		time.AfterFunc(poolRetireDelay, t.pool.Close)
	}
}

// replacePool follows a config write: a pool whose connection settings
// are unchanged is kept (only the config it carries is new), so a client
// that rewrites the same config — the operator at every resync — does not
// churn connections or disturb requests in flight; otherwise the pool is
// dropped.
func (e *Engine) replacePool(name string, c *connConfig) {
	e.mu.Lock()
	t, ok := e.pools[name]
	if ok && t.cfg.sameConnection(c) {
		e.pools[name] = &target{name: t.name, host: t.host, cfg: c, pool: t.pool}
		e.mu.Unlock()
		return
	}
	e.mu.Unlock()
	e.dropPool(name)
}

// sameConnection reports whether c opens the same connections as o.
func (o *connConfig) sameConnection(c *connConfig) bool {
	return o.ConnectionURL == c.ConnectionURL && o.Username == c.Username && o.Password == c.Password &&
		o.MaxOpenConnections == c.MaxOpenConnections && o.MaxIdleConnections == c.MaxIdleConnections &&
		o.MaxConnectionLifetime == c.MaxConnectionLifetime
}

// acquire takes a connection from t's pool, naming the target on failure.
func (t *target) acquire(ctx context.Context, fieldName string) (*pgxpool.Conn, error) {
	conn, err := t.pool.Acquire(ctx)
	if err != nil {
		return nil, t.fail(fieldName, ErrUnreachable, err, "cannot connect")
	}
	return conn, nil
}

func (e *Engine) readConfig(ctx context.Context, name string) (*logical.Response, error) {
	c, err := e.readConfigEntry(ctx, name)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("database: config %q: %w", name, logical.ErrNotFound)
	}
	details := map[string]any{
		"connection_url":          c.ConnectionURL,
		"username":                c.Username,
		"max_open_connections":    c.MaxOpenConnections,
		"max_idle_connections":    c.MaxIdleConnections,
		"max_connection_lifetime": c.MaxConnectionLifetime.String(),
	}
	return &logical.Response{Data: map[string]any{
		"plugin_name":                        c.PluginName,
		"plugin_version":                     "",
		"connection_details":                 details,
		"allowed_roles":                      nonNil(c.AllowedRoles),
		"root_credentials_rotate_statements": nonNil(c.RootRotationStatements),
		"password_policy":                    c.PasswordPolicy,
		"verify_connection":                  c.VerifyConnection,
	}}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// writeConfig creates or updates config name. On update, absent fields
// keep their values (as in Vault); the password in particular.
func (e *Engine) writeConfig(ctx context.Context, name string, data map[string]any) (*logical.Response, error) {
	if err := field.CheckFields(data, configFields...); err != nil {
		return nil, err
	}
	e.configMu.Lock()
	defer e.configMu.Unlock()
	old, err := e.readConfigEntry(ctx, name)
	if err != nil {
		return nil, err
	}
	c := connConfig{VerifyConnection: true, MaxOpenConnections: 4, MaxIdleConnections: 0}
	if old != nil {
		c = *old
	}
	if c.PluginName, err = field.GetOr(data, "plugin_name", parseString, c.PluginName); err != nil {
		return nil, err
	}
	switch c.PluginName {
	case PluginPostgres, pluginPostgresShort:
		c.PluginName = PluginPostgres
	case "":
		return nil, logical.Invalid("plugin_name", "required; want %s", PluginPostgres)
	default:
		return nil, logical.Invalid("plugin_name", "unsupported plugin %q; want %s", field.Truncate(c.PluginName, 64), PluginPostgres)
	}
	if c.ConnectionURL, err = field.GetOr(data, "connection_url", parseString, c.ConnectionURL); err != nil {
		return nil, err
	}
	if c.ConnectionURL == "" {
		return nil, logical.Invalid("connection_url", "required, like postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres")
	}
	if err := checkURLHasNoPassword(c.ConnectionURL); err != nil {
		return nil, err
	}
	if c.Username, err = field.GetOr(data, "username", parseString, c.Username); err != nil {
		return nil, err
	}
	if c.Password, err = field.GetOr(data, "password", parseSecretString, c.Password); err != nil {
		return nil, err
	}
	if c.AllowedRoles, err = field.GetOr(data, "allowed_roles", parseNames, c.AllowedRoles); err != nil {
		return nil, err
	}
	if c.VerifyConnection, err = field.GetOr(data, "verify_connection", field.Bool, true); err != nil {
		return nil, err
	}
	n, err := field.GetOr(data, "max_open_connections", parseInt(0, maxConnections), int64(c.MaxOpenConnections))
	if err != nil {
		return nil, err
	}
	c.MaxOpenConnections = int(n)
	if c.MaxOpenConnections == 0 {
		c.MaxOpenConnections = 4
	}
	n, err = field.GetOr(data, "max_idle_connections", parseInt(0, maxConnections), int64(c.MaxIdleConnections))
	if err != nil {
		return nil, err
	}
	c.MaxIdleConnections = int(n)
	if c.MaxConnectionLifetime, err = field.GetOr(data, "max_connection_lifetime", parseTTL, c.MaxConnectionLifetime); err != nil {
		return nil, err
	}
	if c.PasswordPolicy, err = field.GetOr(data, "password_policy", parseString, c.PasswordPolicy); err != nil {
		return nil, err
	}
	if c.PasswordPolicy != "" && e.passwords == nil {
		return nil, logical.Invalid("password_policy", "password policies are not available on this server; leave it empty to use the built-in generator")
	}
	if c.RootRotationStatements, err = statementsField(data, "root_rotation_statements", c.RootRotationStatements, phName, phPassword); err != nil {
		return nil, err
	}
	if _, err := c.pgxConfig(); err != nil {
		return nil, logical.Invalid("connection_url", "%s", scrub(err.Error(), c.Password))
	}
	var warnings []string
	if v, ok := data["username_template"]; ok && v != nil && v != "" {
		warnings = append(warnings, "username_template is not supported and was ignored: user names are v-<role>-<random>-<time>")
	}

	if c.VerifyConnection {
		t, err := e.open(name, &c)
		if err != nil {
			return nil, err
		}
		err = e.ping(ctx, t)
		t.pool.Close()
		if err != nil {
			return nil, err
		}
	}
	if err := logical.PutJSON(ctx, e.storage, configPrefix+name, &c); err != nil {
		return nil, err
	}
	e.replacePool(name, &c)
	e.log.InfoContext(ctx, "database config written", "config", name, "verified", c.VerifyConnection)
	if len(warnings) > 0 {
		return &logical.Response{Warnings: warnings}, nil
	}
	return nil, nil
}

// ping connects to t and checks the connection.
func (e *Engine) ping(ctx context.Context, t *target) error {
	ctx, cancel := context.WithTimeout(ctx, e.connectTimeout)
	defer cancel()
	conn, err := t.acquire(ctx, "connection_url")
	if err != nil {
		return err
	}
	defer conn.Release()
	if err := conn.Ping(ctx); err != nil {
		return t.fail("connection_url", ErrUnreachable, err, "ping")
	}
	return nil
}

// checkURLHasNoPassword refuses a connection URL with a literal password:
// the password belongs in the password field, which is never shown.
func checkURLHasNoPassword(s string) error {
	bad := logical.Invalid("connection_url", "must not hold a password: put it in the password field and {{password}} in the URL")
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		rest := s[strings.Index(s, "://")+3:]
		if at := strings.LastIndex(strings.SplitN(rest, "/", 2)[0], "@"); at >= 0 {
			if _, pw, ok := strings.Cut(rest[:at], ":"); ok && pw != "{{password}}" && pw != "" {
				return bad
			}
		}
		if u, err := url.Parse(strings.ReplaceAll(strings.ReplaceAll(s, "{{username}}", userMarker), "{{password}}", passMarker)); err == nil {
			if q := u.Query().Get("password"); q != "" && q != passMarker {
				return bad
			}
		}
		return nil
	}
	for _, kv := range strings.Fields(s) {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.TrimSpace(k) == "password" && strings.Trim(v, "'") != "{{password}}" {
			return bad
		}
	}
	return nil
}

// deleteConfig deletes config name and closes its pool.
func (e *Engine) deleteConfig(ctx context.Context, name string) (*logical.Response, error) {
	e.configMu.Lock()
	defer e.configMu.Unlock()
	if _, err := e.deleteKey(ctx, configPrefix+name); err != nil {
		return nil, err
	}
	e.dropPool(name)
	return nil, nil
}

// resetConfig closes the pool of config name; the next use reconnects.
func (e *Engine) resetConfig(ctx context.Context, name string) (*logical.Response, error) {
	e.configMu.Lock()
	defer e.configMu.Unlock()
	c, err := e.readConfigEntry(ctx, name)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("database: config %q: %w", name, logical.ErrNotFound)
	}
	e.dropPool(name)
	return nil, nil
}

// rotateRoot gives the config's admin user a new password: it runs the
// root rotation statements (default ALTER ROLE ... WITH PASSWORD) in a
// transaction, stores the new password, commits, and closes the pool
// that logged in with the old one. If the commit fails the old config is
// put back.
func (e *Engine) rotateRoot(ctx context.Context, name string) (*logical.Response, error) {
	e.configMu.Lock()
	defer e.configMu.Unlock()
	c, err := e.readConfigEntry(ctx, name)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("database: config %q: %w", name, logical.ErrNotFound)
	}
	if c.Username == "" || c.Password == "" {
		return nil, logical.Invalid("username", "rotate-root needs the config's username and password fields set")
	}
	stmts := c.RootRotationStatements
	if len(stmts) == 0 {
		stmts = []string{defaultRotationStatement}
	}
	parsed, err := parseTemplates(stmts, phName, phPassword)
	if err != nil {
		return nil, logical.Invalid("root_rotation_statements", "%v", err)
	}
	pw, err := e.generatePassword(ctx, c)
	if err != nil {
		return nil, err
	}
	t, err := e.open(name, c)
	if err != nil {
		return nil, err
	}
	defer t.pool.Close()
	ctx, cancel := e.opContext(ctx)
	defer cancel()
	conn, err := t.acquire(ctx, "name")
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, t.fail("name", ErrUnreachable, err, "begin")
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
	vals := map[string]string{phName: c.Username, phPassword: pw}
	if err := execAll(ctx, tx, parsed, vals); err != nil {
		return nil, t.failStmt("root_rotation_statements", err, "rotate root password", pw)
	}
	nc := *c
	nc.Password = pw
	if err := logical.PutJSON(ctx, e.storage, configPrefix+name, &nc); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		if perr := logical.PutJSON(context.WithoutCancel(ctx), e.storage, configPrefix+name, c); perr != nil {
			e.log.ErrorContext(ctx, "rotate-root: commit failed and the old config could not be restored", "config", name, "error", perr.Error())
		}
		return nil, t.fail("name", ErrUnreachable, err, "commit rotate root password")
	}
	e.dropPool(name)
	e.log.InfoContext(ctx, "database root password rotated", "config", name, "host", t.host)
	return nil, nil
}

// failStmt is fail for a statement that failed; extra passwords are
// scrubbed too.
func (t *target) failStmt(fieldName string, err error, what string, secrets ...string) error {
	sentinel := ErrStatement
	if isConnectError(err) {
		sentinel = ErrUnreachable
	}
	return targetFail(fieldName, t.name, t.host, sentinel, err, append(secrets, t.cfg.Password), "%s", what)
}

// generatePassword makes a password: from the config's password policy
// when it names one, else from the built-in generator.
func (e *Engine) generatePassword(ctx context.Context, c *connConfig) (string, error) {
	if c != nil && c.PasswordPolicy != "" {
		if e.passwords == nil {
			return "", logical.Invalid("password_policy", "password policies are not available on this server")
		}
		pw, err := e.passwords(ctx, c.PasswordPolicy)
		if err != nil {
			return "", fmt.Errorf("database: password policy %q: %w", c.PasswordPolicy, err)
		}
		return pw, nil
	}
	return randomString(e.rand, passwordAlphabet, passwordLen)
}
