package core

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strings"

	"github.com/secrethub/secrethub/core/audit"
	"github.com/secrethub/secrethub/core/auth/approle"
	"github.com/secrethub/secrethub/core/auth/kubernetes"
	"github.com/secrethub/secrethub/core/lease"
	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/mount"
	"github.com/secrethub/secrethub/core/secrets/awssts"
	"github.com/secrethub/secrethub/core/secrets/database"
	"github.com/secrethub/secrethub/core/secrets/kv"
	"github.com/secrethub/secrethub/core/secrets/pki"
	"github.com/secrethub/secrethub/core/secrets/redis"
	"github.com/secrethub/secrethub/core/storage"
)

// mountsPath holds the mount table in the barrier.
const mountsPath = "core/mounts"

// activeState is what an unsealed core serves with. It is replaced whole
// (copy on write) when mounts change, and dropped on seal; requests load
// it once, so one request sees one consistent state.
type activeState struct {
	mounts    *mount.Table
	engines   map[string]logical.Engine // by mount path
	audit     *audit.Log
	auditKeys audit.Keys
	// leases is the lease manager of this unseal.
	leases *lease.Manager
	// cluster is the cluster's name and ID.
	cluster clusterInfo
	// agentServerCert and agentCAPool serve the agent listener.
	agentServerCert *tls.Certificate
	agentCAPool     *x509.CertPool
}

// defaultMounts are mounted at the first unseal: versioned secrets at
// secrets/ (the seed's simple layout) and AppRole at auth/approle/.
func defaultMounts() []mount.Entry {
	return []mount.Entry{
		{Path: "secrets/", Type: "kv", Description: "versioned secrets", Options: map[string]string{"layout": "simple"}},
		{Path: "auth/approle/", Type: "approle", Description: "AppRole logins for machines"},
		{Path: AgentCAMount, Type: "pki", Description: "internal CA for agent mTLS"},
	}
}

