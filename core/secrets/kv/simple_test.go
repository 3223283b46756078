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
	"github.com/secrethub/secrethub/core/storage/inmem"
)

const (
	opRead   = logical.OpRead
	opCreate = logical.OpCreate
	opUpdate = logical.OpUpdate
	opDelete = logical.OpDelete
	opList   = logical.OpList
)

func TestNewRejectsBadConfig(t *testing.T) {
	cases := map[string]kv.Config{
		"unknown layout":        {Layout: "kv-v3"},
		"negative max versions": {MaxVersions: -1},
		"negative delete after": {DeleteVersionAfter: -time.Second},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := kv.New(&recorder{}, cfg); err == nil {
				t.Fatal("New accepted a bad config")
			}
		})
	}
	if _, err := kv.New(nil, kv.Config{}); err == nil {
		t.Fatal("New accepted nil storage")
	}
	e, err := kv.New(&recorder{}, kv.Config{})
	if err != nil || e.Layout() != kv.LayoutSimple {
		t.Fatalf("default layout = %v, %v; want simple", e.Layout(), err)
	}
}

func TestSimpleVersions(t *testing.T) {
	f := newFixture(t, kv.Config{})
	bodies := []string{`{"user":"a","n":1}`, `{"user":"b","n":2.5}`, `{"user":"c","nested":{"x":[1,"y",null]}}`}
	for i, b := range bodies {
		f.clock.Advance(time.Minute)
		resp := f.must(opCreate, "app/db", body(t, b))
		if got := num(t, resp.Data["version"]); got != i+1 {
			t.Fatalf("write %d: version %d", i+1, got)
		}
		if got, want := resp.Data["created_time"], f.clock.Now().Format(time.RFC3339Nano); got != want {
			t.Fatalf("write %d: created_time %v, want %v", i+1, got, want)
		}
		if len(resp.Data) != 2 {
			t.Fatalf("write response has extra fields: %v", resp.Data)
		}
	}
	cases := map[string]struct {
		params map[string]any
		want   string
	}{
		"latest":            {nil, bodies[2]},
		"version as string": {map[string]any{"version": "1"}, bodies[0]},
		"version as number": {map[string]any{"version": json.Number("2")}, bodies[1]},
		"version as float":  {map[string]any{"version": 2.0}, bodies[1]},
		"version 0 latest":  {map[string]any{"version": "0"}, bodies[2]},
		"empty version":     {map[string]any{"version": ""}, bodies[2]},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			resp := f.must(opRead, "app/db", tc.params)
			if got, want := asJSON(t, resp.Data), asJSON(t, body(t, tc.want)); got != want {
				t.Fatalf("read = %s; want %s", got, want)
			}
		})
	}
	if _, err := f.do(opRead, "app/db", map[string]any{"version": "4"}); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("read of a future version: %v; want ErrNotFound", err)
	}
	if _, err := f.do(opRead, "app/other", nil); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("read of a missing secret: %v; want ErrNotFound", err)
	}
}

func TestSimpleLargeNumbersSurvive(t *testing.T) {
	f := newFixture(t, kv.Config{})
	f.must(opUpdate, "n", body(t, `{"big":12345678901234567890123,"f":0.1}`))
	got := f.must(opRead, "n", nil).Data
	if got["big"] != json.Number("12345678901234567890123") || got["f"] != json.Number("0.1") {
		t.Fatalf("numbers changed: %#v", got)
	}
}

func TestSimpleWrappedAndLiteralBodies(t *testing.T) {
	cases := map[string]struct {
		body string
		want string // what a read returns
	}{
		"plain":                      {`{"a":"1"}`, `{"a":"1"}`},
		"wrapped with cas":           {`{"data":{"a":"1"},"options":{"cas":0}}`, `{"a":"1"}`},
		"wrapped empty options":      {`{"data":{"a":"1"},"options":{}}`, `{"a":"1"}`},
		"data alone is literal":      {`{"data":{"a":"1"}}`, `{"data":{"a":"1"}}`},
		"unknown option is literal":  {`{"data":{"a":"1"},"options":{"ttl":"1h"}}`, `{"data":{"a":"1"},"options":{"ttl":"1h"}}`},
		"options not object literal": {`{"data":{"a":"1"},"options":"x"}`, `{"data":{"a":"1"},"options":"x"}`},
		"three keys literal":         {`{"data":{"a":"1"},"options":{},"x":1}`, `{"data":{"a":"1"},"options":{},"x":1}`},
		"action not string literal":  {`{"action":1,"versions":[1]}`, `{"action":1,"versions":[1]}`},
		"wrapped empty secret":       {`{"data":{},"options":{}}`, `{}`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, kv.Config{})
			f.must(opCreate, "s", body(t, tc.body))
			if got, want := asJSON(t, f.must(opRead, "s", nil).Data), asJSON(t, body(t, tc.want)); got != want {
				t.Fatalf("read = %s; want %s", got, want)
			}
		})
	}
}

