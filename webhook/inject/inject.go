// Package inject mutates a Pod so that the SecretHub agent renders its
// secrets into a shared in-memory volume: the pure part of the sidecar
// injector (no I/O), driven by the pod's secrethub.io/ annotations (see
// annotations.go and docs/annotations.md) and a Config.
//
// Pod returns the injected copy of a pod; the webhook package turns the
// difference into a JSON patch. Layout of an injected pod:
//
//   - volume "secrethub" (emptyDir, medium Memory, Config.VolumeSizeLimit)
//     mounted read-only at /secrethub in every app container and init
//     container, read-write in the agent; files at /secrethub/secrets/<name>;
//   - volume "secrethub-agent-state" (emptyDir, Memory) at
//     /var/lib/secrethub-agent in the agent only: its key and certificate
//     and its encrypted cache with the leases of dynamic credentials, so
//     an init container hands its login and its leases to the sidecar
//     (one login and one set of leases per pod);
//   - volume "secrethub-token": a projected service account token with
//     audience Config.Audience at /var/run/secrets/tokens/secrethub;
//   - with a signal reload, volume "secrethub-run" (emptyDir, Memory) at
//     /secrethub-run, read-write in the app's containers (its pid file)
//     and read-only in the agent, a shared PID namespace, and the agent
//     running as the app's (non-root) user, the only one it may signal;
//   - the agent, configured by the env var SECRETHUB_AGENT_CONFIG (run as
//     `secrethub-agent -config-env SECRETHUB_AGENT_CONFIG`):
//     with Config.NativeSidecars, one init container with restartPolicy
//     Always and a startup probe on the init marker (a native sidecar: the
//     app starts once the files are there, and Jobs complete); otherwise
//     an init container with -init and a sidecar container; with mode
//     init-only, only the init container.
package inject

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/secrethub/secrethub/agent/config"
	"github.com/secrethub/secrethub/api/v1alpha1"
)

// Names and paths in the injected pod.
const (
	// VolumeName is the shared in-memory volume holding the rendered files.
	VolumeName = "secrethub"
	// MountPath is where VolumeName is mounted in every container.
	MountPath = "/secrethub"
	// SecretsDir holds the rendered secrets: SecretsDir/<name>.
	SecretsDir = MountPath + "/secrets"
	// InitMarker is written by the agent after its first full render; the
	// native sidecar's startup probe waits for it.
	InitMarker = MountPath + "/.rendered"
	// StateVolumeName is the agent's private state volume.
	StateVolumeName = "secrethub-agent-state"
	// StateDir is where StateVolumeName is mounted in the agent.
	StateDir = "/var/lib/secrethub-agent"
	// RunVolumeName is the small volume shared read-write by the app's
	// containers and read-only by the agent, added only for signal
	// reloads: the app writes its pid file there (everything else the
	// agent mounts is out of the app's reach or read-only for it).
	RunVolumeName = "secrethub-run"
	// RunDir is where RunVolumeName is mounted in every container.
	RunDir = "/secrethub-run"
	// TokenVolumeName is the projected service account token volume.
	TokenVolumeName = "secrethub-token"
	// TokenDir is where TokenVolumeName is mounted in the agent.
	TokenDir = "/var/run/secrets/tokens"
	// TokenFile is the token's path (config.DefaultKubernetesTokenFile).
	TokenFile = TokenDir + "/secrethub"
	// AgentContainer is the name of the agent's long-running container
	// (the native sidecar, or the regular sidecar).
	AgentContainer = "secrethub-agent"
	// AgentInitContainer is the name of the -init container of the
	// fallback layout and of mode init-only.
	AgentInitContainer = "secrethub-agent-init"
	// EnvAgentConfig holds the agent's configuration (JSON, read as YAML).
	EnvAgentConfig = "SECRETHUB_AGENT_CONFIG"
	// DefaultAudience is the projected token's audience.
	DefaultAudience = "secrethub"
	// DefaultTokenExpirationSeconds is the projected token's lifetime; the
	// kubelet renews it at 80%.
	DefaultTokenExpirationSeconds = 3600
	// DefaultRunAsUser is the agent's user and group (distroless nonroot).
	DefaultRunAsUser = 65532
	// DefaultFilePerms are the rendered files' permissions: readable by
	// the app's user whatever it is; the volume is private to the pod.
	DefaultFilePerms = "0644"
)

