package config

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

const (
	namespace  = "secrethub-system"
	namePrefix = "secrethub-"
	group      = "secrethub.io"
)

// kinds are the plural resource names of the CRDs config/crd installs.
var kinds = map[string]string{
	"SecretPolicy":  "secretpolicies",
	"DynamicRole":   "dynamicroles",
	"AgentTemplate": "agenttemplates",
	"SecretBinding": "secretbindings",
	"SecretSync":    "secretsyncs",
}

// build runs kustomize on dir, as `kubectl apply -k` would.
func build(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range m.Resources() {
		obj, err := r.Map()
		if err != nil {
			t.Fatalf("kustomize build %s: %s: %v", dir, r.CurId(), err)
		}
		objs = append(objs, &unstructured.Unstructured{Object: obj})
	}
	return objs
}

// only returns the objects of kind, converted to T.
func only[T any](t *testing.T, objs []*unstructured.Unstructured, kind string) []*T {
	t.Helper()
	var out []*T
	for _, o := range objs {
		if o.GetKind() != kind {
			continue
		}
		v := new(T)
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, v); err != nil {
			t.Fatalf("%s %s: %v", kind, o.GetName(), err)
		}
		out = append(out, v)
	}
	return out
}

func TestDefaultBuild(t *testing.T) {
	objs := build(t, "default")

	t.Run("crds", func(t *testing.T) {
		crds := only[apiextensionsv1.CustomResourceDefinition](t, objs, "CustomResourceDefinition")
		got := map[string]bool{}
		for _, crd := range crds {
			got[crd.Spec.Names.Kind] = true
			if crd.Spec.Group != group || crd.Spec.Scope != apiextensionsv1.NamespaceScoped {
				t.Errorf("%s: group %q scope %q, want %s Namespaced", crd.Name, crd.Spec.Group, crd.Spec.Scope, group)
			}
			if want := kinds[crd.Spec.Names.Kind] + "." + group; crd.Name != want {
				t.Errorf("CRD %s: want the name %s (namePrefix must not touch CRDs)", crd.Name, want)
			}
			if len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Name != "v1alpha1" {
				t.Fatalf("%s: versions %+v, want v1alpha1 only", crd.Name, crd.Spec.Versions)
			}
			v := crd.Spec.Versions[0]
			if v.Subresources == nil || v.Subresources.Status == nil {
				t.Errorf("%s: no status subresource", crd.Name)
			}
			var cols []string
			for _, c := range v.AdditionalPrinterColumns {
				cols = append(cols, c.Name)
			}
			want := []string{"Ready", "Synced", "Core Name", "Age"}
			if crd.Spec.Names.Kind == "DynamicRole" {
				want = append([]string{"Engine"}, want...)
			}
			if !slices.Equal(cols, want) {
				t.Errorf("%s: printer columns %v, want %v", crd.Name, cols, want)
			}
			status := v.Schema.OpenAPIV3Schema.Properties["status"].Properties
			for _, f := range []string{"conditions", "observedGeneration", "coreName"} {
				if _, ok := status[f]; !ok {
					t.Errorf("%s: no status.%s", crd.Name, f)
				}
			}
		}
		for kind := range kinds {
			if !got[kind] {
				t.Errorf("no CRD for %s", kind)
			}
		}
	})

	t.Run("namespaced", func(t *testing.T) {
		clusterScoped := []string{"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Namespace"}
		for _, o := range objs {
			if slices.Contains(clusterScoped, o.GetKind()) {
				continue
			}
			if o.GetNamespace() != namespace {
				t.Errorf("%s %s: namespace %q, want %s", o.GetKind(), o.GetName(), o.GetNamespace(), namespace)
			}
			if !strings.HasPrefix(o.GetName(), namePrefix) {
				t.Errorf("%s %s: name lacks the prefix %s", o.GetKind(), o.GetName(), namePrefix)
			}
		}
		if ns := only[corev1.Namespace](t, objs, "Namespace"); len(ns) != 1 || ns[0].Name != namespace {
			t.Errorf("namespaces %v, want exactly %s", ns, namespace)
		}
	})

	t.Run("deployment", func(t *testing.T) {
		deps := only[appsv1.Deployment](t, objs, "Deployment")
		if len(deps) != 1 {
			t.Fatalf("%d Deployments, want 1", len(deps))
		}
		d := deps[0]
		pod := d.Spec.Template.Spec
		sas := only[corev1.ServiceAccount](t, objs, "ServiceAccount")
		if len(sas) != 1 || pod.ServiceAccountName != sas[0].Name {
			t.Errorf("serviceAccountName %q, want the ServiceAccount of config/rbac (%d found)", pod.ServiceAccountName, len(sas))
		}
		if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot ||
			psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
			psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("pod securityContext %+v: want runAsNonRoot, a non-zero runAsUser and the RuntimeDefault seccomp profile", psc)
		}
		if len(pod.Containers) != 1 {
			t.Fatalf("%d containers, want 1", len(pod.Containers))
		}
		c := pod.Containers[0]
		if len(c.Args) == 0 || c.Args[0] != "operator" {
			t.Errorf("args %v: want `secrethub operator`", c.Args)
		}
		if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "SECRETHUB_ADDR" && e.Value != "" }) {
			t.Errorf("env %v: want SECRETHUB_ADDR", c.Env)
		}
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Fatal("container has no securityContext")
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Error("container root filesystem is writable")
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Error("container allows privilege escalation")
		case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0:
			t.Errorf("capabilities %+v: want all dropped, none added", sc.Capabilities)
		case sc.Privileged != nil && *sc.Privileged:
			t.Error("container is privileged")
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("resources %+v: want CPU and memory requests and a memory limit", c.Resources)
		}
		if c.LivenessProbe == nil || c.ReadinessProbe == nil {
			t.Error("want liveness and readiness probes")
		}
	})

	t.Run("rbac", func(t *testing.T) {
		// The cluster-wide permissions: the secrethub.io kinds, reading
		// Secrets (connections of DynamicRoles), writing the Secrets of
		// SecretSyncs, restarting their workloads, and recording events.
		// Nothing else, no wildcard, no delete.
		allowed := map[string][]string{
			"secrethub.io/secretpolicies":            {"get", "list", "watch", "update", "patch"},
			"secrethub.io/dynamicroles":              {"get", "list", "watch", "update", "patch"},
			"secrethub.io/agenttemplates":            {"get", "list", "watch", "update", "patch"},
			"secrethub.io/secretbindings":            {"get", "list", "watch", "update", "patch"},
			"secrethub.io/secretpolicies/status":     {"get", "update", "patch"},
			"secrethub.io/dynamicroles/status":       {"get", "update", "patch"},
			"secrethub.io/agenttemplates/status":     {"get", "update", "patch"},
			"secrethub.io/secretbindings/status":     {"get", "update", "patch"},
			"secrethub.io/secretpolicies/finalizers": {"update"},
			"secrethub.io/dynamicroles/finalizers":   {"update"},
			"secrethub.io/agenttemplates/finalizers": {"update"},
			"secrethub.io/secretbindings/finalizers": {"update"},
			"secrethub.io/secretsyncs":               {"get", "list", "watch", "update", "patch"},
			"secrethub.io/secretsyncs/status":        {"get", "update", "patch"},
			"secrethub.io/secretsyncs/finalizers":    {"update"},
			"/secrets":                               {"get", "list", "watch", "create", "update", "patch"},
			"apps/deployments":                       {"get", "patch"},
			"apps/statefulsets":                      {"get", "patch"},
			"apps/daemonsets":                        {"get", "patch"},
			"events.k8s.io/events":                   {"create", "patch"},
		}
		crs := only[rbacv1.ClusterRole](t, objs, "ClusterRole")
		if len(crs) != 1 {
			t.Fatalf("%d ClusterRoles, want 1", len(crs))
		}
		checkRules(t, "ClusterRole "+crs[0].Name, crs[0].Rules, allowed)

		// Leader election: leases, in the operator's namespace only.
		roles := only[rbacv1.Role](t, objs, "Role")
		if len(roles) != 1 {
			t.Fatalf("%d Roles, want 1", len(roles))
		}
		checkRules(t, "Role "+roles[0].Name, roles[0].Rules, map[string][]string{
			"coordination.k8s.io/leases": {"get", "list", "watch", "create", "update", "patch", "delete"},
		})

		sa := namePrefix + "operator"
		subject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: namespace}}
		crbs := only[rbacv1.ClusterRoleBinding](t, objs, "ClusterRoleBinding")
		if len(crbs) != 1 || crbs[0].RoleRef.Kind != "ClusterRole" || crbs[0].RoleRef.Name != crs[0].Name ||
			!slices.Equal(crbs[0].Subjects, subject) {
			t.Errorf("ClusterRoleBindings %+v: want one binding %s to %v", crbs, crs[0].Name, subject)
		}
		rbs := only[rbacv1.RoleBinding](t, objs, "RoleBinding")
		if len(rbs) != 1 || rbs[0].RoleRef.Kind != "Role" || rbs[0].RoleRef.Name != roles[0].Name ||
			!slices.Equal(rbs[0].Subjects, subject) {
			t.Errorf("RoleBindings %+v: want one binding %s to %v", rbs, roles[0].Name, subject)
		}
	})
}

// checkRules fails when a rule grants a verb on a resource that allowed
// (keyed "group/resource") does not list, or uses a wildcard or resource
// names.
func checkRules(t *testing.T, what string, rules []rbacv1.PolicyRule, allowed map[string][]string) {
	t.Helper()
	for i, r := range rules {
		if len(r.NonResourceURLs) > 0 {
			t.Errorf("%s rule %d: non-resource URLs %v", what, i, r.NonResourceURLs)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					if !slices.Contains(allowed[g+"/"+res], v) {
						t.Errorf("%s rule %d grants %s on %s/%s, which the operator does not need", what, i, v, g, res)
					}
				}
			}
		}
	}
}
