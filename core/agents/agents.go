// Package agents is the core's registry of connected agents: who is
// connected, since when, their last heartbeat, and which paths each
// connection watches, with an index from a path to the connections
// watching it.
//
// Publish tells every connection watching a path that it changed without
// ever blocking the writer that committed the change: each connection
// keeps a set of pending changes (at most one per watched path, so memory
// is bounded by what it watches) and a signal channel of size one that its
// own writer drains. Many writes to one path before the writer runs
// coalesce into one change.
//
// The package knows nothing of WebSockets: the HTTP layer owns the socket
// and drives a Conn.
package agents

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/secrethub/secrethub/core/wire"
)

// Operations a Change reports.
const (
	OpWrite  = "write"
	OpDelete = "delete"
)

// DefaultMaxWatched is how many paths one connection may watch unless
// Options say otherwise.
const DefaultMaxWatched = 4096

var (
	// ErrClosed is returned for a connection that was closed or
	// unregistered.
	ErrClosed = errors.New("agents: connection closed")
	// ErrTooManyWatched is returned by Watch when the connection already
	// watches the maximum number of paths.
	ErrTooManyWatched = errors.New("agents: too many watched paths")
)

// Options tune a Registry. The zero value gives the defaults.
type Options struct {
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Rand is the source of connection IDs. Default crypto/rand.
	Rand io.Reader
	// MaxWatched bounds the paths one connection watches. Default
	// DefaultMaxWatched.
	MaxWatched int
}

// Info describes a connection when it registers.
type Info struct {
	// Name and Version are what the agent said in its hello.
	Name    string
	Version string
	// Identity is who the core takes the agent for (its certificate's
	// URI SAN).
	Identity string
	// Accessor is the accessor of the agent's token, so the connection
	// can be closed when the token is revoked. It is not shown.
	Accessor string
	// Address is the agent's remote address.
	Address string
}

// Change is one pending notification: a watched path was written or
// deleted.
type Change struct {
	Path      string
	Operation string
	// NewVersion is the version the write made, 0 when unknown.
	NewVersion int64
}

// Registry holds the connected agents. It is safe for concurrent use.
type Registry struct {
	now        func() time.Time
	rand       io.Reader
	maxWatched int

	// watchedPaths is len(byPath), read without the lock so Publish costs
	// one atomic load when nothing is watched.
	watchedPaths atomic.Int64

	// mu guards conns and byPath, and each Conn's watched set.
	mu     sync.RWMutex
	conns  map[string]*Conn
	byPath map[string]map[*Conn]struct{}
}

// New returns an empty registry.
func New(opts Options) *Registry {
	r := &Registry{now: opts.Now, rand: opts.Rand, maxWatched: opts.MaxWatched,
		conns: map[string]*Conn{}, byPath: map[string]map[*Conn]struct{}{}}
	if r.now == nil {
		r.now = time.Now
	}
	if r.rand == nil {
		r.rand = rand.Reader
	}
	if r.maxWatched <= 0 {
		r.maxWatched = DefaultMaxWatched
	}
	return r
}

// Conn is one registered agent connection.
type Conn struct {
	reg *Registry

	id, name, version, identity, accessor, address string
	connectedSince                                 time.Time
	// lastHeartbeat is Unix nanoseconds.
	lastHeartbeat atomic.Int64

	// watched is guarded by reg.mu.
	watched map[string]struct{}

	// mu guards pending and closed.
	mu      sync.Mutex
	pending map[string]Change
	closed  bool
	reason  string
	// signal has room for one token: set when pending becomes non-empty.
	signal chan struct{}
	done   chan struct{}
}

// Register adds a connection and returns it.
func (r *Registry) Register(info Info) (*Conn, error) {
	var b [16]byte
	if _, err := io.ReadFull(r.rand, b[:]); err != nil {
		return nil, fmt.Errorf("agents: connection id: %w", err)
	}
	now := r.now()
	c := &Conn{
		reg: r, id: hex.EncodeToString(b[:]), name: info.Name, version: info.Version,
		identity: info.Identity, accessor: info.Accessor, address: info.Address,
		connectedSince: now, signal: make(chan struct{}, 1), done: make(chan struct{}),
	}
	c.lastHeartbeat.Store(now.UnixNano())
	r.mu.Lock()
	r.conns[c.id] = c
	r.mu.Unlock()
	return c, nil
}

// Unregister removes c and its watches and closes it. It is idempotent.
func (r *Registry) Unregister(c *Conn) {
	r.mu.Lock()
	if r.conns[c.id] == c {
		delete(r.conns, c.id)
	}
	for p := range c.watched {
		r.unindexLocked(c, p)
	}
	c.watched = nil
	r.mu.Unlock()
	c.Close("")
}

func (r *Registry) unindexLocked(c *Conn, p string) {
	set := r.byPath[p]
	delete(set, c)
	if len(set) == 0 {
		delete(r.byPath, p)
		r.watchedPaths.Store(int64(len(r.byPath)))
	}
}

// Len is the number of registered connections.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.conns)
}

// Watching reports whether any connection watches any path: when not,
// Publish does nothing and callers may skip working out what to publish.
func (r *Registry) Watching() bool { return r.watchedPaths.Load() > 0 }

// Publish tells every connection watching path that it changed. It never
// blocks on a connection.
func (r *Registry) Publish(path, operation string, newVersion int64) {
	if !r.Watching() {
		return
	}
	ch := Change{Path: path, Operation: operation, NewVersion: newVersion}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for c := range r.byPath[path] {
		c.notify(ch)
	}
}

