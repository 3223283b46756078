// Package pgsink is the audit log's sink and source in PostgreSQL: the
// table audit.events, written through a connection pool of its own.
//
// Open connects and brings schema audit up to date with the migrations
// embedded in this package (see migrations/), under an advisory lock:
//
//	audit.events (seq bigint PRIMARY KEY, time timestamptz, path, operation,
//	              result text, prev_hash, hash, signature, canonical bytea,
//	              event jsonb)            + index on time
//	audit.schema_migrations (version int PRIMARY KEY, applied_at)
//
// canonical holds the exact bytes the chain hashes, so verification never
// depends on how Postgres re-renders jsonb; event and the text columns are
// copies for querying, which audit.Verify checks against canonical (through
// Record.EventJSON).
//
// Append writes a whole batch with one INSERT … SELECT unnest(arrays),
// a single statement and so one transaction and one commit however many
// records it carries (and one round trip, the statement being cached): with the Log's group commit
// that is what lets the core audit thousands of requests a second. The
// primary key on seq makes a second writer (or a retry of a batch whose
// commit did land) fail rather than fork the chain.
package pgsink

import (
	"context"
	"fmt"
	"iter"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/secrethub/secrethub/core/audit"
)

var (
	_ audit.Sink           = (*Sink)(nil)
	_ audit.FilteredSource = (*Sink)(nil)
)

// pageSize is how many rows one query of Records reads.
const pageSize = 1000

// selectColumns reads a record back. The event jsonb is the record's
// EventJSON, which Verify compares with the canonical bytes; when the path,
// operation or result column differs from the jsonb, EventJSON is instead a
// JSON string saying so, which can never match and so fails the check too.
const selectColumns = `seq, time, prev_hash, hash, signature, canonical,
	CASE WHEN (path, operation, result) IS NOT DISTINCT FROM (event->>'path', event->>'operation', event->>'result')
		THEN event
		ELSE '"the path, operation or result column differs from the event"'::jsonb
	END`

// insertSQL inserts a batch from one array per column. The event jsonb is
// made by the server from the canonical bytes, so the two agree by
// construction and the bytes travel once.
//
// The arrays are unnested in the select list, which Postgres evaluates in
// lockstep (the arrays have one length) a row at a time. Unnested in FROM
// instead, each of the nine would be materialized in a tuplestore of its
// own, whose buffers together pass glibc's trim threshold: every batch
// would then grow the server process's heap and give it back (brk, with a
// TLB shootdown on every CPU), which cost more than the insert itself.
const insertSQL = `INSERT INTO audit.events (seq, time, path, operation, result, prev_hash, hash, signature, canonical, event)
	SELECT seq, time, path, operation, result, prev_hash, hash, signature, canonical, convert_from(canonical, 'UTF8')::jsonb
	FROM (SELECT unnest($1::bigint[]) AS seq, unnest($2::timestamptz[]) AS time, unnest($3::text[]) AS path,
		unnest($4::text[]) AS operation, unnest($5::text[]) AS result, unnest($6::bytea[]) AS prev_hash,
		unnest($7::bytea[]) AS hash, unnest($8::bytea[]) AS signature, unnest($9::bytea[]) AS canonical) AS t`

const (
	lastSQL  = `SELECT ` + selectColumns + ` FROM audit.events ORDER BY seq DESC LIMIT 1`
	pageSQL  = `SELECT ` + selectColumns + ` FROM audit.events WHERE seq >= $1 ORDER BY seq LIMIT $2`
	pageFSQL = `SELECT ` + selectColumns + ` FROM audit.events WHERE seq >= $1
		AND ($3::timestamptz IS NULL OR time >= $3)
		AND ($4::timestamptz IS NULL OR time < $4)
		AND starts_with(coalesce(path, ''), $5)
		ORDER BY seq LIMIT $2`
)

// Option changes how Open configures the connection pool.
type Option func(*pgxpool.Config)

// WithPoolConfig lets f change the pool's configuration after the URL is
// parsed and before the pool is made: for tracers, TLS, timeouts, sizes.
func WithPoolConfig(f func(*pgxpool.Config)) Option { return Option(f) }

// Sink is the audit.events table. It is safe for concurrent use.
type Sink struct {
	pool *pgxpool.Pool
}

