// Package lease keeps the leases of the dynamic credentials engines issue:
// every credential an engine answers with as a logical.Secret gets a lease
// with a TTL, a maximum TTL and a renewable flag. The Manager renews
// leases through the issuing engine's logical.SecretRenewer, revokes them
// through its logical.SecretRevoker on request, when their token is
// revoked and when they expire, and retries a failed revocation with
// jittered exponential backoff until it succeeds: a lease is never
// forgotten while its credential may still exist.
//
// All state is in the storage the Manager is given (the barrier's, so
// encrypted), one record per lease; the Manager keeps a copy in memory
// for its expiry timer, loaded by Start at unseal.
//
// Engines are reached through a Resolver the core passes in, by mount
// path: the Manager holds no pointer to the core.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/storage"
)

// Defaults of Options.
const (
	// DefaultTTL is a lease's TTL when the engine gives none (Vault's 768h).
	DefaultTTL = 768 * time.Hour
	// DefaultMaxTTL caps every lease's life from issue (32 days).
	DefaultMaxTTL = 768 * time.Hour
	// DefaultMinBackoff and DefaultMaxBackoff bound the wait between
	// revocation attempts.
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = 5 * time.Minute
	// DefaultEngineTimeout bounds one call to an engine.
	DefaultEngineTimeout = 30 * time.Second
	// DefaultWorkers is how many background revocations run at once.
	DefaultWorkers = 8
)

// recordPrefix is where lease records live below the Manager's storage:
// "id/<lease id>", so a lease ID's own slashes make a browsable tree.
const recordPrefix = "id/"

var (
	// ErrNotFound: no lease has this ID.
	ErrNotFound = errors.New("lease: not found")
	// ErrNotRenewable: the lease was issued non-renewable.
	ErrNotRenewable = errors.New("lease: not renewable")
	// ErrExpired: the lease has expired (its revocation is due).
	ErrExpired = errors.New("lease: expired")
	// ErrRevoking: the lease is being revoked and cannot be renewed.
	ErrRevoking = errors.New("lease: revocation in progress")
	// ErrRevokeFailed: the engine could not revoke the credential; the
	// lease is kept and the revocation retried in the background.
	ErrRevokeFailed = errors.New("lease: revocation failed")
	// ErrRenewFailed: the engine could not extend the credential; the
	// lease is unchanged.
	ErrRenewFailed = errors.New("lease: renewal failed")
	// ErrMountGone: the mount that issued the lease no longer exists, so
	// nothing can revoke its credential.
	ErrMountGone = errors.New("lease: the issuing mount no longer exists")
	// ErrNotRevoker: the engine answered with a Secret but cannot revoke.
	ErrNotRevoker = errors.New("lease: the engine does not implement SecretRevoker")
	// ErrStopped: the Manager is not running.
	ErrStopped = errors.New("lease: manager not running")
)

// Resolver returns the engine mounted at mountPath ("database/"), and
// false when there is none.
type Resolver func(mountPath string) (logical.Engine, bool)

// Clock is the Manager's time source; tests swap it.
type Clock interface {
	Now() time.Time
	// At returns a channel that receives once the time has reached t
	// (at once when it already has).
	At(t time.Time) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) At(t time.Time) <-chan time.Time {
	return time.After(time.Until(t))
}

// Options configure a Manager. Storage and Resolver are required.
type Options struct {
	// Storage holds the lease records: the barrier's storage, confined
	// to the Manager's prefix ("sys/lease/").
	Storage logical.Storage
	// Resolver finds the engine of a mount.
	Resolver Resolver
	// Clock defaults to the system clock.
	Clock Clock
	// Rand is the source of lease IDs. Default crypto/rand.
	Rand io.Reader
	// Logger defaults to slog.Default(). It never receives a credential.
	Logger *slog.Logger
	// DefaultTTL is the TTL of a Secret without one (default DefaultTTL);
	// MaxTTL caps every lease from issue (default DefaultMaxTTL).
	DefaultTTL, MaxTTL time.Duration
	// MinBackoff and MaxBackoff bound the jittered exponential wait
	// between revocation attempts (defaults 1s and 5min).
	MinBackoff, MaxBackoff time.Duration
	// EngineTimeout bounds one renewal or revocation call (default 30s).
	EngineTimeout time.Duration
	// Workers is how many background revocations run at once (default 8).
	Workers int
}

