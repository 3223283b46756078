package pki_test

import (
	"context"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/url"
	"reflect"
	"slices"
	"testing"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/secrets/pki"
)

func TestRoleCRUD(t *testing.T) {
	v := newEnv(t, pki.Config{})
	exists := func(path string) bool {
		ok, err := v.e.Exists(context.Background(), &logical.Request{Operation: logical.OpUpdate, RelativePath: path})
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if exists("roles/web") {
		t.Fatalf("Exists before the role was written")
	}
	v.write("roles/web", `{"allowed_domains": "example.com, example.org", "allow_subdomains": "true", "ttl": 3600, "max_ttl": "2h"}`)
	if !exists("roles/web") || !exists("issue/web") {
		t.Fatalf("Exists after write: false")
	}
	got := v.must(logical.OpRead, "roles/web", nil).Data
	want := map[string]any{
		"allowed_domains": []string{"example.com", "example.org"}, "allow_subdomains": true,
		"allow_bare_domains": false, "allow_glob_domains": false, "allow_wildcard_certificates": true,
		"allow_localhost": true, "allow_any_name": false, "allow_ip_sans": true, "allowed_uri_sans": []string{},
		"enforce_hostnames": true, "key_type": "ec", "key_bits": 256, "ttl": int64(3600), "max_ttl": int64(7200),
		"server_flag": true, "client_flag": true, "code_signing_flag": false, "email_protection_flag": false,
		"organization": []string{}, "ou": []string{}, "country": []string{}, "locality": []string{},
		"province": []string{}, "street_address": []string{}, "postal_code": []string{},
		"no_store": false, "require_cn": true, "use_csr_common_name": true, "use_csr_sans": true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("role read\n got %v\nwant %v", got, want)
	}
	// What was read can be written back unchanged (Vault clients do this).
	v.must(logical.OpUpdate, "roles/web", got)
	if again := v.must(logical.OpRead, "roles/web", nil).Data; !reflect.DeepEqual(again, got) {
		t.Fatalf("round trip changed the role:\n%v\n%v", got, again)
	}
	// A write replaces the role: fields not given take their defaults.
	v.write("roles/web", `{"key_type": "rsa"}`)
	got = v.must(logical.OpRead, "roles/web", nil).Data
	if got["key_bits"] != 2048 || !reflect.DeepEqual(got["allowed_domains"], []string{}) || got["allow_subdomains"] != false {
		t.Fatalf("replaced role %v", got)
	}
	v.write("roles/api", `{}`)
	if keys := v.must(logical.OpList, "roles", nil).Data["keys"]; !reflect.DeepEqual(keys, []string{"api", "web"}) {
		t.Fatalf("list %v", keys)
	}
	v.must(logical.OpDelete, "roles/web", nil)
	if _, err := v.do(logical.OpRead, "roles/web", nil); !errorsIs(err, logical.ErrNotFound) {
		t.Fatalf("read deleted role: %v", err)
	}
}

func TestRoleWriteRefused(t *testing.T) {
	cases := map[string]struct {
		body, field, want string
	}{
		"unknown field":        {`{"allowed_domain": "x"}`, "allowed_domain", "unknown field"},
		"key type":             {`{"key_type": "dsa"}`, "key_type", "rsa, ec or any"},
		"rsa bits":             {`{"key_type": "rsa", "key_bits": 1024}`, "key_bits", "2048, 3072 or 4096"},
		"ec bits":              {`{"key_type": "ec", "key_bits": 2048}`, "key_bits", "256, 384 or 521"},
		"ttl over max":         {`{"ttl": "2h", "max_ttl": "1h"}`, "ttl", "exceeds max_ttl"},
		"ttl over mount max":   {`{"ttl": "800h"}`, "ttl", "the mount's maximum"},
		"bad ttl":              {`{"ttl": "soon"}`, "ttl", "not a duration"},
		"bool type":            {`{"allow_any_name": 3}`, "allow_any_name", "want a boolean"},
		"domains type":         {`{"allowed_domains": [1]}`, "allowed_domains", "want a string"},
		"non-ascii domain":     {`{"allowed_domains": ["bücher.example"]}`, "allowed_domains", "printable ASCII"},
		"negative bits":        {`{"key_bits": -1}`, "key_bits", "from 0"},
		"fractional max ttl":   {`{"max_ttl": 1.5}`, "max_ttl", "whole number"},
		"control in ou":        {`{"ou": ["a\u0000b"]}`, "ou", "control character"},
		"uri sans with spaces": {`{"allowed_uri_sans": ["spiffe://a b"]}`, "allowed_uri_sans", "printable ASCII"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v := newEnv(t, pki.Config{})
			_, err := v.do(logical.OpUpdate, "roles/r", body(t, tc.body))
			invalid(t, err, tc.field, tc.want)
			if _, err := v.do(logical.OpRead, "roles/r", nil); !errorsIs(err, logical.ErrNotFound) {
				t.Fatalf("refused role was stored: %v", err)
			}
		})
	}
	v := newEnv(t, pki.Config{})
	_, err := v.do(logical.OpUpdate, "roles/a%2Fb", nil)
	invalid(t, err, "name", "role name")
}

