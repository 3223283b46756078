package kv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/storage"
	"github.com/secrethub/secrethub/internal/jsonstr"
)

// Storage layout, inside the mount's own view:
//
//	config                      engine config (kv-v2 layout only), JSON
//	meta/<path>                 a secret's metadata and version table, JSON
//	data/<path>/<version>       one version's key/values, JSON
//
// The metadata tree mirrors the secret paths, so listing a folder is one
// storage List of "meta/<folder>/". Version data is never listed: the
// metadata says which versions exist.
const (
	configKey  = "config"
	metaPrefix = "meta/"
	dataPrefix = "data/"
)

func metaKey(p string) string { return metaPrefix + p }

func dataKey(p string, n int) string { return dataPrefix + p + "/" + strconv.Itoa(n) }

// engineConfig is the engine-wide configuration.
type engineConfig struct {
	// MaxVersions is how many versions a secret keeps when its own
	// metadata does not say; 0 in storage means the mount's default.
	MaxVersions int `json:"max_versions"`
	// CASRequired makes the cas option mandatory on every write.
	CASRequired bool `json:"cas_required"`
	// DeleteVersionAfter soft-deletes versions this long after they were
	// written; 0 means never.
	DeleteVersionAfter time.Duration `json:"delete_version_after"`
}

// secretMeta is what is stored under meta/<path>.
type secretMeta struct {
	CurrentVersion int       `json:"current_version"`
	CreatedTime    time.Time `json:"created_time"`
	UpdatedTime    time.Time `json:"updated_time"`
	// MaxVersions, CASRequired and DeleteVersionAfter override the engine
	// config for this secret; zero values defer to it.
	MaxVersions        int                  `json:"max_versions,omitempty"`
	CASRequired        bool                 `json:"cas_required,omitempty"`
	DeleteVersionAfter time.Duration        `json:"delete_version_after,omitempty"`
	CustomMetadata     map[string]string    `json:"custom_metadata,omitempty"`
	Versions           map[int]*versionMeta `json:"versions"`
}

// versionMeta is one row of a secret's version table.
type versionMeta struct {
	CreatedTime time.Time `json:"created_time"`
	// DeletionTime is when the version was soft-deleted; zero if it was not.
	DeletionTime time.Time `json:"deletion_time,omitzero"`
	// Destroyed versions have no data any more.
	Destroyed bool `json:"destroyed,omitempty"`
	// Undeleted versions were restored by an undelete: delete_version_after
	// no longer applies to them, as in Vault, where undelete clears the
	// scheduled deletion.
	Undeleted bool `json:"undeleted,omitempty"`
}

// versionView is a version as a reader sees it at one instant, with
// delete_version_after applied.
type versionView struct {
	Version      int
	CreatedTime  time.Time
	DeletionTime time.Time // zero while the version is live
	Destroyed    bool
}

// live reports whether the version's data can be read.
func (v versionView) live() bool { return v.DeletionTime.IsZero() && !v.Destroyed }

// maxVersions is the number of versions m keeps under cfg.
func (m *secretMeta) maxVersions(cfg engineConfig) int {
	if m.MaxVersions > 0 {
		return m.MaxVersions
	}
	return cfg.MaxVersions
}

// deleteVersionAfter is the effective delete_version_after: the shorter of
// the secret's and the engine's, where zero means unset (Vault's rule: a
// secret may shorten, never lengthen, the engine's setting).
func (m *secretMeta) deleteVersionAfter(cfg engineConfig) time.Duration {
	switch {
	case m.DeleteVersionAfter == 0:
		return cfg.DeleteVersionAfter
	case cfg.DeleteVersionAfter == 0:
		return m.DeleteVersionAfter
	default:
		return min(m.DeleteVersionAfter, cfg.DeleteVersionAfter)
	}
}

// oldestVersion is the lowest version still in the table, 0 if none.
func (m *secretMeta) oldestVersion() int {
	if len(m.Versions) == 0 {
		return 0
	}
	return slices.Min(slices.Collect(maps.Keys(m.Versions)))
}

