package pgsink_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/secrethub/secrethub/core/audit"
	"github.com/secrethub/secrethub/core/audit/pgsink"
	"github.com/secrethub/secrethub/internal/pgtest"
)

// newKeys returns fresh random keys.
func newKeys(t testing.TB) audit.Keys {
	t.Helper()
	root := make([]byte, 32)
	rand.Read(root)
	k, err := audit.DeriveKeys(root)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// openSink opens the sink on dbURL; the Log that gets it closes it.
func openSink(t testing.TB, dbURL string) *pgsink.Sink {
	t.Helper()
	s, err := pgsink.Open(t.Context(), dbURL)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// openLog opens a Log over a new sink on dbURL, closed when the test ends.
func openLog(t testing.TB, keys audit.Keys, dbURL string) (*audit.Log, *pgsink.Sink) {
	t.Helper()
	s := openSink(t, dbURL)
	l, err := audit.New(keys, s)
	if err != nil {
		s.Close()
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l, s
}

// connect opens a plain connection for changes behind the sink's back.
func connect(t testing.TB, dbURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func exec(t testing.TB, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

var clockBase = time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)

// event returns a typical event numbered i, i milliseconds after clockBase
// (nanoseconds included, which Postgres's time column rounds).
func event(i int) audit.Event {
	return audit.Event{
		Time:          clockBase.Add(time.Duration(i) * time.Millisecond),
		RequestID:     fmt.Sprintf("req-%d", i),
		Operation:     "update",
		Path:          fmt.Sprintf("secrets/app/%d", i),
		ClientAddr:    "127.0.0.1",
		TokenAccessor: "accessor-1",
		Policies:      []string{"default"},
		Result:        audit.ResultOK,
		StatusCode:    200,
		Request:       map[string]any{"password": fmt.Sprintf("hunter%d", i), "ttl": 30},
	}
}

// record writes events first..first+n-1 one after the other.
func record(t testing.TB, l *audit.Log, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		if err := l.Record(t.Context(), event(i)); err != nil {
			t.Fatalf("Record %d: %v", i, err)
		}
	}
}

// recordParallel writes n events from workers goroutines.
func recordParallel(t testing.TB, l *audit.Log, n, workers int) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if err := l.Record(t.Context(), event(int(i))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Record: %v", err)
	}
}

func verify(t testing.TB, src audit.Source, keys *audit.Keys) audit.Report {
	t.Helper()
	rep, err := audit.Verify(t.Context(), src, keys)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

func TestOpenMigrates(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	// Servers starting together: the advisory lock orders the migrations.
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			s, err := pgsink.Open(t.Context(), dbURL)
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			s.Close()
		})
	}
	wg.Wait()
	conn := connect(t, dbURL)
	var versions []int32
	rows, _ := conn.Query(t.Context(), "SELECT version FROM audit.schema_migrations ORDER BY version")
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil || !slices.Equal(versions, []int32{1}) {
		t.Errorf("schema_migrations = %v, %v; want [1]", versions, err)
	}
	var cols []string
	rows, _ = conn.Query(t.Context(), `SELECT column_name || ' ' || data_type || ' ' || is_nullable FROM information_schema.columns
		WHERE table_schema = 'audit' AND table_name = 'events' ORDER BY ordinal_position`)
	cols, err = pgx.CollectRows(rows, pgx.RowTo[string])
	want := []string{
		"seq bigint NO", "time timestamp with time zone NO", "path text YES", "operation text YES", "result text YES",
		"prev_hash bytea NO", "hash bytea NO", "signature bytea NO", "canonical bytea NO", "event jsonb NO",
	}
	if err != nil || !slices.Equal(cols, want) {
		t.Errorf("audit.events columns = %q, %v\nwant %q", cols, err, want)
	}
	var idx bool
	if err := conn.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = 'audit'
		AND tablename = 'events' AND indexdef LIKE '%(%time%)%')`).Scan(&idx); err != nil || !idx {
		t.Errorf("no index on time: %v", err)
	}
}

func TestChainContinuesAcrossReopen(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	dbURL := pgtest.NewDatabase(t)
	l1, _ := openLog(t, keys, dbURL)
	record(t, l1, 1, 5)
	_, head5 := l1.Head()
	if err := l1.Close(); err != nil {
		t.Fatal(err)
	}

	l2, s2 := openLog(t, keys, dbURL)
	if seq, hash := l2.Head(); seq != 5 || !bytes.Equal(hash, head5) {
		t.Fatalf("reopened Head = %d %x, want 5 %x", seq, hash, head5)
	}
	record(t, l2, 6, 3)
	var recs []audit.Record
	for r, err := range s2.Records(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 8 || recs[5].Seq != 6 || !bytes.Equal(recs[5].PrevHash, head5) {
		t.Fatalf("%d records; record 6 links to record 5: %v", len(recs), len(recs) > 5 && bytes.Equal(recs[5].PrevHash, head5))
	}
	if recs[0].Event.RequestID != "req-1" || !recs[0].Event.Time.Equal(event(1).Time) {
		t.Errorf("record 1 decodes to %q at %v, want req-1 at %v (nanoseconds kept)", recs[0].Event.RequestID, recs[0].Event.Time, event(1).Time)
	}
	if rep := verify(t, s2, &keys); !rep.OK || rep.Records != 8 {
		t.Errorf("Verify = %+v", rep)
	}
}

// TestJSONBRoundTrip records what Postgres's jsonb renders differently from
// the canonical bytes (big and trailing-zero numbers, escapes, NUL and
// invalid UTF-8, which text and jsonb refuse) and checks that the record is
// stored and verifies.
func TestJSONBRoundTrip(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	dbURL := pgtest.NewDatabase(t)
	l, s := openLog(t, keys, dbURL)
	ev := event(1)
	ev.Path = "secrets/a\x00b\xffc"
	ev.Error = "quote \" backslash \\ tab \t <html> & ü \u2028"
	ev.Request = map[string]any{
		"big": 1e21, "small": 1.5e-7, "dec": json.Number("1.50"), "neg": math.Copysign(0, -1),
		"key\x00nul": "v", "unicode ключ": []any{true, nil, 3},
	}
	if err := l.Record(t.Context(), ev); err != nil {
		t.Fatalf("Record: %v", err)
	}
	if rep := verify(t, s, &keys); !rep.OK || rep.Records != 1 {
		t.Errorf("Verify = %+v", rep)
	}
	var path string
	if err := connect(t, dbURL).QueryRow(t.Context(), "SELECT path FROM audit.events WHERE seq = 1").Scan(&path); err != nil {
		t.Fatal(err)
	}
	if path != "secrets/a\uFFFDb\uFFFDc" {
		t.Errorf("path column = %q", path)
	}
}

// tamperCase changes the table behind the sink's back.
type tamperCase struct {
	// tamper runs raw SQL on a table of 20 records.
	tamper func(t *testing.T, conn *pgx.Conn)
	// withKeys verifies with the signing key; otherwise the hash chain
	// only.
	withKeys   bool
	wantBad    int64
	wantReason string
}

// rewriteCanonical is an UPDATE that replaces old by new in record $1's
// canonical bytes and event copy, leaving the hash alone.
const rewriteCanonical = `UPDATE audit.events SET
	canonical = convert_to(replace(convert_from(canonical, 'UTF8'), $2, $3), 'UTF8'),
	event = replace(convert_from(canonical, 'UTF8'), $2, $3)::jsonb
	WHERE seq = $1`

// rehashRow recomputes record $1's hash from its prev hash and canonical
// bytes, as an attacker without the signing key can.
const rehashRow = `UPDATE audit.events SET hash = sha256(prev_hash || canonical) WHERE seq = $1`

func TestTamper(t *testing.T) {
	t.Parallel()
	tests := map[string]tamperCase{
		"event jsonb edited": {
			tamper: func(t *testing.T, conn *pgx.Conn) {
				exec(t, conn, `UPDATE audit.events SET event = jsonb_set(event, '{result}', '"denied"') WHERE seq = 7`)
			},
			withKeys: true, wantBad: 7, wantReason: "stored copy of the event differs",
		},
		"path column edited": {
			tamper: func(t *testing.T, conn *pgx.Conn) {
				exec(t, conn, `UPDATE audit.events SET path = 'secrets/other' WHERE seq = 7`)
			},
			withKeys: true, wantBad: 7, wantReason: "stored copy of the event differs",
		},
		"time column edited": {
			tamper: func(t *testing.T, conn *pgx.Conn) {
				exec(t, conn, `UPDATE audit.events SET time = time - interval '1 hour' WHERE seq = 7`)
			},
			withKeys: true, wantBad: 7, wantReason: "stored time differs",
		},
		"canonical and event edited": {
			tamper: func(t *testing.T, conn *pgx.Conn) {
				exec(t, conn, rewriteCanonical, 7, `"status_code":200`, `"status_code":201`)
			},
			withKeys: true, wantBad: 7, wantReason: "hash mismatch: record edited",
		},
		"edited and rehashed, with keys": {
			tamper: func(t *testing.T, conn *pgx.Conn) {
				exec(t, conn, rewriteCanonical, 7, `"status_code":200`, `"status_code":201`)
				exec(t, conn, rehashRow, 7)
			},
			withKeys: true, wantBad: 7, wantReason: "signature invalid",
		},
		"edited and rehashed, without keys": {
			tamper: func(t *testing.T, conn *pgx.Conn) {
				exec(t, conn, rewriteCanonical, 7, `"status_code":200`, `"status_code":201`)
				exec(t, conn, rehashRow, 7)
			},
			withKeys: false, wantBad: 8, wantReason: "prev_hash does not match record 7",
		},
		"edited, whole suffix rehashed and relinked, with keys": {
			tamper: func(t *testing.T, conn *pgx.Conn) {
				exec(t, conn, rewriteCanonical, 7, `"status_code":200`, `"status_code":201`)
				for seq := 7; seq <= 20; seq++ {
					exec(t, conn, `UPDATE audit.events e SET prev_hash = p.hash FROM audit.events p WHERE e.seq = $1 AND p.seq = $1 - 1`, seq)
					exec(t, conn, rehashRow, seq)
				}
			},
			withKeys: true, wantBad: 7, wantReason: "signature invalid",
		},
		"row deleted": {
			tamper: func(t *testing.T, conn *pgx.Conn) {
				exec(t, conn, `DELETE FROM audit.events WHERE seq = 7`)
			},
			withKeys: true, wantBad: 7, wantReason: "sequence gap: 8 follows 6 (record deleted)",
		},
		"first row deleted": {
			tamper: func(t *testing.T, conn *pgx.Conn) {
				exec(t, conn, `DELETE FROM audit.events WHERE seq = 1`)
			},
			withKeys: false, wantBad: 1, wantReason: "chain starts at 2",
		},
		"two rows swapped by UPDATE seq": {
			tamper: func(t *testing.T, conn *pgx.Conn) {
				exec(t, conn, `UPDATE audit.events SET seq = -seq WHERE seq IN (5, 9)`)
				exec(t, conn, `UPDATE audit.events SET seq = 9 WHERE seq = -5`)
				exec(t, conn, `UPDATE audit.events SET seq = 5 WHERE seq = -9`)
			},
			withKeys: true, wantBad: 5, wantReason: "record at seq 5 holds the event signed as seq 9 (records reordered)",
		},
		"two rows swapped, without keys": {
			tamper: func(t *testing.T, conn *pgx.Conn) {
				exec(t, conn, `UPDATE audit.events SET seq = -seq WHERE seq IN (5, 9)`)
				exec(t, conn, `UPDATE audit.events SET seq = 9 WHERE seq = -5`)
				exec(t, conn, `UPDATE audit.events SET seq = 5 WHERE seq = -9`)
			},
			withKeys: false, wantBad: 5, wantReason: "records reordered",
		},
		"forged row inserted, later seqs shifted": {
			tamper:   insertForged,
			withKeys: true, wantBad: 7, wantReason: "signature invalid",
		},
		"forged row inserted, later seqs shifted, without keys": {
			tamper:   insertForged,
			withKeys: false, wantBad: 8, wantReason: "record at seq 8 holds the event signed as seq 7",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			keys := newKeys(t)
			dbURL := pgtest.NewDatabase(t)
			l, s := openLog(t, keys, dbURL)
			recordParallel(t, l, 20, 4)
			if rep := verify(t, s, &keys); !rep.OK || rep.Records != 20 {
				t.Fatalf("before tampering: %+v", rep)
			}
			tc.tamper(t, connect(t, dbURL))
			var k *audit.Keys
			if tc.withKeys {
				k = &keys
			}
			rep := verify(t, s, k)
			if rep.OK || rep.FirstBadSeq != tc.wantBad || !strings.Contains(rep.Reason, tc.wantReason) {
				t.Errorf("Verify = {OK:%v FirstBadSeq:%d Reason:%q}\nwant FirstBadSeq %d, Reason with %q",
					rep.OK, rep.FirstBadSeq, rep.Reason, tc.wantBad, tc.wantReason)
			}
		})
	}
}

// insertForged shifts records 7.. up by one and inserts at 7 a forged
// record that links to record 6 with a correct hash, signed with a key of
// the attacker's.
func insertForged(t *testing.T, conn *pgx.Conn) {
	var prev []byte
	if err := conn.QueryRow(t.Context(), `SELECT hash FROM audit.events WHERE seq = 6`).Scan(&prev); err != nil {
		t.Fatal(err)
	}
	ev := event(1000)
	canon, err := audit.EncodeCanonical(7, ev)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(append(bytes.Clone(prev), canon...))
	exec(t, conn, `UPDATE audit.events SET seq = -seq WHERE seq >= 7`)
	exec(t, conn, `UPDATE audit.events SET seq = -seq + 1 WHERE seq < 0`)
	exec(t, conn, `INSERT INTO audit.events (seq, time, path, operation, result, prev_hash, hash, signature, canonical, event)
		VALUES (7, $1, $2, 'update', 'ok', $3, $4, $5, $6, $7)`,
		ev.Time, ev.Path, prev, sum[:], bytes.Repeat([]byte{7}, 32), canon, string(canon))
}

func TestTailTruncationShowsAgainstHead(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	dbURL := pgtest.NewDatabase(t)
	l, s := openLog(t, keys, dbURL)
	record(t, l, 1, 10)
	exec(t, connect(t, dbURL), `DELETE FROM audit.events WHERE seq > 7`)
	rep := verify(t, s, &keys)
	headSeq, headHash := l.Head()
	// The chain that is left is whole: only the head shows what is gone.
	if !rep.OK || rep.LastSeq != 7 || headSeq != 10 || bytes.Equal(rep.LastHash, headHash) {
		t.Errorf("Verify = %+v, Head = %d; want an intact chain ending at 7 and a head at 10", rep, headSeq)
	}
}

func TestVerifyTenThousand(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	dbURL := pgtest.NewDatabase(t)
	l, s := openLog(t, keys, dbURL)
	const n = 10000
	start := time.Now()
	recordParallel(t, l, n, 32)
	t.Logf("recorded %d events from 32 goroutines in %v", n, time.Since(start))
	start = time.Now()
	rep := verify(t, s, &keys)
	t.Logf("verified in %v", time.Since(start))
	if !rep.OK || rep.Records != n || rep.LastSeq != n {
		t.Fatalf("Verify = %+v", rep)
	}
	// Every request is in the chain exactly once.
	var distinct int
	if err := connect(t, dbURL).QueryRow(t.Context(), `SELECT count(DISTINCT event->>'request_id') FROM audit.events`).Scan(&distinct); err != nil || distinct != n {
		t.Errorf("%d distinct request IDs (%v), want %d", distinct, err, n)
	}
}

func TestFailClosed(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	dbURL := pgtest.NewDatabase(t)
	l, s := openLog(t, keys, dbURL)
	conn := connect(t, dbURL)
	record(t, l, 1, 3)

	// Every insert now fails: each Record of a batch gets the error.
	exec(t, conn, `CREATE FUNCTION audit.fail() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'injected audit fault'; END $$`)
	exec(t, conn, `CREATE TRIGGER fail BEFORE INSERT ON audit.events FOR EACH ROW EXECUTE FUNCTION audit.fail()`)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 16 {
		wg.Go(func() {
			err := l.Record(t.Context(), event(100+i))
			if errors.Is(err, audit.ErrNotRecorded) && strings.Contains(err.Error(), "injected audit fault") {
				failed.Add(1)
			} else {
				t.Errorf("Record with failing inserts = %v", err)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 16 {
		t.Fatalf("%d of 16 Records failed", failed.Load())
	}
	if seq, _ := l.Head(); seq != 3 {
		t.Errorf("Head = %d after failed batches, want 3", seq)
	}

	// The database recovers: the chain continues where it was committed.
	exec(t, conn, `DROP TRIGGER fail ON audit.events`)
	record(t, l, 4, 2)
	if rep := verify(t, s, &keys); !rep.OK || rep.Records != 5 {
		t.Errorf("Verify = %+v, want OK over 5", rep)
	}

	// The table disappears (renamed): fail closed, then recover.
	exec(t, conn, `ALTER TABLE audit.events RENAME TO events_moved`)
	if err := l.Record(t.Context(), event(6)); !errors.Is(err, audit.ErrNotRecorded) {
		t.Fatalf("Record without the table = %v", err)
	}
	exec(t, conn, `ALTER TABLE audit.events_moved RENAME TO events`)
	record(t, l, 6, 1)

	// Connections are killed under the pool: whatever Record says, the
	// chain stays whole and gap-free once they are back.
	exec(t, conn, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	err := l.Record(t.Context(), event(7))
	if err != nil && !errors.Is(err, audit.ErrNotRecorded) {
		t.Errorf("Record after the connections died = %v", err)
	}
	record(t, l, 8, 2)
	rep := verify(t, s, &keys)
	wantRecords := int64(8)
	if err == nil {
		wantRecords = 9
	}
	if !rep.OK || rep.Records != wantRecords {
		t.Errorf("Verify = %+v, want OK over %d (Record 7 error: %v)", rep, wantRecords, err)
	}
}

func TestExportFromPostgres(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	dbURL := pgtest.NewDatabase(t)
	l, s := openLog(t, keys, dbURL)
	for i := 1; i <= 6; i++ {
		ev := event(i)
		if i%2 == 0 {
			ev.Path = fmt.Sprintf("sys/policy/p%d", i)
		}
		if err := l.Record(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	tests := map[string]struct {
		f    audit.Filter
		want []string
	}{
		"all": {audit.Filter{}, []string{"1", "2", "3", "4", "5", "6"}},
		// The bounds fall on nanoseconds the time column cannot hold.
		"window": {audit.Filter{Since: event(2).Time, Until: event(5).Time}, []string{"2", "3", "4"}},
		"prefix": {audit.Filter{PathPrefix: "sys/"}, []string{"2", "4", "6"}},
		"both":   {audit.Filter{PathPrefix: "secrets/", Since: event(2).Time.Add(time.Nanosecond)}, []string{"3", "5"}},
		// LIKE wildcards in the prefix are plain characters.
		"wildcards": {audit.Filter{PathPrefix: "s%"}, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := audit.Export(t.Context(), s, &buf, audit.FormatCSV, tc.f); err != nil {
				t.Fatalf("Export: %v", err)
			}
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			var got []string
			for _, line := range lines[1:] {
				got = append(got, strings.SplitN(line, ",", 2)[0])
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("exported seqs %v, want %v", got, tc.want)
			}
			if strings.Contains(buf.String(), "hunter") {
				t.Error("export holds a secret")
			}
		})
	}
}

// BenchmarkRecordPostgres measures audited requests a second through the
// Log's group commit into a real Postgres table, from 16 concurrent callers
// (at least: RunParallel runs a multiple of GOMAXPROCS goroutines).
func BenchmarkRecordPostgres(b *testing.B) {
	keys := newKeys(b)
	l, _ := openLog(b, keys, pgtest.NewDatabase(b))
	ev := event(1)
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((16 + procs - 1) / procs)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Record(context.Background(), ev); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// chainOf returns n valid records (1..n), made by a Log over a Memory sink.
func chainOf(t *testing.T, keys audit.Keys, n int) []audit.Record {
	t.Helper()
	mem := audit.NewMemory()
	l, err := audit.New(keys, mem)
	if err != nil {
		t.Fatal(err)
	}
	record(t, l, 1, n)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var recs []audit.Record
	for r, err := range mem.Records(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	return recs
}

// TestPipelineFailureLeavesNoHole sends a batch that fails and, before
// its outcome is read, the batch that follows it: the second must not be
// stored either.
func TestPipelineFailureLeavesNoHole(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	dbURL := pgtest.NewDatabase(t)
	s := openSink(t, dbURL)
	t.Cleanup(func() { s.Close() })
	recs := chainOf(t, keys, 6)

	// Batch 1 (records 1..3) fails in the database: a canonical that is
	// not JSON cannot become the event jsonb.
	bad := slices.Clone(recs[:3])
	bad[1].Canonical = []byte("not json")
	if err := s.StartAppend(t.Context(), bad); err != nil {
		t.Fatal(err)
	}
	if err := s.StartAppend(t.Context(), recs[3:]); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitAppend(t.Context()); err == nil || !strings.Contains(err.Error(), "jsonb") && !strings.Contains(err.Error(), "json") {
		t.Fatalf("first WaitAppend = %v, want the database's JSON error", err)
	}
	err := s.WaitAppend(t.Context())
	if err == nil || !strings.Contains(err.Error(), "0 of 3 rows inserted") || !strings.Contains(err.Error(), "seq 3") {
		t.Fatalf("second WaitAppend = %v, want a refusal for the missing record 3", err)
	}
	if _, ok, err := s.Last(t.Context()); err != nil || ok {
		t.Fatalf("Last = %v, %v; want an empty table", ok, err)
	}

	// The same connection goes on: both batches, sent again, are stored
	// and the chain verifies.
	if err := s.StartAppend(t.Context(), recs[:3]); err != nil {
		t.Fatal(err)
	}
	if err := s.StartAppend(t.Context(), recs[3:]); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.WaitAppend(t.Context()); err != nil {
			t.Fatalf("WaitAppend %d: %v", i+1, err)
		}
	}
	if rep := verify(t, s, &keys); !rep.OK || rep.Records != 6 {
		t.Errorf("Verify = %+v, want OK over 6", rep)
	}

	// A batch that does not follow the head (a record skipped) is refused
	// on its own too.
	more := chainOf(t, keys, 8)
	if err := s.StartAppend(t.Context(), more[7:]); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitAppend(t.Context()); err == nil || !strings.Contains(err.Error(), "seq 7") {
		t.Fatalf("WaitAppend of record 8 after 6 = %v, want a refusal", err)
	}
}

// pipelineAppend stores recs through the pipeline and waits for them.
func pipelineAppend(t *testing.T, s *pgsink.Sink, recs []audit.Record) {
	t.Helper()
	if err := s.StartAppend(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitAppend(t.Context()); err != nil {
		t.Fatalf("WaitAppend of records %d..: %v", recs[0].Seq, err)
	}
}

// lockEvents takes an exclusive lock on audit.events in a transaction on
// conn, so that inserts wait; the test rolls it back.
func lockEvents(t *testing.T, conn *pgx.Conn) pgx.Tx {
	t.Helper()
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `LOCK TABLE audit.events IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	return tx
}

