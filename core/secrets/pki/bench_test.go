package pki_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/secrets/pki"
)

// leafKinds are the leaf key types benchmarked.
var leafKinds = []struct {
	name string
	role string
	gen  func() (crypto.Signer, error)
}{
	{"ec-p256", `{"allow_any_name": true, "key_type": "ec", "key_bits": 256}`,
		func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }},
	{"rsa-2048", `{"allow_any_name": true, "key_type": "rsa", "key_bits": 2048}`,
		func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) }},
}

// BenchmarkIssue measures issue/:role over inmem storage with the default
// CA (EC P-384): key generation, signing, encoding, storing.
func BenchmarkIssue(b *testing.B) {
	for _, k := range leafKinds {
		b.Run(k.name, func(b *testing.B) {
			v := newEnv(b, pki.Config{})
			v.root(`{"common_name": "Root"}`)
			v.write("roles/r", k.role)
			data := map[string]any{"common_name": "svc.example.com", "alt_names": "api.example.com", "ttl": "24h"}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.do(logical.OpUpdate, "issue/r", data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRawCrypto is the ceiling for BenchmarkIssue: the same key
// generation and x509.CreateCertificate with the same kind of CA key,
// nothing else.
func BenchmarkRawCrypto(b *testing.B) {
	caKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Root"}, NotBefore: now, NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		b.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range leafKinds {
		b.Run(k.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				key, err := k.gen()
				if err != nil {
					b.Fatal(err)
				}
				tmpl := &x509.Certificate{
					SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "svc.example.com"},
					DNSNames: []string{"svc.example.com", "api.example.com"}, NotBefore: now, NotAfter: now.Add(24 * time.Hour),
					KeyUsage:    x509.KeyUsageDigitalSignature,
					ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
				}
				if _, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSign measures sign/:role: CSR parsing and its signature check,
// then signing.
func BenchmarkSign(b *testing.B) {
	v := newEnv(b, pki.Config{})
	v.root(`{"common_name": "Root"}`)
	v.write("roles/r", `{"allow_any_name": true}`)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "svc.example.com"}}, key)
	if err != nil {
		b.Fatal(err)
	}
	data := map[string]any{"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.do(logical.OpUpdate, "sign/r", data); err != nil {
			b.Fatal(err)
		}
	}
}
