package barrier_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/secrethub/secrethub/core/barrier"
	"github.com/secrethub/secrethub/core/storage"
	"github.com/secrethub/secrethub/core/storage/inmem"
	"github.com/secrethub/secrethub/core/storage/postgres"
	"github.com/secrethub/secrethub/internal/pgtest"
)

// benchBackends are the storage backends the barrier benchmarks run over.
func benchBackends(b *testing.B) map[string]func(b *testing.B) storage.Backend {
	return map[string]func(b *testing.B) storage.Backend{
		"inmem": func(*testing.B) storage.Backend { return inmem.New() },
		"postgres": func(b *testing.B) storage.Backend {
			be, err := postgres.Open(context.Background(), pgtest.NewDatabase(b))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { be.Close() })
			return be
		},
	}
}

func unsealedOver(b *testing.B, be storage.Backend) *barrier.Barrier {
	ctx := context.Background()
	br := barrier.New(be, barrier.Options{})
	root := newRootKey(b)
	if err := br.Initialize(ctx, root, nil, nil); err != nil {
		b.Fatal(err)
	}
	if err := br.Unseal(ctx, root); err != nil {
		b.Fatal(err)
	}
	return br
}

// BenchmarkBarrier measures Get and Put of a 1 KiB value through the
// barrier (AES-256-GCM) over each backend.
func BenchmarkBarrier(b *testing.B) {
	ctx := context.Background()
	value := make([]byte, 1024)
	for name, open := range benchBackends(b) {
		b.Run(name+"/Put", func(b *testing.B) {
			br := unsealedOver(b, open(b))
			b.ReportAllocs()
			b.SetBytes(int64(len(value)))
			i := 0
			for b.Loop() {
				if err := br.Put(ctx, fmt.Sprintf("bench/%d", i%1000), value); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(name+"/Get", func(b *testing.B) {
			br := unsealedOver(b, open(b))
			for i := range 1000 {
				if err := br.Put(ctx, fmt.Sprintf("bench/%d", i), value); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(value)))
			i := 0
			for b.Loop() {
				if _, err := br.Get(ctx, fmt.Sprintf("bench/%d", i%1000)); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
