// Package coretest runs a real core in-process for other packages' tests:
// its REST API and its mTLS agent listener on loopback, initialized with
// one unseal key, unsealed, and a client holding the root token.
package coretest

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/secrethub/secrethub/core"
	"github.com/secrethub/secrethub/core/audit"
	"github.com/secrethub/secrethub/core/client"
	corehttp "github.com/secrethub/secrethub/core/http"
	"github.com/secrethub/secrethub/core/storage/inmem"
)

// Env is a running core.
type Env struct {
	// Core is the core itself.
	Core *core.Core
	// RESTURL and AgentURL are the base URLs of the REST API and of the
	// agent listener (mTLS, certificates from the agent CA).
	RESTURL, AgentURL string
	// Root is a client of the REST API holding the root token.
	Root *client.Client
	// RootToken and UnsealKey came from the init.
	RootToken, UnsealKey string
}

// Start runs a core with cfg, stopped when the test ends. An empty
// Backend is inmem storage, no Logger discards the log, and no AuditSinks
// is an in-memory audit log.
func Start(t testing.TB, cfg core.Config) *Env {
	t.Helper()
	ctx := context.Background()
	if cfg.Backend == nil {
		cfg.Backend, cfg.StorageType = inmem.New(), "inmem"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.AuditSinks) == 0 {
		cfg.AuditSinks = []core.AuditSink{{Name: "memory", Sink: audit.NewMemory()}}
	}
	c, err := core.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs last: the listeners close before the
	// core seals and stops its background work (lease expiry, rotation).
	t.Cleanup(func() { c.Shutdown(context.Background()) })
	h := corehttp.New(c, corehttp.Options{Logger: cfg.Logger})
	rest := httptest.NewServer(h)
	t.Cleanup(rest.Close)
	agent := httptest.NewUnstartedServer(h)
	agent.TLS = c.AgentTLSConfig()
	agent.StartTLS()
	t.Cleanup(agent.Close)

	root, err := client.New(client.Config{Address: rest.URL})
	if err != nil {
		t.Fatal(err)
	}
	init, err := root.Init(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Unseal(ctx, init.Keys[0]); err != nil {
		t.Fatal(err)
	}
	root.SetToken(init.RootToken)
	return &Env{Core: c, RESTURL: rest.URL, AgentURL: agent.URL, Root: root, RootToken: init.RootToken, UnsealKey: init.Keys[0]}
}
