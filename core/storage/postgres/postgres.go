// Package postgres is the storage.Backend SecretHub keeps its data in: a
// table in PostgreSQL, reached through a pgx connection pool.
//
// Open connects and brings the schema up to date with the migrations
// embedded in this package (see migrations/), so a fresh database needs no
// setup beyond a role that may create a schema. The data lives in schema
// secrethub:
//
//	secrethub.kv                (key text COLLATE "C" PRIMARY KEY, value bytea, updated_at)
//	secrethub.schema_migrations (version int PRIMARY KEY, applied_at)
//
// Get returns storage.ErrNotFound only when the database answered that no
// row exists. A dropped connection, a terminated server process or a closed
// pool is an error of its own, never mistaken for a missing key. Errors name
// keys, never values.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/secrethub/secrethub/core/storage"
)

var _ storage.Backend = (*Backend)(nil)

// The statements the backend runs. Comparisons on key use its "C"
// collation, so the range in listRangeSQL is a scan of the primary key.
const (
	getSQL       = `SELECT value FROM secrethub.kv WHERE key = $1`
	putSQL       = `INSERT INTO secrethub.kv (key, value, updated_at) VALUES ($1, $2, now()) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at`
	deleteSQL    = `DELETE FROM secrethub.kv WHERE key = $1`
	listRangeSQL = `SELECT key FROM secrethub.kv WHERE key >= $1 AND key < $2 ORDER BY key`
	listFromSQL  = `SELECT key FROM secrethub.kv WHERE key >= $1 ORDER BY key`
)

// Option changes how Open configures the connection pool.
type Option func(*pgxpool.Config)

// WithMaxConns caps the pool at n connections. The default is pgxpool's:
// the greater of 4 and the number of CPUs, or pool_max_conns from the URL.
func WithMaxConns(n int32) Option {
	return func(c *pgxpool.Config) { c.MaxConns = n }
}

// WithPoolConfig lets f change the pool's configuration after the URL is
// parsed and before the pool is made: for tracers, TLS, timeouts.
func WithPoolConfig(f func(*pgxpool.Config)) Option { return Option(f) }

// Backend is a storage.Backend in PostgreSQL. It is safe for concurrent use.
type Backend struct {
	pool   *pgxpool.Pool
	closed atomic.Bool
	group  txnGroup
}

// Open connects to the database at databaseURL (a postgres:// URL or a
// keyword/value string, as pgx takes them), checks that it answers, and
// applies any migration it lacks. ctx bounds the connecting and the
// migrating, not the Backend's life.
func Open(ctx context.Context, databaseURL string, opts ...Option) (*Backend, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx's parse errors hide the password.
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	for _, opt := range opts {
		opt(cfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: connect to %s:%d/%s: %w",
			cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: migrate: %w", err)
	}
	return &Backend{pool: pool}, nil
}

// Get returns the value stored under key, or storage.ErrNotFound if there is
// no such row.
func (b *Backend) Get(ctx context.Context, key string) ([]byte, error) {
	if err := b.check(ctx, key); err != nil {
		return nil, fmt.Errorf("postgres: get %q: %w", key, err)
	}
	var value []byte
	err := b.pool.QueryRow(ctx, getSQL, key).Scan(&value)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: get %q: %w", key, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get %q: %w", key, b.mapErr(err))
	}
	if value == nil {
		value = []byte{}
	}
	return value, nil
}

// Put stores value under key, replacing any earlier value.
func (b *Backend) Put(ctx context.Context, key string, value []byte) error {
	if err := b.check(ctx, key); err != nil {
		return fmt.Errorf("postgres: put %q: %w", key, err)
	}
	if _, err := b.pool.Exec(ctx, putSQL, key, nonNil(value)); err != nil {
		return fmt.Errorf("postgres: put %q: %w", key, b.mapErr(err))
	}
	return nil
}

// Delete removes key; a missing key is not an error.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.check(ctx, key); err != nil {
		return fmt.Errorf("postgres: delete %q: %w", key, err)
	}
	if _, err := b.pool.Exec(ctx, deleteSQL, key); err != nil {
		return fmt.Errorf("postgres: delete %q: %w", key, b.mapErr(err))
	}
	return nil
}

// List returns the direct children of prefix. It reads every key below
// prefix through a range scan of the primary key, then folds them with
// storage.Children; the bounds are parameters, so nothing in prefix is ever
// read as a pattern.
func (b *Backend) List(ctx context.Context, prefix string) ([]string, error) {
	if err := b.checkOpen(ctx); err != nil {
		return nil, fmt.Errorf("postgres: list %q: %w", prefix, err)
	}
	if err := storage.ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("postgres: list %q: %w", prefix, err)
	}
	var rows pgx.Rows
	if upper, ok := upperBound(prefix); ok {
		rows, _ = b.pool.Query(ctx, listRangeSQL, prefix, upper)
	} else {
		rows, _ = b.pool.Query(ctx, listFromSQL, prefix)
	}
	// CollectRows reports the error of Query too.
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: list %q: %w", prefix, b.mapErr(err))
	}
	return storage.Children(prefix, keys), nil
}

