package redis_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/secrets/redis"
	"github.com/secrethub/secrethub/core/storage/inmem"
)

// These tests run against a real Redis server (7.x): the one at
// SECRETHUB_TEST_REDIS_ADDR, default 127.0.0.1:6379, whose default user
// may run ACL commands (as a fresh redis-server's does). Each test makes
// its own admin user and role names with a random prefix, and deletes the
// users it made, so packages and runs can share the server.

var (
	redisOnce sync.Once
	redisErr  error
)

func redisAddr(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("SECRETHUB_TEST_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	redisOnce.Do(func() {
		c := goredis.NewClient(&goredis.Options{Addr: addr, Protocol: 2, DialTimeout: 3 * time.Second})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		redisErr = c.Do(ctx, "ACL", "WHOAMI").Err()
	})
	if redisErr != nil {
		t.Fatalf("the Redis test server at %s is not usable: %v\nRun `make test-services` to start it, or set SECRETHUB_TEST_REDIS_ADDR.", addr, redisErr)
	}
	return addr
}

func randHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// fixture is an engine configured against the test server through an
// admin user of its own.
type fixture struct {
	t      *testing.T
	e      *redis.Engine
	addr   string
	root   *goredis.Client // the server's default user, to set up and check
	prefix string          // unique to the test: role names and key prefixes
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	addr := redisAddr(t)
	f := &fixture{t: t, addr: addr, prefix: "t" + randHex(t, 6)}
	f.root = goredis.NewClient(&goredis.Options{Addr: addr, Protocol: 2})
	t.Cleanup(func() { f.root.Close() })
	e, err := redis.New(inmem.New(), redis.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	f.e = e
	admin, password := "sh-test-admin-"+f.prefix, randHex(t, 16)
	f.rootDo("ACL", "SETUSER", admin, "reset", "on", ">"+password, "~*", "&*", "+@all")
	t.Cleanup(func() {
		// Delete the admin and every user the engine made for this test.
		ctx := context.Background()
		users, err := f.root.Do(ctx, "ACL", "USERS").StringSlice()
		if err != nil {
			t.Errorf("cleanup: ACL USERS: %v", err)
			return
		}
		for _, u := range users {
			if u == admin || strings.HasPrefix(u, redis.UserPrefix+f.prefix) {
				f.root.Do(ctx, "ACL", "DELUSER", u)
			}
		}
	})
	f.must(logical.OpUpdate, "config", map[string]any{"address": addr, "username": admin, "password": password})
	return f
}

func (f *fixture) rootDo(args ...any) any {
	f.t.Helper()
	v, err := f.root.Do(context.Background(), args...).Result()
	if err != nil {
		f.t.Fatalf("%v: %v", args[:2], err)
	}
	return v
}

func (f *fixture) do(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return f.e.HandleRequest(f.t.Context(), &logical.Request{Operation: op, RelativePath: path, Data: data})
}

func (f *fixture) must(op logical.Operation, path string, data map[string]any) *logical.Response {
	f.t.Helper()
	resp, err := f.do(op, path, data)
	if err != nil {
		f.t.Fatalf("%s %s: %v", op, path, err)
	}
	return resp
}

// users lists the users of the server made for role.
func (f *fixture) users(role string) []string {
	f.t.Helper()
	all, err := f.root.Do(context.Background(), "ACL", "USERS").StringSlice()
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, u := range all {
		if strings.HasPrefix(u, redis.UserPrefix+role+"-") {
			out = append(out, u)
		}
	}
	return out
}

// login connects as the issued user on one pinned connection.
func (f *fixture) login(user, password string) (*goredis.Conn, error) {
	f.t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: f.addr, Username: user, Password: password, Protocol: 2, MaxRetries: -1})
	f.t.Cleanup(func() { c.Close() })
	conn := c.Conn()
	f.t.Cleanup(func() { conn.Close() })
	// AUTH is allowed to every user, whatever its role.
	return conn, conn.Do(f.t.Context(), "AUTH", user, password).Err()
}

// rawLogin opens a plain TCP connection and authenticates as user on it,
// so a test can see the server close it.
func (f *fixture) rawLogin(user, password string) net.Conn {
	f.t.Helper()
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { c.Close() })
	if _, err := fmt.Fprintf(c, "*3\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(user), user, len(password), password); err != nil {
		f.t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "+OK\r\n" {
		f.t.Fatalf("AUTH on a raw connection: %q, %v", line, err)
	}
	return c
}

