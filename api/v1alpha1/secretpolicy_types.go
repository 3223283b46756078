package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Capability is what a policy rule allows (or, with effect deny, denies)
// on its path. The capability deny denies every capability on the path.
// +kubebuilder:validation:Enum=create;read;update;delete;list;sudo;deny
type Capability string

// The capabilities of the core's policy language (docs/policies.md).
const (
	CapabilityCreate Capability = "create"
	CapabilityRead   Capability = "read"
	CapabilityUpdate Capability = "update"
	CapabilityDelete Capability = "delete"
	CapabilityList   Capability = "list"
	CapabilitySudo   Capability = "sudo"
	CapabilityDeny   Capability = "deny"
)

// Effect is what a rule does to the capabilities it names.
// +kubebuilder:validation:Enum=allow;deny
type Effect string

// The effects of a rule.
const (
	EffectAllow Effect = "allow"
	EffectDeny  Effect = "deny"
)

// SecretPolicySpec is a core ACL policy: the rules of docs/policies.md,
// with camelCase field names. The operator renders it into the core's
// policy document (snake_case: time_of_day, days_of_week, source_ip,
// ttl_max).
type SecretPolicySpec struct {
	// Rules are examined for every request; deny wins. At most 256 (the
	// core takes 1000: split a longer policy, so the apiserver's CEL
	// budget holds).
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +listType=atomic
	Rules []PolicyRule `json:"rules"`
}

// PolicyRule grants or denies capabilities on a path glob, optionally
// under conditions.
type PolicyRule struct {
	// Path is a path glob below /v1/, without a leading slash:
	// "secrets/app/*", "secrets/**". '*' and '?' match within one
	// segment; "**" as a whole segment matches any number of segments.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="!self.matches('^/|//|/$|(^|/)[.][.]?(/|$)')",message="path must not start or end with '/' nor have an empty, '.' or '..' segment"
	// +kubebuilder:validation:XValidation:rule="!self.matches('[^/][*][*]|[*][*][^/]')",message="path: '**' must be a whole segment"
	Path string `json:"path"`

	// Capabilities the rule names: create, read, update, delete, list,
	// sudo, deny.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=7
	// +listType=set
	Capabilities []Capability `json:"capabilities"`

	// Effect is allow (the default) or deny: what the rule does to the
	// capabilities it names.
	// +optional
	Effect Effect `json:"effect,omitempty"`

	// Conditions must all hold for the rule to apply; a condition that
	// cannot be evaluated denies.
	// +optional
	Conditions *PolicyConditions `json:"conditions,omitempty"`
}

// PolicyConditions are the conditions of a rule (docs/policies.md,
// "Conditions").
// +kubebuilder:validation:XValidation:rule="!has(self.timeZone) || !has(self.timeOfDay) || !has(self.timeOfDay.timeZone) || self.timeZone == self.timeOfDay.timeZone",message="timeZone and timeOfDay.timeZone must be equal when both are set",fieldPath=".timeZone"
// +kubebuilder:validation:MinProperties=1
type PolicyConditions struct {
	// TimeOfDay holds when the request's time, in the zone, is in
	// [start, end).
	// +optional
	TimeOfDay *TimeOfDay `json:"timeOfDay,omitempty"`

	// DaysOfWeek holds when the request's day, in the zone, is listed.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=14
	// +kubebuilder:validation:items:Enum=mon;tue;wed;thu;fri;sat;sun;monday;tuesday;wednesday;thursday;friday;saturday;sunday
	// +listType=set
	DaysOfWeek []string `json:"daysOfWeek,omitempty"`

	// TimeZone is an IANA zone name ("Europe/Paris") for timeOfDay and
	// daysOfWeek; UTC when unset. "Local" is refused.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self != 'Local'",message="timeZone must not be Local"
	TimeZone string `json:"timeZone,omitempty"`

	// SourceIP holds when the client address is in one of the networks:
	// CIDRs ("10.0.0.0/8") or bare addresses.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.all(x, isIP(x) || isCIDR(x))",message="sourceIP entries must be IP addresses or CIDRs"
	// +listType=atomic
	SourceIP []string `json:"sourceIP,omitempty"`

	// TTLMax holds when the request asks for no TTL or for one at most
	// this long: a positive Go duration ("15m", "1h30m").
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	TTLMax string `json:"ttlMax,omitempty"`
}

// TimeOfDay is a daily window, "HH:MM" 24-hour; end before start wraps
// midnight; "00:00" as end means until midnight.
// +kubebuilder:validation:XValidation:rule="self.start != self.end",message="timeOfDay.end must differ from timeOfDay.start",fieldPath=".end"
type TimeOfDay struct {
	// Start of the window, "HH:MM".
	// +required
	// +kubebuilder:validation:MaxLength=5
	// +kubebuilder:validation:Pattern=`^([01][0-9]|2[0-3]):[0-5][0-9]$`
	Start string `json:"start"`
	// End of the window (excluded), "HH:MM".
	// +required
	// +kubebuilder:validation:MaxLength=5
	// +kubebuilder:validation:Pattern=`^([01][0-9]|2[0-3]):[0-5][0-9]$`
	End string `json:"end"`
	// TimeZone is an IANA zone name; see PolicyConditions.TimeZone.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self != 'Local'",message="timeZone must not be Local"
	TimeZone string `json:"timeZone,omitempty"`
}

// SecretPolicy is a policy of the core, managed from Kubernetes. The
// operator names it in the core after the namespace and name (see
// status.coreName).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=shpol,categories=secrethub
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Synced",type=string,JSONPath=`.status.conditions[?(@.type=="Synced")].status`
// +kubebuilder:printcolumn:name="Core Name",type=string,JSONPath=`.status.coreName`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SecretPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the policy.
	// +required
	Spec SecretPolicySpec `json:"spec"`
	// Status is the operator's view of the policy in the core.
	// +optional
	Status Status `json:"status,omitempty"`
}

// SecretPolicyList is a list of SecretPolicy.
//
// +kubebuilder:object:root=true
type SecretPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SecretPolicy `json:"items"`
}

func init() {
	register(&SecretPolicy{}, &SecretPolicyList{})
}
