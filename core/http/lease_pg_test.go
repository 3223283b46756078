package http_test

// Leases of the real PostgreSQL engine, end to end: the core stores its
// data in PostgreSQL (internal/pgtest) and the database engine issues
// roles in another PostgreSQL database of the same test server.

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/secrethub/secrethub/core/storage/postgres"
	"github.com/secrethub/secrethub/internal/pgtest"
)

func TestLeasePostgresEndToEnd(t *testing.T) {
	ctx := context.Background()
	backend, err := postgres.Open(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backend.Close() })
	e := newLeaseEnvOn(t, backend)

	dbURL := pgtest.NewDatabase(t)
	super, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	suffix := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffffff)
	admin, adminPW := "sh_lease_admin_"+suffix, "pw-"+suffix
	if _, err := super.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN SUPERUSER PASSWORD '%s'`, pgx.Identifier{admin}.Sanitize(), adminPW)); err != nil {
		t.Fatal(err)
	}
	role := "l" + suffix
	t.Cleanup(func() {
		rows, err := super.Query(ctx, "SELECT rolname FROM pg_roles WHERE rolname LIKE $1 OR rolname = $2", "v-"+role+"%", admin)
		if err == nil {
			names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
			for _, n := range names {
				_, _ = super.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{n}.Sanitize())
			}
		}
		_ = super.Close(ctx)
	})
	roleExists := func(name string) bool {
		t.Helper()
		var n int
		if err := super.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	waitGone := func(name string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for roleExists(name) {
			if time.Now().After(deadline) {
				t.Fatalf("role %s was not dropped", name)
			}
			<-time.After(5 * time.Millisecond)
		}
	}
	u, _ := url.Parse(dbURL)
	connURL := fmt.Sprintf("postgresql://{{username}}:{{password}}@%s%s?%s", u.Host, u.Path, u.RawQuery)

	e.must(204, "PUT", "/v1/sys/mounts/database", `{"type":"database"}`, e.root)
	e.must(204, "PUT", "/v1/database/config/pg", fmt.Sprintf(`{"plugin_name":"postgresql-database-plugin","connection_url":%q,"username":%q,"password":%q,"allowed_roles":"*"}`, connURL, admin, adminPW), e.root)
	e.must(204, "PUT", "/v1/database/roles/"+role, `{"db_name":"pg","default_ttl":"1h","max_ttl":"24h","creation_statements":["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"]}`, e.root)

	creds := func(tok string) (string, string) {
		t.Helper()
		m := e.must(200, "GET", "/v1/database/creds/"+role, "", tok)
		user := m["data"].(map[string]any)["username"].(string)
		id, _ := m["lease_id"].(string)
		if id == "" || m["lease_duration"] != float64(3600) || !roleExists(user) {
			t.Fatalf("creds: %v (role exists: %v)", m, roleExists(user))
		}
		return user, id
	}

	// Revoke: the role goes.
	user, id := creds(e.root)
	e.must(204, "PUT", "/v1/sys/leases/revoke", `{"lease_id":"`+id+`"}`, e.root)
	if roleExists(user) {
		t.Fatalf("role %s outlived its revoked lease", user)
	}

	// Token revocation: the token's roles go.
	e.must(204, "PUT", "/v1/sys/policies/acl/db", `{"policy":"rules: [{path: 'database/creds/**', capabilities: [read]}]"}`, e.root)
	tok := e.must(200, "PUT", "/v1/auth/token/create", `{"policies":["db"]}`, e.root)["auth"].(map[string]any)["client_token"].(string)
	tUser, _ := creds(tok)
	e.must(204, "PUT", "/v1/auth/token/revoke-self", "", tok)
	if roleExists(tUser) {
		t.Fatalf("role %s outlived its token", tUser)
	}

	// Restart on PostgreSQL storage: the lease is kept and revoked at
	// expiry.
	rUser, rID := creds(e.root)
	e.restart()
	if look := e.must(200, "PUT", "/v1/sys/leases/lookup", `{"lease_id":"`+rID+`"}`, e.root)["data"].(map[string]any); look["id"] != rID {
		t.Fatalf("lease lost at restart: %v", look)
	}
	e.clock.Advance(time.Hour)
	waitGone(rUser)
}
