package rolestore_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/rolestore"
	"github.com/secrethub/secrethub/core/storage/inmem"
)

type role struct {
	Policies []string `json:"policies"`
	TTL      int      `json:"ttl"`
}

func TestStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := inmem.New()
	st := rolestore.New[role](s, "test", "role/")

	if got, err := st.Get(ctx, "web"); err != nil || got != nil {
		t.Fatalf("Get before Put = %v, %v; want nil, nil", got, err)
	}
	want := &role{Policies: []string{"a", "b"}, TTL: 60}
	if err := st.Put(ctx, "web", want); err != nil {
		t.Fatal(err)
	}
	got, err := st.Get(ctx, "web")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Get = %#v, %v; want %#v", got, err, want)
	}
	if _, err := s.Get(ctx, "role/web"); err != nil {
		t.Fatalf("role not stored under its prefix: %v", err)
	}

	if err := st.Delete(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Get(ctx, "web"); err != nil || got != nil {
		t.Fatalf("Get after Delete = %v, %v", got, err)
	}
	if err := st.Delete(ctx, "web"); err != nil {
		t.Fatalf("Delete of a missing role: %v", err)
	}
}

func TestStoreListSkipsFolders(t *testing.T) {
	ctx := context.Background()
	s := inmem.New()
	st := rolestore.New[role](s, "test", "role/")

	resp, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if keys := resp.Data["keys"].([]string); keys == nil || len(keys) != 0 {
		t.Fatalf("List of none = %#v; want an empty, non-nil list", resp.Data["keys"])
	}

	for _, k := range []string{"role/b", "role/a", "role/deeper/x", "other/c"} {
		if err := s.Put(ctx, k, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	resp, err = st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resp.Data["keys"], []string{"a", "b"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("List = %#v; want %#v", got, want)
	}
	keys, err := logical.ListKeys(ctx, s, "role/")
	if err != nil || !reflect.DeepEqual(keys, []string{"a", "b"}) {
		t.Fatalf("ListKeys = %#v, %v", keys, err)
	}
}

func TestStoreErrors(t *testing.T) {
	ctx := context.Background()
	s := inmem.New()
	st := rolestore.New[role](s, "test", "role/")
	boom := errors.New("disk on fire")

	if err := st.NotFound("web"); !errors.Is(err, logical.ErrNotFound) || err.Error() != `test: role "web": not found` {
		t.Fatalf("NotFound = %v", err)
	}

	if err := s.Put(ctx, "role/bad", []byte("{")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, "bad"); err == nil || !strings.HasPrefix(err.Error(), `test: decode role "bad": `) {
		t.Fatalf("Get of a corrupt role = %v", err)
	}

	for _, c := range []struct {
		method inmem.Method
		prefix string
		call   func() error
	}{
		{inmem.MethodGet, `test: read role "web": `, func() error { _, err := st.Get(ctx, "web"); return err }},
		{inmem.MethodPut, `test: write role "web": `, func() error { return st.Put(ctx, "web", &role{}) }},
		{inmem.MethodDelete, `test: delete role "web": `, func() error { return st.Delete(ctx, "web") }},
		{inmem.MethodList, `test: list roles: `, func() error { _, err := st.List(ctx); return err }},
	} {
		s.SetFault(c.method, boom)
		err := c.call()
		s.ClearFaults()
		if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), c.prefix) {
			t.Errorf("%s fault: err = %v; want it to start %q and wrap the storage error", c.method, err, c.prefix)
		}
	}
}
