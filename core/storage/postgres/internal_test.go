package postgres

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/secrethub/secrethub/core/storage"
	"github.com/secrethub/secrethub/internal/pgtest"
)

func TestUpperBound(t *testing.T) {
	tests := map[string]struct {
		prefix string
		want   string
		ok     bool
	}{
		"empty":               {"", "", false},
		"ascii":               {"a/", "a0", true},
		"trailing z":          {"az", "a{", true},
		"two-byte rune":       {"ü", "ý", true},
		"before surrogates":   {"a\uD7FF", "a\uE000", true},
		"max rune":            {"a\U0010FFFF", "b", true},
		"only max runes":      {"\U0010FFFF\U0010FFFF", "", false},
		"three-byte boundary": {"\u07FF", "\u0800", true},
		"LIKE specials":       {`x%_\`, `x%_]`, true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := upperBound(tt.prefix)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("upperBound(%q) = %q, %v; want %q, %v", tt.prefix, got, ok, tt.want, tt.ok)
			}
			if !ok {
				return
			}
			// The bound is above the prefix and everything after it, and it
			// does not itself start with the prefix.
			for _, s := range []string{tt.prefix, tt.prefix + "\U0010FFFF\U0010FFFF", tt.prefix + "/"} {
				if s >= got {
					t.Errorf("%q >= bound %q", s, got)
				}
			}
			if strings.HasPrefix(got, tt.prefix) {
				t.Errorf("bound %q starts with the prefix", got)
			}
		})
	}
}

func TestMigrationFiles(t *testing.T) {
	ms, err := migrationSet().Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].Version != 1 {
		t.Fatalf("migrations = %v, want them to start at version 1", ms)
	}
}

// TestClosedPool closes the pool under a backend that does not know it:
// Get must report the pool's error, not a missing key.
func TestClosedPool(t *testing.T) {
	ctx := t.Context()
	b, err := Open(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	b.pool.Close()
	_, err = b.Get(ctx, "missing")
	if err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get on a closed pool = %v, want an error that is not ErrNotFound", err)
	}
	if err := b.Put(ctx, "k", nil); err == nil {
		t.Fatal("Put on a closed pool succeeded")
	}
}

// TestListUsesIndex checks that List's range scan can be an index scan of
// the primary key, which needs the bounds compared in the key's collation.
func TestListUsesIndex(t *testing.T) {
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	b, err := Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer b.Close()

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	// An empty table would be read whole; forbid that to see whether an
	// index plan exists at all.
	if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	var plan string
	rows, _ := tx.Query(ctx, "EXPLAIN "+listRangeSQL, "a/", "a0")
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("EXPLAIN: %v", err)
	}
	plan = strings.Join(lines, "\n")
	if !strings.Contains(plan, "kv_pkey") || !strings.Contains(plan, "Index Cond") || strings.Contains(plan, "Seq Scan") {
		t.Fatalf("List's query is not an index range scan of kv_pkey:\n%s", plan)
	}
}
