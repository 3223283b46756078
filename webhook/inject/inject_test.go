package inject

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secrethub/secrethub/agent/config"
)

func testConfig() Config {
	return NewConfig("registry.example/secrethub:1", []string{"https://core.secrethub:4000"}, []string{"https://core.secrethub:4001"})
}

func testPod(ann map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "team", Annotations: ann},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "migrate", Image: "app"}},
			Containers:     []corev1.Container{{Name: "app", Image: "app"}, {Name: "proxy", Image: "proxy"}},
		},
	}
}

func base(extra map[string]string) map[string]string {
	m := map[string]string{AnnotationInject: "true", AnnotationRole: "app", AnnotationSecretPrefix + "db": "secrets/team/db"}
	for k, v := range extra {
		if v == "\x00" {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	return m
}

// agentConfig parses the agent configuration the container carries, the
// way the agent does.
func agentConfig(t *testing.T, c corev1.Container) *config.Config {
	t.Helper()
	if len(c.Env) != 1 || c.Env[0].Name != EnvAgentConfig {
		t.Fatalf("%s env = %+v", c.Name, c.Env)
	}
	ac, err := config.Parse([]byte(c.Env[0].Value), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("%s: agent config refused by the agent: %v\n%s", c.Name, err, c.Env[0].Value)
	}
	return ac
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func TestPodLayouts(t *testing.T) {
	legacy := testConfig()
	legacy.NativeSidecars = false
	tests := map[string]struct {
		ann        map[string]string
		cfg        Config
		inits      []string
		containers []string
		args       map[string][]string // container -> args
		native     bool
		agentAddrs bool
	}{
		"native sidecar": {
			ann: base(nil), cfg: testConfig(),
			inits: []string{AgentContainer, "migrate"}, containers: []string{"app", "proxy"},
			args:   map[string][]string{AgentContainer: {"-config-env", EnvAgentConfig}},
			native: true, agentAddrs: true,
		},
		"fallback init + sidecar": {
			ann: base(nil), cfg: legacy,
			inits: []string{AgentInitContainer, "migrate"}, containers: []string{"app", "proxy", AgentContainer},
			args:       map[string][]string{AgentInitContainer: {"-config-env", EnvAgentConfig, "-init"}, AgentContainer: {"-config-env", EnvAgentConfig}},
			agentAddrs: true,
		},
		"init-only": {
			ann: base(map[string]string{AnnotationMode: ModeInitOnly}), cfg: testConfig(),
			inits: []string{AgentInitContainer, "migrate"}, containers: []string{"app", "proxy"},
			args: map[string][]string{AgentInitContainer: {"-config-env", EnvAgentConfig, "-init"}},
		},
		"explicit sidecar mode": {
			ann: base(map[string]string{AnnotationMode: ModeSidecar}), cfg: testConfig(),
			inits: []string{AgentContainer, "migrate"}, containers: []string{"app", "proxy"},
			args:   map[string][]string{AgentContainer: {"-config-env", EnvAgentConfig}},
			native: true, agentAddrs: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := testPod(tc.ann)
			orig := in.DeepCopy()
			out, err := Pod(in, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(in, orig) {
				t.Fatal("Pod modified its input")
			}
			if got := strings.Join(names(out.Spec.InitContainers), ","); got != strings.Join(tc.inits, ",") {
				t.Errorf("init containers = %s, want %s", got, strings.Join(tc.inits, ","))
			}
			if got := strings.Join(names(out.Spec.Containers), ","); got != strings.Join(tc.containers, ",") {
				t.Errorf("containers = %s, want %s", got, strings.Join(tc.containers, ","))
			}
			if out.Spec.ServiceAccountName != "default" {
				t.Errorf("serviceAccountName = %q, want default (the projected token needs one)", out.Spec.ServiceAccountName)
			}
			if out.Annotations[AnnotationStatus] != StatusInjected {
				t.Errorf("status annotation = %q", out.Annotations[AnnotationStatus])
			}
			checkVolumes(t, out)
			for _, list := range [][]corev1.Container{out.Spec.InitContainers, out.Spec.Containers} {
				for _, c := range list {
					want, isAgent := tc.args[c.Name]
					if !isAgent {
						checkAppMount(t, c)
						continue
					}
					checkAgent(t, c, tc.cfg)
					if strings.Join(c.Args, " ") != strings.Join(want, " ") {
						t.Errorf("%s args = %q, want %q", c.Name, c.Args, want)
					}
					native := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
					if native != (tc.native && c.Name == AgentContainer) {
						t.Errorf("%s restartPolicy = %v", c.Name, c.RestartPolicy)
					}
					if native {
						p := c.StartupProbe
						if p == nil || p.Exec == nil || strings.Join(p.Exec.Command, " ") != "/secrethub-agent -check-file "+InitMarker {
							t.Errorf("%s startup probe = %+v", c.Name, p)
						}
					} else if c.StartupProbe != nil {
						t.Errorf("%s has a startup probe without being a native sidecar", c.Name)
					}
					ac := agentConfig(t, c)
					if ac.Auth.Method != config.AuthKubernetes || ac.Auth.Role != "app" || ac.Auth.TokenFile != TokenFile || ac.Auth.Mount != "kubernetes" {
						t.Errorf("agent auth = %+v", ac.Auth)
					}
					if ac.InitMarker != InitMarker || ac.StateDir != StateDir || !ac.Cache.Persist {
						t.Errorf("agent init_marker %q state_dir %q cache.persist %v", ac.InitMarker, ac.StateDir, ac.Cache.Persist)
					}
					if (len(ac.Core.AgentAddresses) > 0) != tc.agentAddrs {
						t.Errorf("agent_addresses = %q", ac.Core.AgentAddresses)
					}
					if len(ac.Templates) != 1 || ac.Templates[0].Destination != SecretsDir+"/db" ||
						ac.Templates[0].Contents != `{{ toJSON (secret "secrets/team/db") }}` || ac.Templates[0].Perms != DefaultFilePerms {
						t.Errorf("agent templates = %+v", ac.Templates)
					}
				}
			}
			again, err := Pod(out, tc.cfg)
			if err != nil || again != out {
				t.Errorf("second injection: changed pod or err %v", err)
			}
		})
	}
}

func checkVolumes(t *testing.T, p *corev1.Pod) {
	t.Helper()
	got := map[string]corev1.Volume{}
	for _, v := range p.Spec.Volumes {
		got[v.Name] = v
	}
	v := got[VolumeName]
	if v.EmptyDir == nil || v.EmptyDir.Medium != corev1.StorageMediumMemory || v.EmptyDir.SizeLimit == nil || v.EmptyDir.SizeLimit.Cmp(DefaultVolumeSizeLimit) != 0 {
		t.Errorf("volume %s = %+v", VolumeName, v)
	}
	if s := got[StateVolumeName]; s.EmptyDir == nil || s.EmptyDir.Medium != corev1.StorageMediumMemory {
		t.Errorf("volume %s = %+v", StateVolumeName, s)
	}
	tok := got[TokenVolumeName]
	if tok.Projected == nil || len(tok.Projected.Sources) != 1 || tok.Projected.Sources[0].ServiceAccountToken == nil {
		t.Fatalf("volume %s = %+v", TokenVolumeName, tok)
	}
	if sa := tok.Projected.Sources[0].ServiceAccountToken; sa.Audience != DefaultAudience || sa.Path != "secrethub" {
		t.Errorf("projected token = %+v", sa)
	}
}

func checkAppMount(t *testing.T, c corev1.Container) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.Name == VolumeName && m.MountPath == MountPath && m.ReadOnly {
			return
		}
	}
	t.Errorf("app container %s lacks the read-only %s mount: %+v", c.Name, MountPath, c.VolumeMounts)
}

func checkAgent(t *testing.T, c corev1.Container, cfg Config) {
	t.Helper()
	if c.Image != cfg.Image {
		t.Errorf("%s image = %q", c.Name, c.Image)
	}
	sc := c.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil ||
		len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s security context = %+v", c.Name, sc)
	}
	if !equality.Semantic.DeepEqual(c.Resources, DefaultResources) {
		t.Errorf("%s resources = %+v", c.Name, c.Resources)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	if m := mounts[VolumeName]; m.MountPath != MountPath || m.ReadOnly {
		t.Errorf("%s shared mount = %+v", c.Name, m)
	}
	if m := mounts[StateVolumeName]; m.MountPath != StateDir {
		t.Errorf("%s state mount = %+v", c.Name, m)
	}
	if m := mounts[TokenVolumeName]; m.MountPath != TokenDir || !m.ReadOnly {
		t.Errorf("%s token mount = %+v", c.Name, m)
	}
}

func TestPodAnnotations(t *testing.T) {
	tests := map[string]struct {
		ann   map[string]string
		check func(t *testing.T, p *corev1.Pod, ac *config.Config)
	}{
		"template": {
			ann: base(map[string]string{AnnotationTemplatePrefix + "db": `{{ with secret "secrets/team/db" }}{{ .password }}{{ end }}`}),
			check: func(t *testing.T, _ *corev1.Pod, ac *config.Config) {
				if ac.Templates[0].Contents != `{{ with secret "secrets/team/db" }}{{ .password }}{{ end }}` {
					t.Errorf("contents = %q", ac.Templates[0].Contents)
				}
			},
		},
		"several secrets sorted": {
			ann: base(map[string]string{AnnotationSecretPrefix + "api": "secrets/team/api", AnnotationSecretPrefix + "z.env": "secrets/team/z"}),
			check: func(t *testing.T, _ *corev1.Pod, ac *config.Config) {
				var got []string
				for _, tp := range ac.Templates {
					got = append(got, tp.Name+"="+tp.Destination)
				}
				if want := "api=/secrethub/secrets/api,db=/secrethub/secrets/db,z.env=/secrethub/secrets/z.env"; strings.Join(got, ",") != want {
					t.Errorf("templates = %s, want %s", strings.Join(got, ","), want)
				}
			},
		},
		"no secrets": {
			ann: base(map[string]string{AnnotationSecretPrefix + "db": "\x00"}),
			check: func(t *testing.T, _ *corev1.Pod, ac *config.Config) {
				if len(ac.Templates) != 0 {
					t.Errorf("templates = %+v", ac.Templates)
				}
			},
		},
		"reload command": {
			ann: base(map[string]string{AnnotationReloadPrefix + "db": "command:/bin/kill -HUP 1"}),
			check: func(t *testing.T, p *corev1.Pod, ac *config.Config) {
				if r := ac.Templates[0].Reload; r == nil || strings.Join(r.Command, "|") != "/bin/kill|-HUP|1" {
					t.Errorf("reload = %+v", r)
				}
				if p.Spec.ShareProcessNamespace != nil {
					t.Error("shareProcessNamespace set without a signal reload")
				}
			},
		},
		"reload http": {
			ann: base(map[string]string{AnnotationReloadPrefix + "db": "http:http://127.0.0.1:8080/-/reload"}),
			check: func(t *testing.T, _ *corev1.Pod, ac *config.Config) {
				if r := ac.Templates[0].Reload; r == nil || r.HTTP == nil || r.HTTP.URL != "http://127.0.0.1:8080/-/reload" {
					t.Errorf("reload = %+v", r)
				}
			},
		},
		"agent templates": {
			ann: base(map[string]string{AnnotationAgentTemplate: "web, metrics.v2"}),
			check: func(t *testing.T, _ *corev1.Pod, ac *config.Config) {
				want := []string{"secrets/secrethub/agent-templates/team/web", "secrets/secrethub/agent-templates/team/metrics.v2"}
				if !slices.Equal(ac.TemplateSources, want) {
					t.Errorf("template_sources = %q, want %q", ac.TemplateSources, want)
				}
				if len(ac.Templates) != 1 {
					t.Errorf("templates = %+v, want the secret-db one", ac.Templates)
				}
			},
		},
		"agent template alone": {
			ann: map[string]string{AnnotationInject: "true", AnnotationRole: "app", AnnotationAgentTemplate: "web", AnnotationMode: ModeInitOnly},
			check: func(t *testing.T, _ *corev1.Pod, ac *config.Config) {
				if len(ac.Templates) != 0 || len(ac.TemplateSources) != 1 {
					t.Errorf("templates = %+v, sources = %q", ac.Templates, ac.TemplateSources)
				}
			},
		},
		"reload dropped in init-only": {
			ann: base(map[string]string{AnnotationMode: ModeInitOnly, AnnotationReloadPrefix + "db": "signal:HUP:/secrethub-run/app.pid"}),
			check: func(t *testing.T, p *corev1.Pod, ac *config.Config) {
				if ac.Templates[0].Reload != nil || p.Spec.ShareProcessNamespace != nil {
					t.Errorf("init-only pod got a reload: %+v", ac.Templates[0].Reload)
				}
			},
		},
		"resources": {
			ann: base(map[string]string{AnnotationRequestsCPU: "50m", AnnotationRequestsMemory: "40Mi", AnnotationLimitsCPU: "1", AnnotationLimitsMemory: "128Mi"}),
			check: func(t *testing.T, p *corev1.Pod, _ *config.Config) {
				r := p.Spec.InitContainers[0].Resources
				for name, want := range map[string]struct{ got, want resource.Quantity }{
					"requests.cpu":    {r.Requests[corev1.ResourceCPU], resource.MustParse("50m")},
					"requests.memory": {r.Requests[corev1.ResourceMemory], resource.MustParse("40Mi")},
					"limits.cpu":      {r.Limits[corev1.ResourceCPU], resource.MustParse("1")},
					"limits.memory":   {r.Limits[corev1.ResourceMemory], resource.MustParse("128Mi")},
				} {
					if want.got.Cmp(want.want) != 0 {
						t.Errorf("%s = %s, want %s", name, want.got.String(), want.want.String())
					}
				}
				if DefaultResources.Requests.Cpu().Cmp(resource.MustParse("10m")) != 0 {
					t.Error("the annotation changed DefaultResources")
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, err := Pod(testPod(tc.ann), testConfig())
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, out, agentConfig(t, out.Spec.InitContainers[0]))
		})
	}
}

func TestPodUntouched(t *testing.T) {
	tests := map[string]*corev1.Pod{
		"no annotations":    testPod(nil),
		"inject false":      testPod(map[string]string{AnnotationInject: "false", AnnotationRole: "!!"}),
		"already injected":  testPod(base(map[string]string{AnnotationStatus: StatusInjected})),
		"agent in the pod":  func() *corev1.Pod { p := testPod(base(nil)); p.Spec.Containers[1].Name = AgentContainer; return p }(),
		"other annotations": testPod(map[string]string{"secrethub.io/secret-db": "not parsed without inject"}),
	}
	for name, p := range tests {
		t.Run(name, func(t *testing.T) {
			out, err := Pod(p, testConfig())
			if err != nil || out != p {
				t.Fatalf("Pod = changed, %v; want the same pod", err)
			}
		})
	}
}

func TestPodInvalid(t *testing.T) {
	tests := map[string]struct {
		ann map[string]string
		key string
	}{
		"inject":                   {map[string]string{AnnotationInject: "yes please"}, AnnotationInject},
		"role missing":             {base(map[string]string{AnnotationRole: "\x00"}), AnnotationRole},
		"role invalid":             {base(map[string]string{AnnotationRole: "a b"}), AnnotationRole},
		"mode":                     {base(map[string]string{AnnotationMode: "daemon"}), AnnotationMode},
		"agent-template name":      {base(map[string]string{AnnotationAgentTemplate: "Web_1"}), AnnotationAgentTemplate},
		"agent-template path":      {base(map[string]string{AnnotationAgentTemplate: "other/web"}), AnnotationAgentTemplate},
		"agent-template empty":     {base(map[string]string{AnnotationAgentTemplate: ""}), AnnotationAgentTemplate},
		"agent-template trailing":  {base(map[string]string{AnnotationAgentTemplate: "web,"}), AnnotationAgentTemplate},
		"agent-template twice":     {base(map[string]string{AnnotationAgentTemplate: "web, web"}), AnnotationAgentTemplate},
		"agent-template too many":  {base(map[string]string{AnnotationAgentTemplate: "a,b,c,d,e,f,g,h,i"}), AnnotationAgentTemplate},
		"secret path absolute":     {base(map[string]string{AnnotationSecretPrefix + "db": "/secrets/x"}), AnnotationSecretPrefix + "db"},
		"secret path dotdot":       {base(map[string]string{AnnotationSecretPrefix + "db": "secrets/../sys"}), AnnotationSecretPrefix + "db"},
		"secret path quote":        {base(map[string]string{AnnotationSecretPrefix + "db": `secrets/x") }}{{ ("`}), AnnotationSecretPrefix + "db"},
		"secret path empty":        {base(map[string]string{AnnotationSecretPrefix + "db": ""}), AnnotationSecretPrefix + "db"},
		"secret name dotdot":       {base(map[string]string{AnnotationSecretPrefix + "..": "secrets/x"}), AnnotationSecretPrefix + ".."},
		"secret name empty":        {base(map[string]string{AnnotationSecretPrefix: "secrets/x"}), AnnotationSecretPrefix},
		"template without secret":  {base(map[string]string{AnnotationTemplatePrefix + "api": "x"}), AnnotationTemplatePrefix + "api"},
		"template syntax":          {base(map[string]string{AnnotationTemplatePrefix + "db": "{{ .x "}), AnnotationTemplatePrefix + "db"},
		"template unknown func":    {base(map[string]string{AnnotationTemplatePrefix + "db": "{{ env \"HOME\" }}"}), AnnotationTemplatePrefix + "db"},
		"template empty":           {base(map[string]string{AnnotationTemplatePrefix + "db": " "}), AnnotationTemplatePrefix + "db"},
		"template too large":       {base(map[string]string{AnnotationTemplatePrefix + "db": strings.Repeat("x", maxTemplateBytes+1)}), AnnotationTemplatePrefix + "db"},
		"template control char":    {base(map[string]string{AnnotationTemplatePrefix + "db": "a\x7fb"}), AnnotationTemplatePrefix + "db"},
		"template invalid utf-8":   {base(map[string]string{AnnotationTemplatePrefix + "db": "a\xffb"}), AnnotationTemplatePrefix + "db"},
		"reload control char":      {base(map[string]string{AnnotationReloadPrefix + "db": "command:a\x00"}), AnnotationReloadPrefix + "db"},
		"reload without secret":    {base(map[string]string{AnnotationReloadPrefix + "api": "command:true"}), AnnotationReloadPrefix + "api"},
		"reload kind":              {base(map[string]string{AnnotationReloadPrefix + "db": "kill:1"}), AnnotationReloadPrefix + "db"},
		"reload signal":            {base(map[string]string{AnnotationReloadPrefix + "db": "signal:SIGFOO:/run/app.pid"}), AnnotationReloadPrefix + "db"},
		"reload pid file":          {base(map[string]string{AnnotationReloadPrefix + "db": "signal:HUP:run/app.pid"}), AnnotationReloadPrefix + "db"},
		"reload pid file unshared": {base(map[string]string{AnnotationReloadPrefix + "db": "signal:HUP:/secrethub/app.pid"}), AnnotationReloadPrefix + "db"},
		"reload pid file escapes":  {base(map[string]string{AnnotationReloadPrefix + "db": "signal:HUP:/secrethub-run/../etc/pid"}), AnnotationReloadPrefix + "db"},
		"reload signal no file":    {base(map[string]string{AnnotationReloadPrefix + "db": "signal:HUP"}), AnnotationReloadPrefix + "db"},
		"reload empty command":     {base(map[string]string{AnnotationReloadPrefix + "db": "command: "}), AnnotationReloadPrefix + "db"},
		"reload remote http":       {base(map[string]string{AnnotationReloadPrefix + "db": "http:http://example.com/reload"}), AnnotationReloadPrefix + "db"},
		"requests cpu":             {base(map[string]string{AnnotationRequestsCPU: "lots"}), AnnotationRequestsCPU},
		"requests memory":          {base(map[string]string{AnnotationRequestsMemory: "-1Mi"}), AnnotationRequestsMemory},
		"limits cpu":               {base(map[string]string{AnnotationLimitsCPU: "0"}), AnnotationLimitsCPU},
		"limits memory":            {base(map[string]string{AnnotationLimitsMemory: "1Mi"}), AnnotationLimitsMemory},
		"request above limit":      {base(map[string]string{AnnotationRequestsCPU: "2"}), AnnotationRequestsCPU},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Pod(testPod(tc.ann), testConfig())
			var ae *AnnotationError
			if !errors.As(err, &ae) || ae.Key != tc.key {
				t.Fatalf("err = %v, want an AnnotationError for %s", err, tc.key)
			}
			if !strings.Contains(err.Error(), tc.key) {
				t.Errorf("message %q does not name %s", err, tc.key)
			}
		})
	}
}

