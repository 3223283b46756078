// Package rotation schedules the rotation of static secrets: a key of a
// KV secret is replaced by a fresh random value every period, and engines
// with rotations of their own (database static roles) are polled for the
// ones that are due.
//
// A rotation never takes a secret away from its readers at once: it
// writes a new version of the KV secret with the key replaced and the
// other keys kept, so the previous version stays readable by version
// number for a grace period, after which it is soft-deleted (a pending
// cleanup). Schedules and their state live in the barrier's storage under
// StoragePrefix, so they survive restarts; a rotation that fell due while
// the core was down runs when the scheduler starts.
//
// Several cores may share one storage; the Scheduler runs due work only
// while holding the storage's lock LockName (storage.Locker), so one node
// rotates and the others wait for their turn.
//
// The package does not know the core: the core hands it a Requester that
// runs KV requests through the engine a mount serves and audits them, a
// function that tells which mount serves a path, and one that lists the
// engines with periodic rotations.
package rotation

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/secrets/kv"
)

// StoragePrefix is where schedules are kept in the storage the core gives
// the Scheduler: StoragePrefix + name.
const StoragePrefix = "sys/rotation/schedules/"

// LockName is the storage lock due work runs under.
const LockName = "secrethub-rotation"

// Bounds and defaults of a schedule.
const (
	// MinPeriod is the shortest period.
	MinPeriod = time.Minute
	// DefaultGrace is how long the replaced version stays readable unless
	// the schedule says otherwise (capped by the period).
	DefaultGrace = time.Hour
	// MaxNameLength is the longest schedule name.
	MaxNameLength = 128
	// MaxKeyLength is the longest key name.
	MaxKeyLength = 256
)

// Kind is what a schedule rotates.
type Kind string

// KindKV rotates one key of a KV secret. It is the only kind: database
// static roles are rotated by their engine's own settings (see Periodic).
const KindKV Kind = "kv"

var (
	// ErrNotFound is returned for a schedule that does not exist. It
	// matches logical.ErrNotFound.
	ErrNotFound = fmt.Errorf("rotation: no such schedule: %w", logical.ErrNotFound)
	// ErrBusy is returned when the rotation lock stayed held elsewhere for
	// as long as a caller was willing to wait. It matches
	// context.DeadlineExceeded: the caller may try again.
	ErrBusy = fmt.Errorf("rotation: the rotation lock is held by another node or job; try again: %w", context.DeadlineExceeded)
	// ErrStopped is returned by the calls of a stopped Scheduler.
	ErrStopped = errors.New("rotation: scheduler stopped")
)

// Spec is what a client sets on a schedule.
type Spec struct {
	// Name identifies the schedule: letters, digits, '-', '_' and '.'.
	Name string
	// Kind is KindKV; "" means KindKV.
	Kind Kind
	// Path is the API path of the KV secret: "secrets/app/api-key" on a
	// simple-layout mount, "secret/data/app/api-key" on a kv-v2 mount.
	Path string
	// Key is the key of the secret whose value is replaced.
	Key string
	// Generator makes the new value.
	Generator Generator
	// Period is the time between rotations, at least MinPeriod.
	Period time.Duration
	// Grace is how long the replaced version stays readable, 0..Period;
	// nil means DefaultGrace, or Period if shorter.
	Grace *time.Duration
}

