package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	kclient "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/secrethub/secrethub/api/v1alpha1"
	"github.com/secrethub/secrethub/core/client"
)

// DefaultAuthMount is the Kubernetes auth method's mount below auth/.
const DefaultAuthMount = "kubernetes"

// bindingPolicyIndex indexes SecretBindings by the SecretPolicies they
// name.
const bindingPolicyIndex = "spec.policies"

// SecretBindingReconciler writes each SecretBinding into the core as the
// Kubernetes auth role auth/<mount>/role/<CoreName(namespace, name)>: the
// binding's service accounts, in its namespace only, get the core
// policies of the SecretPolicies it names.
type SecretBindingReconciler struct {
	loop[*v1alpha1.SecretBinding]
}

// +kubebuilder:rbac:groups=secrethub.io,resources=secretbindings,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=secrethub.io,resources=secretbindings/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=secrethub.io,resources=secretbindings/finalizers,verbs=update
// +kubebuilder:rbac:groups=secrethub.io,resources=secretpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// NewSecretBindingReconciler returns the SecretBinding reconciler.
func NewSecretBindingReconciler(kube kclient.Client, opts Options) *SecretBindingReconciler {
	r := &SecretBindingReconciler{}
	r.loop = loop[*v1alpha1.SecretBinding]{
		kube: kube, opts: opts, kindStr: "SecretBinding",
		newObj: func() *v1alpha1.SecretBinding { return &v1alpha1.SecretBinding{} },
		kind:   bindingKind{core: opts.Core, kube: kube, mount: opts.authMount()},
	}
	return r
}

// SetupWithManager registers the reconciler with mgr. A change of a
// SecretPolicy (created, deleted, its status) reconciles the bindings
// naming it, so their Ready condition follows.
func (r *SecretBindingReconciler) SetupWithManager(mgr ctrl.Manager) error {
	err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.SecretBinding{}, bindingPolicyIndex,
		func(o kclient.Object) []string { return o.(*v1alpha1.SecretBinding).Spec.Policies })
	if err != nil {
		return fmt.Errorf("index SecretBindings by policy: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.SecretBinding{}).
		Watches(&v1alpha1.SecretPolicy{}, handler.EnqueueRequestsFromMapFunc(r.bindingsOf)).
		Named("secretbinding").
		WithOptions(controllerOptions(r.opts)).
		Complete(r)
}

// bindingsOf lists the SecretBindings that name the SecretPolicy o.
func (r *SecretBindingReconciler) bindingsOf(ctx context.Context, o kclient.Object) []reconcile.Request {
	var list v1alpha1.SecretBindingList
	if err := r.kube.List(ctx, &list, kclient.InNamespace(o.GetNamespace()), kclient.MatchingFields{bindingPolicyIndex: o.GetName()}); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, b := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: b.Namespace, Name: b.Name}})
	}
	return out
}

type bindingKind struct {
	core  *client.Client
	kube  kclient.Client
	mount string
}

func (bindingKind) coreName(b *v1alpha1.SecretBinding) string {
	return CoreName(b.Namespace, b.Name)
}

func (k bindingKind) rolePath(name string) string {
	return "auth/" + k.mount + "/role/" + name
}

// AuthRole is the Kubernetes auth role of a SecretBinding: its fields as
// the core's auth/kubernetes/role/:name takes them.
func AuthRole(b *v1alpha1.SecretBinding) map[string]any {
	policies := make([]string, 0, len(b.Spec.Policies))
	for _, p := range b.Spec.Policies {
		policies = append(policies, CoreName(b.Namespace, p))
	}
	return map[string]any{
		"bound_service_account_names":      slices.Clone(b.Spec.ServiceAccounts),
		"bound_service_account_namespaces": []string{b.Namespace},
		"token_policies":                   policies,
		"token_ttl":                        durationSeconds(b.Spec.TokenTTL),
		"token_max_ttl":                    durationSeconds(b.Spec.TokenMaxTTL),
		"audience":                         b.Spec.Audience,
	}
}

func (k bindingKind) sync(ctx context.Context, b *v1alpha1.SecretBinding) (outcome, error) {
	name := k.coreName(b)
	want := AuthRole(b)
	cur, err := k.core.Read(ctx, k.rolePath(name), nil)
	switch {
	case errors.Is(err, client.ErrNotFound):
	case err != nil:
		return outcome{}, fmt.Errorf("read auth role %s: %w", name, err)
	case sameFields(cur.Data, want):
		return k.readiness(ctx, b)
	}
	if _, err := k.core.Write(ctx, k.rolePath(name), want); err != nil {
		return outcome{}, fmt.Errorf("write auth role %s: %w", name, err)
	}
	out, err := k.readiness(ctx, b)
	out.wrote = true
	return out, err
}

// readiness checks that every SecretPolicy the binding names exists and
// is Ready: until then a token of the role lacks some of its policies.
func (k bindingKind) readiness(ctx context.Context, b *v1alpha1.SecretBinding) (outcome, error) {
	var missing, notReady []string
	for _, name := range b.Spec.Policies {
		var p v1alpha1.SecretPolicy
		err := k.kube.Get(ctx, types.NamespacedName{Namespace: b.Namespace, Name: name}, &p)
		switch {
		case apierrors.IsNotFound(err):
			missing = append(missing, name)
		case err != nil:
			return outcome{}, fmt.Errorf("get SecretPolicy %s: %w", name, err)
		case !p.DeletionTimestamp.IsZero():
			missing = append(missing, name)
		case !meta.IsStatusConditionTrue(p.Status.Conditions, v1alpha1.ConditionReady):
			notReady = append(notReady, name)
		}
	}
	var msg []string
	if len(missing) > 0 {
		msg = append(msg, "SecretPolicies not found in namespace "+b.Namespace+": "+strings.Join(missing, ", "))
	}
	if len(notReady) > 0 {
		msg = append(msg, "SecretPolicies not Ready: "+strings.Join(notReady, ", "))
	}
	if len(msg) > 0 {
		return outcome{notReadyReason: v1alpha1.ReasonDependencyMissing, notReadyMessage: strings.Join(msg, "; ")}, nil
	}
	return outcome{}, nil
}

func (k bindingKind) remove(ctx context.Context, b *v1alpha1.SecretBinding) error {
	name := k.coreName(b)
	if _, err := k.core.Delete(ctx, k.rolePath(name), nil); err != nil {
		return fmt.Errorf("delete auth role %s: %w", name, err)
	}
	return nil
}

// durationSeconds is d in whole seconds, 0 when unset (the core's
// default).
func durationSeconds(d *metav1.Duration) int64 {
	if d == nil {
		return 0
	}
	return int64(d.Duration / time.Second)
}

// sameFields reports whether every field of want has the same value in
// got, compared as JSON (so numbers, lists and strings of either side
// compare by value).
func sameFields(got, want map[string]any) bool {
	for k, w := range want {
		wb, err1 := json.Marshal(w)
		gb, err2 := json.Marshal(got[k])
		if err1 != nil || err2 != nil || string(wb) != string(gb) {
			return false
		}
	}
	return true
}
