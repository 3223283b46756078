package approle_test

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/auth/approle"
	"github.com/secrethub/secrethub/core/logical"
)

func TestSecretIDLifecycle(t *testing.T) {
	v := newEnv(t, approle.Config{})
	v.role("r", `{"secret_id_ttl": "1h", "secret_id_num_uses": 10}`)

	gen := v.must(logical.OpUpdate, "role/r/secret-id", body(t, `{"metadata": {"host": "web-1"}, "cidr_list": "192.0.2.0/24", "ttl": 600, "num_uses": 4}`))
	secret := gen.Data["secret_id"].(string)
	acc := gen.Data["secret_id_accessor"].(string)
	if len(secret) != 43 || len(acc) != 36 {
		t.Fatalf("secret_id %d chars, accessor %q", len(secret), acc)
	}
	if gen.Data["secret_id_ttl"] != 600 || gen.Data["secret_id_num_uses"] != 4 {
		t.Fatalf("generate answered %v", gen.Data)
	}
	// Defaults come from the role.
	gen2 := v.must(logical.OpUpdate, "role/r/secret-id", nil)
	secret2, acc2 := gen2.Data["secret_id"].(string), gen2.Data["secret_id_accessor"].(string)
	if gen2.Data["secret_id_ttl"] != 3600 || gen2.Data["secret_id_num_uses"] != 10 || secret2 == secret {
		t.Fatalf("second generate answered %v", gen2.Data)
	}

	keys := v.must(logical.OpList, "role/r/secret-id", nil).Data["keys"].([]string)
	if len(keys) != 2 || !strings.Contains(strings.Join(keys, ","), acc) || !strings.Contains(strings.Join(keys, ","), acc2) {
		t.Fatalf("list = %v, want accessors %s and %s", keys, acc, acc2)
	}

	created := v.clk.Now().UTC().Format(time.RFC3339Nano)
	wantLookup := map[string]any{
		"secret_id_accessor": acc,
		"metadata":           map[string]string{"host": "web-1"},
		"cidr_list":          []string{"192.0.2.0/24"},
		"token_bound_cidrs":  []string{},
		"secret_id_num_uses": 4,
		"secret_id_ttl":      600,
		"creation_time":      created,
		"expiration_time":    v.clk.Now().Add(10 * time.Minute).UTC().Format(time.RFC3339Nano),
		"last_updated_time":  created,
	}
	byID := v.must(logical.OpUpdate, "role/r/secret-id/lookup", map[string]any{"secret_id": secret}).Data
	if !reflect.DeepEqual(byID, wantLookup) {
		t.Fatalf("lookup by id:\n got %#v\nwant %#v", byID, wantLookup)
	}
	byAcc := v.must(logical.OpUpdate, "role/r/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": acc}).Data
	if !reflect.DeepEqual(byAcc, wantLookup) {
		t.Fatalf("lookup by accessor:\n got %#v\nwant %#v", byAcc, wantLookup)
	}

	// Destroy by value (here with a DELETE, data from the query).
	v.must(logical.OpDelete, "role/r/secret-id/destroy", map[string]any{"secret_id": []string{secret}})
	if _, err := v.do(logical.OpUpdate, "role/r/secret-id/lookup", map[string]any{"secret_id": secret}); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("lookup destroyed: %v", err)
	}
	if _, err := v.do(logical.OpUpdate, "role/r/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": acc}); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("lookup accessor of destroyed: %v", err)
	}
	// Destroying an unknown secret ID is not an error (as in Vault).
	v.must(logical.OpUpdate, "role/r/secret-id/destroy", map[string]any{"secret_id": secret})

	// Destroy by accessor.
	v.must(logical.OpUpdate, "role/r/secret-id-accessor/destroy", map[string]any{"secret_id_accessor": acc2})
	if _, err := v.do(logical.OpUpdate, "role/r/secret-id/lookup", map[string]any{"secret_id": secret2}); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("lookup destroyed by accessor: %v", err)
	}
	if _, err := v.do(logical.OpUpdate, "role/r/secret-id-accessor/destroy", map[string]any{"secret_id_accessor": acc2}); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("destroy unknown accessor: %v, want ErrNotFound", err)
	}
	if keys := v.must(logical.OpList, "role/r/secret-id", nil).Data["keys"].([]string); len(keys) != 0 {
		t.Fatalf("list after destroying all = %v", keys)
	}
	roleID := v.must(logical.OpRead, "role/r/role-id", nil).Data["role_id"].(string)
	for _, s := range []string{secret, secret2} {
		if _, err := v.login(defaultAddr, roleID, s); !errors.Is(err, logical.ErrPermissionDenied) {
			t.Fatalf("login with a destroyed secret ID: %v", err)
		}
	}
}

