// Package pgmigrate applies a package's embedded Postgres schema
// migrations: files named NNNN_description.sql, versions 1, 2, 3, … with
// no gap, applied in one transaction under an advisory lock and recorded
// in <schema>.schema_migrations. SecretHub keeps two schemas this way —
// secrethub (storage) and audit — each migrated by the package that owns
// it.
package pgmigrate

import (
	"context"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Set is one schema's migrations.
type Set struct {
	// Schema is the schema the migrations create and fill; its
	// bookkeeping table is Schema.schema_migrations. It is an identifier
	// chosen by the caller, never user input.
	Schema string
	// LockID is the pg_advisory_xact_lock key held while migrating, so
	// servers starting together migrate one after the other. Each Set
	// needs its own.
	LockID int64
	// Files holds the migrations in its directory "migrations". A
	// migration is never edited once released: change the schema with a
	// new file, numbered one past the last.
	Files fs.FS
}

// name is the form of a migration's file name.
var name = regexp.MustCompile(`^(\d{4})_[a-z0-9_]+\.sql$`)

// Migration is one schema migration.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the set's migrations in version order, checking
// that versions run 1, 2, 3, … with no gap or repeat.
func (s Set) Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(s.Files, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		m := name.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration %s: name is not NNNN_description.sql", e.Name())
		}
		version, err := strconv.Atoi(m[1])
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", e.Name(), err)
		}
		sql, err := fs.ReadFile(s.Files, "migrations/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		ms = append(ms, Migration{Version: version, Name: e.Name(), SQL: string(sql)})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %s: version %d, want %d", m.Name, m.Version, i+1)
		}
	}
	return ms, nil
}

// Apply brings the schema up to date in one transaction under LockID. It
// refuses a database that a newer SecretHub has migrated past what this
// one knows.
func (s Set) Apply(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := s.Migrations()
	if err != nil {
		return err
	}
	table := pgx.Identifier{s.Schema, "schema_migrations"}.Sanitize()
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", s.LockID); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		// Create the bookkeeping only when it is missing, so that a role
		// without CREATE privileges can open an up-to-date database.
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", s.Schema+".schema_migrations").Scan(&exists); err != nil {
			return fmt.Errorf("look up %s: %w", table, err)
		}
		if !exists {
			_, err := tx.Exec(ctx, fmt.Sprintf(`
				CREATE SCHEMA IF NOT EXISTS %s;
				CREATE TABLE IF NOT EXISTS %s (
					version    integer PRIMARY KEY,
					applied_at timestamptz NOT NULL DEFAULT now()
				);`, pgx.Identifier{s.Schema}.Sanitize(), table))
			if err != nil {
				return fmt.Errorf("create %s: %w", table, err)
			}
		}
		rows, _ := tx.Query(ctx, "SELECT version FROM "+table+" ORDER BY version")
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return fmt.Errorf("read %s: %w", table, err)
		}
		if n := len(applied); n > 0 && int(applied[n-1]) > len(ms) {
			return fmt.Errorf("schema %s is at version %d, newer than the %d this SecretHub knows: run a newer SecretHub", s.Schema, applied[n-1], len(ms))
		}
		done := make(map[int]bool, len(applied))
		for _, v := range applied {
			done[int(v)] = true
		}
		for _, m := range ms {
			if done[m.Version] {
				continue
			}
			// Exec without arguments uses the simple protocol, which runs
			// a file of several statements.
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (version) VALUES ($1)", m.Version); err != nil {
				return fmt.Errorf("record migration %s: %w", m.Name, err)
			}
		}
		return nil
	})
}
