package kubetest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// widgetCRD is a minimal CustomResourceDefinition that Start installs from
// a directory.
const widgetCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.kubetest.secrethub.io
spec:
  group: kubetest.secrethub.io
  names:
    kind: Widget
    listKind: WidgetList
    plural: widgets
    singular: widget
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size:
                type: integer
                minimum: 1
`

// TestControlPlane starts one control plane and checks what the packages
// that use it rely on: CRDs from a directory, the controller-runtime client,
// and service-account tokens that the TokenRequest API issues for an
// audience and the TokenReview API verifies for that audience only (what
// the core's Kubernetes auth method does).
func TestControlPlane(t *testing.T) {
	crdDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(crdDir, "widget.yaml"), []byte(widgetCRD), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Start(t, crdDir)
	c := Client(t, cfg, nil)
	cs := Clientset(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const ns, sa, audience = "kubetest", "workload", "secrethub-test"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	if err := c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns}}); err != nil {
		t.Fatalf("creating service account: %v", err)
	}

	t.Run("crd", func(t *testing.T) {
		widget := func(name string, size int64) *unstructured.Unstructured {
			w := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"size": size}}}
			w.SetGroupVersionKind(schema.GroupVersionKind{Group: "kubetest.secrethub.io", Version: "v1", Kind: "Widget"})
			w.SetNamespace(ns)
			w.SetName(name)
			return w
		}
		if err := c.Create(ctx, widget("ok", 2)); err != nil {
			t.Fatalf("creating a Widget: %v", err)
		}
		bad := widget("bad", 0)
		err := c.Create(ctx, bad)
		if err == nil || !strings.Contains(err.Error(), "spec.size") {
			t.Fatalf("creating a Widget with size 0: err = %v, want a validation error naming spec.size", err)
		}
	})

	t.Run("token review", func(t *testing.T) {
		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("requesting a token: %v", err)
		}
		jwt := tr.Status.Token
		if jwt == "" {
			t.Fatal("TokenRequest returned an empty token")
		}

		wantUser := "system:serviceaccount:" + ns + ":" + sa
		for name, tc := range map[string]struct {
			token     string
			audiences []string
			wantAuth  bool
		}{
			"own audience":   {token: jwt, audiences: []string{audience}, wantAuth: true},
			"other audience": {token: jwt, audiences: []string{"someone-else"}, wantAuth: false},
			"tampered token": {token: jwt[:len(jwt)-4] + flip(jwt[len(jwt)-4:]), audiences: []string{audience}, wantAuth: false},
		} {
			t.Run(name, func(t *testing.T) {
				review, err := cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
					Spec: authenticationv1.TokenReviewSpec{Token: tc.token, Audiences: tc.audiences},
				}, metav1.CreateOptions{})
				if err != nil {
					t.Fatalf("TokenReview: %v", err)
				}
				st := review.Status
				if st.Authenticated != tc.wantAuth {
					t.Fatalf("authenticated = %v (error %q), want %v", st.Authenticated, st.Error, tc.wantAuth)
				}
				if !tc.wantAuth {
					return
				}
				if st.User.Username != wantUser {
					t.Errorf("username = %q, want %q", st.User.Username, wantUser)
				}
				if !slices.Contains(st.Audiences, audience) {
					t.Errorf("audiences = %q, want %q among them", st.Audiences, audience)
				}
				if !slices.Contains(st.User.Groups, "system:serviceaccounts:"+ns) {
					t.Errorf("groups = %q, want system:serviceaccounts:%s among them", st.User.Groups, ns)
				}
			})
		}
	})
}

// flip changes every character of s, keeping it in the base64url alphabet.
func flip(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
	}
	return string(b)
}

func TestAssetsDir(t *testing.T) {
	full := t.TempDir()
	noEtcd := t.TempDir()
	notExec := t.TempDir()
	write := func(dir, name string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(full, "kube-apiserver", 0o755)
	write(full, "etcd", 0o755)
	write(noEtcd, "kube-apiserver", 0o755)
	write(notExec, "kube-apiserver", 0o755)
	write(notExec, "etcd", 0o644)

	for name, tc := range map[string]struct {
		env     string
		wantErr string // "" for success
	}{
		"unset":          {env: "", wantErr: EnvAssets + " is not set"},
		"missing etcd":   {env: noEtcd, wantErr: "etcd"},
		"not executable": {env: notExec, wantErr: "not an executable"},
		"complete":       {env: full},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(EnvAssets, tc.env)
			dir, err := AssetsDir()
			if tc.wantErr == "" {
				if err != nil || dir != tc.env {
					t.Fatalf("AssetsDir() = %q, %v; want %q, nil", dir, err, tc.env)
				}
				return
			}
			if err == nil {
				t.Fatalf("AssetsDir() = %q, nil; want an error", dir)
			}
			for _, want := range []string{tc.wantErr, "make envtest-assets"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 8}
	for _, s := range []string{"abc", "defgh", "ijklmnopqrs", "t"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got, want := b.String(), "mnopqrst"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}
