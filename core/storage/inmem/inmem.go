// Package inmem is a storage.Backend held in memory, for `secrethub server
// -dev` and for tests. Nothing survives the process.
//
// Tests can make the backend fail on purpose with SetFault, to check that
// the layers above it handle a storage error (fail closed, report it, never
// mistake it for a missing key):
//
//	b := inmem.New()
//	b.SetFault(inmem.MethodPut, errors.New("disk full"))
//	err := b.Put(ctx, "k", v) // wraps "disk full"; nothing is stored
//	b.SetFault(inmem.MethodPut, nil) // Put works again
package inmem

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/secrethub/secrethub/core/storage"
)

var (
	_ storage.Backend = (*Backend)(nil)
	_ storage.Locker  = (*Backend)(nil)
)

// Method names a Backend method that a fault can be set on.
type Method string

// The methods SetFault can make fail.
const (
	MethodGet    Method = "get"
	MethodPut    Method = "put"
	MethodDelete Method = "delete"
	MethodList   Method = "list"
	MethodTxn    Method = "txn"
)

// Backend is an in-memory storage.Backend. Its zero value is an empty,
// open backend ready for use. It stores copies of the values it is given and
// returns copies of the values it holds.
type Backend struct {
	mu     sync.RWMutex
	data   map[string][]byte // guarded by mu; nil until the first write
	faults map[Method]error  // guarded by mu; nil when no fault is set
	closed bool              // guarded by mu
	// locks are the backend's named locks: in-process, as the data is.
	locks storage.LocalLocker
}

// New returns an empty Backend.
func New() *Backend { return &Backend{} }

// SetFault makes every later call of method m fail with an error wrapping
// err, without touching the stored data, until SetFault(m, nil) clears it.
// Checks that come first still come first: a cancelled context, an invalid
// key and a closed backend report those errors, not the fault.
func (b *Backend) SetFault(m Method, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		delete(b.faults, m)
		return
	}
	if b.faults == nil {
		b.faults = make(map[Method]error)
	}
	b.faults[m] = err
}

// ClearFaults clears every fault SetFault set.
func (b *Backend) ClearFaults() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.faults = nil
}

// check returns the error a call of m must fail with, if any. b.mu must be
// held.
func (b *Backend) check(m Method) error {
	if b.closed {
		return storage.ErrClosed
	}
	if err := b.faults[m]; err != nil {
		return fmt.Errorf("injected fault: %w", err)
	}
	return nil
}

// Get returns a copy of the value stored under key, or storage.ErrNotFound.
func (b *Backend) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("inmem: get %q: %w", key, err)
	}
	if err := storage.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("inmem: get %q: %w", key, err)
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.check(MethodGet); err != nil {
		return nil, fmt.Errorf("inmem: get %q: %w", key, err)
	}
	v, ok := b.data[key]
	if !ok {
		return nil, fmt.Errorf("inmem: get %q: %w", key, storage.ErrNotFound)
	}
	return slices.Clone(v), nil
}

// Put stores a copy of value under key.
func (b *Backend) Put(ctx context.Context, key string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("inmem: put %q: %w", key, err)
	}
	if err := storage.ValidateKey(key); err != nil {
		return fmt.Errorf("inmem: put %q: %w", key, err)
	}
	v := clone(value)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(MethodPut); err != nil {
		return fmt.Errorf("inmem: put %q: %w", key, err)
	}
	b.put(key, v)
	return nil
}

// Delete removes key; a missing key is not an error.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("inmem: delete %q: %w", key, err)
	}
	if err := storage.ValidateKey(key); err != nil {
		return fmt.Errorf("inmem: delete %q: %w", key, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(MethodDelete); err != nil {
		return fmt.Errorf("inmem: delete %q: %w", key, err)
	}
	delete(b.data, key)
	return nil
}

// List returns the direct children of prefix, as storage.Backend says. It
// scans every key, which is fine for the sizes a dev server or a test holds.
func (b *Backend) List(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("inmem: list %q: %w", prefix, err)
	}
	if err := storage.ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("inmem: list %q: %w", prefix, err)
	}
	b.mu.RLock()
	if err := b.check(MethodList); err != nil {
		b.mu.RUnlock()
		return nil, fmt.Errorf("inmem: list %q: %w", prefix, err)
	}
	var keys []string
	for k := range b.data {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	b.mu.RUnlock()
	slices.Sort(keys)
	return storage.Children(prefix, keys), nil
}

// Txn applies ops atomically and in order. Every op is checked before any is
// applied, so an invalid op leaves the data as it was.
func (b *Backend) Txn(ctx context.Context, ops []storage.Op) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("inmem: txn: %w", err)
	}
	if err := storage.ValidateOps(ops); err != nil {
		return fmt.Errorf("inmem: txn: %w", err)
	}
	values := make([][]byte, len(ops))
	for i, op := range ops {
		if op.Kind == storage.OpPut {
			values[i] = clone(op.Value)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(MethodTxn); err != nil {
		return fmt.Errorf("inmem: txn: %w", err)
	}
	for i, op := range ops {
		switch op.Kind {
		case storage.OpPut:
			b.put(op.Key, values[i])
		case storage.OpDelete:
			delete(b.data, op.Key)
		}
	}
	return nil
}

// Close drops the data. Calls after Close return storage.ErrClosed.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("inmem: close: %w", storage.ErrClosed)
	}
	b.closed = true
	b.data = nil
	return nil
}

// put stores v, which the caller owns no longer. b.mu must be held for
// writing.
func (b *Backend) put(key string, v []byte) {
	if b.data == nil {
		b.data = make(map[string][]byte)
	}
	b.data[key] = v
}

// clone copies value, turning nil into an empty, non-nil slice so that a
// stored nil and a stored empty value read back alike.
func clone(value []byte) []byte {
	return append(make([]byte, 0, len(value)), value...)
}

// TryLock takes a named lock; it excludes holders in this process, the
// only one that sees the data.
func (b *Backend) TryLock(ctx context.Context, name string) (func(), bool, error) {
	return b.locks.TryLock(ctx, name)
}
