package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/core/client"
)

func newPKICmd() *cobra.Command {
	var mount string
	cmd := newClientCmd("pki", "Run a certificate authority",
		`Manage the PKI engine mounted at -mount (default "pki"): a root CA, an
intermediate signed by it, roles that say which certificates may be issued,
issuing and signing, revocation and the CRL. Paths and bodies follow Vault's
PKI engine; see docs/pki.md.`,
		func(cf *clientFlags) []*cobra.Command {
			p := func(parts ...string) string { return strings.Trim(mount, "/") + "/" + strings.Join(parts, "/") }
			return []*cobra.Command{
				pkiRootCmd(cf, p), pkiIntermediateCmd(cf, p), pkiRoleCmd(cf, p),
				pkiIssueCmd(cf, p), pkiSignCmd(cf, p), pkiRevokeCmd(cf, p), pkiCRLCmd(cf, p),
			}
		})
	cmd.PersistentFlags().StringVar(&mount, "mount", "pki", "mount path of the PKI engine")
	return cmd
}

// subjectFlags are the subject fields of a CA.
type subjectFlags struct {
	commonName, keyType, org, ou string
	keyBits                      int
	ttl                          time.Duration
	exported                     bool
}

func (s *subjectFlags) register(cmd *cobra.Command, defaultTTL time.Duration) {
	f := cmd.Flags()
	f.StringVar(&s.commonName, "common-name", "", "subject common name (required)")
	f.StringVar(&s.keyType, "key-type", "ec", "rsa or ec")
	f.IntVar(&s.keyBits, "key-bits", 0, "key size: rsa 2048/3072/4096, ec 256/384 (default: the engine's)")
	f.StringVar(&s.org, "organization", "", "subject organization")
	f.StringVar(&s.ou, "ou", "", "subject organizational unit")
	f.DurationVar(&s.ttl, "ttl", defaultTTL, "validity")
	f.BoolVar(&s.exported, "exported", false, "also return the private key (shown once; default: it never leaves SecretHub)")
}

func (s *subjectFlags) body() (map[string]any, string, error) {
	if s.commonName == "" {
		return nil, "", errors.New("-common-name: required")
	}
	b := map[string]any{"common_name": s.commonName, "key_type": s.keyType, "ttl": s.ttl.String()}
	if s.keyBits > 0 {
		b["key_bits"] = s.keyBits
	}
	if s.org != "" {
		b["organization"] = s.org
	}
	if s.ou != "" {
		b["ou"] = s.ou
	}
	kind := "internal"
	if s.exported {
		kind = "exported"
	}
	return b, kind, nil
}

func pkiRootCmd(cf *clientFlags, p func(...string) string) *cobra.Command {
	var s subjectFlags
	cmd := &cobra.Command{
		Use:   "root -common-name NAME",
		Short: "Generate the mount's root CA",
		Args:  cobra.NoArgs,
		RunE: runClient(cf, func(cmd *cobra.Command, _ []string, c *client.Client) error {
			body, kind, err := s.body()
			if err != nil {
				return err
			}
			resp, err := c.Write(cmd.Context(), p("root", "generate", kind), body)
			if err != nil {
				return err
			}
			return printResponse(cmd.OutOrStdout(), cf.format, resp)
		}),
	}
	s.register(cmd, 10*365*24*time.Hour)
	return cmd
}

func pkiIntermediateCmd(cf *clientFlags, p func(...string) string) *cobra.Command {
	var s subjectFlags
	var rootMount string
	cmd := &cobra.Command{
		Use:   "intermediate -common-name NAME -root-mount pki",
		Short: "Generate an intermediate CA on this mount, signed by the root on another",
		Long: `Generate an intermediate CA key and CSR on -mount, have the root CA on
-root-mount sign it, and install the signed certificate: three API calls
(intermediate/generate, root/sign-intermediate, intermediate/set-signed).`,
		Args: cobra.NoArgs,
		RunE: runClient(cf, func(cmd *cobra.Command, _ []string, c *client.Client) error {
			body, kind, err := s.body()
			if err != nil {
				return err
			}
			if rootMount == "" {
				return errors.New("-root-mount: required (the mount holding the root CA)")
			}
			delete(body, "ttl") // a CSR has no validity; the root sets it when signing
			gen, err := c.Write(cmd.Context(), p("intermediate", "generate", kind), body)
			if err != nil {
				return fmt.Errorf("generate: %w", err)
			}
			csr, _ := gen.Data["csr"].(string)
			signed, err := c.Write(cmd.Context(), strings.Trim(rootMount, "/")+"/root/sign-intermediate",
				map[string]any{"csr": csr, "common_name": s.commonName, "ttl": s.ttl.String()})
			if err != nil {
				return fmt.Errorf("sign on %s: %w", rootMount, err)
			}
			cert, _ := signed.Data["certificate"].(string)
			if _, err := c.Write(cmd.Context(), p("intermediate", "set-signed"), map[string]any{"certificate": cert}); err != nil {
				return fmt.Errorf("set-signed: %w", err)
			}
			if key, ok := gen.Data["private_key"]; ok {
				signed.Data["private_key"] = key
			}
			return printResponse(cmd.OutOrStdout(), cf.format, signed)
		}),
	}
	s.register(cmd, 5*365*24*time.Hour)
	cmd.Flags().StringVar(&rootMount, "root-mount", "", "mount path of the root CA that signs the intermediate")
	return cmd
}