// view returns version n as seen at now, and whether the table holds it.
func (m *secretMeta) view(n int, cfg engineConfig, now time.Time) (versionView, bool) {
	v, ok := m.Versions[n]
	if !ok {
		return versionView{}, false
	}
	out := versionView{Version: n, CreatedTime: v.CreatedTime, DeletionTime: v.DeletionTime, Destroyed: v.Destroyed}
	if out.DeletionTime.IsZero() && !v.Undeleted {
		if d := m.deleteVersionAfter(cfg); d > 0 {
			if at := v.CreatedTime.Add(d); !now.Before(at) {
				out.DeletionTime = at
			}
		}
	}
	return out, true
}

// views returns every version in the table, oldest first.
func (m *secretMeta) views(cfg engineConfig, now time.Time) []versionView {
	ns := slices.Sorted(maps.Keys(m.Versions))
	out := make([]versionView, 0, len(ns))
	for _, n := range ns {
		v, _ := m.view(n, cfg, now)
		out = append(out, v)
	}
	return out
}

// prune drops the oldest versions beyond max from the table and returns
// the storage ops that delete their data.
func (m *secretMeta) prune(p string, max int) []storage.Op {
	if max <= 0 || len(m.Versions) <= max {
		return nil
	}
	ns := slices.Sorted(maps.Keys(m.Versions))
	var ops []storage.Op
	for _, n := range ns[:len(ns)-max] {
		delete(m.Versions, n)
		ops = append(ops, storage.DeleteOp(dataKey(p, n)))
	}
	return ops
}

// lock takes the stripe of e.locks that guards key and returns its unlock.
func (e *Engine) lock(key string) func() {
	// FNV-1a, inline: no allocation on the hot path.
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	mu := &e.locks[h%lockStripes]
	mu.Lock()
	return mu.Unlock
}

// config returns the engine config in force: the mount's defaults, or in
// the kv-v2 layout what was stored through the config endpoint.
func (e *Engine) config(ctx context.Context) (engineConfig, error) {
	cfg, err := e.storedConfig(ctx)
	if err != nil {
		return cfg, err
	}
	if cfg.MaxVersions <= 0 {
		cfg.MaxVersions = e.defaults.MaxVersions
	}
	if cfg.DeleteVersionAfter < 0 {
		cfg.DeleteVersionAfter = 0
	}
	return cfg, nil
}

// storedConfig returns the config as stored, where max_versions 0 means
// the mount's default; without a stored config, the mount's settings.
func (e *Engine) storedConfig(ctx context.Context) (engineConfig, error) {
	cfg := e.defaults
	cfg.MaxVersions = 0
	if e.layout != LayoutKVv2 {
		return cfg, nil
	}
	raw, err := e.storage.Get(ctx, configKey)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return cfg, nil
	case err != nil:
		return cfg, fmt.Errorf("kv: read config: %w", err)
	}
	var stored engineConfig
	if err := json.Unmarshal(raw, &stored); err != nil {
		return cfg, fmt.Errorf("kv: decode config: %w", err)
	}
	return stored, nil
}

// loadMeta returns the metadata of p, or nil if p has none. A storage
// error is returned as such, never as "missing". The caller owns the
// result and may change it.
func (e *Engine) loadMeta(ctx context.Context, p string) (*secretMeta, error) {
	return e.loadMetaAs(ctx, p, false)
}

// loadMetaAs is loadMeta; when shared is set, for a caller that only
// reads the result, which may then be shared with other callers and must
// not be changed.
func (e *Engine) loadMetaAs(ctx context.Context, p string, shared bool) (*secretMeta, error) {
	raw, err := e.storage.Get(ctx, metaKey(p))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("kv: read metadata of %q: %w", p, err)
	}
	if m, ok := e.metaMemo.get(p, raw, shared); ok {
		return m, nil
	}
	var m secretMeta
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("kv: decode metadata of %q: %w", p, err)
	}
	if m.Versions == nil {
		m.Versions = make(map[int]*versionMeta)
	}
	if shared {
		e.metaMemo.put(p, bytes.Clone(raw), &m)
	} else {
		e.metaMemo.put(p, bytes.Clone(raw), m.clone())
	}
	return &m, nil
}

// maxDecodedMeta bounds metaMemo; when it is full it starts over.
const maxDecodedMeta = 4096

