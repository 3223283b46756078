package controllers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	kclient "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/secrethub/secrethub/api/v1alpha1"
	"github.com/secrethub/secrethub/core/client"
)

// roleSecretIndex indexes DynamicRoles by the Secret they read.
const roleSecretIndex = "spec.connection.secretRef.name"

// engineType is the core's engine type of each DynamicRole engine.
var engineType = map[v1alpha1.Engine]string{
	v1alpha1.EnginePostgreSQL: "database",
	v1alpha1.EngineRedis:      "redis",
	v1alpha1.EngineAWS:        "aws",
}

// DynamicRoleReconciler gives each DynamicRole an engine of its own in the
// core, mounted at RoleMount (spec.mount, or the engine's usual mount,
// then k8s/<namespace>/<name>): the connection from the referenced Secret
// and one role, whose credentials are read at RoleCredsPath.
//
// One mount per DynamicRole, for every engine alike: the redis and aws
// engines hold one connection per mount, so roles with different
// connections need different mounts; and a tenant's connection, role and
// leases stay apart from every other's (unmounting on delete revokes the
// role's credentials and removes the connection).
type DynamicRoleReconciler struct {
	loop[*v1alpha1.DynamicRole]
}

// +kubebuilder:rbac:groups=secrethub.io,resources=dynamicroles,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=secrethub.io,resources=dynamicroles/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=secrethub.io,resources=dynamicroles/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// NewDynamicRoleReconciler returns the DynamicRole reconciler.
// opts.APIReader reads the connection Secrets.
func NewDynamicRoleReconciler(kube kclient.Client, opts Options) *DynamicRoleReconciler {
	reader := opts.APIReader
	if reader == nil {
		reader = kube
	}
	r := &DynamicRoleReconciler{}
	r.loop = loop[*v1alpha1.DynamicRole]{
		kube: kube, opts: opts, kindStr: "DynamicRole",
		newObj: func() *v1alpha1.DynamicRole { return &v1alpha1.DynamicRole{} },
		kind:   roleKind{core: opts.Core, secrets: reader},
	}
	return r
}

// SetupWithManager registers the reconciler with mgr. Secrets are watched
// for their metadata only (the operator caches no secret data): a change
// of a Secret reconciles the DynamicRoles that read it, so a new password
// reaches the core.
func (r *DynamicRoleReconciler) SetupWithManager(mgr ctrl.Manager) error {
	err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.DynamicRole{}, roleSecretIndex,
		func(o kclient.Object) []string {
			return []string{o.(*v1alpha1.DynamicRole).Spec.Connection.SecretRef.Name}
		})
	if err != nil {
		return fmt.Errorf("index DynamicRoles by Secret: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.DynamicRole{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.rolesOf), builder.OnlyMetadata).
		Named("dynamicrole").
		WithOptions(controllerOptions(r.opts)).
		Complete(r)
}

// rolesOf lists the DynamicRoles that read the Secret o.
func (r *DynamicRoleReconciler) rolesOf(ctx context.Context, o kclient.Object) []reconcile.Request {
	var list v1alpha1.DynamicRoleList
	if err := r.kube.List(ctx, &list, kclient.InNamespace(o.GetNamespace()), kclient.MatchingFields{roleSecretIndex: o.GetName()}); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, d := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: d.Namespace, Name: d.Name}})
	}
	return out
}

// RoleMount is the mount path (without the trailing '/') of the
// DynamicRole's engine: <spec.mount or the engine's usual
// mount>/k8s/<namespace>/<name>. The "k8s" segment keeps the mount clear
// of the paths of an engine mounted at spec.mount itself (a namespace
// called "creds" must not shadow its creds/), and the namespace and name
// segments make it unique.
func RoleMount(d *v1alpha1.DynamicRole) string {
	return strings.Trim(d.MountPath(), "/") + "/k8s/" + d.Namespace + "/" + Segment(d.Namespace, d.Name)
}

// RoleName is the DynamicRole's role (and, for postgresql, connection)
// name in its engine.
func RoleName(d *v1alpha1.DynamicRole) string { return Segment(d.Namespace, d.Name) }

