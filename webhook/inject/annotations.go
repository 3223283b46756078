package inject

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/secrethub/secrethub/agent/config"
	"github.com/secrethub/secrethub/agent/render"
)

// Prefix starts every annotation the injector reads or writes.
const Prefix = "secrethub.io/"

// Annotation keys (see docs/annotations.md). The keys ending in '-' are
// prefixes completed by a secret's name: secret-db, template-db, reload-db.
const (
	// AnnotationInject opts a pod in: "true" injects the agent; "false"
	// or absent leaves the pod alone. Any other value is refused.
	AnnotationInject = Prefix + "inject"
	// AnnotationRole is the core's Kubernetes auth role the agent logs in
	// with. Required with inject "true".
	AnnotationRole = Prefix + "role"
	// AnnotationSecretPrefix + <name>: <path> renders the secret at path
	// (relative to the core's API, e.g. secrets/app/db) to
	// /secrethub/secrets/<name>, as a JSON object of its data unless
	// template-<name> says otherwise.
	AnnotationSecretPrefix = Prefix + "secret-"
	// AnnotationTemplatePrefix + <name> is the template text (agent/render
	// syntax) for secret-<name>, replacing the default JSON.
	AnnotationTemplatePrefix = Prefix + "template-"
	// AnnotationReloadPrefix + <name> tells the application that
	// /secrethub/secrets/<name> changed: "signal:<SIGNAL>:<pid file>",
	// "command:<argv separated by spaces>" or "http:<loopback URL>".
	AnnotationReloadPrefix = Prefix + "reload-"
	// AnnotationAgentTemplate names AgentTemplates of the pod's namespace,
	// comma-separated (at most maxAgentTemplates): the agent reads their
	// templates from the core, where the operator stores them, before its
	// first render and follows their changes. The agent's role needs read
	// on secrets/secrethub/agent-templates/<namespace>/<name>.
	AnnotationAgentTemplate = Prefix + "agent-template"
	// AnnotationMode is "sidecar" (default: the agent keeps the files up
	// to date) or "init-only" (rendered once before the app starts).
	AnnotationMode = Prefix + "mode"
	// AnnotationStatus is written by the injector: "injected". A pod
	// that carries it is never injected again.
	AnnotationStatus = Prefix + "status"
	// Resource annotations override Config.Resources for the agent's
	// containers; values are Kubernetes quantities ("50m", "64Mi").
	AnnotationRequestsCPU    = Prefix + "agent-requests-cpu"
	AnnotationRequestsMemory = Prefix + "agent-requests-memory"
	AnnotationLimitsCPU      = Prefix + "agent-limits-cpu"
	AnnotationLimitsMemory   = Prefix + "agent-limits-memory"
)

// Values of the annotations.
const (
	// StatusInjected is the value of AnnotationStatus on an injected pod.
	StatusInjected = "injected"
	// ModeSidecar keeps the agent running beside the app (default).
	ModeSidecar = "sidecar"
	// ModeInitOnly renders the files once in an init container.
	ModeInitOnly = "init-only"
)

// Reload kinds of AnnotationReloadPrefix values.
const (
	reloadSignal  = "signal:"
	reloadCommand = "command:"
	reloadHTTP    = "http:"
)

// maxAgentTemplates bounds the AgentTemplates one pod names.
const maxAgentTemplates = 8

// maxTemplateBytes bounds a template-<name> annotation (all annotations of
// an object together are limited to 256 KiB by the API server anyway).
const maxTemplateBytes = 64 << 10

var (
	// secretName is the <name> of secret-<name>: a file name below
	// /secrethub/secrets and an agent template name.
	secretName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	// secretPath is a core path: segments of safe characters, so it can be
	// quoted into a template without escaping.
	secretPath = regexp.MustCompile(`^[A-Za-z0-9_.@:=+-]+(/[A-Za-z0-9_.@:=+-]+)*$`)
	roleName   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
)

// AnnotationError says which annotation is invalid and why. Its message
// never quotes a template body.
type AnnotationError struct {
	// Key is the full annotation key, like secrethub.io/secret-db.
	Key string
	// Detail says what is wrong.
	Detail string
}

func (e *AnnotationError) Error() string { return "annotation " + e.Key + ": " + e.Detail }

func annErr(key, format string, args ...any) error {
	return &AnnotationError{Key: key, Detail: fmt.Sprintf(format, args...)}
}

