package controllers_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	kclient "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/secrethub/secrethub/api/v1alpha1"
	"github.com/secrethub/secrethub/controllers"
	"github.com/secrethub/secrethub/core"
	"github.com/secrethub/secrethub/core/client"
	"github.com/secrethub/secrethub/internal/coretest"
	"github.com/secrethub/secrethub/internal/kubetest"
	"github.com/secrethub/secrethub/internal/operator"
)

// crdDir holds the CRDs generated from api/v1alpha1.
const crdDir = "../config/crd/bases"

// resync is the operator's resync period in these tests: short, so that
// drift is put back quickly.
const resync = 2 * time.Second

// wait bounds every poll.
const wait = 90 * time.Second

// suite is a real API server with the CRDs, a real core (in-process, inmem
// storage, over HTTP), and the operator's manager running against both.
type suite struct {
	t       *testing.T
	cfg     *rest.Config
	kube    kclient.Client
	core    *client.Client // root token
	coreURL string
	unseal  string
}

func newSuite(t *testing.T) *suite {
	t.Helper()
	cfg := kubetest.Start(t, crdDir)
	scheme, err := operator.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	s := &suite{t: t, cfg: cfg, kube: kubetest.Client(t, cfg, scheme)}

	env := coretest.Start(t, core.Config{})
	s.core, s.coreURL, s.unseal = env.Root, env.RESTURL, env.UnsealKey

	// The operator's own client, built as `secrethub operator` builds it.
	opCore, _, err := operator.CoreClient(operator.Options{CoreAddress: env.RESTURL, Token: env.RootToken})
	if err != nil {
		t.Fatal(err)
	}
	skip := true
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:     scheme,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: &skip},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := controllers.SetupAll(mgr, controllers.Options{Core: opCore, ResyncPeriod: resync, MaxBackoff: time.Second}); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return s
}

// namespace creates a namespace of its own for a test.
func (s *suite) namespace(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "t-" + hex.EncodeToString(b)
	if err := s.kube.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// eventually polls f until it returns nil, failing the test with f's last
// error after the deadline.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %v", what, wait, err)
		}
		<-tick.C
	}
}

// condition waits until obj's condition typ has status and reason at obj's
// current generation (observedGeneration included), and returns it.
func (s *suite) condition(t *testing.T, obj v1alpha1.Object, typ string, status metav1.ConditionStatus, reason string) metav1.Condition {
	t.Helper()
	var got metav1.Condition
	key := types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}
	eventually(t, fmt.Sprintf("%s %s=%s (%s)", key, typ, status, reason), func() error {
		if err := s.kube.Get(context.Background(), key, obj); err != nil {
			return err
		}
		st := obj.GetStatus()
		c := meta.FindStatusCondition(st.Conditions, typ)
		switch {
		case c == nil:
			return fmt.Errorf("no %s condition: %+v", typ, st)
		case c.Status != status || c.Reason != reason:
			return fmt.Errorf("%s is %s (%s): %s", typ, c.Status, c.Reason, c.Message)
		case c.ObservedGeneration != obj.GetGeneration() || st.ObservedGeneration != obj.GetGeneration():
			return fmt.Errorf("generation %d, observed %d (condition %d)", obj.GetGeneration(), st.ObservedGeneration, c.ObservedGeneration)
		}
		got = *c
		return nil
	})
	return got
}

func (s *suite) ready(t *testing.T, obj v1alpha1.Object) {
	t.Helper()
	s.condition(t, obj, v1alpha1.ConditionSynced, metav1.ConditionTrue, v1alpha1.ReasonSynced)
	s.condition(t, obj, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSynced)
}

// gone deletes obj and waits until it is gone from the API server (its
// finalizer removed) and until coreGone holds.
func (s *suite) gone(t *testing.T, obj kclient.Object, corePath string) {
	t.Helper()
	ctx := context.Background()
	if err := s.kube.Delete(ctx, obj); err != nil {
		t.Fatal(err)
	}
	key := types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}
	eventually(t, "object deleted", func() error {
		err := s.kube.Get(ctx, key, obj)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (finalizers %v): %v", obj.GetFinalizers(), err)
	})
	if _, err := s.core.Read(ctx, corePath, nil); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("%s after delete: %v, want not found", corePath, err)
	}
}

// update applies change to the latest obj, retrying on conflicts.
func (s *suite) update(t *testing.T, obj kclient.Object, change func()) {
	t.Helper()
	ctx := context.Background()
	key := types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}
	eventually(t, "update", func() error {
		if err := s.kube.Get(ctx, key, obj); err != nil {
			return err
		}
		change()
		return s.kube.Update(ctx, obj)
	})
}

func (s *suite) policyDoc(t *testing.T, name string) string {
	t.Helper()
	resp, err := s.core.Read(context.Background(), "sys/policies/acl/"+name, nil)
	if err != nil {
		t.Fatalf("read policy %s: %v", name, err)
	}
	doc, _ := resp.Data["policy"].(string)
	return doc
}

func hasFinalizer(obj kclient.Object) bool {
	for _, f := range obj.GetFinalizers() {
		if f == v1alpha1.Finalizer {
			return true
		}
	}
	return false
}

func contains(s, sub string) error {
	if !strings.Contains(s, sub) {
		return fmt.Errorf("%q does not contain %q", s, sub)
	}
	return nil
}
