package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	kclient "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/secrethub/secrethub/api/v1alpha1"
	"github.com/secrethub/secrethub/core/client"
)

// DefaultResyncPeriod is how often an object is synced again when nothing
// changed, so that a core object changed by hand is put back.
const DefaultResyncPeriod = 10 * time.Minute

// Event reasons beside the condition reasons of v1alpha1.
const (
	// EventDriftCorrected: the core object differed from the spec
	// although the spec had not changed, and was written again.
	EventDriftCorrected = "DriftCorrected"
	// EventDeleted: the core object was removed on delete.
	EventDeleted = "Deleted"
)

// Options are what every reconciler shares.
type Options struct {
	// Core is the core's client, carrying the operator's token.
	Core *client.Client
	// ResyncPeriod is how often an unchanged object is synced again.
	// Default DefaultResyncPeriod.
	ResyncPeriod time.Duration
	// Recorder records events on the objects; nil records none.
	Recorder EventRecorder
	// AuthMount is the core's Kubernetes auth mount below auth/ that
	// SecretBindings become roles of. Default DefaultAuthMount.
	AuthMount string
	// MaxBackoff caps the retry delay after a failed sync (core sealed or
	// down). Default DefaultMaxBackoff.
	MaxBackoff time.Duration
	// APIReader reads objects the controllers do not cache (the Secrets
	// DynamicRoles name) straight from the API server. Required for the
	// DynamicRole reconciler.
	APIReader kclient.Reader
	// AdminNamespaces are the namespaces whose SecretPolicies may grant
	// any path; others are confined to their own part of the core (see
	// checkTenantRules). Nil means DefaultAdminNamespaces.
	AdminNamespaces []string
	// Unconfined lets every namespace's SecretPolicies grant any path:
	// for single-tenant clusters where only administrators may create
	// SecretPolicies.
	Unconfined bool
}

// adminNamespaces is AdminNamespaces or its default.
func (o Options) adminNamespaces() []string {
	if o.AdminNamespaces == nil {
		return DefaultAdminNamespaces
	}
	return o.AdminNamespaces
}

// DefaultMaxBackoff is the longest wait between retries of a failed sync.
const DefaultMaxBackoff = time.Minute

func (o Options) authMount() string {
	if m := strings.Trim(o.AuthMount, "/"); m != "" {
		return m
	}
	return DefaultAuthMount
}

// controllerOptions are the controller options of every reconciler: a
// per-object exponential backoff from 500 ms to MaxBackoff.
func controllerOptions(o Options) controller.Options {
	maxDelay := o.MaxBackoff
	if maxDelay <= 0 {
		maxDelay = DefaultMaxBackoff
	}
	return controller.Options{
		RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](500*time.Millisecond, maxDelay),
	}
}

// EventRecorder records events.k8s.io Events (controller-runtime's
// manager.GetEventRecorder).
type EventRecorder = events.EventRecorder

func (o Options) resync() time.Duration {
	if o.ResyncPeriod > 0 {
		return o.ResyncPeriod
	}
	return DefaultResyncPeriod
}

// outcome is what a kind's sync reports beside an error.
type outcome struct {
	// wrote says the core object was (re)written because it differed from
	// the spec (or could not be compared).
	wrote bool
	// notReady, when set, makes Ready False with this reason and message
	// although the sync succeeded (a referenced object is missing).
	notReadyReason, notReadyMessage string
	// requeueAfter, when set, replaces the resync period for this object.
	requeueAfter time.Duration
	// message, when set, replaces the Synced and Ready messages and the
	// first sync's event note (for kinds that read the core rather than
	// write it).
	message string
}

// readOnlyKind is implemented by kinds that only read the core: their
// remove deletes nothing there, and no Deleted event is recorded.
type readOnlyKind interface{ readsCoreOnly() }

// kind is what each reconciler gives the shared loop.
type kind[T v1alpha1.Object] interface {
	// coreName names the object in the core.
	coreName(obj T) string
	// sync makes the core hold what obj says.
	sync(ctx context.Context, obj T) (outcome, error)
	// remove deletes obj's core object; a missing one is not an error.
	remove(ctx context.Context, obj T) error
}

// loop is the reconcile loop every kind shares: finalizer, sync, status
// conditions, events and requeueing.
type loop[T v1alpha1.Object] struct {
	kube    kclient.Client
	opts    Options
	newObj  func() T
	kind    kind[T]
	kindStr string
}

