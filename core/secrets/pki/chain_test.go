package pki_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/secrets/pki"
	"github.com/secrethub/secrethub/core/storage/inmem"
)

// opensslPath is where the development machines have openssl.
const opensslPath = "/usr/bin/openssl"

// openssl runs openssl with args and returns its combined output; a
// missing openssl fails the test.
func openssl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := os.Stat(opensslPath); err != nil {
		t.Fatalf("openssl is required at %s for this test: %v", opensslPath, err)
	}
	out, err := exec.Command(opensslPath, args...).CombinedOutput()
	return string(out), err
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// chain is a root mount and an intermediate mount signed by it.
type chain struct {
	root, inter *env
	rootCert    *x509.Certificate
	interCert   *x509.Certificate
}

// newChain sets up pki/ (root) and pki_int/ (intermediate), on separate
// storage, sharing one clock, as two mounts of one core would.
func newChain(t *testing.T) *chain {
	t.Helper()
	root := newEnv(t, pki.Config{})
	inter := newEnvOn(t, &countingStore{Backend: newBackend(), gets: map[string]int{}}, root.clk, pki.Config{})
	c := &chain{root: root, inter: inter}
	c.rootCert = root.root(`{"common_name": "Example Root CA", "organization": "Example", "ou": "Security", "country": "NL", "ttl": "87600h"}`)

	csr := inter.write("intermediate/generate/internal", `{"common_name": "Example Intermediate CA", "organization": "Example"}`).Data["csr"].(string)
	signed := root.must(logical.OpUpdate, "root/sign-intermediate", map[string]any{
		"csr": csr, "common_name": "Example Intermediate CA", "ttl": "43800h", "organization": "Example",
	})
	c.interCert = parseCertPEM(t, signed.Data["certificate"].(string))
	if got := signed.Data["issuing_ca"].(string); parseCertPEM(t, got).SerialNumber.Cmp(c.rootCert.SerialNumber) != 0 {
		t.Fatalf("sign-intermediate issuing_ca is not the root")
	}
	bundle := signed.Data["certificate"].(string) + "\n" + strings.Join(signed.Data["ca_chain"].([]string), "\n")
	inter.must(logical.OpUpdate, "intermediate/set-signed", map[string]any{"certificate": bundle})
	return c
}

