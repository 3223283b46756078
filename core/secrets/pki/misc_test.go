package pki_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/secrets/pki"
)

func TestConfigURLs(t *testing.T) {
	v := newEnv(t, pki.Config{})
	root := v.root(`{"common_name": "Root"}`)
	if got := v.must(logical.OpRead, "config/urls", nil).Data; len(got["issuing_certificates"].([]string)) != 0 {
		t.Fatalf("initial config/urls %v", got)
	}
	v.write("config/urls", `{"issuing_certificates": "https://pki.example.com/v1/pki/ca", "crl_distribution_points": ["https://pki.example.com/v1/pki/crl"]}`)
	// A later write of one field keeps the others (as in Vault).
	v.write("config/urls", `{"ocsp_servers": "https://ocsp.example.com"}`)
	got := v.must(logical.OpRead, "config/urls", nil).Data
	want := map[string][]string{
		"issuing_certificates":    {"https://pki.example.com/v1/pki/ca"},
		"crl_distribution_points": {"https://pki.example.com/v1/pki/crl"},
		"ocsp_servers":            {"https://ocsp.example.com"},
	}
	for k, w := range want {
		if !slices.Equal(got[k].([]string), w) {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
	v.write("roles/r", `{"allow_any_name": true}`)
	leaf := parseCertPEM(t, v.write("issue/r", `{"common_name": "a"}`).Data["certificate"].(string))
	if !slices.Equal(leaf.IssuingCertificateURL, want["issuing_certificates"]) ||
		!slices.Equal(leaf.CRLDistributionPoints, want["crl_distribution_points"]) ||
		!slices.Equal(leaf.OCSPServer, want["ocsp_servers"]) {
		t.Fatalf("leaf URLs %v %v %v", leaf.IssuingCertificateURL, leaf.CRLDistributionPoints, leaf.OCSPServer)
	}
	if err := leaf.CheckSignatureFrom(root); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ body, field, want string }{
		"not a URL":     {`{"ocsp_servers": "ocsp"}`, "ocsp_servers", "not an absolute URI"},
		"wrong scheme":  {`{"issuing_certificates": "ftp://x/ca"}`, "issuing_certificates", "not an http"},
		"unknown field": {`{"enable_templating": true}`, "enable_templating", "unknown field"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := v.do(logical.OpUpdate, "config/urls", body(t, tc.body))
			invalid(t, err, tc.field, tc.want)
		})
	}
	if got := v.must(logical.OpRead, "config/urls", nil).Data["ocsp_servers"]; !slices.Equal(got.([]string), want["ocsp_servers"]) {
		t.Fatalf("refused write changed config/urls: %v", got)
	}
}

func TestCertReadsAndRevoke(t *testing.T) {
	v := newEnv(t, pki.Config{})
	root := v.root(`{"common_name": "Root"}`)
	v.write("roles/r", `{"allow_any_name": true}`)
	d := v.write("issue/r", `{"common_name": "a"}`).Data
	serial := d["serial_number"].(string)
	hyphen := strings.ReplaceAll(serial, ":", "-")

	keys := v.must(logical.OpList, "certs", nil).Data["keys"].([]string)
	if !slices.Contains(keys, hyphen) || !slices.Contains(keys, strings.ReplaceAll(colonHex(root.SerialNumber), ":", "-")) || len(keys) != 2 {
		t.Fatalf("certs %v: want the root's and the leaf's serial, hyphenated", keys)
	}
	for _, form := range []string{serial, hyphen, strings.ToUpper(serial), strings.ReplaceAll(serial, ":", "")} {
		got := v.must(logical.OpRead, "cert/"+form, nil).Data
		if got["certificate"] != d["certificate"] || got["revocation_time"] != int64(0) || got["revocation_time_rfc3339"] != "" {
			t.Fatalf("cert/%s: %v", form, got)
		}
	}
	_, err := v.do(logical.OpRead, "cert/zz", nil)
	invalid(t, err, "serial", "not a serial number")
	if _, err := v.do(logical.OpRead, "cert/01:02", nil); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("unknown serial: %v", err)
	}

	first := v.must(logical.OpUpdate, "revoke", map[string]any{"serial_number": hyphen}).Data
	v.clk.Add(time.Hour)
	again := v.must(logical.OpUpdate, "revoke", map[string]any{"serial_number": serial}).Data
	if first["revocation_time"] != again["revocation_time"] || first["revocation_time_rfc3339"] != "2026-03-04T05:06:07Z" {
		t.Fatalf("revoking twice: %v then %v", first, again)
	}
	for name, tc := range map[string]struct {
		data        map[string]any
		field, want string
	}{
		"unknown serial": {map[string]any{"serial_number": "01:02:03"}, "serial_number", "no certificate with serial 01:02:03"},
		"not a serial":   {map[string]any{"serial_number": "xyz"}, "serial_number", "not a serial number"},
		"missing":        {map[string]any{}, "serial_number", "missing"},
		"unknown field":  {map[string]any{"serial_number": serial, "certificate": "x"}, "certificate", "unknown field"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := v.do(logical.OpUpdate, "revoke", tc.data)
			invalid(t, err, tc.field, tc.want)
		})
	}
	chain := v.must(logical.OpRead, "cert/ca_chain", nil).Data
	if parseCertPEM(t, chain["certificate"].(string)).SerialNumber.Cmp(root.SerialNumber) != 0 {
		t.Fatalf("cert/ca_chain %v", chain)
	}
	if c := v.must(logical.OpRead, "cert/crl", nil).Data["certificate"].(string); !strings.HasPrefix(c, "-----BEGIN X509 CRL-----") {
		t.Fatalf("cert/crl %.40q", c)
	}
}

func TestRouting(t *testing.T) {
	v := newEnv(t, pki.Config{})
	cases := map[string]struct {
		op   logical.Operation
		path string
		want error
	}{
		"unknown path":        {logical.OpRead, "nope", logical.ErrUnsupportedPath},
		"too deep":            {logical.OpUpdate, "issue/a/b", logical.ErrUnsupportedPath},
		"read of issue":       {logical.OpRead, "issue/r", logical.ErrUnsupportedOperation},
		"delete of crl":       {logical.OpDelete, "crl", logical.ErrUnsupportedOperation},
		"list of roles/x":     {logical.OpList, "roles/x", logical.ErrUnsupportedOperation},
		"write of ca":         {logical.OpUpdate, "ca", logical.ErrUnsupportedOperation},
		"generate other type": {logical.OpUpdate, "root/generate/kms", logical.ErrUnsupportedPath},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := v.do(tc.op, tc.path, nil); !errors.Is(err, tc.want) {
				t.Fatalf("%s %s: %v, want %v", tc.op, tc.path, err, tc.want)
			}
		})
	}
	if _, err := v.e.HandleRequest(t.Context(), nil); err == nil {
		t.Fatalf("nil request accepted")
	}
	// Lists work with Vault's trailing slash.
	if _, err := v.do(logical.OpList, "roles/", nil); err != nil {
		t.Fatal(err)
	}
	// Generate fields are checked.
	_, err := v.do(logical.OpUpdate, "root/generate/internal", body(t, `{"common_name": "R", "key_type": "rsa", "key_bits": 1024}`))
	invalid(t, err, "key_bits", "2048, 3072 or 4096")
	_, err = v.do(logical.OpUpdate, "root/generate/internal", body(t, `{}`))
	invalid(t, err, "common_name", "missing")
	_, err = v.do(logical.OpUpdate, "intermediate/generate/internal", body(t, `{"common_name": "I", "ttl": "1h"}`))
	invalid(t, err, "ttl", "unknown field")
}
