package kv_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/secrets/kv"
)

// vaultAdapter is a minimal stand-in for the core's HTTP layer: it maps
// Vault's HTTP API onto one engine mounted at /v1/<mount>/, the way the
// core does (GET read, GET ?list=true or LIST list, PUT/POST write with
// the ExistenceChecker choosing create or update, DELETE delete), and
// PATCH to 405, which makes the Vault client fall back to read-then-write.
func vaultAdapter(t *testing.T, e *kv.Engine, mount string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rel, ok := strings.CutPrefix(r.URL.Path, "/v1/"+mount+"/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		req := &logical.Request{RelativePath: strings.TrimSuffix(rel, "/"), Time: time.Now()}
		query := map[string]any{}
		for k, v := range r.URL.Query() {
			query[k] = v[0]
		}
		switch {
		case r.Method == "LIST" || (r.Method == http.MethodGet && query["list"] == "true"):
			req.Operation = logical.OpList
		case r.Method == http.MethodGet:
			req.Operation, req.Data = logical.OpRead, query
		case r.Method == http.MethodDelete:
			req.Operation, req.Data = logical.OpDelete, query
		case r.Method == http.MethodPut || r.Method == http.MethodPost:
			dec := json.NewDecoder(r.Body)
			dec.UseNumber()
			if err := dec.Decode(&req.Data); err != nil {
				writeErrors(w, http.StatusBadRequest, "invalid JSON body")
				return
			}
			exists, err := e.Exists(r.Context(), req)
			if err != nil {
				writeErrors(w, http.StatusInternalServerError, err.Error())
				return
			}
			req.Operation = logical.OpUpdate
			if !exists {
				req.Operation = logical.OpCreate
			}
		default:
			writeErrors(w, http.StatusMethodNotAllowed, "unsupported operation")
			return
		}
		resp, err := e.HandleRequest(r.Context(), req)
		if err != nil {
			var ire *logical.InvalidRequestError
			status := http.StatusInternalServerError
			switch {
			case errors.As(err, &ire), errors.Is(err, logical.ErrConflict):
				status = http.StatusBadRequest
			case errors.Is(err, logical.ErrNotFound), errors.Is(err, logical.ErrUnsupportedPath):
				status = http.StatusNotFound
			case errors.Is(err, logical.ErrUnsupportedOperation):
				status = http.StatusMethodNotAllowed
			}
			writeErrors(w, status, err.Error())
			return
		}
		if resp == nil || (resp.Data == nil && len(resp.Warnings) == 0) {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		status := resp.StatusCode
		if status == 0 {
			status = http.StatusOK
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if err := json.NewEncoder(w).Encode(map[string]any{"data": resp.Data, "warnings": resp.Warnings}); err != nil {
			t.Errorf("encode response: %v", err)
		}
	})
}

func writeErrors(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []string{msg}})
}

func newVaultClient(t *testing.T, e *kv.Engine, mount string) *vault.Client {
	t.Helper()
	srv := httptest.NewServer(vaultAdapter(t, e, mount))
	t.Cleanup(srv.Close)
	cfg := vault.DefaultConfig()
	cfg.Address = srv.URL
	cfg.MaxRetries = 0
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatalf("vault client: %v", err)
	}
	c.SetToken("test-token")
	return c
}

