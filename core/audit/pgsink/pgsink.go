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
//
// Sink is also an audit.PipelineSink: StartAppend sends a batch on a
// connection of its own in pipeline mode, each batch its own implicit
// transaction, and WaitAppend reads the outcomes in order, so the next
// batch is already at the server while one commits. Postgres runs the
// statements of one connection one after the other, and each batch's
// INSERT inserts its rows only if the row it follows (seq and hash) is
// there: if batch N fails, batch N+1 inserts nothing and fails too,
// instead of leaving a hole in the chain.
package pgsink

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/secrethub/secrethub/core/audit"
)

var (
	_ audit.Sink           = (*Sink)(nil)
	_ audit.PipelineSink   = (*Sink)(nil)
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

// linkedInsertSQL is insertSQL for a pipelined batch: it inserts the
// rows only if the row they follow is stored ($10 is its seq, $11 its
// hash; $10 = 0 for the first batch of a chain, which follows nothing). The
// condition does not depend on the rows, so Postgres checks it once.
// When it fails the statement inserts nothing, and StartAppend's batch
// fails on the row count.
const linkedInsertSQL = insertSQL + `
	WHERE $10::bigint = 0 OR EXISTS (SELECT 1 FROM audit.events WHERE seq = $10 AND hash = $11::bytea)`

// linkedInsertName names linkedInsertSQL, prepared on the pipeline's
// connection.
const linkedInsertName = "secrethub_audit_linked_insert"

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

// Sink is the audit.events table. It is safe for concurrent use, except
// that StartAppend and WaitAppend are called from one goroutine at a time.
type Sink struct {
	pool *pgxpool.Pool

	// pmu guards the pipeline state.
	pmu sync.Mutex
	// conn is the pipeline's connection, held while batches are in
	// flight and between them; nil until the first StartAppend and after
	// the connection broke.
	conn *pgxpool.Conn
	// pipe is the open pipeline on conn, nil before the first
	// StartAppend and after the connection broke.
	pipe *pgconn.Pipeline
	// cancel ends pipe's context, which breaks the connection: the way a
	// wait is bounded.
	cancel context.CancelFunc
	// inflight are the batches started and not yet waited for, oldest
	// first.
	inflight []sent
	// broken is why the connection broke; the batches still in flight
	// fail with it.
	broken error
}

// sent is a batch sent on the pipeline.
type sent struct {
	first, last int64
	rows        int64
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
	_, err := s.pool.Exec(ctx, insertSQL, columns(recs)...)
	if err != nil {
		return fmt.Errorf("audit: pgsink: insert records %d..%d: %w", recs[0].Seq, recs[len(recs)-1].Seq, err)
	}
	return nil
}

// StartAppend sends recs on the pipeline's connection as one implicit
// transaction that inserts them only if the record before them is stored,
// and returns without waiting for the outcome (see WaitAppend). ctx bounds
// getting a connection and sending.
func (s *Sink) StartAppend(ctx context.Context, recs []audit.Record) error {
	if len(recs) == 0 {
		return errors.New("audit: pgsink: start append: no records")
	}
	first, last := recs[0].Seq, recs[len(recs)-1].Seq
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if s.broken != nil {
		// Earlier batches in flight are lost with the connection; this
		// one follows them and must not be sent on a new one.
		return fmt.Errorf("audit: pgsink: start append of records %d..%d: %w", first, last, s.broken)
	}
	if s.pipe == nil {
		if err := s.openPipeline(ctx); err != nil {
			return fmt.Errorf("audit: pgsink: start append of records %d..%d: %w", first, last, err)
		}
	}
	params, err := s.encodeLinked(recs)
	if err != nil {
		return fmt.Errorf("audit: pgsink: start append of records %d..%d: %w", first, last, err)
	}
	stop := context.AfterFunc(ctx, s.cancel)
	s.pipe.SendQueryPrepared(linkedInsertName, params, binaryFormats[:], nil)
	err = s.pipe.Sync()
	s.stopWatch(ctx, stop)
	if err != nil {
		s.breakPipeline(err)
		return fmt.Errorf("audit: pgsink: start append of records %d..%d: send: %w", first, last, err)
	}
	s.inflight = append(s.inflight, sent{first: first, last: last, rows: int64(len(recs))})
	return nil
}

// stopWatch stops the AfterFunc that bounds a call with ctx. If it has
// run, the pipeline's context is cancelled and the pipeline cannot be
// trusted any more: it is marked broken, so that it is started afresh once
// the batches in flight are answered.
func (s *Sink) stopWatch(ctx context.Context, stop func() bool) {
	if !stop() {
		s.breakPipeline(fmt.Errorf("call ended: %w", context.Cause(ctx)))
	}
}

// WaitAppend waits for the oldest batch in flight: its INSERT and the
// commit at its Sync. ctx bounds the wait; when it ends, the connection is
// closed, and this batch and every later one in flight fail.
func (s *Sink) WaitAppend(ctx context.Context) error {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if len(s.inflight) == 0 {
		return errors.New("audit: pgsink: wait append: no batch in flight")
	}
	b := s.inflight[0]
	s.inflight = s.inflight[1:]
	err := s.waitLocked(ctx, b)
	if len(s.inflight) == 0 && s.broken != nil {
		// The last batch lost with the connection is answered: start
		// afresh with the next one. A healthy pipeline stays open
		// between batches, as opening one costs a context and its
		// watcher.
		s.closePipeline()
	}
	if err != nil {
		return fmt.Errorf("audit: pgsink: insert records %d..%d: %w", b.first, b.last, err)
	}
	return nil
}

// waitLocked reads the results of batch b: the INSERT's, then the Sync's.
func (s *Sink) waitLocked(ctx context.Context, b sent) error {
	if s.broken != nil {
		return s.broken
	}
	stop := context.AfterFunc(ctx, s.cancel)
	defer s.stopWatch(ctx, stop)
	var inserted int64
	var stmtErr error
	for {
		res, err := s.pipe.GetResults()
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr):
			// The server skips the rest of the batch up to its Sync,
			// and reports the error once.
			if stmtErr == nil {
				stmtErr = err
			}
			continue
		case err != nil:
			s.breakPipeline(err)
			return s.broken
		}
		switch r := res.(type) {
		case *pgconn.ResultReader:
			tag, err := r.Close()
			if err != nil {
				if stmtErr == nil {
					stmtErr = err
				}
				continue
			}
			inserted = tag.RowsAffected()
		case *pgconn.PipelineSync:
			// The transaction has ended: committed unless an error came
			// first.
			if stmtErr != nil {
				return stmtErr
			}
			if inserted != b.rows {
				return fmt.Errorf("%d of %d rows inserted: the record before them (seq %d) is not stored with the hash they follow, as when the batch before them failed", inserted, b.rows, b.first-1)
			}
			return nil
		case nil:
			s.breakPipeline(errors.New("pipeline: no result for a batch in flight"))
			return s.broken
		}
	}
}

