// Package config is the kustomize tree that installs SecretHub's operator
// on Kubernetes (crd, rbac, manager, samples, default; see
// docs/kubernetes.md). It holds no code: its tests check that the
// generated files (CRDs, RBAC, deep copy functions) match the markers they
// come from, build config/default and config/samples with kustomize, and
// apply the result to a real API server (internal/kubetest).
package config
