package kv_test

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/secrets/kv"
)

var v2 = kv.Config{Layout: kv.LayoutKVv2}

// put writes data to data/<p> in the kv-v2 layout, optionally with cas.
func put(f *fixture, p string, data map[string]any, cas ...int) *logical.Response {
	f.t.Helper()
	b := map[string]any{"data": data}
	if len(cas) > 0 {
		b["options"] = map[string]any{"cas": cas[0]}
	}
	return f.must(opUpdate, "data/"+p, b)
}

func TestKVv2DataReadWrite(t *testing.T) {
	f := newFixture(t, v2)
	for i := 1; i <= 3; i++ {
		f.clock.Advance(time.Second)
		resp := put(f, "app/db", map[string]any{"n": i})
		want := map[string]any{
			"created_time": f.clock.Now().Format(time.RFC3339Nano), "custom_metadata": nil,
			"deletion_time": "", "destroyed": false, "version": i,
		}
		if got, want := asJSON(t, resp.Data), asJSON(t, want); got != want {
			t.Fatalf("write %d = %s; want %s", i, got, want)
		}
	}
	cases := map[string]struct {
		params  map[string]any
		wantN   int
		wantVer int
	}{
		"latest":    {nil, 3, 3},
		"version 1": {map[string]any{"version": "1"}, 1, 1},
		"version 2": {map[string]any{"version": json.Number("2")}, 2, 2},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			resp := f.must(opRead, "data/app/db", tc.params)
			data := resp.Data["data"].(map[string]any)
			md := resp.Data["metadata"].(map[string]any)
			if num(t, data["n"]) != tc.wantN || num(t, md["version"]) != tc.wantVer {
				t.Fatalf("read = %v", asJSON(t, resp.Data))
			}
			if got := slices.Sorted(maps.Keys(md)); !slices.Equal(got, []string{"created_time", "custom_metadata", "deletion_time", "destroyed", "version"}) {
				t.Fatalf("metadata keys = %v", got)
			}
		})
	}
}

func TestKVv2WriteWarnsAboutUnknownFields(t *testing.T) {
	f := newFixture(t, v2)
	resp := f.must(opCreate, "data/s", map[string]any{"data": map[string]any{"a": "b"}, "extra": 1})
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "extra") {
		t.Fatalf("warnings = %v", resp.Warnings)
	}
}

func TestKVv2CheckAndSet(t *testing.T) {
	cases := map[string]struct {
		setup     func(f *fixture)
		body      string
		wantErr   error
		wantField string
		wantVer   int
	}{
		"cas 0 creates":     {body: `{"data":{"a":1},"options":{"cas":0}}`, wantVer: 1},
		"cas 0 on existing": {setup: func(f *fixture) { put(f, "s", map[string]any{}) }, body: `{"data":{"a":1},"options":{"cas":0}}`, wantErr: logical.ErrConflict},
		"cas matches":       {setup: func(f *fixture) { put(f, "s", map[string]any{}) }, body: `{"data":{"a":1},"options":{"cas":1}}`, wantVer: 2},
		"cas mismatch":      {setup: func(f *fixture) { put(f, "s", map[string]any{}) }, body: `{"data":{"a":1},"options":{"cas":2}}`, wantErr: logical.ErrConflict},
		"engine requires": {
			setup: func(f *fixture) { f.must(opUpdate, "config", body(f.t, `{"cas_required":true}`)) },
			body:  `{"data":{"a":1}}`, wantField: "options.cas",
		},
		"secret requires": {
			setup: func(f *fixture) { f.must(opUpdate, "metadata/s", body(f.t, `{"cas_required":true}`)) },
			body:  `{"data":{"a":1}}`, wantField: "options.cas",
		},
		"secret requires, cas 0 after metadata only": {
			setup: func(f *fixture) { f.must(opUpdate, "metadata/s", body(f.t, `{"cas_required":true}`)) },
			body:  `{"data":{"a":1},"options":{"cas":0}}`, wantVer: 1,
		},
		"other secret unaffected": {
			setup: func(f *fixture) { f.must(opUpdate, "metadata/other", body(f.t, `{"cas_required":true}`)) },
			body:  `{"data":{"a":1}}`, wantVer: 1,
		},
		"options not object": {body: `{"data":{"a":1},"options":[1]}`, wantField: "options"},
		"data missing":       {body: `{"options":{}}`, wantField: "data"},
		"data not object":    {body: `{"data":"secret"}`, wantField: "data"},
		"data array":         {body: `{"data":[1,2]}`, wantField: "data"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, v2)
			if tc.setup != nil {
				tc.setup(f)
			}
			resp, err := f.do(opUpdate, "data/s", body(t, tc.body))
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v; want %v", err, tc.wantErr)
				}
			case tc.wantField != "":
				wantInvalid(t, err, tc.wantField)
			default:
				if err != nil || num(t, resp.Data["version"]) != tc.wantVer {
					t.Fatalf("write = %v, %v; want version %d", resp, err, tc.wantVer)
				}
			}
		})
	}
}

