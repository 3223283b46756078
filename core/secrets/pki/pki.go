// Package pki is SecretHub's PKI secrets engine: a certificate authority
// per mount that issues X.509 certificates to roles, signs CSRs, revokes
// certificates and publishes a CRL.
//
// The engine is a logical.Engine (mounted at pki/ by default). Its paths,
// fields and response shapes follow Vault's PKI engine wherever Vault has
// the same operation, so github.com/hashicorp/vault/api's Logical() calls
// work unchanged: root/generate/{internal,exported}, DELETE root,
// root/sign-intermediate, intermediate/generate/{internal,exported},
// intermediate/set-signed, roles/:name, issue/:role, sign/:role, revoke,
// crl, crl/pem, ca, ca/pem, ca_chain, cert/:serial, certs and config/urls.
// docs/pki.md describes each.
//
// A mount has at most one CA: a root generated here, or an intermediate
// whose key was generated here and whose certificate was signed elsewhere
// (often by another mount's root/sign-intermediate) and imported with
// intermediate/set-signed. Replacing it takes a DELETE of root first.
//
// What is stored (in the engine's storage view, which the barrier
// encrypts): the CA certificate, its chain and its private key; a pending
// intermediate key; roles; config/urls; every issued certificate by
// serial (unless its role says no_store), with its revocation time; an
// index of revoked serials; and the current CRL. The private keys of
// issued leaf certificates are never stored: issue returns them once.
//
// Validity: a certificate is valid from 30 seconds before it is issued
// (clock skew) to the requested TTL, but never beyond its CA's NotAfter. A
// TTL above the role's max_ttl is refused (400), not capped.
//
// The engine also serves the core directly, without roles, as the CA of
// agent mTLS: GenerateRoot, SignCSR, CAPool and IsRevoked.
//
// Concurrency: the CA certificate and key are parsed once and kept in
// memory, replaced when this engine changes the CA. Revocations and CRL
// builds are serialised by a mutex. Like the other engines, this assumes
// one active core handles requests for a mount at a time: another node
// changing the CA in the same storage would not be seen until restart.
package pki

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
	"github.com/secrethub/secrethub/core/logical/rolestore"
)

var (
	_ logical.Engine           = (*Engine)(nil)
	_ logical.ExistenceChecker = (*Engine)(nil)
)

// Defaults of Config and of requests.
const (
	// DefaultTTL is a leaf certificate's TTL when neither the request nor
	// the role gives one (Vault's system default, 32 days).
	DefaultTTL = 768 * time.Hour
	// DefaultMaxTTL is the longest TTL of a leaf certificate whose role has
	// no max_ttl.
	DefaultMaxTTL = 768 * time.Hour
	// DefaultCRLValidity is how long a CRL is valid (its NextUpdate).
	DefaultCRLValidity = 72 * time.Hour
	// DefaultRootTTL is a root certificate's TTL when the request gives
	// none: 10 years.
	DefaultRootTTL = 87600 * time.Hour
	// DefaultIntermediateTTL is the TTL of a certificate made by
	// root/sign-intermediate when the request gives none: 5 years (never
	// beyond the signing CA).
	DefaultIntermediateTTL = 43800 * time.Hour
	// ClockSkew is how far before its issue a certificate becomes valid.
	ClockSkew = 30 * time.Second
)

// Storage layout, relative to the engine's storage view:
//
//	config/ca          the CA: certificate, chain, private key (JSON)
//	config/ca_pending  a pending intermediate: private key and CSR (JSON)
//	config/urls        issuing, CRL and OCSP URLs (JSON)
//	role/<name>        a role (JSON)
//	certs/<serial>     an issued certificate and its revocation (JSON)
//	revoked/<serial>   a revoked serial: time, expiry, issuer (JSON)
//	crl                the current CRL and its number (JSON)
//
// Serials in keys are hex bytes joined by "-", as in Vault.
const (
	caKey         = "config/ca"
	pendingKey    = "config/ca_pending"
	urlsKey       = "config/urls"
	rolePrefix    = "role/"
	certsPrefix   = "certs/"
	revokedPrefix = "revoked/"
	crlKey        = "crl"
)

var roleNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)