// openPipeline gets the pipeline's connection if it has none, prepares
// linkedInsertSQL on it, and starts a pipeline.
func (s *Sink) openPipeline(ctx context.Context) error {
	if s.conn == nil {
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("acquire a connection: %w", err)
		}
		if _, err := conn.Conn().Prepare(ctx, linkedInsertName, linkedInsertSQL); err != nil {
			conn.Release()
			return fmt.Errorf("prepare: %w", err)
		}
		s.conn = conn
	}
	pctx, cancel := context.WithCancel(context.Background())
	s.pipe = s.conn.Conn().PgConn().StartPipeline(pctx)
	s.cancel = cancel
	return nil
}

// closePipeline ends the pipeline once no batch is in flight; after a
// break it releases the connection and clears the break.
func (s *Sink) closePipeline() {
	if s.pipe != nil {
		if err := s.pipe.Close(); err != nil && s.broken == nil {
			s.broken = err
		}
		s.pipe = nil
	}
	if s.cancel != nil {
		s.cancel()
		s.cancel = nil
	}
	if s.broken != nil && s.conn != nil {
		// A pipeline that failed closed its connection; Release
		// destroys a closed connection instead of pooling it.
		_ = s.conn.Conn().Close(context.Background())
		s.conn.Release()
		s.conn = nil
	}
	s.broken = nil
}

