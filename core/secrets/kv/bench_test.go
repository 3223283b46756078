package kv_test

import (
	"context"
	"testing"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/secrets/kv"
	"github.com/secrethub/secrethub/core/storage/inmem"
)

func benchEngine(b *testing.B, layout kv.Layout) *kv.Engine {
	b.Helper()
	e, err := kv.New(inmem.New(), kv.Config{Layout: layout})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

func benchSecret() map[string]any {
	return map[string]any{"username": "app", "password": "s3cr3t-p4ssw0rd", "host": "db.internal", "port": "5432"}
}

// BenchmarkWrite writes new versions of one secret; past the first ten,
// every write also prunes the oldest version.
func BenchmarkWrite(b *testing.B) {
	for _, layout := range []kv.Layout{kv.LayoutSimple, kv.LayoutKVv2} {
		b.Run(string(layout), func(b *testing.B) {
			e := benchEngine(b, layout)
			path, data := "app/db", benchSecret()
			if layout == kv.LayoutKVv2 {
				path, data = "data/app/db", map[string]any{"data": data}
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.HandleRequest(ctx, &logical.Request{Operation: logical.OpUpdate, RelativePath: path, Data: data}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRead reads the latest version of a secret with ten versions.
func BenchmarkRead(b *testing.B) {
	for _, layout := range []kv.Layout{kv.LayoutSimple, kv.LayoutKVv2} {
		b.Run(string(layout), func(b *testing.B) {
			e := benchEngine(b, layout)
			path, data := "app/db", benchSecret()
			if layout == kv.LayoutKVv2 {
				path, data = "data/app/db", map[string]any{"data": data}
			}
			ctx := context.Background()
			for range 10 {
				if _, err := e.HandleRequest(ctx, &logical.Request{Operation: logical.OpUpdate, RelativePath: path, Data: data}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.HandleRequest(ctx, &logical.Request{Operation: logical.OpRead, RelativePath: path}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
