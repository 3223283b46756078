// Package kubernetes is the Kubernetes auth method: a workload logs in
// with its service account token (a JWT the kubelet projects into the
// pod) and gets a core token carrying the policies of the role that binds
// its service account.
//
// The engine is a logical.Engine mounted under auth/ (auth/kubernetes/ by
// convention). It follows Vault's Kubernetes auth API — paths config,
// role/<name> and login, their fields and response shapes — so Vault
// clients and the Vault CLI work against it unchanged. Like the AppRole
// engine it never creates tokens: a successful login answers a
// logical.Auth plus the token parameters under approle.DataTokenMaxTTL and
// its siblings, and the core mints the token.
//
// A login is verified by the Kubernetes API server itself: the engine
// sends the JWT in a TokenReview (authentication.k8s.io/v1) to the
// configured API server, authenticated with the configured reviewer token
// (a service account bound to ClusterRole system:auth-delegator), or,
// without one, with the login JWT itself as Vault does. The login is
// accepted only when the API server says the token is authenticated, it
// names a service account ("system:serviceaccount:<namespace>:<name>")
// whose name and namespace match the role's bound lists (globs), and, when
// the role sets an audience, the token was issued for that audience.
//
// Security properties:
//
//   - The reviewer token is stored in the barrier (encrypted) and never
//     returned; a read of config says only whether one is set.
//   - A refused login answers a *LoginError, which matches
//     logical.ErrPermissionDenied (403 "permission denied" to the client);
//     its Reason, in the audit log and the server log, says why. No error
//     or log line holds a JWT.
//   - An API server that cannot be reached, or that refuses the reviewer,
//     answers an error matching logical.ErrUpstream (502) that names the
//     API server and the cause, and is logged.
//   - Failed logins are rate-limited per source address, in memory, as
//     AppRole does: while the limit is exceeded, login answers a
//     *RateLimitError before any TokenReview is sent. Unlike AppRole's
//     role IDs, role names are not secret, so there is no per-role limit:
//     anyone could use it to lock a role's workloads out.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	DefaultReviewTimeout     = 10 * time.Second
	// DefaultLocalCACertFile and DefaultLocalTokenFile are where a pod
	// finds its cluster's CA and its own service account token: used, as
	// Vault does, when the config leaves kubernetes_ca_cert or
	// token_reviewer_jwt empty and disable_local_ca_jwt is false.
	DefaultLocalCACertFile = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
	DefaultLocalTokenFile  = "/var/run/secrets/kubernetes.io/serviceaccount/token"
)

// Storage layout, relative to the engine's storage view.
const (
	configKey  = "config"
	rolePrefix = "role/"
)

var roleNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)

// Config tunes an Engine. Its zero value gives the defaults.
type Config struct {
	// Now is the clock of the rate limits. Default time.Now.
	Now func() time.Time
	// Logger receives refused logins (with their reason) and upstream
	// failures. Default: discard.
	Logger *slog.Logger
	// FailuresPerMinute is how many failed logins a source address may
	// have per minute on average. Zero means
	// DefaultFailuresPerMinute; a negative value turns rate limiting off.
	FailuresPerMinute int
	// Burst is how many failures may come at once before the per-minute
	// rate applies. Zero means FailuresPerMinute.
	Burst int
	// MaxTrackedKeys bounds the memory of the rate limiter. Zero means
	// DefaultMaxTrackedKeys.
	MaxTrackedKeys int
	// ReviewTimeout bounds one TokenReview call. Zero means
	// DefaultReviewTimeout.
	ReviewTimeout time.Duration
	// LocalCACertFile and LocalTokenFile override DefaultLocalCACertFile
	// and DefaultLocalTokenFile (for tests, or an unusual mount).
	LocalCACertFile string
	LocalTokenFile  string
}

// Engine is the Kubernetes auth method. It is safe for concurrent use.
type Engine struct {
	storage logical.Storage
	now     func() time.Time
	log     *slog.Logger
	timeout time.Duration

	localCA, localToken string

	// sources limits failed logins; nil when rate limiting is off.
	sources *ratelimit.Limiter

	roleStore *rolestore.Store[roleEntry]

	// mu serialises writes of config and roles, which read, merge and
	// write back.
	mu sync.Mutex
}

