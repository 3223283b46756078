package controllers_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	appsv1 "k8s.io/api/apps/v1"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kclient "sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/secrethub/secrethub/agent/config"
	"github.com/secrethub/secrethub/api/v1alpha1"
	"github.com/secrethub/secrethub/controllers"
	"github.com/secrethub/secrethub/core/client"
	"github.com/secrethub/secrethub/internal/kubetest"
	"github.com/secrethub/secrethub/internal/pgtest"
)

// TestOperator runs every kind through the operator against one API
// server and one core. The subtests share them and run in order (one of
// them seals the core); each works in a namespace of its own.
func TestOperator(t *testing.T) {
	s := newSuite(t)
	t.Run("SecretPolicy", s.testSecretPolicy)
	t.Run("AgentTemplate", s.testAgentTemplate)
	t.Run("SecretBinding", s.testSecretBinding)
	t.Run("DynamicRolePostgreSQL", s.testDynamicRolePostgreSQL)
	t.Run("DynamicRoleAWSWaitsForItsSecret", s.testDynamicRoleAWS)
	t.Run("SealedCore", s.testSealedCore)
	t.Run("TenantConfinement", s.testTenantConfinement)
	t.Run("SecretSync", s.testSecretSync)
}

func (s *suite) testSecretPolicy(t *testing.T) {
	ctx := context.Background()
	ns := s.namespace(t)
	p := &v1alpha1.SecretPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-read"},
		Spec: v1alpha1.SecretPolicySpec{Rules: []v1alpha1.PolicyRule{
			{Path: "secrets/" + ns + "/app/*", Capabilities: []v1alpha1.Capability{"read", "list"}},
		}},
	}
	if err := s.kube.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	name := controllers.CoreName(ns, "app-read")
	s.ready(t, p)
	if p.Status.CoreName != name || !hasFinalizer(p) {
		t.Fatalf("status.coreName %q (want %q), finalizers %v", p.Status.CoreName, name, p.Finalizers)
	}
	want, err := controllers.PolicyDocument(name, p.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.policyDoc(t, name); got != want {
		t.Fatalf("core policy:\n%s\nwant\n%s", got, want)
	}

	// Edit: a second rule with every condition.
	s.update(t, p, func() {
		p.Spec.Rules = append(p.Spec.Rules, v1alpha1.PolicyRule{
			Path: "secrets/" + ns + "/app/admin/**", Capabilities: []v1alpha1.Capability{"update"}, Effect: "deny",
			Conditions: &v1alpha1.PolicyConditions{
				TimeOfDay:  &v1alpha1.TimeOfDay{Start: "08:00", End: "18:00", TimeZone: "Europe/Paris"},
				DaysOfWeek: []string{"mon", "fri"}, SourceIP: []string{"10.0.0.0/8"}, TTLMax: "1h",
			},
		})
	})
	s.ready(t, p)
	if want, _ = controllers.PolicyDocument(name, p.Spec); s.policyDoc(t, name) != want {
		t.Fatalf("core policy after the edit:\n%s\nwant\n%s", s.policyDoc(t, name), want)
	}

	// Drift: the policy changed by hand is put back at the next resync.
	if _, err := s.core.Write(ctx, "sys/policies/acl/"+name, map[string]any{"policy": `{"rules":[{"path":"**","capabilities":["sudo","read"]}]}`}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "drift corrected", func() error {
		if got := s.policyDoc(t, name); got != want {
			return fmt.Errorf("core holds %s", got)
		}
		return nil
	})

	// A spec the core refuses: Ready False, reason Rejected, with the
	// core's message naming the field; the core keeps the last good one.
	s.update(t, p, func() { p.Spec.Rules[1].Conditions.TimeOfDay.TimeZone = "Mars/Base" })
	c := s.condition(t, p, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonRejected)
	if err := contains(c.Message, "time_zone"); err != nil {
		t.Fatal(err)
	}
	if s.policyDoc(t, name) != want {
		t.Fatal("a refused spec changed the core policy")
	}
	s.update(t, p, func() { p.Spec.Rules[1].Conditions.TimeOfDay.TimeZone = "UTC" })
	s.ready(t, p)

	s.gone(t, p, "sys/policies/acl/"+name)
}

