// Package daemon runs the agent: it holds the WebSocket to the core
// (agent/conn), keeps the cache current from the core's pushes, renders
// templates into files when a secret they read changes, renews its
// certificate and token, serves local applications on the Unix socket and
// keeps serving from the cache while the core is away.
//
// Run is the entry point. One goroutine owns the templates and reacts to
// events (a push, a reconnect, a timer), so renders never race; the
// connection, the socket listener and the callbacks only hand events to it.
package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/secrethub/secrethub/agent/bootstrap"
	"github.com/secrethub/secrethub/agent/cache"
	"github.com/secrethub/secrethub/agent/config"
	"github.com/secrethub/secrethub/agent/conn"
	"github.com/secrethub/secrethub/agent/sink"
	"github.com/secrethub/secrethub/core/client"
)

// CacheFile is the persisted cache's name in the state directory.
const CacheFile = "cache.sealed"

// retryDelay is how long a failed render, certificate renewal or token
// renewal waits before it is tried again.
const retryDelay = 5 * time.Second

// initMarkerMode is the init marker file's mode.
const initMarkerMode = 0o644

// Options are what Run needs besides the configuration.
type Options struct {
	// Config is the loaded agent configuration. Required;
	// Config.Core.AgentAddresses must not be empty.
	Config *config.Config
	// Identity is the bootstrapped certificate and key. Required.
	Identity *bootstrap.Identity
	// REST is the REST client the agent bootstrapped with; it logs in
	// again when the core refuses the certificate's token. Optional.
	REST *client.Client
	// Logger receives the agent's log. Default slog.Default().
	Logger *slog.Logger
	// Version is reported to the core.
	Version string
	// Name is reported to the core. Default the host name.
	Name string
	// Heartbeat is the WebSocket ping interval. Default 30s.
	Heartbeat time.Duration
	// Once makes Run return after the first full render (for -init).
	Once bool
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// events is what the callbacks hand to the daemon's goroutine.
type events struct {
	mu        sync.Mutex
	changed   map[string]bool
	connected bool
	reauth    bool
	tokenTTL  time.Duration
	tokenNew  bool
	renewable bool
	wake      chan struct{}
}

func (e *events) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// daemon is the state owned by Run's goroutine (and, where noted, shared).
type daemon struct {
	opts  Options
	cfg   *config.Config
	log   *slog.Logger
	now   func() time.Time
	id    atomic.Pointer[bootstrap.Identity] // shared with the TLS callback
	cache *cache.Cache                       // safe for concurrent use
	ts    *Templates
	conn  *conn.Conn // safe for concurrent use
	ev    *events

	onceErr    error // with Options.Once: the render error that ends Run
	dirty      bool  // the cache changed since it was saved
	allReady   bool  // every template rendered once
	retryAt    time.Time
	certAt     time.Time
	tokenAt    time.Time
	tokenRenew bool
}

// Run runs the agent until ctx is done (or, with Once, until every
// template rendered once, or a render failed: that error is returned). It
// returns nil when ctx ends it.
func Run(ctx context.Context, opts Options) error {
	if opts.Config == nil || opts.Identity == nil {
		return errors.New("daemon: config and identity are required")
	}
	if len(opts.Config.Core.AgentAddresses) == 0 {
		return &config.FieldError{Field: "core.agent_addresses", Detail: "missing: the agent needs the core's agent listener to run as a daemon"}
	}
	d := &daemon{
		opts: opts, cfg: opts.Config, log: opts.Logger, now: opts.Now,
		ev: &events{changed: map[string]bool{}, wake: make(chan struct{}, 1)},
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.now == nil {
		d.now = time.Now
	}
	if opts.Name == "" {
		opts.Name, _ = os.Hostname()
	}
	d.id.Store(opts.Identity)
	d.cache = cache.New(cache.Options{MaxEntries: d.cfg.Cache.MaxEntries, TTL: time.Duration(d.cfg.Cache.TTL), Now: d.now})
	d.loadCache()
	var err error
	if d.ts, err = NewTemplates(d.cfg, d.cache, d.log); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if opts.Once {
		d.ts.WarnOnReloadFailure()
	}
	d.loadLeases()
	d.conn, err = conn.New(conn.Config{
		Addresses: d.cfg.Core.AgentAddresses,
		TLS:       d.tlsConfig,
		Name:      opts.Name,
		Version:   opts.Version,
		Heartbeat: opts.Heartbeat,
		Logger:    d.log,
		OnConnected: func(context.Context) {
			d.ev.mu.Lock()
			d.ev.connected = true
			d.ev.mu.Unlock()
			d.ev.signal()
		},
		OnChanged: func(path, _ string, _ int64) {
			d.ev.mu.Lock()
			d.ev.changed[path] = true
			d.ev.mu.Unlock()
			d.ev.signal()
		},
		OnTokenTTL: func(ttl time.Duration, renewable bool) {
			d.ev.mu.Lock()
			d.ev.tokenTTL, d.ev.renewable, d.ev.tokenNew = ttl, renewable, true
			d.ev.mu.Unlock()
			d.ev.signal()
		},
		OnUnauthorized: func() {
			d.ev.mu.Lock()
			d.ev.reauth = true
			d.ev.mu.Unlock()
			d.ev.signal()
		},
	})
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}

	// The connection outlives ctx by the time it takes to revoke leases
	// at shutdown (revoke_leases_on_shutdown).
	connCtx, connCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer connCancel()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = d.conn.Run(connCtx)
	}()
	if d.cfg.Listener.UnixSocket != "" {
		if err := d.serveSocket(ctx, &wg); err != nil {
			cancel()
			connCancel()
			wg.Wait()
			return fmt.Errorf("daemon: listener: %w", err)
		}
	}
	err = d.loop(ctx)
	cancel()
	if d.cfg.RevokeLeasesOnShutdown && !opts.Once {
		d.revokeLeases()
	}
	connCancel()
	wg.Wait()
	d.saveCache()
	return err
}