// metaMemo remembers metadata decoded from storage, by path, with the
// bytes it was decoded from: a read of the same bytes again skips the JSON
// decoding, which was the largest part of the engine's CPU on a read.
// Storage is still read (and decrypted) every time, so a changed secret is
// never answered from here, and callers get their own copy.
type metaMemo struct {
	mu      sync.Mutex
	decoded map[string]decodedMeta
}

// decodedMeta is metadata and the stored bytes it was decoded from.
type decodedMeta struct {
	raw []byte
	m   *secretMeta
}

// get returns the metadata of p decoded from raw, if remembered: the
// remembered one when shared is set (the caller must not change it), a
// copy otherwise.
func (mm *metaMemo) get(p string, raw []byte, shared bool) (*secretMeta, bool) {
	mm.mu.Lock()
	d, ok := mm.decoded[p]
	mm.mu.Unlock()
	if !ok || !bytes.Equal(d.raw, raw) {
		return nil, false
	}
	if shared {
		return d.m, true
	}
	return d.m.clone(), true
}

// put remembers m as the metadata of p decoded from raw. m and raw are
// shared from then on: nobody may change them.
func (mm *metaMemo) put(p string, raw []byte, m *secretMeta) {
	d := decodedMeta{raw: raw, m: m}
	mm.mu.Lock()
	if mm.decoded == nil || len(mm.decoded) >= maxDecodedMeta {
		mm.decoded = make(map[string]decodedMeta)
	}
	mm.decoded[p] = d
	mm.mu.Unlock()
}

// clone returns a copy of m that shares no map or version with it.
func (m *secretMeta) clone() *secretMeta {
	c := *m
	c.CustomMetadata = maps.Clone(m.CustomMetadata)
	c.Versions = make(map[int]*versionMeta, len(m.Versions))
	for n, v := range m.Versions {
		vc := *v
		c.Versions[n] = &vc
	}
	return &c
}

// loadBoth reads the config and the metadata of p (see loadMeta).
func (e *Engine) loadBoth(ctx context.Context, p string) (engineConfig, *secretMeta, error) {
	return e.loadBothAs(ctx, p, false)
}

// loadBothAs is loadBoth, with shared metadata (see loadMetaAs) when
// shared is set.
func (e *Engine) loadBothAs(ctx context.Context, p string, shared bool) (engineConfig, *secretMeta, error) {
	cfg, err := e.config(ctx)
	if err != nil {
		return cfg, nil, err
	}
	m, err := e.loadMetaAs(ctx, p, shared)
	return cfg, m, err
}

func encodeMeta(p string, m *secretMeta) (storage.Op, error) {
	raw, err := m.appendJSON(make([]byte, 0, 160+96*len(m.Versions)))
	if err != nil {
		return storage.Op{}, fmt.Errorf("kv: encode metadata of %q: %w", p, err)
	}
	return storage.PutOp(metaKey(p), raw), nil
}

// commit applies ops and then stores m, in one transaction. m is shared
// from then on (see loadMetaAs): the caller must not change it any more.
func (e *Engine) commit(ctx context.Context, op, p string, m *secretMeta, ops []storage.Op) error {
	put, err := encodeMeta(p, m)
	if err != nil {
		return err
	}
	if err := e.storage.Txn(ctx, append(ops, put)); err != nil {
		return fmt.Errorf("kv: %s %q: %w", op, p, err)
	}
	// The next load of p reads back the bytes just stored: remember m as
	// what they decode to, so that it need not decode them. An empty
	// custom metadata is not stored (omitempty) and decodes as nil.
	if len(m.CustomMetadata) == 0 {
		m.CustomMetadata = nil
	}
	e.metaMemo.put(p, put.Value, m)
	return nil
}

// written describes a freshly written version.
type written struct {
	Version int
	View    versionView
	Meta    *secretMeta
}