func (s *suite) testAgentTemplate(t *testing.T) {
	ctx := context.Background()
	ns := s.namespace(t)
	tpl := &v1alpha1.AgentTemplate{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: v1alpha1.AgentTemplateSpec{Templates: []v1alpha1.Template{
			{Name: "db", Contents: `{{ with secret "secrets/app/db" }}{{ .password }}{{ end }}`, Destination: "/secrethub/db.txt", Perms: "0600",
				Reload: &v1alpha1.Reload{Signal: &v1alpha1.SignalReload{Name: "SIGHUP", PIDFile: "/run/app.pid"}, Timeout: &metav1.Duration{Duration: 5 * time.Second}}},
			{Name: "env", Contents: "A=1\n", Destination: "/secrethub/env", MissingKey: "zero"},
		}},
	}
	if err := s.kube.Create(ctx, tpl); err != nil {
		t.Fatal(err)
	}
	path := controllers.AgentTemplatePath(ns, "web")
	s.ready(t, tpl)
	if tpl.Status.CoreName != path {
		t.Fatalf("status.coreName %q, want %q", tpl.Status.CoreName, path)
	}
	stored := func() []config.Template {
		t.Helper()
		resp, err := s.core.Read(ctx, path, nil)
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		b, _ := json.Marshal(resp.Data)
		var st controllers.StoredAgentTemplate
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		return st.Templates
	}
	if got, want := stored(), controllers.StoredTemplates(tpl.Spec).Templates; !reflect.DeepEqual(got, want) {
		t.Fatalf("core holds %+v, want %+v", got, want)
	}
	if got := stored()[0]; got.Reload == nil || got.Reload.Signal.PIDFile != "/run/app.pid" || time.Duration(got.Reload.Timeout) != 5*time.Second || got.Perms != "0600" {
		t.Fatalf("first template %+v", got)
	}

	s.update(t, tpl, func() { tpl.Spec.Templates = tpl.Spec.Templates[1:] })
	s.ready(t, tpl)
	if got := stored(); len(got) != 1 || got[0].Name != "env" || got[0].MissingKey != "zero" {
		t.Fatalf("after the edit the core holds %+v", got)
	}

	// Drift: overwritten by hand, put back.
	if _, err := s.core.Write(ctx, path, map[string]any{"templates": []any{}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "drift corrected", func() error {
		if got := stored(); len(got) != 1 {
			return fmt.Errorf("core holds %+v", got)
		}
		return nil
	})

	s.gone(t, tpl, path)
}

func (s *suite) testSecretBinding(t *testing.T) {
	ctx := context.Background()
	if _, err := s.core.Write(ctx, "sys/auth/kubernetes", map[string]any{"type": "kubernetes"}); err != nil {
		t.Fatalf("enable kubernetes auth: %v", err)
	}
	ns := s.namespace(t)
	b := &v1alpha1.SecretBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: v1alpha1.SecretBindingSpec{
			ServiceAccounts: []string{"web", "worker-*"}, Policies: []string{"reader"},
			TokenTTL: &metav1.Duration{Duration: time.Hour}, Audience: "secrethub",
		},
	}
	if err := s.kube.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	// The role is written at once, but the binding is not Ready while its
	// SecretPolicy does not exist.
	s.condition(t, b, v1alpha1.ConditionSynced, metav1.ConditionTrue, v1alpha1.ReasonSynced)
	c := s.condition(t, b, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonDependencyMissing)
	if err := contains(c.Message, "reader"); err != nil {
		t.Fatal(err)
	}
	name := controllers.CoreName(ns, "web")
	rolePath := "auth/kubernetes/role/" + name
	role := func() map[string]any {
		t.Helper()
		resp, err := s.core.Read(ctx, rolePath, nil)
		if err != nil {
			t.Fatalf("read %s: %v", rolePath, err)
		}
		return resp.Data
	}
	r := role()
	if fmt.Sprint(r["bound_service_account_names"]) != "[web worker-*]" || fmt.Sprint(r["bound_service_account_namespaces"]) != "["+ns+"]" ||
		fmt.Sprint(r["token_policies"]) != "["+controllers.CoreName(ns, "reader")+"]" || fmt.Sprint(r["token_ttl"]) != "3600" || r["audience"] != "secrethub" {
		t.Fatalf("auth role %v", r)
	}

	p := &v1alpha1.SecretPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reader"},
		Spec:       v1alpha1.SecretPolicySpec{Rules: []v1alpha1.PolicyRule{{Path: "secrets/" + ns + "/web/*", Capabilities: []v1alpha1.Capability{"read"}}}},
	}
	if err := s.kube.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	s.ready(t, b)
	s.loginAs(t, ns, "web", name, []string{"default", controllers.CoreName(ns, "reader")})

	// Edit, then drift.
	s.update(t, b, func() { b.Spec.ServiceAccounts = []string{"web"} })
	s.ready(t, b)
	if got := fmt.Sprint(role()["bound_service_account_names"]); got != "[web]" {
		t.Fatalf("bound names after the edit: %s", got)
	}
	if _, err := s.core.Write(ctx, rolePath, map[string]any{"bound_service_account_namespaces": []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "drift corrected", func() error {
		if got := fmt.Sprint(role()["bound_service_account_namespaces"]); got != "["+ns+"]" {
			return fmt.Errorf("bound namespaces %s", got)
		}
		return nil
	})

	s.gone(t, b, rolePath)
	s.gone(t, p, "sys/policies/acl/"+controllers.CoreName(ns, "reader"))
}