// Revocation is the state of a lease whose revocation failed. It never
// holds a credential: LastError is the engine's error message, which
// engines keep free of secrets.
type Revocation struct {
	// Attempts counts the failed attempts so far.
	Attempts int `json:"attempts"`
	// NextAttempt is when the background retry runs.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// LastError is why the last attempt failed.
	LastError string `json:"last_error"`
	// Failed means retrying is pointless (the mount is gone): the lease
	// stays listed for an operator to look at and remove with
	// revoke-force.
	Failed bool `json:"failed,omitempty"`
}

// Lease is one leased credential.
type Lease struct {
	// ID is "<mount path><issue path>/<random>".
	ID string `json:"id"`
	// MountPath is the issuing mount ("database/"); IssuePath the request
	// path relative to it ("creds/app").
	MountPath string `json:"mount_path"`
	IssuePath string `json:"issue_path"`
	// InternalData is the engine's, for renew and revoke. Never shown.
	InternalData map[string]any `json:"internal_data,omitempty"`
	// TTL is the lease's TTL at issue: the default renewal increment.
	TTL           time.Duration `json:"ttl"`
	IssueTime     time.Time     `json:"issue_time"`
	ExpireTime    time.Time     `json:"expire_time"`
	MaxExpireTime time.Time     `json:"max_expire_time"`
	LastRenewal   time.Time     `json:"last_renewal,omitzero"`
	Renewable     bool          `json:"renewable"`
	// TokenAccessor is the accessor of the token that asked for the
	// credential; revoking the token revokes the lease.
	TokenAccessor string `json:"token_accessor,omitempty"`
	// Revocation is set once a revocation attempt failed.
	Revocation *Revocation `json:"revocation,omitempty"`
}

// RemainingTTL is the time left at now, never negative.
func (l *Lease) RemainingTTL(now time.Time) time.Duration {
	return max(l.ExpireTime.Sub(now), 0)
}

// secretLease is what the engine gets back.
func (l *Lease) secretLease() *logical.SecretLease {
	return &logical.SecretLease{
		LeaseID: l.ID, IssuePath: l.IssuePath, InternalData: l.InternalData,
		IssueTime: l.IssueTime, ExpireTime: l.ExpireTime,
	}
}

// clone copies l deep enough that callers cannot change the Manager's.
func (l *Lease) clone() *Lease {
	c := *l
	if l.Revocation != nil {
		r := *l.Revocation
		c.Revocation = &r
	}
	return &c
}

// entry is a lease in memory.
type entry struct {
	// op serializes the engine calls and rewrites of one lease; it is
	// taken before Manager.mu, never after.
	op sync.Mutex

	// Guarded by Manager.mu:
	lease *Lease
	// index is the position in the heap, -1 when not scheduled.
	index int
	// due is when the entry's heap position says it needs work.
	due time.Time
	// gone is set once the lease is deleted.
	gone bool
}

// Manager keeps leases. Create a Manager per unseal with New, Start it,
// and Stop it before sealing.
type Manager struct {
	store      logical.Storage
	resolve    Resolver
	clock      Clock
	rand       io.Reader
	log        *slog.Logger
	defaultTTL time.Duration
	maxTTL     time.Duration
	minBackoff time.Duration
	maxBackoff time.Duration
	timeout    time.Duration
	workers    int

	// mu guards leases, queue and running.
	mu      sync.Mutex
	leases  map[string]*entry
	queue   dueHeap
	running bool
	// wake tells the loop the earliest due time may have changed.
	wake chan struct{}

	cancel context.CancelFunc
	// ctx is cancelled by Stop; background engine calls derive from it.
	ctx context.Context
	wg  sync.WaitGroup
}

