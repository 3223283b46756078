// Package mount keeps the table of mounted engines and routes a path to
// the mount that serves it, by longest prefix. It also gives each mount a
// storage view confined to its own prefix, so an engine cannot read or
// write another's data.
package mount

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/storage"
)

// Entry is one mounted engine.
type Entry struct {
	// Path is where the engine is mounted, ending in "/" ("secrets/",
	// "auth/approle/").
	Path string `json:"path"`
	// Type names the engine ("kv", "approle").
	Type        string            `json:"type"`
	Description string            `json:"description,omitempty"`
	Options     map[string]string `json:"options,omitempty"`
	// UUID names the mount's storage prefix; it never changes, so data
	// stays put if mounts are ever moved.
	UUID      string    `json:"uuid"`
	CreatedAt time.Time `json:"created_at"`
}

// StoragePrefix is where the mount's data lives in the barrier.
func (e *Entry) StoragePrefix() string {
	if strings.HasPrefix(e.Path, "auth/") {
		return "auth/" + e.UUID + "/"
	}
	return "logical/" + e.UUID + "/"
}

// Table is an immutable set of mounts. The zero value is empty.
type Table struct {
	entries []Entry // sorted by path length, longest first
}

// NewTable returns a table of entries.
func NewTable(entries []Entry) *Table {
	t := &Table{entries: slices.Clone(entries)}
	slices.SortFunc(t.entries, func(a, b Entry) int {
		if d := len(b.Path) - len(a.Path); d != 0 {
			return d
		}
		return strings.Compare(a.Path, b.Path)
	})
	return t
}

// Entries returns the mounts, sorted by path.
func (t *Table) Entries() []Entry {
	out := slices.Clone(t.entries)
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// Match returns the mount whose path is the longest prefix of path. path
// "secrets" matches the mount "secrets/" (the mount's root).
func (t *Table) Match(path string) (Entry, bool) {
	for _, e := range t.entries {
		if strings.HasPrefix(path+"/", e.Path) {
			return e, true
		}
	}
	return Entry{}, false
}

// With returns a table with e added. It refuses a path that is taken.
// Secrets engines may nest (a mount at "secrets/dynamic/postgresql/"
// inside "secrets/"): the longest prefix serves a path, so the inner mount
// hides the outer one's paths below it (docs/decisions/0008). Under auth/
// nothing nests.
func (t *Table) With(e Entry) (*Table, error) {
	if err := ValidatePath(e.Path); err != nil {
		return nil, err
	}
	for _, o := range t.entries {
		if e.Path == o.Path {
			return nil, logical.Invalid("path", "%q is already mounted", e.Path)
		}
		auth := strings.HasPrefix(e.Path, "auth/") || strings.HasPrefix(o.Path, "auth/")
		if auth && (strings.HasPrefix(e.Path, o.Path) || strings.HasPrefix(o.Path, e.Path)) {
			return nil, logical.Invalid("path", "%q conflicts with the existing mount %q", e.Path, o.Path)
		}
	}
	return NewTable(append(slices.Clone(t.entries), e)), nil
}

// Without returns a table without the mount at path, and that mount.
func (t *Table) Without(path string) (*Table, Entry, bool) {
	for i, e := range t.entries {
		if e.Path == path {
			return &Table{entries: slices.Delete(slices.Clone(t.entries), i, i+1)}, e, true
		}
	}
	return t, Entry{}, false
}

var segment = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// reserved are paths the core serves itself.
func reserved() [3]string { return [3]string{"sys/", "auth/token/", "v1/"} }

// ValidatePath checks a mount path: one or more segments of letters,
// digits, '_', '.' and '-', ending in "/", outside the core's own paths.
func ValidatePath(p string) error {
	if !strings.HasSuffix(p, "/") {
		return logical.Invalid("path", "mount path %q must end in /", p)
	}
	for _, seg := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
		if !segment.MatchString(seg) {
			return logical.Invalid("path", "mount path %q: segment %q must be 1-64 letters, digits, '_', '.' or '-'", p, seg)
		}
	}
	for _, r := range reserved() {
		if strings.HasPrefix(p, r) || strings.HasPrefix(r, p) {
			return logical.Invalid("path", "mount path %q overlaps the reserved path %q", p, r)
		}
	}
	return nil
}

// View is a storage view confined to a prefix: keys are relative to it.
type View struct {
	s      logical.Storage
	prefix string
}

var _ logical.Storage = (*View)(nil)

// NewView returns the view of s below prefix, which must end in "/".
func NewView(s logical.Storage, prefix string) *View { return &View{s: s, prefix: prefix} }

// Get reads key below the prefix.
func (v *View) Get(ctx context.Context, key string) ([]byte, error) {
	return v.s.Get(ctx, v.prefix+key)
}

// Put writes key below the prefix.
func (v *View) Put(ctx context.Context, key string, value []byte) error {
	return v.s.Put(ctx, v.prefix+key, value)
}

// Delete removes key below the prefix.
func (v *View) Delete(ctx context.Context, key string) error {
	return v.s.Delete(ctx, v.prefix+key)
}

// List lists below the prefix.
func (v *View) List(ctx context.Context, prefix string) ([]string, error) {
	return v.s.List(ctx, v.prefix+prefix)
}

// Txn applies ops below the prefix.
func (v *View) Txn(ctx context.Context, ops []storage.Op) error {
	out := make([]storage.Op, len(ops))
	for i, op := range ops {
		out[i] = op
		out[i].Key = v.prefix + op.Key
	}
	return v.s.Txn(ctx, out)
}

// Clear deletes everything below the view's prefix, in batches.
func (v *View) Clear(ctx context.Context) error {
	var keys []string
	var walk func(prefix string) error
	walk = func(prefix string) error {
		children, err := v.List(ctx, prefix)
		if err != nil {
			return fmt.Errorf("mount: list %q: %w", prefix, err)
		}
		for _, c := range children {
			if strings.HasSuffix(c, "/") {
				if err := walk(prefix + c); err != nil {
					return err
				}
				continue
			}
			keys = append(keys, prefix+c)
		}
		return nil
	}
	if err := walk(""); err != nil {
		return err
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		ops := make([]storage.Op, n)
		for i, k := range keys[:n] {
			ops[i] = storage.DeleteOp(k)
		}
		if err := v.Txn(ctx, ops); err != nil {
			return fmt.Errorf("mount: clear: %w", err)
		}
		keys = keys[n:]
	}
	return nil
}
