package main

import (
	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/agent/command"
)

// newAgentCmd is `secrethub agent`; the slim secrethub-agent binary runs
// the same command.
func newAgentCmd() *cobra.Command { return command.New("agent") }
