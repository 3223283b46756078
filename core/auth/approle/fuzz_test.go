package approle_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/core/auth/approle"
	"github.com/secrethub/secrethub/core/logical"
)

// FuzzLoginBody sends arbitrary JSON bodies to login. Whatever arrives, the
// engine answers 400, 403 with the one generic message, or — only for the
// right role ID and secret ID — a token.
func FuzzLoginBody(f *testing.F) {
	v := newEnv(f, approle.Config{FailuresPerMinute: -1})
	roleID := v.role("r", `{"token_policies": "p"}`)
	secret, _ := v.secretID("r", `{}`)
	f.Add(`{"role_id": "` + roleID + `", "secret_id": "` + secret + `"}`)
	f.Add(`{"role_id": "` + roleID + `", "secret_id": " ` + secret + `\t"}`)
	f.Add(`{"role_id": "` + roleID + `", "secret_id": "` + secret[:10] + `"}`)
	f.Add(`{"role_id": "` + roleID + `"}`)
	f.Add(`{"role_id": ["` + roleID + `"], "secret_id": ["` + secret + `"]}`)
	f.Add(`{"role_id": 1, "secret_id": null}`)
	f.Add(`{"role_id": {"a": 1}, "secret_id": [1, 2]}`)
	f.Add(`{"role_id": "` + strings.Repeat("x", 600) + `", "secret_id": "y"}`)
	f.Add(`{"role_id": "\u0000", "secret_id": "\ud800"}`)
	f.Add(`{"extra": true}`)
	f.Add(`[]`)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, js string) {
		var data map[string]any
		if err := json.Unmarshal([]byte(js), &data); err != nil {
			// Not an object: present it as a secret ID instead, so the bytes
			// still reach the engine.
			data = map[string]any{"role_id": roleID, "secret_id": js}
		}
		resp, err := v.do(logical.OpUpdate, "login", data)
		var inv *logical.InvalidRequestError
		var le *approle.LoginError
		switch {
		case err == nil:
			rid, _ := data["role_id"].(string)
			sid, _ := data["secret_id"].(string)
			if rl, ok := data["role_id"].([]any); ok && len(rl) == 1 {
				rid, _ = rl[0].(string)
			}
			if sl, ok := data["secret_id"].([]any); ok && len(sl) == 1 {
				sid, _ = sl[0].(string)
			}
			if strings.TrimSpace(rid) != roleID || strings.TrimSpace(sid) != secret {
				t.Fatalf("login succeeded for %q", js)
			}
			if resp == nil || resp.Auth == nil || !reflect.DeepEqual(resp.Auth.Policies, []string{"p"}) {
				t.Fatalf("successful login answered %+v", resp)
			}
		case errors.As(err, &inv):
		case errors.As(err, &le):
			if err.Error() != genericLoginError || !errors.Is(err, logical.ErrPermissionDenied) {
				t.Fatalf("refusal %q", err)
			}
		default:
			t.Fatalf("login(%q): unexpected error %v", js, err)
		}
	})
}

// FuzzRoleBody writes arbitrary JSON bodies to a role. A write either
// fails with a 400 and changes nothing, or succeeds, and then what is read
// back can be written back unchanged.
func FuzzRoleBody(f *testing.F) {
	f.Add(`{"token_policies": ["a", "b"], "token_ttl": "1h", "token_max_ttl": 7200}`)
	f.Add(`{"token_ttl": "2h", "token_max_ttl": "1h"}`)
	f.Add(`{"secret_id_bound_cidrs": "10.0.0.0/8, ::1", "token_bound_cidrs": ["192.0.2.1/24"]}`)
	f.Add(`{"secret_id_num_uses": 1e10, "token_num_uses": "-1"}`)
	f.Add(`{"bind_secret_id": "false"}`)
	f.Add(`{"policies": "root"}`)
	f.Add(`{"role_id": "abc", "secret_id_ttl": "7d"}`)
	f.Add(`{"token_ttl": 1e400}`)
	f.Fuzz(func(t *testing.T, js string) {
		var data map[string]any
		if json.Unmarshal([]byte(js), &data) != nil {
			return
		}
		v := newEnv(t, approle.Config{})
		v.role("r", `{"token_policies": "seed"}`)
		before := v.must(logical.OpRead, "role/r", nil).Data
		_, err := v.do(logical.OpUpdate, "role/r", data)
		after := v.must(logical.OpRead, "role/r", nil).Data
		var inv *logical.InvalidRequestError
		switch {
		case errors.As(err, &inv):
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("refused write %q changed the role", js)
			}
			return
		case err != nil:
			t.Fatalf("write %q: %v", js, err)
		}
		v.must(logical.OpUpdate, "role/r", after)
		if again := v.must(logical.OpRead, "role/r", nil).Data; !reflect.DeepEqual(after, again) {
			t.Fatalf("round trip of %q changed the role:\n%v\n%v", js, after, again)
		}
		// The role still works for login.
		roleID := v.must(logical.OpRead, "role/r/role-id", nil).Data["role_id"].(string)
		secret, _ := v.secretID("r", `{}`)
		if _, err := v.login(defaultAddr, roleID, secret); err != nil && !errors.Is(err, logical.ErrPermissionDenied) {
			t.Fatalf("login after %q: %v", js, err)
		}
	})
}
