// Package v1alpha1 holds the Go types of SecretHub's Kubernetes custom
// resources, API group secrethub.io, version v1alpha1.
//
// The kinds describe configuration the operator writes into the core:
//
//   - SecretPolicy: a core ACL policy (rules, capabilities, conditions).
//   - DynamicRole: a role of a dynamic secrets engine (postgresql, redis,
//     aws), with the engine connection read from a Kubernetes Secret.
//   - AgentTemplate: named agent templates (destination, contents,
//     permissions, reload action) the injector hands to agents.
//   - SecretBinding: binds service accounts of the binding's namespace to
//     SecretPolicies through a Kubernetes auth role in the core.
//
// Every kind is namespaced and reports the same Status: conditions Ready
// and Synced with observedGeneration, and coreName, the object's name in
// the core. The CRDs in config/crd/bases are generated from the kubebuilder
// markers in this package by controller-gen (make manifests); the deep
// copy functions by make generate.
//
// +kubebuilder:object:generate=true
// +groupName=secrethub.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of these types.
	GroupVersion = schema.GroupVersion{Group: "secrethub.io", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// objectTypes are the kinds and lists of this package, added by each kind's
// file.
var objectTypes []runtime.Object

// register adds kinds to the types AddToScheme registers.
func register(objs ...runtime.Object) { objectTypes = append(objectTypes, objs...) }

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, objectTypes...)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
