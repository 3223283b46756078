package kv_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/secrets/kv"
	"github.com/secrethub/secrethub/core/storage/inmem"
)

func TestDeleteVersionAfter(t *testing.T) {
	type check struct {
		at      time.Duration // since t0
		version string
		live    bool
	}
	cases := map[string]struct {
		cfg    kv.Config
		setup  func(f *fixture) // runs at t0, before the writes
		prefix string           // "data/" in kv-v2
		checks []check
	}{
		"simple, mount setting": {
			cfg: kv.Config{DeleteVersionAfter: time.Hour},
			checks: []check{
				{at: 59 * time.Minute, version: "1", live: true},
				{at: time.Hour, version: "1", live: false},
				{at: time.Hour, version: "2", live: true},
				{at: 2*time.Hour + 10*time.Minute, version: "2", live: false},
			},
		},
		"kv-v2, engine config": {
			cfg:    v2,
			setup:  func(f *fixture) { f.must(opUpdate, "config", map[string]any{"delete_version_after": "1h"}) },
			prefix: "data/",
			checks: []check{{at: 59 * time.Minute, version: "1", live: true}, {at: 61 * time.Minute, version: "1", live: false}},
		},
		"kv-v2, secret shortens engine": {
			cfg: v2,
			setup: func(f *fixture) {
				f.must(opUpdate, "config", map[string]any{"delete_version_after": "1h"})
				f.must(opUpdate, "metadata/s", map[string]any{"delete_version_after": json600})
			},
			prefix: "data/",
			checks: []check{{at: 9 * time.Minute, version: "1", live: true}, {at: 10 * time.Minute, version: "1", live: false}},
		},
		"kv-v2, secret cannot lengthen engine": {
			cfg: v2,
			setup: func(f *fixture) {
				f.must(opUpdate, "config", map[string]any{"delete_version_after": "1h"})
				f.must(opUpdate, "metadata/s", map[string]any{"delete_version_after": "3h"})
			},
			prefix: "data/",
			checks: []check{{at: time.Hour, version: "1", live: false}},
		},
		"kv-v2, secret alone, in days": {
			cfg:    v2,
			setup:  func(f *fixture) { f.must(opUpdate, "metadata/s", map[string]any{"delete_version_after": "1d"}) },
			prefix: "data/",
			checks: []check{{at: 23 * time.Hour, version: "1", live: true}, {at: 24 * time.Hour, version: "1", live: false}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, tc.cfg)
			if tc.setup != nil {
				tc.setup(f)
			}
			write := func(n int) {
				if tc.prefix == "" {
					f.must(opUpdate, "s", map[string]any{"n": n})
				} else {
					put(f, "s", map[string]any{"n": n})
				}
			}
			write(1) // at t0
			f.clock.Advance(time.Hour + time.Minute)
			write(2) // at t0+61m
			for _, c := range tc.checks {
				f.clock.Set(t0.Add(c.at))
				resp, err := f.do(opRead, tc.prefix+"s", map[string]any{"version": c.version})
				if err != nil && !errors.Is(err, logical.ErrNotFound) {
					t.Fatalf("at %s, read v%s: %v", c.at, c.version, err)
				}
				// The simple layout answers ErrNotFound, KV v2 a 404
				// response with metadata.
				if live := err == nil && resp.StatusCode != 404; live != c.live {
					t.Fatalf("at %s, v%s live = %v; want %v (%+v)", c.at, c.version, live, c.live, resp)
				}
			}
		})
	}
}

// json600 is ten minutes as a JSON number of seconds.
var json600 any = 600.0

func TestDeleteVersionAfterUndeleteKeeps(t *testing.T) {
	f := newFixture(t, kv.Config{DeleteVersionAfter: time.Hour})
	f.must(opUpdate, "s", map[string]any{"n": 1})
	f.clock.Advance(2 * time.Hour)
	resp := f.must(opRead, "s", map[string]any{"history": "true"})
	dt := resp.Data["versions"].([]any)[0].(map[string]any)["deletion_time"]
	if dt != t0.Add(time.Hour).Format(time.RFC3339Nano) {
		t.Fatalf("deletion_time of an expired version = %v; want created+1h", dt)
	}
	f.must(opUpdate, "s", map[string]any{"action": "undelete", "versions": "1"})
	f.clock.Advance(24 * time.Hour)
	if resp := f.must(opRead, "s", nil); resp.StatusCode == 404 || num(t, resp.Data["n"]) != 1 {
		t.Fatalf("undeleted version expired again: %+v", resp)
	}
}