// tlsConfig is the WebSocket's TLS: the current certificate, and the
// agent CA as the only root.
func (d *daemon) tlsConfig() (*tls.Config, error) {
	id := d.id.Load()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(id.CAPEM)) {
		return nil, errors.New("agent CA chain holds no certificate")
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      roots,
		Certificates: []tls.Certificate{id.TLSCertificate()},
	}, nil
}

// loop reacts to events until ctx is done.
func (d *daemon) loop(ctx context.Context) error {
	// Offline first: render what the persisted cache allows before the
	// core answers.
	if len(d.cache.Paths()) > 0 {
		d.renderAll(ctx, nil)
		if d.opts.Once && d.allReady {
			return nil
		}
	}
	d.certAt = bootstrap.RenewAt(d.id.Load().Certificate)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d.handleEvents(ctx)
		d.runTimers(ctx)
		if d.dirty {
			d.saveCache()
		}
		if d.opts.Once && (d.allReady || d.onceErr != nil) {
			return d.onceErr
		}
		timer.Reset(d.nextTimer())
		select {
		case <-ctx.Done():
			return nil
		case <-d.ev.wake:
		case <-timer.C:
		}
	}
}

// nextTimer is how long until the earliest timer is due.
func (d *daemon) nextTimer() time.Duration {
	next := d.certAt
	for _, l := range d.ts.Leases() {
		if due := leaseDue(l); due.Before(next) {
			next = due
		}
	}
	for _, t := range []time.Time{d.retryAt, d.tokenAt} {
		if !t.IsZero() && t.Before(next) {
			next = t
		}
	}
	return max(next.Sub(d.now()), 10*time.Millisecond)
}