// Txn applies ops in order in one database transaction, sent as one batch.
// Every op is checked before anything is sent.
//
// The batch is one pipeline of statements closed by a single Sync and no
// BEGIN or COMMIT: Postgres runs such a pipeline as one implicit
// transaction, committed at the Sync when every statement succeeded and
// rolled back whole when one fails. That is one round trip, where an
// explicit BEGIN … COMMIT around the batch costs three.
//
// Concurrent Txns are group-committed: while up to maxTxnLeaders batches
// are on their way, the Txns that arrive queue, and the next batch carries
// all of them, one after the other, in one transaction and one commit.
// Each Txn is still all or nothing: if a group's transaction fails, each
// of its Txns is sent again on its own, so that one failing Txn fails
// alone. Txns that run concurrently have no order between them, so the
// order in which a group applies them is one their callers could have seen.
func (b *Backend) Txn(ctx context.Context, ops []storage.Op) error {
	if err := b.checkOpen(ctx); err != nil {
		return fmt.Errorf("postgres: txn: %w", err)
	}
	if err := storage.ValidateOps(ops); err != nil {
		return fmt.Errorf("postgres: txn: %w", err)
	}
	if len(ops) == 0 {
		return nil
	}
	req := &txnReq{ctx: ctx, ops: ops, done: make(chan error, 1)}
	g := &b.group
	g.mu.Lock()
	g.queue = append(g.queue, req)
	lead := g.leaders < maxTxnLeaders
	if lead {
		g.leaders++
	}
	g.mu.Unlock()
	if lead && b.commitGroup() {
		// More Txns queued meanwhile: keep leading without holding up
		// this caller.
		go func() {
			for b.commitGroup() {
			}
		}()
	}
	return <-req.done
}

// maxTxnLeaders is how many group batches may be on their way at once.
const maxTxnLeaders = 2

// maxGroupOps caps the ops of one group batch; a single larger Txn still
// goes alone.
const maxGroupOps = 1024

// groupTimeout bounds a group batch carrying several Txns, whose callers'
// contexts each bound only their own wait to be taken.
const groupTimeout = 30 * time.Second

// txnGroup queues the Txns waiting for a batch.
type txnGroup struct {
	mu      sync.Mutex
	queue   []*txnReq
	leaders int // goroutines sending group batches
}

// txnReq is one Txn waiting in the group.
type txnReq struct {
	ctx  context.Context
	ops  []storage.Op
	done chan error
}

// commitGroup takes the Txns at the head of the queue and commits them as
// one batch. It reports whether there may be more to do; when the queue is
// empty it gives up leading and returns false.
func (b *Backend) commitGroup() bool {
	g := &b.group
	g.mu.Lock()
	n, nops := 0, 0
	for n < len(g.queue) && (n == 0 || nops+len(g.queue[n].ops) <= maxGroupOps) {
		nops += len(g.queue[n].ops)
		n++
	}
	if n == 0 {
		g.leaders--
		g.mu.Unlock()
		return false
	}
	reqs := slices.Clone(g.queue[:n])
	clear(g.queue[:n])
	g.queue = g.queue[n:]
	g.mu.Unlock()

	// A Txn whose caller gave up before it was taken is not sent.
	live := reqs[:0]
	for _, r := range reqs {
		if err := r.ctx.Err(); err != nil {
			r.done <- fmt.Errorf("postgres: txn of %d ops: %w", len(r.ops), err)
			continue
		}
		live = append(live, r)
	}
	switch len(live) {
	case 0:
	case 1:
		r := live[0]
		r.done <- b.sendTxn(r.ctx, r.ops)
	default:
		ctx, cancel := context.WithTimeout(context.WithoutCancel(live[0].ctx), groupTimeout)
		all := make([]storage.Op, 0, nops)
		for _, r := range live {
			all = append(all, r.ops...)
		}
		err := b.sendTxn(ctx, all)
		cancel()
		for _, r := range live {
			if err != nil {
				// Find the Txn that failed the group: each alone.
				r.done <- b.sendTxn(r.ctx, r.ops)
			} else {
				r.done <- nil
			}
		}
	}
	return true
}

// sendTxn sends ops as one batch: one implicit transaction.
func (b *Backend) sendTxn(ctx context.Context, ops []storage.Op) error {
	batch := &pgx.Batch{}
	for _, op := range ops {
		switch op.Kind {
		case storage.OpPut:
			batch.Queue(putSQL, op.Key, nonNil(op.Value))
		case storage.OpDelete:
			batch.Queue(deleteSQL, op.Key)
		}
	}
	if err := b.pool.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("postgres: txn of %d ops: %w", len(ops), b.mapErr(err))
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be released.
// Calls after Close return storage.ErrClosed.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return fmt.Errorf("postgres: close: %w", storage.ErrClosed)
	}
	b.pool.Close()
	return nil
}

// checkOpen returns the error a call must fail with before it reaches the
// database: a done context or a closed backend.
func (b *Backend) checkOpen(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.closed.Load() {
		return storage.ErrClosed
	}
	return nil
}

// check is checkOpen followed by key validation.
func (b *Backend) check(ctx context.Context, key string) error {
	if err := b.checkOpen(ctx); err != nil {
		return err
	}
	return storage.ValidateKey(key)
}

// mapErr marks an error as storage.ErrClosed if the backend was closed while
// the call ran.
func (b *Backend) mapErr(err error) error {
	if b.closed.Load() {
		return fmt.Errorf("%w: %w", storage.ErrClosed, err)
	}
	return err
}

// upperBound returns the least string that is greater, in byte order, than
// every string starting with prefix, and false if there is none (the empty
// prefix, or one of only U+10FFFF). It increments the last rune that can be
// incremented, skipping the surrogates, so the bound is valid UTF-8, as a
// text parameter must be; UTF-8's byte order is its code point order.
func upperBound(prefix string) (string, bool) {
	for prefix != "" {
		r, size := utf8.DecodeLastRuneInString(prefix)
		prefix = prefix[:len(prefix)-size]
		next := r + 1
		if next == 0xD800 {
			next = 0xE000
		}
		if next <= utf8.MaxRune {
			return prefix + string(next), true
		}
	}
	return "", false
}

// nonNil returns value, or an empty slice for nil: pgx sends a nil slice as
// NULL, and value is NOT NULL.
func nonNil(value []byte) []byte {
	if value == nil {
		return []byte{}
	}
	return value
}
