// Command secrethub-agent is the agent alone: the same command as
// `secrethub agent`, in a binary that links none of the core, so a sidecar
// beside every workload stays small (see docs/decisions/0007).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/secrethub/secrethub/agent/command"
	"github.com/secrethub/secrethub/internal/cliargs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := command.New("secrethub-agent")
	root.SilenceUsage, root.SilenceErrors = true, true
	root.SetArgs(cliargs.Normalize(os.Args[1:]))
	err := root.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