// handleEvents takes the callbacks' events and acts on them.
func (d *daemon) handleEvents(ctx context.Context) {
	d.ev.mu.Lock()
	changed := d.ev.changed
	d.ev.changed = map[string]bool{}
	connected, reauth := d.ev.connected, d.ev.reauth
	d.ev.connected, d.ev.reauth = false, false
	if d.ev.tokenNew {
		d.ev.tokenNew = false
		d.tokenRenew = d.ev.renewable
		if d.ev.renewable && d.ev.tokenTTL > 0 {
			d.tokenAt = d.now().Add(d.ev.tokenTTL * 2 / 3)
		} else {
			d.tokenAt = time.Time{}
		}
	}
	d.ev.mu.Unlock()

	if reauth {
		d.reissue(ctx)
	}
	if connected {
		d.catchUp(ctx)
	} else if len(changed) > 0 {
		var paths []string
		for p := range changed {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		d.refresh(ctx, paths)
	}
}

// catchUp reads every watched path again after a (re)connection: the
// answers show what changed while the agent was away.
func (d *daemon) catchUp(ctx context.Context) {
	seen := map[string]bool{}
	var paths []string
	now := d.now()
	for _, p := range append(d.ts.Paths(), d.cache.Paths()...) {
		if l, ok := d.ts.Lease(p); ok && now.Before(l.Obtained.Add(l.TTL)) {
			// A dynamic credential still leased: reading it again would
			// issue another one. Its renewal timer keeps it.
			continue
		}
		if !seen[p] {
			seen[p] = true
			paths = append(paths, p)
		}
	}
	d.log.Info("connected; reading watched secrets again", "address", d.conn.Address(), "paths", len(paths))
	d.refresh(ctx, paths)
	if !d.allReady {
		d.renderAll(ctx, d.conn)
	}
}

// refresh reads paths again and renders the templates reading any that
// changed.
func (d *daemon) refresh(ctx context.Context, paths []string) {
	var changed []string
	for _, p := range paths {
		ch, err := d.ts.Fetch(ctx, d.conn, p)
		if err != nil && !errors.Is(err, client.ErrNotFound) {
			d.log.Warn("secret refresh failed", "path", p, "error", err.Error())
			if errors.Is(err, conn.ErrNotConnected) {
				return // the next connection catches up
			}
			d.retryAt = d.now().Add(retryDelay)
			continue
		}
		if ch {
			changed = append(changed, p)
			d.dirty = true
		}
	}
	if len(changed) == 0 && d.allReady {
		return
	}
	_, err := d.ts.RenderReading(ctx, d.conn, changed...)
	d.afterRender(err)
}

// renderAll renders every template (r nil: from the cache alone).
func (d *daemon) renderAll(ctx context.Context, r Reader) {
	_, err := d.ts.RenderAll(ctx, r)
	if r == nil && err != nil {
		d.log.Info("cannot render every template from the persisted cache yet; waiting for the core", "error", err.Error())
		return
	}
	d.afterRender(err)
}

// afterRender records a render's outcome and writes the init marker after
// the first full render.
func (d *daemon) afterRender(err error) {
	if err != nil && d.opts.Once {
		// -init reports the reason and exits rather than waiting for a
		// fix: the init container is restarted by its pod.
		d.onceErr = err
		return
	}
	if err != nil {
		d.log.Error("render failed; will retry", "error", err.Error())
		d.retryAt = d.now().Add(retryDelay)
	} else {
		d.retryAt = time.Time{}
	}
	if d.allReady || !d.ts.AllRendered() {
		return
	}
	d.allReady = true
	d.log.Info("every template rendered", "templates", d.ts.Count())
	if d.cfg.InitMarker != "" {
		marker := fmt.Sprintf("rendered %d templates at %s\n", d.ts.Count(), d.now().UTC().Format(time.RFC3339))
		if _, err := sink.Write(d.cfg.InitMarker, []byte(marker), initMarkerMode); err != nil {
			d.log.Error("init marker", "error", err.Error())
		}
	}
}

// runTimers runs what is due: a render retry, the certificate renewal,
// the token renewal.
func (d *daemon) runTimers(ctx context.Context) {
	now := d.now()
	if !d.retryAt.IsZero() && !now.Before(d.retryAt) {
		d.retryAt = time.Time{}
		if d.conn.Connected() {
			d.renderAll(ctx, d.conn)
		}
	}
	if !now.Before(d.certAt) {
		d.renewCertificate(ctx)
	}
	d.renewLeases(ctx)
	if !d.tokenAt.IsZero() && !now.Before(d.tokenAt) {
		d.tokenAt = time.Time{}
		ttl, renewable, err := d.conn.RenewToken(ctx, 0)
		if err != nil {
			d.log.Warn("token renewal failed; will retry", "error", err.Error())
			d.tokenAt = d.now().Add(retryDelay)
			return
		}
		d.log.Info("token renewed", "ttl", ttl.String())
		if renewable && ttl > 0 {
			d.tokenAt = d.now().Add(ttl * 2 / 3)
		}
	}
}

// renewCertificate replaces the certificate through the agent listener.
// The next connection uses the new one.
func (d *daemon) renewCertificate(ctx context.Context) {
	var err error
	for _, addr := range d.cfg.Core.AgentAddresses {
		var id *bootstrap.Identity
		id, err = bootstrap.Renew(ctx, d.cfg, addr, d.id.Load(), d.now)
		if err == nil {
			d.id.Store(id)
			d.certAt = bootstrap.RenewAt(id.Certificate)
			d.log.Info("certificate renewed", "serial", id.Certificate.SerialNumber.Text(16),
				"not_after", id.Certificate.NotAfter.UTC().Format(time.RFC3339))
			d.dirty = true // the cache key follows the new private key
			return
		}
	}
	d.log.Warn("certificate renewal failed; will retry", "error", err.Error())
	d.certAt = d.now().Add(retryDelay)
}

// reissue logs in again when the core refused the certificate's token.
func (d *daemon) reissue(ctx context.Context) {
	if d.opts.REST == nil || d.cfg.Auth.SecretID == "" {
		d.log.Error("the core refuses the agent's token (revoked or expired) and no secret ID is left to log in again")
		return
	}
	id, err := bootstrap.Reissue(ctx, d.cfg, d.opts.REST)
	if err != nil {
		d.log.Error("log in again failed", "error", err.Error())
		return
	}
	d.id.Store(id)
	d.certAt = bootstrap.RenewAt(id.Certificate)
	d.log.Info("logged in again; new certificate", "serial", id.Certificate.SerialNumber.Text(16))
}

// cacheKey is the persisted cache's key, derived from the current
// private key.
func (d *daemon) cacheKey() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(d.id.Load().Key)
	if err != nil {
		return nil, err
	}
	return cache.DeriveKey(der), nil
}

