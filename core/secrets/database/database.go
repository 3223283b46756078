// Package database is SecretHub's database secrets engine for PostgreSQL:
// it connects to database servers with an administrative user, creates a
// short-lived login role per request (dynamic credentials, each with a
// lease the core renews and revokes through this engine), and rotates the
// passwords of existing roles (static roles) and of its own administrative
// user (rotate-root).
//
// Its paths, fields and response shapes follow Vault's database secrets
// engine with the postgresql-database-plugin, so the Vault Go client works
// unchanged: config/:name, reset/:name, rotate-root/:name, roles/:name,
// creds/:name, static-roles/:name, static-creds/:name and
// rotate-role/:name. docs/database.md describes each.
//
// What is stored (in the engine's storage view, which the barrier
// encrypts): connection configs with the administrative password, roles,
// and static roles with their current and previous passwords. The
// passwords of dynamic credentials are never stored: creds returns them
// once. No password is ever put in a response other than the one that
// issues it, in an error, or in a log line: errors from the database
// server, which may echo a statement, are scrubbed of every password the
// engine knows at that point.
//
// Statement templates are parsed when a role is written (see template.go)
// and their placeholders are quoted for where they stand; generated user
// names and passwords use alphabets that need no quoting anyway.
//
// Connections: one pgxpool.Pool per config, opened on first use and closed
// when the config is written, deleted, reset or its root password rotated,
// and by Close. Like the other engines this assumes one active core serves
// a mount at a time.
package database

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
	"github.com/secrethub/secrethub/core/storage"
)

var (
	_ logical.Engine           = (*Engine)(nil)
	_ logical.ExistenceChecker = (*Engine)(nil)
	_ logical.SecretRenewer    = (*Engine)(nil)
	_ logical.SecretRevoker    = (*Engine)(nil)
	_ io.Closer                = (*Engine)(nil)
)

// Defaults of Config.
const (
	// DefaultTTL is a dynamic credential's lease when its role has no
	// default_ttl.
	DefaultTTL = time.Hour
	// DefaultMaxTTL bounds the renewals of a credential whose role has no
	// max_ttl.
	DefaultMaxTTL = 24 * time.Hour
	// DefaultGracePeriod is how long a static role's previous password
	// stays readable after a rotation when the role does not say.
	DefaultGracePeriod = 5 * time.Minute
	// DefaultConnectTimeout bounds connecting to a database server when
	// the request's context has no earlier deadline.
	DefaultConnectTimeout = 10 * time.Second
)

// Storage layout, relative to the engine's storage view:
//
//	config/<name>       a connection config, with the admin password (JSON)
//	role/<name>         a role (JSON)
//	static-role/<name>  a static role, with its passwords (JSON)
const (
	configPrefix     = "config/"
	rolePrefix       = "role/"
	staticRolePrefix = "static-role/"
)

// Sentinel errors callers branch on.
var (
	// ErrUnreachable: the database server could not be reached or did not
	// accept the engine's administrative login. Errors that wrap it are
	// also InvalidRequestErrors naming the target, so a client sees why.
	ErrUnreachable = errors.New("database server unreachable")
	// ErrStatement: a statement template failed on the database server.
	ErrStatement = errors.New("statement failed")
)

// PasswordGenerator makes a password from a named password policy.
type PasswordGenerator func(ctx context.Context, policy string) (string, error)

// Config configures an Engine at mount time. Its zero value gives the
// defaults.
type Config struct {
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Rand is the source of generated user names and passwords. Default
	// crypto/rand.Reader.
	Rand io.Reader
	// Logger receives the engine's log lines (never a password). Default
	// slog.Default().
	Logger *slog.Logger
	// DefaultTTL and MaxTTL apply to roles that set no default_ttl or
	// max_ttl. Zero means DefaultTTL and DefaultMaxTTL.
	DefaultTTL, MaxTTL time.Duration
	// GracePeriod is how long a static role's previous password stays
	// readable when the role sets no grace_period. Zero means
	// DefaultGracePeriod.
	GracePeriod time.Duration
	// ConnectTimeout bounds connecting. Zero means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// Passwords, when set, makes passwords for configs that name a
	// password_policy. Without it a config that names one is refused.
	Passwords PasswordGenerator
}

