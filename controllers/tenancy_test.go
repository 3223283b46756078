package controllers

import (
	"errors"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/api/v1alpha1"
)

func TestCheckTenantRules(t *testing.T) {
	admins := []string{"secrethub-system"}
	rule := func(path string, caps ...v1alpha1.Capability) v1alpha1.PolicyRule {
		if len(caps) == 0 {
			caps = []v1alpha1.Capability{"read"}
		}
		return v1alpha1.PolicyRule{Path: path, Capabilities: caps}
	}
	tests := []struct {
		name    string
		ns      string
		rule    v1alpha1.PolicyRule
		wantErr string // substring; "" for allowed
	}{
		{"own KV secrets", "team-a", rule("secrets/team-a/*"), ""},
		{"own KV, deep glob", "team-a", rule("secrets/team-a/app/**"), ""},
		{"own agent templates", "team-a", rule("secrets/secrethub/agent-templates/team-a/web"), ""},
		{"own dynamic role", "team-a", rule("database/k8s/team-a/app/creds/app"), ""},
		{"own dynamic role, nested mount", "team-a", rule("kv/dynamic/k8s/team-a/x/creds/x"), ""},
		{"dynamic role paths below secrets/", "team-a", rule("secrets/dynamic/k8s/team-a/x/creds/x"), "spec.rules[0].path"},
		{"another namespace's KV shaped like a dynamic role", "team-a", rule("secrets/team-b/k8s/team-a/x"), "spec.rules[0].path"},
		{"namespace secrethub: not the operator's KV", "secrethub", rule("secrets/secrethub/agent-templates/team-b/*"), "spec.rules[0].path"},
		{"namespace secrethub: its own agent templates", "secrethub", rule("secrets/secrethub/agent-templates/secrethub/web"), ""},
		{"namespace k8s: its own KV", "k8s", rule("secrets/k8s/app"), ""},
		{"another namespace", "team-a", rule("secrets/team-b/*"), "spec.rules[0].path"},
		{"everything", "team-a", rule("**"), "spec.rules[0].path"},
		{"the namespace prefix itself", "team-a", rule("secrets/team-a"), "spec.rules[0].path"},
		{"glob before the namespace", "team-a", rule("secrets/*/app"), "spec.rules[0].path"},
		{"glob in the namespace segment", "team-a", rule("secrets/team-*/app"), "spec.rules[0].path"},
		{"dot-dot escape", "team-a", rule("secrets/team-a/../team-b/x"), "spec.rules[0].path"},
		{"glob before k8s", "team-a", rule("*/k8s/team-a/x/creds/x"), "spec.rules[0].path"},
		{"another namespace's dynamic role", "team-a", rule("database/k8s/team-b/x/creds/x"), "spec.rules[0].path"},
		{"sys", "team-a", rule("sys/policies/acl/*"), "spec.rules[0].path"},
		{"sudo", "team-a", rule("secrets/team-a/*", "read", "sudo"), "spec.rules[0].capabilities"},
		{"deny rules are free", "team-a", v1alpha1.PolicyRule{Path: "**", Capabilities: []v1alpha1.Capability{"read"}, Effect: "deny"}, ""},
		{"admin namespace", "secrethub-system", rule("**", "sudo"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkTenantRules(tc.ns, admins, v1alpha1.SecretPolicySpec{Rules: []v1alpha1.PolicyRule{tc.rule}})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, errInvalidSpec)):
				t.Fatalf("err = %v, want an invalid-spec error naming %q", err, tc.wantErr)
			}
		})
	}
}
