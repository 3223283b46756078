package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/controllers"
	"github.com/secrethub/secrethub/core/client"
	"github.com/secrethub/secrethub/internal/operator"
	"github.com/secrethub/secrethub/webhook/inject"
)

// newOperatorCmd is `secrethub operator`: the Kubernetes operator.
func newOperatorCmd() *cobra.Command {
	var (
		o              operator.Options
		namespaces     string
		logLevel       string
		nativeSidecars string
	)
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Run the Kubernetes operator that syncs SecretHub resources into the core",
		Long: `Run the Kubernetes operator: it reconciles SecretPolicy, DynamicRole,
AgentTemplate and SecretBinding resources (secrethub.io/v1alpha1) into the
core (see docs/operator.md).

The core is -address (default $SECRETHUB_ADDR or http://127.0.0.1:4000).
The operator logs in to it with its own service account: it reads the
token in -token-file (default /var/run/secrets/tokens/secrethub, else the
pod's standard token) and logs in at auth/<-auth-mount>/login with
-auth-role, again before the token expires and when the core refuses it.
For development, $SECRETHUB_TOKEN is used as is instead.

With -webhook (on by default when -webhook-cert-dir holds tls.crt) it also
serves the sidecar injector at /mutate-v1-pod on -webhook-port: pods
annotated secrethub.io/inject: "true" get the agent (-agent-image) as a
sidecar that renders their secrets into /secrethub (see
docs/annotations.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.CoreAddress == "" {
				o.CoreAddress = os.Getenv(envAddr)
			}
			if o.CACertFile == "" {
				o.CACertFile = os.Getenv(envCACert)
			}
			o.Token = os.Getenv(envToken)
			if o.Token == "" && o.Login.TokenFile == "" {
				o.Login.TokenFile = operator.DefaultTokenFile
				if _, err := os.Stat(o.Login.TokenFile); err != nil {
					o.Login.TokenFile = operator.StandardTokenFile
				}
			}
			for _, ns := range strings.Split(namespaces, ",") {
				if ns = strings.TrimSpace(ns); ns != "" {
					o.Namespaces = append(o.Namespaces, ns)
				}
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("-log-level: %w", err)
			}
			o.Logger = slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			if err := webhookOptions(cmd, &o, nativeSidecars); err != nil {
				return err
			}
			return operator.Run(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.CoreAddress, "address", "", "core address (default $"+envAddr+")")
	f.StringVar(&o.CACertFile, "ca-cert", "", "PEM CA bundle to verify the core's certificate (default $"+envCACert+")")
	f.StringVar(&o.Login.Role, "auth-role", "", "Kubernetes auth role the operator logs in to the core with")
	f.StringVar(&o.Login.Mount, "auth-mount", "kubernetes", "the core's Kubernetes auth mount the operator logs in at")
	f.StringVar(&o.Login.TokenFile, "token-file", "", "the operator's service account token (default "+operator.DefaultTokenFile+", else "+operator.StandardTokenFile+")")
	f.StringVar(&o.AuthMount, "binding-auth-mount", controllers.DefaultAuthMount, "the core's Kubernetes auth mount SecretBindings become roles of")
	f.StringVar(&namespaces, "namespaces", "", "comma-separated namespaces to watch (default: all)")
	f.StringSliceVar(&o.AdminNamespaces, "admin-namespaces", controllers.DefaultAdminNamespaces,
		"namespaces whose SecretPolicies may grant any path; others may only grant secrets/<ns>/, secrets/secrethub/agent-templates/<ns>/ and <mount>/k8s/<ns>/, without sudo")
	f.BoolVar(&o.UnconfinedPolicies, "unconfined-policies", false, "let every namespace's SecretPolicies grant any path (only where SecretPolicies are reserved to administrators)")
	f.DurationVar(&o.ResyncPeriod, "resync-period", controllers.DefaultResyncPeriod, "how often unchanged resources are synced again, putting back core objects changed by hand")
	f.StringVar(&o.MetricsAddress, "metrics-bind-address", operator.DefaultMetricsAddress, `address of the metrics endpoint ("0" disables it)`)
	f.StringVar(&o.HealthAddress, "health-probe-bind-address", operator.DefaultHealthAddress, "address of /healthz and /readyz")
	f.BoolVar(&o.LeaderElection, "leader-elect", false, "elect a leader, so that one replica reconciles at a time")
	f.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election lease (default: the pod's)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	w := &o.Webhook
	f.BoolVar(&w.Enabled, "webhook", false, "serve the sidecar injector (default: on when -webhook-cert-dir holds tls.crt)")
	f.IntVar(&w.Port, "webhook-port", operator.DefaultWebhookPort, "port of the webhook server")
	f.StringVar(&w.CertDir, "webhook-cert-dir", defaultWebhookCertDir(), "directory holding the webhook's serving certificate, tls.crt and tls.key")
	f.StringVar(&w.Inject.Namespace, "webhook-namespace", "", "the operator's namespace, never injected (default $POD_NAMESPACE, else the pod's service account namespace)")
	f.StringVar(&w.Inject.Image, "agent-image", "", "image of the injected agent (required with -webhook)")
	f.StringSliceVar(&w.Inject.CoreAddresses, "agent-core-addresses", nil, "core REST addresses the injected agent uses (default -address)")
	f.StringSliceVar(&w.Inject.AgentAddresses, "agent-listener-addresses", nil, "core agent listener addresses the injected agent holds its WebSocket to (required for mode sidecar)")
	f.StringVar(&w.Inject.AuthMount, "agent-auth-mount", "kubernetes", "the core's Kubernetes auth mount the injected agent logs in at")
	f.StringVar(&w.Inject.Audience, "agent-audience", inject.DefaultAudience, "audience of the injected agent's projected service account token")
	f.StringVar(&nativeSidecars, "native-sidecars", "auto", "inject the agent as a native sidecar: auto (Kubernetes 1.29+), true or false")
	f.StringVar(&o.Webhook.AgentCACertFile, "agent-ca-cert", "", "PEM CA bundle the injected agents verify the core with (default -ca-cert: the operator's own)")
	return cmd
}

// defaultWebhookCertDir is controller-runtime's default certificate
// directory.
func defaultWebhookCertDir() string {
	return filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs")
}

// serviceAccountNamespaceFile holds the pod's namespace.
const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// webhookOptions fills in the webhook's defaults that depend on the
// environment.
func webhookOptions(cmd *cobra.Command, o *operator.Options, nativeSidecars string) error {
	w := &o.Webhook
	if !cmd.Flags().Changed("webhook") {
		_, err := os.Stat(filepath.Join(w.CertDir, "tls.crt"))
		w.Enabled = err == nil
	}
	switch nativeSidecars {
	case "auto":
	case "true", "false":
		v := nativeSidecars == "true"
		w.NativeSidecars = &v
	default:
		return fmt.Errorf("-native-sidecars %q: want auto, true or false", nativeSidecars)
	}
	if !w.Enabled {
		return nil
	}
	// The agents reach the same core as the operator: its private CA, if
	// any, goes into their configuration.
	caFile := w.AgentCACertFile
	if caFile == "" {
		caFile = o.CACertFile
	}
	if caFile != "" && w.Inject.CoreCAPEM == "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("-agent-ca-cert: %w", err)
		}
		w.Inject.CoreCAPEM = string(pem)
	}
	if len(w.Inject.CoreAddresses) == 0 {
		addr := o.CoreAddress
		if addr == "" {
			addr = client.DefaultAddress
		}
		w.Inject.CoreAddresses = []string{addr}
	}
	if w.Inject.Namespace == "" {
		w.Inject.Namespace = os.Getenv("POD_NAMESPACE")
	}
	if w.Inject.Namespace == "" {
		if b, err := os.ReadFile(serviceAccountNamespaceFile); err == nil {
			w.Inject.Namespace = strings.TrimSpace(string(b))
		}
	}
	if w.Inject.Image == "" {
		return errors.New("-webhook: set -agent-image, the image of the injected agent")
	}
	return nil
}
