package webhook_test

// The end-to-end check without a kubelet: the pod the injector
// makes is "run" by taking its agent container's command, arguments and
// environment, with each of its volumes as a temporary directory and the
// projected token requested from the real API server, against a real core
// whose Kubernetes auth method reviews that token with the same server.

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secrethub/secrethub/api/v1alpha1"
	"github.com/secrethub/secrethub/controllers"
	"github.com/secrethub/secrethub/core"
	"github.com/secrethub/secrethub/internal/coretest"
	"github.com/secrethub/secrethub/internal/kubetest"
	"github.com/secrethub/secrethub/internal/syncbuf"
	"github.com/secrethub/secrethub/webhook/inject"
)

// e2eEnv is an envtest API server with namespace shop, its service
// accounts web and reviewer, and a real core whose Kubernetes auth role
// shop-web admits web's tokens with policy shop-web.
type e2eEnv struct {
	agentBin string
	dir      string
	token    func(sa string, aud []string) string
	core     *coretest.Env
}

const e2eNamespace = "shop"

func newE2E(t *testing.T) *e2eEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	agentBin := filepath.Join(dir, "secrethub-agent")
	if out, err := exec.Command("go", "build", "-o", agentBin, "github.com/secrethub/secrethub/cmd/secrethub-agent").CombinedOutput(); err != nil {
		t.Fatalf("build secrethub-agent: %v\n%s", err, out)
	}

	cfg := kubetest.Start(t)
	cs := kubetest.Clientset(t, cfg)
	const ns = e2eNamespace
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
	policy := "rules:\n- path: secrets/shop/*\n  capabilities: [read]\n- path: " +
		v1alpha1.AgentTemplateCorePath(ns, "*") + "\n  capabilities: [read]\n"
	for _, w := range []struct {
		path string
		data map[string]any
	}{
		{"sys/auth/kubernetes", map[string]any{"type": "kubernetes"}},
		{"auth/kubernetes/config", map[string]any{"kubernetes_host": cfg.Host, "kubernetes_ca_cert": string(cfg.CAData),
			"token_reviewer_jwt": token("reviewer", nil), "disable_local_ca_jwt": true}},
		{"sys/policies/acl/shop-web", map[string]any{"policy": policy}},
		{"auth/kubernetes/role/shop-web", map[string]any{"bound_service_account_names": []string{"web"},
			"bound_service_account_namespaces": []string{ns}, "token_policies": []string{"shop-web"}, "audience": inject.DefaultAudience}},
		{"secrets/shop/db", map[string]any{"password": "one-s3cr3t"}},
	} {
		if _, err := coreEnv.Root.Write(ctx, w.path, w.data); err != nil {
			t.Fatalf("write %s: %v", w.path, err)
		}
	}
	return &e2eEnv{agentBin: agentBin, dir: dir, token: token, core: coreEnv}
}

// write writes data at path in the core.
func (e *e2eEnv) write(t *testing.T, path string, data map[string]any) {
	t.Helper()
	if _, err := e.core.Root.Write(context.Background(), path, data); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// putAgentTemplate stores an AgentTemplate's templates where and as the
// operator does (controllers.StoredTemplates, the KV's wrapped form).
func (e *e2eEnv) putAgentTemplate(t *testing.T, name string, spec v1alpha1.AgentTemplateSpec) {
	t.Helper()
	raw, err := json.Marshal(controllers.StoredTemplates(spec))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	e.write(t, v1alpha1.AgentTemplateCorePath(e2eNamespace, name), map[string]any{"data": doc, "options": map[string]any{}})
}

// tokens counts the core's tokens (each login makes one).
func (e *e2eEnv) tokens(t *testing.T) int {
	t.Helper()
	resp, err := e.core.Root.List(context.Background(), "auth/token/accessors")
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := resp.Data["keys"].([]any)
	return len(keys)
}

// pod is the app pod with annotations ann, injected by cfg.
func (e *e2eEnv) pod(t *testing.T, cfg inject.Config, ann map[string]string) *corev1.Pod {
	t.Helper()
	all := map[string]string{inject.AnnotationInject: "true", inject.AnnotationRole: "shop-web"}
	maps.Copy(all, ann)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: e2eNamespace, Name: "web", Annotations: all},
		Spec:       corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}
	injected, err := inject.Pod(pod, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return injected
}

// volume is where the pod's volume name lives on this host.
func (e *e2eEnv) volume(name string) string { return filepath.Join(e.dir, "volumes", name) }

// agentProc is one of the pod's agent containers running as a process.
type agentProc struct {
	cmd    *exec.Cmd
	logs   *syncbuf.Buffer
	exited chan error
}