// Spec is what a pod's annotations ask for.
type Spec struct {
	// Inject is true when the pod opted in.
	Inject bool
	// Role is the core's Kubernetes auth role.
	Role string
	// Mode is ModeSidecar or ModeInitOnly.
	Mode string
	// Secrets are the secret-<name> entries, sorted by name.
	Secrets []SecretSpec
	// AgentTemplates are the AgentTemplate names of agent-template, in
	// the pod's namespace.
	AgentTemplates []string
	// Namespace is the pod's namespace (set by Pod, not by the
	// annotations).
	Namespace string
	// Resources are the resource overrides, by annotation key.
	Resources map[string]resource.Quantity
}

// SecretSpec is one secret-<name> entry with its template and reload.
type SecretSpec struct {
	// Name is <name>: the file /secrethub/secrets/<name>.
	Name string
	// Path is the secret's path in the core.
	Path string
	// Template is the template-<name> text; empty means DefaultTemplate.
	Template string
	// Reload is the parsed reload-<name>, or nil.
	Reload *config.Reload
}

// DefaultTemplate is the template of a secret-<name> without
// template-<name>: the secret's data as one JSON object with sorted keys.
func DefaultTemplate(path string) string {
	return `{{ toJSON (secret "` + path + `") }}`
}

// ParseAnnotations reads the injector's annotations. A pod without
// inject "true" gives a Spec with Inject false and no error, whatever its
// other annotations. Every error is an *AnnotationError naming the key.
func ParseAnnotations(ann map[string]string) (*Spec, error) {
	s := &Spec{Mode: ModeSidecar}
	v, ok := ann[AnnotationInject]
	if !ok {
		return s, nil
	}
	inject, err := strconv.ParseBool(v)
	if err != nil {
		return nil, annErr(AnnotationInject, "%q: want \"true\" or \"false\"", short(v))
	}
	if !inject {
		return s, nil
	}
	s.Inject = true

	role, ok := ann[AnnotationRole]
	switch {
	case !ok || role == "":
		return nil, annErr(AnnotationRole, "missing: the core's Kubernetes auth role the agent logs in with")
	case !roleName.MatchString(role):
		return nil, annErr(AnnotationRole, "%q: want 1 to 128 letters, digits, '_', '.' or '-'", short(role))
	}
	s.Role = role

	if m, ok := ann[AnnotationMode]; ok {
		switch m {
		case ModeSidecar, ModeInitOnly:
			s.Mode = m
		default:
			return nil, annErr(AnnotationMode, "%q: want %s or %s", short(m), ModeSidecar, ModeInitOnly)
		}
	}
	if v, ok := ann[AnnotationAgentTemplate]; ok {
		names, err := parseAgentTemplates(v)
		if err != nil {
			return nil, err
		}
		s.AgentTemplates = names
	}

	for _, key := range []string{AnnotationRequestsCPU, AnnotationRequestsMemory, AnnotationLimitsCPU, AnnotationLimitsMemory} {
		v, ok := ann[key]
		if !ok {
			continue
		}
		q, err := resource.ParseQuantity(v)
		if err != nil || q.Sign() <= 0 {
			return nil, annErr(key, "%q: want a positive quantity like \"50m\" or \"64Mi\"", short(v))
		}
		if s.Resources == nil {
			s.Resources = map[string]resource.Quantity{}
		}
		s.Resources[key] = q
	}

	// Keys are visited in order so the first error is always the same one.
	keys := make([]string, 0, len(ann))
	for k := range ann {
		if strings.HasPrefix(k, Prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	secrets := map[string]*SecretSpec{}
	for _, k := range keys {
		name, ok := strings.CutPrefix(k, AnnotationSecretPrefix)
		if !ok {
			continue
		}
		if err := checkName(k, name); err != nil {
			return nil, err
		}
		p := ann[k]
		if !secretPath.MatchString(p) || hasDotSegment(p) {
			return nil, annErr(k, "%q: want a core path like secrets/app/db (letters, digits, '_', '.', '@', ':', '=', '+', '-' between single slashes, no leading slash)", short(p))
		}
		secrets[name] = &SecretSpec{Name: name, Path: p}
	}
	for _, k := range keys {
		if name, ok := strings.CutPrefix(k, AnnotationTemplatePrefix); ok {
			sec, err := companion(k, name, secrets)
			if err != nil {
				return nil, err
			}
			body := ann[k]
			if err := checkText(k, body); err != nil {
				return nil, err
			}
			if strings.TrimSpace(body) == "" {
				return nil, annErr(k, "empty template")
			}
			if len(body) > maxTemplateBytes {
				return nil, annErr(k, "template of %d bytes: at most %d", len(body), maxTemplateBytes)
			}
			if _, err := render.Compile(name, body, render.Options{}); err != nil {
				return nil, annErr(k, "%v", err)
			}
			sec.Template = body
		}
		if name, ok := strings.CutPrefix(k, AnnotationReloadPrefix); ok {
			sec, err := companion(k, name, secrets)
			if err != nil {
				return nil, err
			}
			if err := checkText(k, ann[k]); err != nil {
				return nil, err
			}
			r, err := parseReload(k, ann[k])
			if err != nil {
				return nil, err
			}
			sec.Reload = r
		}
	}
	for _, k := range keys {
		if name, ok := strings.CutPrefix(k, AnnotationSecretPrefix); ok {
			s.Secrets = append(s.Secrets, *secrets[name])
		}
	}
	return s, nil
}

// parseAgentTemplates reads the agent-template value: AgentTemplate names
// (Kubernetes object names), comma-separated, without duplicates.
func parseAgentTemplates(v string) ([]string, error) {
	var names []string
	for _, n := range strings.Split(v, ",") {
		n = strings.TrimSpace(n)
		if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
			return nil, annErr(AnnotationAgentTemplate, "%q: want AgentTemplate names of the pod's namespace, comma-separated: %s", short(n), errs[0])
		}
		if slices.Contains(names, n) {
			return nil, annErr(AnnotationAgentTemplate, "%q: named twice", n)
		}
		names = append(names, n)
	}
	if len(names) > maxAgentTemplates {
		return nil, annErr(AnnotationAgentTemplate, "%d AgentTemplates: at most %d", len(names), maxAgentTemplates)
	}
	return names, nil
}

// companion returns the secret-<name> that template-<name> or
// reload-<name> belongs to.
func companion(key, name string, secrets map[string]*SecretSpec) (*SecretSpec, error) {
	if err := checkName(key, name); err != nil {
		return nil, err
	}
	sec, ok := secrets[name]
	if !ok {
		return nil, annErr(key, "no %s%s annotation to go with it", AnnotationSecretPrefix, name)
	}
	return sec, nil
}

func checkName(key, name string) error {
	if !secretName.MatchString(name) || name == "." || name == ".." {
		return annErr(key, "%q: want a name of 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit, after the prefix", short(name))
	}
	return nil
}

// checkText refuses invalid UTF-8 and control characters other than tab,
// newline and carriage return: the agent's YAML configuration cannot carry
// them.
func checkText(key, v string) error {
	if !utf8.ValidString(v) {
		return annErr(key, "not valid UTF-8")
	}
	for i, r := range v {
		if r != '\t' && r != '\n' && r != '\r' && (unicode.IsControl(r) || r == '\uFEFF' || r == '\uFFFE' || r == '\uFFFF') {
			return annErr(key, "control character %U at byte %d", r, i)
		}
	}
	return nil
}

func hasDotSegment(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// parseReload reads "signal:<SIGNAL>:<pid file>", "command:<argv>" or
// "http:<URL>".
func parseReload(key, v string) (*config.Reload, error) {
	switch {
	case strings.HasPrefix(v, reloadSignal):
		sig, pidFile, ok := strings.Cut(strings.TrimPrefix(v, reloadSignal), ":")
		if !ok {
			return nil, annErr(key, "%q: want signal:<SIGNAL>:<absolute pid file>", short(v))
		}
		if _, err := config.ParseSignal(sig); err != nil {
			return nil, annErr(key, "%v", err)
		}
		if !strings.HasPrefix(pidFile, RunDir+"/") || path.Clean(pidFile) != pidFile {
			return nil, annErr(key, "pid file %q: want a clean path below %s/, the directory the app writes its pid file to and the agent reads", short(pidFile), RunDir)
		}
		return &config.Reload{Signal: &config.SignalReload{Name: sig, PIDFile: pidFile}}, nil
	case strings.HasPrefix(v, reloadCommand):
		argv := strings.Fields(strings.TrimPrefix(v, reloadCommand))
		if len(argv) == 0 {
			return nil, annErr(key, "empty command: want command:<program> [args...]")
		}
		return &config.Reload{Command: argv}, nil
	case strings.HasPrefix(v, reloadHTTP):
		u := strings.TrimPrefix(v, reloadHTTP)
		if err := config.CheckReloadURL(u, false); err != nil {
			return nil, annErr(key, "%v", err)
		}
		return &config.Reload{HTTP: &config.HTTPReload{URL: u}}, nil
	default:
		return nil, annErr(key, "%q: want signal:<SIGNAL>:<pid file>, command:<argv> or http:<loopback URL>", short(v))
	}
}

// short bounds a value quoted in an error.
func short(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