// errInvalidSpec marks a spec the operator itself refuses before asking
// the core (Ready False, reason Rejected, no retry until the spec changes).
var errInvalidSpec = errors.New("invalid spec")

// errDependency marks a missing referenced object (reason
// DependencyMissing; retried with backoff, and when the object appears).
var errDependency = errors.New("dependency missing")

func (l *loop[T]) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	obj := l.newObj()
	if err := l.kube.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, kclient.IgnoreNotFound(err)
	}
	if !obj.GetDeletionTimestamp().IsZero() {
		return l.finalize(ctx, obj)
	}
	if controllerutil.AddFinalizer(obj, v1alpha1.Finalizer) {
		if err := l.kube.Update(ctx, obj); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
	}
	base := obj.DeepCopyObject().(T)
	st := obj.GetStatus()
	st.CoreName = l.kind.coreName(obj)
	gen := obj.GetGeneration()
	firstSync := st.ObservedGeneration != gen || !meta.IsStatusConditionTrue(st.Conditions, v1alpha1.ConditionSynced)

	out, err := l.kind.sync(ctx, obj)
	st.ObservedGeneration = gen
	requeue := l.opts.resync()
	if out.requeueAfter > 0 {
		requeue = out.requeueAfter
	}
	result, retErr := ctrl.Result{RequeueAfter: requeue}, error(nil)
	if err != nil {
		reason, msg, retry := classify(err)
		failed := cond{metav1.ConditionFalse, reason, msg}
		setConditions(st, gen, failed, failed)
		l.event(obj, corev1.EventTypeWarning, reason, "Sync", msg)
		if retry {
			// The controller's rate limiter retries with backoff.
			result, retErr = ctrl.Result{}, fmt.Errorf("sync %s %s: %w", l.kindStr, req.NamespacedName, err)
		}
	} else {
		readyMsg, syncedMsg, firstMsg := fmt.Sprintf("%s is in effect in the core", st.CoreName),
			fmt.Sprintf("the core holds %s as the spec says", st.CoreName), fmt.Sprintf("wrote %s to the core", st.CoreName)
		if out.message != "" {
			readyMsg, syncedMsg, firstMsg = out.message, out.message, out.message
		}
		ready := cond{metav1.ConditionTrue, v1alpha1.ReasonSynced, readyMsg}
		if out.notReadyReason != "" {
			ready = cond{metav1.ConditionFalse, out.notReadyReason, out.notReadyMessage}
		}
		setConditions(st, gen, cond{metav1.ConditionTrue, v1alpha1.ReasonSynced, syncedMsg}, ready)
		switch {
		case firstSync:
			l.event(obj, corev1.EventTypeNormal, v1alpha1.ReasonSynced, "Sync", firstMsg)
		case out.wrote:
			logger.Info("core object differed from the spec: written again", "coreName", st.CoreName)
			l.event(obj, corev1.EventTypeWarning, EventDriftCorrected, "Sync", fmt.Sprintf("%s was changed in the core; written again from the spec", st.CoreName))
		}
		if out.notReadyReason != "" && !meta.IsStatusConditionFalse(base.GetStatus().Conditions, v1alpha1.ConditionReady) {
			l.event(obj, corev1.EventTypeWarning, out.notReadyReason, "Sync", out.notReadyMessage)
		}
	}
	// The whole object, not only the shared status: a kind may keep
	// fields of its own in its status (SecretSync's dataHash).
	if !equality.Semantic.DeepEqual(base, obj) {
		if err := l.kube.Status().Patch(ctx, obj, kclient.MergeFrom(base)); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, errors.Join(retErr, fmt.Errorf("update status: %w", err))
		}
	}
	return result, retErr
}

