// Command secrethub is SecretHub's one binary: the core server, and the CLI
// that talks to it. Each command parses its flags into an options value and
// hands it to the package that does the work.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // policy time zones load even on hosts without a zone database

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/internal/cliargs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitError carries a specific exit code (2 for "sealed" from sys status,
// as Vault's CLI does) with an optional message.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// run executes the command line and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd(stdin, stdout, stderr)
	root.SetArgs(cliargs.Normalize(args))
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, "Error:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "Error:", err)
	return 1
}

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "secrethub",
		Short: "SecretHub: a machine-to-machine secrets manager",
		Long: `SecretHub keeps secrets encrypted in Postgres behind a Shamir-sealed
barrier and serves them over a Vault-compatible REST API.

Run the core with "secrethub server", or "secrethub server -dev" for an
in-memory development server. The other commands are a client for a
running server: they use SECRETHUB_ADDR (default http://127.0.0.1:4000)
and SECRETHUB_TOKEN.

Flags may be written with one dash or two: -format=json and --format=json
are the same.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newDBCmd())
	root.AddCommand(newRedisCmd())
	root.AddCommand(newAWSCmd())
	root.AddCommand(newRotationCmd())
	root.AddCommand(newOperatorCmd())
	root.AddCommand(newServerCmd(), newSysCmd(), newLoginCmd(), newKVCmd(), newPolicyCmd(), newTokenCmd(), newAppRoleCmd(), newAuditCmd(), newPKICmd(), newAgentCmd(), newLeaseCmd())
	return root
}
