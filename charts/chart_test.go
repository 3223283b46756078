package charts

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/secrethub/secrethub/core/server"
	"github.com/secrethub/secrethub/internal/kubetest"
)

const (
	// envHelm names the helm binary; the Makefile exports it.
	envHelm = "HELM"
	chart   = "secrethub"
	release = "rel"
	ns      = "secrethub"
	// fullname is the resource name prefix of release in ns.
	fullname   = "rel-secrethub"
	fieldOwner = "secrethub-chart-test"
)

// helmBin returns the helm binary, failing the test when there is none.
func helmBin(t *testing.T) string {
	t.Helper()
	h := os.Getenv(envHelm)
	if h == "" {
		t.Fatalf("%s is not set: run `make test`, or `make helm` and set %s to the binary it builds under ~/.cache/secrethub/", envHelm, envHelm)
	}
	if _, err := os.Stat(h); err != nil {
		t.Fatalf("%s=%s: %v (run `make helm`)", envHelm, h, err)
	}
	return h
}

// runHelm runs helm with args in this directory and returns its standard
// output, or an error carrying its standard error.
func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	// No user configuration, repositories or cluster: the chart alone.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home, "KUBECONFIG="+filepath.Join(home, "none"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), errors.New(stderr.String() + stdout.String())
	}
	return stdout.String(), nil
}

// template renders the chart with the --set values given.
func template(t *testing.T, set ...string) (string, error) {
	t.Helper()
	args := []string{"template", release, "./" + chart, "--namespace", ns}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return runHelm(t, args...)
}

func TestLint(t *testing.T) {
	for _, set := range [][]string{
		nil,
		{"webhook.certManager.enabled=true"},
		{"core.enabled=false", "operator.coreAddress=https://core.example:4000"},
	} {
		args := []string{"lint", "--strict", "./" + chart, "--namespace", ns}
		for _, s := range set {
			args = append(args, "--set", s)
		}
		if out, err := runHelm(t, args...); err != nil {
			t.Errorf("helm lint %v: %v\n%s", set, err, out)
		}
	}
}

// TestBadValues: the schema, and the checks it cannot express, refuse bad
// values in both helm lint and helm template, naming the value.
func TestBadValues(t *testing.T) {
	for _, tc := range []struct {
		set  []string
		want string
	}{
		{[]string{"webhook.failurePolicy=Maybe"}, "failurePolicy"},
		{[]string{"webhook.timeoutSeconds=60"}, "timeoutSeconds"},
		{[]string{"webhook.reinvocationPolicy=Always"}, "reinvocationPolicy"},
		{[]string{"core.logLevel=loud"}, "logLevel"},
		{[]string{"core.service.port=70000"}, "port"},
		{[]string{"core.replicas=two"}, "replicas"},
		{[]string{"image.pullPolicy=Sometimes"}, "pullPolicy"},
		{[]string{"core.databse.existingSecret=x"}, "databse"},
		{[]string{"core.extraConfig.listen_address=0.0.0.0:1"}, "listen_address"},
		{[]string{"core.database.existingSecret=Not_A_Name"}, "existingSecret"},
		{[]string{"operator.coreAddress=core:4000"}, "coreAddress"},
		{[]string{"webhook.certManager.issuerRef.kind=Vault"}, "kind"},
		{[]string{"webhook.nativeSidecars=yes"}, "nativeSidecars"},
		{[]string{"webhook.agent.listenerAddresses={core:4001}"}, "listenerAddresses"},
		{[]string{"operator.enabled=false"}, "/webhook/enabled"},
		{[]string{"core.enabled=false"}, "/operator/coreAddress"},
	} {
		name := strings.Join(tc.set, ",")
		t.Run(name, func(t *testing.T) {
			out, err := template(t, tc.set...)
			if err == nil {
				t.Fatalf("helm template accepted %s:\n%.300s", name, out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("helm template %s: error does not name %q: %v", name, tc.want, err)
			}
			args := []string{"lint", "./" + chart}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			_, err = runHelm(t, args...)
			if err == nil {
				t.Fatalf("helm lint accepted %s", name)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("helm lint %s: error does not name %q: %v", name, tc.want, err)
			}
		})
	}
}

// TestCopiesUpToDate: the chart's CRDs and the operator's RBAC rules are
// copies of what `make manifests` generates into config/.
func TestCopiesUpToDate(t *testing.T) {
	const fix = "run `make manifests` (it copies config/crd/bases into charts/secrethub/crds and config/rbac/role.yaml into charts/secrethub/files)"
	want, err := filepath.Glob("../config/crd/bases/*.yaml")
	if err != nil || len(want) == 0 {
		t.Fatalf("no CRDs in config/crd/bases: %v", err)
	}
	got, err := filepath.Glob(chart + "/crds/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	base := func(paths []string) []string {
		var out []string
		for _, p := range paths {
			out = append(out, filepath.Base(p))
		}
		slices.Sort(out)
		return out
	}
	if !slices.Equal(base(got), base(want)) {
		t.Errorf("charts/secrethub/crds holds %v, config/crd/bases %v: %s", base(got), base(want), fix)
	}
	pairs := map[string]string{"../config/rbac/role.yaml": chart + "/files/operator-role.yaml"}
	for _, w := range want {
		pairs[w] = filepath.Join(chart, "crds", filepath.Base(w))
	}
	for src, dst := range pairs {
		a, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(dst)
		if err != nil {
			t.Errorf("%v: %s", err, fix)
			continue
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from %s: %s", dst, src, fix)
		}
	}
}

// manifests is a rendered chart, parsed.
type manifests []*unstructured.Unstructured

func parse(t *testing.T, rendered string) manifests {
	t.Helper()
	var out manifests
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(rendered), 4096)
	for {
		var o unstructured.Unstructured
		if err := dec.Decode(&o.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("parsing the rendered chart: %v", err)
		}
		if len(o.Object) > 0 {
			out = append(out, &o)
		}
	}
}