// loadMounts reads the mount table, creating the default one when none is
// stored yet.
func (c *Core) loadMounts(ctx context.Context) (*mount.Table, error) {
	raw, err := c.barrier.Get(ctx, mountsPath)
	if errors.Is(err, storage.ErrNotFound) {
		t := &mount.Table{}
		for _, e := range defaultMounts() {
			if e.UUID, err = c.uuid(); err != nil {
				return nil, err
			}
			e.CreatedAt = c.now().UTC()
			if t, err = t.With(e); err != nil {
				return nil, fmt.Errorf("default mount %s: %w", e.Path, err)
			}
		}
		if err := c.storeMounts(ctx, t); err != nil {
			return nil, err
		}
		return t, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	var entries []mount.Entry
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("decode mount table: %w", err)
	}
	t := mount.NewTable(entries)
	if _, ok := t.Match(strings.TrimSuffix(AgentCAMount, "/")); !ok {
		// A table from before the agent CA existed.
		e := mount.Entry{Path: AgentCAMount, Type: "pki", Description: "internal CA for agent mTLS", CreatedAt: c.now().UTC()}
		if e.UUID, err = c.uuid(); err != nil {
			return nil, err
		}
		if t, err = t.With(e); err != nil {
			return nil, fmt.Errorf("agent CA mount: %w", err)
		}
		if err := c.storeMounts(ctx, t); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (c *Core) storeMounts(ctx context.Context, t *mount.Table) error {
	raw, err := json.Marshal(t.Entries())
	if err != nil {
		return fmt.Errorf("encode mount table: %w", err)
	}
	if err := c.barrier.Put(ctx, mountsPath, raw); err != nil {
		return fmt.Errorf("store mount table: %w", err)
	}
	return nil
}

// newEngine builds the engine for a mount entry over its storage view.
func (c *Core) newEngine(e mount.Entry) (logical.Engine, error) {
	view := mount.NewView(c.barrier, e.StoragePrefix())
	if f, ok := c.extraEngines[e.Type]; ok {
		return f(view)
	}
	switch e.Type {
	case "kv":
		layout := kv.LayoutSimple
		switch {
		case e.Options["layout"] == "kv-v2", e.Options["version"] == "2":
			layout = kv.LayoutKVv2
		case e.Options["layout"] == "", e.Options["layout"] == "simple":
		default:
			return nil, logical.Invalid("options.layout", "want simple or kv-v2, got %q", e.Options["layout"])
		}
		return kv.New(view, kv.Config{Layout: layout, Now: c.now})
	case "approle":
		return approle.New(view, approle.Config{Now: c.now, Rand: c.rand})
	case "kubernetes":
		return kubernetes.New(view, kubernetes.Config{Now: c.now, Logger: c.log})
	case "pki":
		return pki.New(view, pki.Config{Now: c.now, Rand: c.rand})
	case "database":
		return database.New(view, database.Config{Now: c.now, Rand: c.rand, Logger: c.log})
	case "redis":
		return redis.New(view, redis.Config{Now: c.now, Rand: c.rand})
	case "aws":
		return awssts.New(view, awssts.Config{Now: c.now, Rand: c.rand})
	}
	return nil, logical.Invalid("type", "unknown engine type %q; want kv, pki, database, redis, aws, approle or kubernetes", e.Type)
}

// engineIsAuth reports whether an engine type is an auth method.
func engineIsAuth(typ string) bool { return typ == "approle" || typ == "kubernetes" }

// buildEngines makes an engine for every mount in t.
func (c *Core) buildEngines(t *mount.Table) (map[string]logical.Engine, error) {
	out := map[string]logical.Engine{}
	for _, e := range t.Entries() {
		eng, err := c.newEngine(e)
		if err != nil {
			return nil, fmt.Errorf("mount %s: %w", e.Path, err)
		}
		out[e.Path] = eng
	}
	return out, nil
}

// mount adds an engine at e.Path.
func (c *Core) mount(ctx context.Context, e mount.Entry) error {
	if auth := strings.HasPrefix(e.Path, "auth/"); auth != engineIsAuth(e.Type) {
		if auth {
			return logical.Invalid("type", "%q is not an auth method; mount it under sys/mounts", e.Type)
		}
		return logical.Invalid("type", "%q is an auth method; enable it under sys/auth", e.Type)
	}
	c.mountsMu.Lock()
	defer c.mountsMu.Unlock()
	st := c.active.Load()
	if st == nil {
		return ErrSealed
	}
	var err error
	if e.UUID, err = c.uuid(); err != nil {
		return err
	}
	e.CreatedAt = c.now().UTC()
	t, err := st.mounts.With(e)
	if err != nil {
		return err
	}
	eng, err := c.newEngine(e)
	if err != nil {
		return err
	}
	if err := c.storeMounts(ctx, t); err != nil {
		return err
	}
	next := *st
	next.mounts = t
	next.engines = maps.Clone(st.engines)
	next.engines[e.Path] = eng
	if !c.active.CompareAndSwap(st, &next) {
		return ErrSealed // sealed meanwhile (requests hold reqLock, so this is a backstop)
	}
	c.log.InfoContext(ctx, "engine mounted", "path", e.Path, "type", e.Type)
	return nil
}

// unmount removes the mount at path and deletes its data.
func (c *Core) unmount(ctx context.Context, path string) error {
	if path == AgentCAMount {
		return logical.Invalid("path", "%s is the internal CA of agent mTLS and cannot be unmounted", AgentCAMount)
	}
	c.mountsMu.Lock()
	defer c.mountsMu.Unlock()
	st := c.active.Load()
	if st == nil {
		return ErrSealed
	}
	t, e, ok := st.mounts.Without(path)
	if !ok {
		return fmt.Errorf("%w: no mount at %q", logical.ErrNotFound, strings.TrimSuffix(path, "/"))
	}
	// The mount's credentials go first: once the mount is gone nothing
	// could revoke them.
	eng := st.engines[path]
	if err := st.leases.RevokeMount(ctx, path, eng); err != nil {
		return fmt.Errorf("unmount %s: the mount stays, because some of its leases could not be revoked (retried in the background; revoke-force removes leases without revoking): %w", path, err)
	}
	if err := c.storeMounts(ctx, t); err != nil {
		return err
	}
	next := *st
	next.mounts = t
	next.engines = maps.Clone(st.engines)
	delete(next.engines, path)
	if !c.active.CompareAndSwap(st, &next) {
		return ErrSealed
	}
	// Credentials issued by requests that were in flight during the first
	// pass.
	if err := st.leases.RevokeMount(ctx, path, eng); err != nil {
		c.log.ErrorContext(ctx, "unmount: leases issued during the unmount could not be revoked", "path", path, "error", err.Error())
	}
	closeEngine(ctx, c.log, path, eng)
	if err := mount.NewView(c.barrier, e.StoragePrefix()).Clear(ctx); err != nil {
		return fmt.Errorf("unmount %s: mount removed, but its data was not all deleted: %w", path, err)
	}
	c.log.InfoContext(ctx, "engine unmounted", "path", path, "type", e.Type)
	return nil
}

// closeEngine releases what an engine holds open (the database engine's
// connection pools), at unmount and seal.
func closeEngine(ctx context.Context, log *slog.Logger, path string, eng logical.Engine) {
	if cl, ok := eng.(io.Closer); ok {
		if err := cl.Close(); err != nil {
			log.WarnContext(ctx, "closing engine", "path", path, "error", err.Error())
		}
	}
}