// restrictionEnv is a root with the roles of TestRoleRestrictions.
func restrictionEnv(t *testing.T) *env {
	v := newEnv(t, pki.Config{})
	v.root(`{"common_name": "Root"}`)
	v.write("roles/bare", `{"allowed_domains": ["example.com"], "allow_bare_domains": true, "allow_ip_sans": false,
		"allowed_uri_sans": ["spiffe://example.com/*"], "max_ttl": "24h", "key_type": "ec", "key_bits": 384, "allow_localhost": false}`)
	v.write("roles/sub", `{"allowed_domains": ["example.com"], "allow_subdomains": true, "allow_localhost": false,
		"allow_wildcard_certificates": false}`)
	v.write("roles/glob", `{"allowed_domains": ["web-*.example.com"], "allow_glob_domains": true}`)
	v.write("roles/rsa", `{"allow_any_name": true, "key_type": "rsa", "key_bits": 3072}`)
	v.write("roles/csrsans", `{"allowed_domains": ["example.com"], "allow_subdomains": true, "use_csr_sans": false, "use_csr_common_name": false}`)
	return v
}

func TestRoleRestrictions(t *testing.T) {
	v := restrictionEnv(t)
	p384 := ecKey(t, elliptic.P384())
	p256 := ecKey(t, elliptic.P256())
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	csrWith := func(tmpl *x509.CertificateRequest) string {
		der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, p384)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	}
	good := csrPEM(t, p384, "example.com")
	malformed := "-----BEGIN CERTIFICATE REQUEST-----\nMIIBAAAA\n-----END CERTIFICATE REQUEST-----\n"
	uri, _ := url.Parse("spiffe://other.org/x")

	cases := map[string]struct {
		path  string
		data  map[string]any
		field string
		want  string
	}{
		"domain not allowed":                 {"issue/bare", map[string]any{"common_name": "other.org"}, "common_name", "not allowed by this role"},
		"subdomain without allow_subdomains": {"issue/bare", map[string]any{"common_name": "www.example.com"}, "common_name", "not allowed by this role"},
		"alt name not allowed":               {"issue/bare", map[string]any{"common_name": "example.com", "alt_names": "a.example.com"}, "alt_names", "not allowed by this role"},
		"glob does not match":                {"issue/glob", map[string]any{"common_name": "api.example.com"}, "common_name", "not allowed by this role"},
		"glob other domain":                  {"issue/glob", map[string]any{"common_name": "web-1.example.org"}, "common_name", "not allowed by this role"},
		"wildcard disallowed":                {"issue/sub", map[string]any{"common_name": "a.example.com", "alt_names": []any{"*.example.com"}}, "alt_names", "wildcard certificates are not allowed"},
		"localhost disallowed":               {"issue/sub", map[string]any{"common_name": "localhost"}, "common_name", "not allowed by this role"},
		"email of other domain":              {"issue/sub", map[string]any{"common_name": "a.example.com", "alt_names": "ops@evil.org"}, "alt_names", "not allowed by this role"},
		"not a hostname":                     {"issue/sub", map[string]any{"common_name": "bad_host.example.com"}, "common_name", "not a valid host name"},
		"no common name":                     {"issue/sub", map[string]any{}, "common_name", "requires a common name"},
		"IP SAN disallowed":                  {"issue/bare", map[string]any{"common_name": "example.com", "ip_sans": "10.0.0.1"}, "ip_sans", "IP subject alternative names are not allowed"},
		"IP common name disallowed":          {"issue/bare", map[string]any{"common_name": "10.0.0.1"}, "common_name", "IP subject alternative names are not allowed"},
		"bad IP":                             {"issue/sub", map[string]any{"common_name": "a.example.com", "ip_sans": "10.0.0.300"}, "ip_sans", "not an IP address"},
		"URI SAN not matching":               {"issue/bare", map[string]any{"common_name": "example.com", "uri_sans": "spiffe://other.org/x"}, "uri_sans", "does not match the role's allowed_uri_sans"},
		"URI SAN not allowed":                {"issue/sub", map[string]any{"common_name": "a.example.com", "uri_sans": "spiffe://example.com/x"}, "uri_sans", "not allowed by this role"},
		"URI not absolute":                   {"issue/bare", map[string]any{"common_name": "example.com", "uri_sans": "/x"}, "uri_sans", "not an absolute URI"},
		"TTL over max":                       {"issue/bare", map[string]any{"common_name": "example.com", "ttl": "25h"}, "ttl", "exceeds the role's max_ttl"},
		"TTL over mount max":                 {"issue/sub", map[string]any{"common_name": "a.example.com", "ttl": "769h"}, "ttl", "exceeds"},
		"unknown role":                       {"issue/nope", map[string]any{"common_name": "example.com"}, "role", "unknown role"},
		"unknown field":                      {"issue/bare", map[string]any{"common_name": "example.com", "csr": good}, "csr", "unknown field"},
		"bad format":                         {"issue/bare", map[string]any{"common_name": "example.com", "format": "p12"}, "format", "pem, der or pem_bundle"},
		"sign: ec key too small":             {"sign/bare", map[string]any{"csr": csrPEM(t, p256, "example.com")}, "csr", "at least 384 bits"},
		"sign: rsa key for ec role":          {"sign/bare", map[string]any{"csr": csrPEM(t, rsa2048, "example.com")}, "csr", "requires ec keys"},
		"sign: rsa key too small":            {"sign/rsa", map[string]any{"csr": csrPEM(t, rsa2048, "x")}, "csr", "at least 3072 bits"},
		"sign: ec key for rsa role":          {"sign/rsa", map[string]any{"csr": good}, "csr", "requires rsa keys"},
		"sign: malformed CSR":                {"sign/bare", map[string]any{"csr": malformed}, "csr", "malformed certificate request"},
		"sign: not PEM":                      {"sign/bare", map[string]any{"csr": "hello"}, "csr", "not a PEM-encoded"},
		"sign: wrong PEM type":               {"sign/bare", map[string]any{"csr": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, "csr", "not a CERTIFICATE REQUEST"},
		"sign: bad signature":                {"sign/bare", map[string]any{"csr": badSigCSR(t, p384, "example.com")}, "csr", "signature is invalid"},
		"sign: missing CSR":                  {"sign/bare", map[string]any{"common_name": "example.com"}, "csr", "missing"},
		"sign: CSR CN not allowed":           {"sign/bare", map[string]any{"csr": csrPEM(t, p384, "other.org")}, "csr", "not allowed by this role"},
		"sign: CSR SAN not allowed":          {"sign/bare", map[string]any{"csr": csrPEM(t, p384, "example.com", "evil.org")}, "csr", "not allowed by this role"},
		"sign: CSR URI not matching":         {"sign/bare", map[string]any{"csr": csrWith(&x509.CertificateRequest{Subject: pkix.Name{CommonName: "example.com"}, URIs: []*url.URL{uri}})}, "csr", "allowed_uri_sans"},
		"sign: request CN when CSR ignored":  {"sign/csrsans", map[string]any{"csr": csrPEM(t, p384, "a.example.com"), "common_name": "evil.org"}, "common_name", "not allowed"},
		"sign: request SAN when CSR ignored": {"sign/csrsans", map[string]any{"csr": good, "common_name": "a.example.com", "alt_names": "evil.org"}, "alt_names", "not allowed"},
		"sign: TTL over max":                 {"sign/bare", map[string]any{"csr": good, "ttl": 86401}, "ttl", "exceeds"},
		"sign: unknown role":                 {"sign/nope", map[string]any{"csr": good}, "role", "unknown role"},
	}
	before := v.certCount()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := v.do(logical.OpUpdate, tc.path, tc.data)
			invalid(t, err, tc.field, tc.want)
		})
	}
	if after := v.certCount(); after != before {
		t.Fatalf("refused requests stored certificates: %d before, %d after", before, after)
	}
	// The roles do issue what they allow, so the refusals above are about
	// the names, not a broken role.
	for path, data := range map[string]map[string]any{
		"issue/bare":   {"common_name": "example.com", "uri_sans": "spiffe://example.com/ns/a", "ttl": "24h"},
		"issue/sub":    {"common_name": "a.b.example.com", "alt_names": "ops@a.example.com"},
		"issue/glob":   {"common_name": "web-1.example.com"},
		"sign/bare":    {"csr": good},
		"sign/csrsans": {"csr": csrPEM(t, p384, "evil.org", "evil.org"), "common_name": "a.example.com"},
	} {
		if _, err := v.do(logical.OpUpdate, path, data); err != nil {
			t.Errorf("%s %v: %v", path, data, err)
		}
	}
	if after := v.certCount(); after != before+5 {
		t.Fatalf("accepted requests: %d certificates stored, want %d", after-before, 5)
	}
}

