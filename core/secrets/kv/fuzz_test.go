package kv_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/secrets/kv"
	"github.com/secrethub/secrethub/core/storage/inmem"
)

// FuzzWriteBody sends arbitrary JSON bodies as writes to both layouts. A
// write must never panic; it either creates a version whose data reads
// back as written, performs an action (simple layout), or fails with a
// client error (400/409), never a server error.
func FuzzWriteBody(f *testing.F) {
	for _, s := range []string{
		`{"a":"b"}`, `{}`, `null`, `[]`, `"x"`, `1`,
		`{"data":{"a":1},"options":{"cas":1}}`, `{"data":{"a":1},"options":{"cas":"1"}}`,
		`{"data":{"a":1},"options":{"cas":-1}}`, `{"data":{"a":1},"options":{"cas":1.5}}`,
		`{"data":"x","options":{}}`, `{"data":[1],"options":{"cas":0}}`, `{"data":null}`,
		`{"data":{"a":1},"options":null}`, `{"data":{"a":1},"options":[]}`,
		`{"action":"destroy","versions":[1]}`, `{"action":"undelete","versions":"1,2"}`,
		`{"action":"delete","versions":[]}`, `{"action":"boom","versions":[1]}`,
		`{"action":"delete","versions":[1e400]}`, `{"action":"delete","versions":[{"x":1}]}`,
		`{"versions":[1,"2",3.0]}`, `{"big":123456789012345678901234567890}`,
		`{"nested":{"deep":{"deeper":[1,{"x":null}]}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var v any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return // not JSON: the HTTP layer answers 400 before the engine
		}
		obj, isObject := v.(map[string]any)
		if isObject {
			checkWrite(t, kv.LayoutSimple, "s", obj, []any{obj, obj["data"]})
		}
		v2body := obj
		if !isObject {
			v2body = map[string]any{"data": v}
		}
		checkWrite(t, kv.LayoutKVv2, "data/s", v2body, []any{v2body["data"]})
	})
}

// checkWrite writes b to path over an engine that already holds version 1
// of the secret, and checks the outcome; want lists what a successful
// write may have stored.
func checkWrite(t *testing.T, layout kv.Layout, path string, b map[string]any, want []any) {
	t.Helper()
	ctx := context.Background()
	e, err := kv.New(inmem.New(), kv.Config{Layout: layout, MaxVersions: 3})
	if err != nil {
		t.Fatal(err)
	}
	seed := map[string]any{"seed": "1"}
	if layout == kv.LayoutKVv2 {
		seed = map[string]any{"data": seed}
	}
	if _, err := e.HandleRequest(ctx, &logical.Request{Operation: logical.OpCreate, RelativePath: path, Data: seed}); err != nil {
		t.Fatalf("seed write: %v", err)
	}
	resp, err := e.HandleRequest(ctx, &logical.Request{Operation: logical.OpUpdate, RelativePath: path, Data: b})
	if err != nil {
		var ire *logical.InvalidRequestError
		if !errors.As(err, &ire) && !errors.Is(err, logical.ErrConflict) {
			t.Fatalf("%s write: %v; want a 4xx error", layout, err)
		}
		return
	}
	if resp == nil || resp.Data == nil {
		if layout == kv.LayoutSimple && len(b) == 2 && b["action"] != nil {
			return // an action: 204
		}
		t.Fatalf("%s write answered %+v; want a version", layout, resp)
	}
	n, ok := resp.Data["version"].(int)
	if !ok || n != 2 {
		t.Fatalf("%s write answered version %v; want 2", layout, resp.Data["version"])
	}
	got, err := e.HandleRequest(ctx, &logical.Request{Operation: logical.OpRead, RelativePath: path, Data: map[string]any{"version": "2"}})
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	data := got.Data
	if layout == kv.LayoutKVv2 {
		data, _ = got.Data["data"].(map[string]any)
	}
	gotJSON := mustJSON(t, data)
	for _, w := range want {
		if mustJSON(t, w) == gotJSON {
			return
		}
	}
	t.Fatalf("%s read back %s; want one of %s", layout, gotJSON, mustJSON(t, want))
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(b)
}
