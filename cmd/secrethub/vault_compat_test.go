package main

import (
	"context"
	"errors"
	"slices"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// devServer starts `secrethub server -dev` with a known root token and
// returns a Vault client logged in as root.
func devServer(t *testing.T) (*process, *vault.Client) {
	t.Helper()
	const root = "shs.dev-root-token-for-tests"
	srv := startServer(t, nil, "-dev", "-listen-address", "127.0.0.1:0", "-dev-root-token-id", root)
	vc := vaultClient(t, srv.addr)
	vc.SetToken(root)
	return srv, vc
}

// TestVaultClientAccess drives AppRole login, Logical() on secrets/, KVv2
// on a KV v2 mount, and token renew/revoke with the unmodified Vault Go
// client.
func TestVaultClientAccess(t *testing.T) {
	ctx := context.Background()
	_, vc := devServer(t)
	logical := vc.Logical()

	// A policy and an AppRole role bound to it.
	policy := `{"rules":[{"path":"secrets/app/**","capabilities":["create","read","update","delete","list"]},{"path":"kv/data/app/**","capabilities":["create","read","update"]},{"path":"kv/metadata/app/**","capabilities":["read","list","delete"]}]}`
	if err := vc.Sys().PutPolicy("app", policy); err != nil {
		t.Fatalf("PutPolicy: %v", err)
	}
	if got, err := vc.Sys().GetPolicy("app"); err != nil || got != policy {
		t.Fatalf("GetPolicy = %q, %v", got, err)
	}
	if _, err := logical.Write("auth/approle/role/web", map[string]any{"token_policies": []string{"app"}, "token_ttl": "1h", "token_max_ttl": "2h"}); err != nil {
		t.Fatalf("write role: %v", err)
	}
	rid, err := logical.Read("auth/approle/role/web/role-id")
	if err != nil || rid == nil {
		t.Fatalf("read role-id: %v", err)
	}
	sid, err := logical.Write("auth/approle/role/web/secret-id", nil)
	if err != nil || sid == nil {
		t.Fatalf("secret-id: %v", err)
	}
	login, err := logical.Write("auth/approle/login", map[string]any{"role_id": rid.Data["role_id"], "secret_id": sid.Data["secret_id"]})
	if err != nil || login == nil || login.Auth == nil || login.Auth.ClientToken == "" {
		t.Fatalf("approle login: %+v, %v", login, err)
	}
	if !slices.Contains(login.Auth.Policies, "app") || login.Auth.LeaseDuration != 3600 {
		t.Fatalf("login auth: policies %v ttl %d", login.Auth.Policies, login.Auth.LeaseDuration)
	}
	if _, err := logical.Write("auth/approle/login", map[string]any{"role_id": rid.Data["role_id"], "secret_id": "wrong"}); err == nil {
		t.Fatal("login with a wrong secret id succeeded")
	}

	// The AppRole token reads and writes secrets/ through Logical().
	app, err := vc.Clone()
	if err != nil {
		t.Fatal(err)
	}
	app.SetToken(login.Auth.ClientToken)
	al := app.Logical()
	if _, err := al.Write("secrets/app/db", map[string]any{"user": "app", "password": "s3cret"}); err != nil {
		t.Fatalf("Logical write: %v", err)
	}
	if _, err := al.Write("secrets/app/db", map[string]any{"user": "app", "password": "s3cret-2"}); err != nil {
		t.Fatalf("Logical write v2: %v", err)
	}
	sec, err := al.Read("secrets/app/db")
	if err != nil || sec == nil || sec.Data["password"] != "s3cret-2" {
		t.Fatalf("Logical read: %+v, %v", sec, err)
	}
	old, err := al.ReadWithData("secrets/app/db", map[string][]string{"version": {"1"}})
	if err != nil || old == nil || old.Data["password"] != "s3cret" {
		t.Fatalf("Logical read version 1: %+v, %v", old, err)
	}
	list, err := al.List("secrets/app")
	if err != nil || list == nil || !slices.Contains(list.Data["keys"].([]any), any("db")) {
		t.Fatalf("Logical list: %+v, %v", list, err)
	}
	if _, err := al.Write("secrets/other", map[string]any{"x": "y"}); err == nil {
		t.Fatal("write outside the policy succeeded")
	}
	if _, err := al.Delete("secrets/app/db"); err != nil {
		t.Fatalf("Logical delete: %v", err)
	}
	if sec, err := al.Read("secrets/app/db"); err != nil || sec != nil {
		t.Fatalf("read after delete: %+v, %v", sec, err)
	}

	// KV v2 layout on a mount made through sys/mounts, driven by KVv2().
	if err := vc.Sys().Mount("kv", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatalf("mount kv v2: %v", err)
	}
	kv := app.KVv2("kv")
	if _, err := kv.Put(ctx, "app/config", map[string]any{"color": "blue"}); err != nil {
		t.Fatalf("KVv2 Put: %v", err)
	}
	if _, err := kv.Put(ctx, "app/config", map[string]any{"color": "green"}); err != nil {
		t.Fatalf("KVv2 Put 2: %v", err)
	}
	got, err := kv.Get(ctx, "app/config")
	if err != nil || got.Data["color"] != "green" || got.VersionMetadata.Version != 2 {
		t.Fatalf("KVv2 Get: %+v, %v", got, err)
	}
	v1, err := kv.GetVersion(ctx, "app/config", 1)
	if err != nil || v1.Data["color"] != "blue" {
		t.Fatalf("KVv2 GetVersion: %+v, %v", v1, err)
	}
	meta, err := kv.GetMetadata(ctx, "app/config")
	if err != nil || meta.CurrentVersion != 2 || len(meta.Versions) != 2 {
		t.Fatalf("KVv2 GetMetadata: %+v, %v", meta, err)
	}
	if _, err := kv.Put(ctx, "app/config", map[string]any{"color": "red"}, vault.WithCheckAndSet(1)); err == nil {
		t.Fatal("KVv2 Put with a stale cas succeeded")
	}
	if err := kv.DeleteMetadata(ctx, "app/config"); err != nil {
		t.Fatalf("KVv2 DeleteMetadata: %v", err)
	}
	if _, err := kv.Get(ctx, "app/config"); !errors.Is(err, vault.ErrSecretNotFound) {
		t.Fatalf("KVv2 Get after DeleteMetadata: %v", err)
	}

	// Token renew and revoke.
	tok := app.Auth().Token()
	renewed, err := tok.RenewSelf(1800)
	if err != nil || renewed.Auth == nil || renewed.Auth.LeaseDuration != 1800 {
		t.Fatalf("RenewSelf: %+v, %v", renewed, err)
	}
	self, err := tok.LookupSelf()
	if err != nil || self.Data["display_name"] == nil {
		t.Fatalf("LookupSelf: %+v, %v", self, err)
	}
	child, err := vc.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"app"}, TTL: "10m"})
	if err != nil || child.Auth == nil {
		t.Fatalf("token Create: %+v, %v", child, err)
	}
	if _, err := vc.Auth().Token().Renew(child.Auth.ClientToken, 300); err != nil {
		t.Fatalf("token Renew: %v", err)
	}
	if err := vc.Auth().Token().RevokeTree(child.Auth.ClientToken); err != nil {
		t.Fatalf("RevokeTree: %v", err)
	}
	if _, err := vc.Auth().Token().Lookup(child.Auth.ClientToken); err == nil {
		t.Fatal("revoked token still looks up")
	}
	if err := tok.RevokeSelf(""); err != nil {
		t.Fatalf("RevokeSelf: %v", err)
	}
	if _, err := al.Read("secrets/app/db"); err == nil {
		t.Fatal("revoked token still reads")
	}
}
