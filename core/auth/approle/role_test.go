package approle_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/core/auth/approle"
	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/storage/inmem"
)

func TestRoleCRUD(t *testing.T) {
	v := newEnv(t, approle.Config{})
	v.must(logical.OpCreate, "role/web", body(t, `{
		"token_policies": ["app-read", "app-write", "app-read"],
		"token_ttl": "1h", "token_max_ttl": 14400, "token_num_uses": "5",
		"token_bound_cidrs": "10.0.0.0/8, 192.0.2.7",
		"secret_id_ttl": "30m", "secret_id_num_uses": 3,
		"secret_id_bound_cidrs": ["10.1.2.3/16"], "bind_secret_id": true}`))

	want := map[string]any{
		"bind_secret_id":        true,
		"token_policies":        []string{"app-read", "app-write"},
		"policies":              []string{"app-read", "app-write"},
		"token_ttl":             3600,
		"token_max_ttl":         14400,
		"token_num_uses":        5,
		"token_bound_cidrs":     []string{"10.0.0.0/8", "192.0.2.7/32"},
		"secret_id_ttl":         1800,
		"secret_id_num_uses":    3,
		"secret_id_bound_cidrs": []string{"10.1.0.0/16"},
	}
	if got := v.must(logical.OpRead, "role/web", nil).Data; !reflect.DeepEqual(got, want) {
		t.Fatalf("read role:\n got %#v\nwant %#v", got, want)
	}

	// An update changes only the fields given; the legacy name
	// "policies" sets token_policies.
	v.must(logical.OpUpdate, "role/web", body(t, `{"policies": "other", "token_ttl": 60}`))
	want["token_policies"], want["policies"], want["token_ttl"] = []string{"other"}, []string{"other"}, 60
	if got := v.must(logical.OpRead, "role/web", nil).Data; !reflect.DeepEqual(got, want) {
		t.Fatalf("read after update:\n got %#v\nwant %#v", got, want)
	}

	// A role read back can be written back unchanged (round trip).
	v.must(logical.OpUpdate, "role/web", v.must(logical.OpRead, "role/web", nil).Data)
	if got := v.must(logical.OpRead, "role/web", nil).Data; !reflect.DeepEqual(got, want) {
		t.Fatalf("read after round trip:\n got %#v\nwant %#v", got, want)
	}

	v.must(logical.OpCreate, "role/db", nil)
	if got := v.must(logical.OpList, "role", nil).Data["keys"]; !reflect.DeepEqual(got, []string{"db", "web"}) {
		t.Fatalf("list roles = %v", got)
	}
	v.must(logical.OpDelete, "role/web", nil)
	if _, err := v.do(logical.OpRead, "role/web", nil); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("read deleted role: %v, want ErrNotFound", err)
	}
	v.must(logical.OpDelete, "role/web", nil) // deleting again is fine
	if got := v.must(logical.OpList, "role/", nil).Data["keys"]; !reflect.DeepEqual(got, []string{"db"}) {
		t.Fatalf("list roles after delete = %v", got)
	}
}

func TestRoleDefaults(t *testing.T) {
	v := newEnv(t, approle.Config{})
	v.must(logical.OpCreate, "role/min", nil)
	got := v.must(logical.OpRead, "role/min", nil).Data
	want := map[string]any{
		"bind_secret_id": true, "token_policies": []string{}, "policies": []string{},
		"token_ttl": 0, "token_max_ttl": 0, "token_num_uses": 0, "token_bound_cidrs": []string{},
		"secret_id_ttl": 0, "secret_id_num_uses": 0, "secret_id_bound_cidrs": []string{},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("defaults:\n got %#v\nwant %#v", got, want)
	}
}