func lease(resp *logical.Response) *logical.SecretLease {
	return &logical.SecretLease{LeaseID: "redis/creds/x/1", IssuePath: "creds/x", InternalData: resp.Secret.InternalData}
}

func isNoPerm(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOPERM") }

func TestIssueUseRevoke(t *testing.T) {
	f := newFixture(t)
	role := f.prefix + "-reader"
	f.must(logical.OpUpdate, "roles/"+role, map[string]any{
		"key_patterns":     []any{f.prefix + ":*"},
		"channel_patterns": "events:" + f.prefix,
		"commands":         []any{"+@read", "-@dangerous", "+publish"},
		"default_ttl":      "10m",
		"max_ttl":          "1h",
	})
	f.rootDo("SET", f.prefix+":k", "v")
	f.rootDo("SET", "other-"+f.prefix, "v")
	t.Cleanup(func() { f.root.Del(context.Background(), f.prefix+":k", "other-"+f.prefix) })

	resp := f.must(logical.OpRead, "creds/"+role, nil)
	user, _ := resp.Data["username"].(string)
	password, _ := resp.Data["password"].(string)
	if !strings.HasPrefix(user, redis.UserPrefix+role+"-") || len(password) < 32 {
		t.Fatalf("creds = %q / %d-byte password", user, len(password))
	}
	s := resp.Secret
	if s == nil || s.TTL != 10*time.Minute || s.MaxTTL != time.Hour || !s.Renewable || s.InternalData["username"] != user {
		t.Fatalf("secret = %+v", s)
	}

	conn, err := f.login(user, password)
	if err != nil {
		t.Fatalf("issued user cannot log in: %v", err)
	}
	ctx := t.Context()
	if v, err := conn.Get(ctx, f.prefix+":k").Result(); err != nil || v != "v" {
		t.Fatalf("GET allowed key = %q, %v", v, err)
	}
	if err := conn.Get(ctx, "other-"+f.prefix).Err(); !isNoPerm(err) {
		t.Fatalf("GET of a key outside the pattern: err = %v; want NOPERM", err)
	}
	if err := conn.Set(ctx, f.prefix+":k", "w", 0).Err(); !isNoPerm(err) {
		t.Fatalf("SET with a read-only role: err = %v; want NOPERM", err)
	}
	if err := conn.Publish(ctx, "events:"+f.prefix, "hi").Err(); err != nil {
		t.Fatalf("PUBLISH on the allowed channel: %v", err)
	}
	if err := conn.Publish(ctx, "other", "hi").Err(); !isNoPerm(err) {
		t.Fatalf("PUBLISH on another channel: err = %v; want NOPERM", err)
	}
	if err := f.e.RenewSecret(ctx, lease(resp)); err != nil {
		t.Fatalf("renew: %v", err)
	}
	raw := f.rawLogin(user, password)

	if err := f.e.RevokeSecret(ctx, lease(resp)); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	// The server closes the open connection: reading it ends in EOF.
	if err := raw.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := raw.Read(make([]byte, 64)); !errors.Is(err, io.EOF) {
		t.Fatalf("the revoked user's open connection: read %d bytes, err %v; want EOF", n, err)
	}
	if _, err := f.login(user, password); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("login after revoke: err = %v; want WRONGPASS", err)
	}
	if got := f.users(role); len(got) != 0 {
		t.Fatalf("users left after revoke: %v", got)
	}
	if err := f.e.RevokeSecret(ctx, lease(resp)); err != nil {
		t.Fatalf("second revoke (idempotent): %v", err)
	}
}