func TestKVv2Metadata(t *testing.T) {
	f := newFixture(t, v2)
	if _, err := f.do(opRead, "metadata/s", nil); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("metadata of a missing secret: %v", err)
	}
	// Metadata may come first, as the Vault client's PutMetadata does.
	f.must(opUpdate, "metadata/s", body(t, `{"max_versions":2,"cas_required":false,"delete_version_after":"1h","custom_metadata":{"owner":"team-a"}}`))
	for i := 1; i <= 3; i++ {
		f.clock.Advance(time.Minute)
		put(f, "s", map[string]any{"n": i})
	}
	ts := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339Nano) }
	want := map[string]any{
		"cas_required": false, "created_time": ts(0), "current_version": 3,
		"custom_metadata": map[string]any{"owner": "team-a"}, "delete_version_after": "1h0m0s",
		"max_versions": 2, "oldest_version": 2, "updated_time": ts(3 * time.Minute),
		"versions": map[string]any{
			"2": map[string]any{"created_time": ts(2 * time.Minute), "deletion_time": "", "destroyed": false},
			"3": map[string]any{"created_time": ts(3 * time.Minute), "deletion_time": "", "destroyed": false},
		},
	}
	if got, want := asJSON(t, f.must(opRead, "metadata/s", nil).Data), asJSON(t, want); got != want {
		t.Fatalf("metadata = %s\nwant %s", got, want)
	}
	// Custom metadata shows in data reads.
	md := f.must(opRead, "data/s", nil).Data["metadata"].(map[string]any)
	if got := asJSON(t, md["custom_metadata"]); got != `{"owner":"team-a"}` {
		t.Fatalf("custom_metadata in data read = %s", got)
	}
	// A partial update changes only what it names; null clears custom
	// metadata; lowering max_versions prunes at once, in one transaction.
	f.store.reset()
	f.must(opUpdate, "metadata/s", body(t, `{"max_versions":1,"custom_metadata":null}`))
	if got := strings.Join(f.store.calls, ","); got != "txn" {
		t.Fatalf("storage calls = %s; want one txn", got)
	}
	got := f.must(opRead, "metadata/s", nil).Data
	if got["custom_metadata"] != nil || got["delete_version_after"] != "1h0m0s" || num(t, got["max_versions"]) != 1 || num(t, got["oldest_version"]) != 3 {
		t.Fatalf("after partial update: %s", asJSON(t, got))
	}
	if keys := f.keys("data/"); !slices.Equal(keys, []string{"data/s/3"}) {
		t.Fatalf("data keys = %v", keys)
	}
}

