package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/storage"
	"github.com/secrethub/secrethub/core/storage/inmem"
)

// The storage views the core hands out satisfy Storage.
var (
	_ Storage = (storage.Backend)(nil)
	_ Storage = (logical.Storage)(nil)
)

// countingStorage counts reads, to tell cache hits from misses.
type countingStorage struct {
	Storage
	gets atomic.Int64
}

func (c *countingStorage) Get(ctx context.Context, key string) ([]byte, error) {
	c.gets.Add(1)
	return c.Storage.Get(ctx, key)
}

func newTestStore(t *testing.T) (*Store, *inmem.Backend, *countingStorage) {
	t.Helper()
	b := inmem.New()
	cs := &countingStorage{Storage: b}
	return NewStore(cs), b, cs
}

func TestStorePutGetKeepsTheDocument(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newTestStore(t)
	yamlDoc := "# app readers\nrules:\n  - path: secrets/app/*   # the app\n    capabilities: [read]\n"
	jsonDoc := "  {\"rules\": [{\"path\": \"secrets/x\", \"capabilities\": [\"list\"]}]}"
	for name, doc := range map[string]string{"app-read": yamlDoc, "x-list": jsonDoc} {
		p, err := s.Put(ctx, name, []byte(doc))
		if err != nil {
			t.Fatalf("Put(%s): %v", name, err)
		}
		if p.Name != name {
			t.Errorf("Put(%s) returned policy %q", name, p.Name)
		}
		got, gotDoc, err := s.Get(ctx, name)
		if err != nil {
			t.Fatalf("Get(%s): %v", name, err)
		}
		if string(gotDoc) != doc {
			t.Errorf("Get(%s) document = %q, want %q as written", name, gotDoc, doc)
		}
		if !got.Equal(p) {
			t.Errorf("Get(%s) policy = %+v, want %+v", name, got, p)
		}
	}
	for name, want := range map[string]string{"app-read": FormatYAML, "x-list": FormatJSON} {
		e, err := s.GetEntry(ctx, name)
		if err != nil || e.Format != want {
			t.Errorf("GetEntry(%s) = %+v, %v; want format %s", name, e, err, want)
		}
	}
}

