package storage_test

import (
	"context"
	"sync"
	"testing"

	"github.com/secrethub/secrethub/core/storage"
)

func TestLocalLocker(t *testing.T) {
	var l storage.LocalLocker
	ctx := t.Context()
	unlock, ok, err := l.TryLock(ctx, "a")
	if err != nil || !ok {
		t.Fatalf("first TryLock(a) = %v, %v; want the lock", ok, err)
	}
	if _, ok, err := l.TryLock(ctx, "a"); err != nil || ok {
		t.Fatalf("second TryLock(a) = %v, %v; want refused", ok, err)
	}
	unlockB, ok, err := l.TryLock(ctx, "b")
	if err != nil || !ok {
		t.Fatalf("TryLock(b) while a is held = %v, %v; want the lock", ok, err)
	}
	unlockB()
	unlock()
	unlock() // a second call does nothing
	unlock2, ok, err := l.TryLock(ctx, "a")
	if err != nil || !ok {
		t.Fatalf("TryLock(a) after unlock = %v, %v; want the lock", ok, err)
	}
	unlock() // must not release the new holder's lock
	if _, ok, _ := l.TryLock(ctx, "a"); ok {
		t.Fatal("a stale unlock released the next holder's lock")
	}
	unlock2()

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := l.TryLock(cancelled, "c"); err == nil {
		t.Fatal("TryLock with a cancelled context succeeded")
	}
}

func TestLocalLockerExcludes(t *testing.T) {
	var l storage.LocalLocker
	var mu sync.Mutex
	holders, maxHolders := 0, 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				unlock, ok, err := l.TryLock(t.Context(), "x")
				if err != nil {
					t.Error(err)
					return
				}
				if !ok {
					continue
				}
				mu.Lock()
				holders++
				maxHolders = max(maxHolders, holders)
				mu.Unlock()
				mu.Lock()
				holders--
				mu.Unlock()
				unlock()
			}
		}()
	}
	wg.Wait()
	if maxHolders != 1 {
		t.Fatalf("at most %d holders at once; want 1", maxHolders)
	}
}
