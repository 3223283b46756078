package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/secrethub/secrethub/core/storage"
	"github.com/secrethub/secrethub/core/storage/postgres"
	"github.com/secrethub/secrethub/core/storage/storagetest"
	"github.com/secrethub/secrethub/internal/pgtest"
)

// open opens a Backend on dbURL and closes it when the test ends.
func open(tb testing.TB, dbURL string) *postgres.Backend {
	tb.Helper()
	b, err := postgres.Open(tb.Context(), dbURL)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

// connect opens a plain connection to dbURL for checks behind the backend's
// back.
func connect(tb testing.TB, dbURL string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(tb.Context(), dbURL)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storagetest.Exercise(t, func(t *testing.T) storage.Backend {
		b, err := postgres.Open(t.Context(), pgtest.NewDatabase(t))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return b
	})
}

func BenchmarkBackend(b *testing.B) {
	storagetest.Bench(b, func(tb testing.TB) storage.Backend {
		be, err := postgres.Open(tb.Context(), pgtest.NewDatabase(tb))
		if err != nil {
			tb.Fatalf("Open: %v", err)
		}
		return be
	})
}

// TestKilledConnections cuts the backend off from its database: it forbids
// new connections and terminates the existing ones from a second
// connection, as a failover or an administrator would. Every call must then
// fail with an error, and Get must never claim a key is missing.
func TestKilledConnections(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	b := open(t, dbURL)
	if err := b.Put(ctx, "present", []byte("v")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	// Warm the pool with more than one connection.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { b.Get(ctx, "present") })
	}
	wg.Wait()

	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	admin := connect(t, pgtest.AdminURL())
	ident := pgx.Identifier{dbName}.Sanitize()
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+ident+" ALLOW_CONNECTIONS false"); err != nil {
		t.Fatalf("forbid connections: %v", err)
	}
	// pg_terminate_backend with a timeout waits until each process is gone.
	var killed int
	err = admin.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000))
		FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, dbName).Scan(&killed)
	if err != nil {
		t.Fatalf("terminate backends: %v", err)
	}
	if killed == 0 {
		t.Fatal("no server process of the backend's pool to terminate")
	}

	calls := []struct {
		name string
		call func() error
	}{
		{"Get present", func() error { _, err := b.Get(ctx, "present"); return err }},
		{"Get missing", func() error { _, err := b.Get(ctx, "missing"); return err }},
		{"Put", func() error { return b.Put(ctx, "k", []byte("v")) }},
		{"Delete", func() error { return b.Delete(ctx, "present") }},
		{"List", func() error { _, err := b.List(ctx, ""); return err }},
		{"Txn", func() error { return b.Txn(ctx, []storage.Op{storage.DeleteOp("present")}) }},
	}
	// Twice over: the first round meets the terminated connections, the
	// second the refusal of new ones.
	for round := range 2 {
		for _, c := range calls {
			err := c.call()
			if err == nil {
				t.Fatalf("round %d: %s succeeded with the database cut off", round, c.name)
			}
			if errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("round %d: %s = %v, which claims a key is missing when the database could not answer", round, c.name, err)
			}
			if !strings.HasPrefix(err.Error(), "postgres: ") {
				t.Errorf("round %d: %s = %q, want it wrapped with the backend's context", round, c.name, err)
			}
		}
	}

	// Once connections are allowed again, the pool recovers, and the data
	// is as it was. Each failed call discards one dead connection, so a
	// bounded number of calls suffices.
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+ident+" ALLOW_CONNECTIONS true"); err != nil {
		t.Fatalf("allow connections: %v", err)
	}
	var (
		got     []byte
		lastErr error
	)
	for range 50 {
		got, lastErr = b.Get(ctx, "present")
		if lastErr == nil {
			break
		}
		if errors.Is(lastErr, storage.ErrNotFound) {
			t.Fatalf("Get while recovering = %v", lastErr)
		}
	}
	if lastErr != nil || string(got) != "v" {
		t.Fatalf("Get after connections came back = %q, %v; want \"v\"", got, lastErr)
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)

	first := open(t, dbURL)
	if err := first.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	// A second Open beside the first, and a third after both closed.
	second := open(t, dbURL)
	if got, err := second.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("Get through the second backend = %q, %v", got, err)
	}
	first.Close()
	second.Close()
	third := open(t, dbURL)
	if got, err := third.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("Get after reopening = %q, %v", got, err)
	}
	wantMigrations(t, dbURL)
}