// RoleCredsPath is where the DynamicRole's credentials are read:
// <RoleMount>/creds/<RoleName>. It is the DynamicRole's status.coreName.
func RoleCredsPath(d *v1alpha1.DynamicRole) string {
	return RoleMount(d) + "/creds/" + RoleName(d)
}

type roleKind struct {
	core    *client.Client
	secrets kclient.Reader
}

func (roleKind) coreName(d *v1alpha1.DynamicRole) string { return RoleCredsPath(d) }

func (k roleKind) sync(ctx context.Context, d *v1alpha1.DynamicRole) (outcome, error) {
	typ, ok := engineType[d.Spec.Engine]
	if !ok {
		return outcome{}, fmt.Errorf("%w: spec.engine: unknown engine %q", errInvalidSpec, d.Spec.Engine)
	}
	secret, err := k.secret(ctx, d)
	if err != nil {
		return outcome{}, err
	}
	cfgPath, cfg, err := EngineConfig(d, secret)
	if err != nil {
		return outcome{}, err
	}
	rolePath, role, err := EngineRole(d)
	if err != nil {
		return outcome{}, err
	}
	mount := RoleMount(d)
	mounted, err := k.ensureMount(ctx, d, mount, typ)
	if err != nil {
		return outcome{}, err
	}
	// The connection and role are written every time: the core never
	// returns the connection's password, so a write is the only way to
	// be sure it holds the Secret's; both writes are idempotent.
	if _, err := k.core.Write(ctx, mount+"/"+cfgPath, cfg); err != nil {
		return outcome{}, fmt.Errorf("write %s/%s: %w", mount, cfgPath, err)
	}
	if _, err := k.core.Write(ctx, mount+"/"+rolePath, role); err != nil {
		return outcome{}, fmt.Errorf("write %s/%s: %w", mount, rolePath, err)
	}
	if leasePath, lease, ok := EngineLease(d); ok {
		if _, err := k.core.Write(ctx, mount+"/"+leasePath, lease); err != nil {
			return outcome{}, fmt.Errorf("write %s/%s: %w", mount, leasePath, err)
		}
	}
	return outcome{wrote: mounted}, nil
}

// awsDefaultUserLease is the aws engine's lease of iam_user credentials
// when config/lease sets none (core/secrets/awssts.DefaultTTL; controllers
// do not import core internals).
const awsDefaultUserLease = 3600

// EngineLease returns the mount-wide lease settings a DynamicRole needs
// besides its role, if any: for aws iam_user, whose leases come from the
// mount's config/lease rather than from the role, spec.defaultTTL and
// spec.maxTTL go there (the mount is the role's alone). Unset, the lease
// is the engine's default (capped by maxTTL) and lease_max unset, so that
// clearing the fields resets them.
func EngineLease(d *v1alpha1.DynamicRole) (string, map[string]any, bool) {
	if d.Spec.Engine != v1alpha1.EngineAWS || d.Spec.AWS == nil || d.Spec.AWS.CredentialType != v1alpha1.AWSIAMUser {
		return "", nil, false
	}
	ttl, maxTTL := durationSeconds(d.Spec.DefaultTTL), durationSeconds(d.Spec.MaxTTL)
	if ttl <= 0 {
		ttl = awsDefaultUserLease
		if maxTTL > 0 && maxTTL < ttl {
			ttl = maxTTL
		}
	}
	return "config/lease", map[string]any{"lease": ttl, "lease_max": maxTTL}, true
}

