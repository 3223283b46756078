package config

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/secrethub/secrethub/internal/kubetest"
)

const (
	fieldOwner  = "secrethub-config-test"
	waitTimeout = time.Minute
)

// TestAPIServer installs config/default on a real API server, applies the
// samples, and checks that invalid specs are refused naming the field.
func TestAPIServer(t *testing.T) {
	cfg := kubetest.Start(t)
	ctx := t.Context()
	c := newClient(t, cfg)

	objs := build(t, "default")
	// Namespace and CRDs first: the rest lives in one, the samples need
	// the other.
	first := func(o *unstructured.Unstructured) int {
		switch o.GetKind() {
		case "Namespace":
			return 0
		case "CustomResourceDefinition":
			return 1
		}
		return 2
	}
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int { return first(a) - first(b) })
	for _, o := range objs {
		if err := apply(ctx, c, o); err != nil {
			t.Fatalf("applying %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	for kind, plural := range kinds {
		waitEstablished(t, c, plural+"."+group, kind)
	}
	// A client made after the CRDs exist, so its REST mapper knows them.
	c = newClient(t, cfg)

	const tenant = "tenant-a"
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(tenant)
	if err := apply(ctx, c, ns); err != nil {
		t.Fatal(err)
	}

	t.Run("samples", func(t *testing.T) {
		samples := build(t, "samples")
		seen := map[string]bool{}
		for _, o := range samples {
			seen[o.GetKind()] = true
			o.SetNamespace(tenant)
			if err := apply(ctx, c, o); err != nil {
				t.Errorf("sample %s %s refused: %v", o.GetKind(), o.GetName(), err)
			}
		}
		for kind := range kinds {
			if !seen[kind] {
				t.Errorf("config/samples has no %s", kind)
			}
		}
		// Globs the core accepts pass the CRD's path rules too.
		valid := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(`
apiVersion: secrethub.io/v1alpha1
kind: SecretPolicy
metadata: {name: globs}
spec:
  rules:
  - {path: "**", capabilities: [list]}
  - {path: "**/*.json", capabilities: [read]}
  - {path: "secrets/**/db", capabilities: [read], effect: deny}
  - {path: "secrets/db?", capabilities: [read, update]}
  - {path: "a.b/c..d/.x/*", capabilities: [read], conditions: {timeOfDay: {start: "22:00", end: "06:00"}, timeZone: UTC, sourceIP: ["::1", "2001:db8::/32"]}}
`), &valid.Object); err != nil {
			t.Fatal(err)
		}
		valid.SetNamespace(tenant)
		if err := c.Create(ctx, valid, client.FieldValidation("Strict")); err != nil {
			t.Errorf("valid globs refused: %v", err)
		}

		// The defaults of the schema apply.
		got := &unstructured.Unstructured{}
		got.SetAPIVersion(group + "/v1alpha1")
		got.SetKind("AgentTemplate")
		if err := c.Get(ctx, client.ObjectKey{Namespace: tenant, Name: "app-config"}, got); err != nil {
			t.Fatal(err)
		}
		tpls, _, _ := unstructured.NestedSlice(got.Object, "spec", "templates")
		if len(tpls) != 1 || tpls[0].(map[string]any)["perms"] != "0640" {
			t.Errorf("app-config templates %v: want perms 0640", tpls)
		}
	})

	t.Run("invalid", func(t *testing.T) {
		for _, tc := range invalidSpecs {
			t.Run(tc.name, func(t *testing.T) {
				o := &unstructured.Unstructured{}
				if err := yaml.Unmarshal([]byte(tc.yaml), &o.Object); err != nil {
					t.Fatalf("test case YAML: %v", err)
				}
				o.SetNamespace(tenant)
				// Strict, as kubectl apply validates by default.
				err := c.Create(ctx, o, client.FieldValidation("Strict"))
				checkInvalid(t, err, tc.field, tc.msg)
			})
		}
	})

	t.Run("immutable", func(t *testing.T) {
		o := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(redisRole), &o.Object); err != nil {
			t.Fatal(err)
		}
		o.SetNamespace(tenant)
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("creating a valid redis DynamicRole: %v", err)
		}
		for _, tc := range []struct {
			name, field, msg string
			change           func(map[string]any)
		}{
			{"engine", "spec.engine", "spec.engine is immutable", func(spec map[string]any) {
				spec["engine"] = "postgresql"
				delete(spec, "redis")
				spec["postgresql"] = map[string]any{}
			}},
			{"mount", "spec.mount", "spec.mount is immutable", func(spec map[string]any) { spec["mount"] = "redis-2" }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				u := o.DeepCopy()
				spec := u.Object["spec"].(map[string]any)
				tc.change(spec)
				checkInvalid(t, c.Update(ctx, u), tc.field, tc.msg)
			})
		}
	})
}