func TestStorageErrorsSurface(t *testing.T) {
	fault := errors.New("backend on fire")
	cases := map[string]struct {
		cfg    kv.Config
		op     logical.Operation
		path   string
		data   map[string]any
		method inmem.Method
	}{
		"simple read":             {kv.Config{}, opRead, "s", nil, inmem.MethodGet},
		"simple read missing":     {kv.Config{}, opRead, "missing", nil, inmem.MethodGet},
		"simple read old version": {kv.Config{}, opRead, "s", map[string]any{"version": "1"}, inmem.MethodGet},
		"simple metadata":         {kv.Config{}, opRead, "s", map[string]any{"metadata": "true"}, inmem.MethodGet},
		"simple write get":        {kv.Config{}, opUpdate, "s", map[string]any{"k": "v"}, inmem.MethodGet},
		"simple write txn":        {kv.Config{}, opUpdate, "s", map[string]any{"k": "v"}, inmem.MethodTxn},
		"simple delete":           {kv.Config{}, opDelete, "s", nil, inmem.MethodTxn},
		"simple delete missing":   {kv.Config{}, opDelete, "missing", nil, inmem.MethodGet},
		"simple destroy":          {kv.Config{}, opUpdate, "s", map[string]any{"action": "destroy", "versions": "1"}, inmem.MethodTxn},
		"simple delete metadata":  {kv.Config{}, opDelete, "s", map[string]any{"metadata": "true"}, inmem.MethodTxn},
		"simple list":             {kv.Config{}, opList, "", nil, inmem.MethodList},
		"v2 config read":          {v2, opRead, "config", nil, inmem.MethodGet},
		"v2 config write":         {v2, opUpdate, "config", map[string]any{"max_versions": 3}, inmem.MethodPut},
		"v2 data read":            {v2, opRead, "data/s", nil, inmem.MethodGet},
		"v2 data write":           {v2, opUpdate, "data/s", map[string]any{"data": map[string]any{}}, inmem.MethodTxn},
		"v2 metadata read":        {v2, opRead, "metadata/s", nil, inmem.MethodGet},
		"v2 metadata write":       {v2, opUpdate, "metadata/s", map[string]any{"max_versions": 3}, inmem.MethodTxn},
		"v2 metadata delete":      {v2, opDelete, "metadata/s", nil, inmem.MethodTxn},
		"v2 undelete":             {v2, opUpdate, "undelete/s", map[string]any{"versions": []any{1}}, inmem.MethodGet},
		"v2 list":                 {v2, opList, "metadata/", nil, inmem.MethodList},
		"v2 subkeys":              {v2, opRead, "subkeys/s", nil, inmem.MethodGet},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, tc.cfg)
			if tc.cfg.Layout == kv.LayoutKVv2 {
				put(f, "s", map[string]any{"k": "v"})
			} else {
				f.must(opUpdate, "s", map[string]any{"k": "v"})
			}
			f.store.SetFault(tc.method, fault)
			resp, err := f.do(tc.op, tc.path, tc.data)
			if !errors.Is(err, fault) {
				t.Fatalf("err = %v (resp %+v); want the storage fault", err, resp)
			}
			var ire *logical.InvalidRequestError
			if errors.Is(err, logical.ErrNotFound) || errors.As(err, &ire) {
				t.Fatalf("storage error reported as %v", err)
			}
		})
	}
	t.Run("exists", func(t *testing.T) {
		f := newFixture(t, kv.Config{})
		f.store.SetFault(inmem.MethodGet, fault)
		if _, err := f.e.Exists(t.Context(), &logical.Request{Operation: opUpdate, RelativePath: "s"}); !errors.Is(err, fault) {
			t.Fatalf("Exists err = %v", err)
		}
	})
}

func TestConcurrentWritersLoseNothing(t *testing.T) {
	const writers = 50
	for _, layout := range []kv.Layout{kv.LayoutSimple, kv.LayoutKVv2} {
		t.Run(string(layout), func(t *testing.T) {
			f := newFixture(t, kv.Config{Layout: layout, MaxVersions: 100})
			path, wrap := "s", func(d map[string]any) map[string]any { return d }
			if layout == kv.LayoutKVv2 {
				path, wrap = "data/s", func(d map[string]any) map[string]any { return map[string]any{"data": d} }
			}
			versions := make([]int, writers)
			errs := make([]error, writers)
			var wg sync.WaitGroup
			for i := range writers {
				wg.Go(func() {
					resp, err := f.do(opUpdate, path, wrap(map[string]any{"writer": i}))
					errs[i] = err
					if err == nil {
						versions[i] = resp.Data["version"].(int)
					}
				})
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatalf("writes failed: %v", err)
			}
			slices.Sort(versions)
			for i, v := range versions {
				if v != i+1 {
					t.Fatalf("versions = %v; want 1..%d each once", versions, writers)
				}
			}
			if got := len(f.keys("data/")); got != writers {
				t.Fatalf("%d versions stored; want %d", got, writers)
			}
			// Every version holds the data of the writer that got it.
			seen := map[int]bool{}
			for v := 1; v <= writers; v++ {
				resp := f.must(opRead, path, map[string]any{"version": fmt.Sprint(v)})
				d := resp.Data
				if layout == kv.LayoutKVv2 {
					d = d["data"].(map[string]any)
				}
				seen[num(t, d["writer"])] = true
			}
			if len(seen) != writers {
				t.Fatalf("%d distinct writers stored; want %d", len(seen), writers)
			}
		})
	}
}

func TestConcurrentCASCreatesOnce(t *testing.T) {
	const writers = 50
	f := newFixture(t, v2)
	var wg sync.WaitGroup
	results := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			_, results[i] = f.do(opCreate, "data/once", map[string]any{"data": map[string]any{"i": i}, "options": map[string]any{"cas": 0}})
		})
	}
	wg.Wait()
	ok, conflicts := 0, 0
	for _, err := range results {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, logical.ErrConflict):
			conflicts++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if ok != 1 || conflicts != writers-1 {
		t.Fatalf("%d succeeded, %d conflicted; want 1 and %d", ok, conflicts, writers-1)
	}
}
