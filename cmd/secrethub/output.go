package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/core/client"
	"github.com/secrethub/secrethub/core/wire"
)

// tokenFile is where `secrethub login` keeps the token for later commands,
// when SECRETHUB_TOKEN is not set.
func tokenFile() string {
	if p := os.Getenv("SECRETHUB_TOKEN_FILE"); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".secrethub-token")
}

// storedToken reads the token file, if any.
func storedToken() string {
	p := tokenFile()
	if p == "" {
		return ""
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// newClientCmd makes a command group whose subcommands talk to a server
// with the shared client flags.
func newClientCmd(use, short, long string, build func(cf *clientFlags) []*cobra.Command) *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{Use: use, Short: short, Long: long}
	cf.register(cmd)
	cmd.AddCommand(build(&cf)...)
	return cmd
}

// runClient wraps a command body that needs a client.
func runClient(cf *clientFlags, body func(cmd *cobra.Command, args []string, c *client.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := cf.client()
		if err != nil {
			return err
		}
		return explain(c, body(cmd, args, c))
	}
}

// printResponse shows a response: the whole envelope as JSON, or its data
// (and auth) as a table.
func printResponse(w io.Writer, format string, resp *wire.Response) error {
	if format == "json" {
		return printJSON(w, resp)
	}
	var rows [][2]string
	if a := resp.Auth; a != nil {
		rows = append(rows,
			[2]string{"token", a.ClientToken},
			[2]string{"token_accessor", a.Accessor},
			[2]string{"token_duration", fmt.Sprintf("%ds", a.LeaseDuration)},
			[2]string{"token_renewable", fmt.Sprint(a.Renewable)},
			[2]string{"token_policies", strings.Join(a.Policies, ", ")},
		)
	}
	rows = append(rows, dataRows(resp.Data)...)
	for _, warn := range resp.Warnings {
		fmt.Fprintln(w, "WARNING:", warn)
	}
	if len(rows) == 0 {
		fmt.Fprintln(w, "Success!")
		return nil
	}
	return printTable(w, rows)
}

func dataRows(data map[string]any) [][2]string {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	rows := make([][2]string, 0, len(keys))
	for _, k := range keys {
		rows = append(rows, [2]string{k, formatValue(data[k])})
	}
	return rows
}

func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "n/a"
	case string:
		return x
	case float64:
		// JSON numbers decode as float64; print whole numbers (TTLs, Unix
		// times, versions) as integers rather than 1.795e+09.
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []any, map[string]any:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return fmt.Sprint(v)
}

// readExact reads path like c.Read, but keeps the answer's numbers exactly
// as the server sent them (json.Number), so a secret's 12345678901234567890
// is not rounded through float64.
func readExact(ctx context.Context, c *client.Client, path string, query url.Values) (*wire.Response, error) {
	raw, err := c.ReadRaw(ctx, path, query)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var resp wire.Response
	if err := dec.Decode(&resp); err != nil {
		return nil, fmt.Errorf("GET %s: decode answer: %w", path, err)
	}
	return &resp, nil
}

// writeTokenFile stores tok in path with mode 0600, replacing the file
// atomically (a temporary file in the same directory, then rename), so an
// existing file with wider permissions never holds the new token.
func writeTokenFile(path, tok string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".secrethub-token-*")
	if err != nil {
		return fmt.Errorf("store token: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("store token: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("store token: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("store token: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("store token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("store token: %w", err)
	}
	return nil
}

// printKeys prints a list answer one key a line.
func printKeys(w io.Writer, format string, resp *wire.Response) error {
	if format == "json" {
		return printJSON(w, resp.Data["keys"])
	}
	keys, _ := resp.Data["keys"].([]any)
	fmt.Fprintln(w, "Keys")
	fmt.Fprintln(w, "----")
	for _, k := range keys {
		fmt.Fprintln(w, k)
	}
	return nil
}

// readInput reads a value argument: "-" is standard input, "@path" a file,
// anything else the value itself.
func readInput(cmd *cobra.Command, arg string) ([]byte, error) {
	switch {
	case arg == "-":
		return io.ReadAll(cmd.InOrStdin())
	case strings.HasPrefix(arg, "@"):
		return os.ReadFile(arg[1:])
	}
	return []byte(arg), nil
}
