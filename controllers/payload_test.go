package controllers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secrethub/secrethub/api/v1alpha1"
	"github.com/secrethub/secrethub/controllers"
	"github.com/secrethub/secrethub/core"
	"github.com/secrethub/secrethub/internal/coretest"
)

// TestPayloadsTheCoreAccepts writes what the reconcilers render for each
// kind to a real core, so that a field the core would refuse shows here
// without a Kubernetes API server.
func TestPayloadsTheCoreAccepts(t *testing.T) {
	ctx := context.Background()
	cl := coretest.Start(t, core.Config{}).Root
	hour := &metav1.Duration{Duration: time.Hour}

	t.Run("policy", func(t *testing.T) {
		spec := v1alpha1.SecretPolicySpec{Rules: []v1alpha1.PolicyRule{
			{Path: "secrets/app/*", Capabilities: []v1alpha1.Capability{"read", "list"}},
			{Path: "secrets/**", Capabilities: []v1alpha1.Capability{"update"}, Effect: "deny", Conditions: &v1alpha1.PolicyConditions{
				TimeOfDay: &v1alpha1.TimeOfDay{Start: "22:00", End: "06:00"}, TimeZone: "Europe/Paris",
				DaysOfWeek: []string{"sat", "sunday"}, SourceIP: []string{"10.0.0.0/8", "::1"}, TTLMax: "90m",
			}},
		}}
		name := controllers.CoreName("team-a", "app")
		doc, err := controllers.PolicyDocument(name, spec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Write(ctx, "sys/policies/acl/"+name, map[string]any{"policy": doc}); err != nil {
			t.Fatalf("write %s: %v", doc, err)
		}
		resp, err := cl.Read(ctx, "sys/policies/acl/"+name, nil)
		if err != nil || resp.Data["policy"] != doc {
			t.Fatalf("read back %v, %v", resp, err)
		}
	})

	t.Run("binding", func(t *testing.T) {
		if _, err := cl.Write(ctx, "sys/auth/kubernetes", map[string]any{"type": "kubernetes"}); err != nil {
			t.Fatal(err)
		}
		b := &v1alpha1.SecretBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web"}, Spec: v1alpha1.SecretBindingSpec{
			ServiceAccounts: []string{"web", "worker-*"}, Policies: []string{"app"}, TokenTTL: hour, TokenMaxTTL: hour, Audience: "secrethub",
		}}
		path := "auth/kubernetes/role/" + controllers.CoreName("team-a", "web")
		if _, err := cl.Write(ctx, path, controllers.AuthRole(b)); err != nil {
			t.Fatal(err)
		}
		// Written again without audience and TTLs: they are cleared.
		b.Spec.Audience, b.Spec.TokenTTL, b.Spec.TokenMaxTTL = "", nil, nil
		if _, err := cl.Write(ctx, path, controllers.AuthRole(b)); err != nil {
			t.Fatal(err)
		}
		resp, err := cl.Read(ctx, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Data["audience"] != "" || fmt.Sprint(resp.Data["token_ttl"]) != "0" || fmt.Sprint(resp.Data["token_max_ttl"]) != "0" {
			t.Fatalf("role after clearing: %v", resp.Data)
		}
	})

	engines := map[string]struct {
		role   *v1alpha1.DynamicRole
		secret map[string][]byte
		typ    string
	}{
		"postgresql": {
			role: &v1alpha1.DynamicRole{Spec: v1alpha1.DynamicRoleSpec{Engine: v1alpha1.EnginePostgreSQL,
				Connection: v1alpha1.Connection{Verify: new(bool)}, PostgreSQL: &v1alpha1.PostgreSQLRole{}, DefaultTTL: hour}},
			secret: map[string][]byte{"connection_url": []byte("postgresql://{{username}}:{{password}}@127.0.0.1:1/x"), "username": []byte("admin"), "password": []byte("pw")},
			typ:    "database",
		},
		"redis": {
			role: &v1alpha1.DynamicRole{Spec: v1alpha1.DynamicRoleSpec{Engine: v1alpha1.EngineRedis,
				Connection: v1alpha1.Connection{Verify: new(bool)}, Redis: &v1alpha1.RedisRole{KeyPatterns: []string{"app:*"}, Commands: []string{"+@read"}}, MaxTTL: hour}},
			secret: map[string][]byte{"host": []byte("127.0.0.1"), "port": []byte("1"), "tls": []byte("false"), "password": []byte("pw")},
			typ:    "redis",
		},
		"aws": {
			role: &v1alpha1.DynamicRole{Spec: v1alpha1.DynamicRoleSpec{Engine: v1alpha1.EngineAWS,
				AWS:        &v1alpha1.AWSRole{CredentialType: v1alpha1.AWSIAMUser, PolicyARNs: []string{"arn:aws:iam::aws:policy/ReadOnlyAccess"}},
				DefaultTTL: hour, MaxTTL: &metav1.Duration{Duration: 2 * time.Hour}}},
			secret: map[string][]byte{"access_key": []byte("AKIAIOSFODNN7EXAMPLE"), "secret_key": []byte("secret")},
			typ:    "aws",
		},
	}
	for name, tc := range engines {
		t.Run(name, func(t *testing.T) {
			tc.role.Namespace, tc.role.Name = "team-a", "app"
			mount := controllers.RoleMount(tc.role)
			if _, err := cl.Write(ctx, "sys/mounts/"+mount, map[string]any{"type": tc.typ}); err != nil {
				t.Fatal(err)
			}
			cfgPath, cfg, err := controllers.EngineConfig(tc.role, &corev1.Secret{Data: tc.secret})
			if err != nil {
				t.Fatal(err)
			}
			rolePath, role, err := controllers.EngineRole(tc.role)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ { // the second write is the resync's
				if _, err := cl.Write(ctx, mount+"/"+cfgPath, cfg); err != nil {
					t.Fatalf("write %s: %v", cfgPath, err)
				}
				if _, err := cl.Write(ctx, mount+"/"+rolePath, role); err != nil {
					t.Fatalf("write %s: %v", rolePath, err)
				}
				if leasePath, lease, ok := controllers.EngineLease(tc.role); ok {
					if _, err := cl.Write(ctx, mount+"/"+leasePath, lease); err != nil {
						t.Fatalf("write %s: %v", leasePath, err)
					}
				}
			}
			if _, _, ok := controllers.EngineLease(tc.role); ok {
				resp, err := cl.Read(ctx, mount+"/config/lease", nil)
				if err != nil {
					t.Fatal(err)
				}
				if resp.Data["lease"] != "1h0m0s" || resp.Data["lease_max"] != "2h0m0s" {
					t.Errorf("config/lease = %v, want the DynamicRole's defaultTTL and maxTTL", resp.Data)
				}
			}
		})
	}
}
