package awssts_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/secrets/awssts"
	"github.com/secrethub/secrethub/core/storage/inmem"
)

// These tests run against moto_server on loopback, which stands in for
// AWS IAM and STS. It runs with request authentication on (after a
// bootstrap that makes an admin user): it checks each request's SigV4
// signature against the access key's secret, and the caller's IAM
// policies against the action, as AWS does.

// moto is the server the tests share: its endpoint, and the admin key
// made at bootstrap. startErr says why there is none.
var (
	motoURL            string
	adminKey, adminSec string
	adminARN           string
	startErr           error
)

func TestMain(m *testing.M) {
	stop, err := startMoto()
	if err != nil {
		startErr = err
	}
	code := m.Run()
	if stop != nil {
		stop()
	}
	os.Exit(code)
}

func startMoto() (func(), error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return nil, fmt.Errorf("moto_server is not on PATH (%v): install it with pip install 'moto[server]'; `make test-services` checks for it", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	// No authentication until the bootstrap below switches it on.
	cmd.Env = append(os.Environ(), "INITIAL_NO_AUTH_ACTION_COUNT=inf")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start moto_server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	motoURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(motoURL + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-exited:
			exited <- err
			return stop, fmt.Errorf("moto_server exited: %v: %s", err, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return stop, fmt.Errorf("moto_server did not answer on %s within 30s: %s", motoURL, logs.String())
		}
	}
	// Bootstrap an admin, then turn authentication on for every
	// request that follows.
	ctx := context.Background()
	boot := iamClient("AKIABOOTSTRAP0000000", "bootstrap")
	u, err := boot.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("secrethub-test-admin")})
	if err != nil {
		return stop, fmt.Errorf("bootstrap admin: %w", err)
	}
	adminARN = *u.User.Arn
	if _, err := boot.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String("secrethub-test-admin"), PolicyName: aws.String("all"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`)}); err != nil {
		return stop, fmt.Errorf("bootstrap admin policy: %w", err)
	}
	key, err := boot.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("secrethub-test-admin")})
	if err != nil {
		return stop, fmt.Errorf("bootstrap admin key: %w", err)
	}
	adminKey, adminSec = *key.AccessKey.AccessKeyId, *key.AccessKey.SecretAccessKey
	resp, err := http.Post(motoURL+"/moto-api/reset-auth", "text/plain", strings.NewReader("0"))
	if err != nil {
		return stop, fmt.Errorf("turn moto authentication on: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return stop, fmt.Errorf("turn moto authentication on: %s", resp.Status)
	}
	return stop, nil
}

// awsConfig is a hand-built config: static keys, the moto endpoint, no
// shared files, environment or instance metadata.
func awsConfig(key, secret, token string) aws.Config {
	return aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(key, secret, token), RetryMaxAttempts: 1, HTTPClient: motoHTTP}
}

func iamClient(key, secret string) *iam.Client {
	return iam.NewFromConfig(awsConfig(key, secret, ""), func(o *iam.Options) { o.BaseEndpoint = aws.String(motoURL) })
}

func stsClient(key, secret, token string) *sts.Client {
	return sts.NewFromConfig(awsConfig(key, secret, token), func(o *sts.Options) { o.BaseEndpoint = aws.String(motoURL) })
}

func needMoto(t *testing.T) {
	t.Helper()
	if startErr != nil {
		t.Fatalf("moto_server, the local stand-in for AWS, is not available: %v", startErr)
	}
}

type fixture struct {
	t *testing.T
	e *awssts.Engine
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	needMoto(t)
	e, err := awssts.New(inmem.New(), awssts.Config{HTTPClient: motoHTTP})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, e: e}
	f.must(logical.OpUpdate, "config/root", map[string]any{
		"access_key": adminKey, "secret_key": adminSec, "region": "us-east-1",
		"iam_endpoint": motoURL, "sts_endpoint": motoURL, "max_retries": 0,
	})
	return f
}

func (f *fixture) do(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return f.e.HandleRequest(f.t.Context(), &logical.Request{Operation: op, RelativePath: path, Data: data})
}

func (f *fixture) must(op logical.Operation, path string, data map[string]any) *logical.Response {
	f.t.Helper()
	resp, err := f.do(op, path, data)
	if err != nil {
		f.t.Fatalf("%s %s: %v", op, path, err)
	}
	return resp
}

func lease(resp *logical.Response) *logical.SecretLease {
	return &logical.SecretLease{LeaseID: "aws/creds/x/1", InternalData: resp.Secret.InternalData}
}

func apiCode(err error) string {
	var ae interface{ ErrorCode() string }
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// motoErrors adapts one difference of moto from AWS: moto answers a
// refused signature or key, and a denied action, with
// <ErrorResponse><Errors><Error>…, where AWS's query protocol (and so
// the SDK) has <ErrorResponse><Error>…. It rewrites such bodies to AWS's
// shape, so the SDK reads their code as it would AWS's.
type motoErrors struct{ next http.RoundTripper }

func (m motoErrors) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := m.next.RoundTrip(req)
	if err != nil || resp.StatusCode < 400 {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	fixed := strings.Replace(strings.Replace(string(body), "<Errors><Error>", "<Error>", 1), "</Error></Errors>", "</Error>", 1)
	resp.Body = io.NopCloser(strings.NewReader(fixed))
	resp.ContentLength = int64(len(fixed))
	resp.Header.Del("Content-Length")
	return resp, nil
}

var motoHTTP = &http.Client{Transport: motoErrors{http.DefaultTransport}, Timeout: 30 * time.Second}

// Stands in for: IAM CreateUser/PutUserPolicy/AttachUserPolicy/
// CreateAccessKey, a new key's use (signature and policy checks), and
// the deletion of the user and its key at revoke.
func TestIAMUser(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	admin := iamClient(adminKey, adminSec)
	pol, err := admin.CreatePolicy(ctx, &iam.CreatePolicyInput{PolicyName: aws.String("secrethub-test-readonly-" + t.Name()),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:GetUser","Resource":"*"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	f.must(logical.OpUpdate, "roles/deploy", map[string]any{
		"credential_type": "iam_user",
		"policy_document": `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:ListAccessKeys", "Resource": "*"}]}`,
		"policy_arns":     []any{*pol.Policy.Arn},
		"user_path":       "/secrethub/",
	})
	f.must(logical.OpUpdate, "config/lease", map[string]any{"lease": "30m", "lease_max": "2h"})
	resp := f.must(logical.OpRead, "creds/deploy", nil)
	key, _ := resp.Data["access_key"].(string)
	secret, _ := resp.Data["secret_key"].(string)
	user, _ := resp.Data["username"].(string)
	if key == "" || secret == "" || !strings.HasPrefix(user, awssts.NamePrefix+"deploy-") || len(user) > 64 {
		t.Fatalf("creds = %v", resp.Data)
	}
	if s := resp.Secret; s.TTL != 30*time.Minute || s.MaxTTL != 2*time.Hour || !s.Renewable {
		t.Fatalf("secret = %+v", s)
	}
	// The key works, and only for what the role allows.
	id, err := stsClient(key, secret, "").GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || !strings.HasSuffix(*id.Arn, "/"+user) {
		t.Fatalf("GetCallerIdentity with the new key: %v", err)
	}
	mine := iamClient(key, secret)
	if _, err := mine.GetUser(ctx, &iam.GetUserInput{UserName: aws.String(user)}); err != nil {
		t.Fatalf("GetUser (attached policy): %v", err)
	}
	if _, err := mine.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(user)}); err != nil {
		t.Fatalf("ListAccessKeys (inline policy): %v", err)
	}
	if _, err := mine.ListUsers(ctx, &iam.ListUsersInput{}); apiCode(err) != "AccessDenied" {
		t.Fatalf("ListUsers outside the role: err = %v; want AccessDenied", err)
	}
	// A wrong secret for the same key is refused (signature checked).
	if _, err := stsClient(key, secret+"x", "").GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); apiCode(err) != "SignatureDoesNotMatch" {
		t.Fatalf("wrong secret: err = %v; want SignatureDoesNotMatch", err)
	}
	if err := f.e.RenewSecret(ctx, lease(resp)); err != nil {
		t.Fatalf("renew: %v", err)
	}

	if err := f.e.RevokeSecret(ctx, lease(resp)); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if _, err := stsClient(key, secret, "").GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); apiCode(err) != "InvalidClientTokenId" {
		t.Fatalf("revoked key: err = %v; want InvalidClientTokenId", err)
	}
	if _, err := admin.GetUser(ctx, &iam.GetUserInput{UserName: aws.String(user)}); apiCode(err) != "NoSuchEntity" {
		t.Fatalf("revoked user: err = %v; want NoSuchEntity", err)
	}
	if err := f.e.RevokeSecret(ctx, lease(resp)); err != nil {
		t.Fatalf("second revoke (idempotent): %v", err)
	}
}

