package bootstrap

// Kubernetes logins against a real core; the full path through a real
// kube-apiserver (envtest) is TestRunKubernetesEnvtest.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secrethub/secrethub/agent/config"
	"github.com/secrethub/secrethub/internal/kubetest"
)

// unsignedJWT is JWT-shaped, for service account ns/name and audience
// aud, without a valid signature.
func unsignedJWT(ns, name, aud string) string {
	enc := base64.RawURLEncoding.EncodeToString
	claims, _ := json.Marshal(map[string]any{"sub": "system:serviceaccount:" + ns + ":" + name, "aud": []string{aud}})
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc(claims) + ".c2lnbmF0dXJl"
}

func writeToken(t *testing.T, jwt string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(jwt+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func kubeConfig(tokenFile, stateDir string) *config.Config {
	return &config.Config{
		Auth:     config.Auth{Method: config.AuthKubernetes, Role: "web", TokenFile: tokenFile, Mount: "k8s"},
		StateDir: stateDir,
	}
}

// TestKubernetesLoginErrors: what the agent says when it cannot log in,
// with a core whose Kubernetes auth points at an API server that is not
// there.
func TestKubernetesLoginErrors(t *testing.T) {
	ctx := context.Background()
	rc := newRealCore(t, 0, 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "https://" + l.Addr().String()
	l.Close()
	rc.write("sys/auth/k8s", map[string]any{"type": "kubernetes"})
	rc.write("auth/k8s/config", map[string]any{"kubernetes_host": closed, "token_reviewer_jwt": "reviewer", "disable_local_ca_jwt": true})
	rc.write("auth/k8s/role/web", map[string]any{"bound_service_account_names": "app", "bound_service_account_namespaces": "team-a", "audience": "secrethub"})

	t.Run("token file missing", func(t *testing.T) {
		_, err := Run(ctx, kubeConfig(filepath.Join(t.TempDir(), "absent"), ""), rc.client(), nil)
		if !errors.Is(err, ErrNoServiceAccountToken) || !strings.Contains(err.Error(), "absent") {
			t.Fatalf("err %v, want ErrNoServiceAccountToken naming the file", err)
		}
	})
	t.Run("token file empty", func(t *testing.T) {
		_, err := Run(ctx, kubeConfig(writeToken(t, " "), ""), rc.client(), nil)
		if !errors.Is(err, ErrNoServiceAccountToken) || !strings.Contains(err.Error(), "empty") {
			t.Fatalf("err %v, want ErrNoServiceAccountToken saying empty", err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		jwt := unsignedJWT("other", "app", "secrethub")
		_, err := Run(ctx, kubeConfig(writeToken(t, jwt), ""), rc.client(), nil)
		if !errors.Is(err, ErrLoginRefused) || !strings.Contains(err.Error(), `role "web"`) {
			t.Fatalf("err %v, want ErrLoginRefused naming the role", err)
		}
		if strings.Contains(err.Error(), jwt) {
			t.Fatal("the error quotes the token")
		}
	})
	t.Run("API server down", func(t *testing.T) {
		jwt := unsignedJWT("team-a", "app", "secrethub")
		_, err := Run(ctx, kubeConfig(writeToken(t, jwt), ""), rc.client(), nil)
		if err == nil || errors.Is(err, ErrLoginRefused) || !strings.Contains(err.Error(), closed) {
			t.Fatalf("err %v, want an upstream failure naming %s", err, closed)
		}
		if strings.Contains(err.Error(), jwt) {
			t.Fatal("the error quotes the token")
		}
	})
}

// TestRunKubernetesEnvtest bootstraps an agent with a service account
// token from a real kube-apiserver: login through the core's Kubernetes
// auth, certificate named after the service account, mTLS accepted; a
// restart reuses the certificate; a rotated token file is read at the
// next login.
func TestRunKubernetesEnvtest(t *testing.T) {
	ctx := context.Background()
	kcfg := kubetest.Start(t)
	cs := kubetest.Clientset(t, kcfg)
	for _, ns := range []string{"team-a", "secrethub"} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, sa := range [][2]string{{"team-a", "app"}, {"secrethub", "reviewer"}} {
		if _, err := cs.CoreV1().ServiceAccounts(sa[0]).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa[1]}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "secrethub-reviewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "secrethub", Name: "reviewer"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token := func(ns, name string, aud ...string) string {
		t.Helper()
		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{Audiences: aud}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}

	rc := newRealCore(t, 0, 0)
	rc.write("sys/auth/k8s", map[string]any{"type": "kubernetes"})
	rc.write("auth/k8s/config", map[string]any{
		"kubernetes_host": kcfg.Host, "kubernetes_ca_cert": string(kcfg.CAData),
		"token_reviewer_jwt": token("secrethub", "reviewer"), "disable_local_ca_jwt": true,
	})
	rc.write("auth/k8s/role/web", map[string]any{
		"bound_service_account_names": "app", "bound_service_account_namespaces": "team-a",
		"audience": "secrethub", "token_policies": "app",
	})

	tokenFile := writeToken(t, token("team-a", "app", "secrethub"))
	cfg := kubeConfig(tokenFile, filepath.Join(t.TempDir(), "state"))
	first, err := Run(ctx, cfg, rc.client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if first.Token == "" || first.Certificate.Subject.CommonName != "agent team-a/app" {
		t.Fatalf("first start: token set %v, certificate CN %q", first.Token != "", first.Certificate.Subject.CommonName)
	}
	if code, err := rc.whoami(first); err != nil || code != 200 {
		t.Fatalf("agent listener: %d %v", code, err)
	}
	lookup, err := rc.root.Write(ctx, "auth/token/lookup", map[string]any{"token": first.Token})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := json.Marshal(lookup.Data["policies"]); string(got) != `["app","default"]` {
		t.Fatalf("token policies %s, want app and default", got)
	}

	// A restart reuses the stored certificate: no login.
	if os.Remove(tokenFile) != nil {
		t.Fatal("remove token file")
	}
	second, err := Run(ctx, cfg, rc.client(), nil)
	if err != nil || second.Token != "" {
		t.Fatalf("restart: %v (token set %v), want the stored certificate without a login", err, second != nil && second.Token != "")
	}

	// The kubelet rotated the token: the next login reads the new one.
	if err := os.WriteFile(tokenFile, []byte(token("team-a", "app", "secrethub")), 0o600); err != nil {
		t.Fatal(err)
	}
	third, err := Reissue(ctx, cfg, rc.client())
	if err != nil || third.Token == "" || third.Token == first.Token {
		t.Fatalf("Reissue with the rotated token: %v", err)
	}

	// A token for another audience is refused.
	if err := os.WriteFile(tokenFile, []byte(token("team-a", "app", "vault")), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Reissue(ctx, cfg, rc.client()); !errors.Is(err, ErrLoginRefused) {
		t.Fatalf("Reissue with a token for another audience: %v, want ErrLoginRefused", err)
	}
}