func TestRoleFieldForms(t *testing.T) {
	cases := map[string]struct {
		body  string
		field string
		want  any
	}{
		"ttl seconds number":     {`{"token_ttl": 90}`, "token_ttl", 90},
		"ttl seconds string":     {`{"token_ttl": "90"}`, "token_ttl", 90},
		"ttl go duration":        {`{"token_ttl": "1h30m"}`, "token_ttl", 5400},
		"ttl days":               {`{"token_max_ttl": "2d"}`, "token_max_ttl", 172800},
		"ttl empty string":       {`{"secret_id_ttl": ""}`, "secret_id_ttl", 0},
		"policies comma string":  {`{"token_policies": "a, b,,c"}`, "token_policies", []string{"a", "b", "c"}},
		"ipv6 cidr canonical":    {`{"token_bound_cidrs": ["2001:db8::1/32"]}`, "token_bound_cidrs", []string{"2001:db8::/32"}},
		"ipv4-mapped address":    {`{"token_bound_cidrs": ["::ffff:10.0.0.1"]}`, "token_bound_cidrs", []string{"10.0.0.1/32"}},
		"ipv4-mapped block":      {`{"secret_id_bound_cidrs": "::ffff:10.1.2.3/104"}`, "secret_id_bound_cidrs", []string{"10.0.0.0/8"}},
		"num uses string":        {`{"secret_id_num_uses": "7"}`, "secret_id_num_uses", 7},
		"bind_secret_id string":  {`{"bind_secret_id": "true"}`, "bind_secret_id", true},
		"both policy names same": {`{"token_policies": ["a"], "policies": "a"}`, "token_policies", []string{"a"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v := newEnv(t, approle.Config{})
			v.must(logical.OpUpdate, "role/r", body(t, tc.body))
			if got := v.must(logical.OpRead, "role/r", nil).Data[tc.field]; !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("%s = %#v, want %#v", tc.field, got, tc.want)
			}
		})
	}
}