func TestSimpleCheckAndSet(t *testing.T) {
	wrapped := func(cas any) map[string]any {
		return map[string]any{"data": map[string]any{"k": "v"}, "options": map[string]any{"cas": cas}}
	}
	cases := map[string]struct {
		cfg       kv.Config
		existing  int // versions written before
		body      map[string]any
		wantErr   error  // sentinel, or nil
		wantField string // InvalidRequestError field, or ""
		wantVer   int
	}{
		"cas 0 creates":              {body: wrapped(json.Number("0")), wantVer: 1},
		"cas 0 on existing conflict": {existing: 1, body: wrapped(json.Number("0")), wantErr: logical.ErrConflict},
		"cas matches":                {existing: 2, body: wrapped(json.Number("2")), wantVer: 3},
		"cas as string":              {existing: 2, body: wrapped("2"), wantVer: 3},
		"cas as float":               {existing: 2, body: wrapped(2.0), wantVer: 3},
		"cas behind":                 {existing: 2, body: wrapped(json.Number("1")), wantErr: logical.ErrConflict},
		"cas ahead":                  {existing: 2, body: wrapped(json.Number("5")), wantErr: logical.ErrConflict},
		"cas negative":               {body: wrapped(json.Number("-1")), wantField: "options.cas"},
		"cas fraction":               {body: wrapped(1.5), wantField: "options.cas"},
		"cas bool":                   {body: wrapped(true), wantField: "options.cas"},
		"required and missing":       {cfg: kv.Config{CASRequired: true}, existing: 1, body: map[string]any{"k": "v"}, wantField: "options.cas"},
		"required and given":         {cfg: kv.Config{CASRequired: true}, existing: 1, body: wrapped(json.Number("1")), wantVer: 2},
		"required and null cas":      {cfg: kv.Config{CASRequired: true}, body: wrapped(nil), wantField: "options.cas"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, tc.cfg)
			for i := range tc.existing {
				f.must(opUpdate, "s", map[string]any{"data": map[string]any{"n": i}, "options": map[string]any{"cas": i}})
			}
			resp, err := f.do(opUpdate, "s", tc.body)
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v; want %v", err, tc.wantErr)
				}
			case tc.wantField != "":
				wantInvalid(t, err, tc.wantField)
			default:
				if err != nil {
					t.Fatalf("write: %v", err)
				}
				if got := num(t, resp.Data["version"]); got != tc.wantVer {
					t.Fatalf("version %d; want %d", got, tc.wantVer)
				}
				return
			}
			// A refused write stores nothing new.
			want := tc.existing
			if want == 0 {
				if _, err := f.do(opRead, "s", map[string]any{"metadata": "true"}); !errors.Is(err, logical.ErrNotFound) {
					t.Fatalf("refused write left metadata: %v", err)
				}
				return
			}
			md := f.must(opRead, "s", map[string]any{"metadata": "true"}).Data
			if got := num(t, md["current_version"]); got != want {
				t.Fatalf("current_version %d after a refused write; want %d", got, want)
			}
		})
	}
}

