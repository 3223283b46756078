package kubernetes

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"app", "app", true},
		{"app", "app2", false},
		{"app", "ap", false},
		{"*", "anything", true},
		{"*", "", true},
		{"app-*", "app-web", true},
		{"app-*", "app-", true},
		{"app-*", "app", false},
		{"app-*", "myapp-web", false},
		{"*-prod", "web-prod", true},
		{"*-prod", "web-prod-2", false},
		{"team-*-prod", "team-a-prod", true},
		{"team-*-prod", "team--prod", true},
		{"team-*-prod", "team-prod", false}, // prefix and suffix may not overlap
		{"a*b*c", "abc", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "acb", false},
		{"a*a", "a", false},
		{"a*a", "aa", true},
		{"**", "x", true},
	}
	for _, tc := range cases {
		if got := globMatch(tc.pattern, tc.name); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}

func TestParseGlobs(t *testing.T) {
	good := map[string][]string{
		`["app","app-*","*"]`:   {"app", "app-*", "*"},
		`"a, b ,a"`:             {"a", "b"},
		`["kube-system","x.y"]`: {"kube-system", "x.y"},
	}
	for in, want := range good {
		var v any
		if err := json.Unmarshal([]byte(in), &v); err != nil {
			t.Fatal(err)
		}
		got, err := parseGlobs(v)
		if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("parseGlobs(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{`["App"]`, `["a b"]`, `["-a"]`, `["a_b"]`, `["a/b"]`, `[1]`, `{"a":1}`} {
		var v any
		if err := json.Unmarshal([]byte(in), &v); err != nil {
			t.Fatal(err)
		}
		if got, err := parseGlobs(v); err == nil {
			t.Errorf("parseGlobs(%s) = %q, want an error", in, got)
		}
	}
}

func TestRoleBound(t *testing.T) {
	r := &roleEntry{BoundNames: []string{"app", "worker-*"}, BoundNamespaces: []string{"team-a", "prod-*"}}
	cases := []struct {
		ns, name string
		want     bool
		reason   string
	}{
		{"team-a", "app", true, ""},
		{"prod-eu", "worker-1", true, ""},
		{"team-b", "app", false, "bound_service_account_namespaces"},
		{"team-a", "other", false, "bound_service_account_names"},
		{"team-a", "worker", false, "bound_service_account_names"},
	}
	for _, tc := range cases {
		ok, why := r.bound(tc.ns, tc.name)
		if ok != tc.want || !strings.Contains(why, tc.reason) {
			t.Errorf("bound(%s, %s) = %v %q, want %v mentioning %q", tc.ns, tc.name, ok, why, tc.want, tc.reason)
		}
	}
}

func TestCheckAudience(t *testing.T) {
	cases := []struct {
		want string
		have []string
		ok   bool
	}{
		{"", nil, true},
		{"", []string{"https://kubernetes.default.svc"}, true},
		{"secrethub", []string{"secrethub"}, true},
		{"secrethub", []string{"other", "secrethub"}, true},
		{"secrethub", nil, false},
		{"secrethub", []string{"https://kubernetes.default.svc"}, false},
		{"secrethub", []string{"secrethub2"}, false},
	}
	for _, tc := range cases {
		why := checkAudience(tc.want, tc.have)
		if (why == "") != tc.ok {
			t.Errorf("checkAudience(%q, %q) = %q, want ok=%v", tc.want, tc.have, why, tc.ok)
		}
		if why != "" && !strings.Contains(why, tc.want) {
			t.Errorf("reason %q does not name the audience %q", why, tc.want)
		}
	}
}

func TestSplitServiceAccount(t *testing.T) {
	cases := map[string][2]string{
		"system:serviceaccount:ns:app":  {"ns", "app"},
		"system:serviceaccount:ns:":     {},
		"system:serviceaccount::app":    {},
		"system:serviceaccount:ns:a:b":  {},
		"system:serviceaccount:ns":      {},
		"system:node:n1":                {},
		"admin":                         {},
		"system:serviceaccounts:ns:app": {},
	}
	for in, want := range cases {
		ns, name, ok := splitServiceAccount(in)
		if ok != (want[0] != "") || ns != want[0] || name != want[1] {
			t.Errorf("splitServiceAccount(%q) = %q %q %v, want %q", in, ns, name, ok, want)
		}
	}
}

func jwtWith(t testing.TB, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(payload)) + ".c2ln"
}

func TestParseClaims(t *testing.T) {
	c, err := parseClaims(jwtWith(t, `{"iss":"https://kubernetes.default.svc","sub":"system:serviceaccount:ns:app","aud":["a","b"]}`))
	if err != nil || c.Subject != "system:serviceaccount:ns:app" || strings.Join(c.Audience, ",") != "a,b" || c.Issuer != "https://kubernetes.default.svc" {
		t.Fatalf("parseClaims = %+v, %v", c, err)
	}
	c, err = parseClaims(jwtWith(t, `{"sub":"x","aud":"one"}`))
	if err != nil || strings.Join(c.Audience, ",") != "one" {
		t.Fatalf("single aud: %+v, %v", c, err)
	}
	for name, jwt := range map[string]string{
		"two parts":   "a.b",
		"not base64":  "a.!!!.c",
		"not JSON":    "a." + base64.RawURLEncoding.EncodeToString([]byte("nope")) + ".c",
		"aud numeric": jwtWith(t, `{"aud":3}`),
	} {
		if _, err := parseClaims(jwt); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func TestParseHost(t *testing.T) {
	good := map[string]string{
		"https://10.0.0.1:6443":           "https://10.0.0.1:6443",
		"https://kubernetes.default.svc/": "https://kubernetes.default.svc",
		"kubernetes.default.svc:443":      "https://kubernetes.default.svc:443",
		"http://127.0.0.1:8001":           "http://127.0.0.1:8001",
	}
	for in, want := range good {
		if got, err := parseHost(in); err != nil || got != want {
			t.Errorf("parseHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"ftp://x", "https://", "https://u:p@h", "https://h:99999", "https://h/?a=b", "https://h\x01x"} {
		if got, err := parseHost(in); err == nil {
			t.Errorf("parseHost(%q) = %q, want an error", in, got)
		}
	}
}
