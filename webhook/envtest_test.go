package webhook

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/secrethub/secrethub/agent/config"
	"github.com/secrethub/secrethub/internal/kubetest"
	"github.com/secrethub/secrethub/webhook/inject"
)

// TestAPIServer serves the injector to a real API server, configured by
// the generated config/webhook/manifests.yaml, and creates pods through
// it. Namespace "legacy" is served with NativeSidecars off, so the API
// server validates both layouts.
func TestAPIServer(t *testing.T) {
	wh := &envtest.WebhookInstallOptions{Paths: []string{"../config/webhook/manifests.yaml"}}
	cfg := kubetest.StartWithWebhooks(t, wh)
	c := kubetest.Client(t, cfg, nil)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	version, err := kubetest.Clientset(t, cfg).Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	native := testConfig()
	native.NativeSidecars = NativeSidecarsSupported(version)
	if !native.NativeSidecars {
		t.Fatalf("envtest API server %s.%s: native sidecars not supported", version.Major, version.Minor)
	}
	legacy := testConfig()
	legacy.NativeSidecars = false
	hNative, hLegacy := newHandler(t, native).Webhook(), newHandler(t, legacy).Webhook()
	byNamespace := admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		if req.Namespace == "legacy" {
			return hLegacy.Handle(ctx, req)
		}
		return hNative.Handle(ctx, req)
	})

	srv := webhook.NewServer(webhook.Options{Host: wh.LocalServingHost, Port: wh.LocalServingPort, CertDir: wh.LocalServingCertDir})
	srv.Register(Path, &admission.Webhook{Handler: byNamespace})
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("webhook server: %v", err)
		}
	})
	waitServing(t, net.JoinHostPort(wh.LocalServingHost, strconv.Itoa(wh.LocalServingPort)))

	for _, ns := range []string{"team", "legacy", "kube-system-like"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	create := func(t *testing.T, ns, name string, ann map[string]string) (*corev1.Pod, error) {
		t.Helper()
		p := pod(ns, ann)
		p.Name, p.TypeMeta = name, metav1.TypeMeta{}
		if err := c.Create(ctx, p); err != nil {
			return nil, err
		}
		got := &corev1.Pod{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(p), got); err != nil {
			t.Fatal(err)
		}
		return got, nil
	}
	containerNames := func(cs []corev1.Container) string {
		var n []string
		for _, c := range cs {
			n = append(n, c.Name)
		}
		return strings.Join(n, ",")
	}

	t.Run("annotated pod comes back injected", func(t *testing.T) {
		got, err := create(t, "team", "native", with(map[string]string{inject.AnnotationTemplatePrefix + "db": `{{ secretKey "secrets/team/db" "password" }}`}))
		if err != nil {
			t.Fatal(err)
		}
		if got.Annotations[inject.AnnotationStatus] != inject.StatusInjected {
			t.Errorf("annotations = %v", got.Annotations)
		}
		if n := containerNames(got.Spec.InitContainers); n != inject.AgentContainer {
			t.Fatalf("init containers = %s", n)
		}
		agent := got.Spec.InitContainers[0]
		if agent.RestartPolicy == nil || *agent.RestartPolicy != corev1.ContainerRestartPolicyAlways || agent.StartupProbe == nil {
			t.Errorf("agent is not a native sidecar: restartPolicy %v startupProbe %v", agent.RestartPolicy, agent.StartupProbe)
		}
		ac, err := config.Parse([]byte(agent.Env[0].Value), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatalf("the agent refuses its configuration: %v", err)
		}
		if len(ac.Templates) != 1 || ac.Templates[0].Contents != `{{ secretKey "secrets/team/db" "password" }}` {
			t.Errorf("agent templates = %+v", ac.Templates)
		}
		var mounted bool
		for _, m := range got.Spec.Containers[0].VolumeMounts {
			mounted = mounted || (m.Name == inject.VolumeName && m.MountPath == inject.MountPath)
		}
		if !mounted {
			t.Errorf("app mounts = %+v", got.Spec.Containers[0].VolumeMounts)
		}
	})
	t.Run("fallback layout", func(t *testing.T) {
		got, err := create(t, "legacy", "fallback", optIn)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := containerNames(got.Spec.InitContainers), containerNames(got.Spec.Containers); a != inject.AgentInitContainer || b != "app,"+inject.AgentContainer {
			t.Errorf("init containers %s, containers %s", a, b)
		}
	})
	t.Run("init-only", func(t *testing.T) {
		got, err := create(t, "team", "init-only", with(map[string]string{inject.AnnotationMode: inject.ModeInitOnly}))
		if err != nil {
			t.Fatal(err)
		}
		if a, b := containerNames(got.Spec.InitContainers), containerNames(got.Spec.Containers); a != inject.AgentInitContainer || b != "app" {
			t.Errorf("init containers %s, containers %s", a, b)
		}
	})
	t.Run("un-annotated pod untouched", func(t *testing.T) {
		got, err := create(t, "team", "plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Spec.InitContainers) != 0 || containerNames(got.Spec.Containers) != "app" || len(got.Spec.Volumes) != 0 || got.Annotations[inject.AnnotationStatus] != "" {
			t.Errorf("pod changed: %+v", got.Spec)
		}
	})
	t.Run("bad annotation denied", func(t *testing.T) {
		_, err := create(t, "team", "bad", with(map[string]string{inject.AnnotationReloadPrefix + "db": "signal:SIGFOO:/run/app.pid"}))
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), inject.AnnotationReloadPrefix+"db") {
			t.Fatalf("err = %v, want forbidden naming %sdb", err, inject.AnnotationReloadPrefix)
		}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "team", Name: "bad"}, &corev1.Pod{}); !apierrors.IsNotFound(err) {
			t.Errorf("denied pod exists: %v", err)
		}
	})
}

// waitServing waits until the webhook server accepts TLS connections.
func waitServing(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only checks that the server is up
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook server at %s not serving: %v", addr, err)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		}
	}
}