func pkiRoleCmd(cf *clientFlags, p func(...string) string) *cobra.Command {
	var domains, uriSANs []string
	var subdomains, bare, glob, anyName, localhost, ipSANs, server, clientFlag bool
	var keyType string
	var keyBits int
	var ttl, maxTTL time.Duration
	cmd := &cobra.Command{
		Use:   "role NAME",
		Short: "Create or update a role: which certificates may be issued",
		Args:  cobra.ExactArgs(1),
		RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
			body := map[string]any{
				"allowed_domains": domains, "allow_subdomains": subdomains, "allow_bare_domains": bare,
				"allow_glob_domains": glob, "allow_any_name": anyName, "allow_localhost": localhost,
				"allow_ip_sans": ipSANs, "server_flag": server, "client_flag": clientFlag, "key_type": keyType,
			}
			if len(uriSANs) > 0 {
				body["allowed_uri_sans"] = uriSANs
			}
			if keyBits > 0 {
				body["key_bits"] = keyBits
			}
			if ttl > 0 {
				body["ttl"] = ttl.String()
			}
			if maxTTL > 0 {
				body["max_ttl"] = maxTTL.String()
			}
			if _, err := c.Write(cmd.Context(), p("roles", args[0]), body); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Success! Wrote role %s.\n", args[0])
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringSliceVar(&domains, "allowed-domains", nil, "domains certificates may name")
	f.BoolVar(&subdomains, "allow-subdomains", false, "allow subdomains of the allowed domains")
	f.BoolVar(&bare, "allow-bare-domains", false, "allow the allowed domains themselves")
	f.BoolVar(&glob, "allow-glob-domains", false, "treat allowed domains as globs")
	f.BoolVar(&anyName, "allow-any-name", false, "allow any name (use with care)")
	f.BoolVar(&localhost, "allow-localhost", false, "allow localhost")
	f.BoolVar(&ipSANs, "allow-ip-sans", true, "allow IP SANs")
	f.StringSliceVar(&uriSANs, "allowed-uri-sans", nil, "URI SAN globs")
	f.BoolVar(&server, "server-flag", true, "server authentication usage")
	f.BoolVar(&clientFlag, "client-flag", true, "client authentication usage")
	f.StringVar(&keyType, "key-type", "ec", "rsa, ec or any")
	f.IntVar(&keyBits, "key-bits", 0, "key size (default: the engine's for the type)")
	f.DurationVar(&ttl, "ttl", 0, "default certificate validity")
	f.DurationVar(&maxTTL, "max-ttl", 0, "longest validity a request may ask for")
	return cmd
}

func pkiIssueCmd(cf *clientFlags, p func(...string) string) *cobra.Command {
	var cn string
	var altNames, ipSANs []string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "issue ROLE -common-name NAME",
		Short: "Issue a key and certificate (the key is shown once, never stored)",
		Args:  cobra.ExactArgs(1),
		RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
			if cn == "" {
				return errors.New("-common-name: required")
			}
			body := map[string]any{"common_name": cn}
			if len(altNames) > 0 {
				body["alt_names"] = strings.Join(altNames, ",")
			}
			if len(ipSANs) > 0 {
				body["ip_sans"] = strings.Join(ipSANs, ",")
			}
			if ttl > 0 {
				body["ttl"] = ttl.String()
			}
			resp, err := c.Write(cmd.Context(), p("issue", args[0]), body)
			if err != nil {
				return err
			}
			return printResponse(cmd.OutOrStdout(), cf.format, resp)
		}),
	}
	cmd.Flags().StringVar(&cn, "common-name", "", "subject common name")
	cmd.Flags().StringSliceVar(&altNames, "alt-names", nil, "DNS subject alternative names")
	cmd.Flags().StringSliceVar(&ipSANs, "ip-sans", nil, "IP subject alternative names")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "validity (default: the role's)")
	return cmd
}

func pkiSignCmd(cf *clientFlags, p func(...string) string) *cobra.Command {
	var csr, cn string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "sign ROLE -csr @file.csr",
		Short: "Sign a certificate signing request",
		Args:  cobra.ExactArgs(1),
		RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
			if csr == "" {
				return errors.New("-csr: required (@file, - for standard input, or the PEM itself)")
			}
			pem, err := readInput(cmd, csr)
			if err != nil {
				return fmt.Errorf("-csr: %w", err)
			}
			body := map[string]any{"csr": string(pem)}
			if cn != "" {
				body["common_name"] = cn
			}
			if ttl > 0 {
				body["ttl"] = ttl.String()
			}
			resp, err := c.Write(cmd.Context(), p("sign", args[0]), body)
			if err != nil {
				return err
			}
			return printResponse(cmd.OutOrStdout(), cf.format, resp)
		}),
	}
	cmd.Flags().StringVar(&csr, "csr", "", "the CSR: @file, - for standard input, or the PEM")
	cmd.Flags().StringVar(&cn, "common-name", "", "common name (default: the CSR's)")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "validity (default: the role's)")
	return cmd
}

func pkiRevokeCmd(cf *clientFlags, p func(...string) string) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke SERIAL",
		Short: "Revoke a certificate by serial number; the CRL is rebuilt",
		Args:  cobra.ExactArgs(1),
		RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
			resp, err := c.Write(cmd.Context(), p("revoke"), map[string]any{"serial_number": args[0]})
			if err != nil {
				return err
			}
			return printResponse(cmd.OutOrStdout(), cf.format, resp)
		}),
	}
}

func pkiCRLCmd(cf *clientFlags, p func(...string) string) *cobra.Command {
	return &cobra.Command{
		Use:   "crl",
		Short: "Print the current CRL (PEM)",
		Args:  cobra.NoArgs,
		RunE: runClient(cf, func(cmd *cobra.Command, _ []string, c *client.Client) error {
			body, err := c.ReadRaw(cmd.Context(), p("crl", "pem"), nil)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(body)
			return err
		}),
	}
}