func TestKVv2MetadataBadInput(t *testing.T) {
	long := strings.Repeat("k", 129)
	many := map[string]any{}
	for i := range 65 {
		many[strings.Repeat("x", i+1)] = "v"
	}
	cases := map[string]struct {
		path  string
		data  map[string]any
		field string
	}{
		"max_versions negative":     {"metadata/s", body(t, `{"max_versions":-1}`), "max_versions"},
		"max_versions word":         {"metadata/s", body(t, `{"max_versions":"ten"}`), "max_versions"},
		"cas_required word":         {"metadata/s", body(t, `{"cas_required":"sometimes"}`), "cas_required"},
		"delete_version_after bad":  {"metadata/s", body(t, `{"delete_version_after":"soon"}`), "delete_version_after"},
		"delete_version_after neg":  {"metadata/s", body(t, `{"delete_version_after":"-1h"}`), "delete_version_after"},
		"delete_version_after huge": {"metadata/s", map[string]any{"delete_version_after": 1e300}, "delete_version_after"},
		"custom_metadata list":      {"metadata/s", body(t, `{"custom_metadata":["a"]}`), "custom_metadata"},
		"custom_metadata number":    {"metadata/s", body(t, `{"custom_metadata":{"a":1}}`), "custom_metadata"},
		"custom_metadata long key":  {"metadata/s", map[string]any{"custom_metadata": map[string]any{long: "v"}}, "custom_metadata"},
		"custom_metadata too many":  {"metadata/s", map[string]any{"custom_metadata": many}, "custom_metadata"},
		"config max_versions":       {"config", body(t, `{"max_versions":1.5}`), "max_versions"},
		"config delete after":       {"config", body(t, `{"delete_version_after":true}`), "delete_version_after"},
		"metadata empty path":       {"metadata/", body(t, `{}`), "path"},
		"data empty path":           {"data/", body(t, `{"data":{}}`), "path"},
		"data no path":              {"data", body(t, `{"data":{}}`), "path"},
		"destroy no versions":       {"destroy/s", body(t, `{}`), "versions"},
		"undelete bad versions":     {"undelete/s", body(t, `{"versions":[1,"two"]}`), "versions"},
		"delete bad versions":       {"delete/s", body(t, `{"versions":{"1":true}}`), "versions"},
		"data bad version":          {"data/s", map[string]any{"version": "x"}, "version"},
		"subkeys bad depth":         {"subkeys/s", map[string]any{"depth": "-1"}, "depth"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, v2)
			op := opUpdate
			if strings.HasSuffix(name, "bad version") || strings.HasPrefix(name, "subkeys") {
				op = opRead
			}
			_, err := f.do(op, tc.path, tc.data)
			wantInvalid(t, err, tc.field)
		})
	}
}

func TestKVv2VersionEndpoints(t *testing.T) {
	f := newFixture(t, v2)
	for i := 1; i <= 4; i++ {
		put(f, "s", map[string]any{"n": i})
	}
	// The Vault client sends delete's versions as strings and undelete's
	// and destroy's as numbers.
	f.must(opUpdate, "delete/s", map[string]any{"versions": []any{"1", "2"}})
	f.must(opUpdate, "undelete/s", body(t, `{"versions":[2]}`))
	f.must(opUpdate, "destroy/s", body(t, `{"versions":[3]}`))
	f.must(opDelete, "data/s", nil) // the latest: 4
	md := f.must(opRead, "metadata/s", nil).Data["versions"].(map[string]any)
	got := map[string]state{}
	for v, raw := range md {
		vm := raw.(map[string]any)
		got[v] = state{deleted: vm["deletion_time"] != "", destroyed: vm["destroyed"].(bool)}
	}
	want := map[string]state{"1": {deleted: true}, "2": {}, "3": {destroyed: true}, "4": {deleted: true}}
	if !maps.Equal(got, want) {
		t.Fatalf("states = %v; want %v", got, want)
	}
	// A deleted latest version reads as 404 with data null and metadata,
	// as Vault answers.
	resp, err := f.do(opRead, "data/s", nil)
	if err != nil || resp.StatusCode != 404 {
		t.Fatalf("read of deleted latest = %+v, %v", resp, err)
	}
	if d, ok := resp.Data["data"]; !ok || d != nil {
		t.Fatalf("data = %v, present %v; want null", d, ok)
	}
	if m := resp.Data["metadata"].(map[string]any); num(t, m["version"]) != 4 || m["deletion_time"] == "" {
		t.Fatalf("metadata = %v", m)
	}
	if got := num(t, f.must(opRead, "data/s", map[string]any{"version": "2"}).Data["data"].(map[string]any)["n"]); got != 2 {
		t.Fatalf("undeleted version 2 reads n=%d", got)
	}
	if keys := f.keys("data/"); slices.Contains(keys, "data/s/3") || !slices.Contains(keys, "data/s/1") {
		t.Fatalf("data keys = %v: destroyed data must go, deleted data must stay", keys)
	}
}