// finalize removes the core object, then the finalizer.
func (l *loop[T]) finalize(ctx context.Context, obj T) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(obj, v1alpha1.Finalizer) {
		return ctrl.Result{}, nil
	}
	name := l.kind.coreName(obj)
	if err := l.kind.remove(ctx, obj); err != nil && !errors.Is(err, client.ErrNotFound) {
		base := obj.DeepCopyObject().(T)
		reason, msg, _ := classify(err)
		msg = "deleting: " + msg
		st := obj.GetStatus()
		setConditions(st, obj.GetGeneration(), cond{metav1.ConditionFalse, reason, msg}, cond{metav1.ConditionFalse, v1alpha1.ReasonDeleting, msg})
		l.event(obj, corev1.EventTypeWarning, reason, "Delete", msg)
		if !equality.Semantic.DeepEqual(base.GetStatus(), st) {
			if perr := l.kube.Status().Patch(ctx, obj, kclient.MergeFrom(base)); perr != nil && !apierrors.IsNotFound(perr) {
				log.FromContext(ctx).Error(perr, "update status")
			}
		}
		// Retried with backoff whatever the error: the object must not
		// go while its core object stays.
		return ctrl.Result{}, fmt.Errorf("remove %s from the core: %w", name, err)
	}
	if _, ro := l.kind.(readOnlyKind); !ro {
		l.event(obj, corev1.EventTypeNormal, EventDeleted, "Delete", fmt.Sprintf("removed %s from the core", name))
	}
	base := obj.DeepCopyObject().(T)
	controllerutil.RemoveFinalizer(obj, v1alpha1.Finalizer)
	if err := l.kube.Patch(ctx, obj, kclient.MergeFrom(base)); err != nil {
		return ctrl.Result{}, kclient.IgnoreNotFound(fmt.Errorf("remove finalizer: %w", err))
	}
	return ctrl.Result{}, nil
}

// cond is one condition's status, reason and message.
type cond struct {
	status          metav1.ConditionStatus
	reason, message string
}

func setConditions(st *v1alpha1.Status, gen int64, synced, ready cond) {
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionSynced, Status: synced.status, Reason: synced.reason,
		Message: truncate(synced.message), ObservedGeneration: gen,
	})
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: ready.status, Reason: ready.reason,
		Message: truncate(ready.message), ObservedGeneration: gen,
	})
}

func (l *loop[T]) event(obj T, typ, reason, action, note string) {
	if l.opts.Recorder != nil {
		l.opts.Recorder.Eventf(obj, nil, typ, reason, action, "%s", truncate(note))
	}
}

// truncate keeps condition messages and event notes within what the API
// server accepts (32 KiB for a condition message; 1 KiB for an event note).
func truncate(s string) string {
	const max = 1000
	if len(s) <= max {
		return s
	}
	return s[:max-3] + "..."
}

// classify maps a sync error to a condition reason, its message, and
// whether to retry with backoff. A spec the core refuses (400) or the
// operator refuses is not retried until the spec changes (or the resync):
// retrying could not help.
func classify(err error) (reason, msg string, retry bool) {
	msg = err.Error()
	var re *client.ResponseError
	switch {
	case errors.Is(err, errInvalidSpec):
		return v1alpha1.ReasonRejected, msg, false
	case errors.Is(err, errKube):
		return ReasonKubernetesAPI, msg, true
	case errors.Is(err, errDependency):
		return v1alpha1.ReasonDependencyMissing, msg, true
	case errors.Is(err, client.ErrSealed):
		return v1alpha1.ReasonCoreSealed, "the core is sealed: " + msg, true
	case errors.Is(err, client.ErrUnreachable):
		return v1alpha1.ReasonCoreUnavailable, msg, true
	case errors.As(err, &re) && re.StatusCode == http.StatusBadRequest:
		return v1alpha1.ReasonRejected, "the core refused the object: " + strings.Join(re.Errors, "; "), false
	case errors.Is(err, client.ErrPermissionDenied):
		return ReasonPermissionDenied, "the operator's core token may not do this: " + msg, true
	}
	return v1alpha1.ReasonCoreUnavailable, msg, true
}

// ReasonPermissionDenied: the core refused the operator's token (403);
// the operator's core policy lacks a capability.
const ReasonPermissionDenied = "PermissionDenied"

// Leader election (the operator's own namespace only; kustomize sets the
// namespace):
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=secrethub-system,resources=leases,verbs=get;list;watch;create;update;patch;delete

// SetupAll registers the five reconcilers with mgr.
func SetupAll(mgr ctrl.Manager, opts Options) error {
	if opts.APIReader == nil {
		opts.APIReader = mgr.GetAPIReader()
	}
	if opts.Recorder == nil {
		opts.Recorder = mgr.GetEventRecorder("secrethub-operator")
	}
	kube := mgr.GetClient()
	for _, r := range []interface{ SetupWithManager(ctrl.Manager) error }{
		NewSecretPolicyReconciler(kube, opts),
		NewDynamicRoleReconciler(kube, opts),
		NewAgentTemplateReconciler(kube, opts),
		NewSecretBindingReconciler(kube, opts),
		NewSecretSyncReconciler(kube, opts),
	} {
		if err := r.SetupWithManager(mgr); err != nil {
			return err
		}
	}
	return nil
}
