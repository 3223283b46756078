package postgres

import (
	"context"
	"embed"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/secrethub/secrethub/internal/pgmigrate"
)

// migrationFiles holds the storage schema's migrations (schema secrethub).
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// MigrationLockID is the key of the transaction-scoped advisory lock that
// Open holds while it migrates. Advisory locks are per database. The value
// spells "SecHubMg" in ASCII.
const MigrationLockID int64 = 0x5365_6348_7562_4d67

func migrationSet() pgmigrate.Set {
	return pgmigrate.Set{Schema: "secrethub", LockID: MigrationLockID, Files: migrationFiles}
}

// migrate brings schema secrethub up to date.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return migrationSet().Apply(ctx, pool)
}
