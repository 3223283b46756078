package database

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/storage/inmem"
	"github.com/secrethub/secrethub/internal/pgtest"
	"github.com/secrethub/secrethub/internal/syncbuf"
)

// clock is a settable clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time // guarded by mu
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is an engine over inmem storage, a fresh test database, and a
// dedicated superuser (not postgres) that the engine's config logs in
// as, so rotate-root never touches the test server's own password.
type fixture struct {
	t       testing.TB
	e       *Engine
	clock   *clock
	logs    *syncbuf.Buffer
	dbURL   string // the test database, as the test server's superuser
	super   *pgx.Conn
	admin   string // the engine's admin role
	adminPW string
	connURL string // connection_url with placeholders
	prefix  string // what every role name of this test starts with

	mu      sync.Mutex
	secrets []string // every password seen, checked against logs at the end
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t)
	super, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect as superuser: %v", err)
	}
	f := &fixture{
		t: t, dbURL: dbURL, super: super,
		clock:   &clock{t: time.Now().UTC().Truncate(time.Second)},
		logs:    &syncbuf.Buffer{},
		prefix:  "t" + randHex(4),
		adminPW: "adminpw-" + randHex(12),
	}
	f.admin = "sh_admin_" + f.prefix
	if _, err := super.Exec(ctx, fmt.Sprintf("CREATE ROLE %s WITH LOGIN SUPERUSER PASSWORD '%s'", pgx.Identifier{f.admin}.Sanitize(), f.adminPW)); err != nil {
		t.Fatalf("create admin role: %v", err)
	}
	f.secrets = append(f.secrets, f.adminPW)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	f.connURL = fmt.Sprintf("postgresql://{{username}}:{{password}}@%s%s?%s", u.Host, u.Path, u.RawQuery)
	e, err := New(inmem.New(), Config{Now: f.clock.Now, Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	f.e = e
	t.Cleanup(func() {
		_ = e.Close()
		ctx := context.Background()
		rows, err := super.Query(ctx, "SELECT rolname FROM pg_roles WHERE rolname LIKE $1 OR rolname LIKE $2 OR rolname = $3",
			"v-"+f.prefix+"%", "s_"+f.prefix+"%", f.admin)
		if err == nil {
			names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
			for _, n := range names {
				id := pgx.Identifier{n}.Sanitize()
				_, _ = super.Exec(ctx, "REASSIGN OWNED BY "+id+" TO CURRENT_USER; DROP OWNED BY "+id, pgx.QueryExecModeSimpleProtocol)
				if _, err := super.Exec(ctx, "DROP ROLE IF EXISTS "+id); err != nil {
					t.Errorf("cleanup: drop role %s: %v", n, err)
				}
			}
		}
		_ = super.Close(ctx)
		logs := f.logs.String()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, s := range f.secrets {
			if strings.Contains(logs, s) {
				t.Errorf("a password appears in the engine's logs")
			}
		}
	})
	return f
}

// remember records a password that must never reach logs or errors.
func (f *fixture) remember(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets = append(f.secrets, s)
}

// checkErr fails if err's message holds a known password.
func (f *fixture) checkErr(err error) {
	f.t.Helper()
	if err == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.secrets {
		if strings.Contains(err.Error(), s) {
			f.t.Errorf("a password appears in the error %q", strings.ReplaceAll(err.Error(), s, "<PASSWORD>"))
		}
	}
}

// do sends a request to the engine.
func (f *fixture) do(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	f.t.Helper()
	resp, err := f.e.HandleRequest(context.Background(), &logical.Request{Operation: op, RelativePath: path, Data: data, Time: f.clock.Now()})
	f.checkErr(err)
	return resp, err
}

// must is do that fails the test on error.
func (f *fixture) must(op logical.Operation, path string, data map[string]any) *logical.Response {
	f.t.Helper()
	resp, err := f.do(op, path, data)
	if err != nil {
		f.t.Fatalf("%s %s: %v", op, path, err)
	}
	return resp
}

// writeConfig writes config "pg" logging in as the admin role.
func (f *fixture) writeConfig(extra map[string]any) {
	f.t.Helper()
	data := map[string]any{
		"plugin_name":    "postgresql-database-plugin",
		"connection_url": f.connURL,
		"username":       f.admin,
		"password":       f.adminPW,
		"allowed_roles":  "*",
	}
	for k, v := range extra {
		data[k] = v
	}
	f.must(logical.OpUpdate, "config/pg", data)
}

// issue reads creds/role and returns the username, password and lease.
func (f *fixture) issue(role string) (user, pw string, l *logical.SecretLease) {
	f.t.Helper()
	resp := f.must(logical.OpRead, "creds/"+role, nil)
	user, _ = resp.Data["username"].(string)
	pw, _ = resp.Data["password"].(string)
	if user == "" || pw == "" || resp.Secret == nil {
		f.t.Fatalf("creds/%s: %+v", role, resp)
	}
	f.remember(pw)
	now := f.clock.Now()
	return user, pw, &logical.SecretLease{
		LeaseID: "database/creds/" + role + "/" + randHex(8), IssuePath: "creds/" + role,
		InternalData: resp.Secret.InternalData, IssueTime: now, ExpireTime: now.Add(resp.Secret.TTL),
	}
}

// loginURL is the test database's URL with user and password.
func (f *fixture) loginURL(user, pw string) string {
	u, _ := url.Parse(f.dbURL)
	u.User = url.UserPassword(user, pw)
	return u.String()
}

// roleExists reports whether role name exists on the server.
func (f *fixture) roleExists(name string) bool {
	f.t.Helper()
	var n int
	if err := f.super.QueryRow(context.Background(), "SELECT count(*) FROM pg_roles WHERE rolname = $1", name).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n > 0
}

// rolesWithPrefix counts the roles whose name starts with p.
func (f *fixture) rolesWithPrefix(p string) int {
	f.t.Helper()
	var n int
	if err := f.super.QueryRow(context.Background(), "SELECT count(*) FROM pg_roles WHERE starts_with(rolname, $1)", p).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// passwordIs reports whether pw is role's password, by checking it
// against the SCRAM-SHA-256 verifier the server stores (RFC 5802/7677).
// The test server trusts every local connection, so a login would not
// check a password; this is the check a password-authenticating server
// makes.
func (f *fixture) passwordIs(role, pw string) bool {
	f.t.Helper()
	var stored *string
	if err := f.super.QueryRow(context.Background(), "SELECT rolpassword FROM pg_authid WHERE rolname = $1", role).Scan(&stored); err != nil {
		f.t.Fatalf("read verifier of %s: %v", role, err)
	}
	if stored == nil {
		return false
	}
	ok, err := scramMatches(*stored, pw)
	if err != nil {
		f.t.Fatalf("verifier of %s: %v", role, err)
	}
	return ok
}

// scramMatches checks pw against "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>".
func scramMatches(verifier, pw string) (bool, error) {
	rest, ok := strings.CutPrefix(verifier, "SCRAM-SHA-256$")
	if !ok {
		return false, errors.New("not a SCRAM-SHA-256 verifier")
	}
	params, keys, ok := strings.Cut(rest, "$")
	iterS, saltB64, ok2 := strings.Cut(params, ":")
	storedB64, _, ok3 := strings.Cut(keys, ":")
	if !ok || !ok2 || !ok3 {
		return false, errors.New("malformed verifier")
	}
	iter, err := strconv.Atoi(iterS)
	if err != nil {
		return false, err
	}
	salt, err := base64.StdEncoding.DecodeString(saltB64)
	if err != nil {
		return false, err
	}
	want, err := base64.StdEncoding.DecodeString(storedB64)
	if err != nil {
		return false, err
	}
	salted, err := pbkdf2.Key(sha256.New, pw, salt, iter, 32)
	if err != nil {
		return false, err
	}
	mac := hmac.New(sha256.New, salted)
	mac.Write([]byte("Client Key"))
	stored := sha256.Sum256(mac.Sum(nil))
	return hmac.Equal(stored[:], want), nil
}

// invalidField returns the field an InvalidRequestError names, or fails.
func invalidField(t testing.TB, err error) string {
	t.Helper()
	var ire *logical.InvalidRequestError
	if !errors.As(err, &ire) {
		t.Fatalf("want an InvalidRequestError, got %v", err)
	}
	return ire.Field
}
