package operator

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/secrethub/secrethub/internal/kubetest"
	"github.com/secrethub/secrethub/webhook/inject"
)

// TestSetupWebhook runs the operator's manager with the injector, as Run
// sets it up, against an API server that calls it: an annotated pod comes
// back injected, with native sidecars chosen from the API server's version.
func TestSetupWebhook(t *testing.T) {
	wh := &envtest.WebhookInstallOptions{Paths: []string{"../../config/webhook/manifests.yaml"}}
	cfg := kubetest.StartWithWebhooks(t, wh)
	scheme, err := Scheme()
	if err != nil {
		t.Fatal(err)
	}
	o := WebhookOptions{
		Enabled: true, Host: wh.LocalServingHost, Port: wh.LocalServingPort, CertDir: wh.LocalServingCertDir,
		Inject: inject.Config{Image: "secrethub:test", CoreAddresses: []string{"https://core:4000"}, AgentAddresses: []string{"https://core:4001"}, Namespace: "secrethub-system"},
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		WebhookServer: NewWebhookServer(o),
	})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if err := SetupWebhook(mgr, o, log); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	started := mgr.GetWebhookServer().StartedChecker()
	for deadline := time.Now().Add(30 * time.Second); started(&http.Request{}) != nil; {
		if time.Now().After(deadline) {
			t.Fatalf("webhook server not started: %v", started(&http.Request{}))
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case err := <-done:
			t.Fatalf("manager stopped: %v", err)
		}
	}

	c := kubetest.Client(t, cfg, scheme)
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "team", Annotations: map[string]string{
			inject.AnnotationInject: "true", inject.AnnotationRole: "app", inject.AnnotationSecretPrefix + "db": "secrets/team/db",
		}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	got := &corev1.Pod{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(pod), got); err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.InitContainers) != 1 || got.Spec.InitContainers[0].Name != inject.AgentContainer ||
		got.Spec.InitContainers[0].RestartPolicy == nil || !strings.Contains(got.Spec.InitContainers[0].Env[0].Value, "secrets/team/db") {
		t.Fatalf("pod not injected with a native sidecar: %+v", got.Spec.InitContainers)
	}
}