// find returns the object of kind and name, or nil.
func (m manifests) find(kind, name string) *unstructured.Unstructured {
	for _, o := range m {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// get converts the object of kind and name into into, failing when absent.
func (m manifests) get(t *testing.T, kind, name string, into any) {
	t.Helper()
	o := m.find(kind, name)
	if o == nil {
		t.Fatalf("no %s %s rendered", kind, name)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
		t.Fatalf("%s %s: %v", kind, name, err)
	}
}

// TestChart renders the chart with several value sets, checks what matters
// in each, and applies every object the API server knows with a
// server-side dry run (cert-manager's kinds are checked in the YAML only:
// its CRDs are not installed).
func TestChart(t *testing.T) {
	cfg := kubetest.Start(t, chart+"/crds")
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	nsObj := &corev1.Namespace{}
	nsObj.Name = ns
	if err := c.Create(ctx, nsObj); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		set   []string
		check func(t *testing.T, m manifests)
	}{
		{"defaults", nil, func(t *testing.T, m manifests) {
			checkCore(t, m, fullname+"-tls")
			checkOperator(t, m, "https://"+fullname+"."+ns+".svc:4000", fullname+"-tls")
			checkGeneratedCert(t, m, fullname+"-tls", "", fullname+"."+ns+".svc")
			wh := checkWebhook(t, m, []string{"kube-system", ns})
			checkGeneratedCert(t, m, fullname+"-webhook-tls", base64.StdEncoding.EncodeToString(wh.Webhooks[0].ClientConfig.CABundle), fullname+"-webhook."+ns+".svc")
			if wh.ObjectMeta.Annotations["cert-manager.io/inject-ca-from"] != "" {
				t.Error("cert-manager annotation without cert-manager")
			}
			checkRBAC(t, m)
		}},
		{"cert-manager", []string{"webhook.certManager.enabled=true", "webhook.excludedNamespaces={monitoring}",
			"webhook.objectSelector.matchLabels.team=a"}, func(t *testing.T, m manifests) {
			wh := checkWebhook(t, m, []string{"kube-system", ns, "monitoring"})
			if got := wh.Annotations["cert-manager.io/inject-ca-from"]; got != ns+"/"+fullname+"-webhook" {
				t.Errorf("inject-ca-from = %q", got)
			}
			if len(wh.Webhooks[0].ClientConfig.CABundle) != 0 {
				t.Error("caBundle rendered although cert-manager injects it")
			}
			if wh.Webhooks[0].ObjectSelector == nil || wh.Webhooks[0].ObjectSelector.MatchLabels["team"] != "a" {
				t.Errorf("objectSelector = %v", wh.Webhooks[0].ObjectSelector)
			}
			if m.find("Secret", fullname+"-webhook-tls") != nil {
				t.Error("the chart generated the webhook certificate although cert-manager issues it")
			}
			cert := m.find("Certificate", fullname+"-webhook")
			if cert == nil {
				t.Fatal("no Certificate")
			}
			if s, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName"); s != fullname+"-webhook-tls" {
				t.Errorf("Certificate secretName = %q", s)
			}
			dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
			if !slices.Contains(dns, fullname+"-webhook."+ns+".svc") {
				t.Errorf("Certificate dnsNames = %v", dns)
			}
			if k, _, _ := unstructured.NestedString(cert.Object, "spec", "issuerRef", "name"); m.find("Issuer", k) == nil {
				t.Errorf("Certificate's issuer %q is not rendered", k)
			}
		}},
		{"existing secrets", []string{"core.tls.existingSecret=core-tls", "core.database.existingSecret=pg", "core.database.key=url",
			"operator.replicas=2", "operator.leaderElect=false"}, func(t *testing.T, m manifests) {
			if m.find("Secret", fullname+"-tls") != nil {
				t.Error("generated a core certificate although core.tls.existingSecret is set")
			}
			checkCore(t, m, "core-tls")
			d := checkOperator(t, m, "https://"+fullname+"."+ns+".svc:4000", "core-tls")
			if !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "-leader-elect") {
				t.Error("two replicas without -leader-elect")
			}
			var core appsv1.Deployment
			m.get(t, "Deployment", fullname, &core)
			ref := core.Spec.Template.Spec.Containers[0].Env[0].ValueFrom.SecretKeyRef
			if ref.Name != "pg" || ref.Key != "url" {
				t.Errorf("DATABASE_URL from %s/%s, want pg/url", ref.Name, ref.Key)
			}
		}},
		{"operator only", []string{"core.enabled=false", "operator.coreAddress=https://core.example:4000", "webhook.enabled=false"}, func(t *testing.T, m manifests) {
			for _, o := range m {
				if o.GetLabels()["app.kubernetes.io/component"] == "core" {
					t.Errorf("core.enabled=false rendered %s %s", o.GetKind(), o.GetName())
				}
			}
			if m.find("MutatingWebhookConfiguration", fullname) != nil || m.find("Service", fullname+"-webhook") != nil {
				t.Error("webhook.enabled=false rendered the webhook")
			}
			d := checkOperator(t, m, "https://core.example:4000", "")
			for _, v := range d.Spec.Template.Spec.Volumes {
				if v.Name == "webhook-cert" {
					t.Error("webhook certificate mounted without the webhook")
				}
			}
			for _, a := range d.Spec.Template.Spec.Containers[0].Args {
				if strings.HasPrefix(a, "-webhook") || strings.HasPrefix(a, "-agent-") {
					t.Errorf("operator runs with %s although webhook.enabled=false", a)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := template(t, tc.set...)
			if err != nil {
				t.Fatal(err)
			}
			m := parse(t, out)
			tc.check(t, m)
			for _, o := range m {
				if strings.HasPrefix(o.GetAPIVersion(), "cert-manager.io/") {
					continue
				}
				err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.FieldOwner(fieldOwner), client.ForceOwnership, client.DryRunAll)
				if err != nil {
					t.Errorf("the API server refuses %s %s: %v", o.GetKind(), o.GetName(), err)
				}
			}
		})
	}
}

