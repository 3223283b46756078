// Package storage defines the small interface every SecretHub storage backend
// implements.
//
// Storage is untrusted: whoever administers it may read, change, drop or
// reorder what is stored. Everything above the barrier (core/barrier) is
// encrypted and authenticated before it reaches a Backend, so a backend only
// ever sees paths and ciphertext. A backend's job is durability and atomicity,
// not secrecy.
//
// Keys are slash-separated paths ("sys/token/id/abc"). List returns the
// direct children of a prefix, folders ending in "/", in the manner of a file
// system listing, so engines can walk a tree without reading it whole.
package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrNotFound is returned by Get when no value is stored under a key. It is
// returned only for a key that is known to be absent: a backend that cannot
// answer (a dropped connection, a closed file) returns a different error.
var ErrNotFound = errors.New("storage: not found")

// ErrInvalidKey is returned for keys the storage layer refuses: empty keys,
// keys that are not valid UTF-8, keys containing NUL or other control
// characters, and keys longer than MaxKeyLength.
var ErrInvalidKey = errors.New("storage: invalid key")

// ErrClosed is returned by a backend after Close.
var ErrClosed = errors.New("storage: backend closed")

// MaxKeyLength is the longest key, in bytes, that every backend accepts.
const MaxKeyLength = 1024

// Backend is a durable key-value store. Implementations must be safe for
// concurrent use. Every method honours its context: a cancelled context makes
// the call return the context's error.
type Backend interface {
	// Get returns the value stored under key, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put stores value under key, replacing any earlier value.
	Put(ctx context.Context, key string, value []byte) error
	// Delete removes key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns, sorted, the direct children of prefix: keys directly
	// under it, and the names of deeper "folders" once each with a trailing
	// "/". Names are relative to prefix. A prefix that holds nothing gives an
	// empty list, not an error.
	List(ctx context.Context, prefix string) ([]string, error)
	// Txn applies ops atomically and in order: all of them take effect, or
	// none does.
	Txn(ctx context.Context, ops []Op) error
	// Close releases the backend's resources. Calls after Close return
	// ErrClosed.
	Close() error
}

// OpKind says what an Op does.
type OpKind int

// The kinds of operation a transaction may hold.
const (
	OpPut OpKind = iota + 1
	OpDelete
)

func (k OpKind) String() string {
	switch k {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	default:
		return fmt.Sprintf("OpKind(%d)", int(k))
	}
}

// Op is one step of a transaction.
type Op struct {
	Kind  OpKind
	Key   string
	Value []byte // for OpPut
}

// PutOp returns an Op that stores value under key.
func PutOp(key string, value []byte) Op { return Op{Kind: OpPut, Key: key, Value: value} }

// DeleteOp returns an Op that removes key.
func DeleteOp(key string) Op { return Op{Kind: OpDelete, Key: key} }

// ValidateKey reports whether key is acceptable to every backend.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case len(key) > MaxKeyLength:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidKey, MaxKeyLength)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidKey)
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: contains a control character", ErrInvalidKey)
		}
	}
	return nil
}

// ValidateOps checks every op of a transaction before any is applied.
func ValidateOps(ops []Op) error {
	for i, op := range ops {
		if op.Kind != OpPut && op.Kind != OpDelete {
			return fmt.Errorf("storage: op %d: unknown kind %v", i, op.Kind)
		}
		if err := ValidateKey(op.Key); err != nil {
			return fmt.Errorf("op %d: %w", i, err)
		}
	}
	return nil
}

// ValidatePrefix checks a List prefix. The empty prefix, the root, is allowed.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return ValidateKey(prefix)
}

// Children folds keys that all start with prefix into the sorted, deduplicated
// direct children of prefix, as List returns them. keys must be sorted.
func Children(prefix string, keys []string) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok || rest == "" {
			continue
		}
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			rest = rest[:i+1]
		}
		if n := len(out); n > 0 && out[n-1] == rest {
			continue
		}
		out = append(out, rest)
	}
	return out
}
