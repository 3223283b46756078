package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5"

	"github.com/secrethub/secrethub/internal/pgtest"
)

// TestDatabaseEngineVaultClientAndCLI drives the database engine of a dev
// server with the unmodified Vault Go client (config, role, creds) and
// with the CLI (db config with the password on stdin, db role with
// statements from a file, db creds, db rotate-root). The target server is
// the test PostgreSQL, logged in to as a dedicated superuser.
func TestDatabaseEngineVaultClientAndCLI(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t)
	super, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	rb := make([]byte, 4)
	_, _ = rand.Read(rb)
	suffix := hex.EncodeToString(rb)
	admin, adminPW := "sh_cli_admin_"+suffix, "pw-"+suffix+"-initial"
	if _, err := super.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN SUPERUSER PASSWORD '%s'`, pgx.Identifier{admin}.Sanitize(), adminPW)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rows, err := super.Query(ctx, "SELECT rolname FROM pg_roles WHERE rolname LIKE $1 OR rolname = $2", "v-c"+suffix+"%", admin)
		if err == nil {
			names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
			for _, n := range names {
				_, _ = super.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{n}.Sanitize())
			}
		}
		_ = super.Close(ctx)
	})
	u, _ := url.Parse(dbURL)
	connURL := fmt.Sprintf("postgresql://{{username}}:{{password}}@%s%s?%s", u.Host, u.Path, u.RawQuery)

	srv, vc := devServer(t)
	if err := vc.Sys().Mount("database", &vault.MountInput{Type: "database"}); err != nil {
		t.Fatalf("mount: %v", err)
	}
	l := vc.Logical()
	if _, err := l.Write("database/config/pg", map[string]any{
		"plugin_name": "postgresql-database-plugin", "connection_url": connURL,
		"username": admin, "password": adminPW, "allowed_roles": "*",
	}); err != nil {
		t.Fatalf("config: %v", err)
	}
	cfg, err := l.Read("database/config/pg")
	if err != nil || cfg == nil || cfg.Data["plugin_name"] != "postgresql-database-plugin" {
		t.Fatalf("config read: %+v, %v", cfg, err)
	}
	role := "c" + suffix
	if _, err := l.Write("database/roles/"+role, map[string]any{
		"db_name": "pg", "default_ttl": "1h", "max_ttl": "24h",
		"creation_statements": []string{`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`},
	}); err != nil {
		t.Fatalf("role: %v", err)
	}
	sec, err := l.Read("database/creds/" + role)
	if err != nil || sec == nil {
		t.Fatalf("creds: %v", err)
	}
	user, _ := sec.Data["username"].(string)
	pw, _ := sec.Data["password"].(string)
	if user == "" || pw == "" {
		t.Fatalf("creds data: %v", sec.Data)
	}
	if !strings.HasPrefix(sec.LeaseID, "database/creds/"+role+"/") || (!sec.Renewable || sec.LeaseDuration != 3600) {
		t.Fatalf("lease: id %q renewable %v duration %d", sec.LeaseID, sec.Renewable, sec.LeaseDuration)
	}
	lu := *u
	lu.User = url.UserPassword(user, pw)
	conn, err := pgx.Connect(ctx, lu.String())
	if err != nil {
		t.Fatalf("login with the issued credential: %v", err)
	}
	_ = conn.Close(ctx)
	// Revoking the lease through sys/leases drops the user.
	if err := vc.Sys().Revoke(sec.LeaseID); err != nil {
		t.Fatalf("revoke lease: %v", err)
	}
	var left int
	if err := super.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", user).Scan(&left); err != nil || left != 0 {
		t.Fatalf("after lease revoke: %d roles, %v", left, err)
	}
	// Bad input is a 400 naming the field.
	if _, err := l.Write("database/roles/bad", map[string]any{"db_name": "pg", "creation_statements": `CREATE ROLE "{{nam}}"`}); err == nil ||
		!strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "creation_statements") {
		t.Fatalf("bad template: %v", err)
	}
	// An unreachable server: a 400 naming it.
	if _, err := l.Write("database/config/down", map[string]any{
		"plugin_name": "postgresql", "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:1/x",
		"username": admin, "password": adminPW,
	}); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("unreachable config: %v", err)
	}

	// The CLI.
	env := []string{"SECRETHUB_ADDR=" + srv.addr, "SECRETHUB_TOKEN=shs.dev-root-token-for-tests"}
	if code, out, errOut := cli(t, env, adminPW+"\n", "db", "config", "pg2", "-connection-url", connURL, "-username", admin, "-password", "-", "-allowed-roles", role+"x"); code != 0 {
		t.Fatalf("db config: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := cli(t, env, "", "db", "config", "pg3", "-connection-url", connURL, "-username", admin, "-password", adminPW); code == 0 || !strings.Contains(errOut, "-password") {
		t.Fatalf("db config with the password on the command line: %d %s", code, errOut)
	}
	sqlFile := filepath.Join(t.TempDir(), "create.sql")
	if err := os.WriteFile(sqlFile, []byte(`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, env, "db", "role", role+"x", "-db-name", "pg2", "-creation-statements", "@"+sqlFile, "-default-ttl", "30m", "-max-ttl", "2h")
	out := mustCLI(t, env, "db", "creds", role+"x", "-format", "json")
	if !strings.Contains(out, `"username": "v-`+role+`x-`) && !strings.Contains(out, `"username":"v-`+role+`x-`) {
		t.Fatalf("db creds output: %s", out)
	}
	mustCLI(t, env, "db", "rotate-root", "pg2")
	var n int
	if err := super.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE starts_with(rolname, $1)", "v-"+role+"x-").Scan(&n); err != nil || n != 1 {
		t.Fatalf("roles made through the CLI: %d, %v", n, err)
	}
	if code, out, _ := cli(t, env, "", "db", "--help"); code != 0 || !strings.Contains(out, "creds") || !strings.Contains(out, "rotate-root") {
		t.Fatalf("db --help: %d %s", code, out)
	}
	if strings.Contains(srv.stderr.String(), adminPW) || strings.Contains(srv.stderr.String(), pw) {
		t.Fatal("a password in the server log")
	}
}
