# SecretHub. Quick start: `make run` (dev server) and `make test`.
SHELL := bash
GO ?= go
BIN := bin/secrethub
CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/secrethub
STATICCHECK_VERSION ?= v0.6.1
STATICCHECK := $(CACHE)/staticcheck-$(STATICCHECK_VERSION)/staticcheck
LOAD_DURATION ?= 3s
# envtest's control plane (kube-apiserver, etcd), built once per machine by
# hack/envtest-assets.sh into the cache; controller-runtime's envtest (and
# internal/kubetest) find it through KUBEBUILDER_ASSETS.
ENVTEST_K8S_VERSION ?= 1.37.2
ENVTEST_ETCD_VERSION ?= 3.7.3
export KUBEBUILDER_ASSETS := $(CACHE)/envtest-$(ENVTEST_K8S_VERSION)
export SECRETHUB_TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable

.PHONY: build run test test-services envtest-assets bench bench-http bench-agents lint vet fmt fuzz clean

build: ## Build bin/secrethub and the slim bin/secrethub-agent
	$(GO) build -o $(BIN) ./cmd/secrethub
	$(GO) build -o bin/secrethub-agent ./cmd/secrethub-agent

run: build ## Start the core in dev mode on 127.0.0.1:4000
	./$(BIN) server -dev

test-services: ## Make sure Postgres is reachable (start or install it)
	./hack/test-services.sh

envtest-assets: ## Build kube-apiserver and etcd for envtest into KUBEBUILDER_ASSETS (once per machine)
	KUBE_VERSION=$(ENVTEST_K8S_VERSION) ETCD_VERSION=$(ENVTEST_ETCD_VERSION) \
	  ENVTEST_ASSETS_DIR=$(KUBEBUILDER_ASSETS) ./hack/envtest-assets.sh

test: test-services envtest-assets vet ## Run every test, with the race detector
	GORACE=atexit_sleep_ms=0 $(GO) test -race -count=1 ./...

bench: test-services build ## Run the benchmarks, then load the HTTP API against a trivial handler
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...
	$(GO) run ./hack/loadgen -bin $(BIN) -duration $(LOAD_DURATION) -concurrency 1,16,64

bench-http: test-services build ## Only the HTTP load test (LOAD_DURATION, default 3s)
	$(GO) run ./hack/loadgen -bin $(BIN) -duration $(LOAD_DURATION) -concurrency 1,16,64

AGENTLOAD_COUNTS ?= 1000 10000
AGENTLOAD_ADDR ?= 127.0.0.1:4210
AGENTLOAD_AGENT_ADDR ?= 127.0.0.1:4211

bench-agents: build ## One dev core holding AGENTLOAD_COUNTS agent WebSockets (RSS, push latency); idle agent RSS
	$(GO) build -o bin/agentload ./hack/agentload
	$(GO) build -o bin/agentrss ./hack/agentrss
	@set -e; token=agentload-$$RANDOM$$RANDOM; for n in $(AGENTLOAD_COUNTS); do \
	  ./$(BIN) server -dev -dev-root-token-id $$token -listen-address $(AGENTLOAD_ADDR) \
	    -agent-listen-address $(AGENTLOAD_AGENT_ADDR) -log-level warn >/dev/null 2>bin/agentload-server.log & pid=$$!; \
	  trap 'kill $$pid 2>/dev/null || true' EXIT INT TERM; \
	  echo "== $$n agents (core pid $$pid)"; \
	  status=0; ./bin/agentload -addr http://$(AGENTLOAD_ADDR) -token $$token -agent-addr $(AGENTLOAD_AGENT_ADDR) \
	    -core-pid $$pid -connections $$n || status=$$?; \
	  kill $$pid; wait $$pid || true; \
	  if [ $$status -ne 0 ]; then echo "agentload failed; server log: bin/agentload-server.log"; exit $$status; fi; \
	done; \
	./$(BIN) server -dev -dev-root-token-id $$token -listen-address $(AGENTLOAD_ADDR) \
	  -agent-listen-address $(AGENTLOAD_AGENT_ADDR) -log-level warn >/dev/null 2>bin/agentload-server.log & pid=$$!; \
	trap 'kill $$pid 2>/dev/null || true' EXIT INT TERM; \
	echo "== idle agent (bin/secrethub-agent)"; \
	status=0; ./bin/agentrss -bin bin/secrethub-agent -addr http://$(AGENTLOAD_ADDR) -token $$token \
	  -agent-addr $(AGENTLOAD_AGENT_ADDR) || status=$$?; \
	kill $$pid; wait $$pid || true; exit $$status

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

lint: vet $(STATICCHECK) ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(STATICCHECK) ./...

$(STATICCHECK):
	mkdir -p $(dir $@)
	GOBIN=$(abspath $(dir $@)) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# controller-gen writes api/v1alpha1/zz_generated.deepcopy.go, the CRDs in
# config/crd/bases and the operator's RBAC (config/rbac/role.yaml, from the
# +kubebuilder:rbac markers in controllers/). The generated files are
# committed; config's tests run controller-gen and fail when they are stale,
# so `make test` installs it (once per machine, into the cache).
CONTROLLER_GEN_VERSION ?= v0.23.0
export CONTROLLER_GEN := $(CACHE)/controller-gen-$(CONTROLLER_GEN_VERSION)/controller-gen

.PHONY: generate manifests
generate: $(CONTROLLER_GEN) ## Deep copy functions of api/v1alpha1
	$(CONTROLLER_GEN) object paths=./api/...

manifests: $(CONTROLLER_GEN) ## CRDs (config/crd/bases), RBAC (config/rbac/role.yaml) and the webhook (config/webhook/manifests.yaml) from the markers
	$(CONTROLLER_GEN) crd rbac:roleName=manager-role webhook paths=./api/... paths=./controllers/... paths=./webhook/... \
	  output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac \
	  output:webhook:artifacts:config=config/webhook
	rm -f charts/secrethub/crds/*.yaml
	cp config/crd/bases/*.yaml charts/secrethub/crds/
	cp config/rbac/role.yaml charts/secrethub/files/operator-role.yaml

test: $(CONTROLLER_GEN)

$(CONTROLLER_GEN):
	mkdir -p $(dir $@)
	GOBIN=$(abspath $(dir $@)) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)

# helm lints and renders charts/secrethub in the tests of charts/ (which
# apply the result to envtest's API server). Built from the Go module proxy
# once per machine, into the cache; the ldflags set what `helm version`
# shows and the Kubernetes version `helm template` assumes (that of the
# client-go helm is built with), as helm's own Makefile does.
HELM_VERSION ?= v3.22.0
HELM_K8S_MINOR ?= 37
export HELM := $(CACHE)/helm-$(HELM_VERSION)/helm

.PHONY: helm
helm: $(HELM) ## Build helm into the cache (once per machine)

test: $(HELM)

$(HELM):
	mkdir -p $(dir $@)
	GOBIN=$(abspath $(dir $@)) $(GO) install -ldflags "-X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(HELM_K8S_MINOR) \
	  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$(HELM_K8S_MINOR)" \
	  helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

fuzz: ## Run each fuzz target for a short while
	./hack/fuzz.sh

clean:
	rm -rf bin