// New returns a stopped Manager.
func New(o Options) (*Manager, error) {
	if o.Storage == nil || o.Resolver == nil {
		return nil, errors.New("lease: Storage and Resolver are required")
	}
	m := &Manager{
		store: o.Storage, resolve: o.Resolver, clock: o.Clock, rand: o.Rand, log: o.Logger,
		defaultTTL: o.DefaultTTL, maxTTL: o.MaxTTL, minBackoff: o.MinBackoff, maxBackoff: o.MaxBackoff,
		timeout: o.EngineTimeout, workers: o.Workers,
		leases: map[string]*entry{}, wake: make(chan struct{}, 1),
	}
	if m.clock == nil {
		m.clock = realClock{}
	}
	if m.rand == nil {
		m.rand = rand.Reader
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.defaultTTL <= 0 {
		m.defaultTTL = DefaultTTL
	}
	if m.maxTTL <= 0 {
		m.maxTTL = DefaultMaxTTL
	}
	if m.minBackoff <= 0 {
		m.minBackoff = DefaultMinBackoff
	}
	if m.maxBackoff <= 0 {
		m.maxBackoff = DefaultMaxBackoff
	}
	if m.maxBackoff < m.minBackoff {
		m.maxBackoff = m.minBackoff
	}
	if m.timeout <= 0 {
		m.timeout = DefaultEngineTimeout
	}
	if m.workers <= 0 {
		m.workers = DefaultWorkers
	}
	return m, nil
}

// Start loads every lease from storage and starts the expiry loop. Leases
// that expired while the core was sealed are revoked at once.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return errors.New("lease: manager already started")
	}
	m.mu.Unlock()
	loaded, err := m.load(ctx, recordPrefix)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.leases, m.queue = map[string]*entry{}, dueHeap{}
	for _, l := range loaded {
		e := &entry{lease: l, index: -1}
		m.leases[l.ID] = e
		m.scheduleLocked(e)
	}
	m.ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	m.running = true
	m.wg.Add(1)
	go m.loop()
	m.log.InfoContext(ctx, "lease manager started", "leases", len(loaded))
	return nil
}

// load walks the storage tree below prefix.
func (m *Manager) load(ctx context.Context, prefix string) ([]*Lease, error) {
	keys, err := m.store.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("lease: list %q: %w", prefix, err)
	}
	var out []*Lease
	for _, k := range keys {
		if strings.HasSuffix(k, "/") {
			sub, err := m.load(ctx, prefix+k)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
			continue
		}
		raw, err := m.store.Get(ctx, prefix+k)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("lease: read %s: %w", strings.TrimPrefix(prefix+k, recordPrefix), err)
		}
		var l Lease
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, fmt.Errorf("lease: decode %s: %w", strings.TrimPrefix(prefix+k, recordPrefix), err)
		}
		out = append(out, &l)
	}
	return out, nil
}

// Stop ends the expiry loop and waits for it and for the background
// revocations in flight. Interrupted revocations run again after the next
// Start. The leases stay in storage.
func (m *Manager) Stop() {
	m.mu.Lock()
	if !m.running {
		m.mu.Unlock()
		return
	}
	m.running = false
	m.cancel()
	m.mu.Unlock()
	m.wg.Wait()
}

// CreateParams describe a credential to lease.
type CreateParams struct {
	// MountPath is the issuing mount ("database/"); IssuePath the request
	// path relative to it ("creds/app").
	MountPath, IssuePath string
	// Secret is what the engine answered.
	Secret *logical.Secret
	// TokenAccessor is the requester's token.
	TokenAccessor string
	// NotAfter, when set, is when the requester's token ends for good
	// (its maximum expiry): the lease, renewals included, ends by then,
	// so a credential never outlives the token it was issued to.
	NotAfter time.Time
}

