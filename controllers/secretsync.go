package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	kclient "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/secrethub/secrethub/api/v1alpha1"
	"github.com/secrethub/secrethub/core/client"
	"github.com/secrethub/secrethub/core/wire"
)

// RestartedAtAnnotation is the pod template annotation a SecretSync sets
// on its rolloutRestart workloads when the Secret's data changes, as
// `kubectl rollout restart` sets kubectl.kubernetes.io/restartedAt.
const RestartedAtAnnotation = "secrethub.io/restartedAt"

// ManagedByLabel and ManagedByValue mark the Secrets a SecretSync writes.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "secrethub"
)

// DefaultRefreshInterval is how often a SecretSync reads its core path
// when spec.refreshInterval is not set.
const DefaultRefreshInterval = time.Minute

// Event reasons of SecretSync.
const (
	// EventSecretUpdated: the Secret's data was changed to follow the
	// core.
	EventSecretUpdated = "SecretUpdated"
	// EventRolloutRestarted: a rolloutRestart workload was restarted.
	EventRolloutRestarted = "RolloutRestarted"
	// EventRolloutTargetMissing: a rolloutRestart workload does not exist
	// (nothing to restart; it reads the new Secret when created).
	EventRolloutTargetMissing = "RolloutTargetMissing"
)

// ReasonKubernetesAPI: the Kubernetes API server refused or failed a
// write of the operator (a conflict, a quota); retried with backoff.
const ReasonKubernetesAPI = "KubernetesAPIError"

// errKube marks a failed Kubernetes API call (reason ReasonKubernetesAPI).
var errKube = errors.New("kubernetes API")

// SecretSyncReconciler keeps each SecretSync's Kubernetes Secret in step
// with a KV secret of the core, and restarts the workloads it names when
// the data changes. It reads the core at spec.refreshInterval: the
// operator holds no agent WebSocket to be told of changes, and one read
// of one KV path a minute per SecretSync is cheap for the core.
type SecretSyncReconciler struct {
	loop[*v1alpha1.SecretSync]
}

// +kubebuilder:rbac:groups=secrethub.io,resources=secretsyncs,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=secrethub.io,resources=secretsyncs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=secrethub.io,resources=secretsyncs/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// NewSecretSyncReconciler returns the SecretSync reconciler.
// opts.APIReader reads the Secrets it writes (they are not cached).
func NewSecretSyncReconciler(kube kclient.Client, opts Options) *SecretSyncReconciler {
	reader := opts.APIReader
	if reader == nil {
		reader = kube
	}
	r := &SecretSyncReconciler{}
	r.loop = loop[*v1alpha1.SecretSync]{
		kube: kube, opts: opts, kindStr: "SecretSync",
		newObj: func() *v1alpha1.SecretSync { return &v1alpha1.SecretSync{} },
		kind:   syncKind{kube: kube, reader: reader, opts: opts, now: time.Now},
	}
	return r
}

// SetupWithManager registers the reconciler with mgr. The Secrets it
// owns are watched by metadata only, so that a Secret edited or deleted by
// hand is put back without caching every Secret of the cluster.
func (r *SecretSyncReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.SecretSync{}).
		Owns(&corev1.Secret{}, builder.OnlyMetadata).
		Named("secretsync").
		WithOptions(controllerOptions(r.opts)).
		Complete(r)
}

type syncKind struct {
	kube   kclient.Client
	reader kclient.Reader
	opts   Options
	now    func() time.Time
}

func (syncKind) readsCoreOnly() {}

func (syncKind) coreName(s *v1alpha1.SecretSync) string { return s.Spec.Path }

// secretName is the Secret a SecretSync writes.
func secretName(s *v1alpha1.SecretSync) string {
	if s.Spec.SecretName != "" {
		return s.Spec.SecretName
	}
	return s.Name
}

func refreshInterval(s *v1alpha1.SecretSync) time.Duration {
	if d := s.Spec.RefreshInterval; d != nil && d.Duration > 0 {
		return d.Duration
	}
	return DefaultRefreshInterval
}