// Engine is the database secrets engine. Create it with New; it is safe
// for concurrent use. Close it when the mount goes away.
type Engine struct {
	storage        logical.Storage
	now            func() time.Time
	rand           io.Reader
	log            *slog.Logger
	defaultTTL     time.Duration
	maxTTL         time.Duration
	grace          time.Duration
	connectTimeout time.Duration
	passwords      PasswordGenerator

	// mu guards pools and closed.
	mu     sync.Mutex
	pools  map[string]*target
	closed bool

	// configMu serialises changes to configs (write, delete, reset,
	// rotate-root), so a pool is never built from a config being replaced.
	configMu sync.Mutex
	// staticMu serialises static role writes and rotations.
	staticMu sync.Mutex
}

// New returns an engine over s, its storage view.
func New(s logical.Storage, cfg Config) (*Engine, error) {
	if s == nil {
		return nil, errors.New("database: nil storage")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"DefaultTTL", cfg.DefaultTTL}, {"MaxTTL", cfg.MaxTTL}, {"GracePeriod", cfg.GracePeriod}, {"ConnectTimeout", cfg.ConnectTimeout}} {
		if d.v < 0 || d.v > maxTTL {
			return nil, fmt.Errorf("database: %s %s out of range", d.name, d.v)
		}
	}
	e := &Engine{
		storage:        s,
		now:            cfg.Now,
		rand:           cfg.Rand,
		log:            cfg.Logger,
		defaultTTL:     cfg.DefaultTTL,
		maxTTL:         cfg.MaxTTL,
		grace:          cfg.GracePeriod,
		connectTimeout: cfg.ConnectTimeout,
		passwords:      cfg.Passwords,
		pools:          map[string]*target{},
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.rand == nil {
		e.rand = rand.Reader
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.defaultTTL == 0 {
		e.defaultTTL = DefaultTTL
	}
	if e.maxTTL == 0 {
		e.maxTTL = DefaultMaxTTL
	}
	if e.grace == 0 {
		e.grace = DefaultGracePeriod
	}
	if e.connectTimeout == 0 {
		e.connectTimeout = DefaultConnectTimeout
	}
	return e, nil
}

// Close closes every connection pool. Requests after Close that need a
// database server fail.
func (e *Engine) Close() error {
	e.mu.Lock()
	pools := e.pools
	e.pools, e.closed = map[string]*target{}, true
	e.mu.Unlock()
	for _, t := range pools {
		t.pool.Close()
	}
	return nil
}

// route is a request path split into what the handlers need.
type route struct {
	kind string // "config", "roles", "creds", ...
	name string // the name after it; empty for a list
}

// routeKinds are the path prefixes that take a name.
var routeKinds = map[string]bool{
	"config": true, "reset": true, "rotate-root": true,
	"roles": true, "creds": true,
	"static-roles": true, "static-creds": true, "rotate-role": true,
}

// parsePath maps a relative path to its route.
func parsePath(p string) (route, error) {
	p = strings.Trim(p, "/")
	kind, name, _ := strings.Cut(p, "/")
	if !routeKinds[kind] || strings.Contains(name, "/") {
		return route{}, fmt.Errorf("database: %q: %w", field.Truncate(p, 128), logical.ErrUnsupportedPath)
	}
	if name != "" {
		if err := checkName(name); err != nil {
			return route{}, err
		}
	}
	return route{kind, name}, nil
}

// HandleRequest serves one request routed to the mount.
func (e *Engine) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	if req == nil {
		return nil, logical.Invalid("", "no request")
	}
	rt, err := parsePath(req.RelativePath)
	if err != nil {
		return nil, err
	}
	data := req.Data
	if data == nil {
		data = map[string]any{}
	}
	op := req.Operation
	write := op == logical.OpCreate || op == logical.OpUpdate
	list := op == logical.OpList && rt.name == ""
	named := rt.name != ""
	switch {
	case rt.kind == "config" && list:
		return e.list(ctx, configPrefix)
	case rt.kind == "config" && named && op == logical.OpRead:
		return e.readConfig(ctx, rt.name)
	case rt.kind == "config" && named && write:
		return e.writeConfig(ctx, rt.name, data)
	case rt.kind == "config" && named && op == logical.OpDelete:
		return e.deleteConfig(ctx, rt.name)
	case rt.kind == "reset" && named && write:
		return e.resetConfig(ctx, rt.name)
	case rt.kind == "rotate-root" && named && write:
		return e.rotateRoot(ctx, rt.name)
	case rt.kind == "roles" && list:
		return e.list(ctx, rolePrefix)
	case rt.kind == "roles" && named && op == logical.OpRead:
		return e.readRole(ctx, rt.name)
	case rt.kind == "roles" && named && write:
		return e.writeRole(ctx, rt.name, data)
	case rt.kind == "roles" && named && op == logical.OpDelete:
		return e.deleteKey(ctx, rolePrefix+rt.name)
	case rt.kind == "creds" && named && op == logical.OpRead:
		return e.issueCreds(ctx, rt.name)
	case rt.kind == "static-roles" && list:
		return e.list(ctx, staticRolePrefix)
	case rt.kind == "static-roles" && named && op == logical.OpRead:
		return e.readStaticRole(ctx, rt.name)
	case rt.kind == "static-roles" && named && write:
		return e.writeStaticRole(ctx, rt.name, data)
	case rt.kind == "static-roles" && named && op == logical.OpDelete:
		return e.deleteStaticRole(ctx, rt.name)
	case rt.kind == "static-creds" && named && op == logical.OpRead:
		return e.readStaticCreds(ctx, rt.name)
	case rt.kind == "rotate-role" && named && write:
		if err := e.RotateStaticRole(ctx, rt.name); err != nil {
			return nil, err
		}
		return nil, nil
	}
	return nil, fmt.Errorf("database: %s on %q: %w", op, field.Truncate(req.RelativePath, 128), logical.ErrUnsupportedOperation)
}

