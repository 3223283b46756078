// Package approle is the AppRole auth method: machines log in with a role
// ID (which names a role, like a user name) and a secret ID (a
// per-machine password), and get a token carrying the role's policies.
//
// The engine is a logical.Engine mounted at auth/approle/. It follows
// Vault's AppRole HTTP API — paths, fields and response shapes — so the
// Vault Go client and CLI work against it unchanged. It never creates
// tokens: a successful login answers a logical.Auth (policies, TTL,
// metadata) plus the token parameters listed at DataTokenMaxTTL, and the
// core mints the token. The core authorizes every path but login with
// policies before calling the engine; login is unauthenticated.
//
// Security properties:
//
//   - Secret IDs carry 256 random bits and are stored only as their
//     SHA-256 hash, like tokens; a dump of storage (even decrypted) holds no
//     usable secret ID. Each also has an accessor, a random handle that can
//     be listed, looked up and destroyed without knowing the secret.
//   - Role IDs are indexed by their SHA-256 hash, so storage paths (which
//     the barrier does not encrypt) reveal no role ID.
//   - A secret ID may expire (ttl) and may have a use count (num_uses),
//     decremented atomically under a per-role lock at each login and
//     deleted when it reaches zero. A secret ID may only narrow what its
//     role allows.
//   - Logins can be bound to source CIDR blocks, on the role and on each
//     secret ID; an unknown client address matches no block.
//   - Failed logins are rate-limited per source address and per role ID,
//     in memory. While a limit is exceeded, login answers
//     logical.ErrRateLimited before looking at the credentials at all.
//   - Every refused login answers the same *LoginError, which matches
//     logical.ErrPermissionDenied and whose message does not say which
//     part was wrong; the reason is in its Reason field, for the log.
//
// The locks are in memory: the engine assumes one active core at a time
// handles requests (the cluster's leader), as storage offers no
// compare-and-set.
package approle

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/secrethub/secrethub/core/auth/internal/ratelimit"
	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
	"github.com/secrethub/secrethub/core/logical/rolestore"
)

var (
	_ logical.Engine           = (*Engine)(nil)
	_ logical.ExistenceChecker = (*Engine)(nil)
)

// Defaults of Config.
const (
	DefaultFailuresPerMinute = ratelimit.DefaultPerMinute
	DefaultMaxTrackedKeys    = ratelimit.DefaultMaxKeys
)

// Storage layout, relative to the engine's storage view:
//
//	role/<name>                    role entry (JSON)
//	role_id/<sha256(role_id)>      role name
//	secret_id/<name>/<sha256(id)>  secret ID entry (JSON)
//	accessor/<name>/<accessor>     sha256(id) of the secret ID
const (
	rolePrefix     = "role/"
	roleIDPrefix   = "role_id/"
	secretIDPrefix = "secret_id/"
	accessorPrefix = "accessor/"
)

const (
	secretIDBytes = 32 // 256 bits
	lockStripes   = 256
)

var roleNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)

// Config tunes an Engine. Its zero value gives the defaults.
type Config struct {
	// Now is the clock for expiry and rate limits. Default time.Now.
	Now func() time.Time
	// Rand is the source of secret IDs, role IDs and accessors. Default
	// crypto/rand.Reader.
	Rand io.Reader
	// FailuresPerMinute is how many failed logins a source address, and
	// separately a role ID, may have per minute on average. Zero means
	// DefaultFailuresPerMinute; a negative value turns rate limiting off.
	FailuresPerMinute int
	// Burst is how many failures may come at once before the per-minute
	// rate applies. Zero means FailuresPerMinute.
	Burst int
	// MaxTrackedKeys bounds the memory of each rate limiter (sources, role
	// IDs): beyond it, the least recently failing key is forgotten. Zero
	// means DefaultMaxTrackedKeys.
	MaxTrackedKeys int
}

// Engine is the AppRole auth method. It is safe for concurrent use.
type Engine struct {
	storage logical.Storage
	now     func() time.Time
	rand    io.Reader
	// roleStore keeps the role entries (role/<name>).
	roleStore *rolestore.Store[roleEntry]

	// sources and roles limit failed logins; nil when rate limiting is off.
	sources *ratelimit.Limiter
	roles   *ratelimit.Limiter

	seed  maphash.Seed
	locks [lockStripes]sync.Mutex // guard each role's entry, secret IDs and accessors, by hash of the name
	// roleIDMu guards the role_id index, so two roles never get one role ID.
	// Taken after a role lock, never before.
	roleIDMu sync.Mutex
}

