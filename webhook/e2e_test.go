package webhook_test

// The end-to-end check without a kubelet: the pod the injector
// makes is "run" by taking its agent container's command, arguments and
// environment, with each of its volumes as a temporary directory and the
// projected token requested from the real API server, against a real core
// whose Kubernetes auth method reviews that token with the same server.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secrethub/secrethub/core"
	"github.com/secrethub/secrethub/internal/coretest"
	"github.com/secrethub/secrethub/internal/kubetest"
	"github.com/secrethub/secrethub/webhook/inject"
)

func TestInjectedAgentRendersWithoutKubelet(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	agentBin := filepath.Join(dir, "secrethub-agent")
	if out, err := exec.Command("go", "build", "-o", agentBin, "github.com/secrethub/secrethub/cmd/secrethub-agent").CombinedOutput(); err != nil {
		t.Fatalf("build secrethub-agent: %v\n%s", err, out)
	}

	cfg := kubetest.Start(t)
	cs := kubetest.Clientset(t, cfg)
	const ns = "shop"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, sa := range []string{"web", "reviewer"} {
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "secrethub-reviewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "reviewer", Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token := func(sa string, aud []string) string {
		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{Audiences: aud}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}

	// A real core: REST and the mTLS agent listener.
	coreEnv := coretest.Start(t, core.Config{})
	root := coreEnv.Root
	for _, w := range []struct {
		path string
		data map[string]any
	}{
		{"sys/auth/kubernetes", map[string]any{"type": "kubernetes"}},
		{"auth/kubernetes/config", map[string]any{"kubernetes_host": cfg.Host, "kubernetes_ca_cert": string(cfg.CAData),
			"token_reviewer_jwt": token("reviewer", nil), "disable_local_ca_jwt": true}},
		{"sys/policies/acl/shop-web", map[string]any{"policy": "rules:\n- path: secrets/shop/*\n  capabilities: [read]\n"}},
		{"auth/kubernetes/role/shop-web", map[string]any{"bound_service_account_names": []string{"web"},
			"bound_service_account_namespaces": []string{ns}, "token_policies": []string{"shop-web"}, "audience": inject.DefaultAudience}},
		{"secrets/shop/db", map[string]any{"password": "one-s3cr3t"}},
	} {
		if _, err := root.Write(ctx, w.path, w.data); err != nil {
			t.Fatalf("write %s: %v", w.path, err)
		}
	}

	// The injector's pod.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web", Annotations: map[string]string{
			inject.AnnotationInject: "true", inject.AnnotationRole: "shop-web",
			inject.AnnotationSecretPrefix + "db":   "secrets/shop/db",
			inject.AnnotationTemplatePrefix + "db": `{{ (secret "secrets/shop/db").password }}`,
		}},
		Spec: corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}
	injected, err := inject.Pod(pod, inject.NewConfig("agent-image", []string{coreEnv.RESTURL}, []string{coreEnv.AgentURL}))
	if err != nil {
		t.Fatal(err)
	}
	var agent *corev1.Container
	for i, ic := range injected.Spec.InitContainers {
		if ic.RestartPolicy != nil && *ic.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			agent = &injected.Spec.InitContainers[i]
		}
	}
	if agent == nil {
		t.Fatalf("no native sidecar agent in the injected pod: %+v", injected.Spec.InitContainers)
	}

	// Each volume the agent mounts becomes a directory; paths in its
	// environment are moved there (longest mount path first).
	mounts := map[string]string{}
	var paths []string
	for _, m := range agent.VolumeMounts {
		local := filepath.Join(dir, "volumes", m.Name)
		if err := os.MkdirAll(local, 0o700); err != nil {
			t.Fatal(err)
		}
		mounts[m.MountPath] = local
		paths = append(paths, m.MountPath)
		for _, v := range injected.Spec.Volumes {
			if v.Name == m.Name && v.Projected != nil {
				for _, src := range v.Projected.Sources {
					if sat := src.ServiceAccountToken; sat != nil {
						if err := os.WriteFile(filepath.Join(local, sat.Path), []byte(token("web", []string{sat.Audience})), 0o600); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
		}
	}
	sort.Slice(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
	env := []string{"GORACE=atexit_sleep_ms=0"}
	for _, e := range agent.Env {
		v := e.Value
		for _, p := range paths {
			v = strings.ReplaceAll(v, `"`+p, `"`+mounts[p])
		}
		env = append(env, e.Name+"="+v)
	}
	cmd := exec.Command(agentBin, agent.Args...)
	cmd.Env = env
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
		}
	})

	rendered := filepath.Join(mounts[inject.MountPath], "secrets", "db")
	waitFile := func(want string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			if b, err := os.ReadFile(rendered); err == nil && string(b) == want {
				return
			}
			select {
			case err := <-exited:
				t.Fatalf("agent exited: %v\n%s", err, logs.String())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never held %q\nagent log:\n%s", rendered, want, logs.String())
			}
		}
	}
	waitFile("one-s3cr3t")
	if _, err := root.Write(ctx, "secrets/shop/db", map[string]any{"password": "two-s3cr3t"}); err != nil {
		t.Fatal(err)
	}
	waitFile("two-s3cr3t")
	if strings.Contains(logs.String(), "s3cr3t") {
		t.Error("the agent log contains a secret value")
	}
}

// syncBuffer collects a process's output for concurrent reads.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
