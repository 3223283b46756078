package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/secrethub/secrethub/core/client"
	"github.com/secrethub/secrethub/core/wire"
)

// Environment variables the CLI reads.
const (
	envAddr   = "SECRETHUB_ADDR"
	envToken  = "SECRETHUB_TOKEN"
	envCACert = "SECRETHUB_CACERT"
)

// clientFlags are the flags every client command shares.
type clientFlags struct {
	address string
	caCert  string
	format  string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.address, "address", "", "server address (default $"+envAddr+" or "+client.DefaultAddress+")")
	pf.StringVar(&f.caCert, "ca-cert", "", "PEM CA bundle to verify the server's certificate (default $"+envCACert+")")
	pf.StringVar(&f.format, "format", "table", "output format: table or json")
}

func (f *clientFlags) client() (*client.Client, error) {
	if f.format != "table" && f.format != "json" {
		return nil, fmt.Errorf("-format %q: want table or json", f.format)
	}
	addr := f.address
	if addr == "" {
		addr = os.Getenv(envAddr)
	}
	ca := f.caCert
	if ca == "" {
		ca = os.Getenv(envCACert)
	}
	tok := os.Getenv(envToken)
	if tok == "" {
		tok = storedToken()
	}
	return client.New(client.Config{Address: addr, Token: tok, CACertFile: ca})
}

// explain turns client errors into messages that say what to do.
func explain(c *client.Client, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, client.ErrUnreachable):
		return fmt.Errorf("cannot reach SecretHub at %s: %w\nIs the server running? Set %s to its address", c.Address(), unreachableCause(err), envAddr)
	case errors.Is(err, client.ErrSealed):
		return fmt.Errorf("SecretHub at %s is sealed; unseal it with \"secrethub sys unseal\"", c.Address())
	case errors.Is(err, client.ErrPermissionDenied):
		switch {
		case os.Getenv(envToken) != "":
			return fmt.Errorf("permission denied: set %s to a token allowed to do this", envToken)
		case storedToken() != "":
			return fmt.Errorf("permission denied: the token stored in %s by \"secrethub login\" is not allowed to do this, or has expired or been revoked; log in again or set %s", tokenFile(), envToken)
		}
		return fmt.Errorf("permission denied: no token given; set %s or run \"secrethub login\"", envToken)
	}
	var re *client.ResponseError
	if errors.As(err, &re) && len(re.Errors) > 0 {
		return errors.New(strings.Join(re.Errors, "; "))
	}
	return err
}

// unreachableCause is the network error under a client.ErrUnreachable
// (connection refused, DNS, TLS), without the client's own wrapping.
func unreachableCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printTable(w io.Writer, rows [][2]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "Key\tValue")
	fmt.Fprintln(tw, "---\t-----")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r[0], r[1])
	}
	return tw.Flush()
}

func newSysCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "sys",
		Short: "Initialize, unseal, seal and inspect a server",
		Long: `Initialize, unseal, seal and inspect a SecretHub server.

The server is SECRETHUB_ADDR (default http://127.0.0.1:4000); commands that
need rights send SECRETHUB_TOKEN.`,
	}
	cf.register(cmd)
	cmd.AddCommand(newSysInitCmd(&cf), newSysUnsealCmd(&cf), newSysSealCmd(&cf), newSysStatusCmd(&cf), newSysRotateCmd(&cf), newSysAgentsCmd(&cf))
	return cmd
}

func newSysInitCmd(cf *clientFlags) *cobra.Command {
	var shares, threshold int
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Initialize a new server",
		Long: `Initialize a new server: create its keys, split the unseal key into
shares, and create a root token.

The shares and the root token are shown once and stored nowhere. Give each
share to a different person; any -key-threshold of them unseal the server.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			res, err := c.Init(cmd.Context(), shares, threshold)
			if err != nil {
				return explain(c, err)
			}
			out := cmd.OutOrStdout()
			if cf.format == "json" {
				return printJSON(out, res)
			}
			for i, k := range res.Keys {
				fmt.Fprintf(out, "Unseal Key %d: %s\n", i+1, k)
			}
			fmt.Fprintf(out, "\nInitial Root Token: %s\n\n", res.RootToken)
			fmt.Fprintf(out, "SecretHub initialized with %d key shares and a key threshold of %d.\n", len(res.Keys), threshold)
			fmt.Fprintln(out, "The keys are shown only now: store them apart. Unseal the server with")
			fmt.Fprintf(out, "\"secrethub sys unseal\" %d times, each with a different key.\n", threshold)
			return nil
		},
	}
	cmd.Flags().IntVar(&shares, "key-shares", 5, "number of unseal key shares")
	cmd.Flags().IntVar(&threshold, "key-threshold", 3, "number of shares needed to unseal")
	return cmd
}

func newSysUnsealCmd(cf *clientFlags) *cobra.Command {
	var reset bool
	cmd := &cobra.Command{
		Use:   "unseal [KEY]",
		Short: "Submit one unseal key share",
		Long: `Submit one unseal key share (hex or base64). Repeat with different
shares until the threshold is reached and the server unseals.

Without KEY, the share is read from standard input (without echo on a
terminal), so it does not end up in the shell history. -reset discards the
shares submitted so far.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var st *wire.SealStatusResponse
			if reset {
				st, err = c.ResetUnseal(cmd.Context())
			} else {
				key := ""
				if len(args) == 1 {
					key = args[0]
				} else if key, err = readSecret(cmd.InOrStdin(), cmd.ErrOrStderr(), "unseal key", "Unseal key share (will be hidden): "); err != nil {
					return err
				}
				st, err = c.Unseal(cmd.Context(), key)
			}
			if err != nil {
				return explain(c, err)
			}
			return printSealStatus(cmd.OutOrStdout(), cf.format, st)
		},
	}
	cmd.Flags().BoolVar(&reset, "reset", false, "discard the shares submitted so far")
	return cmd
}