// Defaults of Config.
var (
	DefaultVolumeSizeLimit = resource.MustParse("16Mi")
	DefaultStateSizeLimit  = resource.MustParse("1Mi")
	// DefaultRunSizeLimit bounds the run volume: pid files only.
	DefaultRunSizeLimit = resource.MustParse("1Mi")
	// DefaultResources are small: the idle agent uses about 14 MiB.
	DefaultResources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("10m"),
			corev1.ResourceMemory: resource.MustParse("32Mi"),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("200m"),
			corev1.ResourceMemory: resource.MustParse("64Mi"),
		},
	}
	// DefaultCommand starts the slim agent binary of the agent image.
	DefaultCommand = []string{"/secrethub-agent"}
	// DefaultSkipNamespaces are never injected.
	DefaultSkipNamespaces = []string{"kube-system", "kube-public"}
)

// ErrConfig is returned (wrapped) when Config is incomplete.
var ErrConfig = errors.New("inject: invalid configuration")

// Config is what the injector needs besides the pod.
type Config struct {
	// Image is the agent's image. Required.
	Image string
	// Command runs the agent in Image. Default DefaultCommand.
	Command []string
	// ImagePullPolicy of the agent's containers. Default: unset (the
	// API server's default).
	ImagePullPolicy corev1.PullPolicy
	// CoreAddresses are the core's REST base URLs. Required.
	CoreAddresses []string
	// CoreCAPEM, when set, is the PEM bundle the core's REST certificate
	// chains to (a private CA); the agents get it as core.ca_pem.
	CoreCAPEM string
	// AgentAddresses are the core's agent listener base URLs. Required
	// unless every pod is init-only.
	AgentAddresses []string
	// AuthMount is the core's Kubernetes auth mount. Default
	// config.DefaultKubernetesMount.
	AuthMount string
	// Audience of the projected token. Default DefaultAudience.
	Audience string
	// NativeSidecars makes the agent a native sidecar (Kubernetes 1.29+);
	// false gives an init container plus a sidecar. NewConfig sets it.
	NativeSidecars bool
	// Resources of the agent's containers. Default DefaultResources.
	Resources *corev1.ResourceRequirements
	// VolumeSizeLimit bounds the shared volume. Default
	// DefaultVolumeSizeLimit.
	VolumeSizeLimit *resource.Quantity
	// RunAsUser is the agent's user and group. Default DefaultRunAsUser.
	RunAsUser *int64
	// Namespace is the webhook's own namespace: never injected.
	Namespace string
	// SkipNamespaces are never injected besides Namespace. Default
	// DefaultSkipNamespaces.
	SkipNamespaces []string
}

// NewConfig returns a Config with NativeSidecars on, the rest at defaults.
func NewConfig(image string, coreAddresses, agentAddresses []string) Config {
	return Config{Image: image, CoreAddresses: coreAddresses, AgentAddresses: agentAddresses, NativeSidecars: true}
}

// Validate reports a Config that cannot inject any pod.
func (c Config) Validate() error {
	switch {
	case c.Image == "":
		return fmt.Errorf("%w: no agent image", ErrConfig)
	case len(c.CoreAddresses) == 0:
		return fmt.Errorf("%w: no core address", ErrConfig)
	}
	return nil
}

// Skipped reports whether pods of namespace ns are never injected.
func (c Config) Skipped(ns string) bool {
	if ns != "" && ns == c.Namespace {
		return true
	}
	skip := c.SkipNamespaces
	if skip == nil {
		skip = DefaultSkipNamespaces
	}
	return slices.Contains(skip, ns)
}

// Injected reports whether pod already carries the agent.
func Injected(pod *corev1.Pod) bool {
	if pod.Annotations[AnnotationStatus] == StatusInjected {
		return true
	}
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			if c.Name == AgentContainer || c.Name == AgentInitContainer {
				return true
			}
		}
	}
	return false
}

