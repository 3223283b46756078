package kubernetes_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/secrethub/secrethub/core"
	"github.com/secrethub/secrethub/core/audit"
	corehttp "github.com/secrethub/secrethub/core/http"
	"github.com/secrethub/secrethub/core/storage/inmem"
	"github.com/secrethub/secrethub/core/wire"
	"github.com/secrethub/secrethub/internal/kubetest"
	"github.com/secrethub/secrethub/internal/syncbuf"
)

// coreServer is a real core, in memory, behind its HTTP handler.
type coreServer struct {
	t    *testing.T
	url  string
	root string
	log  *syncbuf.Buffer
}

func newCoreServer(t *testing.T) *coreServer {
	t.Helper()
	logs := &syncbuf.Buffer{}
	c, err := core.New(core.Config{Backend: inmem.New(), StorageType: "inmem", Logger: slog.New(slog.NewTextHandler(logs, nil)),
		AuditSinks: []core.AuditSink{{Name: "memory", Sink: audit.NewMemory()}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(corehttp.New(c, corehttp.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))}))
	t.Cleanup(srv.Close)
	s := &coreServer{t: t, url: srv.URL, log: logs}
	var init wire.InitResponse
	s.mustJSON(200, "PUT", "/v1/sys/init", `{"secret_shares":1,"secret_threshold":1}`, "", &init)
	s.mustJSON(200, "PUT", "/v1/sys/unseal", `{"key":"`+init.Keys[0]+`"}`, "", nil)
	s.root = init.RootToken
	return s
}

func (s *coreServer) do(method, path, body, token string) (int, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (s *coreServer) mustJSON(code int, method, path, body, token string, out any) {
	s.t.Helper()
	got, b := s.do(method, path, body, token)
	if got != code {
		s.t.Fatalf("%s %s: %d %s, want %d", method, path, got, b, code)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

func jsonBody(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// cluster is what the tests create in the envtest API server.
type cluster struct {
	t  *testing.T
	cs k8s.Interface
}

func (c *cluster) namespace(name string) {
	c.t.Helper()
	_, err := c.cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatalf("create namespace %s: %v", name, err)
	}
}

func (c *cluster) serviceAccount(ns, name string) {
	c.t.Helper()
	_, err := c.cs.CoreV1().ServiceAccounts(ns).Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatalf("create service account %s/%s: %v", ns, name, err)
	}
}

// authDelegator binds ns/name to ClusterRole system:auth-delegator, which
// allows creating TokenReviews.
func (c *cluster) authDelegator(ns, name string) {
	c.t.Helper()
	_, err := c.cs.RbacV1().ClusterRoleBindings().Create(context.Background(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "secrethub-reviewer-" + ns + "-" + name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: name}},
	}, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatalf("bind %s/%s to system:auth-delegator: %v", ns, name, err)
	}
}

// token gets a token for ns/name through the TokenRequest API, for the
// audiences given (none: the API server's own).
func (c *cluster) token(ns, name string, audiences ...string) string {
	c.t.Helper()
	exp := int64(3600)
	tr, err := c.cs.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name, &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: &exp},
	}, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatalf("token for %s/%s: %v", ns, name, err)
	}
	return tr.Status.Token
}

