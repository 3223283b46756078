package pki_test

import (
	"context"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/secrets/pki"
)

func TestAgentCA(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t, pki.Config{DefaultTTL: 24 * time.Hour})
	key := ecKey(t, elliptic.P256())
	csr := []byte(csrPEM(t, key, "agent-csr-cn", "ignored.example.com"))

	if _, err := v.e.SignCSR(ctx, csr, pki.SignOptions{}); err != pki.ErrNoCA {
		t.Fatalf("SignCSR without CA: %v", err)
	}
	if _, err := v.e.CAPool(ctx); !errors.Is(err, pki.ErrNoCA) {
		t.Fatalf("CAPool without CA: %v", err)
	}
	if err := v.e.GenerateRoot(ctx, pki.RootOptions{CommonName: "SecretHub Agent CA", Organization: []string{"SecretHub"}}); err != nil {
		t.Fatal(err)
	}
	if err := v.e.GenerateRoot(ctx, pki.RootOptions{CommonName: "again"}); err != pki.ErrCAExists {
		t.Fatalf("second GenerateRoot: %v", err)
	}
	ca := parseCertPEM(t, v.must(logical.OpRead, "cert/ca", nil).Data["certificate"].(string))
	if !ca.MaxPathLenZero || ca.MaxPathLen != 0 || ca.Subject.CommonName != "SecretHub Agent CA" {
		t.Fatalf("agent root: MaxPathLen %d zero %v subject %s", ca.MaxPathLen, ca.MaxPathLenZero, ca.Subject)
	}

	id, _ := url.Parse("spiffe://secrethub/agent/node-1")
	iss, err := v.e.SignCSR(ctx, csr, pki.SignOptions{CommonName: "agent-1", URIs: []*url.URL{id}, TTL: time.Hour, ClientAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	c := iss.Certificate
	if c.Subject.CommonName != "agent-1" || len(c.URIs) != 1 || c.URIs[0].String() != id.String() || len(c.DNSNames) != 0 {
		t.Fatalf("agent cert subject %s URIs %v DNS %v (the CSR's SANs must be ignored)", c.Subject, c.URIs, c.DNSNames)
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || !c.NotAfter.Equal(t0.Add(time.Hour)) {
		t.Fatalf("EKU %v NotAfter %s", c.ExtKeyUsage, c.NotAfter)
	}
	if !parseCertPEM(t, iss.CertificatePEM).Equal(c) || parseCertPEM(t, iss.IssuingCA).SerialNumber.Cmp(ca.SerialNumber) != 0 || len(iss.CAChain) != 1 {
		t.Fatalf("Issued PEMs do not match")
	}
	if iss.SerialNumber != colonHex(c.SerialNumber) {
		t.Fatalf("SerialNumber %s", iss.SerialNumber)
	}
	pool, err := v.e.CAPool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: v.clk.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("agent cert does not verify against CAPool: %v", err)
	}
	// A certificate of another CA does not verify against the pool.
	other := newEnv(t, pki.Config{})
	if err := other.e.GenerateRoot(ctx, pki.RootOptions{CommonName: "other"}); err != nil {
		t.Fatal(err)
	}
	foreign, err := other.e.SignCSR(ctx, csr, pki.SignOptions{ClientAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	if foreign.Certificate.Subject.CommonName != "agent-csr-cn" {
		t.Fatalf("empty CommonName should take the CSR's, got %q", foreign.Certificate.Subject.CommonName)
	}
	if !foreign.Certificate.NotAfter.Equal(t0.Add(pki.DefaultTTL)) {
		t.Fatalf("default TTL: NotAfter %s", foreign.Certificate.NotAfter)
	}
	if _, err := foreign.Certificate.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: v.clk.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
		t.Fatalf("a foreign certificate verifies against CAPool")
	}

	// Stored, so it can be revoked; IsRevoked sees it.
	if revoked, err := v.e.IsRevoked(ctx, c.SerialNumber); err != nil || revoked {
		t.Fatalf("IsRevoked before revoke: %v %v", revoked, err)
	}
	v.must(logical.OpUpdate, "revoke", map[string]any{"serial_number": iss.SerialNumber})
	if revoked, err := v.e.IsRevoked(ctx, c.SerialNumber); err != nil || !revoked {
		t.Fatalf("IsRevoked after revoke: %v %v", revoked, err)
	}

	// Bad input is a 400 naming the field.
	_, err = v.e.SignCSR(ctx, []byte("junk"), pki.SignOptions{})
	invalid(t, err, "csr", "not a PEM")
	_, err = v.e.SignCSR(ctx, []byte(badSigCSR(t, key, "x")), pki.SignOptions{})
	invalid(t, err, "csr", "signature")
	_, err = v.e.SignCSR(ctx, csr, pki.SignOptions{URIs: []*url.URL{{Scheme: "urn", Opaque: "a b"}}})
	invalid(t, err, "uri_sans", "printable ASCII")
	invalid(t, v.e.GenerateRoot(ctx, pki.RootOptions{}), "common_name", "missing")
}
