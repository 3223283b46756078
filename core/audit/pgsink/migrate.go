package pgsink

import (
	"context"
	"embed"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/secrethub/secrethub/internal/pgmigrate"
)

// migrationFiles holds the audit schema's migrations (schema audit).
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// MigrationLockID is the key of the transaction-scoped advisory lock that
// Open holds while it migrates. It differs from the storage backend's
// lock. The value spells "SecHubAu" in ASCII.
const MigrationLockID int64 = 0x5365_6348_7562_4175

// migrate brings schema audit up to date.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return pgmigrate.Set{Schema: "audit", LockID: MigrationLockID, Files: migrationFiles}.Apply(ctx, pool)
}
