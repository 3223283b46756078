package inmem_test

import (
	"context"
	"errors"
	"testing"

	"github.com/secrethub/secrethub/core/storage"
	"github.com/secrethub/secrethub/core/storage/inmem"
	"github.com/secrethub/secrethub/core/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Exercise(t, func(t *testing.T) storage.Backend { return inmem.New() })
}

func TestZeroValue(t *testing.T) {
	storagetest.Exercise(t, func(t *testing.T) storage.Backend { return new(inmem.Backend) })
}

func BenchmarkBackend(b *testing.B) {
	storagetest.Bench(b, func(testing.TB) storage.Backend { return inmem.New() })
}

func TestFaults(t *testing.T) {
	errBoom := errors.New("boom")
	calls := map[inmem.Method]func(ctx context.Context, b *inmem.Backend) error{
		inmem.MethodGet: func(ctx context.Context, b *inmem.Backend) error {
			_, err := b.Get(ctx, "k")
			return err
		},
		inmem.MethodPut: func(ctx context.Context, b *inmem.Backend) error {
			return b.Put(ctx, "k", []byte("changed"))
		},
		inmem.MethodDelete: func(ctx context.Context, b *inmem.Backend) error {
			return b.Delete(ctx, "k")
		},
		inmem.MethodList: func(ctx context.Context, b *inmem.Backend) error {
			_, err := b.List(ctx, "")
			return err
		},
		inmem.MethodTxn: func(ctx context.Context, b *inmem.Backend) error {
			return b.Txn(ctx, []storage.Op{storage.PutOp("k", []byte("changed")), storage.PutOp("other", nil)})
		},
	}
	for m, call := range calls {
		t.Run(string(m), func(t *testing.T) {
			ctx := t.Context()
			b := inmem.New()
			if err := b.Put(ctx, "k", []byte("v")); err != nil {
				t.Fatal(err)
			}
			b.SetFault(m, errBoom)

			err := call(ctx, b)
			if !errors.Is(err, errBoom) {
				t.Fatalf("%s with a fault = %v, want it to wrap the fault", m, err)
			}
			if errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("%s with a fault = %v, which claims the key is missing", m, err)
			}
			// The other methods are unaffected, and the data is untouched.
			b.SetFault(m, nil)
			if got, err := b.Get(ctx, "k"); err != nil || string(got) != "v" {
				t.Fatalf("after the faulty %s, Get = %q, %v; want \"v\"", m, got, err)
			}
			if _, err := b.Get(ctx, "other"); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("after the faulty %s, Get(other) = %v, want ErrNotFound", m, err)
			}
			if err := call(ctx, b); err != nil {
				t.Fatalf("%s after clearing the fault: %v", m, err)
			}
		})
	}
}

func TestFaultOrder(t *testing.T) {
	errBoom := errors.New("boom")
	b := inmem.New()
	b.SetFault(inmem.MethodGet, errBoom)
	b.SetFault(inmem.MethodPut, errBoom)

	if _, err := b.Get(t.Context(), ""); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("Get of an invalid key with a fault = %v, want ErrInvalidKey", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.Put(ctx, "k", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context and a fault = %v, want context.Canceled", err)
	}

	b.ClearFaults()
	if err := b.Put(t.Context(), "k", nil); err != nil {
		t.Errorf("Put after ClearFaults: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b.SetFault(inmem.MethodGet, errBoom)
	if _, err := b.Get(t.Context(), "k"); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Get after Close with a fault = %v, want ErrClosed", err)
	}
}
