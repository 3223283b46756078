// Package core wires SecretHub's core together: storage, the seal, the
// barrier and the token store. The HTTP layer (core/http) calls the Core's
// methods and does nothing but translate between JSON and these calls.
package core

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/secrethub/secrethub/core/agents"
	"github.com/secrethub/secrethub/core/audit"
	"github.com/secrethub/secrethub/core/barrier"
	"github.com/secrethub/secrethub/core/lease"
	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/policy"
	"github.com/secrethub/secrethub/core/rotation"
	"github.com/secrethub/secrethub/core/seal"
	"github.com/secrethub/secrethub/core/storage"
	"github.com/secrethub/secrethub/core/token"
	"github.com/secrethub/secrethub/internal/version"
)

// Version is SecretHub's version, reported by health and seal status.
const Version = version.Version

// unsealTimeout bounds the work of an unseal: opening the keyring, the
// audit log and the mounts.
const unsealTimeout = 2 * time.Minute

// clusterPath holds the cluster's name and ID, written at initialization.
const clusterPath = "core/cluster"

var (
	// ErrSealed is returned for any request that needs the barrier while the
	// core is sealed.
	ErrSealed = barrier.ErrSealed
	// ErrNotInitialized is returned by requests that need an initialized
	// core.
	ErrNotInitialized = errors.New("core: not initialized")
	// ErrAlreadyInitialized is returned by Init on an initialized core.
	ErrAlreadyInitialized = errors.New("core: already initialized")
	// ErrPermissionDenied is returned when the token is missing, unknown,
	// expired, or lacks the rights for the request. The cause is logged, not
	// returned, so callers cannot probe for tokens.
	ErrPermissionDenied = errors.New("permission denied")
)

// InvalidRequestError is bad input from a client: the field and the reason.
type InvalidRequestError = logical.InvalidRequestError

// Config is what New needs. Backend is required; the rest have defaults.
type Config struct {
	Backend storage.Backend
	// StorageType names the backend in seal status ("postgres", "file",
	// "inmem").
	StorageType string
	// Logger receives structured logs. It never receives key material,
	// shares or tokens. Default: slog.Default().
	Logger *slog.Logger
	// Rand is the source of every key, nonce and token. Default crypto/rand.
	Rand io.Reader
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// AuditSinks receive every request's audit event; the first holds the
	// chain of record. With none, the core refuses to unseal: requests
	// must be audited. The core never closes them: their owner does, after
	// the core is done.
	AuditSinks []AuditSink
	// DefaultTokenTTL and MaxTokenTTL bound token lifetimes. Defaults
	// DefaultTokenTTL and MaxTokenTTL (768h).
	DefaultTokenTTL time.Duration
	MaxTokenTTL     time.Duration
	// AgentCertTTL is the validity of agent client certificates. Default
	// DefaultAgentCertTTL (30 days).
	AgentCertTTL time.Duration
	// AgentServerNames are the DNS names and IPs agents reach the agent
	// listener by, for its certificate (localhost and loopback are always
	// included).
	AgentServerNames []string
	// LeaseClock drives lease expiry and revocation retries. Default: Now
	// with real timers. Tests set a clock they can advance.
	LeaseClock lease.Clock
	// ExtraEngines adds mountable secrets engine types beside the built-in
	// ones, by type name; one named like a built-in type replaces it.
	// Tests mount in-test engines with it.
	ExtraEngines map[string]EngineFactory
}

// EngineFactory builds an engine over its mount's storage view.
type EngineFactory func(view logical.Storage) (logical.Engine, error)

// Core is one SecretHub server's state.
type Core struct {
	backend     storage.Backend
	storageType string
	log         *slog.Logger
	rand        io.Reader
	now         func() time.Time

	seal       *seal.Seal
	barrier    *barrier.Barrier
	tokens     *token.Store
	policies   *policy.Store
	auditSinks []AuditSink
	// agents is the registry of connected agents; its connections are
	// closed when the core seals.
	agents *agents.Registry

	defaultTokenTTL  time.Duration
	maxTokenTTL      time.Duration
	agentCertTTL     time.Duration
	agentServerNames []string
	leaseClock       lease.Clock
	extraEngines     map[string]EngineFactory

	// active is the unsealed state requests are served with; nil while
	// sealed.
	active atomic.Pointer[activeState]
	// reqLock is held shared by every request from loading active to
	// writing its audit event, and exclusively by seal, which so waits for
	// requests in flight before it closes the audit log.
	reqLock sync.RWMutex
	// mountsMu serializes mount table changes.
	mountsMu sync.Mutex

	// stateMu serializes init, unseal and seal, so the barrier's state and
	// the cluster identity change together.
	stateMu sync.Mutex

	// rotation is the rotation scheduler, running while unsealed; nil
	// while sealed.
	rotation atomic.Pointer[rotation.Scheduler]
}