func TestSimpleMaxVersionsPrunesInOneTransaction(t *testing.T) {
	f := newFixture(t, kv.Config{MaxVersions: 3})
	for i := 1; i <= 3; i++ {
		f.must(opUpdate, "app/db", map[string]any{"n": i})
	}
	f.store.reset()
	f.must(opUpdate, "app/db", map[string]any{"n": 4})
	// One transaction, no stray writes: new data, the delete of version 1,
	// the metadata.
	if got := strings.Join(f.store.calls, ","); got != "txn" {
		t.Fatalf("storage calls = %s; want one txn", got)
	}
	var ops []string
	for _, op := range f.store.txns[0] {
		ops = append(ops, op.Kind.String()+" "+op.Key)
	}
	want := []string{"put data/app/db/4", "delete data/app/db/1", "put meta/app/db"}
	if !slices.Equal(ops, want) {
		t.Fatalf("txn ops = %v; want %v", ops, want)
	}
	f.must(opUpdate, "app/db", map[string]any{"n": 5})
	if got, want := f.keys("data/"), []string{"data/app/db/3", "data/app/db/4", "data/app/db/5"}; !slices.Equal(got, want) {
		t.Fatalf("data keys = %v; want %v", got, want)
	}
	for _, v := range []string{"1", "2"} {
		if _, err := f.do(opRead, "app/db", map[string]any{"version": v}); !errors.Is(err, logical.ErrNotFound) {
			t.Fatalf("read of pruned version %s: %v; want ErrNotFound", v, err)
		}
	}
	if got := num(t, f.must(opRead, "app/db", map[string]any{"version": "3"}).Data["n"]); got != 3 {
		t.Fatalf("version 3 holds n=%d", got)
	}
	md := f.must(opRead, "app/db", map[string]any{"metadata": "true"}).Data
	if num(t, md["oldest_version"]) != 3 || num(t, md["current_version"]) != 5 || len(md["versions"].(map[string]any)) != 3 {
		t.Fatalf("metadata after pruning: %v", asJSON(t, md))
	}
}

func TestSimpleFailedTxnChangesNothing(t *testing.T) {
	f := newFixture(t, kv.Config{MaxVersions: 2})
	f.must(opUpdate, "s", map[string]any{"n": 1})
	f.must(opUpdate, "s", map[string]any{"n": 2})
	before := f.keys("")
	f.store.SetFault(inmem.MethodTxn, errors.New("disk full"))
	if _, err := f.do(opUpdate, "s", map[string]any{"n": 3}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("write with failing txn: %v", err)
	}
	f.store.ClearFaults()
	if after := f.keys(""); !slices.Equal(before, after) {
		t.Fatalf("keys changed by a failed write: %v -> %v", before, after)
	}
	if got := num(t, f.must(opRead, "s", map[string]any{"version": "1"}).Data["n"]); got != 1 {
		t.Fatalf("version 1 lost: n=%d", got)
	}
	if got := num(t, f.must(opUpdate, "s", map[string]any{"n": 3}).Data["version"]); got != 3 {
		t.Fatalf("next write got version %d; want 3", got)
	}
}

// state is one version's state as a metadata read shows it.
type state struct {
	deleted, destroyed bool
}

func versionStates(t *testing.T, f *fixture, path string) map[string]state {
	t.Helper()
	md := f.must(opRead, path, map[string]any{"metadata": "true"}).Data
	out := map[string]state{}
	for v, raw := range md["versions"].(map[string]any) {
		vm := raw.(map[string]any)
		out[v] = state{deleted: vm["deletion_time"] != "", destroyed: vm["destroyed"].(bool)}
	}
	return out
}

