package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/version"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/secrethub/secrethub/webhook/inject"
)

func testConfig() inject.Config {
	c := inject.NewConfig("registry.example/secrethub:1", []string{"https://core.secrethub:4000"}, []string{"https://core.secrethub:4001"})
	c.Namespace = "secrethub-system"
	return c
}

func newHandler(t testing.TB, cfg inject.Config) *Handler {
	t.Helper()
	h, err := NewHandler(cfg, clientgoscheme.Scheme, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func pod(ns string, ann map[string]string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns, Annotations: ann},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
	}
}

func request(t testing.TB, op admissionv1.Operation, p *corev1.Pod) admission.Request {
	t.Helper()
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: types.UID("uid-1"), Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: p.Namespace, Name: p.Name, Operation: op,
		Object: runtime.RawExtension{Raw: raw},
	}}
}

var optIn = map[string]string{
	inject.AnnotationInject: "true", inject.AnnotationRole: "app",
	inject.AnnotationSecretPrefix + "db": "secrets/team/db",
}

func with(extra map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range optIn {
		m[k] = v
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// applied applies the response's patch to the request's pod.
func applied(t *testing.T, req admission.Request, resp admission.Response) *corev1.Pod {
	t.Helper()
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("patch type = %v", resp.PatchType)
	}
	ops, err := json.Marshal(resp.Patches)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := patch.Apply(req.Object.Raw)
	if err != nil {
		t.Fatalf("applying the patch: %v", err)
	}
	var out corev1.Pod
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

func TestHandle(t *testing.T) {
	legacy := testConfig()
	legacy.NativeSidecars = false
	tests := map[string]struct {
		cfg        inject.Config
		op         admissionv1.Operation
		pod        *corev1.Pod
		patched    bool
		deniedKey  string
		inits      []string
		containers []string
	}{
		"native sidecar": {cfg: testConfig(), pod: pod("team", optIn), patched: true,
			inits: []string{inject.AgentContainer}, containers: []string{"app"}},
		"fallback": {cfg: legacy, pod: pod("team", optIn), patched: true,
			inits: []string{inject.AgentInitContainer}, containers: []string{"app", inject.AgentContainer}},
		"init-only": {cfg: testConfig(), pod: pod("team", with(map[string]string{inject.AnnotationMode: inject.ModeInitOnly})), patched: true,
			inits: []string{inject.AgentInitContainer}, containers: []string{"app"}},
		"template and reload": {cfg: testConfig(), patched: true, inits: []string{inject.AgentContainer}, containers: []string{"app"},
			pod: pod("team", with(map[string]string{inject.AnnotationTemplatePrefix + "db": "{{ secretKey \"secrets/team/db\" \"password\" }}", inject.AnnotationReloadPrefix + "db": "http:http://127.0.0.1:8080/-/reload"}))},
		"resources": {cfg: testConfig(), patched: true, inits: []string{inject.AgentContainer}, containers: []string{"app"},
			pod: pod("team", with(map[string]string{inject.AnnotationRequestsCPU: "20m", inject.AnnotationLimitsMemory: "96Mi"}))},
		"not annotated":       {cfg: testConfig(), pod: pod("team", nil)},
		"already injected":    {cfg: testConfig(), pod: pod("team", with(map[string]string{inject.AnnotationStatus: inject.StatusInjected}))},
		"kube-system skipped": {cfg: testConfig(), pod: pod("kube-system", optIn)},
		"own namespace":       {cfg: testConfig(), pod: pod("secrethub-system", optIn)},
		"update ignored":      {cfg: testConfig(), op: admissionv1.Update, pod: pod("team", optIn)},
		"bad inject":          {cfg: testConfig(), pod: pod("team", map[string]string{inject.AnnotationInject: "maybe"}), deniedKey: inject.AnnotationInject},
		"no role":             {cfg: testConfig(), pod: pod("team", map[string]string{inject.AnnotationInject: "true"}), deniedKey: inject.AnnotationRole},
		"bad mode":            {cfg: testConfig(), pod: pod("team", with(map[string]string{inject.AnnotationMode: "x"})), deniedKey: inject.AnnotationMode},
		"agent-template": {cfg: testConfig(), pod: pod("team", with(map[string]string{inject.AnnotationAgentTemplate: "web"})), patched: true,
			inits: []string{inject.AgentContainer}, containers: []string{"app"}},
		"bad agent-template":  {cfg: testConfig(), pod: pod("team", with(map[string]string{inject.AnnotationAgentTemplate: "../web"})), deniedKey: inject.AnnotationAgentTemplate},
		"bad secret":          {cfg: testConfig(), pod: pod("team", with(map[string]string{inject.AnnotationSecretPrefix + "x": "/abs"})), deniedKey: inject.AnnotationSecretPrefix + "x"},
		"bad template":        {cfg: testConfig(), pod: pod("team", with(map[string]string{inject.AnnotationTemplatePrefix + "db": "{{"})), deniedKey: inject.AnnotationTemplatePrefix + "db"},
		"bad reload":          {cfg: testConfig(), pod: pod("team", with(map[string]string{inject.AnnotationReloadPrefix + "db": "x"})), deniedKey: inject.AnnotationReloadPrefix + "db"},
		"bad requests-cpu":    {cfg: testConfig(), pod: pod("team", with(map[string]string{inject.AnnotationRequestsCPU: "x"})), deniedKey: inject.AnnotationRequestsCPU},
		"bad requests-memory": {cfg: testConfig(), pod: pod("team", with(map[string]string{inject.AnnotationRequestsMemory: "x"})), deniedKey: inject.AnnotationRequestsMemory},
		"bad limits-cpu":      {cfg: testConfig(), pod: pod("team", with(map[string]string{inject.AnnotationLimitsCPU: "x"})), deniedKey: inject.AnnotationLimitsCPU},
		"bad limits-memory":   {cfg: testConfig(), pod: pod("team", with(map[string]string{inject.AnnotationLimitsMemory: "x"})), deniedKey: inject.AnnotationLimitsMemory},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			op := tc.op
			if op == "" {
				op = admissionv1.Create
			}
			req := request(t, op, tc.pod)
			resp := newHandler(t, tc.cfg).Handle(context.Background(), req)
			switch {
			case tc.deniedKey != "":
				if resp.Allowed || resp.Result == nil || !strings.Contains(resp.Result.Message, tc.deniedKey) || resp.Result.Code != http.StatusForbidden {
					t.Fatalf("response = %+v, want denied naming %s", resp.AdmissionResponse, tc.deniedKey)
				}
				return
			case !resp.Allowed:
				t.Fatalf("denied: %+v", resp.Result)
			case !tc.patched:
				if len(resp.Patches) != 0 || resp.PatchType != nil {
					t.Fatalf("patched an untouched pod: %v", resp.Patches)
				}
				return
			}
			got := applied(t, req, resp)
			want, err := inject.Pod(tc.pod, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(got, want) {
				t.Fatalf("patched pod differs from inject.Pod:\ngot  %+v\nwant %+v", got.Spec, want.Spec)
			}
			var inits, containers []string
			for _, c := range got.Spec.InitContainers {
				inits = append(inits, c.Name)
			}
			for _, c := range got.Spec.Containers {
				containers = append(containers, c.Name)
			}
			if !slices.Equal(inits, tc.inits) || !slices.Equal(containers, tc.containers) {
				t.Errorf("init containers %q containers %q, want %q %q", inits, containers, tc.inits, tc.containers)
			}
			// The webhook is invoked again (reinvocationPolicy, retries): no
			// second injection.
			again := newHandler(t, tc.cfg).Handle(context.Background(), request(t, admissionv1.Create, got))
			if !again.Allowed || len(again.Patches) != 0 {
				t.Errorf("second call: allowed %v patches %v", again.Allowed, again.Patches)
			}
		})
	}
}

// TestHandleAgentTemplateNamespace: a pod created without
// metadata.namespace gets the AgentTemplates of the request's namespace,
// and the patch leaves its metadata alone.
func TestHandleAgentTemplateNamespace(t *testing.T) {
	p := pod("", with(map[string]string{inject.AnnotationAgentTemplate: "web"}))
	req := request(t, admissionv1.Create, p)
	req.Namespace = "team"
	resp := newHandler(t, testConfig()).Handle(context.Background(), req)
	if !resp.Allowed {
		t.Fatalf("denied: %+v", resp.Result)
	}
	got := applied(t, req, resp)
	if got.Namespace != "" {
		t.Errorf("patch set metadata.namespace %q", got.Namespace)
	}
	var raw string
	for _, e := range got.Spec.InitContainers[0].Env {
		if e.Name == inject.EnvAgentConfig {
			raw = e.Value
		}
	}
	var ac struct {
		TemplateSources []string `json:"template_sources"`
	}
	if err := json.Unmarshal([]byte(raw), &ac); err != nil {
		t.Fatalf("agent config: %v", err)
	}
	if want := []string{"secrets/secrethub/agent-templates/team/web"}; !slices.Equal(ac.TemplateSources, want) {
		t.Errorf("template_sources = %q, want %q", ac.TemplateSources, want)
	}
}

func TestHandleUndecodable(t *testing.T) {
	req := request(t, admissionv1.Create, pod("team", optIn))
	req.Object.Raw = []byte(`{"spec": 7}`)
	resp := newHandler(t, testConfig()).Handle(context.Background(), req)
	if resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusBadRequest {
		t.Fatalf("response = %+v", resp.AdmissionResponse)
	}
}

func TestNewHandlerConfig(t *testing.T) {
	if _, err := NewHandler(inject.Config{}, clientgoscheme.Scheme, nil); err == nil {
		t.Fatal("NewHandler accepted an empty Config")
	}
}

func TestNativeSidecarsSupported(t *testing.T) {
	for _, tc := range []struct {
		major, minor string
		want         bool
	}{{"1", "29", true}, {"1", "37", true}, {"1", "28", false}, {"1", "29+", true}, {"1", "28+", false}, {"2", "0", true}, {"", "", false}, {"1", "x", false}} {
		if got := NativeSidecarsSupported(&version.Info{Major: tc.major, Minor: tc.minor}); got != tc.want {
			t.Errorf("%s.%s: %v, want %v", tc.major, tc.minor, got, tc.want)
		}
	}
	if NativeSidecarsSupported(nil) {
		t.Error("nil version supported")
	}
}

// BenchmarkAdmission measures the webhook from AdmissionReview bytes to
// the response bytes (decode, inject, patch, encode) and reports the p50
// and p99 latency of one request.
func BenchmarkAdmission(b *testing.B) {
	h := newHandler(b, testConfig()).Webhook()
	p := pod("team", with(map[string]string{
		inject.AnnotationSecretPrefix + "api":   "secrets/team/api",
		inject.AnnotationTemplatePrefix + "api": `{{ with secret "secrets/team/api" }}TOKEN={{ .token }}{{ end }}`,
		inject.AnnotationReloadPrefix + "api":   "signal:SIGHUP:/secrethub-run/app.pid",
	}))
	uid := int64(1000)
	p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: &uid}
	req := request(b, admissionv1.Create, p)
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  &req.AdmissionRequest,
	})
	if err != nil {
		b.Fatal(err)
	}
	// One request checked outside the timing.
	rec := httptest.NewRecorder()
	first := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
	first.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, first)
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &review); err != nil || review.Response == nil || !review.Response.Allowed || len(review.Response.Patch) == 0 {
		b.Fatalf("response %d %s (%v)", rec.Code, rec.Body.String(), err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, r)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
