package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"time"

	"github.com/secrethub/secrethub/agent/cache"
	"github.com/secrethub/secrethub/agent/config"
	"github.com/secrethub/secrethub/agent/reload"
	"github.com/secrethub/secrethub/agent/render"
	"github.com/secrethub/secrethub/agent/sink"
	"github.com/secrethub/secrethub/core/client"
	"github.com/secrethub/secrethub/core/wire"
)

// maxFetchRounds bounds render → fetch → render rounds for one template:
// each round fetches at least one new path, and a template whose paths
// come from secrets could otherwise keep asking for more.
const maxFetchRounds = 64

// Reader reads a secret from the core: the WebSocket connection
// (agent/conn) in daemon mode, the REST client in -init mode without an
// agent listener. Errors match core/client's ErrNotFound,
// ErrPermissionDenied and ErrSealed.
type Reader interface {
	Read(ctx context.Context, path string) (*wire.Response, error)
}

// RESTReader adapts the REST client to Reader.
type RESTReader struct{ Client *client.Client }

// Read reads path over REST.
func (r RESTReader) Read(ctx context.Context, path string) (*wire.Response, error) {
	return r.Client.Read(ctx, path, nil)
}

// template is one configured template and what its last render read.
type template struct {
	cfg    config.Template
	tmpl   *render.Template
	action reload.Action
	paths  []string // paths read by the last successful render
}

// Templates renders the configured templates from a cache, fetching what
// the cache lacks through a Reader, and writes them with their reloads.
// It is not safe for concurrent use: the daemon calls it from one
// goroutine.
type Templates struct {
	cfg     *config.Config
	local   []*template // the configuration's own templates
	sources []*source   // template_sources, in order
	list    []*template // local, then each source's
	cache   *cache.Cache
	missing map[string]bool   // paths the core said do not exist
	leases  map[string]*Lease // dynamic credentials by path
	log     *slog.Logger
	// reloadWarnOnly logs a failed reload instead of failing the render
	// (-init: the application may not be running yet).
	reloadWarnOnly bool
}

// source is one of template_sources: a core path holding templates.
type source struct {
	path    string
	applied map[string]any // the data its templates were built from; nil: none yet
	list    []*template
}

// Lease is the lease behind a dynamic credential a template read.
type Lease struct {
	ID        string
	TTL       time.Duration // as issued or last renewed
	Renewable bool
	// Obtained is when the credential was read or last renewed.
	Obtained time.Time
	// Issued is the TTL the credential was issued with: a renewal that
	// gives less has hit the lease's maximum.
	Issued time.Duration
}

// Lease returns the lease behind path, if the last read of path was a
// dynamic credential.
func (ts *Templates) Lease(path string) (*Lease, bool) {
	l, ok := ts.leases[path]
	return l, ok
}

// Leases returns the leased paths.
func (ts *Templates) Leases() map[string]*Lease { return ts.leases }

// NewTemplates compiles every template of cfg. The templates of
// cfg.TemplateSources are read at the first render.
func NewTemplates(cfg *config.Config, c *cache.Cache, log *slog.Logger) (*Templates, error) {
	ts := &Templates{cfg: cfg, cache: c, missing: map[string]bool{}, leases: map[string]*Lease{}, log: log}
	for _, tc := range cfg.Templates {
		t, err := compile(tc)
		if err != nil {
			return nil, err
		}
		ts.local = append(ts.local, t)
	}
	for _, p := range cfg.TemplateSources {
		ts.sources = append(ts.sources, &source{path: p})
	}
	ts.relist()
	return ts, nil
}

// WarnOnReloadFailure makes a failed reload a logged warning rather than
// a failed render (for -init: an init container runs before the
// application, which a reload then cannot reach).
func (ts *Templates) WarnOnReloadFailure() { ts.reloadWarnOnly = true }

// compile builds one template from its configuration.
func compile(tc config.Template) (*template, error) {
	text := tc.Contents
	if tc.Source != "" {
		b, err := os.ReadFile(tc.Source)
		if err != nil {
			return nil, fmt.Errorf("template %q: source: %w", tc.Name, err)
		}
		text = string(b)
	}
	tmpl, err := render.Compile(tc.Name, text, render.Options{MissingKey: tc.MissingKey})
	if err != nil {
		return nil, err
	}
	t := &template{cfg: tc, tmpl: tmpl}
	if tc.Reload != nil {
		if t.action, err = reload.New(*tc.Reload); err != nil {
			return nil, fmt.Errorf("template %q: %w", tc.Name, err)
		}
	}
	return t, nil
}

// relist rebuilds list from the local and the sourced templates.
func (ts *Templates) relist() {
	ts.list = append(ts.list[:0], ts.local...)
	for _, src := range ts.sources {
		ts.list = append(ts.list, src.list...)
	}
}

