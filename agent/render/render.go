// Package render turns agent templates into file contents.
//
// A template is Go text/template text that reads secrets through template
// functions ("secret", "secretKey") and formats them with a small set of
// helpers (encoding, JSON, strings, connection URLs). Compile parses a
// template once; Render executes it against a Fetcher (normally the agent's
// cache) and reports every secret path it read, so the agent can watch exactly
// those paths and re-render only the templates whose inputs changed.
//
// Templates come from configuration and pod annotations, so a render is
// bounded: output is capped by Options.MaxOutputBytes, work (range iterations
// and template calls) by Options.MaxSteps, and the context is checked at every
// step. Errors name the template and, where known, the secret path and key,
// and never contain a secret's value.
package render

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"text/template"
	"text/template/parse"
)

// Defaults for Options.
const (
	// DefaultMaxOutputBytes bounds a render's output when
	// Options.MaxOutputBytes is zero.
	DefaultMaxOutputBytes = 1 << 20
	// DefaultMaxSteps bounds a render's range iterations plus template
	// invocations when Options.MaxSteps is zero.
	DefaultMaxSteps = 100_000

	// workFactor times MaxOutputBytes is the budget for bytes produced by
	// helper functions (printf, join, toJSON, ...) during one render, so a
	// template cannot build huge values it never writes.
	workFactor = 8

	// maxDepth bounds nested template invocations ({{template}} inside
	// {{define}}), far below text/template's own 100000, so a recursive
	// template fails fast without a deep stack.
	maxDepth = 1000
)

// Values of Options.MissingKey.
const (
	// MissingKeyError fails the render when a template reads a secret or a
	// key that does not exist (the default).
	MissingKeyError = "error"
	// MissingKeyZero renders a missing secret as an empty map and a missing
	// key as an empty string.
	MissingKeyZero = "zero"
)

// Sentinel errors. Render's errors match them with errors.Is.
var (
	// ErrNotFound is returned by a Fetcher for a secret that does not exist
	// (or is not cached); Render's error wraps it when a template reads such
	// a secret under MissingKeyError.
	ErrNotFound = errors.New("secret not found")
	// ErrMissingKey: a template read a key its secret does not have.
	ErrMissingKey = errors.New("no such key")
	// ErrOutputTooLarge: the output, or one value built by a helper,
	// exceeded Options.MaxOutputBytes.
	ErrOutputTooLarge = errors.New("output exceeds the size limit")
	// ErrTooComplex: the render exceeded Options.MaxSteps, or its helpers
	// built more than workFactor*MaxOutputBytes bytes in total.
	ErrTooComplex = errors.New("template exceeds the work limit")
)

// Fetcher supplies secret data by path. The agent's cache implements it. It
// returns an error wrapping ErrNotFound for a secret it does not have. The
// returned map must not be modified by either side while a render runs;
// templates never modify it.
type Fetcher interface {
	Secret(ctx context.Context, path string) (map[string]any, error)
}

// Options tune one template. The zero value is ready to use.
type Options struct {
	// MissingKey is MissingKeyError ("error", also the meaning of "") or
	// MissingKeyZero ("zero"): what reading a missing secret or key does.
	// Under "error", a map lookup like .password on a map without that key
	// fails too (text/template's missingkey=error); use
	// `default "x" (index . "maybe")` for optional keys.
	MissingKey string
	// MaxOutputBytes bounds the rendered output and every single value a
	// helper builds. Default DefaultMaxOutputBytes (1 MiB).
	MaxOutputBytes int
	// MaxSteps bounds range iterations plus template invocations in one
	// render. Default DefaultMaxSteps.
	MaxSteps int
	// LeftDelim and RightDelim replace "{{" and "}}" when set (both or
	// neither), for files whose own syntax uses braces.
	LeftDelim, RightDelim string
}

// Template is a compiled template. It is immutable and safe for concurrent
// Render calls.
type Template struct {
	name string
	opts Options
	tmpl *template.Template
}

