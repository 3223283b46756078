package database

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/secrethub/secrethub/core/logical"
)

// TestIssueLoginRenewRevoke: the issued credential logs in and can work;
// renew moves VALID UNTIL; revoke ends its open session, keeps what it
// created (reassigned to the admin), drops the role; a second revoke
// succeeds.
func TestIssueLoginRenewRevoke(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.writeConfig(nil)
	role := f.prefix + "app"
	f.must(logical.OpUpdate, "roles/"+role, map[string]any{
		"db_name": "pg",
		"creation_statements": []any{
			`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
			`GRANT CREATE ON SCHEMA public TO "{{name}}";`,
		},
		"default_ttl": "1h", "max_ttl": "24h",
	})
	resp := f.must(logical.OpRead, "creds/"+role, nil)
	user, pw := resp.Data["username"].(string), resp.Data["password"].(string)
	f.remember(pw)
	s := resp.Secret
	if s == nil || s.TTL != time.Hour || s.MaxTTL != 24*time.Hour || !s.Renewable {
		t.Fatalf("Secret = %+v", s)
	}
	if s.InternalData["username"] != user || s.InternalData["role"] != role || s.InternalData["db_name"] != "pg" {
		t.Fatalf("InternalData = %v", s.InternalData)
	}
	if !strings.HasPrefix(user, "v-"+role+"-") || len(user) > 63 {
		t.Fatalf("username %q", user)
	}
	if len(pw) < 22 || strings.ContainsAny(pw, `'"\`) {
		t.Fatalf("password of %d bytes or with quotes", len(pw))
	}
	if !f.passwordIs(user, pw) {
		t.Fatal("the server does not hold the issued password")
	}
	var until time.Time
	if err := f.super.QueryRow(ctx, "SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1", user).Scan(&until); err != nil {
		t.Fatal(err)
	}
	if want := f.clock.Now().Add(time.Hour); !until.Equal(want) {
		t.Fatalf("VALID UNTIL %v, want %v", until, want)
	}

	// It logs in and creates a table.
	session, err := pgx.Connect(ctx, f.loginURL(user, pw))
	if err != nil {
		t.Fatalf("login with the issued credential: %v", err)
	}
	defer session.Close(context.Background())
	if _, err := session.Exec(ctx, "CREATE TABLE made_by_cred (id int)"); err != nil {
		t.Fatalf("create table as the credential: %v", err)
	}

	// Renew to a new expiry.
	lease := &logical.SecretLease{LeaseID: "database/creds/" + role + "/x", IssuePath: "creds/" + role,
		InternalData: s.InternalData, IssueTime: f.clock.Now(), ExpireTime: f.clock.Now().Add(3 * time.Hour)}
	if err := f.e.RenewSecret(ctx, lease); err != nil {
		f.checkErr(err)
		t.Fatalf("RenewSecret: %v", err)
	}
	if err := f.super.QueryRow(ctx, "SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1", user).Scan(&until); err != nil {
		t.Fatal(err)
	}
	if !until.Equal(lease.ExpireTime) {
		t.Fatalf("after renew VALID UNTIL %v, want %v", until, lease.ExpireTime)
	}

	// Revoke: the open session ends, the role is gone, its table stays.
	if err := f.e.RevokeSecret(ctx, lease); err != nil {
		f.checkErr(err)
		t.Fatalf("RevokeSecret: %v", err)
	}
	if _, err := session.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("the credential's open session still works after revoke")
	}
	if f.roleExists(user) {
		t.Fatal("role still exists after revoke")
	}
	if _, err := pgx.Connect(ctx, f.loginURL(user, pw)); err == nil {
		t.Fatal("login after revoke succeeded")
	}
	var owner string
	if err := f.super.QueryRow(ctx, "SELECT tableowner FROM pg_tables WHERE tablename = 'made_by_cred'").Scan(&owner); err != nil || owner != f.admin {
		t.Fatalf("table owner after revoke = %q, %v; want %s", owner, err, f.admin)
	}
	// Idempotent.
	if err := f.e.RevokeSecret(ctx, lease); err != nil {
		t.Fatalf("second RevokeSecret: %v", err)
	}
	// Renewing what is gone fails.
	if err := f.e.RenewSecret(ctx, lease); err == nil {
		t.Fatal("RenewSecret of a revoked credential succeeded")
	}
}

// TestDefaultTTLsAndCustomStatements: a role without TTLs gets the
// engine's; custom revocation statements run.
func TestDefaultTTLsAndCustomStatements(t *testing.T) {
	f := newFixture(t)
	f.writeConfig(nil)
	role := f.prefix + "c"
	f.must(logical.OpUpdate, "roles/"+role, map[string]any{
		"db_name":               "pg",
		"revocation_statements": `DROP ROLE IF EXISTS "{{name}}";`,
		"renew_statements":      []any{`ALTER ROLE {{name}} VALID UNTIL {{expiration}}`},
	})
	user, _, l := f.issue(role)
	resp := f.must(logical.OpRead, "roles/"+role, nil)
	if resp.Data["default_ttl"] != int64(0) || resp.Data["db_name"] != "pg" {
		t.Fatalf("role read: %v", resp.Data)
	}
	if got := l.ExpireTime.Sub(l.IssueTime); got != DefaultTTL {
		t.Fatalf("TTL %v, want %v", got, DefaultTTL)
	}
	l.ExpireTime = l.ExpireTime.Add(time.Hour)
	if err := f.e.RenewSecret(context.Background(), l); err != nil {
		t.Fatalf("renew with bare placeholders: %v", err)
	}
	if err := f.e.RevokeSecret(context.Background(), l); err != nil || f.roleExists(user) {
		t.Fatalf("custom revoke: %v, exists %v", err, f.roleExists(user))
	}
}

// TestBadCreationSQL: a failing statement gives a 400 naming the field,
// the config, the host and PostgreSQL's reason, never the password, and
// leaves no role behind, even when an earlier statement created it.
func TestBadCreationSQL(t *testing.T) {
	for name, tc := range map[string]struct {
		stmts    []any
		rollback []any
		want     string // in the message
	}{
		"syntax error after create": {
			stmts: []any{`CREATE ROLE "{{name}}" LOGIN PASSWORD '{{password}}'; SELEC 1;`},
			want:  "SQLSTATE 42601",
		},
		"error echoing the password": {
			stmts: []any{`CREATE ROLE "{{name}}" LOGIN PASSWORD '{{password}}';`, `SELECT '{{password}}'::int`},
			want:  "SQLSTATE 22P02",
		},
		"with rollback statements": {
			stmts:    []any{`CREATE ROLE "{{name}}" LOGIN PASSWORD '{{password}}';`, `GRANT nosuchrole TO "{{name}}"`},
			rollback: []any{`DROP ROLE IF EXISTS "{{name}}"`},
			want:     "nosuchrole",
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.writeConfig(nil)
			role := f.prefix + "bad"
			data := map[string]any{"db_name": "pg", "creation_statements": tc.stmts}
			if tc.rollback != nil {
				data["rollback_statements"] = tc.rollback
			}
			f.must(logical.OpUpdate, "roles/"+role, data)
			_, err := f.do(logical.OpRead, "creds/"+role, nil)
			if err == nil {
				t.Fatal("creds with failing SQL succeeded")
			}
			if got := invalidField(t, err); got != "creation_statements" {
				t.Fatalf("field %q: %v", got, err)
			}
			msg := err.Error()
			for _, w := range []string{`"pg"`, "127.0.0.1:", tc.want} {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not name %q", msg, w)
				}
			}
			if !errors.Is(err, ErrStatement) {
				t.Errorf("error does not wrap ErrStatement")
			}
			if tc.want == "SQLSTATE 22P02" && !strings.Contains(msg, "[redacted]") {
				t.Errorf("error %q: the echoed password was not scrubbed", msg)
			}
			if n := f.rolesWithPrefix("v-" + role); n != 0 {
				t.Fatalf("%d roles left behind", n)
			}
		})
	}
}