// Pod returns pod with the agent injected, or pod itself (unchanged, not
// copied) when it did not opt in or is already injected. An invalid
// annotation gives an *AnnotationError naming it. pod is never modified.
func Pod(pod *corev1.Pod, cfg Config) (*corev1.Pod, error) {
	if Injected(pod) {
		return pod, nil
	}
	spec, err := ParseAnnotations(pod.Annotations)
	if err != nil {
		return nil, err
	}
	if !spec.Inject {
		return pod, nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if spec.Mode == ModeSidecar && len(cfg.AgentAddresses) == 0 {
		return nil, annErr(AnnotationMode, "%s: this injector knows no core agent listener; only %s is available", ModeSidecar, ModeInitOnly)
	}
	for _, v := range pod.Spec.Volumes {
		if v.Name == VolumeName || v.Name == StateVolumeName || v.Name == TokenVolumeName || v.Name == RunVolumeName {
			return nil, annErr(AnnotationInject, "the pod already has a volume named %q", v.Name)
		}
	}
	if len(spec.AgentTemplates) > 0 {
		if pod.Namespace == "" {
			return nil, errors.New("inject: the pod's namespace is unknown: AgentTemplates are resolved in it")
		}
		spec.Namespace = pod.Namespace
	}
	agentYAML, err := AgentConfig(spec, cfg)
	if err != nil {
		return nil, err
	}
	resources, err := agentResources(spec, cfg)
	if err != nil {
		return nil, err
	}
	signalKey := spec.signalReload()
	var appUser *appIdentity
	if signalKey != "" {
		if appUser, err = signalUser(pod, signalKey); err != nil {
			return nil, err
		}
	}

	out := pod.DeepCopy()
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[AnnotationStatus] = StatusInjected
	if out.Spec.ServiceAccountName == "" && out.Spec.DeprecatedServiceAccount == "" {
		// A projected token needs the service account named; the API
		// server's ServiceAccount admission would pick "default" as well.
		out.Spec.ServiceAccountName = "default"
	}
	out.Spec.Volumes = append(out.Spec.Volumes, volumes(cfg)...)
	appMounts := []corev1.VolumeMount{{Name: VolumeName, MountPath: MountPath, ReadOnly: true}}
	if appUser != nil {
		size := DefaultRunSizeLimit
		out.Spec.Volumes = append(out.Spec.Volumes, corev1.Volume{Name: RunVolumeName,
			VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &size}}})
		appMounts = append(appMounts, corev1.VolumeMount{Name: RunVolumeName, MountPath: RunDir})
		// A signal reaches the app's process only in a shared PID
		// namespace.
		share := true
		out.Spec.ShareProcessNamespace = &share
	}
	for i := range out.Spec.InitContainers {
		out.Spec.InitContainers[i].VolumeMounts = append(out.Spec.InitContainers[i].VolumeMounts, appMounts...)
	}
	for i := range out.Spec.Containers {
		out.Spec.Containers[i].VolumeMounts = append(out.Spec.Containers[i].VolumeMounts, appMounts...)
	}

	base := agentContainer(cfg, agentYAML, resources)
	if appUser != nil {
		// The kernel lets a process without capabilities signal only
		// processes of its own user: the agent runs as the app's.
		base.SecurityContext.RunAsUser, base.SecurityContext.RunAsGroup = &appUser.uid, &appUser.gid
		base.VolumeMounts = append(base.VolumeMounts, corev1.VolumeMount{Name: RunVolumeName, MountPath: RunDir, ReadOnly: true})
	}
	var inits []corev1.Container
	switch {
	case spec.Mode == ModeInitOnly:
		c := base
		c.Name = AgentInitContainer
		c.Args = append(c.Args, "-init")
		inits = append(inits, c)
	case cfg.NativeSidecars:
		c := base
		c.Name = AgentContainer
		always := corev1.ContainerRestartPolicyAlways
		c.RestartPolicy = &always
		c.StartupProbe = &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: append(slices.Clone(commandOf(cfg)), "-check-file", InitMarker)}},
			PeriodSeconds:    1,
			FailureThreshold: 300,
			TimeoutSeconds:   1,
		}
		inits = append(inits, c)
	default:
		c := base
		c.Name = AgentInitContainer
		c.Args = append(c.Args, "-init")
		inits = append(inits, c)
		side := base
		side.Name = AgentContainer
		out.Spec.Containers = append(out.Spec.Containers, side)
	}
	// The agent goes first, so the app's own init containers see the files.
	out.Spec.InitContainers = append(inits, out.Spec.InitContainers...)
	return out, nil
}

