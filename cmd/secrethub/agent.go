package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/agent/bootstrap"
	"github.com/secrethub/secrethub/agent/cache"
	"github.com/secrethub/secrethub/agent/config"
	"github.com/secrethub/secrethub/agent/reload"
	"github.com/secrethub/secrethub/agent/render"
	"github.com/secrethub/secrethub/agent/sink"
	"github.com/secrethub/secrethub/core/client"
)

// maxFetchRounds bounds render → fetch → render rounds for one template:
// each round fetches at least one new path, and a template whose paths
// come from secrets could otherwise keep asking for more.
const maxFetchRounds = 64

// initMarkerMode is the init marker file's mode.
const initMarkerMode = 0o644

// agentOptions are the flags of `secrethub agent`.
type agentOptions struct {
	configPath string
	initOnly   bool
}

func newAgentCmd() *cobra.Command {
	var o agentOptions
	cmd := &cobra.Command{
		Use:   "agent -config FILE [-init]",
		Short: "Run the agent: log in, render secrets into files",
		Long: `The agent logs in to the core with AppRole, gets its client certificate
from the core's agent CA (kept in state_dir and reused until 7 days before
it expires), fetches the secrets its templates read, renders the templates
into files (written atomically, and only when their content changes) and
runs each template's reload action after a change.

With -init it renders every template once, writes init_marker, and exits:
0 when every file is in place, non-zero with the reason otherwise. Daemon
mode (a WebSocket to the core that pushes changes) is not built yet.

See docs/agent.md for the configuration file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgent(cmd.Context(), o, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.configPath, "config", "", "agent configuration file (YAML or JSON)")
	f.BoolVar(&o.initOnly, "init", false, "render every template once and exit")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

func runAgent(ctx context.Context, o agentOptions, stderr io.Writer) error {
	cfg, err := config.Load(o.configPath, nil)
	if err != nil {
		return err
	}
	if !o.initOnly {
		return &exitError{code: 2, msg: "agent: daemon mode (WebSocket push) is not built yet; use -init"}
	}
	c, id, err := agentBootstrap(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "agent: logged in at %s; certificate serial %s, valid until %s\n",
		c.Address(), id.Certificate.SerialNumber.Text(16), id.Certificate.NotAfter.UTC().Format(time.RFC3339))
	if err := renderOnce(ctx, cfg, c, stderr); err != nil {
		return err
	}
	if cfg.InitMarker != "" {
		marker := fmt.Sprintf("rendered %d templates at %s\n", len(cfg.Templates), time.Now().UTC().Format(time.RFC3339))
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
		c, err := client.New(client.Config{Address: addr, CACertFile: cfg.Core.CAFile})
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

// renderJob is one template, rendered and waiting to be written.
type renderJob struct {
	tmpl   config.Template
	out    []byte
	action reload.Action
}

// renderOnce renders every template, fetching what it reads, then writes
// each file and runs its reload when the content changed. Nothing is
// written unless every template rendered.
func renderOnce(ctx context.Context, cfg *config.Config, c *client.Client, stderr io.Writer) error {
	fc := &coreFetcher{
		client: c,
		cache: cache.New(cache.Options{
			MaxEntries: cfg.Cache.MaxEntries, TTL: time.Duration(cfg.Cache.TTL),
		}),
		fetched: map[string]bool{},
	}
	jobs := make([]renderJob, 0, len(cfg.Templates))
	for _, t := range cfg.Templates {
		out, err := fc.render(ctx, t)
		if err != nil {
			return err
		}
		job := renderJob{tmpl: t, out: out}
		if t.Reload != nil {
			if job.action, err = reload.New(*t.Reload); err != nil {
				return fmt.Errorf("agent: template %q: %w", t.Name, err)
			}
		}
		jobs = append(jobs, job)
	}
	for _, j := range jobs {
		changed, err := sink.Write(j.tmpl.Destination, j.out, j.tmpl.Mode())
		if err != nil {
			return fmt.Errorf("agent: template %q: %w", j.tmpl.Name, err)
		}
		if !changed {
			fmt.Fprintf(stderr, "agent: template %q: %s unchanged\n", j.tmpl.Name, j.tmpl.Destination)
			continue
		}
		fmt.Fprintf(stderr, "agent: template %q: wrote %s\n", j.tmpl.Name, j.tmpl.Destination)
		if j.action != nil {
			if err := j.action.Run(ctx); err != nil {
				return fmt.Errorf("agent: template %q: %w", j.tmpl.Name, err)
			}
		}
	}
	return nil
}

// coreFetcher fills a cache from the core as templates ask for paths.
type coreFetcher struct {
	client  *client.Client
	cache   *cache.Cache
	fetched map[string]bool // paths asked of the core (found or not)
}

// render renders t, fetching from the core every path it reads that was
// not fetched yet, until a render reads nothing new.
func (f *coreFetcher) render(ctx context.Context, t config.Template) ([]byte, error) {
	text := t.Contents
	if t.Source != "" {
		b, err := os.ReadFile(t.Source)
		if err != nil {
			return nil, fmt.Errorf("agent: template %q: source: %w", t.Name, err)
		}
		text = string(b)
	}
	tmpl, err := render.Compile(t.Name, text, render.Options{MissingKey: t.MissingKey})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	for range maxFetchRounds {
		out, paths, err := tmpl.Render(ctx, f.cache)
		var fresh []string
		for _, p := range paths {
			if !f.fetched[p] {
				fresh = append(fresh, p)
			}
		}
		if len(fresh) == 0 {
			if err != nil {
				return nil, fmt.Errorf("agent: %w", err)
			}
			return out, nil
		}
		for _, p := range fresh {
			if err := f.fetch(ctx, t, p); err != nil {
				return nil, err
			}
		}
	}
	return nil, fmt.Errorf("agent: template %q: still reading new secret paths after %d rounds", t.Name, maxFetchRounds)
}

// fetch reads path from the core into the cache. A secret the core does
// not have is an error unless the template renders missing secrets as
// empty (missing_key: zero).
func (f *coreFetcher) fetch(ctx context.Context, t config.Template, path string) error {
	f.fetched[path] = true
	if err := checkSecretPath(path); err != nil {
		return fmt.Errorf("agent: template %q: secret %q: %w", t.Name, path, err)
	}
	resp, err := f.client.Read(ctx, path, nil)
	switch {
	case errors.Is(err, client.ErrNotFound):
		if t.MissingKey == config.MissingKeyZero {
			return nil
		}
		return fmt.Errorf("agent: template %q: secret %q does not exist on the core", t.Name, path)
	case errors.Is(err, client.ErrPermissionDenied):
		return fmt.Errorf("agent: template %q: secret %q: permission denied: the agent's policies do not allow reading it", t.Name, path)
	case err != nil:
		return fmt.Errorf("agent: template %q: read secret %q: %w", t.Name, path, err)
	}
	data := resp.Data
	if data == nil {
		data = map[string]any{}
	}
	f.cache.Put(path, data)
	return nil
}

// checkSecretPath refuses paths that are not a plain relative API path:
// templates come from configuration and pod annotations.
func checkSecretPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#\\") {
		return errors.New("not a relative API path like secrets/app/db")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errors.New("not a relative API path like secrets/app/db")
		}
	}
	return nil
}
