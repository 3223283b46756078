package pki_test

import (
	"crypto/x509"
	"fmt"
	"math/big"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/secrets/pki"
)

func TestRestartPersistence(t *testing.T) {
	c := newChain(t)
	c.inter.write("roles/web", `{"allowed_domains": "example.com", "allow_subdomains": true}`)
	c.inter.write("config/urls", `{"crl_distribution_points": "https://pki.example.com/v1/pki_int/crl"}`)
	a := c.inter.write("issue/web", `{"common_name": "a.example.com"}`).Data["serial_number"].(string)
	b := c.inter.write("issue/web", `{"common_name": "b.example.com"}`).Data["serial_number"].(string)
	c.inter.must(logical.OpUpdate, "revoke", map[string]any{"serial_number": a})
	crl1, err := x509.ParseRevocationList(c.inter.must(logical.OpRead, "crl", nil).Raw)
	if err != nil {
		t.Fatal(err)
	}
	certsBefore := c.inter.must(logical.OpList, "certs", nil).Data["keys"]

	r := c.inter.restart()
	// The CA, its chain and the stored certificates are read back.
	if got := parseCertPEM(t, string(r.must(logical.OpRead, "ca/pem", nil).Raw)); !got.Equal(c.interCert) {
		t.Fatalf("CA after restart is %s", got.Subject)
	}
	if got := strings.Count(string(r.must(logical.OpRead, "ca_chain", nil).Raw), "BEGIN CERTIFICATE"); got != 2 {
		t.Fatalf("ca_chain after restart holds %d certificates", got)
	}
	if got := r.must(logical.OpList, "certs", nil).Data["keys"]; !reflect.DeepEqual(got, certsBefore) {
		t.Fatalf("certs after restart %v, before %v", got, certsBefore)
	}
	if got := r.must(logical.OpRead, "cert/"+a, nil).Data["revocation_time"]; got != c.root.clk.Now().Unix() {
		t.Fatalf("revocation of %s after restart: %v", a, got)
	}
	// The new engine signs with the stored key, the URLs still apply, and
	// revocation continues the CRL numbering.
	leaf := parseCertPEM(t, r.write("issue/web", `{"common_name": "c.example.com"}`).Data["certificate"].(string))
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: chainPool(c.rootCert), Intermediates: chainPool(c.interCert), CurrentTime: r.clk.Now()}); err != nil {
		t.Fatalf("leaf issued after restart: %v", err)
	}
	if !slices.Equal(leaf.CRLDistributionPoints, []string{"https://pki.example.com/v1/pki_int/crl"}) {
		t.Fatalf("CRL distribution points after restart: %v", leaf.CRLDistributionPoints)
	}
	r.must(logical.OpUpdate, "revoke", map[string]any{"serial_number": b})
	crl2, err := x509.ParseRevocationList(r.must(logical.OpRead, "crl", nil).Raw)
	if err != nil {
		t.Fatal(err)
	}
	if crl2.Number.Int64() != crl1.Number.Int64()+1 || len(crl2.RevokedCertificateEntries) != 2 {
		t.Fatalf("CRL after restart: number %s (before %s), %d entries", crl2.Number, crl1.Number, len(crl2.RevokedCertificateEntries))
	}
}

// TestCAKeyCached checks that issuing does not read the CA from storage
// after the first time, and that a CA change is seen at once.
func TestCAKeyCached(t *testing.T) {
	v := newEnv(t, pki.Config{})
	v.root(`{"common_name": "Root"}`)
	v.write("roles/r", `{"allow_any_name": true}`)
	r := v.restart()
	caGets, urlGets := v.store.getsOf("config/ca"), v.store.getsOf("config/urls")
	for i := range 20 {
		r.write("issue/r", fmt.Sprintf(`{"common_name": "n%d"}`, i))
	}
	if got := v.store.getsOf("config/ca") - caGets; got != 1 {
		t.Fatalf("20 issues read config/ca %d times, want 1", got)
	}
	if got := v.store.getsOf("config/urls") - urlGets; got != 1 {
		t.Fatalf("20 issues read config/urls %d times, want 1", got)
	}
	r.must(logical.OpDelete, "root", nil)
	newRoot := r.root(`{"common_name": "Root 2"}`)
	leaf := parseCertPEM(t, r.write("issue/r", `{"common_name": "x"}`).Data["certificate"].(string))
	if err := leaf.CheckSignatureFrom(newRoot); err != nil {
		t.Fatalf("issue after the CA changed used the old key: %v", err)
	}
}

