package main

// Tests of `secrethub lease`, run in-process against a real core over
// in-memory storage with an in-test dynamic engine mounted at dyn/ (the
// dev server has no engine that issues leased credentials without an
// external target). The engine's target can be taken down.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core"
	"github.com/secrethub/secrethub/core/client"
	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/internal/coretest"
)

// leaseTarget is the in-test engine's set of live users.
type leaseTarget struct {
	mu    sync.Mutex
	users map[string]bool
	down  bool
	n     int
}

func (t *leaseTarget) has(u string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.users[u]
}

type leaseEngine struct{ t *leaseTarget }

func (e *leaseEngine) HandleRequest(_ context.Context, req *logical.Request) (*logical.Response, error) {
	if !strings.HasPrefix(req.RelativePath, "creds/") {
		return nil, logical.ErrUnsupportedPath
	}
	e.t.mu.Lock()
	defer e.t.mu.Unlock()
	e.t.n++
	u := fmt.Sprintf("user-%d", e.t.n)
	e.t.users[u] = true
	return &logical.Response{Data: map[string]any{"username": u},
		Secret: &logical.Secret{TTL: time.Hour, MaxTTL: 2 * time.Hour, Renewable: true, InternalData: map[string]any{"user": u}}}, nil
}

func (e *leaseEngine) RevokeSecret(_ context.Context, l *logical.SecretLease) error {
	e.t.mu.Lock()
	defer e.t.mu.Unlock()
	if e.t.down {
		return errors.New("target 127.0.0.1:1 unreachable")
	}
	delete(e.t.users, l.InternalData["user"].(string))
	return nil
}

type leaseCLI struct {
	t      *testing.T
	addr   string
	target *leaseTarget
	c      *client.Client
}

func newLeaseCLI(t *testing.T) *leaseCLI {
	t.Helper()
	target := &leaseTarget{users: map[string]bool{}}
	// A clock that stands still, so TTLs print exactly.
	now := time.Now().UTC()
	env := coretest.Start(t, core.Config{
		Now: func() time.Time { return now },
		ExtraEngines: map[string]core.EngineFactory{"leasetest": func(logical.Storage) (logical.Engine, error) {
			return &leaseEngine{t: target}, nil
		}}})
	ctx := context.Background()
	cl := env.Root
	if _, err := cl.Write(ctx, "sys/mounts/dyn", map[string]any{"type": "leasetest"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envToken, env.RootToken)
	t.Setenv(envCACert, "")
	t.Setenv("SECRETHUB_TOKEN_FILE", filepath.Join(t.TempDir(), "token"))
	return &leaseCLI{t: t, addr: env.RESTURL, target: target, c: cl}
}

// run runs `secrethub ARGS -address ADDR` in-process, as main does; a
// failure's message is the error.
func (l *leaseCLI) run(args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), append(args, "-address", l.addr), strings.NewReader(""), &out, &errOut)
	if code != 0 {
		return out.String(), errOut.String(), fmt.Errorf("exit %d: %s", code, errOut.String())
	}
	return out.String(), errOut.String(), nil
}

func (l *leaseCLI) must(args ...string) string {
	l.t.Helper()
	out, errOut, err := l.run(args...)
	if err != nil {
		l.t.Fatalf("secrethub %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// creds issues a credential and returns its user and lease ID.
func (l *leaseCLI) creds() (string, string) {
	l.t.Helper()
	resp, err := l.c.Read(context.Background(), "dyn/creds/app", nil)
	if err != nil {
		l.t.Fatal(err)
	}
	return resp.Data["username"].(string), resp.LeaseID
}

func TestLeaseCLI(t *testing.T) {
	l := newLeaseCLI(t)
	if out := l.must("lease", "list"); !strings.Contains(out, "No leases.") {
		t.Errorf("empty list: %q", out)
	}
	u1, id1 := l.creds()
	u2, id2 := l.creds()

	out := l.must("lease", "list")
	for _, want := range []string{"ID", "EXPIRES", id1, id2, "1h0m0s", "active"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	var listed []map[string]any
	if err := json.Unmarshal([]byte(l.must("lease", "list", "-prefix", id1, "-format", "json")), &listed); err != nil || len(listed) != 1 || listed[0]["id"] != id1 {
		t.Errorf("list -prefix -format json: %v %v", listed, err)
	}

	if rows := tableRows(l.must("lease", "lookup", id1)); rows["id"] != id1 || rows["renewable"] != "true" || rows["ttl"] != "3600" {
		t.Errorf("lookup: %v", rows)
	}
	if rows := tableRows(l.must("lease", "renew", "-increment", "30m", id1)); rows["lease_id"] != id1 || rows["lease_duration"] != "30m0s" || rows["lease_renewable"] != "true" {
		t.Errorf("renew: %v", rows)
	}
	var renewed map[string]any
	if err := json.Unmarshal([]byte(l.must("lease", "renew", id1, "-format", "json")), &renewed); err != nil || renewed["lease_duration"] != float64(3600) {
		t.Errorf("renew -format json: %v %v", renewed, err)
	}

	if out := l.must("lease", "revoke", id1); !strings.Contains(out, "Revoked lease: "+id1) || l.target.has(u1) {
		t.Errorf("revoke: %q, user still there: %v", out, l.target.has(u1))
	}
	if _, _, err := l.run("lease", "lookup", id1); err == nil || !strings.Contains(err.Error(), "invalid lease") {
		t.Errorf("lookup of a revoked lease: %v", err)
	}

	// A target that is down: the error names the lease and the reason,
	// and the list shows the lease under revocation.
	l.target.mu.Lock()
	l.target.down = true
	l.target.mu.Unlock()
	if _, _, err := l.run("lease", "revoke", id2); err == nil || !strings.Contains(err.Error(), id2) || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("revoke while down: %v", err)
	}
	if out := l.must("lease", "list"); !strings.Contains(out, "revoking (1 failed attempts") {
		t.Errorf("list while revoking:\n%s", out)
	}
	l.target.mu.Lock()
	l.target.down = false
	l.target.mu.Unlock()

	u3, _ := l.creds()
	if out := l.must("lease", "revoke", "-prefix", "dyn/creds"); !strings.Contains(out, "Revoked the leases below dyn/creds") {
		t.Errorf("revoke -prefix: %q", out)
	}
	for _, u := range []string{u2, u3} {
		if l.target.has(u) {
			t.Errorf("user %s outlived revoke -prefix", u)
		}
	}

	for _, bad := range [][]string{
		{"lease", "revoke"},
		{"lease", "revoke", "x", "-prefix", "y"},
		{"lease", "revoke", "-force", "x"},
		{"lease", "lookup"},
	} {
		if _, _, err := l.run(bad...); err == nil {
			t.Errorf("secrethub %s succeeded", strings.Join(bad, " "))
		}
	}
	if out := l.must("lease", "--help"); !strings.Contains(out, "sys/leases") || !strings.Contains(out, "revoke") {
		t.Errorf("help: %q", out)
	}
}