// Create stores a lease for a credential an engine just issued and
// returns it. The caller must not hand out the credential when Create
// fails: it revokes it instead.
func (m *Manager) Create(ctx context.Context, p CreateParams) (*Lease, error) {
	if p.Secret == nil {
		return nil, errors.New("lease: create: no secret")
	}
	eng, ok := m.resolve(p.MountPath)
	if !ok {
		return nil, fmt.Errorf("lease: create: %w: %s", ErrMountGone, p.MountPath)
	}
	if _, ok := eng.(logical.SecretRevoker); !ok {
		return nil, fmt.Errorf("lease: create: mount %s: %w", p.MountPath, ErrNotRevoker)
	}
	now := m.clock.Now().UTC()
	maxTTL := p.Secret.MaxTTL
	if maxTTL <= 0 || maxTTL > m.maxTTL {
		maxTTL = m.maxTTL
	}
	if !p.NotAfter.IsZero() {
		left := p.NotAfter.Sub(now)
		if left <= 0 {
			return nil, fmt.Errorf("lease: create: the requesting token ended at %s", p.NotAfter.UTC().Format(time.RFC3339))
		}
		maxTTL = min(maxTTL, left)
	}
	ttl := p.Secret.TTL
	if ttl <= 0 {
		ttl = m.defaultTTL
	}
	ttl = min(ttl, maxTTL)
	suffix, err := m.randomSuffix()
	if err != nil {
		return nil, err
	}
	issue := strings.Trim(p.IssuePath, "/")
	id := p.MountPath + issue + "/" + suffix
	if issue == "" {
		id = p.MountPath + suffix
	}
	l := &Lease{
		ID: id, MountPath: p.MountPath, IssuePath: issue, InternalData: p.Secret.InternalData,
		TTL: ttl, IssueTime: now, ExpireTime: now.Add(ttl), MaxExpireTime: now.Add(maxTTL),
		Renewable: p.Secret.Renewable, TokenAccessor: p.TokenAccessor,
	}
	m.mu.Lock()
	running := m.running
	m.mu.Unlock()
	if !running {
		return nil, ErrStopped
	}
	if err := m.put(ctx, l); err != nil {
		return nil, err
	}
	e := &entry{lease: l, index: -1}
	m.mu.Lock()
	m.leases[l.ID] = e
	m.scheduleLocked(e)
	m.mu.Unlock()
	return l.clone(), nil
}

