// Package kubetest starts a real Kubernetes control plane (kube-apiserver
// and etcd, through controller-runtime's envtest) for tests of packages that
// talk to Kubernetes.
//
// The binaries come from the directory that KUBEBUILDER_ASSETS names.
// `make test` builds them once per machine (hack/envtest-assets.sh, cached
// under ~/.cache/secrethub/envtest-<version>/) and exports the variable; a
// test run without them fails, saying so: it never skips.
//
// The API server signs service-account tokens (envtest passes it
// --service-account-issuer, --service-account-key-file and
// --service-account-signing-key-file), so the TokenRequest and TokenReview
// APIs work; no controller manager runs, so nothing creates service
// accounts, their tokens or the default service account by itself.
package kubetest

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// EnvAssets is the environment variable naming the directory that holds the
// kube-apiserver and etcd binaries.
const EnvAssets = "KUBEBUILDER_ASSETS"

// envStartTimeout, when set, overrides startTimeout (envtest reads it).
const envStartTimeout = "KUBEBUILDER_CONTROLPLANE_START_TIMEOUT"

// envAttachOutput, when "true", sends the control plane's output to the test
// binary's stdout and stderr (envtest reads it) instead of keeping its tail.
const envAttachOutput = "KUBEBUILDER_ATTACH_CONTROL_PLANE_OUTPUT"

// startTimeout bounds the start of etcd and of the API server each. It is
// generous: the machines that run the tests are small and busy.
const startTimeout = 2 * time.Minute

// outputTail is how much of the control plane's latest output is kept to be
// shown when it fails to start.
const outputTail = 16 << 10

// binaries are the files that must be in the assets directory.
var binaries = []string{"kube-apiserver", "etcd"}

// AssetsDir returns the directory that holds the control plane's binaries,
// or an error saying how to get them when EnvAssets is unset or a binary is
// missing.
func AssetsDir() (string, error) {
	dir := os.Getenv(EnvAssets)
	if dir == "" {
		return "", errMissing("%s is not set", EnvAssets)
	}
	for _, name := range binaries {
		path := filepath.Join(dir, name)
		info, err := os.Stat(path)
		if err != nil {
			return "", errMissing("%s=%s: %v", EnvAssets, dir, err)
		}
		if info.IsDir() || info.Mode().Perm()&0o111 == 0 {
			return "", errMissing("%s=%s: %s is not an executable file", EnvAssets, dir, path)
		}
	}
	return dir, nil
}

// Start starts a control plane for the test and returns an admin
// (system:masters) configuration for it. The CustomResourceDefinitions found
// in crdDirs (YAML or JSON files) are installed and established before Start
// returns; a directory that does not exist fails the test. The control plane
// is stopped in t.Cleanup. Start fails the test when the binaries are
// missing or the control plane does not come up.
//
// Each call starts a control plane of its own (a few seconds): share one
// among the tests of a package where they can live side by side, e.g. in
// separate namespaces.
func Start(t testing.TB, crdDirs ...string) *rest.Config {
	t.Helper()
	return start(t, nil, crdDirs)
}

// StartWithWebhooks is Start with admission webhooks: the configurations
// of wh (its MutatingWebhooks, ValidatingWebhooks, or the files of its
// Paths) are installed with their clientConfig pointing at a local server,
// and before it returns Start fills in wh.LocalServingHost,
// LocalServingPort and LocalServingCertDir (a serving certificate and key,
// tls.crt and tls.key, for that host). The test serves the webhooks there,
// for example with controller-runtime's webhook.NewServer.
func StartWithWebhooks(t testing.TB, wh *envtest.WebhookInstallOptions, crdDirs ...string) *rest.Config {
	t.Helper()
	if wh == nil {
		t.Fatal("kubetest: StartWithWebhooks without WebhookInstallOptions")
	}
	return start(t, wh, crdDirs)
}

func start(t testing.TB, wh *envtest.WebhookInstallOptions, crdDirs []string) *rest.Config {
	t.Helper()
	dir, err := AssetsDir()
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	useExisting := false
	env := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		// Never reach for the cluster of the user's kubeconfig, whatever
		// USE_EXISTING_CLUSTER says.
		UseExistingCluster: &useExisting,
		CRDDirectoryPaths:  crdDirs,
		// With no directory given there is nothing that could be missing.
		ErrorIfCRDPathMissing: len(crdDirs) > 0,
	}
	if wh != nil {
		env.WebhookInstallOptions = *wh
	}
	if os.Getenv(envStartTimeout) == "" {
		env.ControlPlaneStartTimeout = startTimeout
	}
	var out *tailBuffer
	if os.Getenv(envAttachOutput) != "true" {
		out = &tailBuffer{max: outputTail}
		api := env.ControlPlane.GetAPIServer()
		api.Out, api.Err = out, out
		env.ControlPlane.Etcd = &envtest.Etcd{Out: out, Err: out}
	}

	cfg, err := env.Start()
	if err != nil {
		// Start may have left etcd running when the API server failed.
		stopErr := env.Stop()
		if out != nil {
			t.Logf("kubetest: control plane output (tail):\n%s", out.String())
		}
		t.Fatalf("kubetest: starting the control plane from %s: %v (stop: %v)", dir, err, stopErr)
	}
	if wh != nil {
		*wh = env.WebhookInstallOptions
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("kubetest: stopping the control plane: %v", err)
		}
	})
	return cfg
}

// Client returns a controller-runtime client for cfg that knows the types of
// scheme, or client-go's built-in types when scheme is nil. It fails the
// test when the client cannot be built.
func Client(t testing.TB, cfg *rest.Config, scheme *runtime.Scheme) client.Client {
	t.Helper()
	if scheme == nil {
		scheme = clientgoscheme.Scheme
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatalf("kubetest: building a client: %v", err)
	}
	return c
}

// Clientset returns a client-go clientset for cfg, for the APIs that
// controller-runtime's client does not cover (subresources such as a
// service account's token). It fails the test when it cannot be built.
func Clientset(t testing.TB, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("kubetest: building a clientset: %v", err)
	}
	return cs
}

// missingError says which binaries are missing and how to get them.
type missingError struct{ reason string }

func (e *missingError) Error() string {
	return e.reason + "; run `make envtest-assets` (make test does) and export " +
		EnvAssets + " as it prints, to get kube-apiserver and etcd"
}

func errMissing(format string, args ...any) error {
	return &missingError{reason: fmt.Sprintf(format, args...)}
}

// tailBuffer keeps the last max bytes written to it. It is safe for
// concurrent use: the API server's and etcd's stdout and stderr are copied
// into it by separate goroutines.
type tailBuffer struct {
	max int

	mu  sync.Mutex // guards buf
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
