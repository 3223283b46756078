// Package logical defines the request and response that flow through the
// core's one request path (sealed? → authenticate → authorize → engine →
// audit), and the Engine interface that every mountable secrets engine and
// auth method implements.
//
// It is a leaf package: it imports nothing of the project but the storage
// interface, so engines depend on it and not on the core.
package logical

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/secrethub/secrethub/core/storage"
)

// Operation is what a request does to its path.
type Operation string

// The operations. Create and Update are both writes: Create when nothing
// is stored at the path yet, Update when something is. Engines decide
// which, through ExistenceChecker; without one, a write is an Update.
const (
	OpRead   Operation = "read"
	OpCreate Operation = "create"
	OpUpdate Operation = "update"
	OpDelete Operation = "delete"
	OpList   Operation = "list"
)

// Request is one API call, after the HTTP layer decoded it.
type Request struct {
	// ID is unique per request, for audit and logs.
	ID        string
	Operation Operation
	// Path is the full API path below /v1/, cleaned ("secrets/app/db").
	Path string
	// MountPath is the mount the router chose ("secrets/"), and
	// RelativePath the rest of Path below it ("app/db"). Set by the router.
	MountPath    string
	RelativePath string
	// Data is the decoded JSON body, or the query parameters for reads and
	// lists.
	Data map[string]any
	// ClientToken is the caller's token, if any. Engines must not log it.
	ClientToken string
	// ClientAddr is the caller's address; invalid when unknown.
	ClientAddr netip.Addr
	// PeerCertificates is the verified client certificate chain of an
	// mTLS connection (the agent listener), leaf first; nil otherwise.
	PeerCertificates []*x509.Certificate
	// Time is when the core received the request.
	Time time.Time

	// Set by the core after authentication:
	// TokenAccessor and Policies describe the caller; EntityName is the
	// token's display name.
	TokenAccessor string
	Policies      []string
	DisplayName   string
	// TokenTTL is the caller's token's remaining TTL (zero: none).
	TokenTTL time.Duration
}

// Response is what an engine answers.
type Response struct {
	// Data is the body's "data".
	Data map[string]any
	// Auth is set by auth methods on login and by token creation.
	Auth *Auth
	// Warnings are shown to the caller.
	Warnings []string
	// StatusCode overrides the default (200 with data, 204 without).
	StatusCode int
	// Raw, when set, is written as the whole body with RawContentType,
	// instead of an envelope (CA certificates in PEM, CRLs, ...).
	Raw            []byte
	RawContentType string
	// Secret, when set, is a credential the engine just created: the core
	// gives it a lease (the response then carries lease_id,
	// lease_duration and renewable), renews it through the engine's
	// SecretRenewer and revokes it through its SecretRevoker at expiry.
	Secret *Secret
}

// Secret is a leased credential an engine issued.
type Secret struct {
	// TTL is the lease's duration; MaxTTL bounds its renewals, counted
	// from issue. Zero MaxTTL means the core's default maximum.
	TTL, MaxTTL time.Duration
	// Renewable says whether the lease may be renewed.
	Renewable bool
	// InternalData is what the engine needs to renew or revoke the
	// credential (a user name, a role name, ...). It is stored encrypted
	// with the lease and never shown to clients. JSON-shaped values only.
	InternalData map[string]any
	// LeaseID is set by the core once the lease is stored (engines leave
	// it empty); TTL is then the lease's effective duration. The HTTP
	// layer writes them as lease_id, lease_duration and renewable.
	LeaseID string
}

// SecretLease is a lease as the core hands it back to the engine that
// issued its credential.
type SecretLease struct {
	// LeaseID is the lease's id, like "database/creds/app/<random>".
	LeaseID string
	// IssuePath is the request path that issued the credential, relative
	// to the mount ("creds/app").
	IssuePath string
	// InternalData is Secret.InternalData as it was issued.
	InternalData map[string]any
	// IssueTime is when the credential was issued; ExpireTime is when the
	// lease ends (for a renewal: the new end, already capped by the
	// lease's MaxTTL).
	IssueTime, ExpireTime time.Time
}

// SecretRenewer is implemented by engines whose leased credentials can be
// extended (a database role's VALID UNTIL, ...).
type SecretRenewer interface {
	// RenewSecret extends the credential of l to l.ExpireTime.
	RenewSecret(ctx context.Context, l *SecretLease) error
}

// SecretRevoker is implemented by every engine that answers with a
// Secret.
type SecretRevoker interface {
	// RevokeSecret removes the credential of l. It must be idempotent: a
	// credential already gone is revoked. An error means "try again
	// later" (the target is down): the core retries with backoff and
	// never forgets the lease.
	RevokeSecret(ctx context.Context, l *SecretLease) error
}

// Auth is a token handed to a client.
type Auth struct {
	ClientToken   string
	Accessor      string
	Policies      []string
	TokenPolicies []string
	Metadata      map[string]string
	LeaseDuration time.Duration
	Renewable     bool
	EntityID      string
	TokenType     string
	Orphan        bool
}

// Storage is the storage view an engine gets: the barrier's encrypted
// storage, confined to the engine's own prefix.
type Storage interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string) ([]string, error)
	Txn(ctx context.Context, ops []storage.Op) error
}

// Engine serves the requests routed to its mount.
type Engine interface {
	// HandleRequest serves req. RelativePath is relative to the mount.
	HandleRequest(ctx context.Context, req *Request) (*Response, error)
}

// ExistenceChecker lets the core tell a create from an update before
// authorizing a write.
type ExistenceChecker interface {
	// Exists reports whether something is stored at req's path.
	Exists(ctx context.Context, req *Request) (bool, error)
}

// Sentinel errors engines return; the HTTP layer maps them to statuses.
var (
	// ErrNotFound: nothing at the path (404).
	ErrNotFound = errors.New("not found")
	// ErrUnsupportedPath: the engine has no handler for the path (404).
	ErrUnsupportedPath = errors.New("unsupported path")
	// ErrUnsupportedOperation: the path exists but not for this operation
	// (405).
	ErrUnsupportedOperation = errors.New("unsupported operation")
	// ErrPermissionDenied: refused (403).
	ErrPermissionDenied = errors.New("permission denied")
	// ErrRequestTooLarge: the request body is over the limit (413).
	ErrRequestTooLarge = errors.New("request body too large")
	// ErrRateLimited: too many attempts (429).
	ErrRateLimited = errors.New("rate limited")
	// ErrUpstream: a system the engine manages (a database, Redis, AWS)
	// failed or could not be reached (502). The error's text is shown to
	// the caller, so engines name the target and the reason and keep
	// secrets out of it.
	ErrUpstream = errors.New("upstream failure")
	// ErrConflict: a check-and-set or similar precondition failed (400, as
	// Vault answers).
	ErrConflict = errors.New("check-and-set parameter did not match the current version")
)

// InvalidRequestError is bad input: the field (may be empty) and why. It
// answers 400.
type InvalidRequestError struct {
	Field  string
	Reason string
}

func (e *InvalidRequestError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Invalid returns an InvalidRequestError for field.
func Invalid(field, format string, args ...any) error {
	return &InvalidRequestError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
