package pgsink

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationFiles holds the schema migrations, applied in version order. A
// migration is never edited once released: change the schema with a new
// file, numbered one past the last.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// MigrationLockID is the key of the transaction-scoped advisory lock
// (pg_advisory_xact_lock) that Open holds while it migrates, so that servers
// starting together migrate one after the other. It differs from the
// storage backend's lock. The value spells "SecHubAu" in ASCII.
const MigrationLockID int64 = 0x5365_6348_7562_4175

// migrationName is the form of a migration's file name.
var migrationName = regexp.MustCompile(`^(\d{4})_[a-z0-9_]+\.sql$`)

// migration is one embedded schema migration.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order; versions
// run 1, 2, 3, … with no gap or repeat.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration %s: name is not NNNN_description.sql", e.Name())
		}
		version, err := strconv.Atoi(m[1])
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", e.Name(), err)
		}
		sql, err := fs.ReadFile(migrationFiles, "migrations/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: version, name: e.Name(), sql: string(sql)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: version %d, want %d", m.name, m.version, i+1)
		}
	}
	return ms, nil
}

// migrate brings schema audit up to date in one transaction under
// MigrationLockID, recording each applied migration in
// audit.schema_migrations. It refuses a database that a newer SecretHub has
// migrated past what this one knows.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", MigrationLockID); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		// Create the bookkeeping only when it is missing, so that a role
		// without CREATE privileges can open an up-to-date database.
		var exists bool
		err := tx.QueryRow(ctx, "SELECT to_regclass('audit.schema_migrations') IS NOT NULL").Scan(&exists)
		if err != nil {
			return fmt.Errorf("look up schema_migrations: %w", err)
		}
		if !exists {
			_, err := tx.Exec(ctx, `
				CREATE SCHEMA IF NOT EXISTS audit;
				CREATE TABLE IF NOT EXISTS audit.schema_migrations (
					version    integer PRIMARY KEY,
					applied_at timestamptz NOT NULL DEFAULT now()
				);`)
			if err != nil {
				return fmt.Errorf("create schema_migrations: %w", err)
			}
		}
		rows, _ := tx.Query(ctx, "SELECT version FROM audit.schema_migrations ORDER BY version")
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		if n := len(applied); n > 0 && int(applied[n-1]) > len(ms) {
			return fmt.Errorf("audit schema is at version %d, newer than the %d this SecretHub knows: run a newer SecretHub", applied[n-1], len(ms))
		}
		done := make(map[int]bool, len(applied))
		for _, v := range applied {
			done[int(v)] = true
		}
		for _, m := range ms {
			if done[m.version] {
				continue
			}
			// Exec without arguments uses the simple protocol, which runs
			// a file of several statements.
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO audit.schema_migrations (version) VALUES ($1)", m.version); err != nil {
				return fmt.Errorf("record migration %s: %w", m.name, err)
			}
		}
		return nil
	})
}