func TestRoleValidation(t *testing.T) {
	cases := map[string]struct {
		path  string
		body  string
		field string // the field the 400 must name
	}{
		"unknown field":            {"role/r", `{"token_ttl": 1, "tokne_policies": ["a"]}`, "tokne_policies"},
		"ttl not a duration":       {"role/r", `{"token_ttl": "soon"}`, "token_ttl"},
		"ttl negative":             {"role/r", `{"token_ttl": -1}`, "token_ttl"},
		"ttl negative string":      {"role/r", `{"token_max_ttl": "-5m"}`, "token_max_ttl"},
		"ttl fraction":             {"role/r", `{"secret_id_ttl": 1.5}`, "secret_id_ttl"},
		"ttl sub-second":           {"role/r", `{"token_ttl": "500ms"}`, "token_ttl"},
		"ttl huge":                 {"role/r", `{"token_ttl": 1e300}`, "token_ttl"},
		"ttl wrong type":           {"role/r", `{"token_ttl": true}`, "token_ttl"},
		"ttl above max":            {"role/r", `{"token_ttl": "2h", "token_max_ttl": "1h"}`, "token_ttl"},
		"num uses negative":        {"role/r", `{"secret_id_num_uses": -1}`, "secret_id_num_uses"},
		"num uses fraction":        {"role/r", `{"token_num_uses": 2.5}`, "token_num_uses"},
		"num uses text":            {"role/r", `{"token_num_uses": "many"}`, "token_num_uses"},
		"cidr bad bits":            {"role/r", `{"token_bound_cidrs": "10.0.0.0/33"}`, "token_bound_cidrs"},
		"cidr garbage":             {"role/r", `{"secret_id_bound_cidrs": ["nope"]}`, "secret_id_bound_cidrs"},
		"cidr mapped and v6":       {"role/r", `{"token_bound_cidrs": "::ffff:0:0/90"}`, "token_bound_cidrs"},
		"cidr wrong type":          {"role/r", `{"secret_id_bound_cidrs": [1]}`, "secret_id_bound_cidrs"},
		"bind_secret_id false":     {"role/r", `{"bind_secret_id": false}`, "bind_secret_id"},
		"bind_secret_id not bool":  {"role/r", `{"bind_secret_id": "maybe"}`, "bind_secret_id"},
		"root policy":              {"role/r", `{"token_policies": ["app", "root"]}`, "token_policies"},
		"policies not strings":     {"role/r", `{"token_policies": 5}`, "token_policies"},
		"policy names conflict":    {"role/r", `{"token_policies": ["a"], "policies": ["b"]}`, "policies"},
		"empty role_id":            {"role/r", `{"role_id": ""}`, "role_id"},
		"padded role_id":           {"role/r", `{"role_id": " x "}`, "role_id"},
		"bad role name":            {"role/bad name!", `{}`, "role_name"},
		"role name too long":       {"role/" + strings.Repeat("a", 129), `{}`, "role_name"},
		"role name dots":           {"role/..", `{}`, "role_name"},
		"role-id unknown field":    {"role/r/role-id", `{"role_id": "x", "extra": 1}`, "extra"},
		"role-id missing":          {"role/r/role-id", `{}`, "role_id"},
		"role-id not a string":     {"role/r/role-id", `{"role_id": 12}`, "role_id"},
		"secret-id unknown field":  {"role/r/secret-id", `{"ttl": 5, "secret": "x"}`, "secret"},
		"secret-id metadata type":  {"role/r/secret-id", `{"metadata": {"a": 1}}`, "metadata"},
		"secret-id metadata json":  {"role/r/secret-id", `{"metadata": "{not json"}`, "metadata"},
		"secret-id reserved key":   {"role/r/secret-id", `{"metadata": {"role_name": "x"}}`, "metadata"},
		"secret-id bad cidr":       {"role/r/secret-id", `{"cidr_list": "300.0.0.1"}`, "cidr_list"},
		"secret-id negative ttl":   {"role/r/secret-id", `{"ttl": -3}`, "ttl"},
		"lookup missing secret_id": {"role/r/secret-id/lookup", `{}`, "secret_id"},
		"lookup unknown field":     {"role/r/secret-id/lookup", `{"secret_id": "x", "y": 1}`, "y"},
		"accessor with slash":      {"role/r/secret-id-accessor/lookup", `{"secret_id_accessor": "a/b"}`, "secret_id_accessor"},
		"login missing secret_id":  {"login", `{"role_id": "x"}`, "secret_id"},
		"login missing role_id":    {"login", `{"secret_id": "x"}`, "role_id"},
		"login unknown field":      {"login", `{"role_id": "x", "secret_id": "y", "nonce": "z"}`, "nonce"},
		"login role_id not string": {"login", `{"role_id": 7, "secret_id": "y"}`, "role_id"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v := newEnv(t, approle.Config{})
			v.role("r", `{}`)
			before := v.must(logical.OpRead, "role/r", nil).Data
			_, err := v.do(logical.OpUpdate, tc.path, body(t, tc.body))
			if got := invalidField(t, err); got != tc.field {
				t.Fatalf("error %q names field %q, want %q", err, got, tc.field)
			}
			if after := v.must(logical.OpRead, "role/r", nil).Data; !reflect.DeepEqual(before, after) {
				t.Fatalf("a refused write changed the role:\n%v\n%v", before, after)
			}
		})
	}
}

// An update is validated against the merged role: a token_ttl above the
// stored token_max_ttl is refused.
func TestRoleUpdateValidatedAgainstStored(t *testing.T) {
	v := newEnv(t, approle.Config{})
	v.role("r", `{"token_max_ttl": "1h"}`)
	_, err := v.do(logical.OpUpdate, "role/r", body(t, `{"token_ttl": "2h"}`))
	if f := invalidField(t, err); f != "token_ttl" {
		t.Fatalf("field %q", f)
	}
	v.must(logical.OpUpdate, "role/r", body(t, `{"token_ttl": "2h", "token_max_ttl": "3h"}`))
}

