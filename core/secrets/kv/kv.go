// Package kv is SecretHub's versioned key-value secrets engine, a
// logical.Engine the core mounts at a path (the seed mounts it at
// "secrets/").
//
// Every write of a secret creates a new version (1, 2, 3, ...). A secret's
// metadata records its versions, each with its creation time, soft-deletion
// time and whether it was destroyed; the oldest versions beyond max_versions
// are deleted in the same storage transaction as the write that exceeds it.
// Writes support check-and-set (cas), versions can be soft-deleted,
// undeleted and destroyed, and delete_version_after makes versions read as
// deleted once they are old enough.
//
// The engine speaks one of two layouts, chosen at mount time:
//
//   - LayoutSimple: the relative path is the secret's path; a read returns
//     the secret's key/values, a write's body is the secret. Versions,
//     history and the delete/undelete/destroy actions are reached through
//     query parameters and small body conventions (see docs/kv.md).
//   - LayoutKVv2: Vault's KV version 2 paths (data/, metadata/, delete/,
//     undelete/, destroy/, subkeys/, config), so Vault clients such as
//     github.com/hashicorp/vault/api's KVv2 work unchanged.
//
// Both layouts share one implementation and one storage format.
//
// Concurrency: a write is a read-modify-write of the secret's metadata. The
// engine serialises writes to one path with striped in-process locks, which
// is correct for a single active node only. Several nodes writing the same
// storage concurrently would need conditional writes in the storage layer.
package kv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/secrethub/secrethub/core/logical"
)

var (
	_ logical.Engine           = (*Engine)(nil)
	_ logical.ExistenceChecker = (*Engine)(nil)
)

// Layout is the shape of the engine's API.
type Layout string

// The layouts.
const (
	// LayoutSimple is the seed API: the relative path is the secret.
	LayoutSimple Layout = "simple"
	// LayoutKVv2 is Vault's KV version 2 API.
	LayoutKVv2 Layout = "kv-v2"
)

const (
	// DefaultMaxVersions is how many versions a secret keeps when nothing
	// else says.
	DefaultMaxVersions = 10
	// MaxPathLength is the longest secret path, in bytes.
	MaxPathLength = 512
)

// lockStripes is the number of mutexes that serialise writes per path.
const lockStripes = 64

// Config configures an Engine at mount time.
type Config struct {
	// Layout is the API shape; "" means LayoutSimple.
	Layout Layout
	// MaxVersions is how many versions each secret keeps unless its own
	// metadata or (kv-v2) the stored engine config says otherwise; 0 means
	// DefaultMaxVersions.
	MaxVersions int
	// CASRequired makes the cas option mandatory on every write. In the
	// kv-v2 layout a config stored through the config endpoint replaces it.
	CASRequired bool
	// DeleteVersionAfter makes versions read as deleted this long after
	// they were written; 0 means never. In the kv-v2 layout a config stored
	// through the config endpoint replaces it.
	DeleteVersionAfter time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Engine is the key-value secrets engine. Create it with New; it is safe
// for concurrent use.
type Engine struct {
	storage  logical.Storage
	layout   Layout
	defaults engineConfig // the mount's config; MaxVersions already resolved
	now      func() time.Time

	// locks serialise the read-modify-write of one path's metadata: a
	// path uses locks[fnv1a(path) % lockStripes].
	locks [lockStripes]sync.Mutex

	// metaMemo skips decoding metadata whose stored bytes are unchanged.
	metaMemo metaMemo
}

// New returns an Engine that keeps its data in s, a storage view confined
// to the mount.
func New(s logical.Storage, cfg Config) (*Engine, error) {
	if s == nil {
		return nil, errors.New("kv: new: nil storage")
	}
	switch cfg.Layout {
	case "":
		cfg.Layout = LayoutSimple
	case LayoutSimple, LayoutKVv2:
	default:
		return nil, fmt.Errorf("kv: new: unknown layout %q (want %q or %q)", cfg.Layout, LayoutSimple, LayoutKVv2)
	}
	if cfg.MaxVersions < 0 || cfg.MaxVersions > maxVersionNumber {
		return nil, fmt.Errorf("kv: new: max versions %d out of range", cfg.MaxVersions)
	}
	if cfg.MaxVersions == 0 {
		cfg.MaxVersions = DefaultMaxVersions
	}
	if cfg.DeleteVersionAfter < 0 {
		return nil, fmt.Errorf("kv: new: negative delete_version_after %s", cfg.DeleteVersionAfter)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Engine{
		storage: s,
		layout:  cfg.Layout,
		defaults: engineConfig{
			MaxVersions:        cfg.MaxVersions,
			CASRequired:        cfg.CASRequired,
			DeleteVersionAfter: cfg.DeleteVersionAfter,
		},
		now: cfg.Now,
	}, nil
}

// Layout returns the engine's layout.
func (e *Engine) Layout() Layout { return e.layout }

// HandleRequest serves one request routed to the mount.
func (e *Engine) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	if req == nil {
		return nil, logical.Invalid("", "no request")
	}
	if e.layout == LayoutKVv2 {
		return e.handleKVv2(ctx, req)
	}
	return e.handleSimple(ctx, req)
}

// Exists tells a create from an update: it reports whether the secret a
// write addresses already exists. Writes that act on existing versions
// (the simple layout's actions, kv-v2's delete/, undelete/, destroy/ and
// config) are always updates.
func (e *Engine) Exists(ctx context.Context, req *logical.Request) (bool, error) {
	if req == nil {
		return false, logical.Invalid("", "no request")
	}
	if e.layout == LayoutKVv2 {
		return e.existsKVv2(ctx, req)
	}
	if _, ok := actionBody(req.Data); ok {
		return true, nil
	}
	p, err := secretPath(req.RelativePath)
	if err != nil {
		return false, err
	}
	return e.exists(ctx, p)
}

// secretPath validates the path of one secret: non-empty, at most
// MaxPathLength bytes, no leading or trailing slash, no empty, "." or ".."
// segment, no control character. The core checks the same; this is
// defence in depth.
func secretPath(p string) (string, error) {
	if p == "" {
		return "", logical.Invalid("path", "missing secret path")
	}
	if len(p) > MaxPathLength {
		return "", logical.Invalid("path", "longer than %d bytes", MaxPathLength)
	}
	clean, folder, err := logical.CleanPath(p)
	if err != nil {
		return "", err
	}
	if folder || clean != p {
		return "", logical.Invalid("path", "must not begin or end with a slash")
	}
	return p, nil
}

// folderPath validates a folder to list; "" is the root.
func folderPath(p string) (string, error) {
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return "", nil
	}
	return secretPath(p)
}