// run starts container c of pod as a process: each volume it mounts is a
// directory shared by the pod's containers (a projected token is
// requested from the API server), and the paths in its environment are
// moved there, longest mount path first.
func (e *e2eEnv) run(t *testing.T, pod *corev1.Pod, c *corev1.Container) *agentProc {
	t.Helper()
	mounts := map[string]string{}
	var paths []string
	for _, m := range c.VolumeMounts {
		local := e.volume(m.Name)
		if err := os.MkdirAll(local, 0o700); err != nil {
			t.Fatal(err)
		}
		mounts[m.MountPath] = local
		paths = append(paths, m.MountPath)
		for _, v := range pod.Spec.Volumes {
			if v.Name == m.Name && v.Projected != nil {
				for _, src := range v.Projected.Sources {
					if sat := src.ServiceAccountToken; sat != nil {
						if err := os.WriteFile(filepath.Join(local, sat.Path), []byte(e.token("web", []string{sat.Audience})), 0o600); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
		}
	}
	sort.Slice(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
	env := []string{"GORACE=atexit_sleep_ms=0"}
	for _, ev := range c.Env {
		v := ev.Value
		for _, p := range paths {
			v = strings.ReplaceAll(v, `"`+p, `"`+mounts[p])
		}
		env = append(env, ev.Name+"="+v)
	}
	cmd := exec.Command(e.agentBin, c.Args...)
	cmd.Env = env
	a := &agentProc{cmd: cmd, logs: &syncbuf.Buffer{}, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = a.logs, a.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-a.exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	return a
}

// waitFile waits until the shared volume's file rel holds want, failing
// if the agent exits first.
func (e *e2eEnv) waitFile(t *testing.T, a *agentProc, rel, want string) {
	t.Helper()
	path := filepath.Join(e.volume(inject.VolumeName), rel)
	deadline := time.Now().Add(time.Minute)
	for {
		if b, err := os.ReadFile(path); err == nil && string(b) == want {
			return
		}
		select {
		case err := <-a.exited:
			t.Fatalf("agent exited: %v\n%s", err, a.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never held %q\nagent log:\n%s", path, want, a.logs.String())
		}
	}
}

// container returns the pod's container or init container name.
func container(t *testing.T, pod *corev1.Pod, name string) *corev1.Container {
	t.Helper()
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	t.Fatalf("no container %s in the injected pod", name)
	return nil
}

// appTemplate is an AgentTemplate rendering app.conf into the shared
// volume. In a pod its destination is /secrethub/app.conf; here the
// volume is a directory of the host, so the destination names it (the
// stored template is the agent's input, as the environment is).
func (e *e2eEnv) appTemplate() v1alpha1.AgentTemplateSpec {
	return v1alpha1.AgentTemplateSpec{Templates: []v1alpha1.Template{{
		Name: "app.conf", Destination: filepath.Join(e.volume(inject.VolumeName), "app.conf"),
		Contents: `password = {{ (secret "secrets/shop/db").password }}`,
	}}}
}

// TestInjectedAgentRendersWithoutKubelet runs the native sidecar of a pod
// with a secret annotation and an AgentTemplate: both files appear, and a
// secret change reaches them.
func TestInjectedAgentRendersWithoutKubelet(t *testing.T) {
	e := newE2E(t)
	e.putAgentTemplate(t, "web", e.appTemplate())
	pod := e.pod(t, inject.NewConfig("agent-image", []string{e.core.RESTURL}, []string{e.core.AgentURL}), map[string]string{
		inject.AnnotationSecretPrefix + "db":   "secrets/shop/db",
		inject.AnnotationTemplatePrefix + "db": `{{ (secret "secrets/shop/db").password }}`,
		inject.AnnotationAgentTemplate:         "web",
	})
	agent := container(t, pod, inject.AgentContainer)
	if agent.RestartPolicy == nil || *agent.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Fatalf("the agent is not a native sidecar: %+v", pod.Spec.InitContainers)
	}
	a := e.run(t, pod, agent)
	e.waitFile(t, a, "secrets/db", "one-s3cr3t")
	e.waitFile(t, a, "app.conf", "password = one-s3cr3t")
	e.write(t, "secrets/shop/db", map[string]any{"password": "two-s3cr3t"})
	e.waitFile(t, a, "secrets/db", "two-s3cr3t")
	e.waitFile(t, a, "app.conf", "password = two-s3cr3t")
	if strings.Contains(a.logs.String(), "s3cr3t") {
		t.Error("the agent log contains a secret value")
	}
}

// TestInjectedInitThenSidecar runs the fallback layout (clusters without
// native sidecars): the init container renders and exits, then the
// sidecar starts from its state and keeps the files current, with one
// login for the pod.
func TestInjectedInitThenSidecar(t *testing.T) {
	e := newE2E(t)
	e.putAgentTemplate(t, "web", e.appTemplate())
	cfg := inject.NewConfig("agent-image", []string{e.core.RESTURL}, []string{e.core.AgentURL})
	cfg.NativeSidecars = false
	pod := e.pod(t, cfg, map[string]string{
		inject.AnnotationSecretPrefix + "db": "secrets/shop/db",
		inject.AnnotationAgentTemplate:       "web",
	})
	before := e.tokens(t)

	initC := e.run(t, pod, container(t, pod, inject.AgentInitContainer))
	select {
	case err := <-initC.exited:
		if err != nil {
			t.Fatalf("init container: %v\n%s", err, initC.logs.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("init container still running\n%s", initC.logs.String())
	}
	if b, err := os.ReadFile(filepath.Join(e.volume(inject.VolumeName), "app.conf")); err != nil || string(b) != "password = one-s3cr3t" {
		t.Fatalf("after the init container: app.conf %q, %v", b, err)
	}
	if n := e.tokens(t) - before; n != 1 {
		t.Fatalf("the init container logged in %d times, want 1", n)
	}

	side := e.run(t, pod, container(t, pod, inject.AgentContainer))
	e.write(t, "secrets/shop/db", map[string]any{"password": "two-s3cr3t"})
	e.waitFile(t, side, "secrets/db", `{"password":"two-s3cr3t"}`)
	e.waitFile(t, side, "app.conf", "password = two-s3cr3t")
	if n := e.tokens(t) - before; n != 1 {
		t.Errorf("the pod logged in %d times, want 1 (the sidecar starts from the init container's state)", n)
	}
	if !strings.Contains(side.logs.String(), "logged_in=false") {
		t.Errorf("the sidecar's log does not show a start without login:\n%s", side.logs.String())
	}
}