// Open connects to the database at databaseURL (a postgres:// URL or a
// keyword/value string, as pgx takes them), checks that it answers, and
// applies any migration it lacks. ctx bounds connecting and migrating, not
// the Sink's life.
func Open(ctx context.Context, databaseURL string, opts ...Option) (*Sink, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx's parse errors hide the password.
		return nil, fmt.Errorf("audit: pgsink: open: %w", err)
	}
	for _, opt := range opts {
		opt(cfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("audit: pgsink: open: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("audit: pgsink: open: connect to %s:%d/%s: %w",
			cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("audit: pgsink: open: migrate: %w", err)
	}
	return &Sink{pool: pool}, nil
}

// Append inserts recs in one statement: one transaction, one commit. On
// error none of them is stored.
func (s *Sink) Append(ctx context.Context, recs []audit.Record) error {
	if len(recs) == 0 {
		return nil
	}
	var (
		seqs                        = make([]int64, len(recs))
		times                       = make([]time.Time, len(recs))
		paths, ops, results         = make([]string, len(recs)), make([]string, len(recs)), make([]string, len(recs))
		prevs, hashes, sigs, canons = make([][]byte, len(recs)), make([][]byte, len(recs)), make([][]byte, len(recs)), make([][]byte, len(recs))
	)
	for i, r := range recs {
		seqs[i], times[i], paths[i], ops[i], results[i] = r.Seq, r.Time, r.Event.Path, r.Event.Operation, r.Event.Result
		prevs[i], hashes[i], sigs[i], canons[i] = r.PrevHash, r.Hash, r.Signature, r.Canonical
	}
	_, err := s.pool.Exec(ctx, insertSQL, seqs, times, paths, ops, results, prevs, hashes, sigs, canons)
	if err != nil {
		return fmt.Errorf("audit: pgsink: insert records %d..%d: %w", recs[0].Seq, recs[len(recs)-1].Seq, err)
	}
	return nil
}

// Last returns the record with the highest seq.
func (s *Sink) Last(ctx context.Context) (audit.Record, bool, error) {
	rows, err := s.pool.Query(ctx, lastSQL)
	if err != nil {
		return audit.Record{}, false, fmt.Errorf("audit: pgsink: read last record: %w", err)
	}
	recs, err := pgx.CollectRows(rows, scanRecord)
	if err != nil {
		return audit.Record{}, false, fmt.Errorf("audit: pgsink: read last record: %w", err)
	}
	if len(recs) == 0 {
		return audit.Record{}, false, nil
	}
	return recs[0], true, nil
}

// Records yields every row of audit.events in seq order, a page at a time,
// holding no connection while the caller works on a page.
func (s *Sink) Records(ctx context.Context) iter.Seq2[audit.Record, error] {
	return s.pages(ctx, pageSQL)
}

// FilteredRecords yields the rows whose time and path columns pass f, in seq
// order. The time bounds are widened by a microsecond, as Postgres rounds
// times to microseconds; Export applies f exactly to the decoded events.
func (s *Sink) FilteredRecords(ctx context.Context, f audit.Filter) iter.Seq2[audit.Record, error] {
	var since, until *time.Time
	if !f.Since.IsZero() {
		t := f.Since.Add(-time.Microsecond)
		since = &t
	}
	if !f.Until.IsZero() {
		t := f.Until.Add(time.Microsecond)
		until = &t
	}
	return s.pages(ctx, pageFSQL, since, until, f.PathPrefix)
}

// pages runs query (whose $1 is the lowest seq and $2 the page size, and
// whose further parameters are args) page after page.
func (s *Sink) pages(ctx context.Context, query string, args ...any) iter.Seq2[audit.Record, error] {
	return func(yield func(audit.Record, error) bool) {
		from := int64(math.MinInt64)
		for {
			rows, err := s.pool.Query(ctx, query, append([]any{from, pageSize}, args...)...)
			if err != nil {
				yield(audit.Record{}, fmt.Errorf("audit: pgsink: read records from %d: %w", from, err))
				return
			}
			page, err := pgx.CollectRows(rows, scanRecord)
			if err != nil {
				yield(audit.Record{}, fmt.Errorf("audit: pgsink: read records from %d: %w", from, err))
				return
			}
			for _, r := range page {
				if !yield(r, nil) {
					return
				}
			}
			if len(page) < pageSize {
				return
			}
			last := page[len(page)-1].Seq
			if last == math.MaxInt64 {
				return
			}
			from = last + 1
		}
	}
}

// scanRecord reads one row of selectColumns.
func scanRecord(row pgx.CollectableRow) (audit.Record, error) {
	var r audit.Record
	if err := row.Scan(&r.Seq, &r.Time, &r.PrevHash, &r.Hash, &r.Signature, &r.Canonical, &r.EventJSON); err != nil {
		return audit.Record{}, err
	}
	r.Time = r.Time.UTC()
	if _, ev, err := audit.DecodeCanonical(r.Canonical); err == nil {
		r.Event = ev
	}
	if r.EventJSON == nil {
		r.EventJSON = []byte("null") // never nil: a missing copy must not skip the check
	}
	return r, nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (s *Sink) Close() error {
	s.pool.Close()
	return nil
}