// New returns an engine over s, its storage view.
func New(s logical.Storage, cfg Config) (*Engine, error) {
	if s == nil {
		return nil, errors.New("kubernetes auth: nil storage")
	}
	if cfg.Burst < 0 {
		return nil, fmt.Errorf("kubernetes auth: Burst must not be negative, got %d", cfg.Burst)
	}
	if cfg.MaxTrackedKeys < 0 {
		return nil, fmt.Errorf("kubernetes auth: MaxTrackedKeys must not be negative, got %d", cfg.MaxTrackedKeys)
	}
	if cfg.ReviewTimeout < 0 {
		return nil, fmt.Errorf("kubernetes auth: ReviewTimeout must not be negative, got %s", cfg.ReviewTimeout)
	}
	e := &Engine{
		storage: s, now: cfg.Now, log: cfg.Logger, timeout: cfg.ReviewTimeout,
		localCA: cfg.LocalCACertFile, localToken: cfg.LocalTokenFile,
		roleStore: rolestore.New[roleEntry](s, "kubernetes auth", rolePrefix),
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.timeout == 0 {
		e.timeout = DefaultReviewTimeout
	}
	if e.localCA == "" {
		e.localCA = DefaultLocalCACertFile
	}
	if e.localToken == "" {
		e.localToken = DefaultLocalTokenFile
	}
	e.sources = ratelimit.Settings{PerMinute: cfg.FailuresPerMinute, Burst: cfg.Burst, MaxKeys: cfg.MaxTrackedKeys}.New()
	return e, nil
}

// route is a request path split into what the handlers need.
type route struct {
	kind string // "login", "config", "roles", "role"
	name string // the role name, for role paths
}

func parsePath(p string) (route, error) {
	p = strings.Trim(p, "/")
	switch {
	case p == "login":
		return route{kind: "login"}, nil
	case p == "config":
		return route{kind: "config"}, nil
	case p == "role":
		return route{kind: "roles"}, nil
	}
	name, ok := strings.CutPrefix(p, "role/")
	if !ok || strings.Contains(name, "/") {
		return route{}, fmt.Errorf("kubernetes auth: %q: %w", field.Truncate(p, 128), logical.ErrUnsupportedPath)
	}
	if err := validateName(name); err != nil {
		return route{}, err
	}
	return route{kind: "role", name: name}, nil
}

func validateName(name string) error {
	if !roleNameRE.MatchString(name) || name == "." || name == ".." {
		return logical.Invalid("role", "must be 1 to 128 letters, digits, '_', '.' or '-' (and not . or ..)")
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
	switch {
	case rt.kind == "login" && write:
		return e.login(ctx, req, data)
	case rt.kind == "config" && req.Operation == logical.OpRead:
		return e.readConfig(ctx)
	case rt.kind == "config" && write:
		return e.writeConfig(ctx, data)
	case rt.kind == "roles" && req.Operation == logical.OpList:
		return e.roleStore.List(ctx)
	case rt.kind == "role" && req.Operation == logical.OpRead:
		return e.readRole(ctx, rt.name)
	case rt.kind == "role" && write:
		return e.writeRole(ctx, rt.name, data)
	case rt.kind == "role" && req.Operation == logical.OpDelete:
		return nil, e.deleteRole(ctx, rt.name)
	}
	return nil, fmt.Errorf("kubernetes auth: %s on %q: %w", req.Operation, field.Truncate(req.RelativePath, 128), logical.ErrUnsupportedOperation)
}

// Exists tells the core whether a write to role/<name> or config creates
// it or updates it; login is an action, answered as an update.
func (e *Engine) Exists(ctx context.Context, req *logical.Request) (bool, error) {
	rt, err := parsePath(req.RelativePath)
	if err != nil {
		return false, nil
	}
	var raw []byte
	switch rt.kind {
	case "role":
		raw, err = logical.GetOptional(ctx, e.storage, rolePrefix+rt.name)
	case "config":
		raw, err = logical.GetOptional(ctx, e.storage, configKey)
	default:
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return raw != nil, nil
}