// checkCore checks the core's Deployment and configuration: the core
// itself accepts the configuration file.
func checkCore(t *testing.T, m manifests, tlsSecret string) {
	t.Helper()
	var d appsv1.Deployment
	m.get(t, "Deployment", fullname, &d)
	pod := d.Spec.Template.Spec
	ctr := pod.Containers[0]
	if ctr.Args[0] != "server" {
		t.Errorf("core args %v", ctr.Args)
	}
	sc := ctr.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("core securityContext %+v: want non-root, read-only root filesystem", sc)
	}
	if ctr.Resources.Requests.Memory().IsZero() {
		t.Error("core has no memory request")
	}
	if p := ctr.LivenessProbe.HTTPGet; p.Scheme != corev1.URISchemeHTTPS || !strings.Contains(p.Path, "sealedcode=200") || !strings.Contains(p.Path, "uninitcode=200") {
		t.Errorf("liveness probe %+v: a sealed core must stay alive", p)
	}
	if p := ctr.ReadinessProbe.HTTPGet; !strings.HasPrefix(p.Path, "/v1/sys/health") || !strings.Contains(p.Path, "standbyok=true") || strings.Contains(p.Path, "sealedcode") {
		t.Errorf("readiness probe %+v: want standbys ready and sealed cores not", p)
	}
	if pod.ServiceAccountName != fullname {
		t.Errorf("core runs as %q", pod.ServiceAccountName)
	}
	var tlsVol bool
	for _, v := range pod.Volumes {
		if v.Name == "tls" && v.Secret != nil && v.Secret.SecretName == tlsSecret {
			tlsVol = true
		}
	}
	if !tlsVol {
		t.Errorf("the core's TLS volume is not Secret %s", tlsSecret)
	}

	var cm corev1.ConfigMap
	m.get(t, "ConfigMap", fullname+"-config", &cm)
	file := filepath.Join(t.TempDir(), "server.yaml")
	if err := os.WriteFile(file, []byte(cm.Data["server.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	conf, err := server.LoadFile(file)
	if err != nil {
		t.Fatalf("the core refuses the chart's configuration: %v", err)
	}
	if err := conf.ApplyEnv(func(k string) (string, bool) {
		return "postgres://u@db:5432/x", k == server.EnvDatabaseURL
	}); err != nil {
		t.Fatal(err)
	}
	conf.FillDefaults()
	if err := conf.Validate(); err != nil {
		t.Errorf("the core refuses the chart's configuration: %v", err)
	}
	if !slices.Contains(conf.AgentServerNames, fullname+"."+ns+".svc") || conf.AgentListenAddress != "0.0.0.0:4001" {
		t.Errorf("agent listener %q names %v: want the Service's names", conf.AgentListenAddress, conf.AgentServerNames)
	}

	var svc corev1.Service
	m.get(t, "Service", fullname, &svc)
	var ports []int32
	for _, p := range svc.Spec.Ports {
		ports = append(ports, p.Port)
	}
	if !slices.Equal(ports, []int32{4000, 4001}) {
		t.Errorf("core Service ports %v", ports)
	}
	var crb rbacv1.ClusterRoleBinding
	m.get(t, "ClusterRoleBinding", fullname+"-auth-delegator", &crb)
	if crb.RoleRef.Name != "system:auth-delegator" || crb.Subjects[0].Name != fullname || crb.Subjects[0].Namespace != ns {
		t.Errorf("reviewer binding %+v", crb)
	}
}

// checkOperator checks the operator's Deployment and returns it.
func checkOperator(t *testing.T, m manifests, coreAddr, caSecret string) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	m.get(t, "Deployment", fullname+"-operator", &d)
	pod := d.Spec.Template.Spec
	ctr := pod.Containers[0]
	for _, want := range []string{"operator", "-auth-role=secrethub-operator", "-token-file=/var/run/secrets/tokens/secrethub"} {
		if !slices.Contains(ctr.Args, want) {
			t.Errorf("operator args %v lack %s", ctr.Args, want)
		}
	}
	env := map[string]string{}
	for _, e := range ctr.Env {
		env[e.Name] = e.Value
	}
	if env["SECRETHUB_ADDR"] != coreAddr {
		t.Errorf("SECRETHUB_ADDR = %q, want %q", env["SECRETHUB_ADDR"], coreAddr)
	}
	if _, ok := env["SECRETHUB_CACERT"]; ok != (caSecret != "") {
		t.Errorf("SECRETHUB_CACERT set: %v, want %v", ok, caSecret != "")
	}
	var token, ca bool
	for _, v := range pod.Volumes {
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if sa := s.ServiceAccountToken; sa != nil && sa.Audience == "secrethub" && sa.Path == "secrethub" {
					token = true
				}
			}
		}
		if v.Name == "core-ca" && v.Secret != nil && v.Secret.SecretName == caSecret {
			ca = true
		}
	}
	if !token {
		t.Error("no projected token for the audience secrethub")
	}
	if ca != (caSecret != "") {
		t.Errorf("core CA volume from %q: %v", caSecret, ca)
	}
	if sc := ctr.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("operator securityContext %+v", sc)
	}
	// Every flag the chart passes is one `secrethub operator` defines.
	src, err := os.ReadFile("../cmd/secrethub/operator.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range ctr.Args[1:] {
		flag, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !bytes.Contains(src, []byte(`"`+flag+`"`)) {
			t.Errorf("the chart passes %s, which cmd/secrethub/operator.go does not define", a)
		}
	}
	if pod.ServiceAccountName != fullname+"-operator" {
		t.Errorf("operator runs as %q", pod.ServiceAccountName)
	}
	return &d
}