// Sentinel errors callers branch on. Both are also InvalidRequestErrors,
// so the HTTP layer answers them with 400.
var (
	// ErrNoCA: the mount has no CA to sign with yet.
	ErrNoCA error = &logical.InvalidRequestError{Reason: "this mount has no CA: generate a root, or an intermediate and set its signed certificate, first"}
	// ErrCAExists: the mount already has a CA (or, for set-signed, the
	// intermediate was already imported).
	ErrCAExists error = &logical.InvalidRequestError{Reason: "this mount already has a CA: delete it (DELETE root) before making another"}
)

// Config configures an Engine at mount time. Its zero value gives the
// defaults.
type Config struct {
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Rand is the source of serial numbers and of the random input to
	// signatures and keys. Default crypto/rand.Reader. (Since Go 1.26 the
	// standard library ignores it for keys and signatures and always uses
	// its own secure source; serial numbers always come from it.)
	Rand io.Reader
	// DefaultTTL is a leaf certificate's TTL when neither the request nor
	// the role says. Zero means DefaultTTL.
	DefaultTTL time.Duration
	// MaxTTL is the longest TTL of a leaf certificate whose role has no
	// max_ttl. Zero means DefaultMaxTTL.
	MaxTTL time.Duration
	// CRLValidity is how long each CRL is valid. Zero means
	// DefaultCRLValidity. A CRL is rebuilt at each revocation, and when
	// read after half its validity has passed.
	CRLValidity time.Duration
}

// Engine is the PKI secrets engine. Create it with New; it is safe for
// concurrent use.
type Engine struct {
	storage     logical.Storage
	now         func() time.Time
	rand        io.Reader
	defaultTTL  time.Duration
	maxTTL      time.Duration
	crlValidity time.Duration
	roleStore   *rolestore.Store[roleEntry]

	// ca is the parsed CA, or nil before it was first loaded. Readers load
	// it without a lock; writers replace it holding caMu.
	ca atomic.Pointer[caState]
	// caMu serialises loads and changes of the CA and of the pending
	// intermediate key.
	caMu sync.Mutex

	// urls is config/urls, or nil before it was first loaded; replaced
	// holding urlsMu.
	urls   atomic.Pointer[urlsEntry]
	urlsMu sync.Mutex

	// crlMu serialises revocations and CRL builds, so CRL numbers increase
	// and each CRL holds every revocation before it.
	crlMu sync.Mutex
}

// New returns an engine over s, its storage view.
func New(s logical.Storage, cfg Config) (*Engine, error) {
	if s == nil {
		return nil, errors.New("pki: nil storage")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"DefaultTTL", cfg.DefaultTTL}, {"MaxTTL", cfg.MaxTTL}, {"CRLValidity", cfg.CRLValidity}} {
		if d.v < 0 || d.v > maxTTL {
			return nil, fmt.Errorf("pki: %s %s out of range", d.name, d.v)
		}
	}
	e := &Engine{
		storage:     s,
		now:         cfg.Now,
		rand:        cfg.Rand,
		defaultTTL:  cfg.DefaultTTL,
		maxTTL:      cfg.MaxTTL,
		crlValidity: cfg.CRLValidity,
		roleStore:   rolestore.New[roleEntry](s, "pki", rolePrefix),
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
	if e.maxTTL == 0 {
		e.maxTTL = DefaultMaxTTL
	}
	if e.crlValidity == 0 {
		e.crlValidity = DefaultCRLValidity
	}
	return e, nil
}

// route is a request path split into what the handlers need.
type route struct {
	kind string // "root/generate", "roles", "role", "issue", "cert", ...
	arg  string // the role name, serial, or internal/exported
}

// DefaultRoleName is the role the bare issue path (the seed's
// POST /v1/pki/issue) uses.
const DefaultRoleName = "default"