// lockWaiters counts the other sessions of the database waiting on a lock.
const lockWaiters = `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
	AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`

// TestPipelineConnectionKilled kills the pipeline's connection with
// batches in flight: they fail, and the sink goes on with a new one.
func TestPipelineConnectionKilled(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	dbURL := pgtest.NewDatabase(t)
	s := openSink(t, dbURL)
	t.Cleanup(func() { s.Close() })
	conn := connect(t, dbURL)
	recs := chainOf(t, keys, 5)
	pipelineAppend(t, s, recs[:1])

	// Hold the table so that batches stay in flight, then kill the
	// connection they are on.
	tx := lockEvents(t, conn)
	if err := s.StartAppend(t.Context(), recs[1:3]); err != nil {
		t.Fatal(err)
	}
	if err := s.StartAppend(t.Context(), recs[3:]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pipeline waiting on the lock", func() bool {
		var n int
		_ = tx.QueryRow(t.Context(), lockWaiters).Scan(&n)
		return n == 1
	})
	if _, err := tx.Exec(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()
		AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.WaitAppend(t.Context()); err == nil {
			t.Fatalf("WaitAppend %d after the connection was killed succeeded", i+1)
		}
	}
	pipelineAppend(t, s, recs[1:3])
	pipelineAppend(t, s, recs[3:])
	if rep := verify(t, s, &keys); !rep.OK || rep.Records != 5 {
		t.Errorf("Verify = %+v, want OK over 5", rep)
	}
}