func TestSimpleDeleteUndeleteDestroy(t *testing.T) {
	type step struct {
		op   logical.Operation
		data map[string]any
	}
	action := func(a string, versions any) step {
		return step{opUpdate, map[string]any{"action": a, "versions": versions}}
	}
	cases := map[string]struct {
		steps    []step
		want     map[string]state
		readable []string // versions that still read
	}{
		"delete latest": {
			steps:    []step{{opDelete, nil}},
			want:     map[string]state{"1": {}, "2": {}, "3": {deleted: true}},
			readable: []string{"1", "2"},
		},
		"delete listed as query string": {
			steps:    []step{{opDelete, map[string]any{"versions": "1, 2"}}},
			want:     map[string]state{"1": {deleted: true}, "2": {deleted: true}, "3": {}},
			readable: []string{"3"},
		},
		"delete action": {
			steps:    []step{action("delete", []any{json.Number("2")})},
			want:     map[string]state{"1": {}, "2": {deleted: true}, "3": {}},
			readable: []string{"1", "3"},
		},
		"undelete": {
			steps:    []step{{opDelete, map[string]any{"versions": "1,2,3"}}, action("undelete", []any{"1", json.Number("3")})},
			want:     map[string]state{"1": {}, "2": {deleted: true}, "3": {}},
			readable: []string{"1", "3"},
		},
		"destroy": {
			steps:    []step{action("destroy", []any{2.0})},
			want:     map[string]state{"1": {}, "2": {destroyed: true}, "3": {}},
			readable: []string{"1", "3"},
		},
		"undelete cannot restore destroyed": {
			steps:    []step{action("destroy", "2"), action("undelete", "2")},
			want:     map[string]state{"1": {}, "2": {destroyed: true}, "3": {}},
			readable: []string{"1", "3"},
		},
		"destroy a deleted version": {
			steps:    []step{{opDelete, nil}, action("destroy", []any{3})},
			want:     map[string]state{"1": {}, "2": {}, "3": {deleted: true, destroyed: true}},
			readable: []string{"1", "2"},
		},
		"unknown versions ignored": {
			steps:    []step{action("destroy", []any{7, 8}), action("delete", "9")},
			want:     map[string]state{"1": {}, "2": {}, "3": {}},
			readable: []string{"1", "2", "3"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, kv.Config{})
			for i := 1; i <= 3; i++ {
				f.must(opUpdate, "s", map[string]any{"n": i})
			}
			for _, s := range tc.steps {
				f.clock.Advance(time.Second)
				if resp := f.must(s.op, "s", s.data); resp != nil && resp.Data != nil {
					t.Fatalf("%s answered data %v; want none", s.op, resp.Data)
				}
			}
			if got := versionStates(t, f, "s"); !maps.Equal(got, tc.want) {
				t.Fatalf("states = %v; want %v", got, tc.want)
			}
			for v, st := range tc.want {
				resp, err := f.do(opRead, "s", map[string]any{"version": v})
				if slices.Contains(tc.readable, v) {
					if err != nil || num(t, resp.Data["n"]) != num(t, json.Number(v)) {
						t.Fatalf("version %s: %v, %v", v, resp, err)
					}
					continue
				}
				// The simple layout reads a deleted version as plainly
				// absent; its state shows in the history (checked above).
				if !errors.Is(err, logical.ErrNotFound) || resp != nil {
					t.Fatalf("version %s: %+v, %v; want ErrNotFound", v, resp, err)
				}
				_ = st
			}
			// Destroyed versions have no data left in storage.
			for v, st := range tc.want {
				has := slices.Contains(f.keys("data/"), "data/s/"+v)
				if has == st.destroyed {
					t.Fatalf("version %s: data stored = %v, destroyed = %v", v, has, st.destroyed)
				}
			}
		})
	}
}

func TestSimpleDeleteOfMissingIsNoop(t *testing.T) {
	f := newFixture(t, kv.Config{})
	for _, data := range []map[string]any{nil, {"versions": "1"}, {"metadata": "true"}} {
		if _, err := f.do(opDelete, "nothing/here", data); err != nil {
			t.Fatalf("delete %v of a missing secret: %v", data, err)
		}
	}
	if _, err := f.do(opUpdate, "nothing/here", map[string]any{"action": "destroy", "versions": "1"}); err != nil {
		t.Fatalf("destroy of a missing secret: %v", err)
	}
	if got := f.keys(""); len(got) != 0 {
		t.Fatalf("no-op deletes stored %v", got)
	}
}

func TestSimpleDeleteMetadata(t *testing.T) {
	f := newFixture(t, kv.Config{})
	for i := 1; i <= 3; i++ {
		f.must(opUpdate, "app/db", map[string]any{"n": i})
	}
	f.must(opUpdate, "app/other", map[string]any{"n": 1})
	f.must(opUpdate, "app/db", map[string]any{"action": "destroy", "versions": "2"})
	f.store.reset()
	f.must(opDelete, "app/db", map[string]any{"metadata": "true"})
	if got := strings.Join(f.store.calls, ","); got != "txn" {
		t.Fatalf("storage calls = %s; want one txn", got)
	}
	if got, want := f.keys(""), []string{"data/app/other/1", "meta/app/other"}; !slices.Equal(got, want) {
		t.Fatalf("keys = %v; want %v", got, want)
	}
	if _, err := f.do(opRead, "app/db", nil); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("read after delete-metadata: %v", err)
	}
	// The path starts over at version 1.
	if got := num(t, f.must(opUpdate, "app/db", map[string]any{"n": 9}).Data["version"]); got != 1 {
		t.Fatalf("version after delete-metadata = %d", got)
	}
}