type clusterInfo struct {
	Name string `json:"name"`
	ID   string `json:"id"`
}

// New returns a sealed core over cfg.Backend.
func New(cfg Config) (*Core, error) {
	if cfg.Backend == nil {
		return nil, errors.New("core: no storage backend")
	}
	c := &Core{
		backend:          cfg.Backend,
		storageType:      cfg.StorageType,
		log:              cfg.Logger,
		rand:             cfg.Rand,
		now:              cfg.Now,
		auditSinks:       cfg.AuditSinks,
		defaultTokenTTL:  cfg.DefaultTokenTTL,
		maxTokenTTL:      cfg.MaxTokenTTL,
		agentCertTTL:     cfg.AgentCertTTL,
		agentServerNames: cfg.AgentServerNames,
		leaseClock:       cfg.LeaseClock,
		extraEngines:     cfg.ExtraEngines,
	}
	if c.agentCertTTL <= 0 {
		c.agentCertTTL = DefaultAgentCertTTL
	}
	if c.defaultTokenTTL <= 0 {
		c.defaultTokenTTL = DefaultTokenTTL
	}
	if c.maxTokenTTL <= 0 {
		c.maxTokenTTL = MaxTokenTTL
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.rand == nil {
		c.rand = rand.Reader
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.seal = seal.New(c.backend, c.rand)
	c.barrier = barrier.New(c.backend, barrier.Options{Rand: c.rand, Now: c.now})
	c.tokens = token.New(c.barrier, c.rand, c.now)
	c.policies = policy.NewStore(c.barrier)
	c.agents = agents.New(agents.Options{Now: c.now, Rand: c.rand})
	return c, nil
}

// InitRequest asks for initialization.
type InitRequest struct {
	// SecretShares and SecretThreshold shape the unseal key split; zero
	// means the default (5 and 3).
	SecretShares    int
	SecretThreshold int
	// RootTokenID, when set, is used as the root token instead of a random
	// one. Only dev mode sets it.
	RootTokenID string
}

// InitResult is shown to the operator once and never stored.
type InitResult struct {
	Shares    [][]byte
	RootToken string
}

// Initialized reports whether the core has been initialized.
func (c *Core) Initialized(ctx context.Context) (bool, error) {
	return c.barrier.Initialized(ctx)
}

// Init makes the root key, the keyring, the unseal key shares and a root
// token, and stores everything but the shares and the token in one
// transaction. The core stays sealed.
func (c *Core) Init(ctx context.Context, req InitRequest) (*InitResult, error) {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	cfg := seal.Config{Shares: req.SecretShares, Threshold: req.SecretThreshold}.WithDefaults()
	if err := cfg.Validate(); err != nil {
		var fe *seal.FieldError
		if errors.As(err, &fe) {
			return nil, &InvalidRequestError{Field: fe.Field, Reason: fe.Reason}
		}
		return nil, err
	}
	if req.RootTokenID != "" {
		if err := token.ValidateID(req.RootTokenID); err != nil {
			return nil, &InvalidRequestError{Field: "root_token_id", Reason: err.Error()}
		}
	}
	if ok, err := c.barrier.Initialized(ctx); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	} else if ok {
		return nil, ErrAlreadyInitialized
	}

	rootKey := make([]byte, barrier.KeySize)
	defer clear(rootKey)
	if _, err := io.ReadFull(c.rand, rootKey); err != nil {
		return nil, fmt.Errorf("init: generate root key: %w", err)
	}
	shares, sealOps, err := c.seal.Prepare(cfg, rootKey)
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	rootToken, _, tokenOps, err := c.tokens.Prepare(req.RootTokenID, token.Entry{
		Policies: []string{token.RootPolicy}, DisplayName: "root", Path: "auth/token/root",
	})
	if err != nil {
		return nil, fmt.Errorf("init: root token: %w", err)
	}
	cluster, err := c.newClusterInfo()
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	clusterJSON, err := json.Marshal(cluster)
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	sealedOps := append(tokenOps, storage.PutOp(clusterPath, clusterJSON))
	if err := c.barrier.Initialize(ctx, rootKey, sealOps, sealedOps); err != nil {
		if errors.Is(err, barrier.ErrAlreadyInitialized) {
			return nil, ErrAlreadyInitialized
		}
		return nil, fmt.Errorf("init: %w", err)
	}
	c.log.InfoContext(ctx, "core initialized",
		"secret_shares", cfg.Shares, "secret_threshold", cfg.Threshold, "cluster_name", cluster.Name)
	return &InitResult{Shares: shares, RootToken: rootToken}, nil
}

func (c *Core) newClusterInfo() (clusterInfo, error) {
	id, err := c.uuid()
	if err != nil {
		return clusterInfo{}, fmt.Errorf("cluster id: %w", err)
	}
	return clusterInfo{Name: "secrethub-cluster-" + id[:8], ID: id}, nil
}

// SealStatus is the seal's state as shown by sys/seal-status and
// sys/unseal.
type SealStatus struct {
	Type        string
	Initialized bool
	Sealed      bool
	Threshold   int
	Shares      int
	Progress    int
	Nonce       string
	ClusterName string
	ClusterID   string
	StorageType string
}

// SealStatus reports the seal's state.
// It takes no lock: health probes must answer while an unseal or a seal
// is in progress.
func (c *Core) SealStatus(ctx context.Context) (SealStatus, error) {
	st := SealStatus{Type: seal.Type, Sealed: c.Sealed(), StorageType: c.storageType}
	cfg, err := c.seal.Config(ctx)
	if errors.Is(err, seal.ErrNotInitialized) {
		st.Sealed = true
		return st, nil
	}
	if err != nil {
		return SealStatus{}, fmt.Errorf("seal status: %w", err)
	}
	st.Initialized = true
	st.Threshold, st.Shares = cfg.Threshold, cfg.Shares
	st.Progress, st.Nonce = c.seal.Progress()
	if active := c.active.Load(); active != nil {
		st.ClusterName, st.ClusterID = active.cluster.Name, active.cluster.ID
	}
	return st, nil
}

// Unseal submits one unseal key share. When it completes the threshold and
// the shares combine into the right key, the core unseals. A wrong or
// foreign share is reported as an InvalidRequestError and the unseal
// attempt starts over. Unsealing an unsealed core does nothing.
func (c *Core) Unseal(ctx context.Context, share []byte) (SealStatus, error) {
	// A client that hangs up on the last share must not abort the unseal
	// half way (and lose the shares given so far).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unsealTimeout)
	defer cancel()
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	if !c.Sealed() {
		return c.SealStatus(ctx)
	}
	_, rootKey, err := c.seal.Submit(ctx, share)
	switch {
	case errors.Is(err, seal.ErrNotInitialized):
		return SealStatus{}, ErrNotInitialized
	case errors.Is(err, seal.ErrInvalidShare), errors.Is(err, seal.ErrDuplicateShare):
		return SealStatus{}, &InvalidRequestError{Field: "key", Reason: err.Error()}
	case errors.Is(err, seal.ErrWrongShares):
		c.log.WarnContext(ctx, "unseal failed: shares do not combine into the unseal key; progress reset")
		return SealStatus{}, &InvalidRequestError{Field: "key", Reason: err.Error()}
	case err != nil:
		return SealStatus{}, fmt.Errorf("unseal: %w", err)
	}
	if rootKey != nil {
		defer clear(rootKey)
		if err := c.unsealWithRootKey(ctx, rootKey); err != nil {
			return SealStatus{}, err
		}
		c.log.InfoContext(ctx, "core unsealed")
	}
	return c.SealStatus(ctx)
}

// unsealWithRootKey opens the barrier and loads what the core needs while
// unsealed. On failure the barrier is left sealed.
func (c *Core) unsealWithRootKey(ctx context.Context, rootKey []byte) error {
	if err := c.barrier.Unseal(ctx, rootKey); err != nil {
		if errors.Is(err, barrier.ErrBadRootKey) {
			// The seal verified the unseal key, so the stored keyring and
			// root key disagree: storage was tampered with or restored
			// from mismatched backups.
			return fmt.Errorf("unseal: stored keyring does not match the sealed root key: %w", err)
		}
		return fmt.Errorf("unseal: %w", err)
	}
	raw, err := c.barrier.Get(ctx, clusterPath)
	if err != nil {
		c.barrier.Seal()
		return fmt.Errorf("unseal: read cluster info: %w", err)
	}
	var ci clusterInfo
	if err := json.Unmarshal(raw, &ci); err != nil {
		c.barrier.Seal()
		return fmt.Errorf("unseal: decode cluster info: %w", err)
	}
	st, err := c.activate(ctx, rootKey, ci.Name)
	if err != nil {
		c.barrier.Seal()
		return fmt.Errorf("unseal: %w", err)
	}
	st.cluster = ci
	c.active.Store(st)
	// The lease manager starts once the engines are reachable: leases that
	// expired while sealed are revoked through them at once.
	if err := st.leases.Start(ctx); err != nil {
		c.sealLocked(ctx)
		return fmt.Errorf("unseal: %w", err)
	}
	// Rotations that fell due while sealed run at once.
	if err := c.startRotation(); err != nil {
		c.sealLocked(ctx)
		return fmt.Errorf("unseal: %w", err)
	}
	return nil
}

// activate builds what an unsealed core serves with: the audit log (keys
// derived from the root key), the mount table and its engines.
func (c *Core) activate(ctx context.Context, rootKey []byte, clusterName string) (*activeState, error) {
	if len(c.auditSinks) == 0 {
		return nil, errors.New("no audit sink configured: SecretHub audits every request and will not serve without one")
	}
	keys, err := audit.DeriveKeys(rootKey)
	if err != nil {
		return nil, fmt.Errorf("audit keys: %w", err)
	}
	sinks := make([]audit.Sink, len(c.auditSinks))
	for i, s := range c.auditSinks {
		if ps, ok := s.Sink.(audit.PipelineSink); ok {
			sinks[i] = keepOpenPipeline{ps}
		} else {
			sinks[i] = keepOpen{s.Sink}
		}
	}
	alog, err := audit.Open(ctx, keys, audit.Options{Now: c.now}, sinks...)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	mounts, err := c.loadMounts(ctx)
	if err != nil {
		alog.Close()
		return nil, err
	}
	engines, err := c.buildEngines(mounts)
	if err != nil {
		alog.Close()
		return nil, err
	}
	leases, err := c.newLeaseManager()
	if err != nil {
		alog.Close()
		return nil, err
	}
	st := &activeState{mounts: mounts, engines: engines, audit: alog, auditKeys: keys, leases: leases}
	if err := c.ensureAgentCA(ctx, st, clusterName); err != nil {
		alog.Close()
		return nil, err
	}
	return st, nil
}

// sealLocked drops the unsealed state and the barrier's keys. stateMu
// must be held.
func (c *Core) sealLocked(ctx context.Context) {
	// Before reqLock: a rotation in progress holds it shared.
	c.stopRotation()
	c.reqLock.Lock()
	defer c.reqLock.Unlock()
	if st := c.active.Load(); st != nil {
		// Before the engines and the barrier go: background revocations
		// in flight finish or are cut off and rerun after the next unseal.
		st.leases.Stop()
	}
	st := c.active.Swap(nil)
	// Agents reconnect and read everything again after the unseal.
	c.agents.CloseAll("SecretHub is sealed")
	c.barrier.Seal()
	c.seal.Reset()
	if st != nil {
		// Requests in flight that already loaded st finish their audit
		// write first: Close drains the queue.
		if err := st.audit.Close(); err != nil {
			c.log.ErrorContext(ctx, "closing the audit log", "error", err.Error())
		}
		// No request runs now (reqLock): engines let go of their
		// connections; the next unseal makes new ones.
		for path, eng := range st.engines {
			closeEngine(ctx, c.log, path, eng)
		}
	}
}

// Shutdown seals the core in memory before the process exits, so queued
// audit events are written and keys are zeroed.
func (c *Core) Shutdown(ctx context.Context) {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	c.sealLocked(ctx)
}

// AuditSink is a named audit sink.
type AuditSink struct {
	// Name identifies the sink in sys/audit/verify ("postgres", "file").
	Name string
	Sink audit.Sink
}

// keepOpen shields a sink shared across unseals from the audit log's
// Close.
type keepOpen struct{ audit.Sink }

func (keepOpen) Close() error { return nil }

// keepOpenPipeline is keepOpen for a PipelineSink, which stays one.
type keepOpenPipeline struct{ audit.PipelineSink }

func (keepOpenPipeline) Close() error { return nil }

// uuid returns a random version 4 UUID from the core's random source.
func (c *Core) uuid() (string, error) {
	u, err := uuid.NewRandomFromReader(c.rand)
	if err != nil {
		return "", fmt.Errorf("uuid: %w", err)
	}
	return u.String(), nil
}

// ResetUnseal discards the shares submitted so far.
func (c *Core) ResetUnseal(ctx context.Context) (SealStatus, error) {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	c.seal.Reset()
	return c.SealStatus(ctx)
}

// Sealed reports whether the core is sealed.
func (c *Core) Sealed() bool { return c.active.Load() == nil }

// Health is the node's state for load balancers and orchestrators.
type Health struct {
	Initialized bool
	Sealed      bool
	Standby     bool
	ServerTime  time.Time
	Version     string
	ClusterName string
	ClusterID   string
}

// Health reports the node's state.
func (c *Core) Health(ctx context.Context) (Health, error) {
	st, err := c.SealStatus(ctx)
	if err != nil {
		return Health{}, err
	}
	return Health{
		Initialized: st.Initialized,
		Sealed:      st.Sealed,
		ServerTime:  c.now().UTC(),
		Version:     Version,
		ClusterName: st.ClusterName,
		ClusterID:   st.ClusterID,
	}, nil
}

// DecodeShare decodes an unseal key share given as hex or base64.
func DecodeShare(s string) ([]byte, error) {
	b, err := seal.DecodeShare(s)
	if err != nil {
		return nil, &InvalidRequestError{Field: "key", Reason: err.Error()}
	}
	return b, nil
}
