// Package cache keeps the agent's copy of the secrets it renders, so it can
// serve them while the core is unreachable.
//
// The cache is an LRU of secret data by path, bounded by Options.MaxEntries.
// Entries carry the time they were fetched; past Options.TTL they are still
// returned, marked stale, so the agent keeps rendering from its last known
// values and can report how old they are. Save and Load persist the whole
// cache as one file sealed with AES-256-GCM under a key from DeriveKey.
package cache

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/secrethub/secrethub/agent/render"
)

// Defaults for Options (the same as the agent configuration's).
const (
	DefaultMaxEntries = 1000
	DefaultTTL        = 5 * time.Minute
)

// Options configure a Cache. The zero value gives the defaults.
type Options struct {
	// MaxEntries bounds the number of cached secrets; the least recently
	// used is evicted first. Default DefaultMaxEntries.
	MaxEntries int
	// TTL is how long after its fetch an entry is fresh; older entries are
	// returned as stale. Default DefaultTTL.
	TTL time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Rand supplies nonces for Save. Default crypto/rand.Reader.
	Rand io.Reader
}

// Stats are counters since New.
type Stats struct {
	Entries   int    // secrets cached now
	Hits      uint64 // reads of fresh entries
	StaleHits uint64 // reads of entries past TTL
	Misses    uint64 // reads of absent paths
	Evictions uint64 // entries dropped to stay within MaxEntries
}

type entry struct {
	data      map[string]any
	fetchedAt time.Time
}

// Cache is safe for concurrent use.
type Cache struct {
	ttl  time.Duration
	now  func() time.Time
	rand io.Reader

	mu    sync.Mutex // guards lru, stats and extra
	lru   *simplelru.LRU[string, entry]
	stats Stats
	extra map[string]json.RawMessage // SetExtra
}

var _ render.Fetcher = (*Cache)(nil)

// New returns an empty cache. Non-positive MaxEntries and TTL take their
// defaults.
func New(opts Options) *Cache {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	l, err := simplelru.NewLRU[string, entry](opts.MaxEntries, nil)
	if err != nil {
		// NewLRU fails only for a non-positive size, excluded above.
		panic(fmt.Sprintf("cache: %v", err))
	}
	return &Cache{ttl: opts.TTL, now: opts.Now, rand: opts.Rand, lru: l}
}

// Get returns a copy of the data cached for path, when it was fetched, and
// whether it is still fresh (younger than TTL). ok is false when path is not
// cached. A stale entry is still returned: the caller serves it while the
// core is unreachable. Get marks the entry recently used.
func (c *Cache) Get(path string) (data map[string]any, fetchedAt time.Time, fresh bool, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.lru.Get(path)
	if !ok {
		c.stats.Misses++
		return nil, time.Time{}, false, false
	}
	fresh = c.now().Sub(e.fetchedAt) < c.ttl
	if fresh {
		c.stats.Hits++
	} else {
		c.stats.StaleHits++
	}
	return cloneMap(e.data), e.fetchedAt, fresh, true
}

// Secret implements render.Fetcher: the cached data for path, fresh or
// stale, or an error wrapping render.ErrNotFound when path is not cached.
func (c *Cache) Secret(_ context.Context, path string) (map[string]any, error) {
	data, _, _, ok := c.Get(path)
	if !ok {
		return nil, fmt.Errorf("cache: %q: %w", path, render.ErrNotFound)
	}
	return data, nil
}

// Put stores a copy of data for path, fetched now, evicting the least
// recently used entry when the cache is full.
func (c *Cache) Put(path string, data map[string]any) {
	c.put(path, cloneMap(data), c.now())
}

func (c *Cache) put(path string, data map[string]any, fetchedAt time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lru.Add(path, entry{data: data, fetchedAt: fetchedAt}) {
		c.stats.Evictions++
	}
}

// Invalidate drops path (a secret deleted on the core, or a watch ended).
func (c *Cache) Invalidate(path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Remove(path)
}

// Paths returns the cached paths, sorted: after Load, the agent watches them
// again.
func (c *Cache) Paths() []string {
	c.mu.Lock()
	keys := c.lru.Keys()
	c.mu.Unlock()
	sort.Strings(keys)
	return keys
}

// Stats returns the counters and the current number of entries.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Entries = c.lru.Len()
	return s
}

// cloneMap deep-copies JSON-shaped data (maps and slices), so neither the
// caller of Put nor the reader of Get can change what the cache holds.
// Other values (strings, numbers, bools) are immutable and shared.
func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}

func cloneValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return cloneMap(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = cloneValue(e)
		}
		return out
	case map[string]string:
		out := make(map[string]string, len(v))
		for k, e := range v {
			out[k] = e
		}
		return out
	case []string:
		return append([]string(nil), v...)
	case []byte:
		return append([]byte(nil), v...)
	}
	return v
}