// write stores data as the next version of p. cas, when not nil, must
// equal the current version (0: p has no version yet). The new version,
// the updated metadata and the deletion of versions beyond max_versions
// are one transaction.
func (e *Engine) write(ctx context.Context, p string, data map[string]any, cas *int) (*written, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, logical.Invalid("data", "cannot be encoded as JSON")
	}
	defer e.lock(p)()
	cfg, m, err := e.loadBoth(ctx, p)
	if err != nil {
		return nil, err
	}
	current := 0
	if m != nil {
		current = m.CurrentVersion
	}
	if cas == nil && (cfg.CASRequired || (m != nil && m.CASRequired)) {
		return nil, logical.Invalid("options.cas", "check-and-set parameter required for this call")
	}
	if cas != nil && *cas != current {
		return nil, fmt.Errorf("kv: write %q: %w", p, logical.ErrConflict)
	}
	if current >= maxVersionNumber {
		return nil, logical.Invalid("path", "no version numbers left")
	}
	now := e.now().UTC()
	if m == nil {
		m = &secretMeta{CreatedTime: now, Versions: make(map[int]*versionMeta)}
	}
	n := current + 1
	m.CurrentVersion = n
	m.UpdatedTime = now
	m.Versions[n] = &versionMeta{CreatedTime: now}
	ops := append([]storage.Op{storage.PutOp(dataKey(p, n), raw)}, m.prune(p, m.maxVersions(cfg))...)
	if err := e.commit(ctx, "write", p, m, ops); err != nil {
		return nil, err
	}
	v, _ := m.view(n, cfg, now)
	return &written{Version: n, View: v, Meta: m}, nil
}

// readResult is one version of a secret as read.
type readResult struct {
	View versionView
	// Meta is shared (see loadMetaAs): read it, never change it.
	Meta *secretMeta
	// Data is nil when the version is deleted or destroyed.
	Data map[string]any
}

// read returns version n of p (0: the latest). It answers
// logical.ErrNotFound when p has no such version; a version that is
// deleted or destroyed is returned without Data, so the caller can show
// its metadata.
func (e *Engine) read(ctx context.Context, p string, n int) (*readResult, error) {
	cfg, m, err := e.loadBothAs(ctx, p, true)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("kv: read %q: %w", p, logical.ErrNotFound)
	}
	if n == 0 {
		n = m.CurrentVersion
	}
	v, ok := m.view(n, cfg, e.now())
	if !ok {
		return nil, fmt.Errorf("kv: read %q version %d: %w", p, n, logical.ErrNotFound)
	}
	res := &readResult{View: v, Meta: m}
	if !v.live() {
		return res, nil
	}
	raw, err := e.storage.Get(ctx, dataKey(p, n))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		// Pruned or destroyed between our two reads.
		return nil, fmt.Errorf("kv: read %q version %d: %w", p, n, logical.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("kv: read %q version %d: %w", p, n, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&res.Data); err != nil {
		return nil, fmt.Errorf("kv: decode %q version %d: %w", p, n, err)
	}
	if res.Data == nil {
		res.Data = map[string]any{}
	}
	return res, nil
}

// metadata returns the config and metadata of p, or logical.ErrNotFound.
// The metadata is shared (see loadMetaAs): read it, never change it.
func (e *Engine) metadata(ctx context.Context, p string) (engineConfig, *secretMeta, error) {
	cfg, m, err := e.loadBothAs(ctx, p, true)
	if err != nil {
		return cfg, nil, err
	}
	if m == nil {
		return cfg, nil, fmt.Errorf("kv: read metadata of %q: %w", p, logical.ErrNotFound)
	}
	return cfg, m, nil
}

// versionAction is what delete, undelete and destroy do to one version. It
// reports whether it changed v, and may return a storage op to apply.
type versionAction func(p string, n int, v *versionMeta, view versionView, now time.Time) (bool, *storage.Op)

func softDelete(_ string, _ int, v *versionMeta, view versionView, now time.Time) (bool, *storage.Op) {
	if !view.live() {
		return false, nil
	}
	v.DeletionTime = now
	return true, nil
}

func undelete(_ string, _ int, v *versionMeta, _ versionView, _ time.Time) (bool, *storage.Op) {
	if v.Destroyed || (v.DeletionTime.IsZero() && v.Undeleted) {
		return false, nil
	}
	v.DeletionTime = time.Time{}
	v.Undeleted = true
	return true, nil
}