// TestLoginAgainstEnvtest logs in to a real core with service account
// tokens that a real kube-apiserver issued and reviews.
func TestLoginAgainstEnvtest(t *testing.T) {
	cfg := kubetest.Start(t)
	k := &cluster{t: t, cs: kubetest.Clientset(t, cfg)}
	k.namespace("team-a")
	k.namespace("other")
	k.namespace("secrethub")
	for _, sa := range [][2]string{{"team-a", "app"}, {"team-a", "db"}, {"other", "app"}, {"secrethub", "reviewer"}, {"secrethub", "no-rights"}} {
		k.serviceAccount(sa[0], sa[1])
	}
	k.authDelegator("secrethub", "reviewer")
	reviewer := k.token("secrethub", "reviewer")

	s := newCoreServer(t)
	s.mustJSON(204, "POST", "/v1/sys/auth/kubernetes", `{"type":"kubernetes"}`, s.root, nil)
	writeConfig := func(reviewerJWT string) {
		t.Helper()
		s.mustJSON(204, "POST", "/v1/auth/kubernetes/config", jsonBody(t, map[string]any{
			"kubernetes_host": cfg.Host, "kubernetes_ca_cert": string(cfg.CAData), "token_reviewer_jwt": reviewerJWT,
			"disable_local_ca_jwt": true,
		}), s.root, nil)
	}
	writeConfig(reviewer)
	for _, p := range []string{"p1", "p2", "p3"} {
		s.mustJSON(204, "PUT", "/v1/sys/policies/acl/"+p, `{"policy":"rules:\n- path: secrets/`+p+`/*\n  capabilities: [read]\n"}`, s.root, nil)
	}
	s.mustJSON(204, "POST", "/v1/auth/kubernetes/role/web", jsonBody(t, map[string]any{
		"bound_service_account_names": []string{"app"}, "bound_service_account_namespaces": []string{"team-a"},
		"audience": "secrethub", "token_policies": []string{"p1", "p2"}, "token_ttl": "10m", "token_max_ttl": "1h",
	}), s.root, nil)
	s.mustJSON(200, "POST", "/v1/auth/kubernetes/role/any-team", jsonBody(t, map[string]any{
		"bound_service_account_names": []string{"app"}, "bound_service_account_namespaces": []string{"team-*", "oth*"},
		"token_policies": []string{"p3"},
	}), s.root, nil) // 200: a warning that the role has no audience

	login := func(role, jwt string) (int, wire.Response, string) {
		t.Helper()
		code, b := s.do("POST", "/v1/auth/kubernetes/login", jsonBody(t, map[string]string{"role": role, "jwt": jwt}), "")
		var out wire.Response
		_ = json.Unmarshal(b, &out)
		return code, out, string(b)
	}

	appToken := k.token("team-a", "app", "secrethub")

	t.Run("bound service account gets exactly the role's policies", func(t *testing.T) {
		code, out, body := login("web", appToken)
		if code != 200 || out.Auth == nil || out.Auth.ClientToken == "" {
			t.Fatalf("login: %d %s", code, body)
		}
		// As with AppRole, the core adds "default".
		if want := []string{"default", "p1", "p2"}; !slices.Equal(out.Auth.Policies, want) {
			t.Fatalf("policies %v, want %v", out.Auth.Policies, want)
		}
		if out.Auth.LeaseDuration != 600 || !out.Auth.Renewable {
			t.Fatalf("lease %d renewable %v, want 600 and renewable", out.Auth.LeaseDuration, out.Auth.Renewable)
		}
		md := out.Auth.Metadata
		if md["role"] != "web" || md["service_account_name"] != "app" || md["service_account_namespace"] != "team-a" || md["service_account_uid"] == "" {
			t.Fatalf("metadata %v", md)
		}
		sa, err := k.cs.CoreV1().ServiceAccounts("team-a").Get(context.Background(), "app", metav1.GetOptions{})
		if err != nil || string(sa.UID) != md["service_account_uid"] {
			t.Fatalf("service_account_uid %q, want the service account's %q (%v)", md["service_account_uid"], sa.UID, err)
		}
		// The token works and carries those policies.
		var self wire.Response
		s.mustJSON(200, "GET", "/v1/auth/token/lookup-self", "", out.Auth.ClientToken, &self)
		if got := self.Data["policies"]; jsonBody(t, got) != `["default","p1","p2"]` {
			t.Fatalf("lookup-self policies %v", got)
		}
		if strings.Contains(body, appToken) {
			t.Fatal("the login response echoes the JWT")
		}
	})

	t.Run("glob bindings", func(t *testing.T) {
		for _, ns := range []string{"team-a", "other"} {
			code, out, body := login("any-team", k.token(ns, "app"))
			if code != 200 || !slices.Equal(out.Auth.Policies, []string{"default", "p3"}) {
				t.Fatalf("%s/app with role any-team: %d %s", ns, code, body)
			}
		}
	})

	refusals := map[string]struct{ role, jwt string }{
		"wrong namespace":       {"web", k.token("other", "app", "secrethub")},
		"wrong service account": {"web", k.token("team-a", "db", "secrethub")},
		"wrong audience":        {"web", k.token("team-a", "app", "vault")},
		"API server audience":   {"web", k.token("team-a", "app")},
		"reviewer's own token":  {"web", reviewer},
		"unknown role":          {"nope", appToken},
		"forged signature":      {"web", forge(appToken)},
		// A role without audience takes only tokens for the API server's own
		// audience: the TokenReview is asked without one.
		"audience on a role without": {"any-team", k.token("team-a", "app", "secrethub")},
	}
	for name, tc := range refusals {
		t.Run("403 "+name, func(t *testing.T) {
			code, _, body := login(tc.role, tc.jwt)
			if code != 403 || !strings.Contains(body, "permission denied") {
				t.Fatalf("login: %d %s, want 403 permission denied", code, body)
			}
			if strings.Contains(body, tc.jwt) || strings.Contains(s.log.String(), tc.jwt) {
				t.Fatal("the JWT appears in the answer or the server log")
			}
		})
	}

	t.Run("reviewer without system:auth-delegator", func(t *testing.T) {
		writeConfig(k.token("secrethub", "no-rights"))
		defer writeConfig(reviewer)
		code, _, body := login("web", k.token("team-a", "app", "secrethub"))
		host := strings.TrimSuffix(cfg.Host, "/") // the config keeps the URL without its slash
		if code != 502 || !strings.Contains(body, host) {
			t.Fatalf("login: %d %s, want 502 naming %s", code, body, host)
		}
		logs := s.log.String()
		if !strings.Contains(logs, "system:auth-delegator") || !strings.Contains(logs, "kubernetes login could not be checked") {
			t.Fatalf("server log does not say what is wrong:\n%s", logs)
		}
	})

	t.Run("reviewer token invalid", func(t *testing.T) {
		writeConfig(forge(reviewer))
		defer writeConfig(reviewer)
		code, _, body := login("web", k.token("team-a", "app", "secrethub"))
		if code != 502 || !strings.Contains(body, "token_reviewer_jwt") {
			t.Fatalf("login: %d %s, want 502 about token_reviewer_jwt", code, body)
		}
	})

	t.Run("no reviewer: the login token reviews itself", func(t *testing.T) {
		writeConfig("")
		defer writeConfig(reviewer)
		// The login token then authenticates the review, so it must be for
		// the API server's audience (role any-team), and team-a/app may not
		// create TokenReviews: a configuration error.
		code, _, body := login("any-team", k.token("team-a", "app"))
		if code != 502 || !strings.Contains(body, "system:auth-delegator") {
			t.Fatalf("login: %d %s, want 502 naming system:auth-delegator", code, body)
		}
		// Once it may, it logs in.
		k.authDelegator("team-a", "app")
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, _, body = login("any-team", k.token("team-a", "app"))
			if code == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("login after binding system:auth-delegator: %d %s", code, body)
			}
			time.Sleep(100 * time.Millisecond) // RBAC caches converge; polled with a deadline
		}
	})
}

// forge breaks a JWT's signature, keeping its claims.
func forge(jwt string) string {
	i := strings.LastIndexByte(jwt, '.')
	sig := []byte(jwt[i+1:])
	if sig[0] == 'A' {
		sig[0] = 'B'
	} else {
		sig[0] = 'A'
	}
	return jwt[:i+1] + string(sig)
}
