package pki_test

import (
	"context"
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"net/url"
	"testing"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/secrets/pki"
)

// FuzzSignCSR sends arbitrary bytes as a CSR, to sign/:role and to
// SignCSR. Whatever arrives, the answer is a 400 (an InvalidRequestError)
// or a certificate for the CSR's own, verified key.
func FuzzSignCSR(f *testing.F) {
	v := newEnv(f, pki.Config{})
	root := v.root(`{"common_name": "Root"}`)
	v.write("roles/any", `{"allow_any_name": true, "enforce_hostnames": false, "key_type": "any", "allowed_uri_sans": "*"}`)
	v.write("roles/strict", `{"allowed_domains": "example.com", "allow_subdomains": true, "allow_ip_sans": false}`)

	key := ecKey(f, elliptic.P256())
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	u, _ := url.Parse("spiffe://example.com/a")
	odd := func(tmpl *x509.CertificateRequest) []byte {
		der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
		if err != nil {
			f.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}
	f.Add([]byte(csrPEM(f, key, "a.example.com", "b.example.com")))
	f.Add([]byte(csrPEM(f, rsaKey, "rsa.example.com")))
	f.Add([]byte(badSigCSR(f, key, "a.example.com")))
	f.Add(odd(&x509.CertificateRequest{Subject: pkix.Name{CommonName: "x y", Organization: []string{"é"}}, IPAddresses: []net.IP{net.ParseIP("::1")}, URIs: []*url.URL{u}, EmailAddresses: []string{"a@b"}}))
	f.Add(odd(&x509.CertificateRequest{DNSNames: []string{"*.example.com", "a..b", "-x-"}}))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMIIBAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte("-----BEGIN NEW CERTIFICATE REQUEST-----\n\n-----END NEW CERTIFICATE REQUEST-----\n"))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n" + "AAAA" + "\n-----END CERTIFICATE-----\n"))
	f.Add([]byte{0x30, 0x82, 0xff, 0xff})
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, csr []byte) {
		check := func(what string, cert *x509.Certificate, err error) {
			var inv *logical.InvalidRequestError
			if err != nil {
				if !errors.As(err, &inv) {
					t.Fatalf("%s: error %v (%T) is not a 400", what, err, err)
				}
				return
			}
			block, _ := pem.Decode(csr)
			req, perr := x509.ParseCertificateRequest(block.Bytes)
			if perr != nil || req.CheckSignature() != nil {
				t.Fatalf("%s: signed a CSR that does not parse or verify", what)
			}
			if pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(req.PublicKey) {
				t.Fatalf("%s: certificate key is not the CSR's", what)
			}
			if err := cert.CheckSignatureFrom(root); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		for _, role := range []string{"any", "strict"} {
			resp, err := v.do(logical.OpUpdate, "sign/"+role, map[string]any{"csr": string(csr)})
			var cert *x509.Certificate
			if err == nil {
				cert = parseCertPEM(t, resp.Data["certificate"].(string))
			}
			check("sign/"+role, cert, err)
		}
		iss, err := v.e.SignCSR(context.Background(), csr, pki.SignOptions{ClientAuth: true})
		var cert *x509.Certificate
		if err == nil {
			cert = iss.Certificate
		}
		check("SignCSR", cert, err)
	})
}