// fixedRoute returns the route of a path without a parameter. The bare
// issue path is the seed's POST /v1/pki/issue, which issues with the role
// named default.
func fixedRoute(p string) (route, bool) {
	switch p {
	case "root/generate/internal":
		return route{"root/generate", "internal"}, true
	case "root/generate/exported":
		return route{"root/generate", "exported"}, true
	case "root":
		return route{"root", ""}, true
	case "root/sign-intermediate":
		return route{"root/sign-intermediate", ""}, true
	case "intermediate/generate/internal":
		return route{"intermediate/generate", "internal"}, true
	case "intermediate/generate/exported":
		return route{"intermediate/generate", "exported"}, true
	case "intermediate/set-signed":
		return route{"intermediate/set-signed", ""}, true
	case "roles":
		return route{"roles", ""}, true
	case "revoke":
		return route{"revoke", ""}, true
	case "crl":
		return route{"crl", ""}, true
	case "crl/pem":
		return route{"crl/pem", ""}, true
	case "ca":
		return route{"ca", ""}, true
	case "ca/pem":
		return route{"ca/pem", ""}, true
	case "ca_chain":
		return route{"ca_chain", ""}, true
	case "certs":
		return route{"certs", ""}, true
	case "config/urls":
		return route{"config/urls", ""}, true
	case "issue":
		return route{"issue", DefaultRoleName}, true
	}
	return route{}, false
}

// parsePath maps a relative path to its route.
func parsePath(p string) (route, error) {
	p = strings.Trim(p, "/")
	if rt, ok := fixedRoute(p); ok {
		return rt, nil
	}
	kind, arg, ok := strings.Cut(p, "/")
	if ok && !strings.Contains(arg, "/") {
		switch kind {
		case "roles", "issue", "sign":
			if !roleNameRE.MatchString(arg) || arg == "." || arg == ".." {
				return route{}, logical.Invalid("name", "a role name is 1 to 128 letters, digits, '_', '.' or '-'")
			}
			if kind == "roles" {
				kind = "role"
			}
			return route{kind, arg}, nil
		case "cert":
			return route{kind, arg}, nil
		}
	}
	return route{}, fmt.Errorf("pki: %q: %w", field.Truncate(p, 128), logical.ErrUnsupportedPath)
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
	read := op == logical.OpRead
	switch {
	case rt.kind == "root/generate" && write:
		return e.handleGenerateRoot(ctx, data, rt.arg == "exported")
	case rt.kind == "root" && op == logical.OpDelete:
		return e.deleteCA(ctx)
	case rt.kind == "root/sign-intermediate" && write:
		return e.handleSignIntermediate(ctx, data)
	case rt.kind == "intermediate/generate" && write:
		return e.handleGenerateIntermediate(ctx, data, rt.arg == "exported")
	case rt.kind == "intermediate/set-signed" && write:
		return e.handleSetSigned(ctx, data)
	case rt.kind == "roles" && op == logical.OpList:
		return e.roleStore.List(ctx)
	case rt.kind == "role" && read:
		return e.readRole(ctx, rt.arg)
	case rt.kind == "role" && write:
		return e.writeRole(ctx, rt.arg, data)
	case rt.kind == "role" && op == logical.OpDelete:
		return nil, e.roleStore.Delete(ctx, rt.arg)
	case rt.kind == "issue" && write:
		return e.handleIssue(ctx, rt.arg, data)
	case rt.kind == "sign" && write:
		return e.handleSign(ctx, rt.arg, data)
	case rt.kind == "revoke" && write:
		return e.handleRevoke(ctx, data)
	case rt.kind == "crl" && read, rt.kind == "crl/pem" && read:
		return e.readCRL(ctx, rt.kind == "crl/pem")
	case rt.kind == "ca" && read, rt.kind == "ca/pem" && read, rt.kind == "ca_chain" && read:
		return e.readCARaw(ctx, rt.kind)
	case rt.kind == "cert" && read:
		return e.readCert(ctx, rt.arg)
	case rt.kind == "certs" && op == logical.OpList:
		return e.listCerts(ctx)
	case rt.kind == "config/urls" && read:
		return e.readURLs(ctx)
	case rt.kind == "config/urls" && write:
		return e.writeURLs(ctx, data)
	}
	return nil, fmt.Errorf("pki: %s on %q: %w", op, field.Truncate(req.RelativePath, 128), logical.ErrUnsupportedOperation)
}

// Exists tells the core whether a write to roles/<name> creates the role
// or updates it. Every other write path is an action (generate, issue,
// sign, revoke, ...), answered as an update, as Vault does.
func (e *Engine) Exists(ctx context.Context, req *logical.Request) (bool, error) {
	if req == nil {
		return false, logical.Invalid("", "no request")
	}
	rt, err := parsePath(req.RelativePath)
	if err != nil || rt.kind != "role" {
		return err == nil, nil
	}
	r, err := e.roleStore.Get(ctx, rt.arg)
	if err != nil {
		return false, err
	}
	return r != nil, nil
}
