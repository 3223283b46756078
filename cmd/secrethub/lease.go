package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/core/client"
)

func newLeaseCmd() *cobra.Command {
	return newClientCmd("lease", "List, look up, renew and revoke the leases of dynamic credentials",
		`List, look up, renew and revoke leases (Vault's sys/leases endpoints).
Every dynamic credential (a database user, a Redis user, AWS keys) comes
with a lease: its ID, a TTL and a maximum TTL. SecretHub revokes the
credential when the lease expires, is revoked, or its token is revoked.

  secrethub lease list -prefix database/creds/app
  secrethub lease lookup database/creds/app/Qx1...
  secrethub lease renew -increment 1h database/creds/app/Qx1...
  secrethub lease revoke database/creds/app/Qx1...
  secrethub lease revoke -prefix database/creds/app

Listing needs read on sys/leases; renew and lookup are in the default
policy; revoke needs update on sys/leases/revoke, and -prefix sudo on
sys/leases/revoke-prefix/<prefix>.`,
		func(cf *clientFlags) []*cobra.Command {
			var prefix string
			list := &cobra.Command{
				Use:   "list [-prefix PREFIX]",
				Short: "List leases, with their expiry and revocation state",
				Long: `List every lease (or those whose ID starts with -prefix): its ID, when it
expires, its TTL left, and its state: "active", "revoking" (a revocation
failed and is retried in the background, with the last error), or
"failed" (its mount is gone; "lease revoke -prefix ID -force" removes it).`,
				Args: cobra.NoArgs,
				RunE: runClient(cf, func(cmd *cobra.Command, _ []string, c *client.Client) error {
					var q url.Values
					if prefix != "" {
						q = url.Values{"prefix": {prefix}}
					}
					resp, err := c.Read(cmd.Context(), "sys/leases", q)
					if err != nil {
						return err
					}
					leases, _ := resp.Data["leases"].([]any)
					if cf.format == "json" {
						if leases == nil {
							leases = []any{}
						}
						return printJSON(cmd.OutOrStdout(), leases)
					}
					if len(leases) == 0 {
						fmt.Fprintln(cmd.OutOrStdout(), "No leases.")
						return nil
					}
					tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tEXPIRES\tTTL\tRENEWABLE\tSTATE")
					for _, raw := range leases {
						l, _ := raw.(map[string]any)
						fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", formatValue(l["id"]), formatValue(l["expire_time"]),
							secondsText(l["ttl"]), formatValue(l["renewable"]), leaseState(l))
					}
					return tw.Flush()
				}),
			}
			list.Flags().StringVar(&prefix, "prefix", "", "only leases whose ID starts with this")

			lookup := &cobra.Command{
				Use:   "lookup LEASE_ID",
				Short: "Show a lease: issue and expiry times, TTL left, renewable",
				Args:  cobra.ExactArgs(1),
				RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
					resp, err := c.Write(cmd.Context(), "sys/leases/lookup", map[string]any{"lease_id": args[0]})
					if err != nil {
						return err
					}
					return printResponse(cmd.OutOrStdout(), cf.format, resp)
				}),
			}

			var increment time.Duration
			renew := &cobra.Command{
				Use:   "renew [-increment DURATION] LEASE_ID",
				Short: "Extend a lease (never past its maximum TTL)",
				Long: `Extend a lease to -increment from now (default: the lease's TTL), never past
its maximum TTL; the engine extends the credential too (a database user's
VALID UNTIL). A lease issued non-renewable cannot be renewed.`,
				Args: cobra.ExactArgs(1),
				RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
					body := map[string]any{"lease_id": args[0]}
					if increment > 0 {
						body["increment"] = increment.String()
					}
					resp, err := c.Write(cmd.Context(), "sys/leases/renew", body)
					if err != nil {
						return err
					}
					if cf.format == "json" {
						return printJSON(cmd.OutOrStdout(), resp)
					}
					for _, w := range resp.Warnings {
						fmt.Fprintln(cmd.OutOrStdout(), "WARNING:", w)
					}
					return printTable(cmd.OutOrStdout(), [][2]string{
						{"lease_id", resp.LeaseID},
						{"lease_duration", (time.Duration(resp.LeaseDuration) * time.Second).String()},
						{"lease_renewable", fmt.Sprint(resp.Renewable)},
					})
				}),
			}
			renew.Flags().DurationVar(&increment, "increment", 0, "new TTL from now (default: the lease's TTL)")

			var revokePrefix string
			var force, syncRevoke bool
			revoke := &cobra.Command{
				Use:   "revoke LEASE_ID | -prefix PREFIX",
				Short: "Revoke a lease (or every lease below a prefix) and its credential",
				Long: `Revoke a lease: the engine removes the credential, then the lease goes. If
the target is down, the command fails with the reason and SecretHub keeps
retrying in the background until the revocation succeeds.

-prefix revokes every lease below PREFIX (whole path segments:
"database/creds" covers "database/creds/app/..."); it needs sudo. With
-force, leases whose revocation fails are removed anyway: their
credentials may then outlive them. -sync=false queues a single revocation
and returns at once.`,
				Args: cobra.MaximumNArgs(1),
				RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
					out := cmd.OutOrStdout()
					switch {
					case revokePrefix != "" && len(args) == 1:
						return errors.New("LEASE_ID and -prefix: give one")
					case revokePrefix != "":
						path := "sys/leases/revoke-prefix/"
						if force {
							path = "sys/leases/revoke-force/"
						}
						if _, err := c.Write(cmd.Context(), path+strings.TrimPrefix(revokePrefix, "/"), map[string]any{}); err != nil {
							return err
						}
						fmt.Fprintf(out, "Success! Revoked the leases below %s\n", revokePrefix)
						return nil
					case len(args) == 0:
						return errors.New("give a LEASE_ID, or -prefix PREFIX")
					case force:
						return errors.New("-force applies to -prefix only")
					}
					body := map[string]any{"lease_id": args[0]}
					if !syncRevoke {
						body["sync"] = false
					}
					if _, err := c.Write(cmd.Context(), "sys/leases/revoke", body); err != nil {
						return err
					}
					if !syncRevoke {
						fmt.Fprintf(out, "Success! Revocation queued for lease: %s\n", args[0])
					} else {
						fmt.Fprintf(out, "Success! Revoked lease: %s\n", args[0])
					}
					return nil
				}),
			}
			revoke.Flags().StringVar(&revokePrefix, "prefix", "", "revoke every lease below this prefix (needs sudo)")
			revoke.Flags().BoolVar(&force, "force", false, "with -prefix: remove leases even when their revocation fails")
			revoke.Flags().BoolVar(&syncRevoke, "sync", true, "wait for the revocation (-sync=false: queue it and return)")
			return []*cobra.Command{list, lookup, renew, revoke}
		})
}

// leaseState is a listed lease's state column.
func leaseState(l map[string]any) string {
	r, _ := l["revocation"].(map[string]any)
	switch {
	case r == nil:
		return "active"
	case r["failed"] == true:
		return "failed: " + formatValue(r["last_error"])
	}
	return fmt.Sprintf("revoking (%s failed attempts; last error: %s)", formatValue(r["attempts"]), formatValue(r["last_error"]))
}

// secondsText shows a number of seconds as a duration.
func secondsText(v any) string {
	var secs float64
	switch x := v.(type) {
	case float64:
		secs = x
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return x.String()
		}
		secs = f
	default:
		return formatValue(v)
	}
	return (time.Duration(secs) * time.Second).String()
}