func (s *suite) testDynamicRolePostgreSQL(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t)
	super, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close(ctx)
	admin, adminPW := "sh_op_admin_"+randHex(4), "pw-"+randHex(12)
	if _, err := super.Exec(ctx, fmt.Sprintf("CREATE ROLE %s WITH LOGIN SUPERUSER PASSWORD '%s'", pgx.Identifier{admin}.Sanitize(), adminPW)); err != nil {
		t.Fatalf("create admin role: %v", err)
	}
	t.Cleanup(func() {
		_, _ = super.Exec(context.Background(), "DROP ROLE IF EXISTS "+pgx.Identifier{admin}.Sanitize())
	})
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	connURL := fmt.Sprintf("postgresql://{{username}}:{{password}}@%s%s?%s", u.Host, u.Path, u.RawQuery)

	ns := s.namespace(t)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg-admin"},
		Data:       map[string][]byte{"url": []byte(connURL), "username": []byte(admin), "password": []byte(adminPW)},
	}
	if err := s.kube.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	d := &v1alpha1.DynamicRole{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-db"},
		Spec: v1alpha1.DynamicRoleSpec{
			Engine: v1alpha1.EnginePostgreSQL,
			Connection: v1alpha1.Connection{SecretRef: v1alpha1.ConnectionSecretRef{
				Name: "pg-admin", Keys: map[string]string{"connection_url": "url"},
			}},
			PostgreSQL: &v1alpha1.PostgreSQLRole{},
			DefaultTTL: &metav1.Duration{Duration: 10 * time.Minute},
			MaxTTL:     &metav1.Duration{Duration: time.Hour},
		},
	}
	if err := s.kube.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	s.ready(t, d)
	mount := "database/k8s/" + ns + "/app-db"
	credsPath := mount + "/creds/app-db"
	if d.Status.CoreName != credsPath {
		t.Fatalf("status.coreName %q, want %q", d.Status.CoreName, credsPath)
	}
	role, err := s.core.Read(ctx, mount+"/roles/app-db", nil)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(role.Data["default_ttl"]) != "600" || fmt.Sprint(role.Data["max_ttl"]) != "3600" || role.Data["db_name"] != "app-db" {
		t.Fatalf("role %v", role.Data)
	}

	// Credentials come from the core and open a session on the server.
	creds, err := s.core.Read(ctx, credsPath, nil)
	if err != nil {
		t.Fatalf("read %s: %v", credsPath, err)
	}
	user, _ := creds.Data["username"].(string)
	pw, _ := creds.Data["password"].(string)
	if user == "" || pw == "" || creds.LeaseID == "" || creds.LeaseDuration != 600 {
		t.Fatalf("creds: user %q, lease %q %ds", user, creds.LeaseID, creds.LeaseDuration)
	}
	cu, _ := url.Parse(dbURL)
	cu.User = url.UserPassword(user, pw)
	conn, err := pgx.Connect(ctx, cu.String())
	if err != nil {
		t.Fatalf("log in as the issued user: %v", err)
	}
	var who string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&who); err != nil || who != user {
		t.Fatalf("current_user %q, %v", who, err)
	}
	_ = conn.Close(ctx)

	// A change of the Secret reaches the core: a database that does not
	// exist fails the core's connection check, and the fix recovers.
	setURL := func(v string) {
		s.update(t, secret, func() { secret.Data["url"] = []byte(v) })
	}
	setURL(fmt.Sprintf("postgresql://{{username}}:{{password}}@%s/no_such_db_%s?%s", u.Host, randHex(4), u.RawQuery))
	c := s.condition(t, d, v1alpha1.ConditionSynced, metav1.ConditionFalse, v1alpha1.ReasonRejected)
	if err := contains(c.Message, "connection_url"); err != nil {
		t.Fatal(err)
	}
	if err := contains(c.Message, adminPW); err == nil {
		t.Fatal("the admin password is in the condition message")
	}
	setURL(connURL)
	s.ready(t, d)

	// A SecretSync of the credentials path: leased credentials are
	// refused, and the lease its read took is revoked (the user dropped).
	roles := func() (n int) {
		t.Helper()
		if err := super.QueryRow(ctx, "SELECT count(*) FROM pg_roles").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := roles()
	sync := &v1alpha1.SecretSync{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-creds"},
		Spec:       v1alpha1.SecretSyncSpec{Path: credsPath},
	}
	if err := s.kube.Create(ctx, sync); err != nil {
		t.Fatal(err)
	}
	c = s.condition(t, sync, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonRejected)
	if err := contains(c.Message, "lease"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the SecretSync's lease revoked", func() error {
		if n := roles(); n != before {
			return fmt.Errorf("%d database roles, %d before the SecretSync", n, before)
		}
		return nil
	})
	if err := s.kube.Delete(ctx, sync); err != nil {
		t.Fatal(err)
	}

	// Delete: the mount goes, and with it the issued user.
	s.gone(t, d, "sys/mounts/"+mount)
	var n int
	if err := super.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", user).Scan(&n); err != nil || n != 0 {
		t.Fatalf("issued user still exists after delete (%d, %v)", n, err)
	}
}

