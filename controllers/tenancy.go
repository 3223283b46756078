package controllers

import (
	"fmt"
	"slices"
	"strings"

	"github.com/secrethub/secrethub/api/v1alpha1"
)

// DefaultAdminNamespaces may grant anything in their SecretPolicies.
var DefaultAdminNamespaces = []string{"secrethub-system"}

// checkTenantRules confines what a SecretPolicy of namespace ns may allow,
// so anyone who may create SecretPolicies and SecretBindings in a
// namespace cannot grant its workloads another namespace's secrets or the
// core's administration. An allow rule of a namespace outside
// adminNamespaces must stay below one of
//
//   - secrets/<ns>/ (the namespace's own KV secrets), except for a
//     namespace named secrethub: secrets/secrethub/ is the operator's
//     (every namespace's AgentTemplates, whose reload commands the agents
//     run);
//   - secrets/secrethub/agent-templates/<ns>/ (its AgentTemplates),
//   - <mount>/k8s/<ns>/ (the engines of its DynamicRoles), with <mount>
//     outside secrets/: there, secrets/k8s/ or secrets/<x>/k8s/ belongs to
//     the namespace named k8s or <x>, and DynamicRoles may not mount there;
//
// with no wildcard before that prefix and no "." or ".." segment, and may
// not grant sudo. Deny rules only take away, so they are free.
func checkTenantRules(ns string, adminNamespaces []string, spec v1alpha1.SecretPolicySpec) error {
	if slices.Contains(adminNamespaces, ns) {
		return nil
	}
	for i, r := range spec.Rules {
		if r.Effect == "deny" {
			continue
		}
		field := fmt.Sprintf("spec.rules[%d]", i)
		if slices.Contains(r.Capabilities, "sudo") {
			return fmt.Errorf("%w: %s.capabilities: sudo is reserved to the admin namespaces (%s)", errInvalidSpec, field, strings.Join(adminNamespaces, ", "))
		}
		if !tenantPath(ns, r.Path) {
			return fmt.Errorf("%w: %s.path %q: a policy of namespace %s may only grant paths below secrets/%s/, secrets/secrethub/agent-templates/%s/ or <mount>/k8s/%s/ (the admin namespaces %s may grant any path)",
				errInvalidSpec, field, r.Path, ns, ns, ns, ns, strings.Join(adminNamespaces, ", "))
		}
	}
	return nil
}

// operatorKVSegment is the KV segment below secrets/ that the operator
// keeps for itself (AgentTemplatePrefix).
const operatorKVSegment = "secrethub"

// tenantPath reports whether path stays inside namespace ns's part of the
// core.
func tenantPath(ns, path string) bool {
	segs := strings.Split(path, "/")
	for _, s := range segs {
		if s == "." || s == ".." || s == "" {
			return false
		}
	}
	// The literal segments before the namespace's own prefix: no wildcard
	// may widen the prefix itself.
	literal := func(n int) bool {
		for _, s := range segs[:n] {
			if strings.ContainsAny(s, "*+?[]{}") {
				return false
			}
		}
		return true
	}
	switch {
	case len(segs) > 2 && segs[0] == "secrets" && segs[1] == ns && ns != operatorKVSegment && literal(2):
		return true
	case len(segs) > 4 && segs[0] == "secrets" && segs[1] == operatorKVSegment && segs[2] == "agent-templates" && segs[3] == ns && literal(4):
		return true
	case segs[0] == "secrets":
		return false
	}
	for i := 1; i+2 < len(segs); i++ {
		if segs[i] == "k8s" && segs[i+1] == ns && literal(i+2) {
			return true
		}
	}
	return false
}