func TestChainRootIntermediateLeaf(t *testing.T) {
	c := newChain(t)
	now := c.root.clk.Now()

	// The root and the intermediate are CAs with the right extensions.
	for name, ca := range map[string]*x509.Certificate{"root": c.rootCert, "intermediate": c.interCert} {
		if !ca.IsCA || !ca.BasicConstraintsValid || ca.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
			t.Errorf("%s: IsCA %v, key usage %v", name, ca.IsCA, ca.KeyUsage)
		}
		if len(ca.SubjectKeyId) == 0 || len(ca.AuthorityKeyId) == 0 {
			t.Errorf("%s: SKID %x AKID %x", name, ca.SubjectKeyId, ca.AuthorityKeyId)
		}
	}
	if !bytes.Equal(c.interCert.AuthorityKeyId, c.rootCert.SubjectKeyId) {
		t.Errorf("intermediate AKID %x, root SKID %x", c.interCert.AuthorityKeyId, c.rootCert.SubjectKeyId)
	}
	if k, ok := c.rootCert.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve.Params().BitSize != 384 {
		t.Errorf("root key %T, want EC P-384 by default", c.rootCert.PublicKey)
	}
	if got := c.rootCert.NotAfter.Sub(now); got != 87600*time.Hour {
		t.Errorf("root lifetime %s", got)
	}
	if c.rootCert.Subject.Organization[0] != "Example" || c.rootCert.Subject.OrganizationalUnit[0] != "Security" || c.rootCert.Subject.Country[0] != "NL" {
		t.Errorf("root subject %v", c.rootCert.Subject)
	}

	c.inter.write("roles/web", `{"allowed_domains": ["example.com"], "allow_subdomains": true, "max_ttl": "720h", "organization": "Example Org", "ou": "Web"}`)
	resp := c.inter.write("issue/web", `{"common_name": "www.example.com", "alt_names": "api.example.com", "ip_sans": "10.0.0.1", "ttl": "24h"}`)
	d := resp.Data
	leaf := parseCertPEM(t, d["certificate"].(string))

	// crypto/x509 verifies the chain against the root alone.
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: chainPool(c.rootCert), Intermediates: chainPool(c.interCert), CurrentTime: now,
		DNSName: "api.example.com",
	}); err != nil {
		t.Fatalf("x509 verify: %v", err)
	}

	// The response is Vault's: serial in colon hex, expiration in Unix
	// seconds, the issuing CA and its chain up to the root, the key.
	if want := colonHex(leaf.SerialNumber); d["serial_number"] != want {
		t.Errorf("serial_number %v, want %s", d["serial_number"], want)
	}
	if !regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2})+$`).MatchString(d["serial_number"].(string)) {
		t.Errorf("serial_number %q not colon hex", d["serial_number"])
	}
	if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %s: want positive, at most 128 bits", leaf.SerialNumber)
	}
	if d["expiration"] != leaf.NotAfter.Unix() {
		t.Errorf("expiration %v, NotAfter %s", d["expiration"], leaf.NotAfter)
	}
	if parseCertPEM(t, d["issuing_ca"].(string)).SerialNumber.Cmp(c.interCert.SerialNumber) != 0 {
		t.Errorf("issuing_ca is not the intermediate")
	}
	chainPEMs := d["ca_chain"].([]string)
	if len(chainPEMs) != 2 || parseCertPEM(t, chainPEMs[1]).SerialNumber.Cmp(c.rootCert.SerialNumber) != 0 {
		t.Errorf("ca_chain has %d certificates, want intermediate then root", len(chainPEMs))
	}
	if d["private_key_type"] != "ec" {
		t.Errorf("private_key_type %v", d["private_key_type"])
	}
	keyBlock, _ := pem.Decode([]byte(d["private_key"].(string)))
	if keyBlock == nil || keyBlock.Type != "EC PRIVATE KEY" {
		t.Fatalf("private_key is not an EC PEM key")
	}
	key, err := x509.ParseECPrivateKey(keyBlock.Bytes)
	if err != nil || !key.PublicKey.Equal(leaf.PublicKey) || key.Curve.Params().BitSize != 256 {
		t.Fatalf("private key does not match the certificate or is not P-256: %v", err)
	}

	// Validity, key usage, names and subject.
	if !leaf.NotBefore.Equal(now.Add(-30*time.Second)) || !leaf.NotAfter.Equal(now.Add(24*time.Hour)) {
		t.Errorf("validity %s .. %s, now %s", leaf.NotBefore, leaf.NotAfter, now)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature || !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
		t.Errorf("key usage %v ext %v", leaf.KeyUsage, leaf.ExtKeyUsage)
	}
	if leaf.IsCA || !bytes.Equal(leaf.AuthorityKeyId, c.interCert.SubjectKeyId) || len(leaf.SubjectKeyId) == 0 {
		t.Errorf("leaf IsCA %v AKID %x SKID %x", leaf.IsCA, leaf.AuthorityKeyId, leaf.SubjectKeyId)
	}
	if !slices.Equal(leaf.DNSNames, []string{"www.example.com", "api.example.com"}) || len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != "10.0.0.1" {
		t.Errorf("SANs %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if leaf.Subject.CommonName != "www.example.com" || !slices.Equal(leaf.Subject.Organization, []string{"Example Org"}) || !slices.Equal(leaf.Subject.OrganizationalUnit, []string{"Web"}) {
		t.Errorf("subject %v", leaf.Subject)
	}

	// openssl agrees.
	dir := t.TempDir()
	rootPath := writeFile(t, dir, "root.pem", []byte(pemOf(c.rootCert)))
	intPath := writeFile(t, dir, "int.pem", []byte(pemOf(c.interCert)))
	leafPath := writeFile(t, dir, "leaf.pem", []byte(d["certificate"].(string)+"\n"))
	at := fmt.Sprint(now.Unix())
	if out, err := openssl(t, "verify", "-attime", at, "-CAfile", rootPath, "-untrusted", intPath, leafPath); err != nil || !strings.Contains(out, "leaf.pem: OK") {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
	// ... and refuses the leaf without the intermediate, so the check above
	// can fail.
	if out, err := openssl(t, "verify", "-attime", at, "-CAfile", rootPath, leafPath); err == nil {
		t.Fatalf("openssl verify without the intermediate passed:\n%s", out)
	}

	// Revoke the leaf: it appears in the intermediate's CRL, signed by the
	// intermediate, for crypto/x509 and for openssl.
	rev := c.inter.must(logical.OpUpdate, "revoke", map[string]any{"serial_number": d["serial_number"]})
	if rev.Data["revocation_time"] != now.Unix() {
		t.Errorf("revocation_time %v, want %d", rev.Data["revocation_time"], now.Unix())
	}
	crlResp := c.inter.must(logical.OpRead, "crl", nil)
	if crlResp.RawContentType != "application/pkix-crl" {
		t.Errorf("crl content type %q", crlResp.RawContentType)
	}
	crl, err := x509.ParseRevocationList(crlResp.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(c.interCert); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	if err := crl.CheckSignatureFrom(c.rootCert); err == nil {
		t.Fatalf("CRL verifies against the root too: the check cannot fail")
	}
	if !crlHas(crl, leaf.SerialNumber) {
		t.Fatalf("revoked serial missing from the CRL")
	}
	if !crl.NextUpdate.Equal(now.Add(72*time.Hour)) || !bytes.Equal(crl.AuthorityKeyId, c.interCert.SubjectKeyId) {
		t.Errorf("CRL next update %s, AKID %x", crl.NextUpdate, crl.AuthorityKeyId)
	}
	crlPath := writeFile(t, dir, "crl.der", crlResp.Raw)
	out, err := openssl(t, "crl", "-inform", "DER", "-text", "-noout", "-in", crlPath)
	if err != nil {
		t.Fatalf("openssl crl: %v\n%s", err, out)
	}
	// openssl prints a serial's bytes in upper-case hex, without colons.
	if want := "Serial Number: " + strings.ToUpper(strings.ReplaceAll(colonHex(leaf.SerialNumber), ":", "")) + "\n"; !strings.Contains(out, want) {
		t.Fatalf("openssl crl output lacks %q:\n%s", want, out)
	}
	// openssl checks the CRL's signature with the intermediate, and the
	// leaf against the CRL.
	if out, err := openssl(t, "crl", "-inform", "DER", "-in", crlPath, "-noout", "-CAfile", intPath); err != nil || !strings.Contains(out, "verify OK") {
		t.Fatalf("openssl crl signature: %v\n%s", err, out)
	}
	crlPEMPath := writeFile(t, dir, "crl.pem", c.inter.must(logical.OpRead, "crl/pem", nil).Raw)
	out, err = openssl(t, "verify", "-attime", at, "-crl_check", "-CAfile", rootPath, "-untrusted", intPath, "-CRLfile", crlPEMPath, leafPath)
	if err == nil || !strings.Contains(out, "certificate revoked") {
		t.Fatalf("openssl verify -crl_check of a revoked leaf: %v\n%s", err, out)
	}

	// cert/:serial shows the revocation; the CRL number rises with each
	// revocation.
	got := c.inter.must(logical.OpRead, "cert/"+strings.ReplaceAll(d["serial_number"].(string), ":", "-"), nil).Data
	if got["revocation_time"] != now.Unix() || parseCertPEM(t, got["certificate"].(string)).SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("cert read %v", got)
	}
	other := c.inter.write("issue/web", `{"common_name": "b.example.com"}`).Data["serial_number"]
	c.inter.must(logical.OpUpdate, "revoke", map[string]any{"serial_number": other})
	crl2, err := x509.ParseRevocationList(c.inter.must(logical.OpRead, "crl", nil).Raw)
	if err != nil {
		t.Fatal(err)
	}
	if crl2.Number.Cmp(crl.Number) <= 0 || len(crl2.RevokedCertificateEntries) != 2 {
		t.Errorf("second CRL number %s (first %s), %d entries", crl2.Number, crl.Number, len(crl2.RevokedCertificateEntries))
	}
}

func colonHex(n *big.Int) string {
	b := n.Bytes()
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}

func pemOf(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

func crlHas(crl *x509.RevocationList, serial *big.Int) bool {
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return true
		}
	}
	return false
}

func TestLeafNeverOutlivesCA(t *testing.T) {
	v := newEnv(t, pki.Config{})
	root := v.root(`{"common_name": "Short Root", "ttl": "48h"}`)
	v.write("roles/r", `{"allow_any_name": true, "max_ttl": "8760h"}`)
	leaf := parseCertPEM(t, v.write("issue/r", `{"common_name": "a.example", "ttl": "720h"}`).Data["certificate"].(string))
	if !leaf.NotAfter.Equal(root.NotAfter) {
		t.Fatalf("leaf NotAfter %s, CA NotAfter %s", leaf.NotAfter, root.NotAfter)
	}
	// Once the CA expired, nothing is issued.
	v.clk.Add(49 * time.Hour)
	_, err := v.do(logical.OpUpdate, "issue/r", body(t, `{"common_name": "a.example"}`))
	invalid(t, err, "", "expired")
}

func TestIssueRSAAndFormats(t *testing.T) {
	v := newEnv(t, pki.Config{})
	root := v.root(`{"common_name": "Root"}`)
	v.write("roles/rsa", `{"allow_any_name": true, "key_type": "rsa", "key_bits": 2048, "server_flag": false}`)

	d := v.write("issue/rsa", `{"common_name": "svc.internal", "format": "der", "private_key_format": "pkcs8"}`).Data
	der, err := decodeB64(d["certificate"].(string))
	if err != nil {
		t.Fatalf("der certificate is not base64: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := leaf.PublicKey.(*rsa.PublicKey); !ok || k.N.BitLen() != 2048 {
		t.Fatalf("leaf key %T", leaf.PublicKey)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment || !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("RSA leaf key usage %v ext %v", leaf.KeyUsage, leaf.ExtKeyUsage)
	}
	keyDER, err := decodeB64(d["private_key"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x509.ParsePKCS8PrivateKey(keyDER); err != nil {
		t.Fatalf("private key is not PKCS#8 DER: %v", err)
	}
	if d["private_key_type"] != "rsa" {
		t.Errorf("private_key_type %v", d["private_key_type"])
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: chainPool(root), CurrentTime: v.clk.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}

	// pem_bundle: key, certificate, then the chain, in one string.
	b := v.write("issue/rsa", `{"common_name": "svc.internal", "format": "pem_bundle"}`).Data["certificate"].(string)
	var types []string
	for rest := []byte(b); ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		types = append(types, blk.Type)
	}
	if !slices.Equal(types, []string{"RSA PRIVATE KEY", "CERTIFICATE", "CERTIFICATE"}) {
		t.Fatalf("pem_bundle holds %v", types)
	}
}

func TestRootLifecycle(t *testing.T) {
	v := newEnv(t, pki.Config{})
	// Nothing to sign with yet.
	v.write("roles/r", `{"allow_any_name": true}`)
	_, err := v.do(logical.OpUpdate, "issue/r", body(t, `{"common_name": "x"}`))
	if err != pki.ErrNoCA {
		t.Fatalf("issue without CA: %v, want ErrNoCA", err)
	}
	invalid(t, err, "", "no CA")
	if _, err := v.do(logical.OpRead, "ca/pem", nil); !errorsIs(err, logical.ErrNotFound) {
		t.Fatalf("ca/pem without CA: %v", err)
	}

	resp := v.write("root/generate/exported", `{"common_name": "Root", "key_type": "ec", "key_bits": 256}`)
	first := parseCertPEM(t, resp.Data["certificate"].(string))
	block, _ := pem.Decode([]byte(resp.Data["private_key"].(string)))
	if block == nil {
		t.Fatalf("exported root has no private_key")
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil || !key.PublicKey.Equal(first.PublicKey) {
		t.Fatalf("exported key does not match the root: %v", err)
	}
	if resp.Data["private_key_type"] != "ec" || resp.Data["expiration"] != first.NotAfter.Unix() {
		t.Errorf("root response %v", resp.Data)
	}
	// internal does not return the key.
	if _, err := v.do(logical.OpUpdate, "root/generate/internal", body(t, `{"common_name": "Again"}`)); err != pki.ErrCAExists {
		t.Fatalf("second root: %v, want ErrCAExists", err)
	}
	// The raw CA endpoints.
	if raw := v.must(logical.OpRead, "ca", nil); !bytes.Equal(raw.Raw, first.Raw) || raw.RawContentType != "application/pkix-cert" {
		t.Errorf("ca raw %q", raw.RawContentType)
	}
	if raw := v.must(logical.OpRead, "ca/pem", nil); parseCertPEM(t, string(raw.Raw)).SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("ca/pem is not the root")
	}
	if got := v.must(logical.OpRead, "cert/ca", nil).Data["certificate"].(string); parseCertPEM(t, got).SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("cert/ca is not the root")
	}
	// Revoking the CA's own serial is refused.
	_, err = v.do(logical.OpUpdate, "revoke", map[string]any{"serial_number": resp.Data["serial_number"]})
	invalid(t, err, "serial_number", "own CA")

	oldLeaf := v.write("issue/r", `{"common_name": "old"}`).Data["serial_number"]
	v.must(logical.OpDelete, "root", nil)
	second := v.root(`{"common_name": "Root 2"}`)
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatalf("new root has the old serial")
	}
	internal := v.must(logical.OpRead, "cert/ca", nil).Data
	if parseCertPEM(t, internal["certificate"].(string)).SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Fatalf("cert/ca is not the new root")
	}
	// A certificate of the old root revoked later is not on the new root's
	// CRL (it would be meaningless there), though it is recorded.
	v.must(logical.OpUpdate, "revoke", map[string]any{"serial_number": oldLeaf})
	if got := v.must(logical.OpRead, "cert/"+oldLeaf.(string), nil).Data["revocation_time"]; got == int64(0) {
		t.Fatalf("old root's certificate not marked revoked")
	}
	crl, err := x509.ParseRevocationList(v.must(logical.OpRead, "crl", nil).Raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(second); err != nil || len(crl.RevokedCertificateEntries) != 0 {
		t.Fatalf("new root CRL: %v, %d entries", err, len(crl.RevokedCertificateEntries))
	}
}

func TestSetSignedChecks(t *testing.T) {
	root := newEnv(t, pki.Config{})
	rootCert := root.root(`{"common_name": "Root"}`)
	root.write("roles/any", `{"allow_any_name": true, "enforce_hostnames": false, "key_type": "any"}`)
	inter := newEnvOn(t, &countingStore{Backend: newBackend(), gets: map[string]int{}}, root.clk, pki.Config{})
	setSigned := func(cert string) error {
		_, err := inter.do(logical.OpUpdate, "intermediate/set-signed", map[string]any{"certificate": cert})
		return err
	}
	signInt := func(csr string) string {
		return root.must(logical.OpUpdate, "root/sign-intermediate", map[string]any{"csr": csr}).Data["certificate"].(string)
	}

	invalid(t, setSigned(pemOf(rootCert)), "certificate", "no pending intermediate key")

	gen := inter.write("intermediate/generate/exported", `{"common_name": "Int", "key_type": "ec", "key_bits": 256}`).Data
	block, _ := pem.Decode([]byte(gen["private_key"].(string)))
	pendingKey, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	csrBlock, _ := pem.Decode([]byte(gen["csr"].(string)))
	csr, err := x509.ParseCertificateRequest(csrBlock.Bytes)
	if err != nil || csr.CheckSignature() != nil || !pendingKey.PublicKey.Equal(csr.PublicKey) || csr.Subject.CommonName != "Int" {
		t.Fatalf("intermediate CSR: %v", err)
	}

	cases := map[string]struct {
		cert string
		want string
	}{
		"garbage":         {"not pem", "no PEM certificate"},
		"another key":     {signInt(csrPEM(t, ecKey(t, elliptic.P256()), "Other")), "does not match the pending intermediate key"},
		"not a CA":        {root.write("sign/any", `{"csr": `+jsonString(csrPEM(t, pendingKey, "leaf"))+`}`).Data["certificate"].(string), "not a CA"},
		"chain not order": {signInt(gen["csr"].(string)) + "\n" + pemOf(parseCertPEM(t, signInt(csrPEM(t, ecKey(t, elliptic.P256()), "X")))), "not signed by"},
		"private key":     {gen["private_key"].(string), "not a CERTIFICATE"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			invalid(t, setSigned(tc.cert), "certificate", tc.want)
		})
	}
	if inter.certCount() != 0 {
		t.Fatalf("refused imports stored certificates")
	}
	if _, err := inter.do(logical.OpRead, "ca", nil); !errorsIs(err, logical.ErrNotFound) {
		t.Fatalf("refused imports set a CA: %v", err)
	}

	if err := setSigned(signInt(gen["csr"].(string))); err != nil {
		t.Fatal(err)
	}
	if err := setSigned(signInt(gen["csr"].(string))); err != pki.ErrCAExists {
		t.Fatalf("second set-signed: %v", err)
	}
	// Without the root in the imported chain, ca_chain is the intermediate
	// alone.
	if got := inter.must(logical.OpRead, "cert/ca_chain", nil).Data["ca_chain"].([]string); len(got) != 1 {
		t.Fatalf("ca_chain %d certificates", len(got))
	}
}

func TestSignIntermediatePathLength(t *testing.T) {
	cases := map[string]struct {
		rootMPL   int
		request   string
		wantField string
		wantErr   string
		wantMPL   int
		wantZero  bool
	}{
		"unlimited root, default":  {rootMPL: -1, wantMPL: -1},
		"unlimited root, 0":        {rootMPL: -1, request: `, "max_path_length": 0`, wantMPL: 0, wantZero: true},
		"root 2, default":          {rootMPL: 2, wantMPL: 1},
		"root 1, asks 1":           {rootMPL: 1, request: `, "max_path_length": 1`, wantField: "max_path_length", wantErr: "at most 0"},
		"root 0 signs no CA":       {rootMPL: 0, wantField: "csr", wantErr: "only leaf"},
		"bad max_path_length type": {rootMPL: -1, request: `, "max_path_length": "x"`, wantField: "max_path_length", wantErr: "not a whole number"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v := newEnv(t, pki.Config{})
			v.root(fmt.Sprintf(`{"common_name": "Root", "max_path_length": %d}`, tc.rootMPL))
			csr := csrPEM(t, ecKey(t, elliptic.P256()), "Int")
			resp, err := v.do(logical.OpUpdate, "root/sign-intermediate", body(t, `{"csr": `+jsonString(csr)+tc.request+`}`))
			if tc.wantErr != "" {
				invalid(t, err, tc.wantField, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := parseCertPEM(t, resp.Data["certificate"].(string))
			if !c.IsCA || c.MaxPathLen != tc.wantMPL || c.MaxPathLenZero != tc.wantZero {
				t.Fatalf("IsCA %v MaxPathLen %d zero %v", c.IsCA, c.MaxPathLen, c.MaxPathLenZero)
			}
		})
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func decodeB64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func newBackend() *inmem.Backend { return inmem.New() }