func TestRoleID(t *testing.T) {
	v := newEnv(t, approle.Config{})
	idA := v.role("a", `{}`)
	idB := v.role("b", `{}`)
	if len(idA) != 36 || idA == idB {
		t.Fatalf("generated role IDs %q, %q: want distinct UUIDs", idA, idB)
	}
	secret, _ := v.secretID("a", `{}`)

	// A custom role ID replaces the old one, which stops working.
	v.must(logical.OpUpdate, "role/a/role-id", body(t, `{"role_id": "custom-a"}`))
	if got := v.must(logical.OpRead, "role/a/role-id", nil).Data["role_id"]; got != "custom-a" {
		t.Fatalf("role_id = %v", got)
	}
	if _, err := v.login(defaultAddr, idA, secret); !errors.Is(err, logical.ErrPermissionDenied) {
		t.Fatalf("login with the replaced role ID: %v", err)
	}
	if _, err := v.login(defaultAddr, "custom-a", secret); err != nil {
		t.Fatalf("login with the custom role ID: %v", err)
	}
	// Setting the same value again is a no-op.
	v.must(logical.OpUpdate, "role/a/role-id", body(t, `{"role_id": "custom-a"}`))

	// Role IDs are unique across roles, through either path.
	for _, tc := range []struct{ path, body string }{
		{"role/b/role-id", `{"role_id": "custom-a"}`},
		{"role/b", `{"role_id": "custom-a"}`},
		{"role/c", `{"role_id": "custom-a"}`},
	} {
		_, err := v.do(logical.OpUpdate, tc.path, body(t, tc.body))
		if f := invalidField(t, err); f != "role_id" {
			t.Fatalf("%s: field %q", tc.path, f)
		}
	}
	if _, err := v.do(logical.OpRead, "role/c", nil); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("a role refused for its role_id was created: %v", err)
	}
	if got := v.must(logical.OpRead, "role/b/role-id", nil).Data["role_id"]; got != idB {
		t.Fatalf("role b's role_id changed to %v", got)
	}

	// Deleting a role frees its role ID.
	v.must(logical.OpDelete, "role/a", nil)
	v.must(logical.OpUpdate, "role/b/role-id", body(t, `{"role_id": "custom-a"}`))

	if _, err := v.do(logical.OpRead, "role/nope/role-id", nil); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("role-id of a missing role: %v", err)
	}
	if _, err := v.do(logical.OpUpdate, "role/nope/role-id", body(t, `{"role_id": "z"}`)); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("set role-id of a missing role: %v", err)
	}
}

// Concurrent attempts to give two roles the same role ID: exactly one wins.
func TestRoleIDUniqueUnderRace(t *testing.T) {
	v := newEnv(t, approle.Config{})
	const n = 8
	for i := range n {
		v.role(string(rune('a'+i)), `{}`)
	}
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := v.do(logical.OpUpdate, "role/"+string(rune('a'+i))+"/role-id", map[string]any{"role_id": "shared"})
			errs <- err
		}()
	}
	ok := 0
	for range n {
		if err := <-errs; err == nil {
			ok++
		} else if invalidField(t, err) != "role_id" {
			t.Fatal(err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d roles got the same role_id, want 1", ok)
	}
}

func TestUnsupported(t *testing.T) {
	v := newEnv(t, approle.Config{})
	v.role("r", `{}`)
	cases := map[string]struct {
		op   logical.Operation
		path string
		want error
	}{
		"custom secret id path": {logical.OpUpdate, "role/r/custom-secret-id", logical.ErrUnsupportedPath},
		"unknown top level":     {logical.OpRead, "config", logical.ErrUnsupportedPath},
		"too deep":              {logical.OpRead, "role/r/secret-id/lookup/x", logical.ErrUnsupportedPath},
		"read login":            {logical.OpRead, "login", logical.ErrUnsupportedOperation},
		"list a role":           {logical.OpList, "role/r", logical.ErrUnsupportedOperation},
		"delete role-id":        {logical.OpDelete, "role/r/role-id", logical.ErrUnsupportedOperation},
		"read secret-id":        {logical.OpRead, "role/r/secret-id", logical.ErrUnsupportedOperation},
		"missing role":          {logical.OpRead, "role/nope", logical.ErrNotFound},
		"secret-id of missing":  {logical.OpUpdate, "role/nope/secret-id", logical.ErrNotFound},
		"list of missing role":  {logical.OpList, "role/nope/secret-id", logical.ErrNotFound},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := v.do(tc.op, tc.path, nil); !errors.Is(err, tc.want) {
				t.Fatalf("%s %s: %v, want %v", tc.op, tc.path, err, tc.want)
			}
		})
	}
}