// A secret ID belongs to its role: other roles' paths do not see it.
func TestSecretIDScopedToRole(t *testing.T) {
	v := newEnv(t, approle.Config{})
	v.role("a", `{}`)
	v.role("b", `{}`)
	secret, acc := v.secretID("a", `{}`)
	if _, err := v.do(logical.OpUpdate, "role/b/secret-id/lookup", map[string]any{"secret_id": secret}); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("lookup through another role: %v", err)
	}
	if _, err := v.do(logical.OpUpdate, "role/b/secret-id-accessor/destroy", map[string]any{"secret_id_accessor": acc}); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("destroy through another role: %v", err)
	}
	v.must(logical.OpUpdate, "role/b/secret-id/destroy", map[string]any{"secret_id": secret})
	v.must(logical.OpUpdate, "role/a/secret-id/lookup", map[string]any{"secret_id": secret})
}

func TestSecretIDMayOnlyNarrow(t *testing.T) {
	cases := map[string]struct {
		role  string
		body  string
		field string // "" when the secret ID must be generated
	}{
		"ttl above role":         {`{"secret_id_ttl": 60}`, `{"ttl": 61}`, "ttl"},
		"unlimited ttl":          {`{"secret_id_ttl": 60}`, `{"ttl": 0}`, "ttl"},
		"shorter ttl":            {`{"secret_id_ttl": 60}`, `{"ttl": "30s"}`, ""},
		"any ttl on open role":   {`{}`, `{"ttl": "8760h"}`, ""},
		"uses above role":        {`{"secret_id_num_uses": 3}`, `{"num_uses": 4}`, "num_uses"},
		"unlimited uses":         {`{"secret_id_num_uses": 3}`, `{"num_uses": 0}`, "num_uses"},
		"fewer uses":             {`{"secret_id_num_uses": 3}`, `{"num_uses": 1}`, ""},
		"cidr outside role":      {`{"secret_id_bound_cidrs": "10.0.0.0/16"}`, `{"cidr_list": "10.1.0.0/24"}`, "cidr_list"},
		"cidr wider than role":   {`{"secret_id_bound_cidrs": "10.0.0.0/16"}`, `{"cidr_list": "10.0.0.0/8"}`, "cidr_list"},
		"cidr other family":      {`{"secret_id_bound_cidrs": "10.0.0.0/16"}`, `{"cidr_list": "2001:db8::/64"}`, "cidr_list"},
		"cidr inside role":       {`{"secret_id_bound_cidrs": "10.0.0.0/16"}`, `{"cidr_list": "10.0.3.0/24,10.0.0.9"}`, ""},
		"token cidr outside":     {`{"token_bound_cidrs": "10.0.0.0/16"}`, `{"token_bound_cidrs": "192.0.2.0/24"}`, "token_bound_cidrs"},
		"token cidr inside":      {`{"token_bound_cidrs": "10.0.0.0/16"}`, `{"token_bound_cidrs": "10.0.1.0/24"}`, ""},
		"metadata as json text":  {`{}`, `{"metadata": "{\"k\": \"v\"}"}`, ""},
		"metadata non-string":    {`{}`, `{"metadata": {"k": true}}`, "metadata"},
		"metadata too many keys": {`{}`, `{"metadata": {` + manyKeys(65) + `}}`, "metadata"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v := newEnv(t, approle.Config{})
			v.role("r", tc.role)
			_, err := v.do(logical.OpUpdate, "role/r/secret-id", body(t, tc.body))
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if f := invalidField(t, err); f != tc.field {
				t.Fatalf("error %v names %q, want %q", err, f, tc.field)
			}
			if keys := v.must(logical.OpList, "role/r/secret-id", nil).Data["keys"].([]string); len(keys) != 0 {
				t.Fatalf("a refused secret ID was stored: %v", keys)
			}
		})
	}
}

func manyKeys(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = `"k` + strings.Repeat("x", i) + `": "v"`
	}
	return strings.Join(parts, ",")
}