// TestConcurrentIssueRevoke issues, revokes and reads CRLs at once. Every
// revoked serial must be on the final CRL, and CRL numbers must rise.
func TestConcurrentIssueRevoke(t *testing.T) {
	v := newEnv(t, pki.Config{})
	root := v.root(`{"common_name": "Root"}`)
	v.write("roles/r", `{"allow_any_name": true}`)
	const workers, each = 4, 8
	var (
		mu      sync.Mutex
		revoked []string
		numbers []int64
		wg      sync.WaitGroup
	)
	errs := make(chan error, workers*each*3)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				resp, err := v.do(logical.OpUpdate, "issue/r", map[string]any{"common_name": fmt.Sprintf("w%d-%d", w, i)})
				if err != nil {
					errs <- err
					return
				}
				serial := resp.Data["serial_number"].(string)
				if i%2 == 0 {
					if _, err := v.do(logical.OpUpdate, "revoke", map[string]any{"serial_number": serial}); err != nil {
						errs <- err
						return
					}
					mu.Lock()
					revoked = append(revoked, serial)
					mu.Unlock()
				}
				crlResp, err := v.do(logical.OpRead, "crl", nil)
				if err != nil {
					errs <- err
					return
				}
				crl, err := x509.ParseRevocationList(crlResp.Raw)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				numbers = append(numbers, crl.Number.Int64())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := v.certCount(); got != workers*each+1 {
		t.Fatalf("%d certificates stored, want %d", got, workers*each+1)
	}
	crl, err := x509.ParseRevocationList(v.must(logical.OpRead, "crl", nil).Raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(root); err != nil {
		t.Fatal(err)
	}
	if len(crl.RevokedCertificateEntries) != len(revoked) {
		t.Fatalf("CRL holds %d entries, %d were revoked", len(crl.RevokedCertificateEntries), len(revoked))
	}
	for _, s := range revoked {
		n, err := parseColonSerial(s)
		if err != nil {
			t.Fatal(err)
		}
		if !crlHas(crl, n) {
			t.Fatalf("revoked %s missing from the CRL", s)
		}
	}
	if crl.Number.Int64() != int64(len(revoked)) {
		t.Fatalf("final CRL number %s after %d revocations", crl.Number, len(revoked))
	}
	if slices.Max(numbers) > crl.Number.Int64() {
		t.Fatalf("a CRL read during the run had a higher number than the last")
	}
}

// TestCRLRebuiltWhenStale checks that a CRL read after half its validity
// is rebuilt, with a higher number, and that a fresh one is not.
func TestCRLRebuiltWhenStale(t *testing.T) {
	v := newEnv(t, pki.Config{CRLValidity: 10 * time.Hour})
	v.root(`{"common_name": "Root"}`)
	read := func() *x509.RevocationList {
		crl, err := x509.ParseRevocationList(v.must(logical.OpRead, "crl", nil).Raw)
		if err != nil {
			t.Fatal(err)
		}
		return crl
	}
	first := read()
	if first.Number.Int64() != 1 || !first.NextUpdate.Equal(t0.Add(10*time.Hour)) {
		t.Fatalf("first CRL number %s next %s", first.Number, first.NextUpdate)
	}
	v.clk.Add(4 * time.Hour)
	if got := read(); got.Number.Int64() != 1 {
		t.Fatalf("fresh CRL was rebuilt (number %s)", got.Number)
	}
	v.clk.Add(2 * time.Hour)
	got := read()
	if got.Number.Int64() != 2 || !got.ThisUpdate.Equal(t0.Add(6*time.Hour)) {
		t.Fatalf("stale CRL: number %s this update %s", got.Number, got.ThisUpdate)
	}
	pemBody := v.must(logical.OpRead, "crl/pem", nil)
	if !strings.HasPrefix(string(pemBody.Raw), "-----BEGIN X509 CRL-----") || pemBody.RawContentType != "application/x-pem-file" {
		t.Fatalf("crl/pem: %q %.40q", pemBody.RawContentType, pemBody.Raw)
	}
}

// parseColonSerial reads a serial in Vault's colon form.
func parseColonSerial(s string) (*big.Int, error) {
	n, ok := new(big.Int).SetString(strings.ReplaceAll(s, ":", ""), 16)
	if !ok {
		return nil, fmt.Errorf("bad serial %q", s)
	}
	return n, nil
}
