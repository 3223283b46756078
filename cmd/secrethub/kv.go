package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/secrethub/secrethub/core/client"
)

func newKVCmd() *cobra.Command {
	var mount string
	cmd := newClientCmd("kv", "Read and write versioned secrets",
		`Read and write versioned secrets in the KV engine mounted at -mount
(default "secrets"). Every write makes a new version; older versions stay
readable until they are destroyed or pruned by max versions.

  secrethub kv put app/db user=app password=s3cr3t
  secrethub kv get -field=password app/db
  secrethub kv history app/db`,
		func(cf *clientFlags) []*cobra.Command {
			p := func(path string) string { return strings.Trim(mount, "/") + "/" + strings.TrimLeft(path, "/") }
			return []*cobra.Command{
				kvGetCmd(cf, p), kvPutCmd(cf, p), kvListCmd(cf, p), kvHistoryCmd(cf, p),
				kvDeleteCmd(cf, p),
				kvActionCmd(cf, p, "undelete", "Undeleted", "Restore soft-deleted versions",
					"Restore soft-deleted versions of a secret. Destroyed versions cannot be restored."),
				kvActionCmd(cf, p, "destroy", "Destroyed", "Destroy versions permanently",
					"Remove versions' data permanently. Unlike delete, this cannot be undone."),
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
		Long: `Read a secret's latest version, or -version N. -field prints one field's
value alone (for scripts); -format=json prints the whole answer.`,
		Args: cobra.ExactArgs(1),
		RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
			q := url.Values{}
			if version > 0 {
				q.Set("version", strconv.Itoa(version))
			}
			resp, err := readExact(cmd.Context(), c, p(args[0]), q)
			if errors.Is(err, client.ErrNotFound) {
				return explainMissing(cmd.Context(), c, p(args[0]), args[0], version)
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

// explainMissing says why a read of a secret's version found nothing: no
// such secret, or the version is deleted, destroyed or was never written.
func explainMissing(ctx context.Context, c *client.Client, apiPath, path string, version int) error {
	resp, err := c.Read(ctx, apiPath, url.Values{"history": {"true"}})
	if err != nil {
		if errors.Is(err, client.ErrNotFound) {
			return fmt.Errorf("no secret at %s", path)
		}
		// The history is only for a better message; the read found nothing.
		return fmt.Errorf("no secret at %s (version %d)", path, version)
	}
	v := version
	if v == 0 {
		v = toInt(resp.Data["current_version"])
	}
	versions, _ := resp.Data["versions"].([]any)
	for _, e := range versions {
		m, _ := e.(map[string]any)
		if toInt(m["version"]) != v {
			continue
		}
		switch {
		case m["destroyed"] == true:
			return fmt.Errorf("version %d of %s is destroyed", v, path)
		case formatValue(m["deletion_time"]) != "":
			return fmt.Errorf("version %d of %s is deleted; \"secrethub kv undelete -versions %d %s\" restores it", v, path, v, path)
		}
	}
	return fmt.Errorf("secret %s has no version %d (see \"secrethub kv history %s\")", path, v, path)
}

// toInt reads a JSON number decoded as float64 or json.Number; anything
// else is 0.
func toInt(v any) int {
	switch x := v.(type) {
	case float64:
		return int(x)
	case json.Number:
		n, _ := x.Int64()
		return int(n)
	}
	return 0
}

func kvPutCmd(cf *clientFlags, p func(string) string) *cobra.Command {
	cas := -1
	cmd := &cobra.Command{
		Use:   "put PATH [KEY=VALUE ...|@file.json|-]",
		Short: "Write a new version of a secret",
		Long: `Write a new version of a secret. The data is KEY=VALUE pairs (VALUE may
be @file to read a file, or - for standard input), or a single argument
@file.json / @file.yaml / - holding a JSON or YAML object. -cas N writes
only if the current version is N (0: only if the secret does not exist).

Numbers in a JSON or YAML object are stored exactly as written.`,
		Args: cobra.MinimumNArgs(2),
		RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
			data, err := parseKVData(cmd, args[1:])
			if err != nil {
				return err
			}
			// Always the wrapped form {"data": ..., "options": ...}: a bare
			// body whose keys happen to be "action" and "versions" would be
			// read by the server as a delete/undelete/destroy instruction.
			options := map[string]any{}
			if cas >= 0 {
				options["cas"] = cas
			}
			resp, err := c.Write(cmd.Context(), p(args[0]), map[string]any{"data": data, "options": options})
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
		data, err := parseObject(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: want a JSON or YAML object of the secret's fields: %w", args[0], err)
		}
		return data, nil
	}
	data := map[string]any{}
	stdinUsed := false
	for _, kv := range args {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want KEY=VALUE", kv)
		}
		if _, dup := data[k]; dup {
			return nil, fmt.Errorf("%s: given twice", k)
		}
		if v == "-" {
			if stdinUsed {
				return nil, fmt.Errorf("%s: standard input (-) can be read only once", k)
			}
			stdinUsed = true
		}
		raw, err := readInput(cmd, v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		data[k] = string(raw)
	}
	return data, nil
}

// parseObject parses a JSON or YAML object, keeping numbers exact
// (json.Number) so that they reach the server as written.
func parseObject(raw []byte) (map[string]any, error) {
	js := raw
	if !json.Valid(raw) {
		var err error
		if js, err = yaml.YAMLToJSONStrict(raw); err != nil {
			return nil, err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var data map[string]any
	if err := dec.Decode(&data); err != nil {
		return nil, err
	}
	if data == nil {
		return nil, errors.New("empty document")
	}
	return data, nil
}

func kvListCmd(cf *clientFlags, p func(string) string) *cobra.Command {
	return &cobra.Command{
		Use:   "list [FOLDER]",
		Short: "List the secrets and folders in a folder",
		Long:  `List the secrets and folders in FOLDER (default: the mount's top). Folders end in "/".`,
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
		Long: `Show a secret's versions, oldest first: when each was created, whether it
is soft-deleted (and when) and whether it is destroyed.`,
		Args: cobra.ExactArgs(1),
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
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "Version\tCreated\tDeleted\tDestroyed")
			versions, _ := resp.Data["versions"].([]any)
			for _, v := range versions {
				m, _ := v.(map[string]any)
				deleted := formatValue(m["deletion_time"])
				if deleted == "" {
					deleted = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", formatValue(m["version"]), formatValue(m["created_time"]),
					deleted, formatValue(m["destroyed"]))
			}
			return tw.Flush()
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
			if len(versions) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "Success! Deleted %s of %s.\n", versionsText(versions), args[0])
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "Success! Deleted the latest version of %s.\n", args[0])
			}
			return nil
		}),
	}
	cmd.Flags().IntSliceVar(&versions, "versions", nil, "versions to delete (default: the latest)")
	return cmd
}

func kvActionCmd(cf *clientFlags, p func(string) string, action, done, short, long string) *cobra.Command {
	var versions []int
	cmd := &cobra.Command{
		Use:   action + " PATH -versions N[,N...]",
		Short: short,
		Long:  long,
		Args:  cobra.ExactArgs(1),
		RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
			if len(versions) == 0 {
				return errors.New("-versions: give the versions to " + action)
			}
			body := map[string]any{"action": action, "versions": versions}
			if _, err := c.Write(cmd.Context(), p(args[0]), body); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Success! %s %s of %s.\n", done, versionsText(versions), args[0])
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

// versionsText is "version 3" or "versions 1,2" for a message.
func versionsText(v []int) string {
	if len(v) == 1 {
		return "version " + strconv.Itoa(v[0])
	}
	return "versions " + joinInts(v)
}
