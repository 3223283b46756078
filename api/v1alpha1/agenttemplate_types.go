package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AgentTemplateCorePrefix is the core KV path below which the operator
// stores AgentTemplates, one per <namespace>/<name>; the sidecar injector
// points injected agents there (agent config template_sources).
const AgentTemplateCorePrefix = "secrets/secrethub/agent-templates"

// AgentTemplateCorePath is the core KV path of the AgentTemplate name in
// namespace.
func AgentTemplateCorePath(namespace, name string) string {
	return AgentTemplateCorePrefix + "/" + namespace + "/" + name
}

// AgentTemplateSpec is a set of agent templates (agent/config.Template)
// that the operator stores in the core, and that the injector gives to the
// agents of pods naming this AgentTemplate.
//
// +kubebuilder:validation:XValidation:rule="self.templates.all(t, self.templates.exists_one(u, u.destination == t.destination))",message="spec.templates[].destination must be unique",fieldPath=".templates"
type AgentTemplateSpec struct {
	// Templates are rendered by the agent, each into its own file.
	// Names and destinations are unique; at most 32.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +listType=map
	// +listMapKey=name
	Templates []Template `json:"templates"`
}

// MissingKey is what a template's reference to a key the secret lacks
// does.
// +kubebuilder:validation:Enum=error;zero
type MissingKey string

// The missing-key behaviours of the agent's renderer.
const (
	MissingKeyError MissingKey = "error"
	MissingKeyZero  MissingKey = "zero"
)

// Template is one agent template, as agent/config.Template: Go
// text/template contents rendered to destination with perms, and an
// optional reload action run after the file changes.
//
// +kubebuilder:validation:XValidation:rule="!has(self.perms) || !self.perms.matches('^0[0-7]([2367][0-7]|[0-7][2367])$')",message="spec.templates[].perms must not let group or other write",fieldPath=".perms"
type Template struct {
	// Name identifies the template in logs and errors: 1-63 letters,
	// digits, '.', '_' or '-', starting with a letter or digit.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`
	Name string `json:"name"`

	// Contents is the template text (Go text/template with the agent's
	// functions, such as {{ with secret "secrets/app/db" }}).
	// +required
	// +kubebuilder:validation:MinLength=1
	Contents string `json:"contents"`

	// Destination is the rendered file's absolute, clean path (in the
	// pod: usually below the shared volume, /secrethub/).
	// +required
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^(/[^/]+)+$`
	// +kubebuilder:validation:XValidation:rule="!self.matches('/[.][.]?(/|$)')",message="spec.templates[].destination must be a clean path, without '.' or '..' segments"
	Destination string `json:"destination"`

	// Perms is the rendered file's mode, octal with a leading zero;
	// group and other write are refused.
	// +optional
	// +kubebuilder:default="0640"
	// +kubebuilder:validation:MaxLength=4
	// +kubebuilder:validation:Pattern=`^0[0-7]{3}$`
	Perms string `json:"perms,omitempty"`

	// MissingKey is error (the agent's default) or zero.
	// +optional
	MissingKey MissingKey `json:"missingKey,omitempty"`

	// Reload runs after the file's content changes.
	// +optional
	Reload *Reload `json:"reload,omitempty"`
}

// Reload is a template's reload action: exactly one of command, signal and
// http.
//
// +kubebuilder:validation:XValidation:rule="[has(self.command), has(self.signal), has(self.http)].filter(x, x).size() == 1",message="reload must set exactly one of command, signal and http"
// +kubebuilder:validation:XValidation:rule="!has(self.timeout) || (duration(self.timeout) > duration('0s') && duration(self.timeout) <= duration('10m'))",message="reload.timeout must be more than 0s and at most 10m",fieldPath=".timeout"
type Reload struct {
	// Command is an argv run without a shell.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Command []string `json:"command,omitempty"`

	// Signal sends a signal to the process named by a pid file.
	// +optional
	Signal *SignalReload `json:"signal,omitempty"`

	// HTTP sends a request and wants a 2xx answer.
	// +optional
	HTTP *HTTPReload `json:"http,omitempty"`

	// Timeout bounds a command or HTTP reload: a Go duration, at most
	// 10m; the agent's default is 10s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// SignalReload sends a signal to a process.
type SignalReload struct {
	// Name is the signal: SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1,
	// SIGUSR2, SIGWINCH or SIGKILL ("SIG" may be left out).
	// +required
	// +kubebuilder:validation:Pattern=`^(SIG)?(HUP|INT|QUIT|TERM|USR1|USR2|WINCH|KILL)$`
	Name string `json:"name"`
	// PIDFile is an absolute path to a file holding the process ID.
	// +required
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:Pattern=`^(/[^/]+)+$`
	PIDFile string `json:"pidFile"`
}

// HTTPReload sends an HTTP request.
type HTTPReload struct {
	// URL is http:// or https://, on a loopback host unless allowRemote.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^/]+`
	URL string `json:"url"`
	// Method is GET, POST (the default) or PUT.
	// +optional
	// +kubebuilder:validation:Enum=GET;POST;PUT
	Method string `json:"method,omitempty"`
	// AllowRemote lifts the loopback-only default.
	// +optional
	AllowRemote bool `json:"allowRemote,omitempty"`
}

// AgentTemplate is a named set of agent templates, stored in the core for
// the agent injector: a pod annotated secrethub.io/agent-template: <name>
// gets them.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=shtpl,categories=secrethub
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Synced",type=string,JSONPath=`.status.conditions[?(@.type=="Synced")].status`
// +kubebuilder:printcolumn:name="Core Name",type=string,JSONPath=`.status.coreName`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AgentTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the templates.
	// +required
	Spec AgentTemplateSpec `json:"spec"`
	// Status is the operator's view of the templates in the core.
	// +optional
	Status Status `json:"status,omitempty"`
}

// AgentTemplateList is a list of AgentTemplate.
//
// +kubebuilder:object:root=true
type AgentTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AgentTemplate `json:"items"`
}

func init() {
	register(&AgentTemplate{}, &AgentTemplateList{})
}
