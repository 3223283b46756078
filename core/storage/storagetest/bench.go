package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/secrethub/secrethub/core/storage"
)

// Bench runs the storage benchmarks against the backends newBackend makes:
// Get and Put of a 1 KiB value, List of a folder with 100 children, and a
// Txn of 10 puts. Each sub-benchmark gets its own backend and reports
// allocations. Like Exercise, Bench closes the backends itself.
func Bench(b *testing.B, newBackend func(tb testing.TB) storage.Backend) {
	b.Helper()
	value := bytes.Repeat([]byte{0xa5}, 1<<10)
	benchmarks := []struct {
		name string
		run  func(b *testing.B, be storage.Backend)
	}{
		{"Get1KiB", func(b *testing.B, be storage.Backend) {
			ctx := b.Context()
			if err := be.Put(ctx, "bench/get", value); err != nil {
				b.Fatalf("Put: %v", err)
			}
			b.SetBytes(int64(len(value)))
			for b.Loop() {
				if _, err := be.Get(ctx, "bench/get"); err != nil {
					b.Fatalf("Get: %v", err)
				}
			}
		}},
		{"GetMissing", func(b *testing.B, be storage.Backend) {
			ctx := b.Context()
			for b.Loop() {
				if _, err := be.Get(ctx, "bench/missing"); !errors.Is(err, storage.ErrNotFound) {
					b.Fatalf("Get = %v, want ErrNotFound", err)
				}
			}
		}},
		{"Put1KiB", func(b *testing.B, be storage.Backend) {
			ctx := b.Context()
			b.SetBytes(int64(len(value)))
			i := 0
			for b.Loop() {
				// Cycle over a bounded set of keys so the store stays small.
				if err := be.Put(ctx, fmt.Sprintf("bench/put/%04d", i%1000), value); err != nil {
					b.Fatalf("Put: %v", err)
				}
				i++
			}
		}},
		{"List100", func(b *testing.B, be storage.Backend) {
			ctx := b.Context()
			ops := make([]storage.Op, 0, 200)
			for i := range 100 {
				ops = append(ops,
					storage.PutOp(fmt.Sprintf("bench/list/%03d", i), value[:16]),
					storage.PutOp(fmt.Sprintf("bench/list/dir%03d/leaf", i%10), value[:16]))
			}
			if err := be.Txn(ctx, ops); err != nil {
				b.Fatalf("Txn: %v", err)
			}
			for b.Loop() {
				if _, err := be.List(ctx, "bench/list/"); err != nil {
					b.Fatalf("List: %v", err)
				}
			}
		}},
		{"Txn10", func(b *testing.B, be storage.Backend) {
			ctx := b.Context()
			ops := make([]storage.Op, 10)
			for i := range ops {
				ops[i] = storage.PutOp(fmt.Sprintf("bench/txn/%d", i), value)
			}
			b.SetBytes(int64(len(ops) * len(value)))
			for b.Loop() {
				if err := be.Txn(ctx, ops); err != nil {
					b.Fatalf("Txn: %v", err)
				}
			}
		}},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			be := newBackend(b)
			b.Cleanup(func() {
				if err := be.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
					b.Errorf("Close: %v", err)
				}
			})
			b.ReportAllocs()
			bm.run(b, be)
		})
	}
}