func TestPodConfig(t *testing.T) {
	noListener := testConfig()
	noListener.AgentAddresses = nil
	if _, err := Pod(testPod(base(nil)), noListener); err == nil || !strings.Contains(err.Error(), AnnotationMode) {
		t.Errorf("sidecar without agent addresses: err = %v", err)
	}
	if _, err := Pod(testPod(base(map[string]string{AnnotationMode: ModeInitOnly})), noListener); err != nil {
		t.Errorf("init-only without agent addresses: %v", err)
	}
	noImage := testConfig()
	noImage.Image = ""
	if _, err := Pod(testPod(base(nil)), noImage); !errors.Is(err, ErrConfig) {
		t.Errorf("no image: err = %v", err)
	}
	clash := testPod(base(nil))
	clash.Spec.Volumes = []corev1.Volume{{Name: VolumeName}}
	if _, err := Pod(clash, testConfig()); err == nil || !strings.Contains(err.Error(), AnnotationInject) {
		t.Errorf("volume name clash: err = %v", err)
	}
	withSA := testPod(base(nil))
	withSA.Spec.ServiceAccountName = "app"
	if out, err := Pod(withSA, testConfig()); err != nil || out.Spec.ServiceAccountName != "app" {
		t.Errorf("service account app: got %v", err)
	}
	custom := testConfig()
	custom.Audience, custom.AuthMount, custom.Command = "core.example", "k8s/prod", []string{"/bin/agent"}
	out, err := Pod(testPod(base(nil)), custom)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range out.Spec.Volumes {
		if v.Name == TokenVolumeName && v.Projected.Sources[0].ServiceAccountToken.Audience != "core.example" {
			t.Errorf("audience = %q", v.Projected.Sources[0].ServiceAccountToken.Audience)
		}
	}
	agent := out.Spec.InitContainers[0]
	if agent.Command[0] != "/bin/agent" || agent.StartupProbe.Exec.Command[0] != "/bin/agent" {
		t.Errorf("command %q probe %q", agent.Command, agent.StartupProbe.Exec.Command)
	}
	if ac := agentConfig(t, agent); ac.Auth.Mount != "k8s/prod" {
		t.Errorf("mount = %q", ac.Auth.Mount)
	}
}