func (s *suite) testDynamicRoleAWS(t *testing.T) {
	ctx := context.Background()
	ns := s.namespace(t)
	d := &v1alpha1.DynamicRole{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "deploy"},
		Spec: v1alpha1.DynamicRoleSpec{
			Engine:     v1alpha1.EngineAWS,
			Connection: v1alpha1.Connection{SecretRef: v1alpha1.ConnectionSecretRef{Name: "aws-root"}},
			AWS: &v1alpha1.AWSRole{
				CredentialType: v1alpha1.AWSAssumedRole,
				RoleARNs:       []string{"arn:aws:iam::123456789012:role/deploy"},
			},
			DefaultTTL: &metav1.Duration{Duration: 15 * time.Minute},
		},
	}
	if err := s.kube.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	c := s.condition(t, d, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonDependencyMissing)
	if err := contains(c.Message, "aws-root"); err != nil {
		t.Fatal(err)
	}
	// The Secret appears: the watch reconciles the role. (Writing the
	// aws engine's config does not call AWS.)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "aws-root"},
		StringData: map[string]string{"access_key": "AKIAIOSFODNN7EXAMPLE", "secret_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "region": "eu-west-1"},
	}
	if err := s.kube.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	s.ready(t, d)
	mount := "aws/k8s/" + ns + "/deploy"
	cfg, err := s.core.Read(ctx, mount+"/config/root", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Data["access_key"] != "AKIAIOSFODNN7EXAMPLE" || cfg.Data["region"] != "eu-west-1" {
		t.Fatalf("config %v", cfg.Data)
	}
	role, err := s.core.Read(ctx, mount+"/roles/deploy", nil)
	if err != nil {
		t.Fatal(err)
	}
	if role.Data["credential_type"] != "assumed_role" || fmt.Sprint(role.Data["default_sts_ttl"]) != "900" {
		t.Fatalf("role %v", role.Data)
	}
	// Drift: the mount removed by hand comes back.
	if _, err := s.core.Delete(ctx, "sys/mounts/"+mount, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "mount put back", func() error {
		_, err := s.core.Read(ctx, mount+"/roles/deploy", nil)
		return err
	})
	s.gone(t, d, "sys/mounts/"+mount)
}