// Deleting a role deletes its secret IDs: a role re-created under the same
// name does not accept them.
func TestDeleteRoleDeletesSecretIDs(t *testing.T) {
	v := newEnv(t, approle.Config{})
	v.role("r", `{}`)
	var secrets []string
	for range 300 { // more than one deletion batch
		s, _ := v.secretID("r", `{}`)
		secrets = append(secrets, s)
	}
	v.must(logical.OpDelete, "role/r", nil)
	roleID := v.role("r", `{}`)
	if keys := v.must(logical.OpList, "role/r/secret-id", nil).Data["keys"].([]string); len(keys) != 0 {
		t.Fatalf("re-created role lists %d old secret IDs", len(keys))
	}
	if _, err := v.login(defaultAddr, roleID, secrets[0]); !errors.Is(err, logical.ErrPermissionDenied) {
		t.Fatalf("old secret ID on the re-created role: %v", err)
	}
	ctx := context.Background()
	for _, prefix := range []string{"secret_id/r/", "accessor/r/"} {
		if keys, _ := v.be.List(ctx, prefix); len(keys) != 0 {
			t.Fatalf("%d keys left under %s", len(keys), prefix)
		}
	}
}

func TestTidy(t *testing.T) {
	v := newEnv(t, approle.Config{})
	v.role("r", `{}`)
	_, shortAcc := v.secretID("r", `{"ttl": 60}`)
	long, longAcc := v.secretID("r", `{"ttl": 3600}`)
	forever, _ := v.secretID("r", `{}`)
	ctx := context.Background()
	// A dangling accessor, as an interrupted write could leave.
	if err := v.be.Put(ctx, "accessor/r/dangling", []byte("0000")); err != nil {
		t.Fatal(err)
	}
	// Secret IDs of a role that is gone (storage written by hand).
	if err := v.be.Put(ctx, "secret_id/gone/abcd", []byte(`{"accessor":"x"}`)); err != nil {
		t.Fatal(err)
	}

	if n, err := v.e.Tidy(ctx); err != nil || n != 1 {
		t.Fatalf("Tidy before expiry = %d, %v; want 1 (the orphan)", n, err)
	}
	v.clk.Add(2 * time.Minute)
	resp := v.must(logical.OpUpdate, "tidy/secret-id", nil)
	if resp.Data["secret_ids_deleted"] != 1 {
		t.Fatalf("tidy answered %v, want 1 deleted", resp.Data)
	}
	keys := v.must(logical.OpList, "role/r/secret-id", nil).Data["keys"].([]string)
	if strings.Join(keys, ",") != strings.Join(sortedPair(longAcc, mustAcc(t, v, forever)), ",") {
		t.Fatalf("after tidy, accessors %v; want the long-lived ones, not %s", keys, shortAcc)
	}
	for _, k := range []string{"accessor/r/dangling", "secret_id/gone/abcd"} {
		if _, err := v.be.Get(ctx, k); err == nil {
			t.Fatalf("%s survived tidy", k)
		}
	}
	v.must(logical.OpUpdate, "role/r/secret-id/lookup", map[string]any{"secret_id": long})
}

func mustAcc(t *testing.T, v *env, secret string) string {
	t.Helper()
	return v.must(logical.OpUpdate, "role/r/secret-id/lookup", map[string]any{"secret_id": secret}).Data["secret_id_accessor"].(string)
}

func sortedPair(a, b string) []string {
	if a > b {
		a, b = b, a
	}
	return []string{a, b}
}

// Nothing in storage — keys or values — holds a secret ID, and no key
// holds a role ID.
func TestNoPlainSecretsInStorage(t *testing.T) {
	v := newEnv(t, approle.Config{})
	v.role("r", `{"secret_id_num_uses": 5}`)
	const roleID = "my-custom-role-id"
	v.must(logical.OpUpdate, "role/r/role-id", map[string]any{"role_id": roleID})
	var secrets []string
	for i := range 5 {
		s, _ := v.secretID("r", `{"metadata": {"n": "x"}, "num_uses": 3}`)
		secrets = append(secrets, s)
		if i%2 == 0 {
			if _, err := v.login(defaultAddr, roleID, s); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx := context.Background()
	var walk func(prefix string) int
	walk = func(prefix string) int {
		keys, err := v.be.List(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, k := range keys {
			full := prefix + k
			if strings.HasSuffix(k, "/") {
				n += walk(full)
				continue
			}
			n++
			val, err := v.be.Get(ctx, full)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(full, roleID) {
				t.Errorf("key %q holds the role ID", full)
			}
			for _, s := range secrets {
				if strings.Contains(full, s) || bytes.Contains(val, []byte(s)) {
					t.Errorf("key %q (or its value) holds a plain secret ID", full)
				}
			}
		}
		return n
	}
	if n := walk(""); n < 12 { // role + index + 5×(secret + accessor)
		t.Fatalf("walked only %d keys: the scan did not see the data", n)
	}
}
