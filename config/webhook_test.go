package config

import (
	"slices"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestWebhookBuild checks the injector's configuration as kustomize builds
// it: the Service it calls, the namespaces it never sees, and the settings
// the issue asks of the manifests.
func TestWebhookBuild(t *testing.T) {
	objs := build(t, "webhook")
	svcs := only[corev1.Service](t, objs, "Service")
	if len(svcs) != 1 || svcs[0].Name != "secrethub-webhook-service" || svcs[0].Namespace != "secrethub-system" {
		t.Fatalf("services = %+v", svcs)
	}
	if p := svcs[0].Spec.Ports; len(p) != 1 || p[0].TargetPort.IntValue() != 9443 {
		t.Errorf("service ports = %+v, want target 9443 (operator -webhook-port)", p)
	}
	cfgs := only[admissionregistrationv1.MutatingWebhookConfiguration](t, objs, "MutatingWebhookConfiguration")
	if len(cfgs) != 1 || len(cfgs[0].Webhooks) != 1 {
		t.Fatalf("mutating webhook configurations = %+v", cfgs)
	}
	wh := cfgs[0].Webhooks[0]
	if wh.Name != "inject.secrethub.io" {
		t.Errorf("name = %q", wh.Name)
	}
	svc := wh.ClientConfig.Service
	if svc == nil || svc.Name != "secrethub-webhook-service" || svc.Namespace != "secrethub-system" || svc.Path == nil || *svc.Path != "/mutate-v1-pod" {
		t.Errorf("clientConfig.service = %+v", svc)
	}
	if wh.FailurePolicy == nil || *wh.FailurePolicy != admissionregistrationv1.Fail {
		t.Errorf("failurePolicy = %v", wh.FailurePolicy)
	}
	if wh.TimeoutSeconds == nil || *wh.TimeoutSeconds != 5 {
		t.Errorf("timeoutSeconds = %v", wh.TimeoutSeconds)
	}
	if wh.SideEffects == nil || *wh.SideEffects != admissionregistrationv1.SideEffectClassNone {
		t.Errorf("sideEffects = %v", wh.SideEffects)
	}
	if len(wh.Rules) != 1 || !slices.Equal(wh.Rules[0].Resources, []string{"pods"}) ||
		!slices.Equal(wh.Rules[0].Operations, []admissionregistrationv1.OperationType{admissionregistrationv1.Create}) {
		t.Errorf("rules = %+v", wh.Rules)
	}
	sel := wh.NamespaceSelector
	if sel == nil || len(sel.MatchExpressions) != 1 {
		t.Fatalf("namespaceSelector = %+v", sel)
	}
	e := sel.MatchExpressions[0]
	if e.Key != "kubernetes.io/metadata.name" || e.Operator != "NotIn" || !slices.Equal(e.Values, []string{"kube-system", "secrethub-system"}) {
		t.Errorf("namespaceSelector = %+v, want kube-system and secrethub-system excluded", e)
	}
}
