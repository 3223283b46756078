// Package command is the agent's command line: `secrethub agent` in the
// all-in-one binary and the slim `secrethub-agent` binary run the same
// cobra command.
package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/agent/bootstrap"
	"github.com/secrethub/secrethub/agent/cache"
	"github.com/secrethub/secrethub/agent/config"
	"github.com/secrethub/secrethub/agent/daemon"
	"github.com/secrethub/secrethub/agent/sink"
	"github.com/secrethub/secrethub/core/client"
	"github.com/secrethub/secrethub/internal/version"
)

// initMarkerMode is the init marker file's mode.
const initMarkerMode = 0o644

// agentOptions are the flags of `secrethub agent`.
type agentOptions struct {
	configPath string
	// configEnv names an environment variable holding the configuration
	// (the sidecar injector's way to pass it without a file).
	configEnv string
	initOnly  bool
	// checkFile, when set, only checks that the file exists (the native
	// sidecar's startup probe on init_marker; the image has no shell).
	checkFile string
}

// New returns the agent command. use is its name ("agent" under
// secrethub, "secrethub-agent" as a binary of its own).
func New(use string) *cobra.Command {
	var o agentOptions
	cmd := &cobra.Command{
		Use:   use + " -config FILE | -config-env NAME [-init]",
		Short: "Run the agent: log in, render secrets into files",
		Long: `The agent logs in to the core with AppRole, gets its client certificate
from the core's agent CA (kept in state_dir and reused until 7 days before
it expires), fetches the secrets its templates read, renders the templates
into files (written atomically, and only when their content changes) and
runs each template's reload action after a change.

Without -init it runs as a daemon: it holds one mTLS WebSocket to the
core's agent listener (core.agent_addresses), re-renders a file the moment
a secret it reads changes (the core pushes changes), renews its certificate
and token, serves local applications on listener.unix_socket, and keeps
serving from its cache while the core is away. SIGTERM or SIGINT stops it.

With -init it renders every template once, writes init_marker, and exits:
0 when every file is in place, non-zero with the reason otherwise.

-config-env NAME reads the configuration from the environment variable NAME
instead of a file (the sidecar injector passes it so). -check-file PATH only
checks that PATH exists (exit 0) or not (exit 1): a startup probe for images
without a shell.

See docs/agent.md for the configuration file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.checkFile != "" {
				if _, err := os.Stat(o.checkFile); err != nil {
					return fmt.Errorf("-check-file: %w", err)
				}
				return nil
			}
			return runAgent(cmd.Context(), o, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.configPath, "config", "", "agent configuration file (YAML or JSON)")
	f.StringVar(&o.configEnv, "config-env", "", "environment variable holding the configuration, instead of -config")
	f.BoolVar(&o.initOnly, "init", false, "render every template once and exit")
	f.StringVar(&o.checkFile, "check-file", "", "only check that this file exists (a startup probe), then exit")
	cmd.MarkFlagsMutuallyExclusive("config", "config-env")
	return cmd
}

// loadConfig reads the configuration from -config or -config-env.
func loadConfig(o agentOptions, env func(string) (string, bool)) (*config.Config, error) {
	switch {
	case o.configPath != "":
		return config.Load(o.configPath, env)
	case o.configEnv != "":
		raw, ok := env(o.configEnv)
		if !ok || strings.TrimSpace(raw) == "" {
			return nil, fmt.Errorf("config: -config-env %s: the variable is not set", o.configEnv)
		}
		c, err := config.Parse([]byte(raw), env)
		if err != nil {
			return nil, fmt.Errorf("config $%s: %w", o.configEnv, err)
		}
		return c, nil
	default:
		return nil, errors.New("config: set -config FILE or -config-env NAME")
	}
}

func runAgent(ctx context.Context, o agentOptions, stderr io.Writer) error {
	cfg, err := loadConfig(o, os.LookupEnv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c, id, err := agentBootstrap(ctx, cfg)
	if err != nil {
		return err
	}
	log.Info("agent identity", "certificate_serial", id.Certificate.SerialNumber.Text(16),
		"not_after", id.Certificate.NotAfter.UTC().Format(time.RFC3339), "logged_in", id.Token != "")
	if id.Warning != nil {
		log.Warn("bootstrap", "warning", id.Warning.Error())
	}
	if len(cfg.Core.AgentAddresses) == 0 {
		if !o.initOnly {
			return &config.FieldError{Field: "core.agent_addresses", Detail: "missing: the agent daemon holds its WebSocket on the core's agent listener (only -init works over REST alone)"}
		}
		return renderOnceREST(ctx, cfg, c, id, log)
	}
	if !o.initOnly {
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		log.Info("agent running", "agent_addresses", strings.Join(cfg.Core.AgentAddresses, ","))
		return daemon.Run(ctx, daemon.Options{Config: cfg, Identity: id, REST: c, Logger: log, Version: version.Version})
	}
	return daemon.Run(ctx, daemon.Options{Config: cfg, Identity: id, REST: c, Logger: log, Version: version.Version, Once: true})
}

// renderOnceREST is -init without an agent listener: every template
// rendered once over REST with the login token.
func renderOnceREST(ctx context.Context, cfg *config.Config, c *client.Client, id *bootstrap.Identity, log *slog.Logger) error {
	if id.Token == "" {
		// A stored certificate spared the login, but REST reads need a
		// token.
		_, warn, err := bootstrap.Login(ctx, cfg, c)
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		if warn != nil {
			log.Warn("bootstrap", "warning", warn.Error())
		}
	}
	ts, err := daemon.NewTemplates(cfg, cache.New(cache.Options{MaxEntries: cfg.Cache.MaxEntries, TTL: time.Duration(cfg.Cache.TTL)}), log)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	ts.WarnOnReloadFailure() // the application may not be running yet
	if _, err := ts.RenderAll(ctx, daemon.RESTReader{Client: c}); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if cfg.InitMarker != "" {
		marker := fmt.Sprintf("rendered %d templates at %s\n", ts.Count(), time.Now().UTC().Format(time.RFC3339))
		if _, err := sink.Write(cfg.InitMarker, []byte(marker), initMarkerMode); err != nil {
			return fmt.Errorf("agent: init marker: %w", err)
		}
	}
	return nil
}

// agentBootstrap tries the core addresses in order and bootstraps at the
// first one that answers.
func agentBootstrap(ctx context.Context, cfg *config.Config) (*client.Client, *bootstrap.Identity, error) {
	var errs []error
	for _, addr := range cfg.Core.Addresses {
		c, err := client.New(client.Config{Address: addr, CACertFile: cfg.Core.CAFile, CACertPEM: []byte(cfg.Core.CAPEM)})
		if err != nil {
			return nil, nil, fmt.Errorf("agent: core.addresses: %w", err)
		}
		id, err := bootstrap.Run(ctx, cfg, c, time.Now)
		if err == nil {
			return c, id, nil
		}
		if !errors.Is(err, client.ErrUnreachable) {
			return nil, nil, fmt.Errorf("agent: %w", err)
		}
		errs = append(errs, err)
	}
	return nil, nil, fmt.Errorf("agent: no core reachable: %w", errors.Join(errs...))
}