func (k syncKind) sync(ctx context.Context, s *v1alpha1.SecretSync) (outcome, error) {
	path := s.Spec.Path
	if !k.opts.Unconfined && !slices.Contains(k.opts.adminNamespaces(), s.Namespace) && !tenantPath(s.Namespace, path) {
		return outcome{}, fmt.Errorf("%w: spec.path %q: a SecretSync of namespace %s may only read paths below secrets/%s/ (the admin namespaces %s may read any path)",
			errInvalidSpec, path, s.Namespace, s.Namespace, strings.Join(k.opts.adminNamespaces(), ", "))
	}
	version, data, err := k.readKV(ctx, path)
	if err != nil {
		return outcome{}, err
	}
	want, err := secretData(path, data, s.Spec.Keys)
	if err != nil {
		return outcome{}, err
	}
	hash := dataHash(want)
	name := secretName(s)
	if err := k.writeSecret(ctx, s, name, want); err != nil {
		return outcome{}, err
	}
	// Restart when the data differs from what was last synced (not on the
	// first sync: the workloads read the Secret when they start). The
	// hash is recorded only after every restart, so a failed restart is
	// retried.
	if prev := s.Status.DataHash; prev != "" && prev != hash && len(s.Spec.RolloutRestart) > 0 {
		if err := k.restart(ctx, s); err != nil {
			return outcome{}, err
		}
		now := metav1.NewTime(k.now())
		s.Status.LastRolloutTime = &now
	}
	s.Status.DataHash = hash
	s.Status.LastSyncedVersion = version
	return outcome{
		requeueAfter: refreshInterval(s),
		message:      fmt.Sprintf("Secret %s holds version %d of %s", name, version, path),
	}, nil
}

// readKV reads the latest version of the KV secret at path: its metadata
// first, then that version, so the version reported goes with the data.
// A path that answers with a lease (dynamic credentials) is refused and
// the lease revoked.
func (k syncKind) readKV(ctx context.Context, path string) (int64, map[string]any, error) {
	md, err := k.read(ctx, path, url.Values{"metadata": {"true"}})
	if err != nil {
		return 0, nil, err
	}
	version, err := strconv.ParseInt(fmt.Sprint(md.Data["current_version"]), 10, 64)
	if err != nil || version <= 0 {
		return 0, nil, fmt.Errorf("%w: spec.path %q is not a KV secret with a version", errInvalidSpec, path)
	}
	resp, err := k.read(ctx, path, url.Values{"version": {strconv.FormatInt(version, 10)}})
	if err != nil {
		return 0, nil, err
	}
	return version, resp.Data, nil
}

func (k syncKind) read(ctx context.Context, path string, q url.Values) (*wire.Response, error) {
	resp, err := k.opts.Core.Read(ctx, path, q)
	switch {
	case errors.Is(err, client.ErrNotFound):
		return nil, fmt.Errorf("%w: spec.path %q: no secret there in the core", errDependency, path)
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", path, err)
	case resp.LeaseID != "":
		if _, rerr := k.opts.Core.Write(ctx, "sys/leases/revoke", map[string]any{"lease_id": resp.LeaseID}); rerr != nil {
			log.FromContext(ctx).Error(rerr, "revoke the lease of a refused SecretSync path", "path", path)
		}
		return nil, fmt.Errorf("%w: spec.path %q issues leased (dynamic) credentials; a SecretSync copies KV secrets only (use the agent for dynamic credentials)", errInvalidSpec, path)
	}
	return resp, nil
}

// secretData converts the core secret's key/values into a Secret's data:
// keys maps core keys to Secret keys (nil: every key as is); strings are
// copied as they are, other JSON values (numbers, booleans, objects) as
// their JSON text.
func secretData(path string, data map[string]any, keys map[string]v1alpha1.SecretKey) (map[string][]byte, error) {
	if keys == nil {
		keys = make(map[string]v1alpha1.SecretKey, len(data))
		for k := range data {
			keys[k] = v1alpha1.SecretKey(k)
		}
	}
	out := make(map[string][]byte, len(keys))
	for ck, k := range keys {
		sk := string(k)
		if _, dup := out[sk]; dup {
			return nil, fmt.Errorf("%w: spec.keys: two core keys map to the Secret key %q", errInvalidSpec, sk)
		}
		v, ok := data[ck]
		if !ok {
			return nil, fmt.Errorf("%w: spec.keys: the secret at %s has no key %q", errDependency, path, ck)
		}
		if errs := validation.IsConfigMapKey(sk); len(errs) > 0 {
			return nil, fmt.Errorf("%w: key %q of %s is not a valid Secret key (%s): map it with spec.keys", errInvalidSpec, sk, path, strings.Join(errs, "; "))
		}
		switch v := v.(type) {
		case string:
			out[sk] = []byte(v)
		case json.Number:
			out[sk] = []byte(v.String())
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("%w: encode key %q of %s: %w", errInvalidSpec, ck, path, err)
			}
			out[sk] = b
		}
	}
	return out, nil
}