// checkInvalid fails unless err is the API server refusing an object with
// a cause naming field and a message containing msg. With field empty, the
// message alone must name the field (strict decoding errors have no
// causes).
func checkInvalid(t *testing.T, err error, field, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want it refused saying %q", msg)
	}
	if field == "" {
		if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), msg) {
			t.Errorf("error %v: want 400 Bad Request saying %q", err, msg)
		}
		return
	}
	if !apierrors.IsInvalid(err) {
		t.Fatalf("error %v: want 422 Invalid", err)
	}
	// The apiserver's causes name the field as a path into the object.
	var fields []string
	if se, ok := err.(apierrors.APIStatus); ok && se.Status().Details != nil {
		for _, c := range se.Status().Details.Causes {
			fields = append(fields, c.Field)
		}
	}
	if !slices.Contains(fields, field) {
		t.Errorf("error names fields %v, want %s: %v", fields, field, err)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("error %q does not say %q", err, msg)
	}
}

const redisRole = `
apiVersion: secrethub.io/v1alpha1
kind: DynamicRole
metadata: {name: cache}
spec:
  engine: redis
  connection: {secretRef: {name: redis-admin}}
  redis: {keyPatterns: ["app:*"], commands: ["+@read"]}
`

// invalidSpecs must each be refused by the API server with an error whose
// causes name field and whose message contains msg (see checkInvalid).
var invalidSpecs = []struct {
	name, field, msg, yaml string
}{
	{"policy without rules", "spec.rules", "Required value", `
apiVersion: secrethub.io/v1alpha1
kind: SecretPolicy
metadata: {name: no-rules}
spec: {}
`},
	{"policy with empty rules", "spec.rules", "should have at least 1 items", `
apiVersion: secrethub.io/v1alpha1
kind: SecretPolicy
metadata: {name: empty-rules}
spec: {rules: []}
`},
	{"policy rule without path", "spec.rules[0].path", "Required value", `
apiVersion: secrethub.io/v1alpha1
kind: SecretPolicy
metadata: {name: no-path}
spec: {rules: [{capabilities: [read]}]}
`},
	{"unknown capability", "spec.rules[0].capabilities[1]", `Unsupported value: "raed"`, `
apiVersion: secrethub.io/v1alpha1
kind: SecretPolicy
metadata: {name: raed}
spec: {rules: [{path: "secrets/*", capabilities: [list, raed]}]}
`},
	{"absolute path", "spec.rules[0].path", "path must not start or end with '/'", `
apiVersion: secrethub.io/v1alpha1
kind: SecretPolicy
metadata: {name: abs}
spec: {rules: [{path: "/secrets/*", capabilities: [read]}]}
`},
	{"double star inside a segment", "spec.rules[0].path", "'**' must be a whole segment", `
apiVersion: secrethub.io/v1alpha1
kind: SecretPolicy
metadata: {name: star}
spec: {rules: [{path: "secrets/a**", capabilities: [read]}]}
`},
	{"bad CIDR", "spec.rules[0].conditions.sourceIP", "sourceIP entries must be IP addresses or CIDRs", `
apiVersion: secrethub.io/v1alpha1
kind: SecretPolicy
metadata: {name: cidr}
spec: {rules: [{path: "secrets/*", capabilities: [read], conditions: {sourceIP: ["10.0.0/33"]}}]}
`},
	{"empty time window", "spec.rules[0].conditions.timeOfDay.end", "timeOfDay.end must differ from timeOfDay.start", `
apiVersion: secrethub.io/v1alpha1
kind: SecretPolicy
metadata: {name: window}
spec: {rules: [{path: "secrets/*", capabilities: [read], conditions: {timeOfDay: {start: "08:00", end: "08:00"}}}]}
`},
	{"bad day", "spec.rules[0].conditions.daysOfWeek[0]", `Unsupported value: "funday"`, `
apiVersion: secrethub.io/v1alpha1
kind: SecretPolicy
metadata: {name: day}
spec: {rules: [{path: "secrets/*", capabilities: [read], conditions: {daysOfWeek: [funday]}}]}
`},
	{"unknown engine", "spec.engine", `Unsupported value: "mysql"`, `
apiVersion: secrethub.io/v1alpha1
kind: DynamicRole
metadata: {name: mysql}
spec: {engine: mysql, connection: {secretRef: {name: db}}}
`},
	{"engine block missing", "spec.redis", "spec.redis must be set when engine is redis", `
apiVersion: secrethub.io/v1alpha1
kind: DynamicRole
metadata: {name: wrong-block}
spec:
  engine: redis
  connection: {secretRef: {name: db}}
  postgresql: {creationStatements: ["CREATE ROLE x"]}
`},
	{"other engine's block", "spec.postgresql", "spec.postgresql must be set when engine is postgresql, and only then", `
apiVersion: secrethub.io/v1alpha1
kind: DynamicRole
metadata: {name: two-blocks}
spec:
  engine: redis
  connection: {secretRef: {name: db}}
  redis: {commands: ["+@read"]}
  postgresql: {}
`},
	{"maxTTL below defaultTTL", "spec.maxTTL", "spec.maxTTL must be at least spec.defaultTTL", `
apiVersion: secrethub.io/v1alpha1
kind: DynamicRole
metadata: {name: ttl}
spec:
  engine: postgresql
  connection: {secretRef: {name: db}}
  postgresql: {}
  defaultTTL: 2h
  maxTTL: 90m
`},
	{"bad duration", "spec.defaultTTL", "should match", `
apiVersion: secrethub.io/v1alpha1
kind: DynamicRole
metadata: {name: duration}
spec:
  engine: postgresql
  connection: {secretRef: {name: db}}
  postgresql: {}
  defaultTTL: one hour
`},
	{"mount below secrets/", "spec.mount", "spec.mount must not be secrets or below it", `
apiVersion: secrethub.io/v1alpha1
kind: DynamicRole
metadata: {name: kv-mount}
spec: {engine: postgresql, mount: secrets/dynamic, connection: {secretRef: {name: db}}, postgresql: {}}
`},
	{"connection without secret name", "spec.connection.secretRef.name", "Required value", `
apiVersion: secrethub.io/v1alpha1
kind: DynamicRole
metadata: {name: no-secret}
spec: {engine: postgresql, connection: {secretRef: {}}, postgresql: {}}
`},
	{"redis without commands", "spec.redis.commands", "Required value", `
apiVersion: secrethub.io/v1alpha1
kind: DynamicRole
metadata: {name: no-commands}
spec: {engine: redis, connection: {secretRef: {name: r}}, redis: {keyPatterns: ["a:*"]}}
`},
	{"assumed role without role ARNs", "spec.aws.roleARNs", "spec.aws.roleARNs must name at least one role", `
apiVersion: secrethub.io/v1alpha1
kind: DynamicRole
metadata: {name: no-arns}
spec: {engine: aws, connection: {secretRef: {name: a}}, aws: {credentialType: assumed_role}}
`},
	{"perms not octal", "spec.templates[0].perms", "should match", `
apiVersion: secrethub.io/v1alpha1
kind: AgentTemplate
metadata: {name: perms}
spec: {templates: [{name: a, contents: x, destination: /secrethub/a, perms: "640"}]}
`},
	{"perms group writable", "spec.templates[0].perms", "must not let group or other write", `
apiVersion: secrethub.io/v1alpha1
kind: AgentTemplate
metadata: {name: perms-write}
spec: {templates: [{name: a, contents: x, destination: /secrethub/a, perms: "0660"}]}
`},
	{"relative destination", "spec.templates[0].destination", "should match", `
apiVersion: secrethub.io/v1alpha1
kind: AgentTemplate
metadata: {name: relative}
spec: {templates: [{name: a, contents: x, destination: secrethub/a}]}
`},
	{"unclean destination", "spec.templates[0].destination", "clean path", `
apiVersion: secrethub.io/v1alpha1
kind: AgentTemplate
metadata: {name: unclean}
spec: {templates: [{name: a, contents: x, destination: /secrethub/../etc/passwd}]}
`},
	{"no contents", "spec.templates[0].contents", "Required value", `
apiVersion: secrethub.io/v1alpha1
kind: AgentTemplate
metadata: {name: no-contents}
spec: {templates: [{name: a, destination: /secrethub/a}]}
`},
	{"duplicate template name", "spec.templates[1]", "Duplicate value", `
apiVersion: secrethub.io/v1alpha1
kind: AgentTemplate
metadata: {name: dup-name}
spec: {templates: [{name: a, contents: x, destination: /secrethub/a}, {name: a, contents: z, destination: /secrethub/b}]}
`},
	{"duplicate destination", "spec.templates", "destination must be unique", `
apiVersion: secrethub.io/v1alpha1
kind: AgentTemplate
metadata: {name: dup-dest}
spec: {templates: [{name: a, contents: x, destination: /secrethub/a}, {name: b, contents: z, destination: /secrethub/a}]}
`},
	{"two reload kinds", "spec.templates[0].reload", "exactly one of command, signal and http", `
apiVersion: secrethub.io/v1alpha1
kind: AgentTemplate
metadata: {name: two-reloads}
spec:
  templates:
  - name: a
    contents: x
    destination: /secrethub/a
    reload: {command: [kill, -HUP, "1"], signal: {name: SIGHUP, pidFile: /run/app.pid}}
`},
	{"bad missingKey", "spec.templates[0].missingKey", `Unsupported value: "ignore"`, `
apiVersion: secrethub.io/v1alpha1
kind: AgentTemplate
metadata: {name: missing-key}
spec: {templates: [{name: a, contents: x, destination: /secrethub/a, missingKey: ignore}]}
`},
	{"reload timeout too long", "spec.templates[0].reload.timeout", "at most 10m", `
apiVersion: secrethub.io/v1alpha1
kind: AgentTemplate
metadata: {name: timeout}
spec:
  templates:
  - {name: a, contents: x, destination: /secrethub/a, reload: {http: {url: "http://127.0.0.1:8080/reload"}, timeout: 1h}}
`},
	{"binding without policies", "spec.policies", "Required value", `
apiVersion: secrethub.io/v1alpha1
kind: SecretBinding
metadata: {name: no-policies}
spec: {serviceAccounts: [app]}
`},
	{"binding with a bad service account", "spec.serviceAccounts[0]", "should match", `
apiVersion: secrethub.io/v1alpha1
kind: SecretBinding
metadata: {name: bad-sa}
spec: {serviceAccounts: ["system:serviceaccount:other:app"], policies: [p]}
`},
	{"binding with a ? glob the core would refuse", "spec.serviceAccounts[0]", "should match", `
apiVersion: secrethub.io/v1alpha1
kind: SecretBinding
metadata: {name: question}
spec: {serviceAccounts: ["app-?"], policies: [p]}
`},
	{"binding token TTLs", "spec.tokenMaxTTL", "spec.tokenMaxTTL must be at least spec.tokenTTL", `
apiVersion: secrethub.io/v1alpha1
kind: SecretBinding
metadata: {name: ttls}
spec: {serviceAccounts: [app], policies: [p], tokenTTL: 2h, tokenMaxTTL: 1h}
`},
	{"binding across namespaces", "", `unknown field "spec.namespaces"`, `
apiVersion: secrethub.io/v1alpha1
kind: SecretBinding
metadata: {name: cross}
spec: {serviceAccounts: [app], policies: [p], namespaces: [kube-system]}
`},
	{"secretsync path outside KV form", "spec.path", "should match", `
apiVersion: secrethub.io/v1alpha1
kind: SecretSync
metadata: {name: bad-path}
spec: {path: "/secrets/a"}
`},
	{"secretsync path with ..", "spec.path", "clean path", `
apiVersion: secrethub.io/v1alpha1
kind: SecretSync
metadata: {name: dotdot}
spec: {path: "secrets/a/../b"}
`},
	{"secretsync refresh too short", "spec.refreshInterval", "from 1s to 24h", `
apiVersion: secrethub.io/v1alpha1
kind: SecretSync
metadata: {name: fast}
spec: {path: "secrets/a/b", refreshInterval: 10ms}
`},
	{"secretsync bad Secret key", "spec.keys.a", "should match", `
apiVersion: secrethub.io/v1alpha1
kind: SecretSync
metadata: {name: bad-key}
spec: {path: "secrets/a/b", keys: {a: "x y"}}
`},
	{"secretsync rollout of a Pod", "spec.rolloutRestart[0].kind", "Unsupported value", `
apiVersion: secrethub.io/v1alpha1
kind: SecretSync
metadata: {name: pod}
spec: {path: "secrets/a/b", rolloutRestart: [{kind: Pod, name: x}]}
`},
}

func newClient(t *testing.T, cfg *rest.Config) client.Client {
	t.Helper()
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// apply server-side applies o, as `kubectl apply --server-side` does.
func apply(ctx context.Context, c client.Client, o *unstructured.Unstructured) error {
	return c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.FieldOwner(fieldOwner), client.ForceOwnership)
}

// waitEstablished waits until the CRD name is established.
func waitEstablished(t *testing.T, c client.Client, name, kind string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		var crd apiextensionsv1.CustomResourceDefinition
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("apiextensions.k8s.io/v1")
		u.SetKind("CustomResourceDefinition")
		if err := c.Get(ctx, client.ObjectKey{Name: name}, u); err != nil {
			return false, err
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &crd); err != nil {
			return false, err
		}
		for _, cond := range crd.Status.Conditions {
			if cond.Type == apiextensionsv1.NamesAccepted && cond.Status == apiextensionsv1.ConditionFalse {
				return false, fmt.Errorf("names not accepted: %s", cond.Message)
			}
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CRD %s (%s) not established: %v", name, kind, err)
	}
}