// Compile parses text as the template name. Errors name the template and the
// line. Unknown functions are compile errors.
func Compile(name, text string, opts Options) (*Template, error) {
	switch opts.MissingKey {
	case "":
		opts.MissingKey = MissingKeyError
	case MissingKeyError, MissingKeyZero:
	default:
		return nil, fmt.Errorf("render: compile %q: missing key mode %q: must be %q or %q",
			name, opts.MissingKey, MissingKeyError, MissingKeyZero)
	}
	if opts.MaxOutputBytes < 0 || opts.MaxSteps < 0 {
		return nil, fmt.Errorf("render: compile %q: limits must not be negative", name)
	}
	if opts.MaxOutputBytes == 0 {
		opts.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if opts.MaxSteps == 0 {
		opts.MaxSteps = DefaultMaxSteps
	}
	if (opts.LeftDelim == "") != (opts.RightDelim == "") {
		return nil, fmt.Errorf("render: compile %q: set both delimiters or neither", name)
	}

	missing := "missingkey=error"
	if opts.MissingKey == MissingKeyZero {
		missing = "missingkey=zero"
	}
	t, err := template.New(name).
		Option(missing).
		Delims(opts.LeftDelim, opts.RightDelim).
		Funcs((&state{}).funcs()).
		Parse(text)
	if err != nil {
		return nil, fmt.Errorf("render: compile %q: %w", name, err)
	}
	done := make(map[*parse.ListNode]bool)
	for _, sub := range t.Templates() {
		if sub.Tree != nil && sub.Root != nil && !done[sub.Root] {
			done[sub.Root] = true
			instrument(sub.Root)
		}
	}
	return &Template{name: name, opts: opts, tmpl: t}, nil
}

// Name returns the template's name.
func (t *Template) Name() string { return t.name }

// Render executes the template, reading secrets from f. It returns the
// output, the sorted, de-duplicated secret paths the template tried to read
// (also on error, including paths that were not found, so the agent can fetch
// or watch them and render again), and an error. On error the output is nil:
// a partial file is never handed out.
func (t *Template) Render(ctx context.Context, f Fetcher) ([]byte, []string, error) {
	if f == nil {
		return nil, nil, fmt.Errorf("render: template %q: nil fetcher", t.name)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("render: template %q: %w", t.name, err)
	}
	st := &state{
		ctx:     ctx,
		fetcher: f,
		opts:    t.opts,
		maxWork: workFactor * t.opts.MaxOutputBytes,
		fetched: make(map[string]fetched),
	}
	exec, err := t.tmpl.Clone()
	if err != nil {
		return nil, nil, fmt.Errorf("render: template %q: %w", t.name, err)
	}
	exec.Funcs(st.funcs())
	w := &limitWriter{max: t.opts.MaxOutputBytes}
	err = exec.Execute(w, nil)
	paths := st.paths()
	if err != nil {
		return nil, paths, st.wrap(t.name, paths, err)
	}
	return w.buf.Bytes(), paths, nil
}

// fetched is the memoised result of one secret read in a render: each path
// is fetched at most once, so a render sees one consistent snapshot.
type fetched struct {
	data map[string]any
	err  error
}

// state is the per-render context the template functions close over.
type state struct {
	ctx     context.Context
	fetcher Fetcher
	opts    Options
	maxWork int

	steps   int
	depth   int
	work    int
	fetched map[string]fetched
}

func (st *state) paths() []string {
	out := make([]string, 0, len(st.fetched))
	for p := range st.fetched {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// wrap names the template and the secrets read, and removes every secret
// string read during the render from the message: text/template prints some
// values in its errors (for example "range can't iterate over ...").
func (st *state) wrap(name string, paths []string, err error) error {
	msg := fmt.Sprintf("render: template %q: %v", name, err)
	if len(paths) > 0 {
		msg += " (secrets read: " + strings.Join(paths, ", ") + ")"
	}
	var values []string
	for _, p := range paths {
		collectStrings(st.fetched[p].data, &values)
	}
	// Longest first, so a value containing another is replaced whole.
	slices.SortFunc(values, func(a, b string) int { return len(b) - len(a) })
	for _, v := range values {
		msg = strings.ReplaceAll(msg, v, "[redacted]")
	}
	return &renderError{msg: msg, err: err}
}

// minRedactLen is the shortest secret string removed from error messages;
// shorter ones ("1", "on") would mangle messages and are not secrets.
const minRedactLen = 4

func collectStrings(v any, out *[]string) {
	switch v := v.(type) {
	case string:
		if len(v) >= minRedactLen {
			*out = append(*out, v)
		}
	case []byte:
		collectStrings(string(v), out)
	case map[string]any:
		for _, e := range v {
			collectStrings(e, out)
		}
	case []any:
		for _, e := range v {
			collectStrings(e, out)
		}
	case map[string]string:
		for _, e := range v {
			collectStrings(e, out)
		}
	case []string:
		for _, e := range v {
			collectStrings(e, out)
		}
	}
}

// renderError carries a redacted message. It matches the sentinels of the
// underlying error with errors.Is but does not expose that error (whose
// message may hold a value) through Unwrap.
type renderError struct {
	msg string
	err error
}

func (e *renderError) Error() string { return e.msg }

func (e *renderError) Is(target error) bool {
	if target == ErrMissingKey && strings.Contains(e.err.Error(), "map has no entry for key") {
		return true
	}
	return errors.Is(e.err, target)
}

// limitWriter collects output up to max bytes.
type limitWriter struct {
	buf bytes.Buffer
	max int
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.max {
		return 0, fmt.Errorf("%w (%d bytes)", ErrOutputTooLarge, w.max)
	}
	return w.buf.Write(p)
}

// Names of the functions instrument inserts. They are ordinary template
// functions; a template that calls them itself only spends a step.
const (
	enterFunc = "_enter"
	leaveFunc = "_leave"
	stepFunc  = "_step"
	rangeFunc = "_range"
	printFunc = "_print"
)

// instrument rewrites a parsed tree so execution stays bounded and output is
// clean:
//   - every template body is wrapped in {{_enter}} ... {{_leave}}, which
//     count a step, check the context and track the nesting depth (bounded
//     by maxDepth), so recursion ends early and shallow;
//   - every range body starts with {{_step}}, which counts a step and checks
//     the context, so loops end;
//   - every range pipeline ends in _range, which rejects values that
//     text/template would print in its error ("range can't iterate over
//     <value>");
//   - every printing action ends in _print, which prints nil (a JSON null, or
//     a missing key under MissingKeyZero) as "" instead of "<no value>".
func instrument(root *parse.ListNode) {
	walk(root)
	nodes := make([]parse.Node, 0, len(root.Nodes)+2)
	nodes = append(nodes, funcNode(root.Pos, enterFunc))
	nodes = append(nodes, root.Nodes...)
	root.Nodes = append(nodes, funcNode(root.Pos, leaveFunc))
}

func walk(n parse.Node) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			walk(c)
		}
	case *parse.ActionNode:
		if len(n.Pipe.Decl) == 0 {
			appendCmd(n.Pipe, printFunc)
		}
	case *parse.IfNode:
		walk(n.List)
		walk(n.ElseList)
	case *parse.WithNode:
		walk(n.List)
		walk(n.ElseList)
	case *parse.RangeNode:
		appendCmd(n.Pipe, rangeFunc)
		walk(n.List)
		walk(n.ElseList)
		if n.List != nil {
			n.List.Nodes = append([]parse.Node{funcNode(n.Pos, stepFunc)}, n.List.Nodes...)
		}
	}
}

func ident(pos parse.Pos, name string) *parse.CommandNode {
	id := parse.NewIdentifier(name).SetPos(pos)
	return &parse.CommandNode{NodeType: parse.NodeCommand, Pos: pos, Args: []parse.Node{id}}
}

func appendCmd(p *parse.PipeNode, name string) {
	p.Cmds = append(p.Cmds, ident(p.Pos, name))
}

// funcNode is the action {{name}}.
func funcNode(pos parse.Pos, name string) *parse.ActionNode {
	pipe := &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos, Cmds: []*parse.CommandNode{ident(pos, name)}}
	return &parse.ActionNode{NodeType: parse.NodeAction, Pos: pos, Pipe: pipe}
}
