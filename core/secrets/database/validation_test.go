package database

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/storage/inmem"
)

// TestValidationNamesTheField: bad input is a 400 naming the field, and
// nothing is stored. None of these cases reaches a database server.
func TestValidationNamesTheField(t *testing.T) {
	good := map[string]any{"plugin_name": "postgresql", "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:1/x", "verify_connection": false}
	with := func(base map[string]any, k string, v any) map[string]any {
		out := map[string]any{}
		for a, b := range base {
			out[a] = b
		}
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
		return out
	}
	role := map[string]any{"db_name": "pg"}
	static := map[string]any{"db_name": "pg", "username": "u", "rotation_period": "1h"}
	for name, tc := range map[string]struct {
		path  string
		data  map[string]any
		field string
	}{
		"unknown config field":   {"config/pg", with(good, "bogus", "x"), "bogus"},
		"no plugin":              {"config/pg", with(good, "plugin_name", nil), "plugin_name"},
		"other plugin":           {"config/pg", with(good, "plugin_name", "mysql-database-plugin"), "plugin_name"},
		"no url":                 {"config/pg", with(good, "connection_url", nil), "connection_url"},
		"password in url":        {"config/pg", with(good, "connection_url", "postgresql://u:hunter2@127.0.0.1/x"), "connection_url"},
		"password in dsn":        {"config/pg", with(good, "connection_url", "host=127.0.0.1 password=hunter2"), "connection_url"},
		"unparsable url":         {"config/pg", with(good, "connection_url", "postgresql://{{username}}@127.0.0.1:notaport/x"), "connection_url"},
		"verify not bool":        {"config/pg", with(good, "verify_connection", "maybe"), "verify_connection"},
		"max conns negative":     {"config/pg", with(good, "max_open_connections", -1), "max_open_connections"},
		"password not a string":  {"config/pg", with(good, "password", 12), "password"},
		"password policy":        {"config/pg", with(good, "password_policy", "strong"), "password_policy"},
		"bad root rotation":      {"config/pg", with(good, "root_rotation_statements", "ALTER ROLE {{nmae}}"), "root_rotation_statements"},
		"bad config name":        {"config/.x", good, "name"},
		"role without db_name":   {"roles/r", map[string]any{}, "db_name"},
		"role unknown field":     {"roles/r", with(role, "creation_statement", "x"), "creation_statement"},
		"unknown placeholder":    {"roles/r", with(role, "creation_statements", `CREATE ROLE "{{user}}"`), "creation_statements"},
		"unclosed placeholder":   {"roles/r", with(role, "creation_statements", `CREATE ROLE "{{name"`), "creation_statements"},
		"unterminated quote":     {"roles/r", with(role, "creation_statements", `CREATE ROLE "{{name}}" PASSWORD '{{password}}`), "creation_statements"},
		"placeholder in comment": {"roles/r", with(role, "creation_statements", `-- {{password}}`+"\nSELECT 1"), "creation_statements"},
		"password in revocation": {"roles/r", with(role, "revocation_statements", `SELECT '{{password}}'`), "revocation_statements"},
		"expiration in rollback": {"roles/r", with(role, "rollback_statements", `SELECT '{{nope}}'`), "rollback_statements"},
		"renew with password":    {"roles/r", with(role, "renew_statements", `ALTER ROLE "{{name}}" PASSWORD '{{password}}'`), "renew_statements"},
		"statements not strings": {"roles/r", with(role, "creation_statements", []any{1}), "creation_statements"},
		"bad ttl":                {"roles/r", with(role, "default_ttl", "soon"), "default_ttl"},
		"ttl over max":           {"roles/r", with(with(role, "default_ttl", "2h"), "max_ttl", "1h"), "default_ttl"},
		"credential type":        {"roles/r", with(role, "credential_type", "rsa_private_key"), "credential_type"},
		"static without user":    {"static-roles/s", with(static, "username", nil), "username"},
		"static short period":    {"static-roles/s", with(static, "rotation_period", "1s"), "rotation_period"},
		"static no period":       {"static-roles/s", with(static, "rotation_period", nil), "rotation_period"},
		"static grace too long":  {"static-roles/s", with(static, "grace_period", "2h"), "grace_period"},
		"static bad statements":  {"static-roles/s", with(static, "rotation_statements", `ALTER ROLE "{{name}}" VALID UNTIL '{{expiration}}'`), "rotation_statements"},
		"static no db":           {"static-roles/s", with(static, "db_name", nil), "db_name"},
	} {
		t.Run(name, func(t *testing.T) {
			e, err := New(inmem.New(), Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			_, err = e.HandleRequest(context.Background(), &logical.Request{Operation: logical.OpUpdate, RelativePath: tc.path, Data: tc.data})
			if got := invalidField(t, err); got != tc.field {
				t.Fatalf("field %q, want %q (%v)", got, tc.field, err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error %q echoes the password", err)
			}
			if ok, _ := e.Exists(context.Background(), &logical.Request{RelativePath: tc.path}); ok && !strings.HasPrefix(tc.path, "config/.") {
				t.Fatal("stored despite the error")
			}
		})
	}
}

// TestPaths: unknown paths and operations.
func TestPaths(t *testing.T) {
	e, err := New(inmem.New(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, tc := range []struct {
		op   logical.Operation
		path string
		want error
	}{
		{logical.OpRead, "nope/x", logical.ErrUnsupportedPath},
		{logical.OpRead, "creds/a/b", logical.ErrUnsupportedPath},
		{logical.OpDelete, "creds/a", logical.ErrUnsupportedOperation},
		{logical.OpRead, "config/missing", logical.ErrNotFound},
		{logical.OpRead, "roles/missing", logical.ErrNotFound},
		{logical.OpList, "roles", logical.ErrNotFound},
		{logical.OpRead, "static-creds/missing", logical.ErrNotFound},
	} {
		if _, err := e.HandleRequest(context.Background(), &logical.Request{Operation: tc.op, RelativePath: tc.path}); !errors.Is(err, tc.want) {
			t.Errorf("%s %s: %v, want %v", tc.op, tc.path, err, tc.want)
		}
	}
}

// TestTemplateQuoting: values are quoted for where their placeholder
// stands, so a hostile value cannot end its quote.
func TestTemplateQuoting(t *testing.T) {
	vals := map[string]string{phName: `a"b'c\d`, phPassword: `p'w`, phExpiration: "2030-01-01 00:00:00+00"}
	for _, tc := range []struct{ in, want string }{
		{`CREATE ROLE "{{name}}" PASSWORD '{{password}}'`, `CREATE ROLE "a""b'c\d" PASSWORD 'p''w'`},
		{`CREATE ROLE {{name}} PASSWORD {{password}}`, `CREATE ROLE "a""b'c\d" PASSWORD 'p''w'`},
		{`SELECT E'{{name}}'`, `SELECT E'a"b''c\\d'`},
		{`SELECT '{{ username }}' -- it's a comment`, `SELECT 'a"b''c\d' -- it's a comment`},
		{`SELECT $tag$ it's "raw" $tag$, '{{expiration}}'`, `SELECT $tag$ it's "raw" $tag$, '2030-01-01 00:00:00+00'`},
	} {
		st, err := parseTemplate(tc.in, []string{phName, phPassword, phExpiration})
		if err != nil || len(st) != 1 {
			t.Fatalf("parse %q: %d statements, %v", tc.in, len(st), err)
		}
		got, err := st[0].render(vals)
		if err != nil || got != tc.want {
			t.Errorf("render %q = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	st, err := parseTemplate(`DO $$ BEGIN CREATE ROLE "{{name}}"; END $$; SELECT 1;`, []string{phName})
	if err != nil || len(st) != 2 {
		t.Fatalf("dollar-quoted body: %d statements, %v", len(st), err)
	}
	if _, err := st[0].render(vals); err == nil {
		t.Fatal("a hostile value was inserted in a dollar-quoted body")
	}
	if got, err := st[0].render(map[string]string{phName: "v-app-x1"}); err != nil || got != `DO $$ BEGIN CREATE ROLE "v-app-x1"; END $$` {
		t.Fatalf("dollar-quoted render = %q, %v", got, err)
	}
}
