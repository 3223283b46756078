package main

import (
	"fmt"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/core/client"
)

func newRotationCmd() *cobra.Command {
	return newClientCmd("rotation", "Schedule the rotation of static secrets",
		`Schedule the rotation of one key of a KV secret: every period SecretHub
writes a new version of the secret with that key set to a fresh random
value (the other keys kept). The replaced version stays readable by its
version number for the grace period, then it is soft-deleted.

  secrethub rotation schedule api-key -path secrets/app/api -key token -period 24h
  secrethub rotation schedule db-pw -path secret/data/app/db -key password -period 720h -grace 2h -length 48 -charset alnum-symbols
  secrethub rotation list
  secrethub rotation read api-key
  secrethub rotation rotate api-key
  secrethub rotation delete api-key

-path is the API path of the secret: secrets/<secret> on a simple KV mount,
<mount>/data/<secret> on a kv-v2 mount. The commands need the matching
capabilities on sys/rotation/schedules/<name> and sys/rotation/rotate/<name>;
the default policy grants none.`,
		func(cf *clientFlags) []*cobra.Command {
			var path, key, charset string
			var period, grace time.Duration
			var length int
			schedule := &cobra.Command{
				Use:   "schedule NAME -path PATH -key KEY -period DURATION [-grace DURATION] [-length N] [-charset CHARSET]",
				Short: "Create or change a rotation schedule",
				Long: `Create the schedule NAME, or change it: on a change only the flags given
are sent, the rest keep their values. A new schedule first rotates one
period from now; "rotation rotate NAME" rotates at once.

-period is at least 1m. -grace (default 1h, or the period if shorter) is
how long the replaced version stays readable, at most the period.
-length is 8 to 128 characters (default 32); -charset is alnum (default),
alnum-symbols, hex or base64url.`,
				Args: cobra.ExactArgs(1),
				RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
					body := map[string]any{}
					f := cmd.Flags()
					if f.Changed("path") {
						body["path"] = path
					}
					if f.Changed("key") {
						body["key"] = key
					}
					if f.Changed("period") {
						body["period"] = period.String()
					}
					if f.Changed("grace") {
						body["grace"] = grace.String()
					}
					if f.Changed("length") {
						body["length"] = length
					}
					if f.Changed("charset") {
						body["charset"] = charset
					}
					resp, err := c.Write(cmd.Context(), "sys/rotation/schedules/"+url.PathEscape(args[0]), body)
					if err != nil {
						return err
					}
					return printSchedule(cmd, cf.format, resp.Data, resp)
				}),
			}
			schedule.Flags().StringVar(&path, "path", "", "API path of the KV secret (secrets/app/api, or <mount>/data/<secret> on kv-v2)")
			schedule.Flags().StringVar(&key, "key", "", "key of the secret to replace")
			schedule.Flags().DurationVar(&period, "period", 0, "time between rotations (at least 1m)")
			schedule.Flags().DurationVar(&grace, "grace", 0, "how long the replaced version stays readable (default 1h, at most the period)")
			schedule.Flags().IntVar(&length, "length", 32, "length of the generated value, 8 to 128")
			schedule.Flags().StringVar(&charset, "charset", "alnum", "alnum, alnum-symbols, hex or base64url")

			list := &cobra.Command{
				Use:   "list",
				Short: "List the rotation schedules",
				Args:  cobra.NoArgs,
				RunE: runClient(cf, func(cmd *cobra.Command, _ []string, c *client.Client) error {
					resp, err := c.List(cmd.Context(), "sys/rotation/schedules")
					if err != nil {
						return err
					}
					return printKeys(cmd.OutOrStdout(), cf.format, resp)
				}),
			}
			read := &cobra.Command{
				Use:   "read NAME",
				Short: "Show a schedule: its settings, last and next rotation, last error",
				Args:  cobra.ExactArgs(1),
				RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
					resp, err := c.Read(cmd.Context(), "sys/rotation/schedules/"+url.PathEscape(args[0]), nil)
					if err != nil {
						return err
					}
					return printSchedule(cmd, cf.format, resp.Data, resp)
				}),
			}
			del := &cobra.Command{
				Use:   "delete NAME",
				Short: "Delete a schedule (the secret and its versions are left as they are)",
				Args:  cobra.ExactArgs(1),
				RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
					if _, err := c.Delete(cmd.Context(), "sys/rotation/schedules/"+url.PathEscape(args[0]), nil); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "Deleted rotation schedule %s\n", args[0])
					return nil
				}),
			}
			rotate := &cobra.Command{
				Use:   "rotate NAME",
				Short: "Rotate now, whether due or not",
				Long: `Rotate now: write a new version with a fresh value. The version it replaces
stays readable for the grace period; one replaced earlier and still in its
grace is soft-deleted at once. The new value is not printed: read the
secret to see it.`,
				Args: cobra.ExactArgs(1),
				RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
					resp, err := c.Write(cmd.Context(), "sys/rotation/rotate/"+url.PathEscape(args[0]), map[string]any{})
					if err != nil {
						return err
					}
					return printSchedule(cmd, cf.format, resp.Data, resp)
				}),
			}
			return []*cobra.Command{schedule, list, read, del, rotate}
		})
}

// printSchedule shows a schedule as a table in a fixed order, or the whole
// answer as JSON.
func printSchedule(cmd *cobra.Command, format string, d map[string]any, resp any) error {
	w := cmd.OutOrStdout()
	if format == "json" {
		return printJSON(w, resp)
	}
	cleanup := "none"
	if c, ok := d["cleanup"].(map[string]any); ok {
		cleanup = fmt.Sprintf("version %s at %s", formatValue(c["version"]), formatValue(c["at"]))
	}
	var rows [][2]string
	for _, k := range []string{"name", "kind", "path", "key", "length", "charset", "period", "grace",
		"last_rotation", "next_rotation", "last_version", "last_error"} {
		rows = append(rows, [2]string{k, formatValue(d[k])})
	}
	rows = append(rows, [2]string{"pending_cleanup", cleanup})
	return printTable(w, rows)
}
