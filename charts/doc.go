// Package charts holds the Helm charts of SecretHub (charts/secrethub) and
// their tests: `helm lint`, `helm template` with several value sets, the
// schema refusing bad values, and the rendered manifests applied to a real
// API server with a server-side dry run. There is no Go code to import
// here.
//
// The tests run the helm binary named by $HELM, which `make test` (or
// `make helm`) builds once per machine into ~/.cache/secrethub/.
package charts
