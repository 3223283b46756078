package http_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// Scheduled rotation through the REST API of a real core: schedules,
// rotate-now, the KV versions it leaves, the audit trail of its internal
// requests, the ACL, and a schedule surviving a seal and unseal.
func TestRotationEndpoints(t *testing.T) {
	s := newUnsealedServer(t)
	root := s.root
	s.must(200, "PUT", "/v1/secrets/app/api", `{"data":{"user":"app","token":"old-token-value"},"options":{}}`, root)

	// Bad input names the field.
	for body, field := range map[string]string{
		`{"path":"secrets/app/api","key":"token","period":"30s"}`:                    "period",
		`{"path":"secrets/app/api","key":"token","period":"1h","charset":"emoji"}`:   "charset",
		`{"path":"secrets/app/api","key":"token","period":"1h","length":7}`:          "length",
		`{"path":"secrets/app/api","key":"token","period":"1h","grace":"2h"}`:        "grace",
		`{"path":"nowhere/x","key":"token","period":"1h"}`:                           "path",
		`{"path":"secrets/app/api","period":"1h"}`:                                   "key",
		`{"path":"secrets/app/api","key":"token","period":"1h","kind":"database"}`:   "kind",
		`{"path":"secrets/app/api","key":"token","period":"1h","colour":"blue"}`:     "colour",
		`{"path":"secrets/app/api","key":"token","period":"1h","length":"many"}`:     "length",
		`{"path":"secrets/app/api","key":"token","period":"1h","name":"other-name"}`: "name",
	} {
		code, out := s.do("PUT", "/v1/sys/rotation/schedules/api", body, "X-SecretHub-Token", root)
		if code != 400 || !strings.Contains(out, field) {
			t.Errorf("PUT %s: %d %s; want 400 naming %s", body, code, out, field)
		}
	}
	s.must(404, "GET", "/v1/sys/rotation/schedules/api", "", root)

	resp := s.must(200, "PUT", "/v1/sys/rotation/schedules/api",
		`{"path":"secrets/app/api","key":"token","period":"24h","grace":"1h","length":20,"charset":"hex"}`, root)
	if resp.Data["period"] != "24h0m0s" || resp.Data["grace"] != "1h0m0s" || resp.Data["length"] != float64(20) ||
		resp.Data["charset"] != "hex" || resp.Data["kind"] != "kv" || resp.Data["next_rotation"] == "" || resp.Data["last_rotation"] != "" {
		t.Fatalf("created schedule: %v", resp.Data)
	}
	// An update changes only the fields given.
	resp = s.must(200, "POST", "/v1/sys/rotation/schedules/api", `{"grace":"30m"}`, root)
	if resp.Data["grace"] != "30m0s" || resp.Data["length"] != float64(20) || resp.Data["path"] != "secrets/app/api" {
		t.Fatalf("updated schedule: %v", resp.Data)
	}
	list := s.must(200, "LIST", "/v1/sys/rotation/schedules", "", root)
	if keys, _ := list.Data["keys"].([]any); len(keys) != 1 || keys[0] != "api" {
		t.Fatalf("list: %v", list.Data)
	}

	resp = s.must(200, "PUT", "/v1/sys/rotation/rotate/api", "", root)
	if resp.Data["last_version"] != float64(2) || resp.Data["last_error"] != "" {
		t.Fatalf("after rotate: %v", resp.Data)
	}
	if c, _ := resp.Data["cleanup"].(map[string]any); c == nil || c["version"] != float64(1) {
		t.Fatalf("cleanup after rotate: %v", resp.Data["cleanup"])
	}
	latest := s.must(200, "GET", "/v1/secrets/app/api", "", root)
	tok, _ := latest.Data["token"].(string)
	if len(tok) != 20 || strings.Trim(tok, "0123456789abcdef") != "" || latest.Data["user"] != "app" {
		t.Fatalf("rotated secret: %v", latest.Data)
	}
	if prev := s.must(200, "GET", "/v1/secrets/app/api?version=1", "", root); prev.Data["token"] != "old-token-value" {
		t.Fatalf("version 1 during the grace: %v", prev.Data)
	}

	// The rotation's own requests are audited under its name, values
	// HMAC'd like any request's.
	var write bool
	for _, r := range s.records() {
		if strings.Contains(string(r.Canonical), tok) || strings.Contains(string(r.EventJSON), tok) {
			t.Fatalf("audit record %d holds the new value in clear", r.Seq)
		}
		if r.Event.TokenAccessor == "rotation:api" && r.Event.Path == "secrets/app/api" && r.Event.Operation == "update" && r.Event.Result == "ok" {
			write = true
		}
	}
	if !write {
		t.Fatal("no audit record of the rotation's write under rotation:api")
	}

	// Normal ACL: the default policy grants nothing here; a policy does.
	plain := s.createToken("1h", "default")
	s.must(403, "GET", "/v1/sys/rotation/schedules/api", "", plain)
	s.must(403, "PUT", "/v1/sys/rotation/rotate/api", "", plain)
	s.must(204, "PUT", "/v1/sys/policies/acl/rotation-reader",
		`{"policy":"rules:\n- path: sys/rotation/schedules\n  capabilities: [list]\n- path: sys/rotation/schedules/*\n  capabilities: [read]\n"}`, root)
	reader := s.createToken("1h", "rotation-reader")
	s.must(200, "GET", "/v1/sys/rotation/schedules/api", "", reader)
	s.must(200, "LIST", "/v1/sys/rotation/schedules", "", reader)
	s.must(403, "PUT", "/v1/sys/rotation/schedules/api", `{"period":"2h"}`, reader)
	s.must(403, "PUT", "/v1/sys/rotation/rotate/api", "", reader)

	// Seal and unseal: the schedule is kept, the scheduler runs again.
	s.must(204, "PUT", "/v1/sys/seal", "", root)
	s.must(503, "GET", "/v1/sys/rotation/schedules/api", "", root)
	for _, k := range s.keys[:2] {
		if code, out := s.do("PUT", "/v1/sys/unseal", `{"key":"`+k+`"}`); code != 200 {
			t.Fatalf("unseal: %d %s", code, out)
		}
	}
	got := s.must(200, "GET", "/v1/sys/rotation/schedules/api", "", root)
	if got.Data["last_version"] != float64(2) {
		t.Fatalf("schedule after unseal: %v", got.Data)
	}
	s.must(200, "PUT", "/v1/sys/rotation/rotate/api", "", root)

	s.must(204, "DELETE", "/v1/sys/rotation/schedules/api", "", root)
	s.must(404, "GET", "/v1/sys/rotation/schedules/api", "", root)
	s.must(404, "PUT", "/v1/sys/rotation/rotate/api", "", root)
	s.must(405, "DELETE", "/v1/sys/rotation/rotate/api", "", root)
}

// A rotation that cannot run answers the reason, never the value.
func TestRotationFailureReason(t *testing.T) {
	s := newUnsealedServer(t)
	root := s.root
	s.must(200, "PUT", "/v1/secrets/app/gone", `{"data":{"k":"secret-value"},"options":{}}`, root)
	s.must(200, "PUT", "/v1/sys/rotation/schedules/gone", `{"path":"secrets/app/gone","key":"k","period":"1h"}`, root)
	s.must(204, "DELETE", "/v1/secrets/app/gone", "", root)
	code, out := s.do("PUT", "/v1/sys/rotation/rotate/gone", "", "X-SecretHub-Token", root)
	if code != 400 || !strings.Contains(out, "deleted") || strings.Contains(out, "secret-value") {
		t.Fatalf("rotate over a deleted secret: %d %s; want 400 with the reason", code, out)
	}
	got := s.must(200, "GET", "/v1/sys/rotation/schedules/gone", "", root)
	if e, _ := got.Data["last_error"].(string); !strings.Contains(e, "deleted") {
		b, _ := json.Marshal(got.Data)
		t.Fatalf("last_error not recorded: %s", b)
	}
}