func TestSkipped(t *testing.T) {
	cfg := testConfig()
	cfg.Namespace = "secrethub-system"
	for ns, want := range map[string]bool{"kube-system": true, "kube-public": true, "secrethub-system": true, "team": false, "": false} {
		if got := cfg.Skipped(ns); got != want {
			t.Errorf("Skipped(%q) = %v, want %v", ns, got, want)
		}
	}
}

// FuzzParseAnnotations: parsing never panics; an accepted spec always
// renders an agent configuration the agent accepts; every error names an
// annotation.
func FuzzParseAnnotations(f *testing.F) {
	f.Add("db", "secrets/app/db", "", "", "sidecar", "")
	f.Add("db", "secrets/app/db", `{{ with secret "secrets/app/db" }}{{ .password }}{{ end }}`, "signal:HUP:/secrethub-run/a.pid", "init-only", "50m")
	f.Add("a.b", "x", "{{", "command:", "x", "-1")
	f.Add("..", "../x", "", "http:http://127.0.0.1/r", "", "1Gi")
	f.Fuzz(func(t *testing.T, name, path, tmpl, reload, mode, cpu string) {
		ann := map[string]string{AnnotationInject: "true", AnnotationRole: "app", AnnotationSecretPrefix + name: path}
		if tmpl != "" {
			ann[AnnotationTemplatePrefix+name] = tmpl
		}
		if reload != "" {
			ann[AnnotationReloadPrefix+name] = reload
		}
		if mode != "" {
			ann[AnnotationMode] = mode
		}
		if cpu != "" {
			ann[AnnotationRequestsCPU] = cpu
		}
		spec, err := ParseAnnotations(ann)
		if err != nil {
			var ae *AnnotationError
			if !errors.As(err, &ae) || !strings.HasPrefix(ae.Key, Prefix) {
				t.Fatalf("error %v is not an AnnotationError", err)
			}
			return
		}
		if _, err := AgentConfig(spec, testConfig()); err != nil {
			t.Fatalf("accepted annotations %q give an invalid agent configuration: %v", ann, err)
		}
	})
}

