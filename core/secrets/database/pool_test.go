package database

import (
	"testing"

	"github.com/secrethub/secrethub/core/logical"
)

// TestConfigRewriteKeepsPool: writing a config again with the same
// connection settings (the operator does at every resync) keeps the open
// pool, so requests in flight are not cut off; new allowed_roles still
// apply at once. Other connection settings open a new pool.
func TestConfigRewriteKeepsPool(t *testing.T) {
	f := newFixture(t)
	f.writeConfig(map[string]any{"allowed_roles": "app"})
	f.must(logical.OpUpdate, "roles/app", map[string]any{"db_name": "pg"})
	f.must(logical.OpUpdate, "roles/other", map[string]any{"db_name": "pg"})
	f.issue("app")
	pool := func() any {
		f.e.mu.Lock()
		defer f.e.mu.Unlock()
		if t, ok := f.e.pools["pg"]; ok {
			return t.pool
		}
		return nil
	}
	first := pool()
	if first == nil {
		t.Fatal("no pool after issuing a credential")
	}
	if _, err := f.do(logical.OpRead, "creds/other", nil); err == nil {
		t.Fatal("creds/other issued while allowed_roles is app only")
	}

	f.writeConfig(map[string]any{"allowed_roles": "app,other"})
	if pool() != first {
		t.Fatal("rewriting the same connection settings replaced the pool")
	}
	f.issue("other") // the new allowed_roles apply with the kept pool

	f.writeConfig(map[string]any{"allowed_roles": "app,other", "max_open_connections": 3})
	if p := pool(); p == first {
		t.Fatal("new connection settings kept the old pool")
	}
	f.issue("app")
}
