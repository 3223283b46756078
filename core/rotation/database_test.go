package rotation_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/mount"
	"github.com/secrethub/secrethub/core/rotation"
	"github.com/secrethub/secrethub/core/secrets/database"
	"github.com/secrethub/secrethub/internal/pgtest"
)

// The scheduler rotates a database static role through the real database
// engine on a real PostgreSQL, under its lock: the role's password changes
// in the database when due, on one node only.
func TestDatabaseStaticRoleRotatedUnderLock(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t)
	super, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	admin, user := "rot_admin_"+hex.EncodeToString(suffix), "rot_static_"+hex.EncodeToString(suffix)
	adminPW := "adminpw-" + hex.EncodeToString(suffix)
	for _, stmt := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN SUPERUSER PASSWORD '%s'", admin, adminPW),
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD 'initial-pw'", user),
	} {
		if _, err := super.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	eng, err := database.New(mount.NewView(e.store, "logical/database/"), database.Config{Now: e.clock.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = eng.Close()
		for _, r := range []string{user, admin} {
			if _, err := super.Exec(context.Background(), "DROP ROLE IF EXISTS "+r); err != nil {
				t.Errorf("drop role %s: %v", r, err)
			}
		}
		_ = super.Close(context.Background())
	})
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	do := func(op logical.Operation, path string, data map[string]any) *logical.Response {
		t.Helper()
		resp, err := eng.HandleRequest(ctx, &logical.Request{Operation: op, Path: "database/" + path, MountPath: "database/", RelativePath: path, Data: data})
		if err != nil {
			t.Fatalf("%s %s: %v", op, path, err)
		}
		return resp
	}
	do(logical.OpUpdate, "config/pg", map[string]any{
		"plugin_name":    "postgresql-database-plugin",
		"connection_url": fmt.Sprintf("postgresql://{{username}}:{{password}}@%s%s?%s", u.Host, u.Path, u.RawQuery),
		"username":       admin, "password": adminPW, "allowed_roles": "*",
	})
	do(logical.OpUpdate, "static-roles/app", map[string]any{"db_name": "pg", "username": user, "rotation_period": "1h"})
	password := func() string {
		pw, _ := do(logical.OpRead, "static-creds/app", nil).Data["password"].(string)
		return pw
	}
	pw1 := password()
	verifier := func() string {
		var v *string
		if err := super.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", user).Scan(&v); err != nil || v == nil {
			t.Fatalf("read the verifier of %s: %v", user, err)
		}
		return *v
	}
	verifier1 := verifier()

	cfg := rotation.Config{
		PollInterval: 10 * time.Second,
		Periodic:     func() map[string]rotation.Periodic { return map[string]rotation.Periodic{"database/": eng} },
	}
	a, b := e.scheduler(cfg), e.scheduler(cfg)
	if err := a.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	if password() != pw1 {
		t.Fatal("rotated before the period")
	}

	e.clock.Advance(time.Hour)
	unlock, ok, err := e.store.TryLock(ctx, rotation.LockName)
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	if err := b.RunDue(ctx); !errors.Is(err, rotation.ErrBusy) {
		t.Fatalf("RunDue while another node holds the lock: %v; want ErrBusy", err)
	}
	if password() != pw1 {
		t.Fatal("rotated without the lock")
	}
	unlock()

	if err := b.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	pw2 := password()
	if pw2 == pw1 {
		t.Fatal("due static role not rotated")
	}
	// The test server trusts loopback logins, so a login proves nothing:
	// the stored verifier shows the password changed in the database.
	if verifier() == verifier1 {
		t.Fatal("the role's password verifier did not change in PostgreSQL")
	}
}