// Stands in for: a failure half-way through making an IAM user (here
// AttachUserPolicy of a policy that does not exist): AWS keeps what was
// made, so the engine must delete it.
func TestIAMUserRollback(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	f.must(logical.OpUpdate, "roles/broken", map[string]any{
		"credential_type": "iam_user",
		"policy_document": `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`,
		"policy_arns":     "arn:aws:iam::123456789012:policy/does-not-exist",
	})
	_, err := f.do(logical.OpRead, "creds/broken", nil)
	if !errors.Is(err, awssts.ErrAWS) || !strings.Contains(err.Error(), motoURL) || !strings.Contains(err.Error(), "does-not-exist") {
		t.Fatalf("err = %v; want ErrAWS naming the endpoint and the policy", err)
	}
	users, err := iamClient(adminKey, adminSec).ListUsers(ctx, &iam.ListUsersInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users.Users {
		if strings.HasPrefix(*u.UserName, awssts.NamePrefix+"broken-") {
			t.Fatalf("half-made user left: %s", *u.UserName)
		}
	}
}

// Stands in for: STS AssumeRole with a session policy, and the use of
// the session's credentials (key, secret and session token).
func TestAssumedRole(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	role, err := iamClient(adminKey, adminSec).CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("secrethub-test-deployer"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"` + adminARN + `"},"Action":"sts:AssumeRole"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	arn := *role.Role.Arn
	f.must(logical.OpUpdate, "roles/deployer", map[string]any{
		"credential_type": "assumed_role", "role_arns": []any{arn},
		"default_sts_ttl": 900, "max_sts_ttl": "2h",
		"policy_document": `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`,
	})
	for _, path := range []string{"creds/deployer", "sts/deployer"} {
		resp := f.must(logical.OpUpdate, path, map[string]any{"ttl": "1h"})
		key, _ := resp.Data["access_key"].(string)
		secret, _ := resp.Data["secret_key"].(string)
		token, _ := resp.Data["session_token"].(string)
		if key == "" || secret == "" || token == "" || resp.Data["security_token"] != token {
			t.Fatalf("%s = %v", path, resp.Data)
		}
		if s := resp.Secret; s.Renewable || s.TTL <= 59*time.Minute || s.TTL > time.Hour || s.InternalData["credential_type"] != "assumed_role" {
			t.Fatalf("%s secret = %+v", path, s)
		}
		id, err := stsClient(key, secret, token).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil || !strings.Contains(*id.Arn, "assumed-role/secrethub-test-deployer/") {
			t.Fatalf("GetCallerIdentity with the session: %v", err)
		}
		// STS credentials cannot be revoked: revoke succeeds, doing
		// nothing; renew is refused.
		if err := f.e.RevokeSecret(ctx, lease(resp)); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		if err := f.e.RenewSecret(ctx, lease(resp)); err == nil {
			t.Fatal("renew of STS credentials succeeded")
		}
	}
	resp := f.must(logical.OpRead, "creds/deployer", nil)
	if resp.Secret.TTL != 15*time.Minute {
		t.Fatalf("default TTL = %s; want the role's default_sts_ttl", resp.Secret.TTL)
	}
	if _, err := f.do(logical.OpUpdate, "sts/deployer", map[string]any{"ttl": "3h"}); !isInvalid("ttl")(err) {
		t.Fatalf("ttl over max_sts_ttl: %v", err)
	}
	if _, err := f.do(logical.OpUpdate, "sts/deployer", map[string]any{"role_arn": "arn:aws:iam::123456789012:role/other"}); !isInvalid("role_arn")(err) {
		t.Fatalf("role_arn not in the role: %v", err)
	}
}

// Stands in for: AWS refusing a request signed with a wrong secret key
// (SignatureDoesNotMatch) and an unknown access key; and an endpoint
// nothing listens on.
func TestWrongRootCredentials(t *testing.T) {
	needMoto(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	cases := map[string]struct {
		key, secret, endpoint string
		reason                string
		invalid               bool // answered 400: AWS refused the request
	}{
		"wrong secret":   {adminKey, "not-the-secret", motoURL, "SignatureDoesNotMatch", true},
		"unknown key":    {"AKIAUNKNOWNKEY000000", "whatever", motoURL, "InvalidClientTokenId", true},
		"nobody listens": {adminKey, adminSec, closed, "connection refused", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e, err := awssts.New(inmem.New(), awssts.Config{HTTPClient: motoHTTP})
			if err != nil {
				t.Fatal(err)
			}
			do := func(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
				return e.HandleRequest(t.Context(), &logical.Request{Operation: op, RelativePath: path, Data: data})
			}
			for _, w := range []struct {
				path string
				data map[string]any
			}{
				{"config/root", map[string]any{"access_key": tc.key, "secret_key": tc.secret, "iam_endpoint": tc.endpoint, "sts_endpoint": tc.endpoint, "max_retries": 0}},
				{"roles/r", map[string]any{"credential_type": "iam_user", "policy_arns": "arn:aws:iam::aws:policy/ReadOnlyAccess"}},
			} {
				if _, err := do(logical.OpUpdate, w.path, w.data); err != nil {
					t.Fatal(err)
				}
			}
			_, err = do(logical.OpRead, "creds/r", nil)
			var ire *logical.InvalidRequestError
			if !errors.Is(err, awssts.ErrAWS) || !strings.Contains(err.Error(), tc.endpoint) || !strings.Contains(err.Error(), tc.reason) || errors.As(err, &ire) != tc.invalid {
				t.Fatalf("err = %v; want ErrAWS naming %s and %q (400: %v)", err, tc.endpoint, tc.reason, tc.invalid)
			}
			if strings.Contains(err.Error(), tc.secret) {
				t.Fatal("the error holds the secret key")
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	e, err := awssts.New(inmem.New(), awssts.Config{HTTPClient: motoHTTP})
	if err != nil {
		t.Fatal(err)
	}
	doc := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`
	roleARN := "arn:aws:iam::123456789012:role/r"
	cases := map[string]struct {
		path  string
		data  map[string]any
		field string
	}{
		"no access key":       {"config/root", map[string]any{"secret_key": "s"}, "access_key"},
		"no secret key":       {"config/root", map[string]any{"access_key": "AKIAAAAAAAAAAAAAAAAA"}, "secret_key"},
		"bad region":          {"config/root", map[string]any{"access_key": "AKIAAAAAAAAAAAAAAAAA", "secret_key": "s", "region": "mars"}, "region"},
		"bad endpoint":        {"config/root", map[string]any{"access_key": "AKIAAAAAAAAAAAAAAAAA", "secret_key": "s", "iam_endpoint": "ftp://x"}, "iam_endpoint"},
		"unknown field":       {"config/root", map[string]any{"token": "x"}, "token"},
		"no type":             {"roles/r", map[string]any{"policy_document": doc}, "credential_type"},
		"federation":          {"roles/r", map[string]any{"credential_type": "federation_token", "policy_document": doc}, "credential_type"},
		"policy not JSON":     {"roles/r", map[string]any{"credential_type": "iam_user", "policy_document": "{nope"}, "policy_document"},
		"policy no statement": {"roles/r", map[string]any{"credential_type": "iam_user", "policy_document": `{"Version":"2012-10-17"}`}, "policy_document"},
		"bad policy arn":      {"roles/r", map[string]any{"credential_type": "iam_user", "policy_arns": "ReadOnly"}, "policy_arns"},
		"iam_user no policy":  {"roles/r", map[string]any{"credential_type": "iam_user"}, "policy_document"},
		"iam_user role_arns":  {"roles/r", map[string]any{"credential_type": "iam_user", "policy_document": doc, "role_arns": roleARN}, "role_arns"},
		"bad user path":       {"roles/r", map[string]any{"credential_type": "iam_user", "policy_document": doc, "user_path": "noslash"}, "user_path"},
		"assumed no arns":     {"roles/r", map[string]any{"credential_type": "assumed_role"}, "role_arns"},
		"bad role arn":        {"roles/r", map[string]any{"credential_type": "assumed_role", "role_arns": "arn:aws:s3:::bucket"}, "role_arns"},
		"sts ttl too short":   {"roles/r", map[string]any{"credential_type": "assumed_role", "role_arns": roleARN, "default_sts_ttl": 60}, "default_sts_ttl"},
		"default over max":    {"roles/r", map[string]any{"credential_type": "assumed_role", "role_arns": roleARN, "default_sts_ttl": "2h", "max_sts_ttl": "1h"}, "default_sts_ttl"},
		"lease over max":      {"config/lease", map[string]any{"lease": "2h", "lease_max": "1h"}, "lease"},
		"bad role name":       {"roles/a b", nil, "name"},
		"creds unknown role":  {"creds/none", nil, "role"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := e.HandleRequest(t.Context(), &logical.Request{Operation: logical.OpUpdate, RelativePath: tc.path, Data: tc.data})
			if !isInvalid(tc.field)(err) {
				t.Fatalf("err = %v; want a 400 naming %s", err, tc.field)
			}
		})
	}
	// creds before config/root; secret key never read back.
	if _, err := e.HandleRequest(t.Context(), &logical.Request{Operation: logical.OpUpdate, RelativePath: "roles/r", Data: map[string]any{"credential_type": "iam_user", "policy_document": doc}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.HandleRequest(t.Context(), &logical.Request{Operation: logical.OpRead, RelativePath: "creds/r"}); !errors.Is(err, awssts.ErrNotConfigured) {
		t.Fatalf("creds without config/root: %v", err)
	}
	if _, err := e.HandleRequest(t.Context(), &logical.Request{Operation: logical.OpRead, RelativePath: "sts/r"}); !isInvalid("role")(err) {
		t.Fatalf("sts/ of an iam_user role: %v", err)
	}
	if _, err := e.HandleRequest(t.Context(), &logical.Request{Operation: logical.OpUpdate, RelativePath: "config/root", Data: map[string]any{"access_key": "AKIAAAAAAAAAAAAAAAAA", "secret_key": "sekrit"}}); err != nil {
		t.Fatal(err)
	}
	resp, err := e.HandleRequest(t.Context(), &logical.Request{Operation: logical.OpRead, RelativePath: "config/root"})
	if err != nil || fmt.Sprint(resp.Data) == "" || strings.Contains(fmt.Sprint(resp.Data), "sekrit") || resp.Data["region"] != "us-east-1" {
		t.Fatalf("config/root read = %v, %v", resp, err)
	}
}

func isInvalid(field string) func(error) bool {
	return func(err error) bool {
		var ire *logical.InvalidRequestError
		return errors.As(err, &ire) && ire.Field == field
	}
}
