package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Engine names a dynamic secrets engine of the core.
// +kubebuilder:validation:Enum=postgresql;redis;aws
type Engine string

// The dynamic engines a DynamicRole can configure.
const (
	EnginePostgreSQL Engine = "postgresql"
	EngineRedis      Engine = "redis"
	EngineAWS        Engine = "aws"
)

// DefaultMount is the mount path of each engine when spec.mount is empty:
// the paths the docs and the CLI use (docs/database.md, redis.md, aws.md).
var DefaultMount = map[Engine]string{
	EnginePostgreSQL: "database",
	EngineRedis:      "redis",
	EngineAWS:        "aws",
}

// DynamicRoleSpec is a role of a dynamic secrets engine: the connection the
// engine uses, and what each credential it issues may do.
//
// +kubebuilder:validation:XValidation:rule="self.engine == 'postgresql' ? has(self.postgresql) : !has(self.postgresql)",message="spec.postgresql must be set when engine is postgresql, and only then",fieldPath=".postgresql"
// +kubebuilder:validation:XValidation:rule="self.engine == 'redis' ? has(self.redis) : !has(self.redis)",message="spec.redis must be set when engine is redis, and only then",fieldPath=".redis"
// +kubebuilder:validation:XValidation:rule="self.engine == 'aws' ? has(self.aws) : !has(self.aws)",message="spec.aws must be set when engine is aws, and only then",fieldPath=".aws"
// +kubebuilder:validation:XValidation:rule="!has(self.defaultTTL) || !has(self.maxTTL) || duration(self.maxTTL) >= duration(self.defaultTTL)",message="spec.maxTTL must be at least spec.defaultTTL",fieldPath=".maxTTL"
// +kubebuilder:validation:XValidation:rule="self.engine == oldSelf.engine",message="spec.engine is immutable",fieldPath=".engine"
// +kubebuilder:validation:XValidation:rule="has(self.mount) == has(oldSelf.mount) && (!has(self.mount) || self.mount == oldSelf.mount)",message="spec.mount is immutable",fieldPath=".mount"
type DynamicRoleSpec struct {
	// Engine is the engine the role belongs to: postgresql, redis or aws.
	// Immutable.
	// +required
	Engine Engine `json:"engine"`

	// Mount is the prefix of the engine's mount path in the core; empty
	// means the engine's usual path (database, redis or aws, see
	// DefaultMount). The operator mounts an engine for this role alone
	// below it, at <mount>/k8s/<namespace>/<name> (docs/operator.md).
	// Not below secrets/: there, paths belong to the namespaces by name
	// (secrets/<namespace>/), and a namespace named like a segment of the
	// mount could grant itself every namespace's credentials. Immutable.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self != 'secrets' && !self.startsWith('secrets/')",message="spec.mount must not be secrets or below it: the KV paths there belong to namespaces"
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([a-z0-9_-]*[a-z0-9])?(/[a-z0-9]([a-z0-9_-]*[a-z0-9])?)*$`
	Mount string `json:"mount,omitempty"`

	// Connection is where the engine's connection details come from.
	// +required
	Connection Connection `json:"connection"`

	// PostgreSQL is the role of a postgresql engine.
	// +optional
	PostgreSQL *PostgreSQLRole `json:"postgresql,omitempty"`

	// Redis is the role of a redis engine.
	// +optional
	Redis *RedisRole `json:"redis,omitempty"`

	// AWS is the role of an aws engine.
	// +optional
	AWS *AWSRole `json:"aws,omitempty"`

	// DefaultTTL is the lease of a credential whose request names no TTL:
	// a Go duration ("1h"). Unset: the engine's default.
	// For aws assumed_role, the STS session duration (default_sts_ttl);
	// for aws iam_user, the lease of the mount's config/lease.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	DefaultTTL *metav1.Duration `json:"defaultTTL,omitempty"`

	// MaxTTL is the longest lease a credential may have, renewals
	// included: a Go duration ("24h"), at least DefaultTTL. Unset: the
	// engine's default. For aws assumed_role, max_sts_ttl; for iam_user,
	// lease_max of the mount's config/lease.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	MaxTTL *metav1.Duration `json:"maxTTL,omitempty"`
}

// Connection says where the engine's connection details are. They live in
// a Kubernetes Secret of the DynamicRole's namespace, never in the
// DynamicRole itself, because they hold the engine's admin credentials.
type Connection struct {
	// SecretRef names the Secret and the keys to read.
	// +required
	SecretRef ConnectionSecretRef `json:"secretRef"`

	// Verify makes the core check the connection when the operator writes
	// it (verify_connection; default true).
	// +optional
	Verify *bool `json:"verify,omitempty"`
}

// ConnectionSecretRef names a Secret in the DynamicRole's namespace whose
// keys are the core's connection fields:
//
//   - postgresql: connection_url (required; a URL or DSN that may hold
//     {{username}} and {{password}} but no literal password), username,
//     password.
//   - redis: address ("host:port"), or host and port; username, password;
//     tls ("true"), insecure_tls, ca_cert (PEM).
//   - aws: access_key, secret_key (both required), region, iam_endpoint,
//     sts_endpoint.
//
// Keys renames them when the Secret uses other key names.
type ConnectionSecretRef struct {
	// Name of the Secret, in the DynamicRole's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// Keys maps a core connection field (connection_url, password, …) to
	// the Secret key that holds it, when they differ. A field not listed
	// is read from the key of its own name.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	Keys map[string]string `json:"keys,omitempty"`
}

// KeyFor returns the Secret key holding the core connection field.
func (r ConnectionSecretRef) KeyFor(field string) string {
	if k, ok := r.Keys[field]; ok && k != "" {
		return k
	}
	return field
}

// PostgreSQLRole is a role of the database engine (docs/database.md,
// roles/:name). Statements are templates with {{name}}, {{password}} and
// {{expiration}}; each list may be empty to use the engine's default.
type PostgreSQLRole struct {
	// CreationStatements create the user (creation_statements).
	// +optional
	// +listType=atomic
	CreationStatements []string `json:"creationStatements,omitempty"`
	// RevocationStatements drop it (revocation_statements).
	// +optional
	// +listType=atomic
	RevocationStatements []string `json:"revocationStatements,omitempty"`
	// RenewStatements extend it (renew_statements).
	// +optional
	// +listType=atomic
	RenewStatements []string `json:"renewStatements,omitempty"`
	// RollbackStatements undo a failed creation (rollback_statements).
	// +optional
	// +listType=atomic
	RollbackStatements []string `json:"rollbackStatements,omitempty"`
}

// RedisRole is a role of the redis engine (docs/redis.md, roles/:name).
type RedisRole struct {
	// KeyPatterns are key globs ("app:*" means "~app:*"; "allkeys").
	// +optional
	// +listType=atomic
	KeyPatterns []string `json:"keyPatterns,omitempty"`
	// ChannelPatterns are pub/sub channel globs ("events:*";
	// "allchannels").
	// +optional
	// +listType=atomic
	ChannelPatterns []string `json:"channelPatterns,omitempty"`
	// Commands are ACL command rules: "+@read", "-@dangerous", "+get",
	// "allcommands", "nocommands". At least one.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +listType=atomic
	Commands []string `json:"commands"`
}

// AWSCredentialType is the kind of AWS credentials a role issues.
// +kubebuilder:validation:Enum=iam_user;assumed_role
type AWSCredentialType string

// The AWS credential types the core supports.
const (
	AWSIAMUser     AWSCredentialType = "iam_user"
	AWSAssumedRole AWSCredentialType = "assumed_role"
)

// AWSRole is a role of the aws engine (docs/aws.md, roles/:name).
//
// +kubebuilder:validation:XValidation:rule="self.credentialType != 'assumed_role' || (has(self.roleARNs) && size(self.roleARNs) > 0)",message="spec.aws.roleARNs must name at least one role for credentialType assumed_role",fieldPath=".roleARNs"
// +kubebuilder:validation:XValidation:rule="self.credentialType != 'iam_user' || !has(self.roleARNs)",message="spec.aws.roleARNs is only for credentialType assumed_role",fieldPath=".roleARNs"
// +kubebuilder:validation:XValidation:rule="self.credentialType != 'iam_user' || has(self.policyDocument) || has(self.policyARNs)",message="spec.aws.policyDocument or spec.aws.policyARNs is required for credentialType iam_user",fieldPath=".policyDocument"
// +kubebuilder:validation:XValidation:rule="self.credentialType != 'assumed_role' || !has(self.userPath)",message="spec.aws.userPath is only for credentialType iam_user",fieldPath=".userPath"
type AWSRole struct {
	// CredentialType is iam_user (a new IAM user per credential) or
	// assumed_role (an STS session of one of RoleARNs).
	// +required
	CredentialType AWSCredentialType `json:"credentialType"`
	// PolicyDocument is an IAM policy (a JSON object with a Statement):
	// the user's inline policy, or the session policy of an assumed role.
	// +optional
	// +kubebuilder:validation:MinLength=1
	PolicyDocument string `json:"policyDocument,omitempty"`
	// PolicyARNs are managed policies: attached to the user, or session
	// policies of an assumed role.
	// +optional
	// +listType=set
	// +kubebuilder:validation:items:Pattern=`^arn:[a-z-]+:iam::(aws|[0-9]{12}):policy/.+$`
	PolicyARNs []string `json:"policyARNs,omitempty"`
	// RoleARNs are the roles an assumed_role role may assume.
	// +optional
	// +listType=set
	// +kubebuilder:validation:items:Pattern=`^arn:[a-z-]+:iam::[0-9]{12}:role/.+$`
	RoleARNs []string `json:"roleARNs,omitempty"`
	// UserPath is the IAM path of iam_user users (default "/").
	// +optional
	// +kubebuilder:validation:Pattern=`^/([\x21-\x7e]*/)?$`
	UserPath string `json:"userPath,omitempty"`
}

// DynamicRole is a role of a dynamic secrets engine of the core
// (PostgreSQL, Redis or AWS), with the engine's connection read from a
// Kubernetes Secret.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=shrole,categories=secrethub
// +kubebuilder:printcolumn:name="Engine",type=string,JSONPath=`.spec.engine`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Synced",type=string,JSONPath=`.status.conditions[?(@.type=="Synced")].status`
// +kubebuilder:printcolumn:name="Core Name",type=string,JSONPath=`.status.coreName`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DynamicRole struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the role.
	// +required
	Spec DynamicRoleSpec `json:"spec"`
	// Status is the operator's view of the role in the core.
	// +optional
	Status Status `json:"status,omitempty"`
}

// MountPath returns spec.mount, or the engine's default mount path when it
// is empty.
func (r *DynamicRole) MountPath() string {
	if r.Spec.Mount != "" {
		return r.Spec.Mount
	}
	return DefaultMount[r.Spec.Engine]
}

// DynamicRoleList is a list of DynamicRole.
//
// +kubebuilder:object:root=true
type DynamicRoleList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DynamicRole `json:"items"`
}

func init() {
	register(&DynamicRole{}, &DynamicRoleList{})
}
