package conn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/secrethub/secrethub/agent/conn"
	"github.com/secrethub/secrethub/core"
	"github.com/secrethub/secrethub/core/client"
	"github.com/secrethub/secrethub/internal/coretest"
)

// TestAgainstRealCore runs a Conn against the real core in-process (its
// REST listener and its mTLS agent listener, inmem storage): reads
// authorized by the token's policy, a push after a write, token renewal,
// and a revoked token reported through OnUnauthorized.
func TestAgainstRealCore(t *testing.T) {
	ctx := context.Background()
	env := coretest.Start(t, core.Config{})
	cl := env.Root
	if _, err := cl.Write(ctx, "sys/policies/acl/app", map[string]any{"policy": "rules:\n- path: secrets/app/*\n  capabilities: [read]\n"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Write(ctx, "secrets/app/db", map[string]any{"data": map[string]any{"password": "pw1"}}); err != nil {
		t.Fatal(err)
	}
	tokResp, err := cl.Write(ctx, "auth/token/create", map[string]any{"policies": []string{"app"}, "ttl": "24h"})
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	cl.SetToken(tokResp.Auth.ClientToken)
	certResp, err := cl.Write(ctx, "sys/agent/certificate", map[string]any{
		"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), "name": "web-1"})
	if err != nil {
		t.Fatal(err)
	}
	certBlock, _ := pem.Decode([]byte(certResp.Data["certificate"].(string)))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(certResp.Data["issuing_ca"].(string)))
	cl.SetToken(env.RootToken)

	changes := make(chan string, 8)
	unauthorized := make(chan struct{}, 8)
	ac, err := conn.New(conn.Config{
		Addresses: []string{env.AgentURL},
		TLS: func() (*tls.Config, error) {
			return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{{Certificate: [][]byte{certBlock.Bytes}, PrivateKey: key}}}, nil
		},
		Name: "web-1", Version: "test", Heartbeat: time.Second,
		Backoff:        conn.Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond},
		OnChanged:      func(path, op string, v int64) { changes <- path + " " + op },
		OnUnauthorized: func() { unauthorized <- struct{}{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ac.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := ac.WaitConnected(wctx); err != nil {
		t.Fatal(err)
	}
	resp, err := ac.Read(ctx, "secrets/app/db")
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := resp.Data["data"].(map[string]any); data["password"] != "pw1" {
		t.Errorf("read data = %v", resp.Data)
	}
	if _, err := ac.Read(ctx, "secrets/other"); !errors.Is(err, client.ErrPermissionDenied) {
		t.Errorf("denied read = %v", err)
	}
	if _, err := ac.Read(ctx, "secrets/app/missing"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("missing read = %v", err)
	}
	if ttl, renewable, err := ac.RenewToken(ctx, time.Hour); err != nil || ttl != time.Hour || !renewable {
		t.Errorf("RenewToken = %s, %v, %v", ttl, renewable, err)
	}
	if _, err := cl.Write(ctx, "secrets/app/db", map[string]any{"data": map[string]any{"password": "pw2"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case ch := <-changes:
		if ch != "secrets/app/db write" {
			t.Errorf("OnChanged got %q", ch)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no changed push")
	}
	if err := ac.Unwatch(ctx, "secrets/app/db"); err != nil {
		t.Error(err)
	}

	// Revoking the token closes the connection and refuses the next.
	if _, err := cl.Write(ctx, "auth/token/revoke", map[string]any{"token": tokResp.Auth.ClientToken}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-unauthorized:
	case <-time.After(10 * time.Second):
		t.Fatal("OnUnauthorized not called after the token was revoked")
	}
	if _, err := ac.Read(ctx, "secrets/app/db"); err == nil {
		t.Error("Read succeeded with a revoked token")
	}
}
