package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SecretBindingSpec grants service accounts of the binding's own namespace
// the policies of SecretPolicies of that namespace. The operator turns it
// into a Kubernetes auth role of the core (bound service account names,
// bound namespace, token policies, token TTL, audience); a pod logs in
// with its service-account token under that role.
//
// A binding binds its own namespace only, so a tenant allowed to create
// SecretBindings in one namespace cannot grant anything to another. There
// is deliberately no namespaces field: CEL cannot see metadata.namespace,
// so a field could not be checked by the apiserver.
//
// +kubebuilder:validation:XValidation:rule="!has(self.tokenTTL) || !has(self.tokenMaxTTL) || duration(self.tokenMaxTTL) >= duration(self.tokenTTL)",message="spec.tokenMaxTTL must be at least spec.tokenTTL",fieldPath=".tokenMaxTTL"
type SecretBindingSpec struct {
	// ServiceAccounts are service-account names of the binding's
	// namespace; '*' globs are allowed ("app-*", "*"): the core's
	// Kubernetes auth roles match '*' for any run of characters.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9*]([-a-z0-9.*]*[a-z0-9*])?$`
	// +listType=set
	ServiceAccounts []string `json:"serviceAccounts"`

	// Policies are names of SecretPolicies in the binding's namespace;
	// the token gets their core policies (and the core's default policy).
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +listType=set
	Policies []string `json:"policies"`

	// TokenTTL is the lifetime of a token issued at login: a Go duration
	// ("1h"). Unset: the core's default.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	TokenTTL *metav1.Duration `json:"tokenTTL,omitempty"`

	// TokenMaxTTL is the longest such a token may live, renewals
	// included. Unset: the core's default.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	TokenMaxTTL *metav1.Duration `json:"tokenMaxTTL,omitempty"`

	// Audience, when set, is the audience the service-account token must
	// carry (checked by TokenReview at login).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Audience string `json:"audience,omitempty"`
}

// SecretBinding grants service accounts of its namespace access to the
// core with the policies of SecretPolicies of its namespace, through a
// Kubernetes auth role (named in status.coreName) that pods log in with.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=shbind,categories=secrethub
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Synced",type=string,JSONPath=`.status.conditions[?(@.type=="Synced")].status`
// +kubebuilder:printcolumn:name="Core Name",type=string,JSONPath=`.status.coreName`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SecretBinding struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the binding.
	// +required
	Spec SecretBindingSpec `json:"spec"`
	// Status is the operator's view of the auth role in the core.
	// +optional
	Status Status `json:"status,omitempty"`
}

// SecretBindingList is a list of SecretBinding.
//
// +kubebuilder:object:root=true
type SecretBindingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SecretBinding `json:"items"`
}

func init() {
	register(&SecretBinding{}, &SecretBindingList{})
}