// TestCoreCA: a private core CA reaches the agent's configuration as
// core.ca_pem, which the agent's own parser accepts (agentConfig parses
// it); a bundle without a certificate is refused.
func TestCoreCA(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "core CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	cfg := testConfig()
	cfg.CoreCAPEM = caPEM
	pod, err := Pod(testPod(map[string]string{AnnotationInject: "true", AnnotationRole: "web",
		AnnotationSecretPrefix + "db": "secrets/app/db"}), cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
		if len(c.Env) == 1 && c.Env[0].Name == EnvAgentConfig {
			n++
			if got := agentConfig(t, c).Core.CAPEM; got != caPEM {
				t.Errorf("%s: core.ca_pem = %q", c.Name, got)
			}
		}
	}
	if n == 0 {
		t.Fatal("no agent container")
	}
	cfg.CoreCAPEM = "not a certificate"
	if _, err := Pod(testPod(map[string]string{AnnotationInject: "true", AnnotationRole: "web",
		AnnotationSecretPrefix + "db": "secrets/app/db"}), cfg); err == nil || !strings.Contains(err.Error(), "core.ca_pem") {
		t.Errorf("a bad CA bundle: %v, want an error naming core.ca_pem", err)
	}
}

// TestSignalReload: a signal reload shares the PID namespace and a
// read-write run directory for the pid file, and runs the agent as the
// app's user (the only processes it may signal); an app running as root,
// or as no known user, is refused on the reload annotation.
func TestSignalReload(t *testing.T) {
	uid := func(v int64) *int64 { return &v }
	ann := base(map[string]string{AnnotationReloadPrefix + "db": "signal:SIGHUP:/secrethub-run/app.pid"})
	tests := map[string]struct {
		pod      func(p *corev1.Pod)
		uid, gid int64
		denied   string // substring of the error; "" when injected
	}{
		"pod user": {pod: func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: uid(1000), RunAsGroup: uid(3000)}
		}, uid: 1000, gid: 3000},
		"container user": {pod: func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: uid(1001)}
		}, uid: 1001, gid: 1001},
		"root": {pod: func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: uid(0)}
		}, denied: "the app runs as root"},
		"unknown user": {pod: func(*corev1.Pod) {}, denied: "set securityContext.runAsUser"},
		"two users": {pod: func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: uid(1000)}
			p.Spec.Containers[1].SecurityContext = &corev1.SecurityContext{RunAsUser: uid(2000)}
		}, denied: "different users (1000, 2000)"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := testPod(ann)
			tc.pod(p)
			out, err := Pod(p, testConfig())
			if tc.denied != "" {
				var ae *AnnotationError
				if !errors.As(err, &ae) || ae.Key != AnnotationReloadPrefix+"db" || !strings.Contains(err.Error(), tc.denied) {
					t.Fatalf("err = %v, want a refusal of %sdb saying %q", err, AnnotationReloadPrefix, tc.denied)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.Spec.ShareProcessNamespace == nil || !*out.Spec.ShareProcessNamespace {
				t.Error("shareProcessNamespace not set")
			}
			agent := out.Spec.InitContainers[0]
			if sc := agent.SecurityContext; *sc.RunAsUser != tc.uid || *sc.RunAsGroup != tc.gid || !*sc.RunAsNonRoot {
				t.Errorf("agent runs as %d:%d, want %d:%d", *sc.RunAsUser, *sc.RunAsGroup, tc.uid, tc.gid)
			}
			runMount := func(c corev1.Container) (corev1.VolumeMount, bool) {
				for _, m := range c.VolumeMounts {
					if m.Name == RunVolumeName {
						return m, true
					}
				}
				return corev1.VolumeMount{}, false
			}
			if m, ok := runMount(agent); !ok || !m.ReadOnly || m.MountPath != RunDir {
				t.Errorf("agent's run mount: %+v %v", m, ok)
			}
			for _, c := range append(out.Spec.Containers, out.Spec.InitContainers[1:]...) {
				if m, ok := runMount(c); !ok || m.ReadOnly || m.MountPath != RunDir {
					t.Errorf("%s's run mount: %+v %v, want read-write at %s", c.Name, m, ok, RunDir)
				}
			}
			ac := agentConfig(t, agent)
			if r := ac.Templates[0].Reload; r == nil || r.Signal == nil || r.Signal.PIDFile != "/secrethub-run/app.pid" {
				t.Errorf("reload = %+v", r)
			}
		})
	}
	// Without a signal reload, nothing of this is added.
	out, err := Pod(testPod(base(nil)), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if out.Spec.ShareProcessNamespace != nil || *out.Spec.InitContainers[0].SecurityContext.RunAsUser != DefaultRunAsUser {
		t.Error("a pod without signal reloads shares its PID namespace or runs the agent as another user")
	}
	for _, v := range out.Spec.Volumes {
		if v.Name == RunVolumeName {
			t.Error("run volume added without a signal reload")
		}
	}
}
