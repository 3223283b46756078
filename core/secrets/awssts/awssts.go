// Package awssts is SecretHub's AWS secrets engine: it issues AWS
// credentials for roles, either as STS AssumeRole sessions or as IAM users
// made for the lease and deleted at its end.
//
// The engine is a logical.Engine (mount it with type "aws"). Its paths and
// fields follow Vault's AWS secrets engine, so Vault's client works
// unchanged:
//
//	config/root    access_key, secret_key, region, iam_endpoint,
//	               sts_endpoint, max_retries
//	config/lease   lease, lease_max: the lease of iam_user credentials
//	roles/:name    credential_type (iam_user or assumed_role),
//	               policy_document, policy_arns, role_arns,
//	               default_sts_ttl, max_sts_ttl, user_path
//	roles          LIST of role names
//	creds/:name    GET or PUT (ttl, role_arn, role_session_name): credentials
//	sts/:name      the same, for assumed_role only
//
// assumed_role calls sts:AssumeRole and returns access_key, secret_key and
// session_token (and security_token, its older name, as Vault does), with
// a lease as long as the session that is not renewable. STS credentials
// cannot be revoked before they expire: revoking their lease does nothing
// (as in Vault). Scope them with short TTLs and session policies.
//
// iam_user creates an IAM user secrethub-<role>-<time>-<random> under the
// role's user_path, puts the role's policy_document as an inline policy,
// attaches its policy_arns and creates an access key. Should a step fail,
// what was made is deleted again. Its lease is renewable (renewal only
// extends the lease); revoke deletes the user's access keys, inline and
// attached policies, then the user, and counts a user already gone as
// revoked.
//
// The root secret key is stored in the barrier (encrypted) and never
// returned, logged or put in an error. The engine builds its AWS clients
// from config/root alone: it never reads the environment, shared config
// files or the instance metadata service.
package awssts

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

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

// Defaults.
const (
	// DefaultTTL is an iam_user credential's lease when config/lease sets
	// none.
	DefaultTTL = time.Hour
	// DefaultSTSTTL is an assumed_role session's duration when neither the
	// request nor the role gives one (Vault's default).
	DefaultSTSTTL = time.Hour
	// MinSTSTTL and MaxSTSTTL are the bounds AWS puts on AssumeRole's
	// DurationSeconds.
	MinSTSTTL = 15 * time.Minute
	MaxSTSTTL = 12 * time.Hour
	// DefaultRegion is the region when config/root names none.
	DefaultRegion = "us-east-1"
)

// Credential types.
const (
	TypeIAMUser     = "iam_user"
	TypeAssumedRole = "assumed_role"
)

// Storage layout, relative to the engine's storage view.
const (
	rootKey    = "config/root"
	leaseKey   = "config/lease"
	rolePrefix = "role/"
)

var roleNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,64}$`)

// Sentinel errors callers branch on.
var (
	// ErrNotConfigured: config/root was not written yet (400).
	ErrNotConfigured error = &logical.InvalidRequestError{Field: "config/root", Reason: "this mount has no AWS credentials: write config/root first"}
	// ErrAWS wraps every failure of a call to AWS (network, refused
	// credentials, an AWS error). The error names the endpoint and AWS's
	// reason.
	ErrAWS = fmt.Errorf("aws call failed: %w", logical.ErrUpstream)
)

// Config configures an Engine at mount time. Its zero value gives the
// defaults.
type Config struct {
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Rand is the source of user and session names. Default
	// crypto/rand.Reader.
	Rand io.Reader
	// HTTPClient makes the calls to AWS. Default: a client with a 30 s
	// timeout.
	HTTPClient *http.Client
}

// Engine is the AWS secrets engine. Create it with New; it is safe for
// concurrent use.
type Engine struct {
	storage    logical.Storage
	now        func() time.Time
	rand       io.Reader
	httpClient *http.Client
	roleStore  *rolestore.Store[roleEntry]
}

// New returns an engine over s, its storage view.
func New(s logical.Storage, cfg Config) (*Engine, error) {
	if s == nil {
		return nil, errors.New("awssts: nil storage")
	}
	e := &Engine{
		storage: s, now: cfg.Now, rand: cfg.Rand, httpClient: cfg.HTTPClient,
		roleStore: rolestore.New[roleEntry](s, "aws", rolePrefix),
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.rand == nil {
		e.rand = rand.Reader
	}
	if e.httpClient == nil {
		e.httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	return e, nil
}

type route struct {
	kind string // "config/root", "config/lease", "roles", "role", "creds", "sts"
	name string
}

func parsePath(p string) (route, error) {
	p = strings.Trim(p, "/")
	switch p {
	case "config/root", "config/lease", "roles":
		return route{kind: p}, nil
	}
	kind, name, ok := strings.Cut(p, "/")
	if ok && (kind == "roles" || kind == "creds" || kind == "sts") && !strings.Contains(name, "/") {
		if !roleNameRE.MatchString(name) || name == "." || name == ".." {
			return route{}, logical.Invalid("name", "a role name is 1 to 64 letters, digits, '_', '.' or '-'")
		}
		if kind == "roles" {
			kind = "role"
		}
		return route{kind: kind, name: name}, nil
	}
	return route{}, fmt.Errorf("aws: %q: %w", field.Truncate(p, 128), logical.ErrUnsupportedPath)
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
	case rt.kind == "config/root" && op == logical.OpRead:
		return e.readRoot(ctx)
	case rt.kind == "config/root" && write:
		return e.writeRoot(ctx, data)
	case rt.kind == "config/lease" && op == logical.OpRead:
		return e.readLease(ctx)
	case rt.kind == "config/lease" && write:
		return e.writeLease(ctx, data)
	case rt.kind == "roles" && op == logical.OpList:
		return e.roleStore.List(ctx)
	case rt.kind == "role" && op == logical.OpRead:
		return e.readRole(ctx, rt.name)
	case rt.kind == "role" && write:
		return e.writeRole(ctx, rt.name, data)
	case rt.kind == "role" && op == logical.OpDelete:
		return nil, e.roleStore.Delete(ctx, rt.name)
	case (rt.kind == "creds" || rt.kind == "sts") && (op == logical.OpRead || write):
		return e.issue(ctx, rt.name, rt.kind == "sts", data)
	}
	return nil, fmt.Errorf("aws: %s on %q: %w", op, field.Truncate(req.RelativePath, 128), logical.ErrUnsupportedOperation)
}

// Exists tells the core whether a write to a config or role path creates
// or updates it; creds and sts are actions, answered as updates.
func (e *Engine) Exists(ctx context.Context, req *logical.Request) (bool, error) {
	if req == nil {
		return false, logical.Invalid("", "no request")
	}
	rt, err := parsePath(req.RelativePath)
	if err != nil {
		return false, nil
	}
	var key string
	switch rt.kind {
	case "config/root":
		key = rootKey
	case "config/lease":
		key = leaseKey
	case "role":
		key = rolePrefix + rt.name
	default:
		return true, nil
	}
	raw, err := logical.GetOptional(ctx, e.storage, key)
	return raw != nil, err
}

func seconds(d time.Duration) int64 { return int64(d / time.Second) }
