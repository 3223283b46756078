package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/secrethub/secrethub/internal/pgtest"
)

// TestPKIOnPostgres drives the PKI engine with the Vault client's
// Logical() and with the CLI against a server on Postgres: root,
// intermediate, role, issue, sign, revoke, CRL; the chain verifies with
// openssl, the revoked serial is in the CRL, and a restart keeps the CA and
// the issued certificates.
func TestPKIOnPostgres(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	env := []string{"DATABASE_URL=" + dbURL}
	srv := startServer(t, env, "-listen-address", "127.0.0.1:0")
	vc := vaultClient(t, srv.addr)
	init, err := vc.Sys().Init(&vault.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vc.Sys().Unseal(init.Keys[0]); err != nil {
		t.Fatal(err)
	}
	vc.SetToken(init.RootToken)
	l := vc.Logical()
	for _, m := range []string{"pki", "pki_int"} {
		if err := vc.Sys().Mount(m, &vault.MountInput{Type: "pki"}); err != nil {
			t.Fatalf("mount %s: %v", m, err)
		}
	}
	root, err := l.Write("pki/root/generate/internal", map[string]any{"common_name": "Example Root", "key_type": "ec", "key_bits": 384, "ttl": "87600h"})
	if err != nil || root.Data["certificate"] == nil || root.Data["private_key"] != nil {
		t.Fatalf("root: %+v, %v", root, err)
	}
	// The intermediate through the CLI: generate, sign on pki, set-signed.
	cliEnv := []string{"SECRETHUB_ADDR=" + srv.addr, "SECRETHUB_TOKEN=" + init.RootToken}
	mustCLI(t, cliEnv, "pki", "intermediate", "-mount", "pki_int", "-root-mount", "pki", "-common-name", "Example Intermediate")
	mustCLI(t, cliEnv, "pki", "role", "web", "-mount", "pki_int", "-allowed-domains", "example.com", "-allow-subdomains", "-max-ttl", "72h")
	if _, err := l.Write("pki_int/roles/default", map[string]any{"allowed_domains": "example.com", "allow_subdomains": true}); err != nil {
		t.Fatal(err)
	}
	leaf, err := l.Write("pki_int/issue/web", map[string]any{"common_name": "api.example.com", "ttl": "24h"})
	if err != nil || leaf.Data["private_key"] == nil {
		t.Fatalf("issue: %+v, %v", leaf, err)
	}
	if _, err := l.Write("pki_int/issue", map[string]any{"common_name": "db.example.com"}); err != nil {
		t.Fatalf("seed issue path (default role): %v", err)
	}
	for name, body := range map[string]map[string]any{
		"name the role forbids": {"common_name": "evil.org"},
		"ttl over max":          {"common_name": "a.example.com", "ttl": "100h"},
	} {
		if _, err := l.Write("pki_int/issue/web", body); err == nil || !strings.Contains(err.Error(), "400") {
			t.Fatalf("%s: %v, want a 400", name, err)
		}
	}
	if _, err := l.Write("pki_int/issue/nope", map[string]any{"common_name": "a.example.com"}); err == nil {
		t.Fatal("unknown role issued")
	}

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rootPEM := write("root.pem", root.Data["certificate"].(string))
	intPEM := write("int.pem", leaf.Data["issuing_ca"].(string))
	leafPEM := write("leaf.pem", leaf.Data["certificate"].(string))
	if out, err := exec.Command("openssl", "verify", "-CAfile", rootPEM, "-untrusted", intPEM, leafPEM).CombinedOutput(); err != nil {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
	// Public CA endpoints answer without a token.
	anon := vaultClient(t, srv.addr)
	caPEM, err := anon.Logical().ReadRawWithDataWithContext(context.Background(), "pki_int/ca/pem", nil)
	if err != nil || caPEM.StatusCode != 200 {
		t.Fatalf("ca/pem without a token: %v", err)
	}
	caPEM.Body.Close()

	serial := leaf.Data["serial_number"].(string)
	mustCLI(t, cliEnv, "pki", "revoke", serial, "-mount", "pki_int")
	crl := write("crl.pem", mustCLI(t, cliEnv, "pki", "crl", "-mount", "pki_int"))
	out, err := exec.Command("openssl", "crl", "-in", crl, "-noout", "-text").CombinedOutput()
	if err != nil || !strings.Contains(strings.ToUpper(string(out)), strings.ToUpper(strings.ReplaceAll(serial, ":", ""))) {
		t.Fatalf("openssl crl does not list %s: %v\n%s", serial, err, out)
	}

	// Restart: the CA, the issued certificate and its revocation are kept.
	srv.stop(t)
	srv = startServer(t, env, "-listen-address", "127.0.0.1:0")
	vc = vaultClient(t, srv.addr)
	if _, err := vc.Sys().Unseal(init.Keys[0]); err != nil {
		t.Fatal(err)
	}
	vc.SetToken(init.RootToken)
	got, err := vc.Logical().Read("pki_int/cert/" + serial)
	if err != nil || got == nil || got.Data["certificate"] != leaf.Data["certificate"] || got.Data["revocation_time"] == nil {
		t.Fatalf("cert after restart: %+v, %v", got, err)
	}
	again, err := vc.Logical().Write("pki_int/issue/web", map[string]any{"common_name": "api.example.com"})
	if err != nil {
		t.Fatalf("issue after restart: %v", err)
	}
	block, _ := pem.Decode([]byte(again.Data["certificate"].(string)))
	cert, _ := x509.ParseCertificate(block.Bytes)
	intBlock, _ := pem.Decode([]byte(leaf.Data["issuing_ca"].(string)))
	intCert, _ := x509.ParseCertificate(intBlock.Bytes)
	if err := cert.CheckSignatureFrom(intCert); err != nil {
		t.Fatalf("after restart the intermediate changed: %v", err)
	}
}
