package cache_test

import (
	"errors"
	"testing"

	"github.com/secrethub/secrethub/core/storage"
	"github.com/secrethub/secrethub/core/storage/cache"
	"github.com/secrethub/secrethub/core/storage/inmem"
)

// noLocks hides the inner backend's TryLock.
type noLocks struct{ storage.Backend }

func TestTryLockForwards(t *testing.T) {
	inner := inmem.New()
	c, err := cache.New(inner, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	unlock, ok, err := c.TryLock(t.Context(), "x")
	if err != nil || !ok {
		t.Fatalf("TryLock through the cache = %v, %v; want the lock", ok, err)
	}
	if _, ok, _ := inner.TryLock(t.Context(), "x"); ok {
		t.Fatal("the inner backend's lock is free while the cache's holder has it: not forwarded")
	}
	unlock()
	if u, ok, _ := inner.TryLock(t.Context(), "x"); !ok {
		t.Fatal("unlock through the cache did not release the inner lock")
	} else {
		u()
	}

	plain, err := cache.New(noLocks{inmem.New()}, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := plain.TryLock(t.Context(), "x"); ok || !errors.Is(err, storage.ErrLockUnsupported) {
		t.Fatalf("TryLock over a backend without locks = %v, %v; want ErrLockUnsupported", ok, err)
	}
}
