package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
	goredis "github.com/redis/go-redis/v9"
)

// TestRedisEngineVaultClientAndCLI drives the Redis engine of a dev server
// with the unmodified Vault Go client (config, role, creds, lease revoke)
// and with the CLI (redis config with the password on stdin, redis role,
// redis creds). The target is the test Redis (SECRETHUB_TEST_REDIS_ADDR,
// default 127.0.0.1:6379), logged in to as a dedicated admin user.
func TestRedisEngineVaultClientAndCLI(t *testing.T) {
	ctx := context.Background()
	addr := os.Getenv("SECRETHUB_TEST_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	root := goredis.NewClient(&goredis.Options{Addr: addr, Protocol: 2})
	t.Cleanup(func() { root.Close() })
	if err := root.Do(ctx, "ACL", "WHOAMI").Err(); err != nil {
		t.Fatalf("the Redis test server at %s is not usable: %v\nRun `make test-services` to start it, or set SECRETHUB_TEST_REDIS_ADDR.", addr, err)
	}
	rb := make([]byte, 4)
	_, _ = rand.Read(rb)
	suffix := hex.EncodeToString(rb)
	admin, adminPW := "sh-cli-admin-"+suffix, "pw-"+suffix+"-admin"
	if err := root.Do(ctx, "ACL", "SETUSER", admin, "reset", "on", ">"+adminPW, "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	role := "c" + suffix
	t.Cleanup(func() {
		users, _ := root.Do(ctx, "ACL", "USERS").StringSlice()
		for _, u := range users {
			if u == admin || strings.HasPrefix(u, "secrethub-"+role) {
				root.Do(ctx, "ACL", "DELUSER", u)
			}
		}
	})

	srv, vc := devServer(t)
	if err := vc.Sys().Mount("redis", &vault.MountInput{Type: "redis"}); err != nil {
		t.Fatalf("mount: %v", err)
	}
	l := vc.Logical()
	if _, err := l.Write("redis/config", map[string]any{"address": addr, "username": admin, "password": adminPW}); err != nil {
		t.Fatalf("config: %v", err)
	}
	if _, err := l.Write("redis/roles/"+role, map[string]any{
		"key_patterns": []string{role + ":*"}, "commands": []string{"+@read"}, "default_ttl": "1h",
	}); err != nil {
		t.Fatalf("role: %v", err)
	}
	sec, err := l.Read("redis/creds/" + role)
	if err != nil || sec == nil {
		t.Fatalf("creds: %v", err)
	}
	user, _ := sec.Data["username"].(string)
	pw, _ := sec.Data["password"].(string)
	if !strings.HasPrefix(sec.LeaseID, "redis/creds/"+role+"/") || !sec.Renewable || sec.LeaseDuration != 3600 {
		t.Fatalf("lease: id %q renewable %v duration %d", sec.LeaseID, sec.Renewable, sec.LeaseDuration)
	}
	// login reads an allowed (missing) key as the issued user.
	login := func() error {
		c := goredis.NewClient(&goredis.Options{Addr: addr, Username: user, Password: pw, Protocol: 2, MaxRetries: -1})
		defer c.Close()
		if err := c.Get(ctx, role+":k").Err(); !errors.Is(err, goredis.Nil) {
			return err
		}
		return nil
	}
	if err := login(); err != nil {
		t.Fatalf("login with the issued credential: %v", err)
	}
	// Revoking the lease through sys/leases deletes the user.
	if err := vc.Sys().Revoke(sec.LeaseID); err != nil {
		t.Fatalf("revoke lease: %v", err)
	}
	if err := login(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("login after revoke: %v; want WRONGPASS", err)
	}
	// Bad input is a 400 naming the field and the value.
	if _, err := l.Write("redis/roles/bad", map[string]any{"commands": "+@nonsense"}); err == nil ||
		!strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "commands") || !strings.Contains(err.Error(), "nonsense") {
		t.Fatalf("bad category: %v", err)
	}

	// The CLI.
	env := []string{"SECRETHUB_ADDR=" + srv.addr, "SECRETHUB_TOKEN=shs.dev-root-token-for-tests"}
	if code, out, errOut := cli(t, env, adminPW+"\n", "redis", "config", "-address", addr, "-username", admin, "-password", "-"); code != 0 {
		t.Fatalf("redis config: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := cli(t, env, "", "redis", "config", "-address", addr, "-password", adminPW); code == 0 || !strings.Contains(errOut, "-password") {
		t.Fatalf("redis config with the password on the command line: %d %s", code, errOut)
	}
	mustCLI(t, env, "redis", "role", role+"x", "-keys", role+":*", "-commands", "+@read,-@dangerous", "-default-ttl", "30m", "-max-ttl", "2h")
	out := mustCLI(t, env, "redis", "creds", role+"x", "-format", "json")
	if !strings.Contains(out, `"username": "secrethub-`+role+`x-`) && !strings.Contains(out, `"username":"secrethub-`+role+`x-`) {
		t.Fatalf("redis creds output: %s", out)
	}
	if code, _, errOut := cli(t, env, "", "redis", "role", "bad", "-keys", "a[b", "-commands", "+get"); code == 0 || !strings.Contains(errOut, "key_patterns") {
		t.Fatalf("redis role with a bad pattern: %d %s", code, errOut)
	}
	if code, out, _ := cli(t, env, "", "redis", "--help"); code != 0 || !strings.Contains(out, "creds") || !strings.Contains(out, "role") {
		t.Fatalf("redis --help: %d %s", code, out)
	}
	if strings.Contains(srv.stderr.String(), adminPW) || strings.Contains(srv.stderr.String(), pw) {
		t.Fatal("a password in the server log")
	}
}