// ensureMount mounts the engine at mount unless it is there; it reports
// whether it mounted it.
func (k roleKind) ensureMount(ctx context.Context, d *v1alpha1.DynamicRole, mount, typ string) (bool, error) {
	cur, err := k.core.Read(ctx, "sys/mounts/"+mount, nil)
	switch {
	case errors.Is(err, client.ErrNotFound):
	case err != nil:
		return false, fmt.Errorf("read mount %s: %w", mount, err)
	default:
		if got, _ := cur.Data["type"].(string); got != typ {
			return false, fmt.Errorf("%w: the core has a %q engine at %s, not %q: unmount it or pick another spec.mount", errInvalidSpec, got, mount, typ)
		}
		return false, nil
	}
	_, err = k.core.Write(ctx, "sys/mounts/"+mount, map[string]any{
		"type":        typ,
		"description": fmt.Sprintf("DynamicRole %s/%s, managed by the SecretHub operator", d.Namespace, d.Name),
	})
	if err != nil {
		return false, fmt.Errorf("mount %s engine at %s: %w", typ, mount, err)
	}
	return true, nil
}

// secret reads the DynamicRole's connection Secret.
func (k roleKind) secret(ctx context.Context, d *v1alpha1.DynamicRole) (*corev1.Secret, error) {
	var s corev1.Secret
	name := d.Spec.Connection.SecretRef.Name
	err := k.secrets.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: name}, &s)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: Secret %s/%s (spec.connection.secretRef.name) not found", errDependency, d.Namespace, name)
	}
	if err != nil {
		return nil, fmt.Errorf("get Secret %s/%s: %w", d.Namespace, name, err)
	}
	return &s, nil
}

func (k roleKind) remove(ctx context.Context, d *v1alpha1.DynamicRole) error {
	mount := RoleMount(d)
	// Unmounting revokes the role's outstanding credentials, then deletes
	// the connection and the role.
	if _, err := k.core.Delete(ctx, "sys/mounts/"+mount, nil); err != nil {
		return fmt.Errorf("unmount %s: %w", mount, err)
	}
	return nil
}

// secretFields reads connection fields from the Secret: each field from
// the key spec.connection.secretRef.keys names, else its own name.
type secretFields struct {
	ref    v1alpha1.ConnectionSecretRef
	secret *corev1.Secret
}

func (s secretFields) get(field string) (string, bool) {
	v, ok := s.secret.Data[s.ref.KeyFor(field)]
	return string(v), ok
}

func (s secretFields) required(field string) (string, error) {
	v, ok := s.get(field)
	if !ok || v == "" {
		return "", fmt.Errorf("%w: Secret %s/%s has no key %q (the connection's %s)", errDependency, s.secret.Namespace, s.secret.Name, s.ref.KeyFor(field), field)
	}
	return v, nil
}

// copyOptional copies the fields the Secret has into m.
func (s secretFields) copyOptional(m map[string]any, fields ...string) {
	for _, f := range fields {
		if v, ok := s.get(f); ok && v != "" {
			m[f] = v
		}
	}
}

// boolField copies a true/false field of the Secret into m as a boolean.
func (s secretFields) boolField(m map[string]any, field string) error {
	v, ok := s.get(field)
	if !ok || v == "" {
		return nil
	}
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("%w: Secret %s/%s key %q: want true or false", errInvalidSpec, s.secret.Namespace, s.secret.Name, s.ref.KeyFor(field))
	}
	m[field] = b
	return nil
}