func destroy(p string, n int, v *versionMeta, _ versionView, _ time.Time) (bool, *storage.Op) {
	if v.Destroyed {
		return false, nil
	}
	v.Destroyed = true
	op := storage.DeleteOp(dataKey(p, n))
	return true, &op
}

// apply runs act on the listed versions of p (nil: the current version).
// Versions p does not hold are ignored, and a missing p is not an error,
// as in Vault: the caller wanted them gone, and they are.
func (e *Engine) apply(ctx context.Context, name, p string, versions []int, act versionAction) error {
	defer e.lock(p)()
	cfg, m, err := e.loadBoth(ctx, p)
	if err != nil || m == nil {
		return err
	}
	if versions == nil {
		if m.CurrentVersion == 0 {
			return nil
		}
		versions = []int{m.CurrentVersion}
	}
	now := e.now().UTC()
	changed := false
	var ops []storage.Op
	for _, n := range versions {
		view, ok := m.view(n, cfg, now)
		if !ok {
			continue
		}
		c, op := act(p, n, m.Versions[n], view, now)
		changed = changed || c
		if op != nil {
			ops = append(ops, *op)
		}
	}
	if !changed {
		return nil
	}
	return e.commit(ctx, name, p, m, ops)
}

// deleteAll removes p's metadata and every version's data, atomically.
func (e *Engine) deleteAll(ctx context.Context, p string) error {
	defer e.lock(p)()
	m, err := e.loadMeta(ctx, p)
	if err != nil || m == nil {
		return err
	}
	ops := make([]storage.Op, 0, len(m.Versions)+1)
	for _, n := range slices.Sorted(maps.Keys(m.Versions)) {
		ops = append(ops, storage.DeleteOp(dataKey(p, n)))
	}
	ops = append(ops, storage.DeleteOp(metaKey(p)))
	if err := e.storage.Txn(ctx, ops); err != nil {
		return fmt.Errorf("kv: delete metadata of %q: %w", p, err)
	}
	return nil
}

// metaUpdate holds the metadata fields a request sets; nil leaves a field
// as it is.
type metaUpdate struct {
	MaxVersions        *int
	CASRequired        *bool
	DeleteVersionAfter *time.Duration
	CustomMetadata     *map[string]string
}

// writeMeta applies u to p's metadata, creating it if needed. Lowering
// max_versions deletes the versions beyond it in the same transaction.
func (e *Engine) writeMeta(ctx context.Context, p string, u metaUpdate) error {
	defer e.lock(p)()
	cfg, m, err := e.loadBoth(ctx, p)
	if err != nil {
		return err
	}
	if m == nil {
		now := e.now().UTC()
		m = &secretMeta{CreatedTime: now, UpdatedTime: now, Versions: make(map[int]*versionMeta)}
	}
	if u.MaxVersions != nil {
		m.MaxVersions = *u.MaxVersions
	}
	if u.CASRequired != nil {
		m.CASRequired = *u.CASRequired
	}
	if u.DeleteVersionAfter != nil {
		m.DeleteVersionAfter = *u.DeleteVersionAfter
	}
	if u.CustomMetadata != nil {
		m.CustomMetadata = *u.CustomMetadata
	}
	return e.commit(ctx, "write metadata of", p, m, m.prune(p, m.maxVersions(cfg)))
}

// writeConfig applies u to the stored engine config (kv-v2 layout).
func (e *Engine) writeConfig(ctx context.Context, u metaUpdate) error {
	defer e.lock(configKey)()
	cfg, err := e.storedConfig(ctx)
	if err != nil {
		return err
	}
	if u.MaxVersions != nil {
		cfg.MaxVersions = *u.MaxVersions
	}
	if u.CASRequired != nil {
		cfg.CASRequired = *u.CASRequired
	}
	if u.DeleteVersionAfter != nil {
		cfg.DeleteVersionAfter = *u.DeleteVersionAfter
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("kv: encode config: %w", err)
	}
	if err := e.storage.Put(ctx, configKey, raw); err != nil {
		return fmt.Errorf("kv: write config: %w", err)
	}
	return nil
}