func TestNamesAllowed(t *testing.T) {
	v := newEnv(t, pki.Config{})
	v.root(`{"common_name": "Root"}`)
	v.write("roles/default", `{"allowed_domains": "example.com", "allow_subdomains": true}`)
	v.write("roles/bare", `{"allowed_domains": "example.com", "allow_bare_domains": true}`)
	v.write("roles/any", `{"allow_any_name": true, "enforce_hostnames": false}`)
	v.write("roles/globs", `{"allowed_domains": "*.svc.example.com", "allow_glob_domains": true}`)
	cases := map[string]struct {
		role, cn string
		alt      string
		wantDNS  []string
		wantMail []string
	}{
		"subdomain":            {role: "default", cn: "a.b.example.com", wantDNS: []string{"a.b.example.com"}},
		"localhost by default": {role: "default", cn: "localhost", wantDNS: []string{"localhost"}},
		"wildcard by default":  {role: "default", cn: "*.example.com", wantDNS: []string{"*.example.com"}},
		"email subdomain":      {role: "default", cn: "a.example.com", alt: "ops@a.example.com", wantDNS: []string{"a.example.com"}, wantMail: []string{"ops@a.example.com"}},
		"bare, any case":       {role: "bare", cn: "EXAMPLE.com", wantDNS: []string{"EXAMPLE.com"}},
		"bare email":           {role: "bare", cn: "example.com", alt: "ops@example.com", wantDNS: []string{"example.com"}, wantMail: []string{"ops@example.com"}},
		"any name, not a host": {role: "any", cn: "My Service", wantDNS: nil},
		"glob spans labels":    {role: "globs", cn: "db.ns.svc.example.com", wantDNS: []string{"db.ns.svc.example.com"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			data := map[string]any{"common_name": tc.cn}
			if tc.alt != "" {
				data["alt_names"] = tc.alt
			}
			resp, err := v.do(logical.OpUpdate, "issue/"+tc.role, data)
			if err != nil {
				t.Fatal(err)
			}
			c := parseCertPEM(t, resp.Data["certificate"].(string))
			if c.Subject.CommonName != tc.cn || !slices.Equal(c.DNSNames, tc.wantDNS) || !slices.Equal(c.EmailAddresses, tc.wantMail) {
				t.Fatalf("CN %q DNS %v mail %v", c.Subject.CommonName, c.DNSNames, c.EmailAddresses)
			}
		})
	}
}

func TestNoStore(t *testing.T) {
	v := newEnv(t, pki.Config{})
	v.root(`{"common_name": "Root"}`)
	v.write("roles/ephemeral", `{"allow_any_name": true, "no_store": true}`)
	before := v.certCount()
	serial := v.write("issue/ephemeral", `{"common_name": "a"}`).Data["serial_number"].(string)
	if v.certCount() != before {
		t.Fatalf("no_store certificate was stored")
	}
	_, err := v.do(logical.OpUpdate, "revoke", map[string]any{"serial_number": serial})
	invalid(t, err, "serial_number", "no certificate with serial")
	if _, err := v.do(logical.OpRead, "cert/"+serial, nil); !errorsIs(err, logical.ErrNotFound) {
		t.Fatalf("cert read of unstored serial: %v", err)
	}
}
