package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SecretSyncSpec names a KV secret of the core that the operator copies
// into a Kubernetes Secret, for applications that read their secrets from
// environment variables.
type SecretSyncSpec struct {
	// Path is the core path of a KV secret, such as
	// "secrets/team-a/app/db". Outside the admin namespaces it must stay
	// below secrets/<namespace>/ (the namespace's own secrets). Paths
	// that issue leases (dynamic credentials) are refused.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^[^/]+(/[^/]+)+$`
	// +kubebuilder:validation:XValidation:rule="!self.matches('(^|/)[.][.]?(/|$)')",message="spec.path must be a clean path, without '.' or '..' segments"
	Path string `json:"path"`

	// SecretName is the Kubernetes Secret, in the SecretSync's namespace,
	// that the operator keeps in step with the core. Default: the
	// SecretSync's name. The operator creates it and owns it; an
	// existing Secret it does not own is left alone (Rejected).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	SecretName string `json:"secretName,omitempty"`

	// Keys maps core keys to Secret keys; only these keys are copied.
	// Default: every key of the core secret, under its own name. Two
	// core keys may not map to the same Secret key.
	// +optional
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=256
	Keys map[string]SecretKey `json:"keys,omitempty"`

	// RefreshInterval is how often the operator reads the core path
	// again: a Go duration from 1s to 24h. Default 1m.
	// +optional
	// +kubebuilder:default="1m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="spec.refreshInterval must be from 1s to 24h"
	RefreshInterval *metav1.Duration `json:"refreshInterval,omitempty"`

	// RolloutRestart lists the workloads, in the SecretSync's namespace,
	// restarted (as by kubectl rollout restart) when the Secret's data
	// changes.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	RolloutRestart []RolloutTarget `json:"rolloutRestart,omitempty"`
}

// SecretKey is a key of a Kubernetes Secret's data.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=253
// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
type SecretKey string

// RolloutKind is a kind of workload a SecretSync may restart.
// +kubebuilder:validation:Enum=Deployment;StatefulSet;DaemonSet
type RolloutKind string

// The kinds of workload a SecretSync restarts.
const (
	RolloutDeployment  RolloutKind = "Deployment"
	RolloutStatefulSet RolloutKind = "StatefulSet"
	RolloutDaemonSet   RolloutKind = "DaemonSet"
)

// RolloutTarget names a workload to restart.
type RolloutTarget struct {
	// Kind is Deployment, StatefulSet or DaemonSet (group apps).
	// +required
	Kind RolloutKind `json:"kind"`
	// Name is the workload's name in the SecretSync's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// SecretSyncStatus is the shared status plus what was last copied.
type SecretSyncStatus struct {
	Status `json:",inline"`

	// LastSyncedVersion is the version of the core secret last copied.
	// +optional
	LastSyncedVersion int64 `json:"lastSyncedVersion,omitempty"`

	// DataHash is "sha256:" and the hex SHA-256 of the Secret's data as
	// last written (a hash, never the data): the restarts are triggered
	// when it changes.
	// +optional
	DataHash string `json:"dataHash,omitempty"`

	// LastRolloutTime is when the rolloutRestart workloads were last
	// restarted.
	// +optional
	LastRolloutTime *metav1.Time `json:"lastRolloutTime,omitempty"`
}

// SecretSync keeps a Kubernetes Secret in step with a KV secret of the
// core, and restarts workloads when it changes.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=shsync,categories=secrethub
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Synced",type=string,JSONPath=`.status.conditions[?(@.type=="Synced")].status`
// +kubebuilder:printcolumn:name="Core Name",type=string,JSONPath=`.status.coreName`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SecretSync struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the core path and the Secret to keep in step.
	// +required
	Spec SecretSyncSpec `json:"spec"`
	// Status is what the operator last copied.
	// +optional
	Status SecretSyncStatus `json:"status,omitempty"`
}

// SecretSyncList is a list of SecretSync.
//
// +kubebuilder:object:root=true
type SecretSyncList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SecretSync `json:"items"`
}

// GetStatus returns the SecretSync's shared status.
func (s *SecretSync) GetStatus() *Status { return &s.Status.Status }

var _ Object = (*SecretSync)(nil)

func init() {
	register(&SecretSync{}, &SecretSyncList{})
}