// list returns the direct children of folder ("" is the root) in the
// metadata tree: secret names, and sub-folders ending in "/". An empty or
// missing folder is logical.ErrNotFound, as in Vault.
func (e *Engine) list(ctx context.Context, folder string) ([]string, error) {
	prefix := metaPrefix
	if folder != "" {
		prefix += folder + "/"
	}
	keys, err := e.storage.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("kv: list %q: %w", folder, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("kv: list %q: %w", folder, logical.ErrNotFound)
	}
	return keys, nil
}

// exists reports whether p has metadata. It does not decode it: the
// create-or-update decision needs only its presence, and the write that
// follows decodes it anyway (failing on metadata that does not decode).
func (e *Engine) exists(ctx context.Context, p string) (bool, error) {
	_, err := e.storage.Get(ctx, metaKey(p))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("kv: read metadata of %q: %w", p, err)
	}
	return true, nil
}

// appendJSON appends json.Marshal(m) to b, without reflection: the
// members in field order, omitempty and omitzero as tagged, version keys
// sorted as strings (as encoding/json sorts a map's keys), strings escaped
// with HTML escaping on, times as time.Time.MarshalJSON writes them.
// TestAppendMetaJSONMatchesMarshal holds it to json.Marshal's bytes.
func (m *secretMeta) appendJSON(b []byte) ([]byte, error) {
	var err error
	b = append(b, `{"current_version":`...)
	b = strconv.AppendInt(b, int64(m.CurrentVersion), 10)
	b = append(b, `,"created_time":`...)
	if b, err = appendJSONTime(b, m.CreatedTime); err != nil {
		return nil, err
	}
	b = append(b, `,"updated_time":`...)
	if b, err = appendJSONTime(b, m.UpdatedTime); err != nil {
		return nil, err
	}
	if m.MaxVersions != 0 {
		b = append(b, `,"max_versions":`...)
		b = strconv.AppendInt(b, int64(m.MaxVersions), 10)
	}
	if m.CASRequired {
		b = append(b, `,"cas_required":true`...)
	}
	if m.DeleteVersionAfter != 0 {
		b = append(b, `,"delete_version_after":`...)
		b = strconv.AppendInt(b, int64(m.DeleteVersionAfter), 10)
	}
	if len(m.CustomMetadata) > 0 {
		b = append(b, `,"custom_metadata":{`...)
		for i, k := range slices.Sorted(maps.Keys(m.CustomMetadata)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonstr.Append(b, k, true)
			b = append(b, ':')
			b = jsonstr.Append(b, m.CustomMetadata[k], true)
		}
		b = append(b, '}')
	}
	b = append(b, `,"versions":`...)
	if m.Versions == nil {
		return append(b, "null}"...), nil
	}
	type key struct {
		s string
		n int
	}
	keys := make([]key, 0, len(m.Versions))
	for n := range m.Versions {
		keys = append(keys, key{strconv.Itoa(n), n})
	}
	slices.SortFunc(keys, func(x, y key) int { return strings.Compare(x.s, y.s) })
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, k.s...)
		b = append(b, `":`...)
		v := m.Versions[k.n]
		if v == nil {
			b = append(b, "null"...)
			continue
		}
		b = append(b, `{"created_time":`...)
		if b, err = appendJSONTime(b, v.CreatedTime); err != nil {
			return nil, err
		}
		if !v.DeletionTime.IsZero() {
			b = append(b, `,"deletion_time":`...)
			if b, err = appendJSONTime(b, v.DeletionTime); err != nil {
				return nil, err
			}
		}
		if v.Destroyed {
			b = append(b, `,"destroyed":true`...)
		}
		if v.Undeleted {
			b = append(b, `,"undeleted":true`...)
		}
		b = append(b, '}')
	}
	return append(b, "}}"...), nil
}

// appendJSONTime appends t as time.Time.MarshalJSON writes it.
func appendJSONTime(b []byte, t time.Time) ([]byte, error) {
	if _, offset := t.Zone(); offset != 0 || t.Year() < 0 || t.Year() > 9999 {
		// The cases MarshalJSON checks (and may refuse), left to it.
		raw, err := t.MarshalJSON()
		if err != nil {
			return nil, err
		}
		return append(b, raw...), nil
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}
