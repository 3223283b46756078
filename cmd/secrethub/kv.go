package main

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/secrethub/secrethub/core/client"
)

func newKVCmd() *cobra.Command {
	var mount string
	cmd := newClientCmd("kv", "Read and write versioned secrets",
		`Read and write versioned secrets in the KV engine mounted at -mount
(default "secrets"). Every write makes a new version; older versions stay
readable until they are destroyed or pruned by max versions.`,
		func(cf *clientFlags) []*cobra.Command {
			p := func(path string) string { return strings.Trim(mount, "/") + "/" + strings.TrimLeft(path, "/") }
			return []*cobra.Command{
				kvGetCmd(cf, p), kvPutCmd(cf, p), kvListCmd(cf, p), kvHistoryCmd(cf, p),
				kvDeleteCmd(cf, p), kvActionCmd(cf, p, "undelete", "Restore soft-deleted versions"),
				kvActionCmd(cf, p, "destroy", "Destroy versions permanently"),
			}
		})
	cmd.PersistentFlags().StringVar(&mount, "mount", "secrets", "mount path of the KV engine")
	return cmd
}

func kvGetCmd(cf *clientFlags, p func(string) string) *cobra.Command {
	var version int
	var field string
	cmd := &cobra.Command{
		Use:   "get PATH",
		Short: "Read a secret (latest version, or -version N)",
		Args:  cobra.ExactArgs(1),
		RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
			q := url.Values{}
			if version > 0 {
				q.Set("version", strconv.Itoa(version))
			}
			resp, err := c.Read(cmd.Context(), p(args[0]), q)
			if errors.Is(err, client.ErrNotFound) {
				return fmt.Errorf("no secret at %s", args[0])
			}
			if err != nil {
				return err
			}
			if field != "" {
				v, ok := resp.Data[field]
				if !ok {
					return fmt.Errorf("secret %s has no field %q", args[0], field)
				}
				fmt.Fprintln(cmd.OutOrStdout(), formatValue(v))
				return nil
			}
			return printResponse(cmd.OutOrStdout(), cf.format, resp)
		}),
	}
	cmd.Flags().IntVar(&version, "version", 0, "version to read (default: latest)")
	cmd.Flags().StringVar(&field, "field", "", "print only this field's value")
	return cmd
}

func kvPutCmd(cf *clientFlags, p func(string) string) *cobra.Command {
	cas := -1
	cmd := &cobra.Command{
		Use:   "put PATH [KEY=VALUE ...|@file.json|-]",
		Short: "Write a new version of a secret",
		Long: `Write a new version of a secret. The data is KEY=VALUE pairs (VALUE may
be @file to read a file, or - for standard input), or a single argument
@file.json / @file.yaml / - holding a JSON or YAML object. -cas N writes
only if the current version is N (0: only if the secret does not exist).`,
		Args: cobra.MinimumNArgs(2),
		RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
			data, err := parseKVData(cmd, args[1:])
			if err != nil {
				return err
			}
			var body any = data
			if cas >= 0 {
				body = map[string]any{"data": data, "options": map[string]any{"cas": cas}}
			}
			resp, err := c.Write(cmd.Context(), p(args[0]), body)
			if err != nil {
				return err
			}
			return printResponse(cmd.OutOrStdout(), cf.format, resp)
		}),
	}
	cmd.Flags().IntVar(&cas, "cas", -1, "check-and-set: write only if the current version is this (0: create only)")
	return cmd
}

// parseKVData reads a secret's data from KEY=VALUE pairs or one JSON/YAML
// object argument.
func parseKVData(cmd *cobra.Command, args []string) (map[string]any, error) {
	if len(args) == 1 && (args[0] == "-" || strings.HasPrefix(args[0], "@")) {
		raw, err := readInput(cmd, args[0])
		if err != nil {
			return nil, err
		}
		var data map[string]any
		if err := yaml.Unmarshal(raw, &data); err != nil || data == nil {
			return nil, fmt.Errorf("%s: want a JSON or YAML object of the secret's fields", args[0])
		}
		return data, nil
	}
	data := map[string]any{}
	for _, kv := range args {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want KEY=VALUE", kv)
		}
		raw, err := readInput(cmd, v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		data[k] = string(raw)
	}
	return data, nil
}

func kvListCmd(cf *clientFlags, p func(string) string) *cobra.Command {
	return &cobra.Command{
		Use:   "list [FOLDER]",
		Short: "List the secrets and folders in a folder",
		Args:  cobra.MaximumNArgs(1),
		RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
			folder := ""
			if len(args) == 1 {
				folder = args[0]
			}
			resp, err := c.List(cmd.Context(), strings.TrimSuffix(p(folder), "/")+"/")
			if errors.Is(err, client.ErrNotFound) {
				return fmt.Errorf("nothing under %q", folder)
			}
			if err != nil {
				return err
			}
			return printKeys(cmd.OutOrStdout(), cf.format, resp)
		}),
	}
}

func kvHistoryCmd(cf *clientFlags, p func(string) string) *cobra.Command {
	return &cobra.Command{
		Use:   "history PATH",
		Short: "Show a secret's versions",
		Args:  cobra.ExactArgs(1),
		RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
			resp, err := c.Read(cmd.Context(), p(args[0]), url.Values{"history": {"true"}})
			if errors.Is(err, client.ErrNotFound) {
				return fmt.Errorf("no secret at %s", args[0])
			}
			if err != nil {
				return err
			}
			if cf.format == "json" {
				return printJSON(cmd.OutOrStdout(), resp.Data)
			}
			out := cmd.OutOrStdout()
			versions, _ := resp.Data["versions"].([]any)
			fmt.Fprintf(out, "%-8s  %-30s  %-30s  %s\n", "Version", "Created", "Deleted", "Destroyed")
			for _, v := range versions {
				m, _ := v.(map[string]any)
				fmt.Fprintf(out, "%-8s  %-30s  %-30s  %s\n", formatValue(m["version"]), formatValue(m["created_time"]),
					formatValue(m["deletion_time"]), formatValue(m["destroyed"]))
			}
			return nil
		}),
	}
}

func kvDeleteCmd(cf *clientFlags, p func(string) string) *cobra.Command {
	var versions []int
	cmd := &cobra.Command{
		Use:   "delete PATH",
		Short: "Soft-delete the latest version (or -versions)",
		Long:  "Soft-delete the latest version of a secret, or the listed -versions. Undelete restores them.",
		Args:  cobra.ExactArgs(1),
		RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
			q := url.Values{}
			if len(versions) > 0 {
				q.Set("versions", joinInts(versions))
			}
			if _, err := c.Delete(cmd.Context(), p(args[0]), q); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Success! Deleted %s.\n", args[0])
			return nil
		}),
	}
	cmd.Flags().IntSliceVar(&versions, "versions", nil, "versions to delete (default: the latest)")
	return cmd
}

func kvActionCmd(cf *clientFlags, p func(string) string, action, short string) *cobra.Command {
	var versions []int
	cmd := &cobra.Command{
		Use:   action + " PATH -versions N[,N...]",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
			if len(versions) == 0 {
				return errors.New("-versions: give the versions to " + action)
			}
			body := map[string]any{"action": action, "versions": versions}
			if _, err := c.Write(cmd.Context(), p(args[0]), body); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Success! %s %s versions %s.\n", action, args[0], joinInts(versions))
			return nil
		}),
	}
	cmd.Flags().IntSliceVar(&versions, "versions", nil, "versions to "+action)
	return cmd
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}