// EngineConfig returns the DynamicRole's connection: the path relative to
// its mount and the fields to write there, read from secret.
func EngineConfig(d *v1alpha1.DynamicRole, secret *corev1.Secret) (string, map[string]any, error) {
	s := secretFields{ref: d.Spec.Connection.SecretRef, secret: secret}
	verify := d.Spec.Connection.Verify == nil || *d.Spec.Connection.Verify
	switch d.Spec.Engine {
	case v1alpha1.EnginePostgreSQL:
		url, err := s.required("connection_url")
		if err != nil {
			return "", nil, err
		}
		cfg := map[string]any{
			"plugin_name":       "postgresql-database-plugin",
			"connection_url":    url,
			"allowed_roles":     []string{RoleName(d)},
			"verify_connection": verify,
		}
		s.copyOptional(cfg, "username", "password")
		return "config/" + RoleName(d), cfg, nil
	case v1alpha1.EngineRedis:
		cfg := map[string]any{"verify_connection": verify}
		if _, ok := s.get("address"); !ok {
			if _, err := s.required("host"); err != nil {
				return "", nil, fmt.Errorf("%w (or %q)", err, s.ref.KeyFor("address"))
			}
		}
		s.copyOptional(cfg, "address", "host", "username", "password", "ca_cert")
		if p, ok := s.get("port"); ok && p != "" {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil {
				return "", nil, fmt.Errorf("%w: Secret %s/%s key %q: want a port number", errInvalidSpec, secret.Namespace, secret.Name, s.ref.KeyFor("port"))
			}
			cfg["port"] = n
		}
		for _, f := range []string{"tls", "insecure_tls"} {
			if err := s.boolField(cfg, f); err != nil {
				return "", nil, err
			}
		}
		return "config", cfg, nil
	case v1alpha1.EngineAWS:
		cfg := map[string]any{}
		for _, f := range []string{"access_key", "secret_key"} {
			v, err := s.required(f)
			if err != nil {
				return "", nil, err
			}
			cfg[f] = v
		}
		s.copyOptional(cfg, "region", "iam_endpoint", "sts_endpoint")
		return "config/root", cfg, nil
	}
	return "", nil, fmt.Errorf("%w: spec.engine: unknown engine %q", errInvalidSpec, d.Spec.Engine)
}

// EngineRole returns the DynamicRole's role: the path relative to its
// mount and every field of the role, so that a write replaces what the
// core held (the database engine keeps fields a write leaves out).
func EngineRole(d *v1alpha1.DynamicRole) (string, map[string]any, error) {
	path := "roles/" + RoleName(d)
	ttl, maxTTL := durationSeconds(d.Spec.DefaultTTL), durationSeconds(d.Spec.MaxTTL)
	switch d.Spec.Engine {
	case v1alpha1.EnginePostgreSQL:
		p := d.Spec.PostgreSQL
		if p == nil {
			p = &v1alpha1.PostgreSQLRole{}
		}
		return path, map[string]any{
			"db_name":               RoleName(d),
			"creation_statements":   nonNil(p.CreationStatements),
			"revocation_statements": nonNil(p.RevocationStatements),
			"renew_statements":      nonNil(p.RenewStatements),
			"rollback_statements":   nonNil(p.RollbackStatements),
			"default_ttl":           ttl,
			"max_ttl":               maxTTL,
		}, nil
	case v1alpha1.EngineRedis:
		r := d.Spec.Redis
		if r == nil {
			return "", nil, fmt.Errorf("%w: spec.redis is required for engine redis", errInvalidSpec)
		}
		return path, map[string]any{
			"key_patterns":     nonNil(r.KeyPatterns),
			"channel_patterns": nonNil(r.ChannelPatterns),
			"commands":         nonNil(r.Commands),
			"default_ttl":      ttl,
			"max_ttl":          maxTTL,
		}, nil
	case v1alpha1.EngineAWS:
		a := d.Spec.AWS
		if a == nil {
			return "", nil, fmt.Errorf("%w: spec.aws is required for engine aws", errInvalidSpec)
		}
		role := map[string]any{"credential_type": string(a.CredentialType)}
		if a.PolicyDocument != "" {
			role["policy_document"] = a.PolicyDocument
		}
		if len(a.PolicyARNs) > 0 {
			role["policy_arns"] = a.PolicyARNs
		}
		if len(a.RoleARNs) > 0 {
			role["role_arns"] = a.RoleARNs
		}
		if a.UserPath != "" {
			role["user_path"] = a.UserPath
		}
		// An iam_user's TTLs go to the mount's config/lease (EngineLease).
		if ttl > 0 && a.CredentialType == v1alpha1.AWSAssumedRole {
			role["default_sts_ttl"] = ttl
		}
		if maxTTL > 0 && a.CredentialType == v1alpha1.AWSAssumedRole {
			role["max_sts_ttl"] = maxTTL
		}
		return path, role, nil
	}
	return "", nil, fmt.Errorf("%w: spec.engine: unknown engine %q", errInvalidSpec, d.Spec.Engine)
}

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}
