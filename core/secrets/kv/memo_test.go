package kv

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/storage/inmem"
)

// TestLoadMetaFollowsStorage loads a secret's metadata again and again
// while it changes: each load answers what storage holds, and what one
// caller does to its copy does not reach the next.
func TestLoadMetaFollowsStorage(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	be := inmem.New()
	e, err := New(be, Config{Layout: LayoutKVv2, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := e.write(ctx, "s", map[string]any{"k": "v"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.writeMeta(ctx, "s", metaUpdate{CustomMetadata: &map[string]string{"owner": "a"}}); err != nil {
		t.Fatal(err)
	}
	first, err := e.loadMeta(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	want := first.clone()

	// A caller's changes to its copy stay with it.
	first.CurrentVersion = 9
	first.CustomMetadata["owner"] = "changed"
	first.Versions[1].Destroyed = true
	delete(first.Versions, 2)
	again, err := e.loadMeta(ctx, "s")
	if err != nil || !reflect.DeepEqual(again, want) {
		t.Fatalf("second loadMeta = %+v, %v; want %+v (a caller's changes leaked into it)", again, err, want)
	}

	// Changes through the engine are seen.
	if err := e.apply(ctx, "delete", "s", []int{1}, softDelete); err != nil {
		t.Fatal(err)
	}
	fresh(t, e, be)
	if got, err := e.loadMeta(ctx, "s"); err != nil || !got.Versions[1].DeletionTime.Equal(now) || got.CurrentVersion != 2 {
		t.Fatalf("loadMeta after a delete = %+v, %v; want version 1 deleted at %v", got, err, now)
	}

	// A change made behind the engine's back is seen too.
	raw, err := be.Get(ctx, metaKey("s"))
	if err != nil {
		t.Fatal(err)
	}
	var stored map[string]any
	if err := json.Unmarshal(raw, &stored); err != nil {
		t.Fatal(err)
	}
	stored["current_version"] = 1
	raw, err = json.Marshal(stored)
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Put(ctx, metaKey("s"), raw); err != nil {
		t.Fatal(err)
	}
	if got, err := e.loadMeta(ctx, "s"); err != nil || got.CurrentVersion != 1 {
		t.Fatalf("loadMeta after a stored change = %+v, %v; want current version 1", got, err)
	}

	// Bad bytes fail even after good ones were remembered.
	if err := be.Put(ctx, metaKey("s"), []byte("{")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.loadMeta(ctx, "s"); err == nil {
		t.Fatal("loadMeta of bytes that do not decode succeeded")
	}
}

// TestCommitRemembersWhatLoadDecodes checks that the metadata a write
// leaves in the memo is what decoding the stored bytes gives, with the
// real clock (monotonic readings) and custom metadata set and cleared.
func TestCommitRemembersWhatLoadDecodes(t *testing.T) {
	ctx := context.Background()
	be := inmem.New()
	e, err := New(be, Config{Layout: LayoutKVv2, MaxVersions: 3})
	if err != nil {
		t.Fatal(err)
	}
	steps := []func() error{
		func() error { _, err := e.write(ctx, "s", map[string]any{"k": "v"}, nil); return err },
		func() error {
			return e.writeMeta(ctx, "s", metaUpdate{CustomMetadata: &map[string]string{"a": "b"}})
		},
		func() error { _, err := e.write(ctx, "s", map[string]any{"k": "w"}, nil); return err },
		func() error { return e.writeMeta(ctx, "s", metaUpdate{CustomMetadata: &map[string]string{}}) },
		func() error { return e.apply(ctx, "delete", "s", nil, softDelete) },
		func() error { return e.apply(ctx, "undelete", "s", nil, undelete) },
		func() error { return e.apply(ctx, "destroy", "s", []int{1}, destroy) },
		func() error { d := time.Hour; return e.writeMeta(ctx, "s", metaUpdate{DeleteVersionAfter: &d}) },
		func() error { _, err := e.write(ctx, "s", map[string]any{"k": "x"}, nil); return err },
		func() error { _, err := e.write(ctx, "s", map[string]any{"k": "y"}, nil); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		fresh(t, e, be)
	}
}

// fresh checks that loadMeta answers what decoding the stored bytes of
// "s" gives.
func fresh(t *testing.T, e *Engine, be *inmem.Backend) {
	t.Helper()
	ctx := context.Background()
	raw, err := be.Get(ctx, metaKey("s"))
	if err != nil {
		t.Fatal(err)
	}
	var want secretMeta
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	e.metaMemo.mu.Lock()
	d, ok := e.metaMemo.decoded["s"]
	e.metaMemo.mu.Unlock()
	if !ok || !bytes.Equal(d.raw, raw) {
		t.Fatal("the memo does not hold the stored bytes of the last commit")
	}
	got, err := e.loadMeta(ctx, "s")
	if err != nil || !reflect.DeepEqual(got, &want) {
		t.Fatalf("loadMeta = %+v, %v; decoding the stored bytes gives %+v", got, err, &want)
	}
}

// TestSharedMetaIsNotChanged reads a secret while it is written from other
// goroutines: a reader's metadata, shared through the memo, never changes
// under it (the race detector watches), and every read sees a version
// that was written.
func TestSharedMetaIsNotChanged(t *testing.T) {
	ctx := context.Background()
	e, err := New(inmem.New(), Config{Layout: LayoutKVv2, MaxVersions: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.write(ctx, "s", map[string]any{"k": "v"}, nil); err != nil {
		t.Fatal(err)
	}
	const writes = 50
	done := make(chan error, 1)
	go func() {
		for range writes {
			if _, err := e.write(ctx, "s", map[string]any{"k": "v"}, nil); err != nil {
				done <- err
				return
			}
			if err := e.apply(ctx, "delete", "s", []int{1}, softDelete); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for {
		r, err := e.read(ctx, "s", 0)
		if err != nil {
			t.Fatal(err)
		}
		before := r.Meta.clone()
		_, _, err = e.metadata(ctx, "s")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(before, r.Meta.clone()) || r.Meta.CurrentVersion < 1 || r.Meta.CurrentVersion > writes+1 {
			t.Fatalf("shared metadata changed under a reader or is wrong: %+v", r.Meta)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if r, err := e.read(ctx, "s", 0); err != nil || r.Meta.CurrentVersion != writes+1 {
				t.Fatalf("last read = %+v, %v; want version %d", r, err, writes+1)
			}
			return
		default:
		}
	}
}

// TestAppendMetaJSONMatchesMarshal compares secretMeta.appendJSON with
// json.Marshal on metadata with every optional member set and unset, version
// numbers whose string order differs from their numeric order, awkward
// custom metadata, and times in and out of what RFC 3339 allows.
func TestAppendMetaJSONMatchesMarshal(t *testing.T) {
	t.Parallel()
	times := []time.Time{
		{}, time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC), time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		time.Now(), time.Now().UTC(), time.Date(2025, 3, 1, 12, 0, 0, 5, time.FixedZone("CET", 3600)),
		time.Date(2025, 3, 1, 12, 0, 0, 0, time.FixedZone("Z0", 0)), time.Date(2025, 3, 1, 12, 0, 0, 0, time.FixedZone("far", 25*3600)),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	customs := []map[string]string{
		nil, {}, {"owner": "team-a"},
		{"<b>": "a&b", "\x00\x1f\"\\": "\xff\xfe", "\u2028": "\u2029 caf\u00e9 \U0001F511", "z": "", "": "empty key", "\x7f": "\t\n\r\b\f"},
	}
	var valid []time.Time
	for _, tm := range times {
		if _, err := tm.MarshalJSON(); err == nil {
			valid = append(valid, tm)
		}
	}
	var metas []*secretMeta
	for i, tm := range times {
		versions := map[int]*versionMeta{}
		for n := 1; n <= 12; n++ {
			versions[n*(i+1)] = &versionMeta{
				CreatedTime: valid[(i+n)%len(valid)], DeletionTime: valid[(i+2*n)%len(valid)],
				Destroyed: n%3 == 0, Undeleted: n%4 == 0,
			}
		}
		versions[1000+i] = nil
		for j, cm := range customs {
			metas = append(metas, &secretMeta{
				CurrentVersion: i * j, CreatedTime: tm, UpdatedTime: times[(i+j)%len(times)],
				MaxVersions: j - 1, CASRequired: j%2 == 1, DeleteVersionAfter: time.Duration(i-j) * time.Hour,
				CustomMetadata: cm, Versions: versions,
			})
		}
		metas = append(metas, &secretMeta{CreatedTime: tm}, &secretMeta{UpdatedTime: tm, Versions: map[int]*versionMeta{}},
			&secretMeta{Versions: map[int]*versionMeta{-5: {}, 0: {CreatedTime: tm}, 7: {Undeleted: true}}})
	}
	encoded := 0
	for i, m := range metas {
		want, wantErr := json.Marshal(m)
		got, gotErr := m.appendJSON(nil)
		if (gotErr != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("meta %d: appendJSON = %s, %v\njson.Marshal = %s, %v", i, got, gotErr, want, wantErr)
		}
		if wantErr == nil {
			encoded++
		}
	}
	if encoded < len(metas)*2/3 {
		t.Fatalf("only %d of %d metas encode; the test compares too few bytes", encoded, len(metas))
	}
}