func TestConcurrentOpen(t *testing.T) {
	t.Parallel()
	const n = 6
	dbURL := pgtest.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			b, err := postgres.Open(t.Context(), dbURL, postgres.WithMaxConns(2))
			if err != nil {
				errs <- err
				return
			}
			errs <- b.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
	}
	wantMigrations(t, dbURL)
}

// wantMigrations checks that each migration is recorded exactly once.
func wantMigrations(t *testing.T, dbURL string) {
	t.Helper()
	conn := connect(t, dbURL)
	var count, maxVersion int
	err := conn.QueryRow(t.Context(), "SELECT count(*), coalesce(max(version), 0) FROM secrethub.schema_migrations").Scan(&count, &maxVersion)
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	if count == 0 || count != maxVersion {
		t.Fatalf("schema_migrations holds %d rows up to version %d, want each version once", count, maxVersion)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	open(t, dbURL).Close()
	conn := connect(t, dbURL)
	if _, err := conn.Exec(t.Context(), "INSERT INTO secrethub.schema_migrations (version) VALUES (9999)"); err != nil {
		t.Fatal(err)
	}
	b, err := postgres.Open(t.Context(), dbURL)
	if err == nil {
		b.Close()
		t.Fatal("Open of a database migrated by a newer SecretHub succeeded")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open = %v, want an error that says the schema is newer", err)
	}
}

func TestSchema(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	open(t, dbURL)
	conn := connect(t, dbURL)
	var collation string
	err := conn.QueryRow(t.Context(), `
		SELECT collation_name FROM information_schema.columns
		WHERE table_schema = 'secrethub' AND table_name = 'kv' AND column_name = 'key'`).Scan(&collation)
	if err != nil {
		t.Fatalf("look up secrethub.kv.key: %v", err)
	}
	if collation != "C" {
		t.Fatalf("secrethub.kv.key has collation %q, want \"C\"", collation)
	}
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	// Port 1 on the loopback refuses connections at once.
	_, err := postgres.Open(t.Context(), "postgres://postgres:hunter2@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5")
	if err == nil {
		t.Fatal("Open of an unreachable server succeeded")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Open = %q, which shows the password", err)
	}
}

// TestTxnAtomicInDatabase makes the database itself refuse one op of a
// Txn (a trigger raises on one key), at each position in the batch: the
// whole Txn must fail and leave nothing behind, and the pool's connection
// must be usable after.
func TestTxnAtomicInDatabase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	b := open(t, dbURL)
	conn := connect(t, dbURL)
	if _, err := conn.Exec(ctx, `
		CREATE FUNCTION secrethub.refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.key = 'boom' THEN RAISE EXCEPTION 'refused by trigger'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_boom BEFORE INSERT OR UPDATE ON secrethub.kv
			FOR EACH ROW EXECUTE FUNCTION secrethub.refuse_boom();`); err != nil {
		t.Fatalf("create trigger: %v", err)
	}
	if err := b.Put(ctx, "keep", []byte("original")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	boom := storage.PutOp("boom", []byte("x"))
	tests := map[string][]storage.Op{
		"first":  {boom, storage.PutOp("new", []byte("x")), storage.DeleteOp("keep")},
		"middle": {storage.PutOp("new", []byte("x")), boom, storage.PutOp("keep", []byte("changed"))},
		"last":   {storage.PutOp("new", []byte("x")), storage.DeleteOp("keep"), boom},
		"alone":  {boom},
	}
	for name, ops := range tests {
		t.Run(name, func(t *testing.T) {
			err := b.Txn(ctx, ops)
			if err == nil || !strings.Contains(err.Error(), "refused by trigger") {
				t.Fatalf("Txn = %v, want the trigger's refusal", err)
			}
			if !strings.HasPrefix(err.Error(), "postgres: txn") {
				t.Errorf("Txn = %q, want it wrapped with the backend's context", err)
			}
			if _, err := b.Get(ctx, "new"); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("Get(new) after the failed Txn = %v, want ErrNotFound", err)
			}
			if got, err := b.Get(ctx, "keep"); err != nil || string(got) != "original" {
				t.Fatalf("Get(keep) after the failed Txn = %q, %v; want \"original\"", got, err)
			}
			// The same connections serve the next Txn.
			if err := b.Txn(ctx, []storage.Op{storage.PutOp("ok", []byte(name))}); err != nil {
				t.Fatalf("Txn after a failed one: %v", err)
			}
			if got, err := b.Get(ctx, "ok"); err != nil || string(got) != name {
				t.Fatalf("Get(ok) = %q, %v; want %q", got, err, name)
			}
		})
	}
}