// TestUnreachableTarget: a config whose server does not answer is refused
// at write naming the host; stored without verification, creds fail
// naming it; revocation fails while it is down and completes once the
// config points at a working server again.
func TestUnreachableTarget(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	down := strings.Replace(f.connURL, f.hostPort(), "127.0.0.1:1", 1)
	_, err := f.do(logical.OpUpdate, "config/down", map[string]any{
		"plugin_name": "postgresql", "connection_url": down, "username": f.admin, "password": f.adminPW, "allowed_roles": "*",
	})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("write of an unreachable config: %v", err)
	}
	if invalidField(t, err) != "connection_url" {
		t.Fatalf("field: %v", err)
	}
	if _, err := f.do(logical.OpRead, "config/down", nil); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("a config that failed verification was stored: %v", err)
	}

	// A credential issued while the server is up.
	f.writeConfig(nil)
	role := f.prefix + "r"
	f.must(logical.OpUpdate, "roles/"+role, map[string]any{"db_name": "pg"})
	user, _, l := f.issue(role)

	// The server "goes down": the config now points at a closed port.
	f.must(logical.OpUpdate, "config/pg", map[string]any{"connection_url": down, "verify_connection": false})
	_, err = f.do(logical.OpRead, "creds/"+role, nil)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || !errors.Is(err, ErrUnreachable) || invalidField(t, err) != "db_name" {
		t.Fatalf("creds against a down server: %v", err)
	}
	err = f.e.RevokeSecret(ctx, l)
	f.checkErr(err)
	if err == nil || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("revoke against a down server: %v", err)
	}
	if !f.roleExists(user) {
		t.Fatal("role gone though the server was down")
	}
	// Back up: the retry succeeds. The password was kept across updates.
	f.must(logical.OpUpdate, "config/pg", map[string]any{"connection_url": f.connURL, "verify_connection": true})
	if err := f.e.RevokeSecret(ctx, l); err != nil {
		t.Fatalf("revoke once the server is back: %v", err)
	}
	if f.roleExists(user) {
		t.Fatal("role still exists")
	}
}