func TestExists(t *testing.T) {
	v := newEnv(t, approle.Config{})
	v.role("r", `{}`)
	cases := map[string]bool{
		"role/r":           true,
		"role/other":       false,
		"role/r/secret-id": true, // actions are updates
		"login":            true,
		"role/bad name":    false,
	}
	for path, want := range cases {
		got, err := v.e.Exists(context.Background(), &logical.Request{Operation: logical.OpUpdate, RelativePath: path})
		if err != nil || got != want {
			t.Errorf("Exists(%q) = %v, %v; want %v", path, got, err, want)
		}
	}
}

func TestStorageErrorsAreNotInputErrors(t *testing.T) {
	v := newEnv(t, approle.Config{})
	roleID := v.role("r", `{}`)
	secret, _ := v.secretID("r", `{}`)
	fault := errors.New("disk on fire")
	cases := map[string]struct {
		method inmem.Method
		op     logical.Operation
		path   string
		body   map[string]any
	}{
		"read role":      {inmem.MethodGet, logical.OpRead, "role/r", nil},
		"write role":     {inmem.MethodTxn, logical.OpUpdate, "role/r", map[string]any{"token_ttl": 5}},
		"generate":       {inmem.MethodTxn, logical.OpUpdate, "role/r/secret-id", nil},
		"list secret id": {inmem.MethodList, logical.OpList, "role/r/secret-id", nil},
		"login":          {inmem.MethodGet, logical.OpUpdate, "login", map[string]any{"role_id": roleID, "secret_id": secret}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v.be.SetFault(tc.method, fault)
			defer v.be.ClearFaults()
			_, err := v.do(tc.op, tc.path, tc.body)
			var inv *logical.InvalidRequestError
			if !errors.Is(err, fault) || errors.As(err, &inv) || errors.Is(err, logical.ErrPermissionDenied) || errors.Is(err, logical.ErrNotFound) {
				t.Fatalf("error %v: want the storage fault, not an input or auth error", err)
			}
		})
	}
}

func TestNew(t *testing.T) {
	if _, err := approle.New(nil, approle.Config{}); err == nil {
		t.Fatal("New(nil storage) succeeded")
	}
	if _, err := approle.New(inmem.New(), approle.Config{Burst: -1}); err == nil {
		t.Fatal("New with a negative burst succeeded")
	}
	// A failing random source fails generation, not with a panic.
	e, err := approle.New(inmem.New(), approle.Config{Rand: failingReader{}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.HandleRequest(context.Background(), &logical.Request{Operation: logical.OpCreate, RelativePath: "role/r"})
	if err == nil || !strings.Contains(err.Error(), "random") {
		t.Fatalf("create role with a failing random source: %v", err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestRoleTokenParams(t *testing.T) {
	v := newEnv(t, approle.Config{})
	v.role("r", `{"token_policies": "a,b", "token_ttl": 60, "token_max_ttl": 120, "token_num_uses": 3, "token_bound_cidrs": "10.0.0.0/8"}`)
	p, err := v.e.RoleTokenParams(context.Background(), "r")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(p)
	want := `{"Policies":["a","b"],"TTL":60000000000,"MaxTTL":120000000000,"NumUses":3,"BoundCIDRs":["10.0.0.0/8"]}`
	if string(got) != want {
		t.Fatalf("RoleTokenParams = %s, want %s", got, want)
	}
	v.must(logical.OpDelete, "role/r", nil)
	if _, err := v.e.RoleTokenParams(context.Background(), "r"); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("RoleTokenParams of a deleted role: %v", err)
	}
	if !slices.Equal(p.Policies, []string{"a", "b"}) {
		t.Fatal("policies changed")
	}
}