// TestVaultClientKVv2 drives the kv-v2 layout with the unmodified Vault
// Go client, through every KVv2 method.
func TestVaultClientKVv2(t *testing.T) {
	f := newFixture(t, v2)
	kvc := newVaultClient(t, f.e, "secret").KVv2("secret")
	ctx := t.Context()

	if _, err := kvc.Get(ctx, "app/db"); !errors.Is(err, vault.ErrSecretNotFound) {
		t.Fatalf("Get of a missing secret: %v", err)
	}
	s, err := kvc.Put(ctx, "app/db", map[string]any{"password": "one"})
	if err != nil || s.VersionMetadata.Version != 1 || !s.VersionMetadata.CreatedTime.Equal(t0) {
		t.Fatalf("Put = %+v, %v", s, err)
	}
	f.clock.Advance(time.Minute)
	if _, err := kvc.Put(ctx, "app/db", map[string]any{"password": "two"}, vault.WithCheckAndSet(1)); err != nil {
		t.Fatalf("Put with cas: %v", err)
	}
	if _, err := kvc.Put(ctx, "app/db", map[string]any{"password": "x"}, vault.WithCheckAndSet(1)); err == nil || !strings.Contains(err.Error(), "check-and-set") {
		t.Fatalf("Put with stale cas: %v", err)
	}
	s, err = kvc.Get(ctx, "app/db")
	if err != nil || s.Data["password"] != "two" || s.VersionMetadata.Version != 2 {
		t.Fatalf("Get = %+v, %v", s, err)
	}
	s, err = kvc.GetVersion(ctx, "app/db", 1)
	if err != nil || s.Data["password"] != "one" {
		t.Fatalf("GetVersion(1) = %+v, %v", s, err)
	}

	if err := kvc.PutMetadata(ctx, "app/db", vault.KVMetadataPutInput{
		MaxVersions: 5, DeleteVersionAfter: 48 * time.Hour, CustomMetadata: map[string]any{"owner": "team-a"},
	}); err != nil {
		t.Fatalf("PutMetadata: %v", err)
	}
	md, err := kvc.GetMetadata(ctx, "app/db")
	if err != nil {
		t.Fatalf("GetMetadata: %v", err)
	}
	if md.CurrentVersion != 2 || md.OldestVersion != 1 || md.MaxVersions != 5 || md.DeleteVersionAfter != 48*time.Hour ||
		md.CustomMetadata["owner"] != "team-a" || len(md.Versions) != 2 || !md.CreatedTime.Equal(t0) || !md.UpdatedTime.Equal(t0.Add(time.Minute)) {
		t.Fatalf("GetMetadata = %+v", md)
	}
	if s, _ := kvc.Get(ctx, "app/db"); s.CustomMetadata["owner"] != "team-a" {
		t.Fatalf("custom metadata missing from Get: %+v", s)
	}

	if err := kvc.Delete(ctx, "app/db"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	s, err = kvc.Get(ctx, "app/db")
	if err != nil || s.Data != nil || s.VersionMetadata.DeletionTime.IsZero() {
		t.Fatalf("Get of deleted latest = %+v, %v; want nil data with deletion time", s, err)
	}
	if err := kvc.Undelete(ctx, "app/db", []int{2}); err != nil {
		t.Fatalf("Undelete: %v", err)
	}
	if err := kvc.DeleteVersions(ctx, "app/db", []int{1}); err != nil {
		t.Fatalf("DeleteVersions: %v", err)
	}
	if err := kvc.Destroy(ctx, "app/db", []int{1}); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	list, err := kvc.GetVersionsAsList(ctx, "app/db")
	if err != nil || len(list) != 2 || !list[0].Destroyed || list[0].DeletionTime.IsZero() || list[1].Destroyed || !list[1].DeletionTime.IsZero() {
		t.Fatalf("GetVersionsAsList = %+v, %v", list, err)
	}

	// Rollback reads, checks and writes with cas.
	f.must(opUpdate, "data/app/db", map[string]any{"data": map[string]any{"password": "three"}})
	s, err = kvc.Rollback(ctx, "app/db", 2)
	if err != nil || s.VersionMetadata.Version != 4 {
		t.Fatalf("Rollback = %+v, %v", s, err)
	}
	if s, _ := kvc.Get(ctx, "app/db"); s.Data["password"] != "two" {
		t.Fatalf("after Rollback: %+v", s.Data)
	}
	if _, err := kvc.Rollback(ctx, "app/db", 1); err == nil {
		t.Fatal("Rollback to a destroyed version succeeded")
	}

	// Patch: PATCH answers 405, so the client reads, merges and writes
	// with cas.
	s, err = kvc.Patch(ctx, "app/db", map[string]any{"user": "admin"})
	if err != nil || s.VersionMetadata.Version != 5 {
		t.Fatalf("Patch = %+v, %v", s, err)
	}
	if s, _ := kvc.Get(ctx, "app/db"); s.Data["password"] != "two" || s.Data["user"] != "admin" {
		t.Fatalf("after Patch: %+v", s.Data)
	}

	// Listing through the plain logical client, as `vault kv list` does.
	lc := newVaultClient(t, f.e, "secret").Logical()
	sec, err := lc.List("secret/metadata/app")
	if err != nil || sec == nil {
		t.Fatalf("List: %v, %v", sec, err)
	}
	keys, _ := sec.Data["keys"].([]any)
	if !slices.Equal(keys, []any{"db"}) {
		t.Fatalf("List keys = %v", keys)
	}

	if err := kvc.DeleteMetadata(ctx, "app/db"); err != nil {
		t.Fatalf("DeleteMetadata: %v", err)
	}
	if _, err := kvc.GetMetadata(ctx, "app/db"); err == nil {
		t.Fatal("GetMetadata after DeleteMetadata succeeded")
	}
	if got := f.keys(""); len(got) != 0 {
		t.Fatalf("storage after DeleteMetadata: %v", got)
	}
}