// CloseAll closes every connection with reason (their owners see Done and
// unregister them).
func (r *Registry) CloseAll(reason string) {
	for _, c := range r.snapshot() {
		c.Close(reason)
	}
}

// CloseAccessor closes the connections of the token with accessor, and
// reports how many it closed.
func (r *Registry) CloseAccessor(accessor, reason string) int {
	n := 0
	for _, c := range r.snapshot() {
		if c.accessor == accessor {
			c.Close(reason)
			n++
		}
	}
	return n
}

func (r *Registry) snapshot() []*Conn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*Conn, 0, len(r.conns))
	for _, c := range r.conns {
		out = append(out, c)
	}
	return out
}

// List describes every connection, by connection time then ID.
func (r *Registry) List() []wire.AgentInfo {
	r.mu.RLock()
	out := make([]wire.AgentInfo, 0, len(r.conns))
	for _, c := range r.conns {
		out = append(out, c.infoLocked())
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b wire.AgentInfo) int {
		if a.ConnectedSince != b.ConnectedSince {
			if a.ConnectedSince < b.ConnectedSince {
				return -1
			}
			return 1
		}
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}

// Get describes the connection with id.
func (r *Registry) Get(id string) (wire.AgentInfo, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.conns[id]
	if !ok {
		return wire.AgentInfo{}, false
	}
	return c.infoLocked(), true
}

// infoLocked needs r.mu held (for c.watched).
func (c *Conn) infoLocked() wire.AgentInfo {
	watched := make([]string, 0, len(c.watched))
	for p := range c.watched {
		watched = append(watched, p)
	}
	slices.Sort(watched)
	return wire.AgentInfo{
		ID: c.id, Name: c.name, Identity: c.identity, Address: c.address, Version: c.version,
		ConnectedSince: c.connectedSince.UTC().Format(time.RFC3339),
		LastHeartbeat:  time.Unix(0, c.lastHeartbeat.Load()).UTC().Format(time.RFC3339),
		Watched:        watched,
	}
}

// ID is the connection's ID in sys/agents.
func (c *Conn) ID() string { return c.id }

// Heartbeat records that the agent was heard from now.
func (c *Conn) Heartbeat() { c.lastHeartbeat.Store(c.reg.now().UnixNano()) }

// LastHeartbeat is when the agent was last heard from.
func (c *Conn) LastHeartbeat() time.Time { return time.Unix(0, c.lastHeartbeat.Load()) }

// Watch adds path to the connection's watched paths. Watching a path
// twice is one watch. It fails with ErrTooManyWatched past the limit and
// ErrClosed once the connection is unregistered.
func (c *Conn) Watch(path string) error {
	r := c.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns[c.id] != c {
		return ErrClosed
	}
	if _, ok := c.watched[path]; ok {
		return nil
	}
	if len(c.watched) >= r.maxWatched {
		return ErrTooManyWatched
	}
	if c.watched == nil {
		c.watched = map[string]struct{}{}
	}
	c.watched[path] = struct{}{}
	set := r.byPath[path]
	if set == nil {
		set = map[*Conn]struct{}{}
		r.byPath[path] = set
		r.watchedPaths.Store(int64(len(r.byPath)))
	}
	set[c] = struct{}{}
	return nil
}

// Watches reports whether the connection watches path.
func (c *Conn) Watches(path string) bool {
	c.reg.mu.RLock()
	defer c.reg.mu.RUnlock()
	_, ok := c.watched[path]
	return ok
}

// CanWatch reports whether Watch(path) would be accepted now: the path
// is watched already or there is room for one more.
func (c *Conn) CanWatch(path string) bool {
	c.reg.mu.RLock()
	defer c.reg.mu.RUnlock()
	_, ok := c.watched[path]
	return ok || len(c.watched) < c.reg.maxWatched
}

// Unwatch stops pushes for path and drops a pending change of it.
func (c *Conn) Unwatch(path string) {
	r := c.reg
	r.mu.Lock()
	if _, ok := c.watched[path]; ok {
		delete(c.watched, path)
		r.unindexLocked(c, path)
	}
	r.mu.Unlock()
	c.mu.Lock()
	delete(c.pending, path)
	c.mu.Unlock()
}

// notify records ch as pending and wakes the writer.
func (c *Conn) notify(ch Change) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if c.pending == nil {
		c.pending = make(map[string]Change, 1)
	}
	c.pending[ch.Path] = ch
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default: // already signalled; the writer takes every pending change
	}
}

// Changed is signalled when changes are pending; the connection's writer
// then calls TakeChanges.
func (c *Conn) Changed() <-chan struct{} { return c.signal }

// TakeChanges returns the pending changes, ordered by path, and clears
// them.
func (c *Conn) TakeChanges() []Change {
	c.mu.Lock()
	p := c.pending
	c.pending = nil
	c.mu.Unlock()
	out := make([]Change, 0, len(p))
	for _, ch := range p {
		out = append(out, ch)
	}
	slices.SortFunc(out, func(a, b Change) int {
		switch {
		case a.Path < b.Path:
			return -1
		case a.Path > b.Path:
			return 1
		}
		return 0
	})
	return out
}

// Close marks the connection closed with reason (shown to the agent) and
// closes Done. Pending changes are dropped. It is idempotent: the first
// reason stays.
func (c *Conn) Close(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed, c.reason, c.pending = true, reason, nil
	close(c.done)
}

// Done is closed when the connection is closed.
func (c *Conn) Done() <-chan struct{} { return c.done }

// CloseReason is the reason given to Close.
func (c *Conn) CloseReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}