// hostPort is the test server's host:port.
func (f *fixture) hostPort() string {
	s := strings.TrimPrefix(f.dbURL, "postgres://")
	s = s[strings.Index(s, "@")+1:]
	return s[:strings.Index(s, "/")]
}

// TestConfigReadHidesPassword: the stored password is never returned.
func TestConfigReadHidesPassword(t *testing.T) {
	f := newFixture(t)
	f.writeConfig(map[string]any{"allowed_roles": []any{"a", "b"}, "max_open_connections": 3})
	resp := f.must(logical.OpRead, "config/pg", nil)
	details, _ := resp.Data["connection_details"].(map[string]any)
	if resp.Data["plugin_name"] != PluginPostgres || details["username"] != f.admin || details["max_open_connections"] != 3 {
		t.Fatalf("config read: %v", resp.Data)
	}
	if _, ok := details["password"]; ok {
		t.Fatal("password in connection_details")
	}
	for _, v := range resp.Data {
		if strings.Contains(strings.ReplaceAll(strings.ReplaceAll(toString(v), "\n", ""), " ", ""), f.adminPW) {
			t.Fatal("admin password in the config read")
		}
	}
	list := f.must(logical.OpList, "config", nil)
	if keys, _ := list.Data["keys"].([]string); len(keys) != 1 || keys[0] != "pg" {
		t.Fatalf("list: %v", list.Data)
	}
	// Not in allowed_roles.
	f.must(logical.OpUpdate, "roles/c", map[string]any{"db_name": "pg"})
	if _, err := f.do(logical.OpRead, "creds/c", nil); err == nil || invalidField(t, err) != "name" {
		t.Fatalf("creds for a role not in allowed_roles: %v", err)
	}
	f.must(logical.OpDelete, "config/pg", nil)
	if _, err := f.do(logical.OpRead, "creds/c", nil); err == nil || invalidField(t, err) != "db_name" {
		t.Fatalf("creds after config delete: %v", err)
	}
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		var sb strings.Builder
		for k, e := range x {
			sb.WriteString(k + "=" + toString(e))
		}
		return sb.String()
	}
	return ""
}