// statements records the SQL a pool sends outside and inside batches.
type statements struct {
	mu      sync.Mutex
	queries []string // sent on their own (Exec, Query, BEGIN, COMMIT)
	batches int
}

func (s *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries = append(s.queries, d.SQL)
	return ctx
}

func (s *statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (s *statements) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches++
	return ctx
}

func (s *statements) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (s *statements) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// TestTxnIsOneBatch checks that a Txn sends its ops as one batch and
// nothing else: no BEGIN or COMMIT of its own, each of which would cost a
// round trip.
func TestTxnIsOneBatch(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tr := &statements{}
	b, err := postgres.Open(ctx, pgtest.NewDatabase(t), postgres.WithPoolConfig(func(c *pgxpool.Config) {
		c.ConnConfig.Tracer = tr
	}))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	tr.mu.Lock()
	tr.queries, tr.batches = nil, 0 // forget the migrations
	tr.mu.Unlock()
	ops := []storage.Op{storage.PutOp("a", []byte("1")), storage.PutOp("b", []byte("2")), storage.DeleteOp("c")}
	if err := b.Txn(ctx, ops); err != nil {
		t.Fatalf("Txn: %v", err)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.batches != 1 || len(tr.queries) != 0 {
		t.Fatalf("Txn sent %d batches and the statements %q on their own; want one batch and nothing else", tr.batches, tr.queries)
	}
}

// holdTable locks secrethub.kv in a transaction on conn, so that every
// write waits; the returned function releases it.
func holdTable(t *testing.T, conn *pgx.Conn) func() {
	t.Helper()
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `LOCK TABLE secrethub.kv IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := tx.Rollback(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
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

// lockWaiters counts the sessions of conn's database waiting on a lock.
func lockWaiters(t *testing.T, conn *pgx.Conn) int {
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
		AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// groupSetup opens a backend whose batches are counted, and blocks its two
// group leaders on a table lock, each with a Txn of its own. It returns the
// backend, the batch counter, the function that releases the lock, and the
// outcomes of the two leaders' Txns.
func groupSetup(t *testing.T, dbURL string) (*postgres.Backend, *statements, func(), chan error) {
	t.Helper()
	tr := &statements{}
	b, err := postgres.Open(t.Context(), dbURL, postgres.WithPoolConfig(func(c *pgxpool.Config) {
		c.ConnConfig.Tracer = tr
	}))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	conn := connect(t, dbURL)
	release := holdTable(t, conn)
	tr.mu.Lock()
	tr.queries, tr.batches = nil, 0
	tr.mu.Unlock()
	// pg_stat_activity is read outside the locking transaction, whose
	// view of it would stay as first read.
	watch := connect(t, dbURL)
	leaders := make(chan error, 2)
	for i := range 2 {
		go func() {
			leaders <- b.Txn(t.Context(), []storage.Op{storage.PutOp(fmt.Sprintf("leader-%d", i), []byte("x"))})
		}()
		waitFor(t, fmt.Sprintf("%d batches waiting on the lock", i+1), func() bool {
			return lockWaiters(t, watch) == i+1
		})
	}
	return b, tr, release, leaders
}

// TestTxnGroupCommit queues Txns while two batches are on their way: they
// go together in one more batch, and each is applied.
func TestTxnGroupCommit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	b, tr, release, leaders := groupSetup(t, dbURL)

	const n = 10
	results := make(chan error, n)
	for i := range n {
		go func() {
			results <- b.Txn(ctx, []storage.Op{
				storage.PutOp(fmt.Sprintf("k%d/a", i), []byte(fmt.Sprint(i))),
				storage.PutOp(fmt.Sprintf("k%d/b", i), []byte(fmt.Sprint(i))),
			})
		}()
	}
	waitFor(t, "ten queued Txns", func() bool { return postgres.QueuedTxns(b) == n })
	release()
	for range 2 {
		if err := <-leaders; err != nil {
			t.Fatalf("leader Txn: %v", err)
		}
	}
	for range n {
		if err := <-results; err != nil {
			t.Fatalf("queued Txn: %v", err)
		}
	}
	tr.mu.Lock()
	batches := tr.batches
	tr.mu.Unlock()
	if batches != 3 {
		t.Errorf("%d batches for 12 Txns, want 3: the two in flight and one for the ten queued", batches)
	}
	for i := range n {
		for _, k := range []string{"a", "b"} {
			if got, err := b.Get(ctx, fmt.Sprintf("k%d/%s", i, k)); err != nil || string(got) != fmt.Sprint(i) {
				t.Errorf("Get(k%d/%s) = %q, %v", i, k, got, err)
			}
		}
	}
}

// TestTxnGroupOneFails puts a failing Txn in a group: it fails alone, and
// the others of its group are applied.
func TestTxnGroupOneFails(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	conn := connect(t, dbURL)
	b, _, release, leaders := groupSetup(t, dbURL)
	if _, err := conn.Exec(ctx, `
		CREATE FUNCTION secrethub.refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.key = 'boom' THEN RAISE EXCEPTION 'refused by trigger'; END IF;
			RETURN NEW;
		END $$`); err != nil {
		t.Fatal(err)
	}

	type outcome struct {
		i   int
		err error
	}
	const n = 5
	results := make(chan outcome, n)
	for i := range n {
		ops := []storage.Op{storage.PutOp(fmt.Sprintf("k%d", i), []byte("v"))}
		if i == 2 {
			ops = append(ops, storage.PutOp("boom", []byte("x")))
		}
		go func() { results <- outcome{i, b.Txn(ctx, ops)} }()
	}
	waitFor(t, "five queued Txns", func() bool { return postgres.QueuedTxns(b) == n })
	// The trigger is made while the table is held, so it applies to the
	// queued Txns only once the lock is free.
	go func() {
		_, err := conn.Exec(ctx, `CREATE TRIGGER refuse_boom BEFORE INSERT OR UPDATE ON secrethub.kv
			FOR EACH ROW EXECUTE FUNCTION secrethub.refuse_boom()`)
		results <- outcome{-1, err}
	}()
	watch := connect(t, dbURL)
	waitFor(t, "the trigger waiting on the lock", func() bool { return lockWaiters(t, watch) == 3 })
	release()
	for range 2 {
		if err := <-leaders; err != nil {
			t.Fatalf("leader Txn: %v", err)
		}
	}
	for range n + 1 {
		o := <-results
		switch {
		case o.i == -1 && o.err != nil:
			t.Fatalf("create trigger: %v", o.err)
		case o.i == 2 && (o.err == nil || !strings.Contains(o.err.Error(), "refused by trigger")):
			t.Errorf("Txn with boom = %v, want the trigger's refusal", o.err)
		case o.i >= 0 && o.i != 2 && o.err != nil:
			t.Errorf("Txn %d = %v, want success", o.i, o.err)
		}
	}
	for i := range n {
		_, err := b.Get(ctx, fmt.Sprintf("k%d", i))
		if i == 2 && !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Get(k2) = %v: the failed Txn was partly applied", err)
		}
		if i != 2 && err != nil {
			t.Errorf("Get(k%d) = %v", i, err)
		}
	}
}
