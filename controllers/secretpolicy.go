package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"
	kclient "sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/secrethub/secrethub/api/v1alpha1"
	"github.com/secrethub/secrethub/core/client"
)

// SecretPolicyReconciler writes each SecretPolicy into the core as the ACL
// policy sys/policies/acl/<CoreName(namespace, name)>.
type SecretPolicyReconciler struct {
	loop[*v1alpha1.SecretPolicy]
}

// +kubebuilder:rbac:groups=secrethub.io,resources=secretpolicies,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=secrethub.io,resources=secretpolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=secrethub.io,resources=secretpolicies/finalizers,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// NewSecretPolicyReconciler returns the SecretPolicy reconciler.
func NewSecretPolicyReconciler(kube kclient.Client, opts Options) *SecretPolicyReconciler {
	r := &SecretPolicyReconciler{}
	r.loop = loop[*v1alpha1.SecretPolicy]{
		kube: kube, opts: opts, kindStr: "SecretPolicy",
		newObj: func() *v1alpha1.SecretPolicy { return &v1alpha1.SecretPolicy{} },
		kind:   policyKind{core: opts.Core, opts: opts},
	}
	return r
}

// SetupWithManager registers the reconciler with mgr.
func (r *SecretPolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.SecretPolicy{}).
		Named("secretpolicy").
		WithOptions(controllerOptions(r.opts)).
		Complete(r)
}

type policyKind struct {
	core *client.Client
	opts Options
}

func (policyKind) coreName(p *v1alpha1.SecretPolicy) string {
	return CoreName(p.Namespace, p.Name)
}

func policyPath(name string) string { return "sys/policies/acl/" + name }

func (k policyKind) sync(ctx context.Context, p *v1alpha1.SecretPolicy) (outcome, error) {
	name := k.coreName(p)
	if !k.opts.Unconfined {
		if err := checkTenantRules(p.Namespace, k.opts.adminNamespaces(), p.Spec); err != nil {
			return outcome{}, err
		}
	}
	doc, err := PolicyDocument(name, p.Spec)
	if err != nil {
		return outcome{}, err
	}
	cur, err := k.core.Read(ctx, policyPath(name), nil)
	switch {
	case errors.Is(err, client.ErrNotFound):
	case err != nil:
		return outcome{}, fmt.Errorf("read policy %s: %w", name, err)
	default:
		if s, _ := cur.Data["policy"].(string); s == doc {
			return outcome{}, nil
		}
	}
	if _, err := k.core.Write(ctx, policyPath(name), map[string]any{"policy": doc}); err != nil {
		return outcome{}, fmt.Errorf("write policy %s: %w", name, err)
	}
	return outcome{wrote: true}, nil
}

func (k policyKind) remove(ctx context.Context, p *v1alpha1.SecretPolicy) error {
	name := k.coreName(p)
	if _, err := k.core.Delete(ctx, policyPath(name), nil); err != nil {
		return fmt.Errorf("delete policy %s: %w", name, err)
	}
	return nil
}

// policyDoc is the core's policy document (docs/policies.md).
type policyDoc struct {
	Name  string       `json:"name"`
	Rules []policyRule `json:"rules"`
}

type policyRule struct {
	Path         string            `json:"path"`
	Capabilities []string          `json:"capabilities"`
	Effect       string            `json:"effect,omitempty"`
	Conditions   *policyConditions `json:"conditions,omitempty"`
}

type policyConditions struct {
	TimeOfDay  *policyTimeOfDay `json:"time_of_day,omitempty"`
	DaysOfWeek []string         `json:"days_of_week,omitempty"`
	TimeZone   string           `json:"time_zone,omitempty"`
	SourceIP   []string         `json:"source_ip,omitempty"`
	TTLMax     string           `json:"ttl_max,omitempty"`
}

type policyTimeOfDay struct {
	Start    string `json:"start"`
	End      string `json:"end"`
	TimeZone string `json:"time_zone,omitempty"`
}

// PolicyDocument renders spec as the core's policy document named name
// (JSON, which the core reads as YAML too). The same spec always gives
// the same bytes, so the document read back from the core can be compared
// with it to find a policy changed by hand.
func PolicyDocument(name string, spec v1alpha1.SecretPolicySpec) (string, error) {
	doc := policyDoc{Name: name, Rules: make([]policyRule, 0, len(spec.Rules))}
	for _, r := range spec.Rules {
		pr := policyRule{Path: r.Path, Effect: string(r.Effect)}
		for _, c := range r.Capabilities {
			pr.Capabilities = append(pr.Capabilities, string(c))
		}
		if c := r.Conditions; c != nil {
			pc := &policyConditions{DaysOfWeek: c.DaysOfWeek, TimeZone: c.TimeZone, SourceIP: c.SourceIP, TTLMax: c.TTLMax}
			if t := c.TimeOfDay; t != nil {
				pc.TimeOfDay = &policyTimeOfDay{Start: t.Start, End: t.End, TimeZone: t.TimeZone}
			}
			pr.Conditions = pc
		}
		doc.Rules = append(doc.Rules, pr)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("%w: encode policy: %w", errInvalidSpec, err)
	}
	return string(b), nil
}