func (d *daemon) cachePath() string {
	if !d.cfg.Cache.Persist || d.cfg.StateDir == "" {
		return ""
	}
	return filepath.Join(d.cfg.StateDir, CacheFile)
}

// loadCache reads the persisted cache, if any.
func (d *daemon) loadCache() {
	path := d.cachePath()
	if path == "" {
		return
	}
	key, err := d.cacheKey()
	if err == nil {
		err = d.cache.Load(path, key)
	}
	switch {
	case err == nil:
		d.log.Info("loaded the persisted cache", "entries", d.cache.Stats().Entries)
	case errors.Is(err, os.ErrNotExist):
	default:
		d.log.Warn("persisted cache not loaded; starting empty", "error", err.Error())
	}
}

// leasesExtra names the leases in the persisted cache.
const leasesExtra = "leases"

// loadLeases takes the leases saved with the persisted cache: the
// credentials an earlier run of the agent (the pod's -init container)
// rendered are renewed, not read again, so a pod holds one lease per
// credential.
func (d *daemon) loadLeases() {
	raw, ok := d.cache.Extra(leasesExtra)
	if !ok {
		return
	}
	var leases map[string]*Lease
	if err := json.Unmarshal(raw, &leases); err != nil {
		d.log.Warn("persisted leases not loaded", "error", "undecodable")
		return
	}
	for p, l := range leases {
		if _, _, _, cached := d.cache.Get(p); cached && l != nil && l.ID != "" {
			d.ts.leases[p] = l
		}
	}
	if len(d.ts.leases) > 0 {
		d.log.Info("loaded the leases of persisted credentials", "leases", len(d.ts.leases))
	}
}

// saveCache persists the cache, with the leases, if asked to.
func (d *daemon) saveCache() {
	d.dirty = false
	path := d.cachePath()
	if path == "" {
		return
	}
	if raw, err := json.Marshal(d.ts.Leases()); err == nil {
		d.cache.SetExtra(leasesExtra, raw)
	}
	key, err := d.cacheKey()
	if err == nil {
		err = os.MkdirAll(filepath.Dir(path), 0o700)
	}
	if err == nil {
		err = d.cache.Save(path, key)
	}
	if err != nil {
		d.log.Warn("saving the cache failed", "error", err.Error())
	}
}

// leaseDue is when a lease is renewed (or, when it cannot be renewed any
// more, its credential replaced): at two thirds of its time to live.
func leaseDue(l *Lease) time.Time {
	return l.Obtained.Add(l.TTL * 2 / 3)
}

// renewLeases renews the leases behind rendered credentials that are due,
// and replaces a credential whose lease cannot be renewed any more (not
// renewable, or capped by its maximum TTL) with a new one, rendering and
// reloading the templates that read it.
func (d *daemon) renewLeases(ctx context.Context) {
	now := d.now()
	var refetch []string
	for path, l := range d.ts.Leases() {
		if l.TTL <= 0 || now.Before(leaseDue(l)) || !d.conn.Connected() {
			continue
		}
		if !l.Renewable {
			refetch = append(refetch, path)
			continue
		}
		ttl, renewable, err := d.conn.RenewLease(ctx, l.ID, l.Issued)
		switch {
		case err == nil:
			l.TTL, l.Renewable, l.Obtained = ttl, renewable, now
			d.dirty = true
			if ttl < l.Issued {
				// Capped by the lease's maximum: the next due time
				// fetches a new credential before this one ends.
				l.Renewable = false
			}
			d.log.Info("lease renewed", "path", path, "ttl", ttl.String())
		case errors.Is(err, conn.ErrNotConnected):
		default:
			d.log.Warn("lease renewal failed; fetching a new credential", "path", path, "error", err.Error())
			refetch = append(refetch, path)
		}
	}
	if len(refetch) == 0 {
		return
	}
	sort.Strings(refetch)
	for _, p := range refetch {
		delete(d.ts.Leases(), p)
	}
	d.log.Info("fetching new credentials", "paths", strings.Join(refetch, ","))
	d.refresh(ctx, refetch)
}

// revokeLeases revokes every lease the agent holds, at shutdown.
func (d *daemon) revokeLeases() {
	if len(d.ts.Leases()) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.conn.WaitConnected(ctx); err != nil {
		d.log.Warn("cannot revoke leases at shutdown: not connected", "leases", len(d.ts.Leases()))
		return
	}
	for path, l := range d.ts.Leases() {
		if err := d.conn.RevokeLease(ctx, l.ID); err != nil {
			d.log.Warn("lease revocation at shutdown failed", "path", path, "error", err.Error())
			continue
		}
		d.log.Info("lease revoked", "path", path)
	}
}
