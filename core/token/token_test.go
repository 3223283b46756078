package token_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/storage/inmem"
	"github.com/secrethub/secrethub/core/token"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newStore(t *testing.T) (*token.Store, *inmem.Backend, *clock) {
	t.Helper()
	be := inmem.New()
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	return token.New(be, nil, clk.now), be, clk
}

func TestCreateLookupAndHashedStorage(t *testing.T) {
	ctx := context.Background()
	s, be, _ := newStore(t)
	id, e, err := s.Create(ctx, "", token.Entry{Policies: []string{"a"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(id) < 40 || id[:4] != token.Prefix {
		t.Fatalf("token id %q", id)
	}
	got, err := s.Lookup(ctx, id)
	if err != nil || got.Accessor != e.Accessor || !slices.Equal(got.Policies, []string{"a"}) {
		t.Fatalf("Lookup = %+v, %v", got, err)
	}
	if got, err := s.LookupAccessor(ctx, e.Accessor); err != nil || got.Accessor != e.Accessor {
		t.Fatalf("LookupAccessor = %+v, %v", got, err)
	}
	for _, prefix := range []string{"sys/token/id/", "sys/token/accessor/"} {
		keys, _ := be.List(ctx, prefix)
		for _, k := range keys {
			raw, _ := be.Get(ctx, prefix+k)
			if bytes.Contains(raw, []byte(id)) || bytes.Contains([]byte(k), []byte(id)) {
				t.Fatalf("plain token id stored at %s%s", prefix, k)
			}
		}
	}
	for _, bad := range []string{"", "short", id + "x", "has space in it", "../../etc"} {
		if _, err := s.Lookup(ctx, bad); !errors.Is(err, token.ErrNotFound) {
			t.Errorf("Lookup(%q): %v, want ErrNotFound", bad, err)
		}
	}
	for _, bad := range []string{"", "a/b", "nope"} {
		if _, err := s.LookupAccessor(ctx, bad); !errors.Is(err, token.ErrNotFound) {
			t.Errorf("LookupAccessor(%q): %v, want ErrNotFound", bad, err)
		}
	}
}

func TestExpiryAndRenew(t *testing.T) {
	ctx := context.Background()
	s, _, clk := newStore(t)
	cases := map[string]struct {
		entry       token.Entry
		advance     time.Duration // before renewing
		increment   time.Duration
		wantErr     error
		wantExpires time.Duration // from the clock at renewal
		wantCapped  bool
	}{
		"renew by increment":        {token.Entry{TTL: time.Hour, Renewable: true}, 30 * time.Minute, 2 * time.Hour, nil, 2 * time.Hour, false},
		"renew by creation ttl":     {token.Entry{TTL: time.Hour, Renewable: true}, 30 * time.Minute, 0, nil, time.Hour, false},
		"capped by explicit max":    {token.Entry{TTL: time.Hour, ExplicitMaxTTL: 90 * time.Minute, Renewable: true}, 30 * time.Minute, 2 * time.Hour, nil, time.Hour, true},
		"not renewable":             {token.Entry{TTL: time.Hour}, 0, time.Hour, token.ErrNotRenewable, 0, false},
		"expired cannot be renewed": {token.Entry{TTL: time.Hour, Renewable: true}, 2 * time.Hour, time.Hour, token.ErrExpired, 0, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			id, e, err := s.Create(ctx, "", tc.entry)
			if err != nil {
				t.Fatal(err)
			}
			clk.t = clk.t.Add(tc.advance)
			got, capped, err := s.Renew(ctx, e.Accessor, tc.increment)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Renew: %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if want := clk.t.Add(tc.wantExpires); !got.ExpiresAt.Equal(want) || capped != tc.wantCapped {
				t.Fatalf("expires %v capped %v, want %v %v", got.ExpiresAt, capped, want, tc.wantCapped)
			}
			if l, err := s.Lookup(ctx, id); err != nil || !l.ExpiresAt.Equal(got.ExpiresAt) {
				t.Fatalf("renewal not stored: %+v, %v", l, err)
			}
			clk.t = got.ExpiresAt
			if _, err := s.Lookup(ctx, id); !errors.Is(err, token.ErrExpired) {
				t.Fatalf("at expiry: %v, want ErrExpired", err)
			}
		})
	}
}

func TestRevokeTreeAndOrphan(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	mk := func(parent string) (string, string) {
		id, e, err := s.Create(ctx, "", token.Entry{Parent: parent})
		if err != nil {
			t.Fatal(err)
		}
		return id, e.Accessor
	}
	rootID, root := mk("")
	childID, child := mk(root)
	grandID, _ := mk(child)
	siblingID, _ := mk("")
	if _, _, err := s.Create(ctx, "", token.Entry{Parent: "missing"}); !errors.Is(err, token.ErrNotFound) {
		t.Fatalf("create with missing parent: %v", err)
	}

	revoked, err := s.Revoke(ctx, child)
	if err != nil || len(revoked) != 2 {
		t.Fatalf("Revoke child: %v %v", revoked, err)
	}
	for _, id := range []string{childID, grandID} {
		if _, err := s.Lookup(ctx, id); !errors.Is(err, token.ErrNotFound) {
			t.Errorf("revoked token still there: %v", err)
		}
	}
	for _, id := range []string{rootID, siblingID} {
		if _, err := s.Lookup(ctx, id); err != nil {
			t.Errorf("unrelated token gone: %v", err)
		}
	}
	if _, err := s.Revoke(ctx, child); !errors.Is(err, token.ErrNotFound) {
		t.Errorf("second revoke: %v", err)
	}

	// Orphan revocation keeps the children, now parentless.
	_, c2 := mk(root)
	c2child, _ := mk(c2)
	if err := s.RevokeOrphan(ctx, c2); err != nil {
		t.Fatal(err)
	}
	e, err := s.Lookup(ctx, c2child)
	if err != nil || e.Parent != "" {
		t.Fatalf("orphaned child: %+v, %v", e, err)
	}
	// The root's tree no longer reaches the orphan.
	if _, err := s.Revoke(ctx, root); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(ctx, c2child); err != nil {
		t.Fatalf("orphan revoked with its former grandparent: %v", err)
	}
	accs, err := s.Accessors(ctx)
	if err != nil || len(accs) != 2 { // sibling and the orphan
		t.Fatalf("Accessors = %v, %v", accs, err)
	}
}

func TestStorageErrorsAreNotNotFound(t *testing.T) {
	ctx := context.Background()
	s, be, _ := newStore(t)
	id, _, err := s.Create(ctx, "", token.Entry{})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("connection reset")
	be.SetFault(inmem.MethodGet, boom)
	if _, err := s.Lookup(ctx, id); !errors.Is(err, boom) || errors.Is(err, token.ErrNotFound) {
		t.Fatalf("Lookup with failing storage: %v", err)
	}
}

// TestLookupFollowsStorage looks a token up again and again while it
// changes: each lookup answers what storage holds, and what one caller
// does to its entry does not reach the next.
func TestLookupFollowsStorage(t *testing.T) {
	ctx := context.Background()
	s, be, clk := newStore(t)
	id, e, err := s.Create(ctx, "", token.Entry{Policies: []string{"a"}, Meta: map[string]string{"role": "r"},
		BoundCIDRs: []string{"10.0.0.0/8"}, TTL: time.Hour, Renewable: true})
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.Lookup(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	first.Policies[0], first.Meta["role"], first.BoundCIDRs[0] = "root", "changed", "0.0.0.0/0"
	again, err := s.Lookup(ctx, id)
	if err != nil || again.Policies[0] != "a" || again.Meta["role"] != "r" || again.BoundCIDRs[0] != "10.0.0.0/8" {
		t.Fatalf("second Lookup = %+v, %v; a caller's changes leaked into it", again, err)
	}

	clk.t = clk.t.Add(30 * time.Minute)
	renewed, _, err := s.Renew(ctx, e.Accessor, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Lookup(ctx, id); err != nil || !got.ExpiresAt.Equal(renewed.ExpiresAt) {
		t.Fatalf("Lookup after Renew = %+v, %v; want expiry %v", got, err, renewed.ExpiresAt)
	}

	// A change made behind the store's back is seen too.
	keys, err := be.List(ctx, "sys/token/id/")
	if err != nil || len(keys) != 1 {
		t.Fatalf("List = %v, %v", keys, err)
	}
	raw, err := be.Get(ctx, "sys/token/id/"+keys[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Put(ctx, "sys/token/id/"+keys[0], bytes.Replace(raw, []byte(`"a"`), []byte(`"b"`), 1)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Lookup(ctx, id); err != nil || !slices.Equal(got.Policies, []string{"b"}) {
		t.Fatalf("Lookup after a stored change = %+v, %v; want policies [b]", got, err)
	}

	if _, err := s.Revoke(ctx, e.Accessor); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(ctx, id); !errors.Is(err, token.ErrNotFound) {
		t.Fatalf("Lookup after Revoke = %v, want ErrNotFound", err)
	}
}
