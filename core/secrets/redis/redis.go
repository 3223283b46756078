// Package redis is SecretHub's Redis secrets engine: it issues short-lived
// Redis ACL users whose permissions (key patterns, pub/sub channel
// patterns, commands and command categories) come from a role, and
// deletes them when their lease ends.
//
// The engine is a logical.Engine (mount it with type "redis"). Its paths
// follow Vault's database engine as used with its Redis plugin, with one
// connection per mount:
//
//	config          connection: host, port (or address), username, password,
//	                tls, insecure_tls, ca_cert, verify_connection
//	roles/:name     key_patterns, channel_patterns, commands (or Vault's
//	                creation_statements), default_ttl, max_ttl
//	roles           LIST of role names
//	creds/:name     GET: a new user: username, password, with a lease
//
// Issue runs ACL SETUSER <user> reset on >password ~keys &channels +cmds
// in one command (Redis applies all of its rules or none); should it fail,
// the user is deleted all the same, so no half-made user is left. Revoke
// runs ACL DELUSER, which also closes every connection authenticated as
// the user; it is idempotent. Redis ACL users do not expire, so renewal
// only extends the lease: the engine's RenewSecret is a no-op and the
// lease manager revokes the user at the lease's end.
//
// What is stored (in the engine's storage view, which the barrier
// encrypts): the connection config, with the admin password, and the
// roles. The admin password is never returned by a read, nor put in a log
// line or an error. Issued passwords are returned once and never stored.
package redis

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
	"github.com/secrethub/secrethub/core/logical/rolestore"
)

var (
	_ logical.Engine           = (*Engine)(nil)
	_ logical.ExistenceChecker = (*Engine)(nil)
	_ logical.SecretRenewer    = (*Engine)(nil)
	_ logical.SecretRevoker    = (*Engine)(nil)
)

// Defaults of Config.
const (
	// DefaultTTL is a credential's lease when its role sets no
	// default_ttl.
	DefaultTTL = time.Hour
	// DefaultTimeout bounds one round trip to Redis (dial, read, write).
	DefaultTimeout = 5 * time.Second
)

// Storage layout, relative to the engine's storage view.
const (
	configKey  = "config"
	rolePrefix = "role/"
)

var roleNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,64}$`)

// Sentinel errors callers branch on.
var (
	// ErrNotConfigured: the mount has no connection config yet (400).
	ErrNotConfigured error = &logical.InvalidRequestError{Field: "config", Reason: "this mount has no Redis connection: write config first"}
	// ErrUnreachable wraps every failure to talk to the Redis server
	// (dial, TLS, authentication, a refused command). The error names the
	// server's address and Redis's reason.
	ErrUnreachable = fmt.Errorf("redis server unavailable: %w", logical.ErrUpstream)
)

// Config configures an Engine at mount time. Its zero value gives the
// defaults.
type Config struct {
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Rand is the source of user names and passwords. Default
	// crypto/rand.Reader.
	Rand io.Reader
	// DefaultTTL is a credential's lease when its role sets none. Zero
	// means DefaultTTL.
	DefaultTTL time.Duration
	// Timeout bounds each dial, read and write to Redis. Zero means
	// DefaultTimeout.
	Timeout time.Duration
}

// Engine is the Redis secrets engine. Create it with New; it is safe for
// concurrent use. Close it to release its connections to Redis.
type Engine struct {
	storage    logical.Storage
	now        func() time.Time
	rand       io.Reader
	defaultTTL time.Duration
	timeout    time.Duration
	roleStore  *rolestore.Store[roleEntry]

	// mu guards client and conn: the admin client for the stored config,
	// built at first use and replaced when config is written.
	mu     sync.Mutex
	client *goredis.Client
	conn   *connConfig
}

// New returns an engine over s, its storage view.
func New(s logical.Storage, cfg Config) (*Engine, error) {
	if s == nil {
		return nil, errors.New("redis: nil storage")
	}
	if cfg.DefaultTTL < 0 || cfg.Timeout < 0 {
		return nil, errors.New("redis: negative DefaultTTL or Timeout")
	}
	e := &Engine{
		storage: s, now: cfg.Now, rand: cfg.Rand, defaultTTL: cfg.DefaultTTL, timeout: cfg.Timeout,
		roleStore: rolestore.New[roleEntry](s, "redis", rolePrefix),
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.rand == nil {
		e.rand = rand.Reader
	}
	if e.defaultTTL == 0 {
		e.defaultTTL = DefaultTTL
	}
	if e.timeout == 0 {
		e.timeout = DefaultTimeout
	}
	return e, nil
}

// Close closes the engine's connections to Redis. The engine stays usable:
// the next request connects again.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var err error
	if e.client != nil {
		err = e.client.Close()
	}
	e.client, e.conn = nil, nil
	return err
}

// route is a request path split into what the handlers need.
type route struct {
	kind string // "config", "roles", "role", "creds"
	name string // the role name
}

func parsePath(p string) (route, error) {
	p = strings.Trim(p, "/")
	switch p {
	case "config", "config/connection":
		return route{kind: "config"}, nil
	case "roles":
		return route{kind: "roles"}, nil
	}
	kind, name, ok := strings.Cut(p, "/")
	if ok && (kind == "roles" || kind == "creds") && !strings.Contains(name, "/") {
		if !roleNameRE.MatchString(name) || name == "." || name == ".." {
			return route{}, logical.Invalid("name", "a role name is 1 to 64 letters, digits, '_', '.' or '-'")
		}
		if kind == "roles" {
			kind = "role"
		}
		return route{kind: kind, name: name}, nil
	}
	return route{}, fmt.Errorf("redis: %q: %w", field.Truncate(p, 128), logical.ErrUnsupportedPath)
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
	switch {
	case rt.kind == "config" && op == logical.OpRead:
		return e.readConfig(ctx)
	case rt.kind == "config" && write:
		return e.writeConfig(ctx, data)
	case rt.kind == "config" && op == logical.OpDelete:
		return e.deleteConfig(ctx)
	case rt.kind == "roles" && op == logical.OpList:
		return e.roleStore.List(ctx)
	case rt.kind == "role" && op == logical.OpRead:
		return e.readRole(ctx, rt.name)
	case rt.kind == "role" && write:
		return e.writeRole(ctx, rt.name, data)
	case rt.kind == "role" && op == logical.OpDelete:
		return nil, e.roleStore.Delete(ctx, rt.name)
	case rt.kind == "creds" && (op == logical.OpRead || write):
		return e.issue(ctx, rt.name)
	}
	return nil, fmt.Errorf("redis: %s on %q: %w", op, field.Truncate(req.RelativePath, 128), logical.ErrUnsupportedOperation)
}

// Exists tells the core whether a write to config or roles/<name> creates
// or updates it. creds/<name> is an action, answered as an update.
func (e *Engine) Exists(ctx context.Context, req *logical.Request) (bool, error) {
	if req == nil {
		return false, logical.Invalid("", "no request")
	}
	rt, err := parsePath(req.RelativePath)
	if err != nil {
		return false, nil
	}
	switch rt.kind {
	case "config":
		raw, err := logical.GetOptional(ctx, e.storage, configKey)
		return raw != nil, err
	case "role":
		raw, err := logical.GetOptional(ctx, e.storage, rolePrefix+rt.name)
		return raw != nil, err
	}
	return true, nil
}

func seconds(d time.Duration) int64 { return int64(d / time.Second) }