// Count is the number of templates known so far (the sources' once
// read).
func (ts *Templates) Count() int { return len(ts.list) }

// syncSources makes each source's templates match what the cache holds
// for its path, reading through r a source the cache lacks (r nil: the
// cache alone). A source whose data did not change keeps its templates
// and their state; one that changed is compiled again, keeping the state
// of every template whose configuration is the same. When a source holds
// invalid templates, or templates that clash with others, the error names
// the source and the field, and the templates in use stay as they were.
func (ts *Templates) syncSources(ctx context.Context, r Reader) error {
	if len(ts.sources) == 0 {
		return nil
	}
	datas := make([]map[string]any, len(ts.sources))
	changed := false
	for i, src := range ts.sources {
		data, _, _, ok := ts.cache.Get(src.path)
		if !ok && r != nil {
			if _, err := ts.Fetch(ctx, r, src.path); err != nil {
				return fmt.Errorf("%s %q: %w", config.SourceField(i), src.path, err)
			}
			data, _, _, ok = ts.cache.Get(src.path)
		}
		if !ok {
			return fmt.Errorf("%s %q: not read from the core yet", config.SourceField(i), src.path)
		}
		datas[i] = data
		if src.applied == nil || !reflect.DeepEqual(src.applied, data) {
			changed = true
		}
	}
	if !changed {
		return nil
	}
	decoded := make([][]config.Template, len(ts.sources))
	for i, data := range datas {
		list, err := config.DecodeTemplateSource(config.SourceField(i), data)
		if err != nil {
			return fmt.Errorf("template source %q: %w", ts.sources[i].path, err)
		}
		decoded[i] = list
	}
	if err := ts.cfg.CheckSourced(decoded); err != nil {
		return fmt.Errorf("template sources: %w", err)
	}
	built := make([][]*template, len(ts.sources))
	for i, list := range decoded {
		for _, tc := range list {
			if old := ts.sources[i].find(tc); old != nil {
				built[i] = append(built[i], old)
				continue
			}
			t, err := compile(tc)
			if err != nil {
				return fmt.Errorf("template source %q: %w", ts.sources[i].path, err)
			}
			built[i] = append(built[i], t)
		}
	}
	for i, src := range ts.sources {
		if src.applied != nil && !reflect.DeepEqual(src.applied, datas[i]) {
			ts.log.Info("template source changed", "source", src.path, "templates", len(built[i]))
		}
		src.applied, src.list = datas[i], built[i]
	}
	ts.relist()
	return nil
}

// find returns the source's template with exactly the configuration tc.
func (src *source) find(tc config.Template) *template {
	for _, t := range src.list {
		if reflect.DeepEqual(t.cfg, tc) {
			return t
		}
	}
	return nil
}

