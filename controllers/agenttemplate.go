package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"

	ctrl "sigs.k8s.io/controller-runtime"
	kclient "sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/secrethub/secrethub/agent/config"
	"github.com/secrethub/secrethub/api/v1alpha1"
	"github.com/secrethub/secrethub/core/client"
)

// AgentTemplatePrefix is the KV path below which the operator stores
// AgentTemplates: <AgentTemplatePrefix>/<namespace>/<name>.
const AgentTemplatePrefix = v1alpha1.AgentTemplateCorePrefix

// AgentTemplatePath is the core KV path of the AgentTemplate name in
// namespace. The sidecar injector reads the templates there.
func AgentTemplatePath(namespace, name string) string {
	return v1alpha1.AgentTemplateCorePath(namespace, name)
}

// StoredAgentTemplate is what the operator stores at AgentTemplatePath:
// the templates in the agent's own configuration format.
type StoredAgentTemplate struct {
	// Templates are the agent's templates (agent/config.Template).
	Templates []config.Template `json:"templates"`
}

// AgentTemplateReconciler stores each AgentTemplate's templates in the
// core's KV at AgentTemplatePath.
type AgentTemplateReconciler struct {
	loop[*v1alpha1.AgentTemplate]
}

// +kubebuilder:rbac:groups=secrethub.io,resources=agenttemplates,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=secrethub.io,resources=agenttemplates/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=secrethub.io,resources=agenttemplates/finalizers,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// NewAgentTemplateReconciler returns the AgentTemplate reconciler.
func NewAgentTemplateReconciler(kube kclient.Client, opts Options) *AgentTemplateReconciler {
	r := &AgentTemplateReconciler{}
	r.loop = loop[*v1alpha1.AgentTemplate]{
		kube: kube, opts: opts, kindStr: "AgentTemplate",
		newObj: func() *v1alpha1.AgentTemplate { return &v1alpha1.AgentTemplate{} },
		kind:   templateKind{core: opts.Core},
	}
	return r
}

// SetupWithManager registers the reconciler with mgr.
func (r *AgentTemplateReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.AgentTemplate{}).
		Named("agenttemplate").
		WithOptions(controllerOptions(r.opts)).
		Complete(r)
}

type templateKind struct{ core *client.Client }

func (templateKind) coreName(t *v1alpha1.AgentTemplate) string {
	return AgentTemplatePath(t.Namespace, t.Name)
}

// StoredTemplates converts an AgentTemplate's spec into what the core
// stores.
func StoredTemplates(spec v1alpha1.AgentTemplateSpec) StoredAgentTemplate {
	out := StoredAgentTemplate{Templates: make([]config.Template, 0, len(spec.Templates))}
	for _, t := range spec.Templates {
		ct := config.Template{
			Name: t.Name, Contents: t.Contents, Destination: t.Destination,
			Perms: t.Perms, MissingKey: string(t.MissingKey),
		}
		if r := t.Reload; r != nil {
			cr := &config.Reload{Command: r.Command}
			if r.Signal != nil {
				cr.Signal = &config.SignalReload{Name: r.Signal.Name, PIDFile: r.Signal.PIDFile}
			}
			if r.HTTP != nil {
				cr.HTTP = &config.HTTPReload{URL: r.HTTP.URL, Method: r.HTTP.Method, AllowRemote: r.HTTP.AllowRemote}
			}
			if r.Timeout != nil {
				cr.Timeout = config.Duration(r.Timeout.Duration)
			}
			ct.Reload = cr
		}
		out.Templates = append(out.Templates, ct)
	}
	return out
}

func (k templateKind) sync(ctx context.Context, t *v1alpha1.AgentTemplate) (outcome, error) {
	path := k.coreName(t)
	want, err := jsonObject(StoredTemplates(t.Spec))
	if err != nil {
		return outcome{}, err
	}
	cur, err := k.core.Read(ctx, path, nil)
	switch {
	case errors.Is(err, client.ErrNotFound):
	case err != nil:
		return outcome{}, fmt.Errorf("read %s: %w", path, err)
	case reflect.DeepEqual(cur.Data, want):
		return outcome{}, nil
	}
	// The wrapped form, so that the secret is stored as is whatever its
	// keys (docs/kv.md, "Simple-layout body conventions").
	if _, err := k.core.Write(ctx, path, map[string]any{"data": want, "options": map[string]any{}}); err != nil {
		return outcome{}, fmt.Errorf("write %s: %w", path, err)
	}
	return outcome{wrote: true}, nil
}

func (k templateKind) remove(ctx context.Context, t *v1alpha1.AgentTemplate) error {
	path := k.coreName(t)
	if _, err := k.core.Delete(ctx, path, url.Values{"metadata": {"true"}}); err != nil {
		return fmt.Errorf("delete %s: %w", path, err)
	}
	return nil
}

// jsonObject returns v as the client decodes a JSON object (numbers as
// json.Number), for comparing with what the core holds.
func jsonObject(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: encode: %w", errInvalidSpec, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("%w: encode: %w", errInvalidSpec, err)
	}
	return out, nil
}
