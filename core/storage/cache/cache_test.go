package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/secrethub/secrethub/core/storage"
	"github.com/secrethub/secrethub/core/storage/cache"
	"github.com/secrethub/secrethub/core/storage/inmem"
	"github.com/secrethub/secrethub/core/storage/postgres"
	"github.com/secrethub/secrethub/core/storage/storagetest"
	"github.com/secrethub/secrethub/internal/pgtest"
)

func TestConformance(t *testing.T) {
	storagetest.Exercise(t, func(t *testing.T) storage.Backend {
		c, err := cache.New(inmem.New(), cache.Options{Entries: 64, MaxValueBytes: 512})
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}

func TestConformanceOverPostgres(t *testing.T) {
	storagetest.Exercise(t, func(t *testing.T) storage.Backend {
		pg, err := postgres.Open(context.Background(), pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		c, err := cache.New(pg, cache.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}

// TestReadsNeverGoStale races readers that fill the cache against a
// writer: after the writer's last Put, every read sees it.
func TestReadsNeverGoStale(t *testing.T) {
	ctx := context.Background()
	c, err := cache.New(inmem.New(), cache.Options{Entries: 4})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = c.Get(ctx, fmt.Sprintf("k%d", (r+i)%6)) // six keys, four slots: constant eviction
			}
		}()
	}
	for i := range 2000 {
		if err := c.Put(ctx, fmt.Sprintf("k%d", i%6), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	for k := range 6 {
		got, err := c.Get(ctx, fmt.Sprintf("k%d", k))
		last := 1999 - (1999-k)%6 // the last i with i%6 == k
		want := fmt.Sprint(last)
		if err != nil || string(got) != want {
			t.Fatalf("k%d = %q, %v; want %q", k, got, err, want)
		}
	}
}

// TestFailedWritesForgetTheKey: when the backend fails a write, the cache
// does not keep answering with what it had.
func TestFailedWritesForgetTheKey(t *testing.T) {
	ctx := context.Background()
	mem := inmem.New()
	c, _ := cache.New(mem, cache.Options{})
	_ = c.Put(ctx, "k", []byte("v1"))
	boom := errors.New("disk full")
	mem.SetFault(inmem.MethodPut, boom)
	if err := c.Put(ctx, "k", []byte("v2")); !errors.Is(err, boom) {
		t.Fatalf("Put: %v", err)
	}
	mem.SetFault(inmem.MethodPut, nil)
	mem.SetFault(inmem.MethodGet, boom)
	if _, err := c.Get(ctx, "k"); !errors.Is(err, boom) {
		t.Fatalf("Get after a failed Put answered from the cache: %v", err)
	}
	mem.SetFault(inmem.MethodGet, nil)
	// A cached value is served without the backend.
	if got, err := c.Get(ctx, "k"); err != nil || string(got) != "v1" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	mem.SetFault(inmem.MethodGet, boom)
	if got, err := c.Get(ctx, "k"); err != nil || string(got) != "v1" {
		t.Fatalf("cached Get = %q, %v", got, err)
	}
	mem.SetFault(inmem.MethodTxn, boom)
	if err := c.Txn(ctx, []storage.Op{storage.DeleteOp("k")}); !errors.Is(err, boom) {
		t.Fatalf("Txn: %v", err)
	}
	if _, err := c.Get(ctx, "k"); !errors.Is(err, boom) {
		t.Fatalf("Get after a failed Txn answered from the cache: %v", err)
	}
}

func BenchmarkCache(b *testing.B) {
	storagetest.Bench(b, func(b testing.TB) storage.Backend {
		c, err := cache.New(inmem.New(), cache.Options{})
		if err != nil {
			b.Fatal(err)
		}
		return c
	})
}