func TestStoreErrors(t *testing.T) {
	ctx := context.Background()
	s, b, _ := newTestStore(t)
	var ve *ValidationError

	if _, err := s.Put(ctx, "p", []byte("rules: [{path: a, capabilities: [raed]}]")); !errors.As(err, &ve) || ve.Field != "rules[0].capabilities[0]" {
		t.Errorf("Put of a bad document: %v, want a ValidationError on rules[0].capabilities[0]", err)
	}
	if _, err := s.Put(ctx, RootPolicyName, []byte("rules: [{path: a, capabilities: [read]}]")); !errors.As(err, &ve) || ve.Field != "name" {
		t.Errorf("Put(root): %v, want a ValidationError on name", err)
	}
	if _, _, err := s.Get(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(missing): %v, want ErrNotFound", err)
	}
	if _, _, err := s.Get(ctx, "Bad Name"); !errors.As(err, &ve) {
		t.Errorf("Get(bad name): %v, want a ValidationError", err)
	}
	for _, name := range []string{RootPolicyName, DefaultPolicyName} {
		if err := s.Delete(ctx, name); !errors.Is(err, ErrBuiltin) {
			t.Errorf("Delete(%s): %v, want ErrBuiltin", name, err)
		}
	}
	if err := s.Delete(ctx, "missing"); err != nil {
		t.Errorf("Delete(missing): %v", err)
	}

	// Storage failures are errors, never "not found" or an empty ACL.
	boom := errors.New("disk on fire")
	b.SetFault(inmem.MethodGet, boom)
	if _, _, err := s.Get(ctx, "p"); !errors.Is(err, boom) || errors.Is(err, ErrNotFound) {
		t.Errorf("Get with storage down: %v", err)
	}
	if _, err := s.ACL(ctx, []string{"p"}); !errors.Is(err, boom) {
		t.Errorf("ACL with storage down: %v", err)
	}
	b.SetFault(inmem.MethodPut, boom)
	if _, err := s.Put(ctx, "p", []byte("rules: [{path: a, capabilities: [read]}]")); !errors.Is(err, boom) {
		t.Errorf("Put with storage down: %v", err)
	}
	b.SetFault(inmem.MethodList, boom)
	if _, err := s.List(ctx); !errors.Is(err, boom) {
		t.Errorf("List with storage down: %v", err)
	}
	b.ClearFaults()

	// A stored record that is not ours fails, and fails ACL.
	if err := b.Put(ctx, StoragePrefix+"junk", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ACL(ctx, []string{"junk"}); err == nil {
		t.Error("ACL with a corrupt stored policy: no error")
	}
}

func TestStoreBuiltins(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newTestStore(t)

	p, doc, err := s.Get(ctx, RootPolicyName)
	if err != nil || !p.IsRoot() || doc != nil {
		t.Errorf("Get(root) = %+v, %q, %v", p, doc, err)
	}
	p, doc, err = s.Get(ctx, DefaultPolicyName)
	if err != nil || !p.Equal(DefaultPolicy()) || string(doc) != DefaultPolicyDocument {
		t.Errorf("Get(default) = %+v, %q, %v", p, doc, err)
	}
	names, err := s.List(ctx)
	if err != nil || !reflect.DeepEqual(names, []string{"default", "root"}) {
		t.Errorf("List = %q, %v", names, err)
	}

	// A stored default replaces the built-in one, for Get and for ACLs.
	custom := "rules: [{path: secrets/common/*, capabilities: [read]}]"
	if _, err := s.Put(ctx, DefaultPolicyName, []byte(custom)); err != nil {
		t.Fatal(err)
	}
	if _, doc, _ := s.Get(ctx, DefaultPolicyName); string(doc) != custom {
		t.Errorf("Get(default) after Put = %q", doc)
	}
	acl, err := s.ACL(ctx, []string{DefaultPolicyName})
	if err != nil {
		t.Fatal(err)
	}
	if !acl.Evaluate(Request{Path: "secrets/common/x", Capability: Read}).Allowed ||
		acl.Evaluate(Request{Path: "auth/token/lookup-self", Capability: Read}).Allowed {
		t.Error("the stored default policy did not replace the built-in one")
	}
	if _, err := s.Put(ctx, "app", []byte(custom)); err != nil {
		t.Fatal(err)
	}
	names, err = s.List(ctx)
	if err != nil || !reflect.DeepEqual(names, []string{"app", "default", "root"}) {
		t.Errorf("List = %q, %v", names, err)
	}
}

func TestStoreACLCache(t *testing.T) {
	ctx := context.Background()
	s, _, cs := newTestStore(t)
	if _, err := s.Put(ctx, "app", []byte("rules: [{path: secrets/app/*, capabilities: [read]}]")); err != nil {
		t.Fatal(err)
	}
	read := Request{Path: "secrets/app/db", Capability: Read}
	update := Request{Path: "secrets/app/db", Capability: Update}

	a1, err := s.ACL(ctx, []string{"app", "default", "gone"})
	if err != nil {
		t.Fatal(err)
	}
	if !a1.Evaluate(read).Allowed || a1.Evaluate(update).Allowed {
		t.Fatal("first ACL decides wrong")
	}
	if got := a1.Policies(); !reflect.DeepEqual(got, []string{"app", "default"}) {
		t.Errorf("policies = %q; the unknown name should be ignored", got)
	}

	// The same set, in another order and with repeats, is a cache hit: no
	// storage read, the same ACL.
	gets := cs.gets.Load()
	a2, err := s.ACL(ctx, []string{"gone", "default", "app", "app"})
	if err != nil {
		t.Fatal(err)
	}
	if a2 != a1 || cs.gets.Load() != gets {
		t.Errorf("second ACL call: same ACL %v, storage reads %d", a2 == a1, cs.gets.Load()-gets)
	}
	// Another set shares the parsed policies.
	if _, err := s.ACL(ctx, []string{"app"}); err != nil {
		t.Fatal(err)
	}
	if cs.gets.Load() != gets {
		t.Errorf("a new set re-read cached policies: %d reads", cs.gets.Load()-gets)
	}

	// A Put is visible to the next ACL call.
	if _, err := s.Put(ctx, "app", []byte("rules: [{path: secrets/app/*, capabilities: [read, update]}]")); err != nil {
		t.Fatal(err)
	}
	a3, err := s.ACL(ctx, []string{"app", "default", "gone"})
	if err != nil {
		t.Fatal(err)
	}
	if a3 == a1 || !a3.Evaluate(update).Allowed {
		t.Error("ACL after Put does not see the new policy")
	}

	// So is a Put of a policy that did not exist when the ACL was cached.
	if _, err := s.Put(ctx, "gone", []byte("rules: [{path: secrets/app/db, capabilities: [deny]}]")); err != nil {
		t.Fatal(err)
	}
	a4, err := s.ACL(ctx, []string{"app", "default", "gone"})
	if err != nil {
		t.Fatal(err)
	}
	if d := a4.Evaluate(read); d.Allowed || d.Policy != "gone" {
		t.Errorf("after creating a denying policy: %+v", d)
	}

	// And a Delete.
	if err := s.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	a5, err := s.ACL(ctx, []string{"app", "default", "gone"})
	if err != nil {
		t.Fatal(err)
	}
	if !a5.Evaluate(read).Allowed {
		t.Error("after Delete the deleted policy still denies")
	}

	// Root makes the ACL root.
	a6, err := s.ACL(ctx, []string{"app", RootPolicyName})
	if err != nil || !a6.IsRoot() {
		t.Errorf("ACL with root: %v, %v", a6, err)
	}
}

func TestStoreInvalidate(t *testing.T) {
	// Another server wrote to the shared storage: Invalidate makes it seen.
	ctx := context.Background()
	b := inmem.New()
	s1, s2 := NewStore(b), NewStore(b)
	if _, err := s1.Put(ctx, "p", []byte("rules: [{path: a, capabilities: [read]}]")); err != nil {
		t.Fatal(err)
	}
	if a, err := s2.ACL(ctx, []string{"p"}); err != nil || !a.Evaluate(Request{Path: "a", Capability: Read}).Allowed {
		t.Fatalf("s2 ACL: %v", err)
	}
	if _, err := s1.Put(ctx, "p", []byte("rules: [{path: a, capabilities: [deny]}]")); err != nil {
		t.Fatal(err)
	}
	a, _ := s2.ACL(ctx, []string{"p"})
	if !a.Evaluate(Request{Path: "a", Capability: Read}).Allowed {
		t.Fatal("s2 saw the change without Invalidate: the test does not exercise its cache")
	}
	s2.Invalidate()
	a, _ = s2.ACL(ctx, []string{"p"})
	if a.Evaluate(Request{Path: "a", Capability: Read}).Allowed {
		t.Error("after Invalidate, s2 still allows")
	}
}

func TestStoreKeepsUnknownZones(t *testing.T) {
	// A policy stored (by another server, or before a time zone database
	// change) with a zone this server cannot load: it still loads, and its
	// conditions deny.
	ctx := context.Background()
	s, b, _ := newTestStore(t)
	doc := "rules: [{path: s, capabilities: [read], conditions: {days_of_week: [mon], time_zone: Mars/Base}}]"
	raw, err := json.Marshal(record{Name: "mars", Format: FormatYAML, Document: []byte(doc)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, StoragePrefix+"mars", raw); err != nil {
		t.Fatal(err)
	}
	if _, d, err := s.Get(ctx, "mars"); err != nil || string(d) != doc {
		t.Fatalf("Get(mars) = %q, %v", d, err)
	}
	a, err := s.ACL(ctx, []string{"mars"})
	if err != nil {
		t.Fatal(err)
	}
	d := a.Evaluate(Request{Path: "s", Capability: Read, Time: noon})
	if d.Allowed || d.FailedCondition != CondDaysOfWeek {
		t.Errorf("Evaluate = %+v, want denied on days_of_week", d)
	}
}

func TestStoreConcurrent(t *testing.T) {
	// Evaluations race with writes; run with -race. Every ACL any reader
	// gets is one of the two versions of the policy, never a mix.
	ctx := context.Background()
	s, _, _ := newTestStore(t)
	docs := []string{
		"rules: [{path: secrets/a, capabilities: [read]}, {path: secrets/b, capabilities: [deny]}]",
		"rules: [{path: secrets/a, capabilities: [deny]}, {path: secrets/b, capabilities: [read]}]",
	}
	if _, err := s.Put(ctx, "p", []byte(docs[0])); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for r := range 4 {
		wg.Go(func() {
			for i := range 300 {
				a, err := s.ACL(ctx, []string{"p", "default", fmt.Sprint("x", (r+i)%3)})
				if err != nil {
					errs <- err
					return
				}
				da := a.Evaluate(Request{Path: "secrets/a", Capability: Read})
				db := a.Evaluate(Request{Path: "secrets/b", Capability: Read})
				if da.Allowed == db.Allowed {
					errs <- fmt.Errorf("an ACL allows a=%v and b=%v", da.Allowed, db.Allowed)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			if _, err := s.Put(ctx, "p", []byte(docs[i%2])); err != nil {
				errs <- err
				return
			}
			if i%10 == 0 {
				if err := s.Delete(ctx, "unrelated"); err != nil {
					errs <- err
					return
				}
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// After the writers stop, the next ACL call sees the last write.
	if _, err := s.Put(ctx, "p", []byte(docs[1])); err != nil {
		t.Fatal(err)
	}
	a, err := s.ACL(ctx, []string{"p", "default", "x0"})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Evaluate(Request{Path: "secrets/b", Capability: Read}).Allowed {
		t.Error("the last Put is not visible")
	}
}

func TestDocumentFormat(t *testing.T) {
	for doc, want := range map[string]string{
		`{"rules": []}`:    FormatJSON,
		"\n\t {\"a\":1}":   FormatJSON,
		"\ufeff{}":         FormatJSON,
		"rules: []":        FormatYAML,
		"# c\n{}":          FormatYAML,
		"":                 FormatYAML,
		"- {path: a}\n":    FormatYAML,
		"---\nrules: []\n": FormatYAML,
	} {
		if got := DocumentFormat([]byte(doc)); got != want {
			t.Errorf("DocumentFormat(%q) = %s, want %s", doc, got, want)
		}
	}
}