// Schedule is a stored schedule: its Spec (defaults applied) and its
// state. It never holds a secret value.
type Schedule struct {
	Name      string        `json:"name"`
	Kind      Kind          `json:"kind"`
	Path      string        `json:"path"`
	Key       string        `json:"key"`
	Generator Generator     `json:"generator"`
	Period    time.Duration `json:"period"`
	Grace     time.Duration `json:"grace"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// LastRotation is when the last successful rotation ran; zero before
	// the first.
	LastRotation time.Time `json:"last_rotation,omitzero"`
	// NextRotation is when the next rotation is due. After a failure it is
	// the retry time.
	NextRotation time.Time `json:"next_rotation"`
	// LastVersion is the KV version the last rotation wrote.
	LastVersion int `json:"last_version,omitempty"`
	// LastError is why the last rotation or cleanup failed; "" after a
	// success. It never holds a secret value.
	LastError string `json:"last_error,omitempty"`
	// Cleanup is the replaced version waiting for its grace to end.
	Cleanup *Cleanup `json:"cleanup,omitempty"`
}

// Cleanup is a replaced version to soft-delete when its grace ends.
type Cleanup struct {
	// Path is the secret's API path (the schedule's path when it was
	// replaced: a schedule moved to another path still retires it).
	Path string `json:"path"`
	// Version is the version to soft-delete.
	Version int `json:"version"`
	// At is when the grace ends.
	At time.Time `json:"at"`
}

// dueAt is the earliest time s has work: its rotation or its cleanup.
func (s *Schedule) dueAt() time.Time {
	t := s.NextRotation
	if s.Cleanup != nil && s.Cleanup.At.Before(t) {
		t = s.Cleanup.At
	}
	return t
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ValidateName checks a schedule name.
func ValidateName(name string) error {
	switch {
	case name == "":
		return logical.Invalid("name", "missing schedule name")
	case len(name) > MaxNameLength:
		return logical.Invalid("name", "longer than %d characters", MaxNameLength)
	case !nameRE.MatchString(name):
		return logical.Invalid("name", "use letters, digits, '-', '_' and '.', starting with a letter or digit")
	}
	return nil
}

// MountInfo describes the mount that serves a path.
type MountInfo struct {
	// Path is the mount's path, ending in "/" ("secrets/").
	Path string
	// Type is the engine type ("kv", "pki", ...).
	Type string
	// Layout is the KV layout, for kv mounts.
	Layout kv.Layout
}

// MountFunc tells which mount serves an API path; false when none does.
type MountFunc func(path string) (MountInfo, bool)

// kvTarget is a KV secret resolved against the mount table.
type kvTarget struct {
	mount MountInfo
	// secret is the secret's path inside the mount ("app/api-key").
	secret string
}

// dataPath is the API path that reads and writes the secret.
func (t kvTarget) dataPath() string {
	if t.mount.Layout == kv.LayoutKVv2 {
		return t.mount.Path + "data/" + t.secret
	}
	return t.mount.Path + t.secret
}

// resolveKV checks that path names a secret of a KV mount, in the API form
// of the mount's layout.
func resolveKV(mounts MountFunc, path string) (kvTarget, error) {
	clean, folder, err := logical.CleanPath(path)
	if err != nil || folder || clean != path || path == "" {
		return kvTarget{}, logical.Invalid("path", "want the API path of a KV secret, such as secrets/app/api-key, without leading or trailing slash")
	}
	m, ok := mounts(path)
	if !ok {
		return kvTarget{}, logical.Invalid("path", "no mount serves %q", path)
	}
	if m.Type != "kv" {
		return kvTarget{}, logical.Invalid("path", "%q is served by a %s mount at %s; want a kv mount", path, m.Type, m.Path)
	}
	rel := strings.TrimPrefix(path, m.Path)
	if m.Layout == kv.LayoutKVv2 {
		secret, ok := strings.CutPrefix(rel, "data/")
		if !ok || secret == "" {
			return kvTarget{}, logical.Invalid("path", "%s is a kv-v2 mount: give the data path of the secret, %sdata/<secret>", m.Path, m.Path)
		}
		rel = secret
	}
	if rel == "" {
		return kvTarget{}, logical.Invalid("path", "names the mount %s, not a secret in it", m.Path)
	}
	return kvTarget{mount: m, secret: rel}, nil
}

// build validates spec and returns the schedule it describes, with the
// defaults applied. mounts checks the path.
func build(spec Spec, mounts MountFunc) (Schedule, error) {
	if err := ValidateName(spec.Name); err != nil {
		return Schedule{}, err
	}
	switch spec.Kind {
	case "", KindKV:
	case "database":
		return Schedule{}, logical.Invalid("kind", "database static roles are rotated by the database engine's static roles (rotation_period); only kv schedules are made here")
	default:
		return Schedule{}, logical.Invalid("kind", "unknown kind %q; want kv", spec.Kind)
	}
	if spec.Path == "" {
		return Schedule{}, logical.Invalid("path", "missing: the API path of the KV secret, such as secrets/app/api-key")
	}
	if _, err := resolveKV(mounts, spec.Path); err != nil {
		return Schedule{}, err
	}
	switch {
	case spec.Key == "":
		return Schedule{}, logical.Invalid("key", "missing: the key of the secret to replace")
	case len(spec.Key) > MaxKeyLength:
		return Schedule{}, logical.Invalid("key", "longer than %d bytes", MaxKeyLength)
	}
	g := spec.Generator.withDefaults()
	if g.Length < MinLength || g.Length > MaxLength {
		return Schedule{}, logical.Invalid("length", "want %d to %d characters, got %d", MinLength, MaxLength, g.Length)
	}
	if _, ok := g.Charset.Alphabet(); !ok {
		return Schedule{}, logical.Invalid("charset", "unknown charset %q; want alnum, alnum-symbols, hex or base64url", g.Charset)
	}
	if spec.Period < MinPeriod {
		return Schedule{}, logical.Invalid("period", "want at least %s, got %s", MinPeriod, spec.Period)
	}
	grace := min(DefaultGrace, spec.Period)
	if spec.Grace != nil {
		grace = *spec.Grace
	}
	switch {
	case grace < 0:
		return Schedule{}, logical.Invalid("grace", "must not be negative")
	case grace > spec.Period:
		return Schedule{}, logical.Invalid("grace", "%s is longer than the period %s: the replaced version must be retired before the next rotation", grace, spec.Period)
	}
	return Schedule{
		Name: spec.Name, Kind: KindKV, Path: spec.Path, Key: spec.Key,
		Generator: g, Period: spec.Period, Grace: grace,
	}, nil
}

// Periodic is implemented by engines that rotate credentials of their own
// on their own schedule (the database engine's static roles). The
// Scheduler polls them under its lock, so only one node rotates.
type Periodic interface {
	// DueStaticRoles names the roles whose rotation is due at now.
	DueStaticRoles(ctx context.Context, now time.Time) ([]string, error)
	// RotateStaticRole rotates one role's credential now.
	RotateStaticRole(ctx context.Context, name string) error
}

// Requester runs a request through the engine that serves req.Path and
// audits it, as the core's request path does, under req.DisplayName. Its
// errors are for the server log and last_error: they never hold a secret.
type Requester func(ctx context.Context, req *logical.Request) (*logical.Response, error)
