// Package cache puts a bounded LRU read cache in front of a
// storage.Backend. It holds what the backend holds — ciphertext, when the
// barrier sits above it — and is write-through: every Put, Delete and Txn
// goes to the backend first and updates the cache after, under a lock per
// key, so a read can never put an older value back after a newer write.
//
// The cache assumes it is the only writer of the backend, which holds for
// one active core. A standby taking over starts with an empty cache; cores
// sharing a database as simultaneous writers would need invalidation
// messages (LISTEN/NOTIFY), which this package does not do.
package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/secrethub/secrethub/core/storage"
)

// Defaults for Options.
const (
	DefaultEntries       = 16384
	DefaultMaxValueBytes = 8 << 10
	stripes              = 256
)

// Options bound the cache. The zero value gives the defaults: at most
// DefaultEntries values of at most DefaultMaxValueBytes each (128 MiB at
// worst); larger values are not cached.
type Options struct {
	Entries       int
	MaxValueBytes int
}

// entry is a cached answer: a value, or the fact that the key is absent.
type entry struct {
	value   []byte
	missing bool
}

// Backend is a storage.Backend with a read cache.
type Backend struct {
	inner    storage.Backend
	lru      *lru.Cache[string, entry]
	maxValue int
	seed     maphash.Seed
	// locks serialize, per stripe of keys, a read that fills the cache
	// with the writes of those keys.
	locks [stripes]sync.Mutex
}

var (
	_ storage.Backend = (*Backend)(nil)
	_ storage.Locker  = (*Backend)(nil)
)

// New wraps inner.
func New(inner storage.Backend, opts Options) (*Backend, error) {
	if opts.Entries <= 0 {
		opts.Entries = DefaultEntries
	}
	if opts.MaxValueBytes <= 0 {
		opts.MaxValueBytes = DefaultMaxValueBytes
	}
	c, err := lru.New[string, entry](opts.Entries)
	if err != nil {
		return nil, err
	}
	return &Backend{inner: inner, lru: c, maxValue: opts.MaxValueBytes, seed: maphash.MakeSeed()}, nil
}

func (b *Backend) stripe(key string) int {
	return int(maphash.String(b.seed, key) % stripes)
}

// Get answers from the cache, or reads the backend and remembers the
// answer. Errors other than storage.ErrNotFound are never cached.
func (b *Backend) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if e, ok := b.lru.Get(key); ok {
		if e.missing {
			return nil, storage.ErrNotFound
		}
		return bytes.Clone(e.value), nil
	}
	mu := &b.locks[b.stripe(key)]
	mu.Lock()
	defer mu.Unlock()
	if e, ok := b.lru.Get(key); ok { // filled while we waited
		if e.missing {
			return nil, storage.ErrNotFound
		}
		return bytes.Clone(e.value), nil
	}
	v, err := b.inner.Get(ctx, key)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		b.lru.Add(key, entry{missing: true})
		return nil, err
	case err != nil:
		return nil, err
	}
	b.remember(key, v)
	return v, nil
}

// remember caches v for key, or forgets key when v is too large.
func (b *Backend) remember(key string, v []byte) {
	if len(v) > b.maxValue {
		b.lru.Remove(key)
		return
	}
	b.lru.Add(key, entry{value: bytes.Clone(v)})
}

// Put writes through.
func (b *Backend) Put(ctx context.Context, key string, value []byte) error {
	mu := &b.locks[b.stripe(key)]
	mu.Lock()
	defer mu.Unlock()
	if err := b.inner.Put(ctx, key, value); err != nil {
		// The backend may or may not have the value: forget the key.
		b.lru.Remove(key)
		return err
	}
	b.remember(key, value)
	return nil
}

// Delete writes through.
func (b *Backend) Delete(ctx context.Context, key string) error {
	mu := &b.locks[b.stripe(key)]
	mu.Lock()
	defer mu.Unlock()
	if err := b.inner.Delete(ctx, key); err != nil {
		b.lru.Remove(key)
		return err
	}
	b.lru.Add(key, entry{missing: true})
	return nil
}

// List is not cached.
func (b *Backend) List(ctx context.Context, prefix string) ([]string, error) {
	return b.inner.List(ctx, prefix)
}

// Txn writes through, holding the locks of every key it touches.
func (b *Backend) Txn(ctx context.Context, ops []storage.Op) error {
	idx := make([]int, 0, len(ops))
	for _, op := range ops {
		idx = append(idx, b.stripe(op.Key))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		b.locks[i].Lock()
	}
	defer func() {
		for _, i := range idx {
			b.locks[i].Unlock()
		}
	}()
	if err := b.inner.Txn(ctx, ops); err != nil {
		for _, op := range ops {
			b.lru.Remove(op.Key)
		}
		return err
	}
	for _, op := range ops {
		if op.Kind == storage.OpDelete {
			b.lru.Add(op.Key, entry{missing: true})
		} else {
			b.remember(op.Key, op.Value)
		}
	}
	return nil
}

// Close empties the cache and closes the backend.
func (b *Backend) Close() error {
	b.lru.Purge()
	return b.inner.Close()
}

// TryLock forwards to the wrapped backend's locks. A backend without them
// gives storage.ErrLockUnsupported.
func (b *Backend) TryLock(ctx context.Context, name string) (func(), bool, error) {
	l, ok := b.inner.(storage.Locker)
	if !ok {
		return nil, false, fmt.Errorf("cache: trylock %q: %w", name, storage.ErrLockUnsupported)
	}
	return l.TryLock(ctx, name)
}