// breakPipeline records that the connection failed with err: every batch
// in flight fails, and none is sent until they have been waited for.
func (s *Sink) breakPipeline(err error) {
	if s.broken == nil {
		s.broken = fmt.Errorf("connection lost, outcome unknown: %w", err)
	}
	if s.cancel != nil {
		s.cancel()
	}
}

// binaryFormats sends every parameter of linkedInsertSQL in binary.
var binaryFormats = [11]int16{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}

// linkedParamOIDs are the types of linkedInsertSQL's parameters.
var linkedParamOIDs = [11]uint32{
	pgtype.Int8ArrayOID, pgtype.TimestamptzArrayOID, pgtype.TextArrayOID, pgtype.TextArrayOID, pgtype.TextArrayOID,
	pgtype.ByteaArrayOID, pgtype.ByteaArrayOID, pgtype.ByteaArrayOID, pgtype.ByteaArrayOID,
	pgtype.Int8OID, pgtype.ByteaOID,
}

// encodeLinked encodes the parameters of linkedInsertSQL for recs.
func (s *Sink) encodeLinked(recs []audit.Record) ([][]byte, error) {
	args := columns(recs)
	prevSeq := recs[0].Seq - 1
	prevHash := recs[0].PrevHash
	if prevHash == nil {
		prevHash = []byte{}
	}
	values := append(args, prevSeq, prevHash)
	// One buffer for all parameters, sized so that encoding them seldom
	// grows it: 24 bytes of array header and 12 of each fixed-size
	// element, 4 of length before each variable one.
	size := 9*24 + 2*12*len(recs) + 8 + 4 + len(prevHash)
	for _, r := range recs {
		size += 6*4 + len(r.Event.Path) + len(r.Event.Operation) + len(r.Event.Result) +
			len(r.PrevHash) + len(r.Hash) + len(r.Signature) + len(r.Canonical)
	}
	buf := make([]byte, 0, size)
	m := s.conn.Conn().TypeMap()
	params := make([][]byte, len(values))
	for i, v := range values {
		start := len(buf)
		out, err := m.Encode(linkedParamOIDs[i], pgtype.BinaryFormatCode, v, buf)
		if err != nil {
			return nil, fmt.Errorf("encode parameter %d: %w", i+1, err)
		}
		if out == nil {
			continue // NULL
		}
		buf = out
		// Earlier parameters keep their slices of the buffer even when
		// it grows: append copies, it does not move what was sliced.
		params[i] = buf[start:len(buf):len(buf)]
	}
	return params, nil
}

// columns returns the nine column arrays of insertSQL for recs.
func columns(recs []audit.Record) []any {
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
	return []any{seqs, times, paths, ops, results, prevs, hashes, sigs, canons}
}

// Last returns the record with the highest seq. The query only reads, so
// it is tried a second time when the first fails while ctx is live: the
// log reads the head after a failure, when the pool's idle connections may
// have died with the one that failed (a restarted server).
func (s *Sink) Last(ctx context.Context) (audit.Record, bool, error) {
	rec, ok, err := s.last(ctx)
	if err != nil && ctx.Err() == nil {
		rec, ok, err = s.last(ctx)
	}
	return rec, ok, err
}

func (s *Sink) last(ctx context.Context) (audit.Record, bool, error) {
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
// Batches still in flight fail.
func (s *Sink) Close() error {
	s.pmu.Lock()
	if s.pipe != nil {
		s.breakPipeline(errors.New("sink closed"))
		s.inflight = nil
		s.closePipeline()
	} else if s.conn != nil {
		s.conn.Release()
		s.conn = nil
	}
	s.pmu.Unlock()
	s.pool.Close()
	return nil
}