// dataHash is "sha256:" and the hex SHA-256 of data, keys sorted, each
// key and value length-prefixed.
func dataHash(data map[string][]byte) string {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	var n [8]byte
	for _, k := range keys {
		for _, b := range [][]byte{[]byte(k), data[k]} {
			binary.BigEndian.PutUint64(n[:], uint64(len(b)))
			h.Write(n[:])
			h.Write(b)
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// writeSecret creates the Secret or updates it when its data (or label)
// differs; an equal Secret is not written.
func (k syncKind) writeSecret(ctx context.Context, s *v1alpha1.SecretSync, name string, want map[string][]byte) error {
	cur := &corev1.Secret{}
	err := k.reader.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: name}, cur)
	if apierrors.IsNotFound(err) {
		sec := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: name, Labels: map[string]string{ManagedByLabel: ManagedByValue}},
			Type:       corev1.SecretTypeOpaque,
			Data:       want,
		}
		if err := controllerutil.SetControllerReference(s, sec, k.kube.Scheme()); err != nil {
			return fmt.Errorf("%w: owner reference on Secret %s: %w", errKube, name, err)
		}
		if err := k.kube.Create(ctx, sec); err != nil {
			return fmt.Errorf("%w: create Secret %s: %w", errKube, name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: get Secret %s: %w", errKube, name, err)
	}
	if !metav1.IsControlledBy(cur, s) {
		return fmt.Errorf("%w: spec.secretName: Secret %s exists and is not managed by this SecretSync; the operator leaves it alone", errInvalidSpec, name)
	}
	if sameData(cur.Data, want) && cur.Labels[ManagedByLabel] == ManagedByValue {
		return nil
	}
	cur.Data = want
	cur.StringData = nil
	if cur.Labels == nil {
		cur.Labels = map[string]string{}
	}
	cur.Labels[ManagedByLabel] = ManagedByValue
	if err := k.kube.Update(ctx, cur); err != nil {
		return fmt.Errorf("%w: update Secret %s: %w", errKube, name, err)
	}
	k.event(s, corev1.EventTypeNormal, EventSecretUpdated, fmt.Sprintf("updated Secret %s from %s", name, s.Spec.Path))
	return nil
}

func sameData(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || string(v) != string(w) {
			return false
		}
	}
	return true
}

// restart patches the pod template of each rolloutRestart workload with
// RestartedAtAnnotation, which rolls its pods. A missing workload is
// skipped with a warning event.
func (k syncKind) restart(ctx context.Context, s *v1alpha1.SecretSync) error {
	at := k.now().UTC().Format(time.RFC3339Nano)
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{RestartedAtAnnotation: at}},
	}}})
	if err != nil {
		return fmt.Errorf("encode restart patch: %w", err)
	}
	for i, t := range s.Spec.RolloutRestart {
		var obj kclient.Object
		meta := metav1.ObjectMeta{Namespace: s.Namespace, Name: t.Name}
		switch t.Kind {
		case v1alpha1.RolloutDeployment:
			obj = &appsv1.Deployment{ObjectMeta: meta}
		case v1alpha1.RolloutStatefulSet:
			obj = &appsv1.StatefulSet{ObjectMeta: meta}
		case v1alpha1.RolloutDaemonSet:
			obj = &appsv1.DaemonSet{ObjectMeta: meta}
		default:
			return fmt.Errorf("%w: spec.rolloutRestart[%d].kind %q: want Deployment, StatefulSet or DaemonSet", errInvalidSpec, i, t.Kind)
		}
		err := k.kube.Patch(ctx, obj, kclient.RawPatch(types.MergePatchType, patch))
		switch {
		case apierrors.IsNotFound(err):
			k.event(s, corev1.EventTypeWarning, EventRolloutTargetMissing, fmt.Sprintf("spec.rolloutRestart[%d]: %s %s not found; nothing to restart", i, t.Kind, t.Name))
		case err != nil:
			return fmt.Errorf("%w: restart %s %s: %w", errKube, t.Kind, t.Name, err)
		default:
			k.event(s, corev1.EventTypeNormal, EventRolloutRestarted, fmt.Sprintf("restarted %s %s: Secret %s changed", t.Kind, t.Name, secretName(s)))
		}
	}
	return nil
}

func (k syncKind) event(s *v1alpha1.SecretSync, typ, reason, note string) {
	if k.opts.Recorder != nil {
		k.opts.Recorder.Eventf(s, nil, typ, reason, "Sync", "%s", truncate(note))
	}
}

// remove deletes nothing: a SecretSync only reads the core, and its Secret
// is garbage-collected through its owner reference.
func (syncKind) remove(context.Context, *v1alpha1.SecretSync) error { return nil }