func (m *Manager) randomSuffix() (string, error) {
	b := make([]byte, 18)
	if _, err := io.ReadFull(m.rand, b); err != nil {
		return "", fmt.Errorf("lease: random id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func (m *Manager) put(ctx context.Context, l *Lease) error {
	raw, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("lease: encode %s: %w", l.ID, err)
	}
	if err := m.store.Put(ctx, recordPrefix+l.ID, raw); err != nil {
		return fmt.Errorf("lease: store %s: %w", l.ID, err)
	}
	return nil
}

// Lookup returns the lease with id.
func (m *Manager) Lookup(id string) (*Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.leases[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return e.lease.clone(), nil
}

// List returns the leases whose ID starts with prefix (all for ""),
// sorted by ID.
func (m *Manager) List(prefix string) []*Lease {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*Lease
	for id, e := range m.leases {
		if strings.HasPrefix(id, prefix) {
			out = append(out, e.lease.clone())
		}
	}
	slices.SortFunc(out, func(a, b *Lease) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Keys lists one level of the lease ID tree below prefix, as Vault's LIST
// sys/leases/lookup/<prefix> does: lease IDs' last segments, and folders
// ending in "/".
func (m *Manager) Keys(prefix string) []string {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	seen := map[string]bool{}
	m.mu.Lock()
	for id := range m.leases {
		rest, ok := strings.CutPrefix(id, prefix)
		if !ok {
			continue
		}
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			rest = rest[:i+1]
		}
		seen[rest] = true
	}
	m.mu.Unlock()
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Renew extends the lease with id by increment from now (the lease's TTL
// when increment is zero), never past its maximum, through the engine's
// SecretRenewer when it has one. The boolean reports whether the maximum
// capped the renewal.
func (m *Manager) Renew(ctx context.Context, id string, increment time.Duration) (*Lease, bool, error) {
	e, err := m.lockEntry(id)
	if err != nil {
		return nil, false, err
	}
	defer e.op.Unlock()
	m.mu.Lock()
	l := e.lease.clone()
	m.mu.Unlock()
	now := m.clock.Now().UTC()
	switch {
	case l.Revocation != nil:
		return nil, false, fmt.Errorf("%w: %s", ErrRevoking, id)
	case !l.Renewable:
		return nil, false, fmt.Errorf("%w: %s", ErrNotRenewable, id)
	case !now.Before(l.ExpireTime):
		return nil, false, fmt.Errorf("%w: %s", ErrExpired, id)
	}
	if increment <= 0 {
		increment = l.TTL
	}
	exp := now.Add(increment)
	capped := false
	if exp.After(l.MaxExpireTime) {
		exp, capped = l.MaxExpireTime, true
	}
	l.ExpireTime, l.LastRenewal = exp, now
	eng, ok := m.resolve(l.MountPath)
	if !ok {
		return nil, false, fmt.Errorf("%w: %s (lease %s)", ErrMountGone, l.MountPath, id)
	}
	if r, ok := eng.(logical.SecretRenewer); ok {
		cctx, cancel := context.WithTimeout(ctx, m.timeout)
		err := r.RenewSecret(cctx, l.secretLease())
		cancel()
		if err != nil {
			return nil, false, fmt.Errorf("%w: lease %s: %v", ErrRenewFailed, id, err)
		}
	}
	if err := m.put(ctx, l); err != nil {
		return nil, false, err
	}
	m.mu.Lock()
	e.lease = l
	m.scheduleLocked(e)
	m.mu.Unlock()
	return l.clone(), capped, nil
}

// lockEntry finds the lease and takes its op lock.
func (m *Manager) lockEntry(id string) (*entry, error) {
	m.mu.Lock()
	e, ok := m.leases[id]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	e.op.Lock()
	m.mu.Lock()
	gone := e.gone
	m.mu.Unlock()
	if gone {
		e.op.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return e, nil
}

// Revoke revokes the lease's credential through its engine and deletes
// the lease. When the engine fails, the lease is kept, its revocation
// retried in the background, and an error matching ErrRevokeFailed
// returned. Revoking an unknown lease succeeds (it is already gone), as
// in Vault.
func (m *Manager) Revoke(ctx context.Context, id string) error {
	e, err := m.lockEntry(id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer e.op.Unlock()
	return m.revokeLocked(ctx, e, nil)
}

// RevokeAsync marks the lease for revocation and leaves the work to the
// background loop (Vault's sync=false).
func (m *Manager) RevokeAsync(ctx context.Context, id string) error {
	e, err := m.lockEntry(id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer e.op.Unlock()
	m.mu.Lock()
	l := e.lease.clone()
	m.mu.Unlock()
	if l.Revocation == nil {
		l.Revocation = &Revocation{}
	}
	l.Revocation.NextAttempt, l.Revocation.Failed = m.clock.Now().UTC(), false
	if err := m.put(ctx, l); err != nil {
		return err
	}
	m.mu.Lock()
	e.lease = l
	m.scheduleLocked(e)
	m.mu.Unlock()
	return nil
}

// revokeLocked revokes e, whose op lock is held, through eng (nil: the
// Resolver's).
func (m *Manager) revokeLocked(ctx context.Context, e *entry, eng logical.Engine) error {
	m.mu.Lock()
	l := e.lease.clone()
	m.mu.Unlock()
	if eng == nil {
		var ok bool
		if eng, ok = m.resolve(l.MountPath); !ok {
			return m.markFailed(ctx, e, l, fmt.Errorf("%w: %s", ErrMountGone, l.MountPath))
		}
	}
	rv, ok := eng.(logical.SecretRevoker)
	if !ok {
		return m.markFailed(ctx, e, l, fmt.Errorf("mount %s: %w", l.MountPath, ErrNotRevoker))
	}
	cctx, cancel := context.WithTimeout(ctx, m.timeout)
	err := rv.RevokeSecret(cctx, l.secretLease())
	cancel()
	if err != nil {
		if m.stopping() {
			// Interrupted by Stop: the next Start tries again.
			return fmt.Errorf("%w: lease %s: %v", ErrRevokeFailed, l.ID, err)
		}
		return m.markRetry(ctx, e, l, err)
	}
	if err := m.store.Delete(ctx, recordPrefix+l.ID); err != nil {
		// The credential is gone but the record stays: the retry calls
		// the engine again, which is idempotent.
		return m.markRetry(ctx, e, l, fmt.Errorf("credential revoked, but the lease record could not be deleted: %w", err))
	}
	m.mu.Lock()
	m.unscheduleLocked(e)
	e.gone = true
	delete(m.leases, l.ID)
	m.mu.Unlock()
	m.log.InfoContext(ctx, "lease revoked", "lease_id", l.ID)
	return nil
}

func (m *Manager) stopping() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ctx != nil && m.ctx.Err() != nil
}

// markRetry records a failed attempt and schedules the next.
func (m *Manager) markRetry(ctx context.Context, e *entry, l *Lease, cause error) error {
	now := m.clock.Now().UTC()
	if l.Revocation == nil {
		l.Revocation = &Revocation{}
	}
	l.Revocation.Attempts++
	l.Revocation.LastError = cause.Error()
	l.Revocation.Failed = false
	wait := m.backoff(l.Revocation.Attempts)
	l.Revocation.NextAttempt = now.Add(wait)
	m.log.WarnContext(ctx, "lease revocation failed; will retry", "lease_id", l.ID,
		"attempts", l.Revocation.Attempts, "retry_in", wait.String(), "error", cause.Error())
	perr := m.put(context.WithoutCancel(ctx), l)
	m.mu.Lock()
	e.lease = l
	m.scheduleLocked(e)
	m.mu.Unlock()
	if perr != nil {
		m.log.ErrorContext(ctx, "lease: storing the revocation state failed; retrying from memory", "lease_id", l.ID, "error", perr.Error())
	}
	return fmt.Errorf("%w: lease %s: %v (retrying in the background)", ErrRevokeFailed, l.ID, cause)
}

// markFailed records that the lease cannot be revoked at all: it stays,
// unscheduled, for an operator.
func (m *Manager) markFailed(ctx context.Context, e *entry, l *Lease, cause error) error {
	if l.Revocation == nil {
		l.Revocation = &Revocation{}
	}
	l.Revocation.Attempts++
	l.Revocation.LastError = cause.Error()
	l.Revocation.Failed = true
	l.Revocation.NextAttempt = time.Time{}
	m.log.ErrorContext(ctx, "lease cannot be revoked; kept for an operator (revoke-force removes it)",
		"lease_id", l.ID, "error", cause.Error())
	perr := m.put(context.WithoutCancel(ctx), l)
	m.mu.Lock()
	e.lease = l
	m.scheduleLocked(e)
	m.mu.Unlock()
	if perr != nil {
		return errors.Join(cause, perr)
	}
	return cause
}

// backoff is the jittered exponential wait after the n-th failure:
// between half and all of min·2^(n-1), capped at the maximum.
func (m *Manager) backoff(n int) time.Duration {
	d := m.minBackoff
	for i := 1; i < n && d < m.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, m.maxBackoff)
	half := d / 2
	return half + time.Duration(mathrand.Int64N(int64(d-half)+1))
}

// RevokePrefix revokes every lease below prefix, taken as whole path
// segments as Vault does ("database/creds" covers
// "database/creds/app/x", not "database/credsx/..."); a full lease ID
// revokes that lease. Leases whose revocation fails are kept and retried;
// the errors are joined. With force, a lease whose revocation fails is
// deleted anyway (Vault's revoke-force): its credential may outlive it.
func (m *Manager) RevokePrefix(ctx context.Context, prefix string, force bool) error {
	dir := strings.TrimSuffix(prefix, "/") + "/"
	return m.revokeWhere(ctx, nil, force, func(l *Lease) bool {
		return l.ID == prefix || strings.HasPrefix(l.ID, dir)
	})
}

// RevokeMount revokes every lease of mountPath through eng, the mount's
// engine, which the caller passes because the mount may already be out
// of the Resolver's reach (an unmount in progress).
func (m *Manager) RevokeMount(ctx context.Context, mountPath string, eng logical.Engine) error {
	return m.revokeWhere(ctx, eng, false, func(l *Lease) bool { return l.MountPath == mountPath })
}

// RevokeByToken revokes the leases of the tokens with these accessors.
func (m *Manager) RevokeByToken(ctx context.Context, accessors ...string) error {
	set := map[string]bool{}
	for _, a := range accessors {
		set[a] = true
	}
	return m.revokeWhere(ctx, nil, false, func(l *Lease) bool { return l.TokenAccessor != "" && set[l.TokenAccessor] })
}

func (m *Manager) revokeWhere(ctx context.Context, eng logical.Engine, force bool, match func(*Lease) bool) error {
	m.mu.Lock()
	var ids []string
	for id, e := range m.leases {
		if match(e.lease) {
			ids = append(ids, id)
		}
	}
	m.mu.Unlock()
	sort.Strings(ids)
	var errs []error
	for _, id := range ids {
		e, err := m.lockEntry(id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		err = m.revokeLocked(ctx, e, eng)
		if err != nil && force {
			if derr := m.forget(ctx, e); derr != nil {
				err = errors.Join(err, derr)
			} else {
				m.log.WarnContext(ctx, "lease removed by revoke-force although its credential could not be revoked",
					"lease_id", id, "error", err.Error())
				err = nil
			}
		}
		e.op.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// forget deletes e's lease without revoking its credential.
func (m *Manager) forget(ctx context.Context, e *entry) error {
	m.mu.Lock()
	id := e.lease.ID
	m.mu.Unlock()
	if err := m.store.Delete(context.WithoutCancel(ctx), recordPrefix+id); err != nil {
		return fmt.Errorf("lease: delete %s: %w", id, err)
	}
	m.mu.Lock()
	m.unscheduleLocked(e)
	e.gone = true
	delete(m.leases, id)
	m.mu.Unlock()
	return nil
}

// scheduleLocked (re)places e in the heap by when it next needs work.
func (m *Manager) scheduleLocked(e *entry) {
	l := e.lease
	switch {
	case l.Revocation != nil && l.Revocation.Failed:
		m.unscheduleLocked(e)
		return
	case l.Revocation != nil:
		e.due = l.Revocation.NextAttempt
	default:
		e.due = l.ExpireTime
	}
	if e.index >= 0 {
		m.queue.fix(e.index)
	} else {
		m.queue.push(e)
	}
	if e.index != 0 {
		// Not the earliest: the loop's timer is still right (or fires
		// early and looks again).
		return
	}
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *Manager) unscheduleLocked(e *entry) {
	if e.index >= 0 {
		m.queue.remove(e.index)
	}
}

// loop waits for the earliest due lease and hands due leases to workers.
func (m *Manager) loop() {
	defer m.wg.Done()
	sem := make(chan struct{}, m.workers)
	ctx := m.ctx
	for {
		m.mu.Lock()
		var next <-chan time.Time
		now := m.clock.Now()
		var due []*entry
		for m.queue.len() > 0 && !m.queue.peek().due.After(now) {
			due = append(due, m.queue.pop())
		}
		if m.queue.len() > 0 {
			next = m.clock.At(m.queue.peek().due)
		}
		m.mu.Unlock()
		for _, e := range due {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				defer func() { <-sem }()
				m.work(ctx, e)
			}()
		}
		if len(due) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		case <-next:
		}
	}
}

// work revokes a lease the loop found due, if it still is.
func (m *Manager) work(ctx context.Context, e *entry) {
	e.op.Lock()
	defer e.op.Unlock()
	m.mu.Lock()
	if e.gone {
		m.mu.Unlock()
		return
	}
	l := e.lease
	due := l.ExpireTime
	if l.Revocation != nil {
		due = l.Revocation.NextAttempt
		if l.Revocation.Failed {
			m.mu.Unlock()
			return
		}
	}
	if due.After(m.clock.Now()) {
		// Renewed meanwhile: back in the queue.
		m.scheduleLocked(e)
		m.mu.Unlock()
		return
	}
	m.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	_ = m.revokeLocked(ctx, e, nil) // logged by revokeLocked
}