// readSecret reads one line from in, without echo when in is a terminal.
// what names the value in errors ("unseal key", "token").
func readSecret(in io.Reader, prompt io.Writer, what, question string) (string, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, question)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", what, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	line = strings.TrimSpace(line)
	if (err != nil && !errors.Is(err, io.EOF)) || line == "" {
		return "", fmt.Errorf("no %s given: pass it as an argument or on standard input", what)
	}
	return line, nil
}

func newSysSealCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "seal",
		Short: "Seal the server",
		Long: `Seal the server: it forgets its keys and refuses every request until
it is unsealed again. Needs a root token in SECRETHUB_TOKEN.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			if err := c.Seal(cmd.Context()); err != nil {
				return explain(c, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Success! SecretHub is sealed.")
			return nil
		},
	}
}

func newSysStatusCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the server's seal status",
		Long: `Show whether the server is initialized and sealed, and the unseal
progress. Exit code 0: unsealed; 2: sealed or uninitialized; 1: error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			st, err := c.SealStatus(cmd.Context())
			if err != nil {
				return explain(c, err)
			}
			if err := printSealStatus(cmd.OutOrStdout(), cf.format, st); err != nil {
				return err
			}
			if st.Sealed {
				return &exitError{code: 2}
			}
			return nil
		},
	}
}

func printSealStatus(w io.Writer, format string, st *wire.SealStatusResponse) error {
	if format == "json" {
		return printJSON(w, st)
	}
	rows := [][2]string{
		{"Seal Type", st.Type},
		{"Initialized", fmt.Sprint(st.Initialized)},
		{"Sealed", fmt.Sprint(st.Sealed)},
	}
	if st.Initialized {
		rows = append(rows, [2]string{"Total Shares", fmt.Sprint(st.N)}, [2]string{"Threshold", fmt.Sprint(st.T)})
		if st.Sealed {
			rows = append(rows, [2]string{"Unseal Progress", fmt.Sprintf("%d/%d", st.Progress, st.T)})
			if st.Nonce != "" {
				rows = append(rows, [2]string{"Unseal Nonce", st.Nonce})
			}
		}
	}
	rows = append(rows, [2]string{"Version", st.Version})
	if st.StorageType != "" {
		rows = append(rows, [2]string{"Storage Type", st.StorageType})
	}
	if st.ClusterName != "" {
		rows = append(rows, [2]string{"Cluster Name", st.ClusterName}, [2]string{"Cluster ID", st.ClusterID})
	}
	return printTable(w, rows)
}

func newSysRotateCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate",
		Short: "Rotate the barrier's encryption key",
		Long: `Add a new encryption key term to the barrier. New writes use it;
values written under older terms stay readable. Needs a root token in
SECRETHUB_TOKEN.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			if err := c.Rotate(cmd.Context()); err != nil {
				return explain(c, err)
			}
			ks, err := c.KeyStatus(cmd.Context())
			if err != nil {
				return explain(c, err)
			}
			if cf.format == "json" {
				return printJSON(cmd.OutOrStdout(), ks)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Success! Rotated the barrier key: term %d, installed %s.\n", ks.Term, ks.InstallTime)
			return nil
		},
	}
}

func newSysAgentsCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "agents",
		Short: "List the agents connected to this server",
		Long: `List the agents holding a WebSocket to this server: their id, name,
identity (the token accessor in their certificate), address, version, when
they connected, their last heartbeat and the paths they watch. Needs read
on sys/agents.`,
		Args: cobra.NoArgs,
		RunE: runClient(cf, func(cmd *cobra.Command, _ []string, c *client.Client) error {
			var resp struct {
				Data struct {
					Agents []wire.AgentInfo `json:"agents"`
				} `json:"data"`
			}
			if err := c.Do(cmd.Context(), http.MethodGet, "sys/agents", nil, &resp); err != nil {
				return err
			}
			agents := resp.Data.Agents
			if agents == nil {
				agents = []wire.AgentInfo{}
			}
			if cf.format == "json" {
				return printJSON(cmd.OutOrStdout(), map[string]any{"agents": agents})
			}
			if len(agents) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "No agents connected.")
				return nil
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tNAME\tADDRESS\tVERSION\tCONNECTED SINCE\tLAST HEARTBEAT\tWATCHED")
			for _, a := range agents {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", a.ID, a.Name, a.Address, a.Version, a.ConnectedSince, a.LastHeartbeat, len(a.Watched))
			}
			return w.Flush()
		}),
	}
}