// signalReload returns the key of the first reload-<name> annotation
// that sends a signal in mode sidecar, or "".
func (s *Spec) signalReload() string {
	if s.Mode != ModeSidecar {
		return ""
	}
	for _, sec := range s.Secrets {
		if sec.Reload != nil && sec.Reload.Signal != nil {
			return AnnotationReloadPrefix + sec.Name
		}
	}
	return ""
}

// appIdentity is the user and group the app's processes run as.
type appIdentity struct{ uid, gid int64 }

// signalUser finds the user the app runs as, which the agent must share
// to signal it: the pod's securityContext.runAsUser, else the one
// runAsUser its containers agree on. Root, or no user known, is refused
// on key (the reload annotation), saying what to do.
func signalUser(pod *corev1.Pod, key string) (*appIdentity, error) {
	var uid, gid *int64
	if sc := pod.Spec.SecurityContext; sc != nil {
		uid, gid = sc.RunAsUser, sc.RunAsGroup
	}
	if uid == nil {
		for _, c := range pod.Spec.Containers {
			sc := c.SecurityContext
			if sc == nil || sc.RunAsUser == nil {
				continue
			}
			if uid != nil && *uid != *sc.RunAsUser {
				return nil, annErr(key, "the app's containers run as different users (%d, %d): set securityContext.runAsUser on the pod, the user of the process to signal", *uid, *sc.RunAsUser)
			}
			uid = sc.RunAsUser
			if sc.RunAsGroup != nil {
				gid = sc.RunAsGroup
			}
		}
	}
	switch {
	case uid == nil:
		return nil, annErr(key, "a signal reload needs the app's user: set securityContext.runAsUser (non-root) on the pod, so the agent runs as that user and may signal it; or use an http: or command: reload")
	case *uid == 0:
		return nil, annErr(key, "the app runs as root: the agent runs without privileges and may signal only processes of its own, non-root user; run the app as a non-root user, or use an http: or command: reload")
	}
	id := &appIdentity{uid: *uid, gid: *uid}
	if gid != nil {
		id.gid = *gid
	}
	return id, nil
}

// AgentConfig renders the agent's configuration for spec, as JSON (a
// document the agent's YAML configuration loader reads).
func AgentConfig(spec *Spec, cfg Config) ([]byte, error) {
	mount := cfg.AuthMount
	if mount == "" {
		mount = config.DefaultKubernetesMount
	}
	ac := config.Config{
		Core: config.Core{Addresses: cfg.CoreAddresses, AgentAddresses: cfg.AgentAddresses, CAPEM: cfg.CoreCAPEM},
		Auth: config.Auth{
			Method:    config.AuthKubernetes,
			Role:      spec.Role,
			TokenFile: TokenFile,
			Mount:     mount,
		},
		StateDir: StateDir,
		// The init phase saves what it read, with the leases of dynamic
		// credentials, in the private state volume; the sidecar starts
		// from there and renews those leases instead of reading again
		// (one set of leases per pod).
		Cache:      config.Cache{Persist: true},
		InitMarker: InitMarker,
	}
	if spec.Mode == ModeInitOnly {
		ac.Core.AgentAddresses = nil
	}
	for _, s := range spec.Secrets {
		body := s.Template
		if body == "" {
			body = DefaultTemplate(s.Path)
		}
		t := config.Template{Name: s.Name, Contents: body, Destination: SecretsDir + "/" + s.Name, Perms: DefaultFilePerms}
		if spec.Mode == ModeSidecar {
			t.Reload = s.Reload
		}
		ac.Templates = append(ac.Templates, t)
	}
	for _, name := range spec.AgentTemplates {
		ac.TemplateSources = append(ac.TemplateSources, v1alpha1.AgentTemplateCorePath(spec.Namespace, name))
	}
	check := ac
	check.Templates = slices.Clone(ac.Templates)
	for i := range check.Templates {
		if r := check.Templates[i].Reload; r != nil {
			rc := *r
			check.Templates[i].Reload = &rc
		}
	}
	check.FillDefaults()
	if err := check.Validate(); err != nil {
		return nil, fmt.Errorf("inject: agent configuration: %w", err)
	}
	// JSON, which the agent reads as YAML: a third of the cost of
	// marshalling YAML (BenchmarkAdmission).
	b, err := json.Marshal(ac)
	if err != nil {
		return nil, fmt.Errorf("inject: agent configuration: %w", err)
	}
	return b, nil
}

