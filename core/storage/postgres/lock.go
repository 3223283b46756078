package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/secrethub/secrethub/core/storage"
)

var _ storage.Locker = (*Backend)(nil)

// unlockTimeout bounds the release of an advisory lock; past it the
// session is closed, which releases the lock too.
const unlockTimeout = 10 * time.Second

// lockKey maps a lock name to the bigint key of a Postgres advisory lock.
// The name is namespaced so SecretHub's keys stay apart from those of other
// software sharing the database (a collision would only make both wait).
func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("secrethub/lock/" + name))
	return int64(h.Sum64())
}

// TryLock takes the session-level advisory lock for name
// (pg_try_advisory_lock) on a connection taken from the pool and kept out
// of it until unlock, so every core sharing the database sees the lock.
// unlock releases the lock and returns the connection; if the release
// fails the connection is closed, which ends the session and so releases
// the lock as well. If the connection breaks while held, Postgres releases
// the lock and the holder is not told: work under it must be safe to
// repeat. Call unlock before Close: Close waits for held connections.
func (b *Backend) TryLock(ctx context.Context, name string) (func(), bool, error) {
	if err := b.checkOpen(ctx); err != nil {
		return nil, false, fmt.Errorf("postgres: trylock %q: %w", name, err)
	}
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("postgres: trylock %q: acquire a connection: %w", name, b.mapErr(err))
	}
	key := lockKey(name)
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
		// The lock may or may not have been taken: end the session so it
		// is not.
		conn.Conn().Close(context.Background())
		conn.Release()
		return nil, false, fmt.Errorf("postgres: trylock %q: %w", name, b.mapErr(err))
	}
	if !ok {
		conn.Release()
		return nil, false, nil
	}
	var once sync.Once
	unlock := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
			defer cancel()
			var released bool
			if err := conn.QueryRow(ctx, `SELECT pg_advisory_unlock($1)`, key).Scan(&released); err != nil || !released {
				conn.Conn().Close(ctx)
			}
			conn.Release()
		})
	}
	return unlock, true, nil
}
