package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// startMotoServer runs moto_server on a free loopback port, without its
// authentication (the engine's own tests check that); it stands in for
// AWS's IAM and STS endpoints.
func startMotoServer(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		t.Fatalf("moto_server, the local stand-in for AWS, is not on PATH (%v); `make test-services` checks for it", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	cmd.Env = append(os.Environ(), "INITIAL_NO_AUTH_ACTION_COUNT=inf")
	logs := newSyncBuffer()
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return url
		}
		select {
		case err := <-exited:
			t.Fatalf("moto_server exited: %v\n%s", err, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto_server did not answer within 30s\n%s", logs.String())
		}
	}
}

// TestAWSCLI drives `secrethub aws config|role|creds` against a dev server
// whose AWS engine talks to moto: an IAM user credential comes back with
// a lease, and revoking the lease ends it (the engine's own tests check
// against moto that the IAM user is deleted).
func TestAWSCLI(t *testing.T) {
	moto := startMotoServer(t)
	srv, vc := devServer(t)
	if err := vc.Sys().Mount("aws", &vault.MountInput{Type: "aws"}); err != nil {
		t.Fatalf("mount: %v", err)
	}
	env := []string{"SECRETHUB_ADDR=" + srv.addr, "SECRETHUB_TOKEN=shs.dev-root-token-for-tests", noRaceExitSleep}
	run := func(stdin string, args ...string) string {
		t.Helper()
		code, out, errOut := cli(t, env, stdin, args...)
		if code != 0 {
			t.Fatalf("secrethub %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	run("not-a-real-secret-key\n", "aws", "config", "-access-key", "AKIACLITEST000000000", "-secret-key", "-",
		"-iam-endpoint", moto, "-sts-endpoint", moto)
	if out := run("", "aws", "config", "-h"); !strings.Contains(out, "secret") {
		t.Errorf("aws config -h does not explain the secret key flags:\n%s", out)
	}
	run("", "aws", "role", "cli", "-credential-type", "iam_user",
		"-policy-document", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}`)
	var creds struct {
		LeaseID string         `json:"lease_id"`
		Data    map[string]any `json:"data"`
	}
	if err := json.Unmarshal([]byte(run("", "aws", "creds", "cli", "-format=json")), &creds); err != nil {
		t.Fatal(err)
	}
	if ak, _ := creds.Data["access_key"].(string); ak == "" || creds.Data["secret_key"] == "" || !strings.HasPrefix(creds.LeaseID, "aws/creds/cli/") {
		t.Fatalf("creds: lease %q, access key %q", creds.LeaseID, ak)
	}
	if out := run("", "lease", "lookup", creds.LeaseID); !strings.Contains(out, creds.LeaseID) {
		t.Errorf("lease lookup:\n%s", out)
	}
	run("", "lease", "revoke", creds.LeaseID)
	if code, out, errOut := cli(t, env, "", "lease", "lookup", creds.LeaseID); code == 0 {
		t.Errorf("lookup after revoke succeeded:\n%s%s", out, errOut)
	}
	if strings.Contains(srv.stderr.String(), "not-a-real-secret-key") {
		t.Error("the server log contains the AWS secret key")
	}
}