// formatTime formats t as Vault does: RFC 3339 with nanoseconds, in UTC;
// the zero time is "".
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// customMetadata returns m's custom metadata as a JSON object, or an
// untyped nil (JSON null).
func customMetadata(m *secretMeta) any {
	if len(m.CustomMetadata) == 0 {
		return nil
	}
	out := make(map[string]any, len(m.CustomMetadata))
	for k, v := range m.CustomMetadata {
		out[k] = v
	}
	return out
}

// versionData is the metadata of one version, as Vault's data endpoint
// returns it.
func versionData(v versionView, m *secretMeta) map[string]any {
	return map[string]any{
		"created_time":    formatTime(v.CreatedTime),
		"custom_metadata": customMetadata(m),
		"deletion_time":   formatTime(v.DeletionTime),
		"destroyed":       v.Destroyed,
		"version":         v.Version,
	}
}

// metadataData is a secret's full metadata, as Vault's metadata endpoint
// returns it.
func metadataData(cfg engineConfig, m *secretMeta, now time.Time) map[string]any {
	versions := make(map[string]any, len(m.Versions))
	for _, v := range m.views(cfg, now) {
		versions[fmt.Sprint(v.Version)] = map[string]any{
			"created_time":  formatTime(v.CreatedTime),
			"deletion_time": formatTime(v.DeletionTime),
			"destroyed":     v.Destroyed,
		}
	}
	return map[string]any{
		"cas_required":         m.CASRequired,
		"created_time":         formatTime(m.CreatedTime),
		"current_version":      m.CurrentVersion,
		"custom_metadata":      customMetadata(m),
		"delete_version_after": m.DeleteVersionAfter.String(),
		"max_versions":         m.MaxVersions,
		"oldest_version":       m.oldestVersion(),
		"updated_time":         formatTime(m.UpdatedTime),
		"versions":             versions,
	}
}

// deletedResponse is the answer to a read of a version that is deleted or
// destroyed: 404, with data null and the version's metadata, as Vault
// answers.
func deletedResponse(dataKey string, r *readResult) *logical.Response {
	return &logical.Response{
		StatusCode: 404,
		Data: map[string]any{
			dataKey:    nil,
			"metadata": versionData(r.View, r.Meta),
		},
	}
}

// withWarnings adds warnings to resp; a response without data that carries
// warnings is answered with 200 so they are not lost.
func withWarnings(resp *logical.Response, warnings []string) *logical.Response {
	if len(warnings) == 0 {
		return resp
	}
	if resp == nil {
		resp = &logical.Response{}
	}
	resp.Warnings = append(resp.Warnings, warnings...)
	if resp.Data == nil && resp.StatusCode == 0 {
		resp.StatusCode = 200
	}
	return resp
}