// TestRotateRoot: the admin's password changes on the server and in the
// config; the old one no longer matches; the engine keeps working.
func TestRotateRoot(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.writeConfig(nil)
	if !f.passwordIs(f.admin, f.adminPW) {
		t.Fatal("fixture: admin password not set")
	}
	f.must(logical.OpUpdate, "rotate-root/pg", nil)
	c, err := f.e.readConfigEntry(ctx, "pg")
	if err != nil {
		t.Fatal(err)
	}
	f.remember(c.Password)
	if c.Password == f.adminPW || len(c.Password) < 22 {
		t.Fatal("the stored admin password did not change")
	}
	if f.passwordIs(f.admin, f.adminPW) {
		t.Fatal("the old admin password still matches")
	}
	if !f.passwordIs(f.admin, c.Password) {
		t.Fatal("the server does not hold the new admin password")
	}
	role := f.prefix + "after"
	f.must(logical.OpUpdate, "roles/"+role, map[string]any{"db_name": "pg"})
	f.issue(role)
	if _, err := f.do(logical.OpUpdate, "rotate-root/nope", nil); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("rotate-root of a missing config: %v", err)
	}
	f.must(logical.OpUpdate, "reset/pg", nil)
	f.issue(role)
}

// TestStaticRole: creating a static role rotates its password at once;
// rotate-role rotates again and keeps the previous password readable for
// the grace period; DueStaticRoles follows rotation_period.
func TestStaticRole(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.writeConfig(nil)
	user := "s_" + f.prefix
	if _, err := f.super.Exec(ctx, "CREATE ROLE "+pgx.Identifier{user}.Sanitize()+" LOGIN PASSWORD 'initial-pw'"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.do(logical.OpUpdate, "static-roles/ghost", map[string]any{"db_name": "pg", "username": "no_such_user_" + f.prefix, "rotation_period": "1h"}); err == nil || invalidField(t, err) != "username" {
		t.Fatalf("static role for a missing user: %v", err)
	}
	if _, err := f.do(logical.OpRead, "static-roles/ghost", nil); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("failed static role stored: %v", err)
	}
	f.must(logical.OpUpdate, "static-roles/s", map[string]any{"db_name": "pg", "username": user, "rotation_period": "1h", "grace_period": "10m"})
	creds := f.must(logical.OpRead, "static-creds/s", nil).Data
	pw1, _ := creds["password"].(string)
	f.remember(pw1)
	if pw1 == "" || creds["username"] != user || creds["rotation_period"] != int64(3600) || creds["ttl"] != int64(3600) {
		t.Fatalf("static-creds: %v", creds)
	}
	if _, ok := creds["previous_password"]; ok {
		t.Fatal("previous_password after the first rotation")
	}
	if !f.passwordIs(user, pw1) || f.passwordIs(user, "initial-pw") {
		t.Fatal("create did not rotate the password")
	}
	if due, err := f.e.DueStaticRoles(ctx, f.clock.Now().Add(59*time.Minute)); err != nil || len(due) != 0 {
		t.Fatalf("due before the period: %v, %v", due, err)
	}
	if due, err := f.e.DueStaticRoles(ctx, f.clock.Now().Add(time.Hour)); err != nil || len(due) != 1 || due[0] != "s" {
		t.Fatalf("due at the period: %v, %v", due, err)
	}

	f.clock.Add(time.Minute)
	f.must(logical.OpUpdate, "rotate-role/s", nil)
	creds = f.must(logical.OpRead, "static-creds/s", nil).Data
	pw2, _ := creds["password"].(string)
	f.remember(pw2)
	if pw2 == pw1 || !f.passwordIs(user, pw2) || f.passwordIs(user, pw1) {
		t.Fatal("rotate-role did not rotate")
	}
	if creds["previous_password"] != pw1 {
		t.Fatal("previous password not readable during the grace period")
	}
	f.clock.Add(10 * time.Minute)
	creds = f.must(logical.OpRead, "static-creds/s", nil).Data
	if _, ok := creds["previous_password"]; ok {
		t.Fatal("previous password readable after the grace period")
	}
	if err := f.e.RotateStaticRole(ctx, "missing"); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("rotate a missing static role: %v", err)
	}
	if _, err := f.do(logical.OpUpdate, "static-roles/s", map[string]any{"username": "other"}); err == nil || invalidField(t, err) != "username" {
		t.Fatalf("changing the username: %v", err)
	}
	if resp := f.must(logical.OpRead, "static-roles/s", nil); resp.Data["username"] != user || resp.Data["password"] != nil {
		t.Fatalf("static role read: %v", resp.Data)
	}
	f.must(logical.OpDelete, "static-roles/s", nil)
}