// Paths returns every path the templates read in their last renders,
// sorted and without duplicates.
func (ts *Templates) Paths() []string {
	var out []string
	for _, src := range ts.sources {
		out = append(out, src.path)
	}
	for _, t := range ts.list {
		out = append(out, t.paths...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Reads reports whether a template read path in its last render.
func (ts *Templates) Reads(path string) bool {
	for _, t := range ts.list {
		if slices.Contains(t.paths, path) {
			return true
		}
	}
	return false
}

// rendered is one template's output, not yet written.
type rendered struct {
	t   *template
	out []byte
}

// RenderAll renders every template, fetching through r what the cache
// lacks (r nil: render from the cache only), and only when all rendered
// writes each file whose content changed and runs its reload. It returns
// the names of the files written.
func (ts *Templates) RenderAll(ctx context.Context, r Reader) ([]string, error) {
	if err := ts.syncSources(ctx, r); err != nil {
		return nil, err
	}
	return ts.renderAndWrite(ctx, r, ts.list)
}

// RenderReading renders the templates that read path in their last
// render, or that failed so far (they have no paths yet); a changed
// template source brings its new templates in.
func (ts *Templates) RenderReading(ctx context.Context, r Reader, paths ...string) ([]string, error) {
	// A source that cannot be used holds back only its own templates: the
	// others still follow their secrets.
	srcErr := ts.syncSources(ctx, r)
	var sel []*template
	for _, t := range ts.list {
		if t.paths == nil {
			sel = append(sel, t)
			continue
		}
		for _, p := range paths {
			if slices.Contains(t.paths, p) {
				sel = append(sel, t)
				break
			}
		}
	}
	// Each template stands alone here: one that fails does not hold back
	// the files of the others.
	var written []string
	var errs []error
	if srcErr != nil {
		errs = append(errs, srcErr)
	}
	for _, t := range sel {
		w, err := ts.renderAndWrite(ctx, r, []*template{t})
		written = append(written, w...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return written, errors.Join(errs...)
}

func (ts *Templates) renderAndWrite(ctx context.Context, r Reader, list []*template) ([]string, error) {
	outs := make([]rendered, 0, len(list))
	paths := make([][]string, 0, len(list))
	for _, t := range list {
		out, p, err := ts.render(ctx, r, t)
		if err != nil {
			return nil, err
		}
		outs = append(outs, rendered{t: t, out: out})
		paths = append(paths, p)
	}
	var written []string
	for i, o := range outs {
		o.t.paths = paths[i]
		if o.t.paths == nil {
			o.t.paths = []string{}
		}
		res, err := sink.Write(o.t.cfg.Destination, o.out, o.t.cfg.Mode())
		if err != nil {
			return written, fmt.Errorf("template %q: %w", o.t.cfg.Name, err)
		}
		if res == sink.Unchanged {
			continue
		}
		written = append(written, o.t.cfg.Destination)
		ts.log.Info("template rendered", "template", o.t.cfg.Name, "destination", o.t.cfg.Destination)
		// A reload tells the application that a file it may have read
		// changed: not when the file is new.
		if o.t.action != nil && res == sink.Replaced {
			if err := o.t.action.Run(ctx); err != nil {
				if !ts.reloadWarnOnly {
					return written, fmt.Errorf("template %q: reload: %w", o.t.cfg.Name, err)
				}
				ts.log.Warn("reload failed; the file is written", "template", o.t.cfg.Name, "error", err.Error())
				continue
			}
			ts.log.Info("reload done", "template", o.t.cfg.Name)
		}
	}
	return written, nil
}

// render renders t, fetching every path it reads that is neither cached
// nor known missing, until a render reads nothing new.
func (ts *Templates) render(ctx context.Context, r Reader, t *template) ([]byte, []string, error) {
	asked := map[string]bool{}
	for range maxFetchRounds {
		out, paths, err := t.tmpl.Render(ctx, ts.cache)
		var fresh []string
		for _, p := range paths {
			if asked[p] || ts.missing[p] {
				continue
			}
			if _, _, _, ok := ts.cache.Get(p); !ok {
				fresh = append(fresh, p)
			}
		}
		if len(fresh) == 0 || r == nil {
			if err == nil {
				return out, paths, nil
			}
			if errors.Is(err, render.ErrNotFound) {
				for _, p := range paths {
					if ts.missing[p] {
						return nil, nil, fmt.Errorf("template %q: secret %q does not exist on the core", t.cfg.Name, p)
					}
				}
			}
			return nil, nil, err
		}
		for _, p := range fresh {
			asked[p] = true
			if _, err := ts.Fetch(ctx, r, p); err != nil && !errors.Is(err, client.ErrNotFound) {
				return nil, nil, fmt.Errorf("template %q: %w", t.cfg.Name, err)
			}
		}
	}
	return nil, nil, fmt.Errorf("template %q: still reading new secret paths after %d rounds", t.cfg.Name, maxFetchRounds)
}

// Fetch reads path through r into the cache and reports whether the
// cached value changed. A secret the core does not have is dropped from
// the cache and remembered as missing; the error then wraps
// client.ErrNotFound.
func (ts *Templates) Fetch(ctx context.Context, r Reader, path string) (changed bool, err error) {
	if err := config.CheckCorePath(path); err != nil {
		return false, fmt.Errorf("secret %q: %w", path, err)
	}
	resp, err := r.Read(ctx, path)
	switch {
	case errors.Is(err, client.ErrNotFound):
		_, _, _, had := ts.cache.Get(path)
		ts.cache.Invalidate(path)
		ts.missing[path] = true
		return had, fmt.Errorf("secret %q does not exist on the core: %w", path, err)
	case errors.Is(err, client.ErrPermissionDenied):
		return false, fmt.Errorf("secret %q: the agent's policies do not allow reading it: %w", path, err)
	case err != nil:
		return false, fmt.Errorf("read secret %q: %w", path, err)
	}
	data := resp.Data
	if data == nil {
		data = map[string]any{}
	}
	delete(ts.missing, path)
	if resp.LeaseID != "" {
		ttl := time.Duration(resp.LeaseDuration) * time.Second
		ts.leases[path] = &Lease{ID: resp.LeaseID, TTL: ttl, Issued: ttl, Renewable: resp.Renewable, Obtained: time.Now()}
	} else {
		delete(ts.leases, path)
	}
	old, _, _, had := ts.cache.Get(path)
	ts.cache.Put(path, data)
	return !had || !reflect.DeepEqual(old, data), nil
}

// AllRendered reports whether every template has rendered successfully
// at least once.
func (ts *Templates) AllRendered() bool {
	for _, src := range ts.sources {
		if src.applied == nil {
			return false
		}
	}
	for _, t := range ts.list {
		if t.paths == nil {
			return false
		}
	}
	return true
}