// New returns an engine over s, its storage view.
func New(s logical.Storage, cfg Config) (*Engine, error) {
	if s == nil {
		return nil, errors.New("approle: nil storage")
	}
	if cfg.Burst < 0 {
		return nil, fmt.Errorf("approle: Burst must not be negative, got %d", cfg.Burst)
	}
	if cfg.MaxTrackedKeys < 0 {
		return nil, fmt.Errorf("approle: MaxTrackedKeys must not be negative, got %d", cfg.MaxTrackedKeys)
	}
	e := &Engine{
		storage: s, now: cfg.Now, rand: cfg.Rand, seed: maphash.MakeSeed(),
		roleStore: rolestore.New[roleEntry](s, "approle", rolePrefix),
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.rand == nil {
		e.rand = rand.Reader
	}
	limit := ratelimit.Settings{PerMinute: cfg.FailuresPerMinute, Burst: cfg.Burst, MaxKeys: cfg.MaxTrackedKeys}
	e.sources, e.roles = limit.New(), limit.New()
	return e, nil
}

// route is a request path split into what the handlers need.
type route struct {
	kind string // "login", "roles", "role", "role-id", "secret-id", "secret-id/lookup", ...
	name string // the role name, for role paths
}

// parsePath maps a relative path to its route.
func parsePath(p string) (route, error) {
	p = strings.Trim(p, "/")
	parts := strings.Split(p, "/")
	switch {
	case p == "login":
		return route{kind: "login"}, nil
	case p == "role":
		return route{kind: "roles"}, nil
	case p == "tidy/secret-id":
		return route{kind: "tidy"}, nil
	case parts[0] != "role" || len(parts) > 4:
		return route{}, fmt.Errorf("approle: %q: %w", field.Truncate(p, 128), logical.ErrUnsupportedPath)
	}
	name := parts[1]
	if err := validateName(name); err != nil {
		return route{}, err
	}
	sub := strings.Join(parts[2:], "/")
	switch sub {
	case "":
		return route{kind: "role", name: name}, nil
	case "role-id", "secret-id", "secret-id/lookup", "secret-id/destroy",
		"secret-id-accessor/lookup", "secret-id-accessor/destroy":
		return route{kind: sub, name: name}, nil
	}
	return route{}, fmt.Errorf("approle: %q: %w", field.Truncate(p, 128), logical.ErrUnsupportedPath)
}

func validateName(name string) error {
	if !roleNameRE.MatchString(name) || name == "." || name == ".." {
		return logical.Invalid("role_name", "must be 1 to 128 letters, digits, '_', '.' or '-' (and not . or ..)")
	}
	return nil
}

// HandleRequest serves one request routed to the mount.
func (e *Engine) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	rt, err := parsePath(req.RelativePath)
	if err != nil {
		return nil, err
	}
	data := req.Data
	if data == nil {
		data = map[string]any{}
	}
	write := req.Operation == logical.OpCreate || req.Operation == logical.OpUpdate
	del := req.Operation == logical.OpDelete
	switch {
	case rt.kind == "login" && write:
		return e.login(ctx, req, data)
	case rt.kind == "roles" && req.Operation == logical.OpList:
		return e.roleStore.List(ctx)
	case rt.kind == "role" && req.Operation == logical.OpRead:
		return e.readRole(ctx, rt.name)
	case rt.kind == "role" && write:
		return e.writeRole(ctx, rt.name, data)
	case rt.kind == "role" && del:
		return e.deleteRole(ctx, rt.name)
	case rt.kind == "role-id" && req.Operation == logical.OpRead:
		return e.readRoleID(ctx, rt.name)
	case rt.kind == "role-id" && write:
		return e.writeRoleID(ctx, rt.name, data)
	case rt.kind == "secret-id" && write:
		return e.generateSecretID(ctx, rt.name, data)
	case rt.kind == "secret-id" && req.Operation == logical.OpList:
		return e.listSecretIDs(ctx, rt.name)
	case rt.kind == "secret-id/lookup" && write:
		return e.lookupSecretID(ctx, rt.name, data)
	case rt.kind == "secret-id/destroy" && (write || del):
		return e.destroySecretID(ctx, rt.name, data, write)
	case rt.kind == "secret-id-accessor/lookup" && write:
		return e.lookupAccessor(ctx, rt.name, data)
	case rt.kind == "secret-id-accessor/destroy" && (write || del):
		return e.destroyAccessor(ctx, rt.name, data, write)
	case rt.kind == "tidy" && write:
		n, err := e.Tidy(ctx)
		if err != nil {
			return nil, err
		}
		return &logical.Response{Data: map[string]any{"secret_ids_deleted": n}}, nil
	}
	return nil, fmt.Errorf("approle: %s on %q: %w", req.Operation, field.Truncate(req.RelativePath, 128), logical.ErrUnsupportedOperation)
}

// Exists tells the core whether a write to role/<name> creates the role or
// updates it. Every other write path is an action (generate, look up,
// destroy, log in), answered as an update, as Vault does.
func (e *Engine) Exists(ctx context.Context, req *logical.Request) (bool, error) {
	rt, err := parsePath(req.RelativePath)
	if err != nil || rt.kind != "role" {
		return err == nil, nil
	}
	r, err := e.roleStore.Get(ctx, rt.name)
	if err != nil {
		return false, err
	}
	return r != nil, nil
}

// lockRole takes the lock of the role named name and returns its release.
func (e *Engine) lockRole(name string) func() {
	mu := &e.locks[maphash.String(e.seed, name)%lockStripes]
	mu.Lock()
	return mu.Unlock
}

// hashID is the form in which role and secret IDs appear in storage.
func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// newSecretID returns a fresh secret ID: 256 random bits, URL-safe base64.
func (e *Engine) newSecretID() (string, error) {
	b := make([]byte, secretIDBytes)
	if _, err := io.ReadFull(e.rand, b); err != nil {
		return "", fmt.Errorf("approle: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// newUUID returns a random (version 4) UUID, the form of role IDs and
// accessors.
func (e *Engine) newUUID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(e.rand, b[:]); err != nil {
		return "", fmt.Errorf("approle: random: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