func TestKVv2DeleteMetadata(t *testing.T) {
	f := newFixture(t, v2)
	f.must(opUpdate, "config", body(t, `{"max_versions":5}`))
	for i := 1; i <= 3; i++ {
		put(f, "app/db", map[string]any{"n": i})
	}
	put(f, "app/keep", map[string]any{"n": 1})
	f.must(opDelete, "metadata/app/db", nil)
	if got, want := f.keys(""), []string{"config", "data/app/keep/1", "meta/app/keep"}; !slices.Equal(got, want) {
		t.Fatalf("keys = %v; want %v", got, want)
	}
	for _, p := range []string{"data/app/db", "metadata/app/db"} {
		if _, err := f.do(opRead, p, nil); !errors.Is(err, logical.ErrNotFound) {
			t.Fatalf("read %s: %v", p, err)
		}
	}
	if got := f.must(opList, "metadata/app", nil).Data["keys"].([]string); !slices.Equal(got, []string{"keep"}) {
		t.Fatalf("list = %v", got)
	}
}

func TestKVv2Config(t *testing.T) {
	f := newFixture(t, kv.Config{Layout: kv.LayoutKVv2, MaxVersions: 4})
	want := `{"cas_required":false,"delete_version_after":"0s","max_versions":4}`
	if got := asJSON(t, f.must(opRead, "config", nil).Data); got != want {
		t.Fatalf("default config = %s; want %s", got, want)
	}
	f.must(opUpdate, "config", body(t, `{"max_versions":2,"delete_version_after":"2h"}`))
	f.must(opUpdate, "config", body(t, `{"cas_required":true}`)) // partial: keeps the rest
	want = `{"cas_required":true,"delete_version_after":"2h0m0s","max_versions":2}`
	if got := asJSON(t, f.must(opRead, "config", nil).Data); got != want {
		t.Fatalf("config = %s; want %s", got, want)
	}
	for i := range 3 {
		put(f, "s", map[string]any{"n": i}, i)
	}
	if got := f.keys("data/"); !slices.Equal(got, []string{"data/s/2", "data/s/3"}) {
		t.Fatalf("config max_versions not applied: %v", got)
	}
	// max_versions 0 goes back to the mount's default.
	f.must(opUpdate, "config", body(t, `{"max_versions":0}`))
	if got := num(t, f.must(opRead, "config", nil).Data["max_versions"]); got != 4 {
		t.Fatalf("max_versions after reset = %d; want 4", got)
	}
	resp := f.must(opUpdate, "config", body(t, `{"bogus":1}`))
	if resp == nil || len(resp.Warnings) != 1 {
		t.Fatalf("unknown config field: %+v", resp)
	}
}

