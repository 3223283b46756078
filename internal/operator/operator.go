// Package operator runs SecretHub's Kubernetes operator: a
// controller-runtime manager with the reconcilers of package controllers,
// the sidecar injector's webhook (package webhook), and the operator's own
// login to the core.
package operator

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/secrethub/secrethub/api/v1alpha1"
	"github.com/secrethub/secrethub/controllers"
	"github.com/secrethub/secrethub/core/client"
	secrethubwebhook "github.com/secrethub/secrethub/webhook"
	"github.com/secrethub/secrethub/webhook/inject"
)

// Defaults of Options.
const (
	DefaultMetricsAddress = ":8080"
	DefaultHealthAddress  = ":8081"
	DefaultLeaderID       = "secrethub-operator.secrethub.io"
)

// Options configure the operator.
type Options struct {
	// CoreAddress is the core's base URL. Default client.DefaultAddress.
	CoreAddress string
	// CACertFile, when set, is the PEM bundle the core's certificate must
	// chain to.
	CACertFile string
	// Token, when set, is a core token used as is (development); otherwise
	// the operator logs in with Login.
	Token string
	// Login is the service-account login, used when Token is empty.
	Login LoginConfig

	// Namespaces, when not empty, limits the operator to these
	// namespaces; empty watches all.
	Namespaces []string
	// ResyncPeriod is how often unchanged objects are synced again.
	// Default controllers.DefaultResyncPeriod.
	ResyncPeriod time.Duration
	// AuthMount is the core's Kubernetes auth mount SecretBindings become
	// roles of. Default controllers.DefaultAuthMount.
	AuthMount string
	// AdminNamespaces may grant any path in their SecretPolicies; nil
	// means controllers.DefaultAdminNamespaces.
	AdminNamespaces []string
	// UnconfinedPolicies lets every namespace's SecretPolicies grant any
	// path (single-tenant clusters).
	UnconfinedPolicies bool

	// MetricsAddress serves Prometheus metrics; "0" disables them.
	// Default DefaultMetricsAddress.
	MetricsAddress string
	// HealthAddress serves /healthz and /readyz. Default
	// DefaultHealthAddress.
	HealthAddress string
	// LeaderElection makes only one replica reconcile at a time.
	LeaderElection bool
	// LeaderElectionNamespace holds the lease; default: the pod's own.
	LeaderElectionNamespace string

	// Webhook configures the sidecar injector's admission webhook.
	Webhook WebhookOptions

	// RestConfig is the Kubernetes API configuration. Default: the
	// in-cluster configuration or the kubeconfig (ctrl.GetConfig).
	RestConfig *rest.Config
	// Logger receives the operator's logs. Default slog.Default().
	Logger *slog.Logger
}

// DefaultWebhookPort is the webhook server's port.
const DefaultWebhookPort = 9443

// WebhookOptions configure the sidecar injector (package webhook), served
// by the operator's manager at webhook.Path.
type WebhookOptions struct {
	// Enabled serves the webhook.
	Enabled bool
	// Host is the address the server binds; default all.
	Host string
	// Port of the webhook server. Default DefaultWebhookPort.
	Port int
	// CertDir holds the serving certificate and key, tls.crt and tls.key
	// (reloaded when they change). Default controller-runtime's,
	// <tmp>/k8s-webhook-server/serving-certs.
	CertDir string
	// Inject is the injector's configuration. Its NativeSidecars is
	// replaced by the API server's support when NativeSidecars is nil.
	Inject inject.Config
	// AgentCACertFile is read into Inject.CoreCAPEM by the command (the
	// operator's own -ca-cert when empty).
	AgentCACertFile string
	// NativeSidecars forces native sidecars on or off; nil decides from
	// the API server's version (1.29 and later).
	NativeSidecars *bool
}

