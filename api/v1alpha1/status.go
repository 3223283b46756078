package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Condition types every kind reports in status.conditions.
const (
	// ConditionReady is True when the object is in effect in the core:
	// the last sync of the current generation succeeded.
	ConditionReady = "Ready"
	// ConditionSynced is True when the core object matches the spec of
	// status.observedGeneration; False while a sync fails (core sealed,
	// unreachable, object refused).
	ConditionSynced = "Synced"
)

// Condition reasons the operator sets. A reason is CamelCase, as
// metav1.Condition requires.
const (
	// ReasonSynced: the core object was written and matches the spec.
	ReasonSynced = "Synced"
	// ReasonCoreSealed: the core answered that it is sealed; the operator
	// retries with backoff.
	ReasonCoreSealed = "CoreSealed"
	// ReasonCoreUnavailable: the core could not be reached or failed.
	ReasonCoreUnavailable = "CoreUnavailable"
	// ReasonRejected: the core refused the object (400): the message names
	// the field.
	ReasonRejected = "Rejected"
	// ReasonDependencyMissing: a referenced object (a Secret, a
	// SecretPolicy) does not exist or lacks a key.
	ReasonDependencyMissing = "DependencyMissing"
	// ReasonDeleting: the finalizer is removing the core object.
	ReasonDeleting = "Deleting"
)

// Finalizer is the finalizer the operator puts on every object so that
// deleting it removes the matching core object first.
const Finalizer = "secrethub.io/finalizer"

// Status is the observed state every kind reports.
type Status struct {
	// Conditions are Ready and Synced, each with the generation it was
	// computed for.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// ObservedGeneration is the metadata.generation the operator last
	// reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// CoreName names the object in the core (a policy, a role, a KV path,
	// an auth role), chosen by the operator so that objects of two
	// namespaces never collide.
	// +optional
	CoreName string `json:"coreName,omitempty"`
}

// Object is implemented by every kind of this package, so reconcilers can
// share the status and condition handling. It is a controller-runtime
// client.Object.
//
// +kubebuilder:object:generate=false
type Object interface {
	metav1.Object
	runtime.Object
	// GetStatus returns a pointer to the object's status, for reading and
	// updating it in place.
	GetStatus() *Status
}

// GetStatus returns the SecretPolicy's status.
func (p *SecretPolicy) GetStatus() *Status { return &p.Status }

// GetStatus returns the DynamicRole's status.
func (r *DynamicRole) GetStatus() *Status { return &r.Status }

// GetStatus returns the AgentTemplate's status.
func (t *AgentTemplate) GetStatus() *Status { return &t.Status }

// GetStatus returns the SecretBinding's status.
func (b *SecretBinding) GetStatus() *Status { return &b.Status }

var (
	_ Object = (*SecretPolicy)(nil)
	_ Object = (*DynamicRole)(nil)
	_ Object = (*AgentTemplate)(nil)
	_ Object = (*SecretBinding)(nil)
)