func commandOf(cfg Config) []string {
	if len(cfg.Command) > 0 {
		return cfg.Command
	}
	return DefaultCommand
}

func agentResources(spec *Spec, cfg Config) (corev1.ResourceRequirements, error) {
	r := DefaultResources
	if cfg.Resources != nil {
		r = *cfg.Resources
	}
	r = *r.DeepCopy()
	set := func(list *corev1.ResourceList, name corev1.ResourceName, key string) {
		if q, ok := spec.Resources[key]; ok {
			if *list == nil {
				*list = corev1.ResourceList{}
			}
			(*list)[name] = q
		}
	}
	set(&r.Requests, corev1.ResourceCPU, AnnotationRequestsCPU)
	set(&r.Requests, corev1.ResourceMemory, AnnotationRequestsMemory)
	set(&r.Limits, corev1.ResourceCPU, AnnotationLimitsCPU)
	set(&r.Limits, corev1.ResourceMemory, AnnotationLimitsMemory)
	for _, p := range []struct {
		name       corev1.ResourceName
		req, limit string
	}{{corev1.ResourceCPU, AnnotationRequestsCPU, AnnotationLimitsCPU}, {corev1.ResourceMemory, AnnotationRequestsMemory, AnnotationLimitsMemory}} {
		req, rok := r.Requests[p.name]
		lim, lok := r.Limits[p.name]
		if rok && lok && req.Cmp(lim) > 0 {
			key := p.req
			if _, ok := spec.Resources[p.req]; !ok {
				key = p.limit
			}
			return r, annErr(key, "request %s is above limit %s", req.String(), lim.String())
		}
	}
	return r, nil
}

func agentContainer(cfg Config, agentYAML []byte, resources corev1.ResourceRequirements) corev1.Container {
	uid := int64(DefaultRunAsUser)
	if cfg.RunAsUser != nil {
		uid = *cfg.RunAsUser
	}
	yes, no := true, false
	return corev1.Container{
		Image:           cfg.Image,
		ImagePullPolicy: cfg.ImagePullPolicy,
		Command:         slices.Clone(commandOf(cfg)),
		Args:            []string{"-config-env", EnvAgentConfig},
		Env:             []corev1.EnvVar{{Name: EnvAgentConfig, Value: string(agentYAML)}},
		Resources:       resources,
		VolumeMounts: []corev1.VolumeMount{
			{Name: VolumeName, MountPath: MountPath},
			{Name: StateVolumeName, MountPath: StateDir},
			{Name: TokenVolumeName, MountPath: TokenDir, ReadOnly: true},
		},
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             &yes,
			RunAsUser:                &uid,
			RunAsGroup:               &uid,
			ReadOnlyRootFilesystem:   &yes,
			AllowPrivilegeEscalation: &no,
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
}

func volumes(cfg Config) []corev1.Volume {
	size := DefaultVolumeSizeLimit
	if cfg.VolumeSizeLimit != nil {
		size = *cfg.VolumeSizeLimit
	}
	state := DefaultStateSizeLimit
	aud := cfg.Audience
	if aud == "" {
		aud = DefaultAudience
	}
	exp := int64(DefaultTokenExpirationSeconds)
	return []corev1.Volume{
		{Name: VolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &size}}},
		{Name: StateVolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &state}}},
		{Name: TokenVolumeName, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: aud, ExpirationSeconds: &exp, Path: "secrethub",
			}}},
		}}},
	}
}