// Exists tells the core whether a write to config/, roles/ or
// static-roles/ creates or updates. Other writes are actions (updates).
func (e *Engine) Exists(ctx context.Context, req *logical.Request) (bool, error) {
	if req == nil {
		return false, logical.Invalid("", "no request")
	}
	rt, err := parsePath(req.RelativePath)
	if err != nil || rt.name == "" {
		return err == nil, nil
	}
	var key string
	switch rt.kind {
	case "config":
		key = configPrefix + rt.name
	case "roles":
		key = rolePrefix + rt.name
	case "static-roles":
		key = staticRolePrefix + rt.name
	default:
		return true, nil
	}
	b, err := logical.GetOptional(ctx, e.storage, key)
	return b != nil, err
}

// list answers a LIST of the names under prefix, as Vault does: keys, or
// 404 when there are none.
func (e *Engine) list(ctx context.Context, prefix string) (*logical.Response, error) {
	names, err := logical.ListKeys(ctx, e.storage, prefix)
	if err != nil {
		return nil, fmt.Errorf("database: list %s: %w", prefix, err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("database: nothing under %s: %w", prefix, logical.ErrNotFound)
	}
	return logical.ListResponse(names), nil
}

// deleteKey deletes a role; deleting what is not there succeeds.
func (e *Engine) deleteKey(ctx context.Context, key string) (*logical.Response, error) {
	if err := e.storage.Delete(ctx, key); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("database: delete %s: %w", key, err)
	}
	return nil, nil
}

// opContext returns the context for one operation on a database server:
// ctx, bounded by the connect timeout when it has no deadline.
func (e *Engine) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, e.connectTimeout+30*time.Second)
}
