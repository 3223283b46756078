package http_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corehttp "github.com/secrethub/secrethub/core/http"
	"github.com/secrethub/secrethub/core/wire"
)

func newCSR(t *testing.T) (*ecdsa.PrivateKey, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// mtlsClient is an HTTP client presenting cert and key, trusting caPEM.
func mtlsClient(t *testing.T, caPEM, certPEM string, key *ecdsa.PrivateKey) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		t.Fatal("bad CA PEM")
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certPEM != "" {
		block, _ := pem.Decode([]byte(certPEM))
		cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{block.Bytes}, PrivateKey: key}}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
}

func agentDo(t *testing.T, c *http.Client, method, url, body string) (int, wire.Response, error) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := c.Do(req)
	if err != nil {
		return 0, wire.Response{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out wire.Response
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, nil
}

// TestAgentCertificates: a token gets an agent certificate for its own
// identity; the agent listener trusts only the agent CA, refuses clients
// without a certificate, with a foreign one, or with a revoked one; an
// agent renews with its current certificate.
func TestAgentCertificates(t *testing.T) {
	// Certificates are checked by TLS clients against the real time.
	s := newUnsealedServerAt(t, time.Now())
	agentSrv := httptest.NewUnstartedServer(corehttp.New(s.core, corehttp.Options{Logger: slog.New(slog.DiscardHandler)}))
	agentSrv.TLS = s.core.AgentTLSConfig()
	agentSrv.StartTLS()
	t.Cleanup(agentSrv.Close)

	s.must(204, "PUT", "/v1/sys/policies/acl/app", `{"policy":"rules:\n- path: secrets/app/*\n  capabilities: [read]\n"}`, s.root)
	tok := s.createToken("24h", "app")
	key, csr := newCSR(t)
	body, _ := json.Marshal(map[string]string{"csr": csr, "name": "web-1"})
	resp := s.must(200, "PUT", "/v1/sys/agent/certificate", string(body), tok)
	certPEM, caPEM := resp.Data["certificate"].(string), resp.Data["issuing_ca"].(string)
	block, _ := pem.Decode([]byte(certPEM))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "agent web-1" || len(cert.URIs) != 1 || !strings.HasPrefix(cert.URIs[0].String(), "spiffe://secrethub/agent/") ||
		len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Fatalf("agent certificate: CN %q URIs %v EKU %v", cert.Subject.CommonName, cert.URIs, cert.ExtKeyUsage)
	}
	if d := cert.NotAfter.Sub(cert.NotBefore); d < 29*24*time.Hour || d > 31*24*time.Hour {
		t.Fatalf("agent certificate validity %s, want about 30 days", d)
	}

	agent := mtlsClient(t, caPEM, certPEM, key)
	code, who, err := agentDo(t, agent, "GET", agentSrv.URL+"/v1/sys/agent/whoami", "")
	if err != nil || code != 200 || !strings.Contains(who.Data["identity"].(string), "spiffe://secrethub/agent/") {
		t.Fatalf("whoami over mTLS: %d %+v %v", code, who, err)
	}

	// No certificate, or one from another CA: the handshake fails.
	if _, _, err := agentDo(t, mtlsClient(t, caPEM, "", nil), "GET", agentSrv.URL+"/v1/sys/agent/whoami", ""); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	foreignKey, foreignCert := selfSigned(t)
	if _, _, err := agentDo(t, mtlsClient(t, caPEM, foreignCert, foreignKey), "GET", agentSrv.URL+"/v1/sys/agent/whoami", ""); err == nil {
		t.Fatal("a client with a foreign certificate was served")
	}
	// whoami over the plain listener, with a token only: refused.
	s.must(403, "GET", "/v1/sys/agent/whoami", "", tok)

	// Renewal with the current certificate, for a new key.
	newKey, newCSR := newCSR(t)
	body, _ = json.Marshal(map[string]string{"csr": newCSR})
	code, renewed, err := agentDo(t, agent, "PUT", agentSrv.URL+"/v1/sys/agent/renew", string(body))
	if err != nil || code != 200 {
		t.Fatalf("renew: %d %v", code, err)
	}
	renewedAgent := mtlsClient(t, caPEM, renewed.Data["certificate"].(string), newKey)
	if code, _, err := agentDo(t, renewedAgent, "GET", agentSrv.URL+"/v1/sys/agent/whoami", ""); err != nil || code != 200 {
		t.Fatalf("whoami with the renewed certificate: %d %v", code, err)
	}

	// Revoking the old certificate cuts it off; the renewed one works.
	serial := resp.Data["serial_number"].(string)
	s.must(200, "PUT", "/v1/agent-ca/revoke", `{"serial_number":"`+serial+`"}`, s.root)
	fresh := mtlsClient(t, caPEM, certPEM, key) // new connections only
	if code, _, err := agentDo(t, fresh, "GET", agentSrv.URL+"/v1/sys/agent/whoami", ""); err == nil && code == 200 {
		t.Fatal("a revoked certificate was served")
	}
	if code, _, err := agentDo(t, mtlsClient(t, caPEM, renewed.Data["certificate"].(string), newKey), "GET", agentSrv.URL+"/v1/sys/agent/whoami", ""); err != nil || code != 200 {
		t.Fatalf("renewed certificate after revoking the old one: %d %v", code, err)
	}

	// Revoking the agent's token makes its certificate useless too.
	s.must(204, "POST", "/v1/auth/token/revoke", `{"token":"`+tok+`"}`, s.root)
	if code, _, _ := agentDo(t, mtlsClient(t, caPEM, renewed.Data["certificate"].(string), newKey), "GET", agentSrv.URL+"/v1/sys/agent/whoami", ""); code != 403 {
		t.Fatalf("certificate of a revoked token: %d, want 403", code)
	}
	// A bad CSR is a 400 naming csr.
	code, out := s.do("PUT", "/v1/sys/agent/certificate", `{"csr":"not a csr"}`, "X-SecretHub-Token", s.root)
	if code != 400 || !strings.Contains(out, "csr") {
		t.Fatalf("bad CSR: %d %s", code, out)
	}
	// The agent CA cannot be unmounted.
	s.must(400, "DELETE", "/v1/sys/mounts/agent-ca", "", s.root)
}

func selfSigned(t *testing.T) (*ecdsa.PrivateKey, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "intruder"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