func TestKVv2List(t *testing.T) {
	f := newFixture(t, v2)
	for _, p := range []string{"a/b", "a/c/d", "e"} {
		put(f, p, map[string]any{"k": "v"})
	}
	f.must(opUpdate, "metadata/only-meta", body(t, `{}`))
	cases := map[string]struct {
		path string
		want []string
	}{
		"root":         {"metadata", []string{"a/", "e", "only-meta"}},
		"root slash":   {"metadata/", []string{"a/", "e", "only-meta"}},
		"folder":       {"metadata/a", []string{"b", "c/"}},
		"folder slash": {"metadata/a/", []string{"b", "c/"}},
		"missing":      {"metadata/zzz", nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			resp, err := f.do(opList, tc.path, nil)
			if tc.want == nil {
				if !errors.Is(err, logical.ErrNotFound) {
					t.Fatalf("list = %v, %v; want ErrNotFound", resp, err)
				}
				return
			}
			if err != nil || !slices.Equal(resp.Data["keys"].([]string), tc.want) {
				t.Fatalf("list = %v, %v; want %v", resp, err, tc.want)
			}
		})
	}
}

func TestKVv2Subkeys(t *testing.T) {
	f := newFixture(t, v2)
	put(f, "s", body(t, `{"a":"1","b":{"c":"2","d":{"e":"3"}},"f":[1]}`))
	cases := map[string]struct {
		params map[string]any
		want   string
	}{
		"unlimited": {nil, `{"a":null,"b":{"c":null,"d":{"e":null}},"f":null}`},
		"depth 1":   {map[string]any{"depth": "1"}, `{"a":null,"b":null,"f":null}`},
		"depth 2":   {map[string]any{"depth": "2"}, `{"a":null,"b":{"c":null,"d":null},"f":null}`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			resp := f.must(opRead, "subkeys/s", tc.params)
			if got := asJSON(t, resp.Data["subkeys"]); got != tc.want {
				t.Fatalf("subkeys = %s; want %s", got, tc.want)
			}
			if strings.Contains(asJSON(t, resp.Data), `"3"`) {
				t.Fatalf("subkeys leaks values: %s", asJSON(t, resp.Data))
			}
		})
	}
	f.must(opDelete, "data/s", nil)
	if resp, err := f.do(opRead, "subkeys/s", nil); err != nil || resp.StatusCode != 404 || resp.Data["subkeys"] != nil {
		t.Fatalf("subkeys of deleted = %+v, %v", resp, err)
	}
}

func TestKVv2Routing(t *testing.T) {
	f := newFixture(t, v2)
	put(f, "s", map[string]any{"k": "v"})
	cases := map[string]struct {
		op   logical.Operation
		path string
		want error
	}{
		"unknown route":       {opRead, "secret/s", logical.ErrUnsupportedPath},
		"empty path":          {opRead, "", logical.ErrUnsupportedPath},
		"config below":        {opRead, "config/x", logical.ErrUnsupportedPath},
		"list data":           {opList, "data/", logical.ErrUnsupportedOperation},
		"read delete":         {opRead, "delete/s", logical.ErrUnsupportedOperation},
		"delete destroy":      {opDelete, "destroy/s", logical.ErrUnsupportedOperation},
		"write subkeys":       {opUpdate, "subkeys/s", logical.ErrUnsupportedOperation},
		"delete config":       {opDelete, "config", logical.ErrUnsupportedOperation},
		"simple path is gone": {opRead, "s", logical.ErrUnsupportedPath},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := f.do(tc.op, tc.path, map[string]any{}); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v; want %v", err, tc.want)
			}
		})
	}
}

func TestKVv2Exists(t *testing.T) {
	f := newFixture(t, v2)
	put(f, "s", map[string]any{"k": "v"})
	f.must(opUpdate, "metadata/m", map[string]any{})
	cases := map[string]struct {
		path string
		want bool
	}{
		"data existing":     {"data/s", true},
		"data missing":      {"data/x", false},
		"data meta only":    {"data/m", true},
		"metadata existing": {"metadata/s", true},
		"metadata missing":  {"metadata/x", false},
		"config":            {"config", true},
		"destroy":           {"destroy/x", true},
		"undelete":          {"undelete/x", true},
		"delete":            {"delete/x", true},
		"unknown":           {"nope/x", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := f.e.Exists(t.Context(), &logical.Request{Operation: opUpdate, RelativePath: tc.path})
			if err != nil || got != tc.want {
				t.Fatalf("Exists = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