func (s *suite) testSealedCore(t *testing.T) {
	ctx := context.Background()
	ns := s.namespace(t)
	p := &v1alpha1.SecretPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p"},
		Spec:       v1alpha1.SecretPolicySpec{Rules: []v1alpha1.PolicyRule{{Path: "secrets/" + ns + "/a", Capabilities: []v1alpha1.Capability{"read"}}}},
	}
	if err := s.kube.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	s.ready(t, p)
	if err := s.core.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	sealed := true
	t.Cleanup(func() {
		if sealed {
			_, _ = s.core.Unseal(context.Background(), s.unseal)
		}
	})
	s.update(t, p, func() { p.Spec.Rules[0].Path = "secrets/" + ns + "/b" })
	c := s.condition(t, p, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonCoreSealed)
	if err := contains(c.Message, "sealed"); err != nil {
		t.Fatal(err)
	}
	s.condition(t, p, v1alpha1.ConditionSynced, metav1.ConditionFalse, v1alpha1.ReasonCoreSealed)

	if _, err := s.core.Unseal(ctx, s.unseal); err != nil {
		t.Fatal(err)
	}
	sealed = false
	s.ready(t, p)
	name := controllers.CoreName(ns, "p")
	if want, _ := controllers.PolicyDocument(name, p.Spec); s.policyDoc(t, name) != want {
		t.Fatalf("after unseal the core holds %s", s.policyDoc(t, name))
	}
	s.gone(t, p, "sys/policies/acl/"+name)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// testTenantConfinement: a namespace's SecretPolicy may not grant another
// namespace's secrets; it is Rejected with the field named and nothing
// reaches the core, until the path is the namespace's own.
func (s *suite) testTenantConfinement(t *testing.T) {
	ctx := context.Background()
	ns := s.namespace(t)
	p := &v1alpha1.SecretPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "grab"},
		Spec:       v1alpha1.SecretPolicySpec{Rules: []v1alpha1.PolicyRule{{Path: "secrets/other-team/*", Capabilities: []v1alpha1.Capability{"read"}}}},
	}
	if err := s.kube.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	c := s.condition(t, p, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonRejected)
	if err := contains(c.Message, "spec.rules[0].path"); err != nil {
		t.Fatal(err)
	}
	name := controllers.CoreName(ns, "grab")
	if _, err := s.core.Read(ctx, "sys/policies/acl/"+name, nil); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("a confined policy reached the core: %v", err)
	}
	s.update(t, p, func() { p.Spec.Rules[0].Path = "secrets/" + ns + "/*" })
	s.ready(t, p)
}