func TestSimpleHistoryAndMetadata(t *testing.T) {
	f := newFixture(t, kv.Config{})
	f.must(opUpdate, "s", map[string]any{"n": 1})
	f.clock.Advance(time.Hour)
	f.must(opUpdate, "s", map[string]any{"n": 2})
	f.clock.Advance(time.Hour)
	f.must(opDelete, "s", nil)

	ts := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339Nano) }
	hist := f.must(opRead, "s", map[string]any{"history": "true"}).Data
	wantVersions := []any{
		map[string]any{"version": 1, "created_time": ts(0), "deletion_time": "", "destroyed": false},
		map[string]any{"version": 2, "created_time": ts(time.Hour), "deletion_time": ts(2 * time.Hour), "destroyed": false},
	}
	if got, want := asJSON(t, hist["versions"]), asJSON(t, wantVersions); got != want {
		t.Fatalf("history versions = %s; want %s", got, want)
	}
	md := f.must(opRead, "s", map[string]any{"metadata": true}).Data
	want := map[string]any{
		"cas_required": false, "created_time": ts(0), "current_version": 2, "custom_metadata": nil,
		"delete_version_after": "0s", "max_versions": 0, "oldest_version": 1, "updated_time": ts(time.Hour),
		"versions": map[string]any{
			"1": map[string]any{"created_time": ts(0), "deletion_time": "", "destroyed": false},
			"2": map[string]any{"created_time": ts(time.Hour), "deletion_time": ts(2 * time.Hour), "destroyed": false},
		},
	}
	if got, want := asJSON(t, md), asJSON(t, want); got != want {
		t.Fatalf("metadata = %s\nwant %s", got, want)
	}
	for k := range want {
		if k != "versions" && hist[k] == nil && want[k] != nil {
			t.Fatalf("history lacks %q", k)
		}
	}
}

func TestSimpleList(t *testing.T) {
	f := newFixture(t, kv.Config{})
	for _, p := range []string{"app/db", "app/api", "app/nested/x", "other", "app"} {
		f.must(opCreate, p, map[string]any{"k": "v"})
	}
	cases := map[string]struct {
		folder string
		want   []string
	}{
		"root":            {"", []string{"app", "app/", "other"}},
		"folder":          {"app", []string{"api", "db", "nested/"}},
		"trailing slash":  {"app/", []string{"api", "db", "nested/"}},
		"nested":          {"app/nested", []string{"x"}},
		"missing":         {"nope", nil},
		"secret not dir":  {"other", nil},
		"deeper, missing": {"app/nested/x", nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			resp, err := f.do(opList, tc.folder, nil)
			if tc.want == nil {
				if !errors.Is(err, logical.ErrNotFound) {
					t.Fatalf("list = %v, %v; want ErrNotFound", resp, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			if got := resp.Data["keys"].([]string); !slices.Equal(got, tc.want) {
				t.Fatalf("keys = %v; want %v", got, tc.want)
			}
		})
	}
}

func TestSimpleConfigIsAnOrdinarySecret(t *testing.T) {
	f := newFixture(t, kv.Config{})
	f.must(opUpdate, "config", map[string]any{"max_versions": "1"})
	if got := f.must(opRead, "config", nil).Data["max_versions"]; got != "1" {
		t.Fatalf("read config = %v", got)
	}
}

func TestSimpleBadInput(t *testing.T) {
	cases := map[string]struct {
		op    logical.Operation
		path  string
		data  map[string]any
		field string
	}{
		"wrapped data not object":  {opUpdate, "s", body(t, `{"data":"x","options":{}}`), "data"},
		"wrapped data array":       {opUpdate, "s", body(t, `{"data":[1],"options":{"cas":0}}`), "data"},
		"wrapped data null":        {opUpdate, "s", body(t, `{"data":null,"options":{}}`), "data"},
		"no body":                  {opUpdate, "s", nil, "data"},
		"empty body":               {opUpdate, "s", map[string]any{}, "data"},
		"unencodable data":         {opUpdate, "s", map[string]any{"f": func() {}}, "data"},
		"bad cas":                  {opUpdate, "s", body(t, `{"data":{},"options":{"cas":"x"}}`), "options.cas"},
		"version word":             {opRead, "s", map[string]any{"version": "abc"}, "version"},
		"version negative":         {opRead, "s", map[string]any{"version": "-1"}, "version"},
		"version fraction":         {opRead, "s", map[string]any{"version": 1.5}, "version"},
		"version bool":             {opRead, "s", map[string]any{"version": true}, "version"},
		"version huge":             {opRead, "s", map[string]any{"version": "99999999999999999999"}, "version"},
		"version NaN-ish":          {opRead, "s", map[string]any{"version": json.Number("1e400")}, "version"},
		"metadata not bool":        {opRead, "s", map[string]any{"metadata": "maybe"}, "metadata"},
		"history not bool":         {opRead, "s", map[string]any{"history": 1}, "history"},
		"metadata and history":     {opRead, "s", map[string]any{"metadata": "true", "history": "true"}, "history"},
		"unknown action":           {opUpdate, "s", body(t, `{"action":"explode","versions":[1]}`), "action"},
		"action no versions":       {opUpdate, "s", body(t, `{"action":"destroy","versions":[]}`), "versions"},
		"action null versions":     {opUpdate, "s", body(t, `{"action":"destroy","versions":null}`), "versions"},
		"action version zero":      {opUpdate, "s", body(t, `{"action":"destroy","versions":[0]}`), "versions"},
		"action version object":    {opUpdate, "s", body(t, `{"action":"undelete","versions":[{}]}`), "versions"},
		"action versions bad list": {opUpdate, "s", body(t, `{"action":"delete","versions":"1,x"}`), "versions"},
		"delete bad versions":      {opDelete, "s", map[string]any{"versions": "one"}, "versions"},
		"delete metadata and vers": {opDelete, "s", map[string]any{"versions": "1", "metadata": "true"}, "versions"},
		"empty path read":          {opRead, "", nil, "path"},
		"empty path write":         {opUpdate, "", map[string]any{"a": "b"}, "path"},
		"empty path delete":        {opDelete, "", nil, "path"},
		"dot dot":                  {opRead, "a/../b", nil, "path"},
		"empty segment":            {opUpdate, "a//b", map[string]any{"a": "b"}, "path"},
		"leading slash":            {opUpdate, "/a", map[string]any{"a": "b"}, "path"},
		"trailing slash":           {opUpdate, "a/", map[string]any{"a": "b"}, "path"},
		"control character":        {opUpdate, "a\nb", map[string]any{"a": "b"}, "path"},
		"too long":                 {opUpdate, strings.Repeat("a", kv.MaxPathLength+1), map[string]any{"a": "b"}, "path"},
		"list dot dot":             {opList, "a/..", nil, "path"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, kv.Config{})
			f.must(opUpdate, "s", map[string]any{"secret": "hunter2"})
			_, err := f.do(tc.op, tc.path, tc.data)
			wantInvalid(t, err, tc.field)
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error leaks a secret value: %v", err)
			}
		})
	}
}