func TestDefaultsAndRead(t *testing.T) {
	f := newFixture(t)
	role := f.prefix + "-all"
	f.must(logical.OpUpdate, "roles/"+role, map[string]any{"creation_statements": `["~` + f.prefix + `:*", "+@all", "-flushall"]`})
	resp := f.must(logical.OpRead, "roles/"+role, nil)
	if got := resp.Data["creation_statements"].([]string); strings.Join(got, " ") != "~"+f.prefix+":* +@all -flushall" {
		t.Fatalf("rules = %v", got)
	}
	creds := f.must(logical.OpUpdate, "creds/"+role, nil)
	if creds.Secret.TTL != redis.DefaultTTL || creds.Secret.MaxTTL != 0 {
		t.Fatalf("secret = %+v; want the engine's default TTL", creds.Secret)
	}
	conn, err := f.login(creds.Data["username"].(string), creds.Data["password"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Set(t.Context(), f.prefix+":x", "1", time.Minute).Err(); err != nil {
		t.Fatalf("SET on an allowed key: %v", err)
	}
	if err := conn.FlushAll(t.Context()).Err(); !isNoPerm(err) {
		t.Fatalf("FLUSHALL: err = %v; want NOPERM", err)
	}
	cfg := f.must(logical.OpRead, "config", nil)
	for k, v := range cfg.Data {
		if s, ok := v.(string); ok && strings.Contains(k, "password") && s != "" {
			t.Fatalf("config read returns %s", k)
		}
	}
	if _, ok := cfg.Data["password"]; ok || cfg.Data["address"] != f.addr || cfg.Data["password_set"] != true {
		t.Fatalf("config = %v", cfg.Data)
	}
	// Rewriting config without the password keeps it.
	f.must(logical.OpUpdate, "config", map[string]any{"address": f.addr, "username": cfg.Data["username"]})
	f.must(logical.OpRead, "creds/"+role, nil)
	list := f.must(logical.OpList, "roles", nil)
	if keys := list.Data["keys"].([]string); len(keys) != 1 || keys[0] != role {
		t.Fatalf("roles = %v", keys)
	}
}

func TestBadRoles(t *testing.T) {
	f := newFixture(t)
	cases := map[string]struct {
		data  map[string]any
		field string
		value string // quoted in the message
	}{
		"unclosed bracket":     {map[string]any{"key_patterns": []any{"app:[ab"}, "commands": "+get"}, "key_patterns", "app:[ab"},
		"space in key":         {map[string]any{"key_patterns": []any{"app *"}, "commands": "+get"}, "key_patterns", "app *"},
		"trailing escape":      {map[string]any{"channel_patterns": []any{`ev\`}, "commands": "+get"}, "channel_patterns", `ev\`},
		"bad key permission":   {map[string]any{"key_patterns": []any{"%X~app:*"}, "commands": "+get"}, "key_patterns", "%X~app:*"},
		"unknown category":     {map[string]any{"commands": []any{"+@nonsense"}}, "commands", "nonsense"},
		"no sign":              {map[string]any{"commands": []any{"@read"}}, "commands", "@read"},
		"bad command":          {map[string]any{"commands": []any{"+get;flushall"}}, "commands", "+get;flushall"},
		"password in rules":    {map[string]any{"creation_statements": []any{">hunter2hunter2"}}, "creation_statements", ""},
		"nopass in rules":      {map[string]any{"creation_statements": `["nopass", "+@all"]`}, "creation_statements", "nopass"},
		"on in rules":          {map[string]any{"commands": "on,+@all"}, "commands", "on"},
		"no commands":          {map[string]any{"key_patterns": "app:*"}, "commands", ""},
		"default over max":     {map[string]any{"commands": "+get", "default_ttl": "2h", "max_ttl": "1h"}, "default_ttl", ""},
		"unknown field":        {map[string]any{"commands": "+get", "keys": "x"}, "keys", ""},
		"bad statements JSON":  {map[string]any{"creation_statements": `["+get"`}, "creation_statements", ""},
		"bad ttl":              {map[string]any{"commands": "+get", "max_ttl": "soon"}, "max_ttl", "soon"},
		"category in commands": {map[string]any{"commands": "+@read,-@nonsense"}, "commands", "nonsense"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := f.do(logical.OpUpdate, "roles/"+f.prefix, tc.data)
			var ire *logical.InvalidRequestError
			if !errors.As(err, &ire) || ire.Field != tc.field || !strings.Contains(ire.Reason, tc.value) {
				t.Fatalf("err = %v; want a 400 naming %s and %q", err, tc.field, tc.value)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error echoes a password: %v", err)
			}
		})
	}
	if _, err := f.do(logical.OpRead, "roles/"+f.prefix, nil); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("a refused role was stored: %v", err)
	}
}

// A rule Redis itself refuses at issue (a command it does not know)
// leaves no user behind and answers 400 naming the rule.
func TestIssueRefusedLeavesNoUser(t *testing.T) {
	f := newFixture(t)
	role := f.prefix + "-bad"
	f.must(logical.OpUpdate, "roles/"+role, map[string]any{"commands": []any{"+get", "+nosuchcommand"}})
	_, err := f.do(logical.OpRead, "creds/"+role, nil)
	var ire *logical.InvalidRequestError
	if !errors.As(err, &ire) || !strings.Contains(err.Error(), "nosuchcommand") || !strings.Contains(err.Error(), f.addr) {
		t.Fatalf("err = %v; want a 400 naming the rule and the server", err)
	}
	if got := f.users(role); len(got) != 0 {
		t.Fatalf("half-made users left: %v", got)
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestUnreachable(t *testing.T) {
	redisAddr(t)
	addr := closedAddr(t)
	e, err := redis.New(inmem.New(), redis.Config{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := t.Context()
	do := func(op logical.Operation, path string, data map[string]any) error {
		_, err := e.HandleRequest(ctx, &logical.Request{Operation: op, RelativePath: path, Data: data})
		return err
	}
	if err := do(logical.OpRead, "creds/r", nil); err == nil {
		t.Fatal("creds of an unknown role succeeded")
	}
	if err := do(logical.OpUpdate, "roles/r", map[string]any{"commands": "+get"}); err != nil {
		t.Fatal(err)
	}
	if err := do(logical.OpRead, "creds/r", nil); !errors.Is(err, redis.ErrNotConfigured) {
		t.Fatalf("creds without config: %v; want ErrNotConfigured", err)
	}
	err = do(logical.OpUpdate, "config", map[string]any{"address": addr, "password": "hunter2hunter2"})
	var ire *logical.InvalidRequestError
	if !errors.As(err, &ire) || ire.Field != "verify_connection" || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("config of an unreachable server: %v; want a 400 naming %s and the reason", err, addr)
	}
	if err := do(logical.OpUpdate, "config", map[string]any{"address": addr, "password": "hunter2hunter2", "verify_connection": false}); err != nil {
		t.Fatal(err)
	}
	err = do(logical.OpRead, "creds/r", nil)
	if !errors.Is(err, redis.ErrUnreachable) || !strings.Contains(err.Error(), addr) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("creds from an unreachable server: %v; want ErrUnreachable naming %s", err, addr)
	}
	l := &logical.SecretLease{LeaseID: "x", InternalData: map[string]any{"username": redis.UserPrefix + "r-abc"}}
	if err := e.RevokeSecret(ctx, l); !errors.Is(err, redis.ErrUnreachable) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("revoke against an unreachable server: %v; want ErrUnreachable (to retry)", err)
	}
}

func TestPathsAndConfig(t *testing.T) {
	e, err := redis.New(inmem.New(), redis.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		op    logical.Operation
		path  string
		data  map[string]any
		check func(error) bool
	}{
		"unknown path":     {logical.OpRead, "nope", nil, func(err error) bool { return errors.Is(err, logical.ErrUnsupportedPath) }},
		"bad role name":    {logical.OpRead, "roles/a b", nil, isInvalid("name")},
		"delete creds":     {logical.OpDelete, "creds/r", nil, func(err error) bool { return errors.Is(err, logical.ErrUnsupportedOperation) }},
		"no config":        {logical.OpRead, "config", nil, func(err error) bool { return errors.Is(err, logical.ErrNotFound) }},
		"no host":          {logical.OpUpdate, "config", map[string]any{"port": 6379}, isInvalid("host")},
		"bad port":         {logical.OpUpdate, "config", map[string]any{"host": "h", "port": 70000}, isInvalid("port")},
		"both address":     {logical.OpUpdate, "config", map[string]any{"host": "h", "address": "h:1"}, isInvalid("address")},
		"bad address":      {logical.OpUpdate, "config", map[string]any{"address": "nohostport"}, isInvalid("address")},
		"bad ca":           {logical.OpUpdate, "config", map[string]any{"host": "h", "tls": true, "ca_cert": "junk"}, isInvalid("ca_cert")},
		"password type":    {logical.OpUpdate, "config", map[string]any{"host": "h", "password": 5}, isInvalid("password")},
		"revoke no lease":  {"revoke", "", nil, func(err error) bool { return err != nil }},
		"renew other user": {"renew", "", map[string]any{"username": "default"}, func(err error) bool { return err != nil }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var err error
			switch tc.op {
			case "revoke":
				err = e.RevokeSecret(t.Context(), &logical.SecretLease{InternalData: tc.data})
			case "renew":
				err = e.RenewSecret(t.Context(), &logical.SecretLease{InternalData: tc.data})
			default:
				_, err = e.HandleRequest(t.Context(), &logical.Request{Operation: tc.op, RelativePath: tc.path, Data: tc.data})
			}
			if !tc.check(err) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func isInvalid(field string) func(error) bool {
	return func(err error) bool {
		var ire *logical.InvalidRequestError
		return errors.As(err, &ire) && ire.Field == field
	}
}
