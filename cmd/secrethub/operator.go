package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/controllers"
	"github.com/secrethub/secrethub/internal/operator"
)

// newOperatorCmd is `secrethub operator`: the Kubernetes operator.
func newOperatorCmd() *cobra.Command {
	var (
		o          operator.Options
		namespaces string
		logLevel   string
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
For development, $SECRETHUB_TOKEN is used as is instead.`,
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
	return cmd
}