// checkWebhook checks the webhook configuration and returns it.
func checkWebhook(t *testing.T, m manifests, excluded []string) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	var wh admissionregistrationv1.MutatingWebhookConfiguration
	m.get(t, "MutatingWebhookConfiguration", fullname, &wh)
	if len(wh.Webhooks) != 1 {
		t.Fatalf("%d webhooks", len(wh.Webhooks))
	}
	w := wh.Webhooks[0]
	if s := w.ClientConfig.Service; s == nil || s.Path == nil || *s.Path != "/mutate-v1-pod" || s.Name != fullname+"-webhook" || s.Namespace != ns {
		t.Errorf("webhook service %+v", s)
	}
	if *w.FailurePolicy != admissionregistrationv1.Fail || *w.TimeoutSeconds != 5 || *w.SideEffects != admissionregistrationv1.SideEffectClassNone {
		t.Errorf("webhook failurePolicy %s timeoutSeconds %d sideEffects %s", *w.FailurePolicy, *w.TimeoutSeconds, *w.SideEffects)
	}
	if len(w.Rules) != 1 || !reflect.DeepEqual(w.Rules[0].Resources, []string{"pods"}) || !reflect.DeepEqual(w.Rules[0].Operations, []admissionregistrationv1.OperationType{admissionregistrationv1.Create}) {
		t.Errorf("webhook rules %+v", w.Rules)
	}
	var notIn []string
	for _, e := range w.NamespaceSelector.MatchExpressions {
		if e.Key == "kubernetes.io/metadata.name" && e.Operator == "NotIn" {
			notIn = e.Values
		}
	}
	if !slices.Equal(notIn, excluded) {
		t.Errorf("webhook excludes namespaces %v, want %v", notIn, excluded)
	}
	var d appsv1.Deployment
	m.get(t, "Deployment", fullname+"-operator", &d)
	var mounted bool
	for _, vm := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
		if vm.Name == "webhook-cert" && vm.MountPath == "/tmp/k8s-webhook-server/serving-certs" {
			mounted = true
		}
	}
	if !mounted {
		t.Error("the operator does not mount the webhook certificate where controller-runtime reads it")
	}
	args := d.Spec.Template.Spec.Containers[0].Args
	for _, want := range []string{"-webhook", "-webhook-port=9443", "-webhook-cert-dir=/tmp/k8s-webhook-server/serving-certs",
		"-agent-image=ghcr.io/secrethub/secrethub-agent:0.1.0", "-agent-core-addresses=https://" + fullname + "." + ns + ".svc:4000",
		"-agent-listener-addresses=https://" + fullname + "." + ns + ".svc:4001", "-agent-audience=secrethub"} {
		if !slices.Contains(args, want) {
			t.Errorf("operator args %v lack %s", args, want)
		}
	}
	return &wh
}

