package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/internal/operator"
)

func TestWebhookOptions(t *testing.T) {
	withCert := t.TempDir()
	if err := os.WriteFile(filepath.Join(withCert, "tls.crt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("POD_NAMESPACE", "secrethub-system")
	const caPEM = "-----BEGIN CERTIFICATE-----\nnot parsed here\n-----END CERTIFICATE-----\n"
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, []byte(caPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		args    []string
		native  string
		enabled bool
		errHas  string
		check   func(t *testing.T, o operator.Options)
	}{
		"off without certificates": {args: []string{"--webhook-cert-dir", t.TempDir()}},
		"on with certificates": {args: []string{"--webhook-cert-dir", withCert, "--agent-image", "img", "--address", "https://core:4000"}, enabled: true,
			check: func(t *testing.T, o operator.Options) {
				w := o.Webhook
				if w.Inject.Namespace != "secrethub-system" || strings.Join(w.Inject.CoreAddresses, ",") != "https://core:4000" || w.NativeSidecars != nil {
					t.Errorf("webhook options = %+v", w)
				}
			}},
		"forced off":     {args: []string{"--webhook-cert-dir", withCert, "--webhook=false"}},
		"needs an image": {args: []string{"--webhook"}, errHas: "-agent-image"},
		"native sidecars": {args: []string{"--webhook", "--agent-image", "img"}, native: "false", enabled: true, check: func(t *testing.T, o operator.Options) {
			if o.Webhook.NativeSidecars == nil || *o.Webhook.NativeSidecars {
				t.Errorf("NativeSidecars = %v", o.Webhook.NativeSidecars)
			}
		}},
		"bad native sidecars": {args: []string{}, native: "sometimes", errHas: "-native-sidecars"},
		"agents get the operator's core CA": {args: []string{"--webhook", "--agent-image", "img", "--ca-cert", caFile}, enabled: true,
			check: func(t *testing.T, o operator.Options) {
				if o.Webhook.Inject.CoreCAPEM != caPEM {
					t.Errorf("CoreCAPEM = %q, want the -ca-cert file's content", o.Webhook.Inject.CoreCAPEM)
				}
			}},
		"agents' own core CA": {args: []string{"--webhook", "--agent-image", "img", "--ca-cert", caFile, "--agent-ca-cert", "/nonexistent/ca.pem"},
			errHas: "-agent-ca-cert"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cmd := newOperatorCmd()
			if err := cmd.ParseFlags(tc.args); err != nil {
				t.Fatal(err)
			}
			var o operator.Options
			o.Webhook.Enabled, _ = cmd.Flags().GetBool("webhook")
			o.Webhook.CertDir, _ = cmd.Flags().GetString("webhook-cert-dir")
			o.Webhook.Inject.Image, _ = cmd.Flags().GetString("agent-image")
			o.CoreAddress, _ = cmd.Flags().GetString("address")
			o.CACertFile, _ = cmd.Flags().GetString("ca-cert")
			o.Webhook.AgentCACertFile, _ = cmd.Flags().GetString("agent-ca-cert")
			native := tc.native
			if native == "" {
				native = "auto"
			}
			err := webhookOptions(cmd, &o, native)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err = %v, want %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.Webhook.Enabled != tc.enabled {
				t.Errorf("enabled = %v, want %v", o.Webhook.Enabled, tc.enabled)
			}
			if tc.check != nil {
				tc.check(t, o)
			}
		})
	}
}
