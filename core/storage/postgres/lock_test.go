package postgres_test

import (
	"testing"
	"time"

	"github.com/secrethub/secrethub/internal/pgtest"
)

// Two backends on one database stand for two cores sharing it: their locks
// exclude each other, and unlock, or the end of the holder's session,
// releases.
func TestTryLockAcrossBackends(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	a, b := open(t, dbURL), open(t, dbURL)
	ctx := t.Context()

	unlockA, ok, err := a.TryLock(ctx, "secrethub-rotation")
	if err != nil || !ok {
		t.Fatalf("a.TryLock = %v, %v; want the lock", ok, err)
	}
	if _, ok, err := b.TryLock(ctx, "secrethub-rotation"); err != nil || ok {
		t.Fatalf("b.TryLock while a holds it = %v, %v; want refused", ok, err)
	}
	// A second holder on the same backend is refused too: each TryLock is
	// its own session.
	if _, ok, err := a.TryLock(ctx, "secrethub-rotation"); err != nil || ok {
		t.Fatalf("a.TryLock again = %v, %v; want refused", ok, err)
	}
	unlockOther, ok, err := b.TryLock(ctx, "other")
	if err != nil || !ok {
		t.Fatalf("b.TryLock(other) = %v, %v; want the lock: names are independent", ok, err)
	}
	unlockOther()

	unlockA()
	unlockB, ok, err := b.TryLock(ctx, "secrethub-rotation")
	if err != nil || !ok {
		t.Fatalf("b.TryLock after a's unlock = %v, %v; want the lock", ok, err)
	}
	defer unlockB()
	if _, ok, err := a.TryLock(ctx, "secrethub-rotation"); err != nil || ok {
		t.Fatalf("a.TryLock while b holds it = %v, %v; want refused", ok, err)
	}

	// The holder's session ends (its core died): the lock is free again.
	admin := connect(t, dbURL)
	var n int
	if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n); err != nil {
		t.Fatalf("terminate the holder: %v", err)
	}
	if n != 1 {
		t.Fatalf("terminated %d lock holders; want 1", n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		unlock, ok, err := a.TryLock(ctx, "secrethub-rotation")
		if err == nil && ok {
			unlock()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a.TryLock after the holder's session ended = %v, %v; want the lock", ok, err)
		}
		// pg_terminate_backend signals; the session ends shortly after.
		<-time.After(20 * time.Millisecond)
	}
}