// checkGeneratedCert checks that the Secret name holds a certificate for
// dnsName signed by its ca.crt, which is also caBundle when that is set.
func checkGeneratedCert(t *testing.T, m manifests, name, caBundle, dnsName string) {
	t.Helper()
	var s corev1.Secret
	m.get(t, "Secret", name, &s)
	if s.Type != corev1.SecretTypeTLS || len(s.Data["tls.key"]) == 0 {
		t.Errorf("Secret %s: type %s, key %d bytes", name, s.Type, len(s.Data["tls.key"]))
	}
	if caBundle != "" && base64.StdEncoding.EncodeToString(s.Data["ca.crt"]) != caBundle {
		t.Errorf("Secret %s: ca.crt is not the webhook's caBundle", name)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.Data["ca.crt"]) {
		t.Fatalf("Secret %s: ca.crt holds no certificate", name)
	}
	block, _ := pem.Decode(s.Data["tls.crt"])
	if block == nil {
		t.Fatalf("Secret %s: tls.crt is not PEM", name)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: dnsName, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("Secret %s: certificate not valid for %s: %v", name, dnsName, err)
	}
}

// checkRBAC checks that the operator's ClusterRole and leader-election
// Role carry the rules of config/rbac/role.yaml.
func checkRBAC(t *testing.T, m manifests) {
	t.Helper()
	raw, err := os.ReadFile("../config/rbac/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]rbacv1.PolicyRule{}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var r rbacv1.ClusterRole
		if err := yaml.Unmarshal([]byte(doc), &r); err != nil {
			t.Fatal(err)
		}
		want[r.Kind] = r.Rules
	}
	var cr rbacv1.ClusterRole
	m.get(t, "ClusterRole", fullname+"-operator", &cr)
	if !reflect.DeepEqual(cr.Rules, want["ClusterRole"]) {
		t.Errorf("operator ClusterRole rules %+v, want config/rbac's %+v", cr.Rules, want["ClusterRole"])
	}
	var r rbacv1.Role
	m.get(t, "Role", fullname+"-operator-leader-election", &r)
	if r.Namespace != ns || !reflect.DeepEqual(r.Rules, want["Role"]) {
		t.Errorf("leader-election Role in %s rules %+v, want config/rbac's %+v", r.Namespace, r.Rules, want["Role"])
	}
	var rb rbacv1.RoleBinding
	m.get(t, "RoleBinding", fullname+"-operator-leader-election", &rb)
	if rb.Subjects[0].Name != fullname+"-operator" {
		t.Errorf("leader-election RoleBinding subjects %+v", rb.Subjects)
	}
}