// loginAs gives service account sa of ns a token for the audience
// "secrethub" and logs in to the core through the Kubernetes auth role,
// which reviews it with the envtest API server: the core token must carry
// exactly want.
func (s *suite) loginAs(t *testing.T, ns, sa, role string, want []string) {
	t.Helper()
	ctx := context.Background()
	cs := kubetest.Clientset(t, s.cfg)
	for _, name := range []string{sa, "reviewer"} {
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "secrethub-reviewer-" + ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "reviewer", Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token := func(name string, aud []string) string {
		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{Audiences: aud}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	if _, err := s.core.Write(ctx, "auth/kubernetes/config", map[string]any{
		"kubernetes_host": s.cfg.Host, "kubernetes_ca_cert": string(s.cfg.CAData),
		"token_reviewer_jwt": token("reviewer", nil), "disable_local_ca_jwt": true,
	}); err != nil {
		t.Fatalf("configure kubernetes auth: %v", err)
	}
	anon, err := client.New(client.Config{Address: s.coreURL})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := anon.Write(ctx, "auth/kubernetes/login", map[string]any{"role": role, "jwt": token(sa, []string{"secrethub"})})
	if err != nil {
		t.Fatalf("login as %s/%s: %v", ns, sa, err)
	}
	got := append([]string(nil), resp.Auth.Policies...)
	slices.Sort(got)
	w := append([]string(nil), want...)
	slices.Sort(w)
	if !slices.Equal(got, w) {
		t.Fatalf("policies of %s/%s = %v, want %v", ns, sa, got, w)
	}
}

func (s *suite) testSecretSync(t *testing.T) {
	ctx := context.Background()
	ns := s.namespace(t)
	path := "secrets/" + ns + "/app"
	if _, err := s.core.Write(ctx, path, map[string]any{"user": "app", "password": "p1", "port": 5432}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "example.com/web:1"}}},
			},
		},
	}
	if err := s.kube.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	restartedAt := func() string {
		t.Helper()
		if err := s.kube.Get(ctx, kclient.ObjectKeyFromObject(dep), dep); err != nil {
			t.Fatal(err)
		}
		return dep.Spec.Template.Annotations[controllers.RestartedAtAnnotation]
	}

	sync := &v1alpha1.SecretSync{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-env"},
		Spec: v1alpha1.SecretSyncSpec{
			Path:            path,
			RefreshInterval: &metav1.Duration{Duration: time.Second},
			RolloutRestart:  []v1alpha1.RolloutTarget{{Kind: v1alpha1.RolloutDeployment, Name: "web"}},
		},
	}
	if err := s.kube.Create(ctx, sync); err != nil {
		t.Fatal(err)
	}
	s.ready(t, sync)
	if sync.Status.CoreName != path || sync.Status.LastSyncedVersion != 1 || !strings.HasPrefix(sync.Status.DataHash, "sha256:") {
		t.Fatalf("status %+v: want coreName %s, version 1, a sha256 data hash", sync.Status, path)
	}
	sec := &corev1.Secret{}
	secret := func() map[string]string {
		t.Helper()
		if err := s.kube.Get(ctx, types.NamespacedName{Namespace: ns, Name: "app-env"}, sec); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for k, v := range sec.Data {
			out[k] = string(v)
		}
		return out
	}
	if got, want := secret(), map[string]string{"user": "app", "password": "p1", "port": "5432"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Secret data %v, want %v", got, want)
	}
	if !metav1.IsControlledBy(sec, sync) || sec.Type != corev1.SecretTypeOpaque || sec.Labels[controllers.ManagedByLabel] != controllers.ManagedByValue {
		t.Fatalf("Secret owners %+v, type %s, labels %v: want controlled by the SecretSync, Opaque, managed-by secrethub", sec.OwnerReferences, sec.Type, sec.Labels)
	}
	if got := restartedAt(); got != "" {
		t.Fatalf("the first sync restarted the Deployment (%s)", got)
	}

	// A new version with the same data: read (lastSyncedVersion follows),
	// but the Secret is not written and nothing restarts.
	rv, hash := sec.ResourceVersion, sync.Status.DataHash
	if _, err := s.core.Write(ctx, path, map[string]any{"user": "app", "password": "p1", "port": 5432}); err != nil {
		t.Fatal(err)
	}
	version := func(v int64) {
		t.Helper()
		eventually(t, fmt.Sprintf("version %d synced", v), func() error {
			if err := s.kube.Get(ctx, kclient.ObjectKeyFromObject(sync), sync); err != nil {
				return err
			}
			if sync.Status.LastSyncedVersion != v {
				return fmt.Errorf("lastSyncedVersion %d", sync.Status.LastSyncedVersion)
			}
			return nil
		})
	}
	version(2)
	if secret(); sec.ResourceVersion != rv || sync.Status.DataHash != hash || restartedAt() != "" {
		t.Fatalf("unchanged data: Secret resourceVersion %s (was %s), hash %s (was %s), restartedAt %q",
			sec.ResourceVersion, rv, sync.Status.DataHash, hash, restartedAt())
	}

	// A changed value reaches the Secret within the refresh interval, and
	// the Deployment is restarted; each change restarts it again.
	prev := ""
	for i, pw := range []string{"p2", "p3"} {
		if _, err := s.core.Write(ctx, path, map[string]any{"user": "app", "password": pw, "port": 5432}); err != nil {
			t.Fatal(err)
		}
		version(int64(3 + i))
		if got := secret()["password"]; got != pw {
			t.Fatalf("Secret password after version %d: want the new value", 3+i)
		}
		at := restartedAt()
		if at == "" || at == prev {
			t.Fatalf("Deployment restartedAt %q after change %d (before: %q): want a new time", at, i, prev)
		}
		prev = at
	}

	// The Secret edited by hand is put back, without a restart.
	sec.Data["password"] = []byte("tampered")
	if err := s.kube.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	eventually(t, "hand edit put back", func() error {
		if got := secret()["password"]; got != "p3" {
			return errors.New("the Secret still holds the edited value")
		}
		return nil
	})
	if got := restartedAt(); got != prev {
		t.Fatalf("putting back a hand edit restarted the Deployment (%s)", got)
	}

	// spec.keys: only the mapped keys, under their new names.
	s.update(t, sync, func() { sync.Spec.Keys = map[string]v1alpha1.SecretKey{"password": "DB_PASSWORD", "user": "DB_USER"} })
	s.ready(t, sync)
	eventually(t, "keys mapped", func() error {
		if got, want := secret(), map[string]string{"DB_PASSWORD": "p3", "DB_USER": "app"}; !reflect.DeepEqual(got, want) {
			return fmt.Errorf("Secret keys %v", slices.Sorted(maps.Keys(got)))
		}
		return nil
	})

	// Another namespace's path: Rejected, naming spec.path; a missing
	// mapped key: DependencyMissing.
	other := s.namespace(t)
	if _, err := s.core.Write(ctx, "secrets/"+other+"/app", map[string]any{"password": "theirs"}); err != nil {
		t.Fatal(err)
	}
	foreign := &v1alpha1.SecretSync{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "foreign"},
		Spec:       v1alpha1.SecretSyncSpec{Path: "secrets/" + other + "/app"},
	}
	if err := s.kube.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	c := s.condition(t, foreign, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonRejected)
	if err := contains(c.Message, "spec.path"); err != nil {
		t.Fatal(err)
	}
	if err := s.kube.Get(ctx, types.NamespacedName{Namespace: ns, Name: "foreign"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Fatalf("Secret of a rejected SecretSync: %v, want not found", err)
	}
	s.update(t, sync, func() { sync.Spec.Keys = map[string]v1alpha1.SecretKey{"missing": "X"} })
	c = s.condition(t, sync, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonDependencyMissing)
	if err := contains(c.Message, `"missing"`); err != nil {
		t.Fatal(err)
	}

	// Delete: the finalizer goes; the core secret stays (a SecretSync only
	// reads it); the Secret goes with its owner (garbage collector).
	for _, o := range []*v1alpha1.SecretSync{sync, foreign} {
		if err := s.kube.Delete(ctx, o); err != nil {
			t.Fatal(err)
		}
		eventually(t, "SecretSync deleted", func() error {
			if err := s.kube.Get(ctx, kclient.ObjectKeyFromObject(o), o); !apierrors.IsNotFound(err) {
				return fmt.Errorf("still there (finalizers %v): %v", o.Finalizers, err)
			}
			return nil
		})
	}
	if _, err := s.core.Read(ctx, path, nil); err != nil {
		t.Fatalf("core secret after the SecretSync's delete: %v", err)
	}
}