func TestSimpleBadInputNeverEchoesBody(t *testing.T) {
	f := newFixture(t, kv.Config{})
	_, err := f.do(opUpdate, "s", map[string]any{"data": "topsecret-value", "options": map[string]any{"cas": "topsecret-cas"}})
	if err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("err = %v", err)
	}
}

func TestSimpleMaxPathLengthAccepted(t *testing.T) {
	f := newFixture(t, kv.Config{})
	p := strings.Repeat("a", kv.MaxPathLength)
	f.must(opUpdate, p, map[string]any{"k": "v"})
	if got := f.must(opRead, p, nil).Data["k"]; got != "v" {
		t.Fatalf("read = %v", got)
	}
}

func TestUnsupportedOperation(t *testing.T) {
	f := newFixture(t, kv.Config{})
	if _, err := f.do("rotate", "s", nil); !errors.Is(err, logical.ErrUnsupportedOperation) {
		t.Fatalf("err = %v", err)
	}
}

func TestSimpleExists(t *testing.T) {
	f := newFixture(t, kv.Config{})
	f.must(opCreate, "app/db", map[string]any{"k": "v"})
	f.must(opCreate, "gone", map[string]any{"k": "v"})
	f.must(opDelete, "gone", nil)
	cases := map[string]struct {
		path string
		data map[string]any
		want bool
	}{
		"existing":              {"app/db", map[string]any{"k": "v"}, true},
		"missing":               {"app/new", map[string]any{"k": "v"}, false},
		"folder is not secret":  {"app", map[string]any{"k": "v"}, false},
		"soft-deleted exists":   {"gone", map[string]any{"k": "v"}, true},
		"action is an update":   {"app/new", map[string]any{"action": "destroy", "versions": "1"}, true},
		"wrapped body, missing": {"app/new", map[string]any{"data": map[string]any{}, "options": map[string]any{}}, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := f.e.Exists(t.Context(), &logical.Request{Operation: opUpdate, RelativePath: tc.path, Data: tc.data})
			if err != nil || got != tc.want {
				t.Fatalf("Exists = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := f.e.Exists(t.Context(), &logical.Request{Operation: opUpdate, RelativePath: "a/../b"}); err == nil {
		t.Fatal("Exists accepted a bad path")
	}
}