// Scheme returns the scheme of the operator's types: Kubernetes' own and
// secrethub.io/v1alpha1.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Run runs the operator until ctx ends.
func Run(ctx context.Context, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	logger := logr.FromSlogHandler(log.Handler())
	ctrl.SetLogger(logger)

	core, auth, err := CoreClient(o)
	if err != nil {
		return err
	}
	cfg := o.RestConfig
	if cfg == nil {
		if cfg, err = ctrl.GetConfig(); err != nil {
			return fmt.Errorf("kubernetes configuration: %w", err)
		}
	}
	scheme, err := Scheme()
	if err != nil {
		return err
	}
	metricsAddr := o.MetricsAddress
	if metricsAddr == "" {
		metricsAddr = DefaultMetricsAddress
	}
	healthAddr := o.HealthAddress
	if healthAddr == "" {
		healthAddr = DefaultHealthAddress
	}
	mopts := ctrl.Options{
		Scheme:                  scheme,
		Logger:                  logger,
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  healthAddr,
		LeaderElection:          o.LeaderElection,
		LeaderElectionID:        DefaultLeaderID,
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		// The operator stops on its own when ctx ends: let a successor
		// take over at once.
		LeaderElectionReleaseOnCancel: true,
	}
	if len(o.Namespaces) > 0 {
		mopts.Cache.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range o.Namespaces {
			mopts.Cache.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	if o.Webhook.Enabled {
		mopts.WebhookServer = NewWebhookServer(o.Webhook)
	}
	mgr, err := ctrl.NewManager(cfg, mopts)
	if err != nil {
		return fmt.Errorf("controller manager: %w", err)
	}
	if o.Webhook.Enabled {
		if err := SetupWebhook(mgr, o.Webhook, log); err != nil {
			return err
		}
	}
	if err := controllers.SetupAll(mgr, controllers.Options{
		Core: core, ResyncPeriod: o.ResyncPeriod, AuthMount: o.AuthMount,
		AdminNamespaces: o.AdminNamespaces, Unconfined: o.UnconfinedPolicies,
	}); err != nil {
		return fmt.Errorf("controllers: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	if auth.login != nil {
		// Log in at once, so a wrong role or token file shows at start;
		// a sealed or unreachable core is retried at each request.
		if _, err := auth.Token(ctx); err != nil {
			log.WarnContext(ctx, "operator: first login to the core failed; retrying with each sync", "error", err.Error())
		}
	}
	log.InfoContext(ctx, "operator: starting", "core", core.Address(), "namespaces", o.Namespaces, "leader_election", o.LeaderElection)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("controller manager: %w", err)
	}
	return nil
}

// NewWebhookServer returns the webhook server of o, for ctrl.Options.
func NewWebhookServer(o WebhookOptions) webhook.Server {
	port := o.Port
	if port == 0 {
		port = DefaultWebhookPort
	}
	return webhook.NewServer(webhook.Options{Host: o.Host, Port: port, CertDir: o.CertDir})
}

// SetupWebhook registers the sidecar injector on mgr's webhook server and
// a readiness check that passes once it serves. Unless o.NativeSidecars
// says, native sidecars are used when the API server is 1.29 or later.
func SetupWebhook(mgr ctrl.Manager, o WebhookOptions, log *slog.Logger) error {
	icfg := o.Inject
	if o.NativeSidecars != nil {
		icfg.NativeSidecars = *o.NativeSidecars
	} else {
		dc, err := discovery.NewDiscoveryClientForConfig(mgr.GetConfig())
		if err != nil {
			return fmt.Errorf("webhook: discovery client: %w", err)
		}
		v, err := dc.ServerVersion()
		if err != nil {
			return fmt.Errorf("webhook: API server version: %w", err)
		}
		icfg.NativeSidecars = secrethubwebhook.NativeSidecarsSupported(v)
		log.Info("webhook: API server version", "version", v.GitVersion, "native_sidecars", icfg.NativeSidecars)
	}
	h, err := secrethubwebhook.NewHandler(icfg, mgr.GetScheme(), log)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	srv := mgr.GetWebhookServer()
	srv.Register(secrethubwebhook.Path, h.Webhook())
	if err := mgr.AddReadyzCheck("webhook", srv.StartedChecker()); err != nil {
		return fmt.Errorf("webhook: readiness check: %w", err)
	}
	return nil
}

// CoreClient returns the client the operator talks to the core with, and
// the Authenticator that keeps its token: o.Token as is, or a
// service-account login.
func CoreClient(o Options) (*client.Client, *Authenticator, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.CACertFile != "" {
		pem, err := os.ReadFile(o.CACertFile)
		if err != nil {
			return nil, nil, fmt.Errorf("read CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("CA certificate %s: no PEM certificate found", o.CACertFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	var auth *Authenticator
	switch {
	case o.Token != "":
		auth = StaticToken(o.Token)
	case o.Login.Role == "":
		return nil, nil, ErrNoCredentials
	default:
		base, err := client.New(client.Config{Address: o.CoreAddress, HTTPClient: httpClient(tr)})
		if err != nil {
			return nil, nil, err
		}
		if auth, err = ServiceAccountLogin(base, o.Login); err != nil {
			return nil, nil, err
		}
	}
	c, err := client.New(client.Config{Address: o.CoreAddress, HTTPClient: httpClient(auth.Transport(tr))})
	if err != nil {
		return nil, nil, err
	}
	return c, auth, nil
}

func httpClient(rt http.RoundTripper) *http.Client {
	return &http.Client{
		Transport: rt,
		Timeout:   30 * time.Second,
		// Never follow redirects: the token header would go with them.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// ErrNoCredentials is returned when neither a token nor a login role is
// configured.
var ErrNoCredentials = errors.New("no core credentials: set SECRETHUB_TOKEN, or -auth-role (and -token-file) for a service-account login")