// TestPipelineWaitTimeout bounds a wait with its context: the batch fails
// and the next one goes through.
func TestPipelineWaitTimeout(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	dbURL := pgtest.NewDatabase(t)
	s := openSink(t, dbURL)
	t.Cleanup(func() { s.Close() })
	conn := connect(t, dbURL)
	recs := chainOf(t, keys, 2)
	pipelineAppend(t, s, recs[:1])

	tx := lockEvents(t, conn)
	if err := s.StartAppend(t.Context(), recs[1:]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.WaitAppend(ctx); err == nil {
		t.Fatal("WaitAppend with a done context succeeded")
	}
	// The outcome of record 2 is unknown to the sink: the server may
	// still insert it once the lock is free. Here its session is ended
	// first, so it is not stored, and the same batch goes through again.
	if _, err := tx.Exec(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()
		AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the waiting session to end", func() bool {
		var n int
		_ = tx.QueryRow(t.Context(), lockWaiters).Scan(&n)
		return n == 0
	})
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	pipelineAppend(t, s, recs[1:])
	if rep := verify(t, s, &keys); !rep.OK || rep.Records != 2 {
		t.Errorf("Verify = %+v, want OK over 2", rep)
	}
}

// TestPipelinedLogUnderFaults records from many goroutines while some
// events make their batch fail: every event Record acknowledged is
// stored, and the chain verifies with no hole.
func TestPipelinedLogUnderFaults(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	dbURL := pgtest.NewDatabase(t)
	l, s := openLog(t, keys, dbURL)
	conn := connect(t, dbURL)
	exec(t, conn, `CREATE FUNCTION audit.poison() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.path LIKE '%/poison' THEN RAISE EXCEPTION 'injected audit fault'; END IF; RETURN NEW; END $$`)
	exec(t, conn, `CREATE TRIGGER poison BEFORE INSERT ON audit.events FOR EACH ROW EXECUTE FUNCTION audit.poison()`)

	const workers, each = 16, 40
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				ev := event(w*each + i)
				if i%7 == 3 {
					ev.Path = "secrets/app/poison"
				}
				err := l.Record(t.Context(), ev)
				switch {
				case err == nil && i%7 == 3:
					t.Errorf("Record of a poisoned event succeeded")
				case err == nil:
					mu.Lock()
					acked = append(acked, ev.RequestID)
					mu.Unlock()
				case !errors.Is(err, audit.ErrNotRecorded):
					t.Errorf("Record = %v, want ErrNotRecorded", err)
				}
			}
		})
	}
	wg.Wait()
	rep := verify(t, s, &keys)
	if !rep.OK {
		t.Fatalf("Verify = %+v", rep)
	}
	stored := map[string]bool{}
	for r, err := range s.Records(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		stored[r.Event.RequestID] = true
	}
	for _, id := range acked {
		if !stored[id] {
			t.Errorf("event %s acknowledged but not stored", id)
		}
	}
	if seq, _ := l.Head(); seq != rep.LastSeq {
		t.Errorf("Head = %d, stored chain ends at %d", seq, rep.LastSeq)
	}
	t.Logf("%d of %d events acknowledged, %d stored", len(acked), workers*each, rep.Records)
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		select {
		case <-time.After(time.Millisecond):
		case <-t.Context().Done():
			t.Fatalf("test ended waiting for %s", what)
		}
	}
}
