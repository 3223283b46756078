package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/core/client"
	"github.com/secrethub/secrethub/core/wire"
)

func newLoginCmd() *cobra.Command {
	var cf clientFlags
	var method, roleID, secretID, secretIDFile, mount string
	var noStore bool
	cmd := &cobra.Command{
		Use:   "login [TOKEN]",
		Short: "Log in and keep the token for later commands",
		Long: `Log in to SecretHub and store the token in ~/.secrethub-token (mode 0600;
SECRETHUB_TOKEN_FILE overrides the path), where later commands find it when
SECRETHUB_TOKEN is not set.

  secrethub login                       # asks for a token
  secrethub login -method=approle -role-id=... -secret-id-file=/run/secret-id

For AppRole, the role and secret IDs also come from SECRETHUB_ROLE_ID and
SECRETHUB_SECRET_ID.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var tok string
			switch method {
			case "token":
				if len(args) == 1 {
					tok = args[0]
				} else if tok, err = readSecret(cmd.InOrStdin(), cmd.ErrOrStderr(), "token", "Token (will be hidden): "); err != nil {
					return err
				}
				c.SetToken(tok)
				resp, err := c.Read(cmd.Context(), "auth/token/lookup-self", nil)
				if errors.Is(err, client.ErrPermissionDenied) {
					return errors.New("login failed: the server does not accept this token (unknown, expired or revoked)")
				}
				if err != nil {
					return explain(c, err)
				}
				if cf.format == "json" {
					if err := printJSON(cmd.OutOrStdout(), resp); err != nil {
						return err
					}
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "Success! Logged in; token policies: %s\n", formatValue(resp.Data["policies"]))
				}
			case "approle":
				if roleID == "" {
					roleID = os.Getenv("SECRETHUB_ROLE_ID")
				}
				if secretIDFile != "" {
					b, err := os.ReadFile(secretIDFile)
					if err != nil {
						return fmt.Errorf("-secret-id-file: %w", err)
					}
					secretID = strings.TrimSpace(string(b))
				}
				if secretID == "" {
					secretID = os.Getenv("SECRETHUB_SECRET_ID")
				}
				if roleID == "" || secretID == "" {
					return errors.New("approle login needs -role-id and -secret-id-file (or SECRETHUB_ROLE_ID and SECRETHUB_SECRET_ID)")
				}
				// A login needs no token: do not send a stored one along.
				c.SetToken("")
				resp, err := c.Write(cmd.Context(), "auth/"+strings.Trim(mount, "/")+"/login", map[string]any{"role_id": roleID, "secret_id": secretID})
				if errors.Is(err, client.ErrPermissionDenied) {
					return errors.New("login failed: invalid role ID or secret ID (or the secret ID is used up or expired)")
				}
				if err != nil {
					return explain(c, err)
				}
				if resp.Auth == nil {
					return errors.New("login answered without a token")
				}
				tok = resp.Auth.ClientToken
				if err := printResponse(cmd.OutOrStdout(), cf.format, resp); err != nil {
					return err
				}
			default:
				return fmt.Errorf("-method %q: want token or approle", method)
			}
			if noStore {
				return nil
			}
			p := tokenFile()
			if p == "" {
				return errors.New("cannot find a home directory for the token file; set SECRETHUB_TOKEN_FILE")
			}
			if err := writeTokenFile(p, tok); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Token stored in %s.\n", p)
			if os.Getenv(envToken) != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "Note: %s is set and takes precedence over the stored token; unset it to use this one.\n", envToken)
			}
			return nil
		},
	}
	cf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&method, "method", "token", "token or approle")
	f.StringVar(&mount, "path", "approle", "mount path of the AppRole auth method")
	f.StringVar(&roleID, "role-id", "", "AppRole role ID")
	f.StringVar(&secretID, "secret-id", "", "AppRole secret ID (prefer -secret-id-file: arguments are visible to other users)")
	f.StringVar(&secretIDFile, "secret-id-file", "", "file holding the AppRole secret ID")
	f.BoolVar(&noStore, "no-store", false, "do not store the token")
	return cmd
}

func newPolicyCmd() *cobra.Command {
	return newClientCmd("policy", "Write, read and explain access policies",
		`Manage ACL policies. A policy is a JSON or YAML document of rules: a path
glob, capabilities (create, read, update, delete, list, sudo, deny), an
effect and optional conditions. See docs/policies.md.`,
		func(cf *clientFlags) []*cobra.Command {
			var path, tok, accessor, capability string
			explain := &cobra.Command{
				Use:   "explain -path PATH [-capability read] [-token TOKEN | -accessor A]",
				Short: "Say which rule of which policy allows or denies a request",
				Long: `Evaluate one capability on a path for a token (default: your own) and
say which rule of which policy allowed or denied it, and which condition
failed. Explaining another token's access (-token or -accessor) needs sudo
on sys/policies/explain for your own token.`,
				Args: cobra.NoArgs,
				RunE: runClient(cf, func(cmd *cobra.Command, _ []string, c *client.Client) error {
					if path == "" {
						return errors.New("-path: required")
					}
					body := map[string]any{"path": path, "capability": capability}
					endpoint := "sys/policies/explain-self"
					switch {
					case tok != "" && accessor != "":
						return errors.New("-token and -accessor: give one")
					case tok != "":
						endpoint, body["token"] = "sys/policies/explain", tok
					case accessor != "":
						endpoint, body["accessor"] = "sys/policies/explain", accessor
					}
					resp, err := c.Write(cmd.Context(), endpoint, body)
					if err != nil {
						return err
					}
					if cf.format == "json" {
						return printJSON(cmd.OutOrStdout(), resp.Data)
					}
					printExplain(cmd.OutOrStdout(), capability, path, resp.Data)
					return nil
				}),
			}
			explain.Flags().StringVar(&path, "path", "", "API path to check, e.g. secrets/app/db")
			explain.Flags().StringVar(&capability, "capability", "read", "create, read, update, delete, list or sudo")
			explain.Flags().StringVar(&tok, "token", "", "token whose access to explain (default: yours)")
			explain.Flags().StringVar(&accessor, "accessor", "", "accessor of the token whose access to explain")
			return []*cobra.Command{
				{
					Use:   "write NAME FILE|-",
					Short: "Create or replace a policy from a JSON or YAML file",
					Args:  cobra.ExactArgs(2),
					RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
						src := args[1]
						if src != "-" {
							src = "@" + src
						}
						doc, err := readInput(cmd, src)
						if err != nil {
							return err
						}
						if _, err := c.Write(cmd.Context(), "sys/policies/acl/"+args[0], map[string]any{"policy": string(doc)}); err != nil {
							return err
						}
						fmt.Fprintf(cmd.OutOrStdout(), "Success! Wrote policy %s.\n", args[0])
						return nil
					}),
				},
				{
					Use:   "read NAME",
					Short: "Show a policy document",
					Args:  cobra.ExactArgs(1),
					RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
						resp, err := c.Read(cmd.Context(), "sys/policies/acl/"+args[0], nil)
						if errors.Is(err, client.ErrNotFound) {
							return fmt.Errorf("no policy named %q", args[0])
						}
						if err != nil {
							return err
						}
						if cf.format == "json" {
							return printJSON(cmd.OutOrStdout(), resp.Data)
						}
						doc := formatValue(resp.Data["policy"])
						if !strings.HasSuffix(doc, "\n") {
							doc += "\n"
						}
						fmt.Fprint(cmd.OutOrStdout(), doc)
						return nil
					}),
				},
				{
					Use:   "list",
					Short: "List policies",
					Args:  cobra.NoArgs,
					RunE: runClient(cf, func(cmd *cobra.Command, _ []string, c *client.Client) error {
						resp, err := c.List(cmd.Context(), "sys/policies/acl")
						if err != nil {
							return err
						}
						return printKeys(cmd.OutOrStdout(), cf.format, resp)
					}),
				},
				{
					Use:   "delete NAME",
					Short: "Delete a policy",
					Args:  cobra.ExactArgs(1),
					RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
						if _, err := c.Delete(cmd.Context(), "sys/policies/acl/"+args[0], nil); err != nil {
							return err
						}
						fmt.Fprintf(cmd.OutOrStdout(), "Success! Deleted policy %s.\n", args[0])
						return nil
					}),
				},
				explain,
			}
		})
}

func newTokenCmd() *cobra.Command {
	return newClientCmd("token", "Create, look up, renew and revoke tokens",
		`Create, look up, renew and revoke tokens (Vault's auth/token endpoints).
A token carries policies and a TTL; lookup, renew and revoke act on your own
token (SECRETHUB_TOKEN, or the one "secrethub login" stored) unless given a
TOKEN argument or -accessor.

  secrethub token create -policy app-read -ttl 1h
  secrethub token renew -increment 2h`,
		func(cf *clientFlags) []*cobra.Command {
			var policies []string
			var ttl, maxTTL, increment time.Duration
			var orphan bool
			var display, accessor string
			create := &cobra.Command{
				Use:   "create",
				Short: "Create a child token (or -orphan)",
				Args:  cobra.NoArgs,
				RunE: runClient(cf, func(cmd *cobra.Command, _ []string, c *client.Client) error {
					body := map[string]any{"policies": policies, "display_name": display}
					if ttl > 0 {
						body["ttl"] = ttl.String()
					}
					if maxTTL > 0 {
						body["explicit_max_ttl"] = maxTTL.String()
					}
					path := "auth/token/create"
					if orphan {
						path = "auth/token/create-orphan"
					}
					resp, err := c.Write(cmd.Context(), path, body)
					if err != nil {
						return err
					}
					return printResponse(cmd.OutOrStdout(), cf.format, resp)
				}),
			}
			create.Flags().StringSliceVar(&policies, "policy", nil, "policy to attach (repeat or comma-separate)")
			create.Flags().DurationVar(&ttl, "ttl", 0, "token TTL")
			create.Flags().DurationVar(&maxTTL, "explicit-max-ttl", 0, "hard limit on the token's life, across renewals")
			create.Flags().BoolVar(&orphan, "orphan", false, "create a token without a parent (needs sudo)")
			create.Flags().StringVar(&display, "display-name", "", "name shown in logs and lookups")

			byTokenOrAccessor := func(use, short, self, byToken, byAccessor string, withIncrement bool) *cobra.Command {
				cmd := &cobra.Command{
					Use:   use + " [TOKEN]",
					Short: short,
					Args:  cobra.MaximumNArgs(1),
					RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
						body := map[string]any{}
						path := self
						switch {
						case accessor != "" && len(args) == 1:
							return errors.New("TOKEN and -accessor: give one")
						case accessor != "":
							path, body["accessor"] = byAccessor, accessor
						case len(args) == 1:
							path, body["token"] = byToken, args[0]
						}
						if withIncrement && increment > 0 {
							body["increment"] = increment.String()
						}
						var resp *wire.Response
						var err error
						if path == "auth/token/lookup-self" {
							// GET: the default policy grants read, not
							// update, on lookup-self.
							resp, err = c.Read(cmd.Context(), path, nil)
						} else {
							resp, err = c.Write(cmd.Context(), path, body)
						}
						if err != nil {
							return err
						}
						return printResponse(cmd.OutOrStdout(), cf.format, resp)
					}),
				}
				cmd.Flags().StringVar(&accessor, "accessor", "", "act on the token with this accessor instead")
				if withIncrement {
					cmd.Flags().DurationVar(&increment, "increment", 0, "new TTL from now (default: the token's creation TTL)")
				}
				return cmd
			}
			return []*cobra.Command{
				create,
				byTokenOrAccessor("lookup", "Show a token's properties (default: your own)", "auth/token/lookup-self", "auth/token/lookup", "auth/token/lookup-accessor", false),
				byTokenOrAccessor("renew", "Renew a token (default: your own)", "auth/token/renew-self", "auth/token/renew", "auth/token/renew-accessor", true),
				byTokenOrAccessor("revoke", "Revoke a token and its children (default: your own)", "auth/token/revoke-self", "auth/token/revoke", "auth/token/revoke-accessor", false),
			}
		})
}

func newAppRoleCmd() *cobra.Command {
	var mount string
	cmd := newClientCmd("approle", "Manage AppRole roles and secret IDs",
		`Manage the AppRole auth method: roles bind policies and token TTLs; a
machine logs in with the role's ID and a secret ID (secrethub login
-method=approle).`,
		func(cf *clientFlags) []*cobra.Command {
			base := func(parts ...string) string {
				return "auth/" + strings.Trim(mount, "/") + "/" + strings.Join(parts, "/")
			}
			var policies, cidrs []string
			var tokenTTL, tokenMaxTTL, secretIDTTL time.Duration
			var secretIDUses int
			write := &cobra.Command{
				Use:   "write ROLE",
				Short: "Create or update a role",
				Args:  cobra.ExactArgs(1),
				RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
					body := map[string]any{}
					f := cmd.Flags()
					if f.Changed("policy") {
						body["token_policies"] = policies
					}
					if f.Changed("token-ttl") {
						body["token_ttl"] = tokenTTL.String()
					}
					if f.Changed("token-max-ttl") {
						body["token_max_ttl"] = tokenMaxTTL.String()
					}
					if f.Changed("secret-id-ttl") {
						body["secret_id_ttl"] = secretIDTTL.String()
					}
					if f.Changed("secret-id-num-uses") {
						body["secret_id_num_uses"] = secretIDUses
					}
					if f.Changed("bound-cidr") {
						body["secret_id_bound_cidrs"] = cidrs
					}
					if _, err := c.Write(cmd.Context(), base("role", args[0]), body); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "Success! Wrote role %s.\n", args[0])
					return nil
				}),
			}
			wf := write.Flags()
			wf.StringSliceVar(&policies, "policy", nil, "policy for the role's tokens (repeat or comma-separate)")
			wf.DurationVar(&tokenTTL, "token-ttl", 0, "TTL of tokens issued at login")
			wf.DurationVar(&tokenMaxTTL, "token-max-ttl", 0, "maximum TTL of tokens issued at login")
			wf.DurationVar(&secretIDTTL, "secret-id-ttl", 0, "TTL of secret IDs (0: no expiry)")
			wf.IntVar(&secretIDUses, "secret-id-num-uses", 0, "logins per secret ID (0: unlimited)")
			wf.StringSliceVar(&cidrs, "bound-cidr", nil, "CIDR blocks logins must come from")

			simple := func(use, short string, args int, run func(cmd *cobra.Command, a []string, c *client.Client) error) *cobra.Command {
				return &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(args), RunE: runClient(cf, run)}
			}
			var accessor string
			destroy := simple("secret-id-destroy ROLE -accessor A", "Destroy a secret ID by its accessor", 1,
				func(cmd *cobra.Command, a []string, c *client.Client) error {
					if accessor == "" {
						return errors.New("-accessor: required")
					}
					_, err := c.Write(cmd.Context(), base("role", a[0], "secret-id-accessor", "destroy"), map[string]any{"secret_id_accessor": accessor})
					if errors.Is(err, client.ErrNotFound) {
						return fmt.Errorf("role %q has no secret ID with accessor %q", a[0], accessor)
					}
					if err != nil {
						return err
					}
					fmt.Fprintln(cmd.OutOrStdout(), "Success! Destroyed the secret ID.")
					return nil
				})
			destroy.Flags().StringVar(&accessor, "accessor", "", "accessor of the secret ID")
			return []*cobra.Command{
				write,
				simple("read ROLE", "Show a role", 1, func(cmd *cobra.Command, a []string, c *client.Client) error {
					resp, err := c.Read(cmd.Context(), base("role", a[0]), nil)
					if errors.Is(err, client.ErrNotFound) {
						return fmt.Errorf("no role named %q", a[0])
					}
					if err != nil {
						return err
					}
					return printResponse(cmd.OutOrStdout(), cf.format, resp)
				}),
				simple("list", "List roles", 0, func(cmd *cobra.Command, _ []string, c *client.Client) error {
					resp, err := c.List(cmd.Context(), base("role"))
					if err != nil {
						return err
					}
					return printKeys(cmd.OutOrStdout(), cf.format, resp)
				}),
				simple("delete ROLE", "Delete a role and its secret IDs", 1, func(cmd *cobra.Command, a []string, c *client.Client) error {
					if _, err := c.Delete(cmd.Context(), base("role", a[0]), nil); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "Success! Deleted role %s.\n", a[0])
					return nil
				}),
				simple("role-id ROLE", "Show a role's ID", 1, func(cmd *cobra.Command, a []string, c *client.Client) error {
					resp, err := c.Read(cmd.Context(), base("role", a[0], "role-id"), nil)
					if errors.Is(err, client.ErrNotFound) {
						return fmt.Errorf("no role named %q", a[0])
					}
					if err != nil {
						return err
					}
					return printResponse(cmd.OutOrStdout(), cf.format, resp)
				}),
				simple("secret-id ROLE", "Generate a secret ID for a role (shown once)", 1, func(cmd *cobra.Command, a []string, c *client.Client) error {
					resp, err := c.Write(cmd.Context(), base("role", a[0], "secret-id"), map[string]any{})
					if errors.Is(err, client.ErrNotFound) {
						return fmt.Errorf("no role named %q", a[0])
					}
					if err != nil {
						return err
					}
					return printResponse(cmd.OutOrStdout(), cf.format, resp)
				}),
				simple("secret-id-list ROLE", "List the accessors of a role's secret IDs", 1, func(cmd *cobra.Command, a []string, c *client.Client) error {
					resp, err := c.List(cmd.Context(), base("role", a[0], "secret-id"))
					if err != nil {
						return err
					}
					return printKeys(cmd.OutOrStdout(), cf.format, resp)
				}),
				destroy,
			}
		})
	cmd.PersistentFlags().StringVar(&mount, "path", "approle", "mount path of the AppRole auth method")
	return cmd
}

func newAuditCmd() *cobra.Command {
	return newClientCmd("audit", "Verify and export the audit log",
		`Verify the hash-chained audit log and export it. Both need sudo on
sys/audit/verify and sys/audit/export.`,
		func(cf *clientFlags) []*cobra.Command {
			var format, since, until, prefix string
			export := &cobra.Command{
				Use:   "export",
				Short: "Export audit events as JSON lines or CSV",
				Args:  cobra.NoArgs,
				RunE: runClient(cf, func(cmd *cobra.Command, _ []string, c *client.Client) error {
					q := url.Values{"format": {format}}
					for k, v := range map[string]string{"since": since, "until": until, "path_prefix": prefix} {
						if v != "" {
							q.Set(k, v)
						}
					}
					body, err := c.ReadRaw(cmd.Context(), "sys/audit/export", q)
					if err != nil {
						return err
					}
					_, err = cmd.OutOrStdout().Write(body)
					return err
				}),
			}
			export.Flags().StringVar(&format, "format", "json", "json (JSON lines) or csv")
			export.Flags().StringVar(&since, "since", "", "only events at or after this RFC 3339 time")
			export.Flags().StringVar(&until, "until", "", "only events before this RFC 3339 time")
			export.Flags().StringVar(&prefix, "path-prefix", "", "only events whose path starts with this")
			return []*cobra.Command{
				{
					Use:   "verify",
					Short: "Recompute the audit chain and report the first bad record",
					Long: `Recompute every record's hash and signature and check the chain links.
Exit code 0 when intact; 3 when a record was edited, deleted, reordered or
inserted (the first bad sequence number is reported).`,
					Args: cobra.NoArgs,
					RunE: runClient(cf, func(cmd *cobra.Command, _ []string, c *client.Client) error {
						resp, err := c.Read(cmd.Context(), "sys/audit/verify", nil)
						if err != nil {
							return err
						}
						if cf.format == "json" {
							if err := printJSON(cmd.OutOrStdout(), resp.Data); err != nil {
								return err
							}
						} else if err := printResponse(cmd.OutOrStdout(), "table", resp); err != nil {
							return err
						}
						if resp.Data["ok"] != true {
							return &exitError{code: 3, msg: "audit log verification FAILED"}
						}
						return nil
					}),
				},
				export,
				{
					Use:   "hash VALUE",
					Short: "Compute the HMAC a value appears as in the audit log",
					Args:  cobra.ExactArgs(1),
					RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
						resp, err := c.Write(cmd.Context(), "sys/audit-hash", map[string]any{"input": args[0]})
						if err != nil {
							return err
						}
						fmt.Fprintln(cmd.OutOrStdout(), formatValue(resp.Data["hash"]))
						return nil
					}),
				},
			}
		})
}

// printExplain shows a policy decision: the verdict, the rule that decided
// it, the condition that failed, and every rule examined.
func printExplain(w io.Writer, capability, path string, d map[string]any) {
	verdict := "DENIED"
	if d["allowed"] == true {
		verdict = "ALLOWED"
	}
	fmt.Fprintf(w, "%s: %s on %s\n%s\n", verdict, capability, path, formatValue(d["reason"]))
	if fc := formatValue(d["failed_condition"]); fc != "" && fc != "n/a" {
		fmt.Fprintf(w, "failed condition: %s\n", fc)
	}
	trace, _ := d["trace"].([]any)
	if len(trace) == 0 {
		return
	}
	fmt.Fprintln(w, "\nRules examined:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  Policy\tRule\tPath\tEffect\tCapabilities\tOutcome")
	var condLines []string
	for _, t := range trace {
		r, _ := t.(map[string]any)
		var caps []string
		if cs, ok := r["capabilities"].([]any); ok {
			for _, c := range cs {
				caps = append(caps, formatValue(c))
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", formatValue(r["policy"]), formatValue(r["rule_index"]),
			formatValue(r["path"]), formatValue(r["effect"]), strings.Join(caps, ","), formatValue(r["outcome"]))
		conds, _ := r["conditions"].([]any)
		for _, c := range conds {
			cm, _ := c.(map[string]any)
			state := "holds"
			switch {
			case cm["unknown"] == true:
				state = "cannot be evaluated"
			case cm["ok"] != true:
				state = "is not met"
			}
			condLines = append(condLines, fmt.Sprintf("  policy %s rule %s: condition %s %s: %s",
				formatValue(r["policy"]), formatValue(r["rule_index"]), formatValue(cm["name"]), state, formatValue(cm["why"])))
		}
	}
	tw.Flush()
	if len(condLines) > 0 {
		fmt.Fprintln(w, "\nConditions:")
		for _, l := range condLines {
			fmt.Fprintln(w, l)
		}
	}
}
