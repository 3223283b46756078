package barrier_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/secrethub/secrethub/core/barrier"
	"github.com/secrethub/secrethub/core/storage"
	"github.com/secrethub/secrethub/core/storage/inmem"
)

func newRootKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, barrier.KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// unsealed returns an initialized, unsealed barrier, its backend and root
// key.
func unsealed(t testing.TB) (*barrier.Barrier, *inmem.Backend, []byte) {
	t.Helper()
	ctx := context.Background()
	be := inmem.New()
	b := barrier.New(be, barrier.Options{})
	root := newRootKey(t)
	if err := b.Initialize(ctx, root, nil, nil); err != nil {
		t.Fatalf("Initialize: %v", err)
	}
	if !b.Sealed() {
		t.Fatal("barrier unsealed after Initialize; want sealed")
	}
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatalf("Unseal: %v", err)
	}
	return b, be, root
}

func TestRoundTripAndPlaintextNeverStored(t *testing.T) {
	ctx := context.Background()
	b, be, _ := unsealed(t)
	values := map[string][]byte{
		"secret/a":     []byte("correct horse battery staple"),
		"secret/empty": {},
		"secret/bin":   {0, 0xff, 0, 1},
	}
	for k, v := range values {
		if err := b.Put(ctx, k, v); err != nil {
			t.Fatalf("Put %s: %v", k, err)
		}
	}
	for k, v := range values {
		got, err := b.Get(ctx, k)
		if err != nil {
			t.Fatalf("Get %s: %v", k, err)
		}
		if !bytes.Equal(got, v) {
			t.Errorf("Get %s = %q, want %q", k, got, v)
		}
		raw, err := be.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if len(v) > 0 && bytes.Contains(raw, v) {
			t.Errorf("plaintext of %s found in storage", k)
		}
	}
	if _, err := b.Get(ctx, "secret/missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get missing: %v, want ErrNotFound", err)
	}
	// Two writes of the same value differ: fresh nonce each time.
	_ = b.Put(ctx, "n/1", []byte("same"))
	_ = b.Put(ctx, "n/2", []byte("same"))
	r1, _ := be.Get(ctx, "n/1")
	r2, _ := be.Get(ctx, "n/2")
	if bytes.Equal(r1[5:17], r2[5:17]) {
		t.Error("two writes used the same nonce")
	}
}

func TestTamperedMovedTruncatedValuesFail(t *testing.T) {
	ctx := context.Background()
	b, be, _ := unsealed(t)
	if err := b.Put(ctx, "secret/a", []byte("value-a")); err != nil {
		t.Fatal(err)
	}
	raw, _ := be.Get(ctx, "secret/a")

	cases := map[string]struct {
		key   string
		value []byte
	}{
		"moved to another path":  {"secret/b", raw},
		"version byte changed":   {"secret/a", flip(raw, 0)},
		"term changed":           {"secret/a", flip(raw, 4)},
		"nonce changed":          {"secret/a", flip(raw, 8)},
		"ciphertext changed":     {"secret/a", flip(raw, 18)},
		"tag changed":            {"secret/a", flip(raw, len(raw)-1)},
		"truncated to header":    {"secret/a", raw[:5]},
		"truncated by one byte":  {"secret/a", raw[:len(raw)-1]},
		"empty":                  {"secret/a", []byte{}},
		"extended by one byte":   {"secret/a", append(bytes.Clone(raw), 0)},
		"unknown term, same key": {"secret/a", withTerm(raw, 9)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if err := be.Put(ctx, tc.key, tc.value); err != nil {
				t.Fatal(err)
			}
			got, err := b.Get(ctx, tc.key)
			if !errors.Is(err, barrier.ErrCorrupt) {
				t.Fatalf("Get = %q, %v; want ErrCorrupt", got, err)
			}
			if got != nil {
				t.Fatalf("Get returned data %q with the error", got)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0x01
	return out
}

func withTerm(b []byte, term uint32) []byte {
	out := bytes.Clone(b)
	binary.BigEndian.PutUint32(out[1:5], term)
	return out
}

func termOf(t *testing.T, be storage.Backend, key string) uint32 {
	t.Helper()
	raw, err := be.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return binary.BigEndian.Uint32(raw[1:5])
}

func TestRotateKeepsOldValuesReadable(t *testing.T) {
	ctx := context.Background()
	b, be, root := unsealed(t)
	if err := b.Put(ctx, "old", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	st, err := b.Rotate(ctx)
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if st.Term != 2 || st.Terms != 2 {
		t.Fatalf("after Rotate: %+v, want term 2 of 2", st)
	}
	if err := b.Put(ctx, "new", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if got := termOf(t, be, "old"); got != 1 {
		t.Errorf("old value term %d, want 1", got)
	}
	if got := termOf(t, be, "new"); got != 2 {
		t.Errorf("new value term %d, want 2", got)
	}

	// A fresh barrier over the same storage (a restart) reads both.
	b2 := barrier.New(be, barrier.Options{})
	if err := b2.Unseal(ctx, root); err != nil {
		t.Fatalf("Unseal after restart: %v", err)
	}
	for k, want := range map[string]string{"old": "v1", "new": "v2"} {
		got, err := b2.Get(ctx, k)
		if err != nil || string(got) != want {
			t.Errorf("after restart Get %s = %q, %v; want %q", k, got, err, want)
		}
	}
	ks, err := b2.KeyStatus()
	if err != nil || ks.Term != 2 {
		t.Errorf("KeyStatus after restart = %+v, %v; want term 2", ks, err)
	}
}

func TestSealedRefusesEverything(t *testing.T) {
	ctx := context.Background()
	b, _, root := unsealed(t)
	if err := b.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	b.Seal()
	if !b.Sealed() {
		t.Fatal("Sealed() = false after Seal")
	}
	calls := map[string]func() error{
		"Get":       func() error { _, err := b.Get(ctx, "k"); return err },
		"Put":       func() error { return b.Put(ctx, "k", []byte("x")) },
		"Delete":    func() error { return b.Delete(ctx, "k") },
		"List":      func() error { _, err := b.List(ctx, ""); return err },
		"Txn":       func() error { return b.Txn(ctx, []storage.Op{storage.PutOp("k", nil)}) },
		"Rotate":    func() error { _, err := b.Rotate(ctx); return err },
		"KeyStatus": func() error { _, err := b.KeyStatus(); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, barrier.ErrSealed) {
			t.Errorf("%s while sealed: %v, want ErrSealed", name, err)
		}
	}
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Errorf("Get after reseal/unseal = %q, %v", got, err)
	}
}

func TestUnsealErrors(t *testing.T) {
	ctx := context.Background()
	be := inmem.New()
	b := barrier.New(be, barrier.Options{})
	if err := b.Unseal(ctx, newRootKey(t)); !errors.Is(err, barrier.ErrNotInitialized) {
		t.Errorf("Unseal uninitialized: %v, want ErrNotInitialized", err)
	}
	root := newRootKey(t)
	if err := b.Initialize(ctx, root, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Initialize(ctx, root, nil, nil); !errors.Is(err, barrier.ErrAlreadyInitialized) {
		t.Errorf("second Initialize: %v, want ErrAlreadyInitialized", err)
	}
	for name, key := range map[string][]byte{
		"other key":  newRootKey(t),
		"short key":  root[:16],
		"empty key":  nil,
		"key + byte": append(bytes.Clone(root), 1),
	} {
		if err := b.Unseal(ctx, key); !errors.Is(err, barrier.ErrBadRootKey) {
			t.Errorf("Unseal with %s: %v, want ErrBadRootKey", name, err)
		}
		if !b.Sealed() {
			t.Errorf("barrier unsealed by %s", name)
		}
	}
	// A tampered keyring does not open either.
	raw, _ := be.Get(ctx, barrier.KeyringPath)
	_ = be.Put(ctx, barrier.KeyringPath, flip(raw, len(raw)-3))
	if err := b.Unseal(ctx, root); !errors.Is(err, barrier.ErrBadRootKey) {
		t.Errorf("Unseal of tampered keyring: %v, want ErrBadRootKey", err)
	}
}

func TestInitializeStoresSealedOpsAtomically(t *testing.T) {
	ctx := context.Background()
	be := inmem.New()
	b := barrier.New(be, barrier.Options{})
	root := newRootKey(t)
	plain := []storage.Op{storage.PutOp("core/plain", []byte("p"))}
	sealed := []storage.Op{storage.PutOp("core/sealed", []byte("s3cr3t"))}

	be.SetFault(inmem.MethodTxn, errors.New("disk full"))
	if err := b.Initialize(ctx, root, plain, sealed); err == nil {
		t.Fatal("Initialize succeeded with a failing Txn")
	}
	be.SetFault(inmem.MethodTxn, nil)
	if ok, err := b.Initialized(ctx); err != nil || ok {
		t.Fatalf("after failed Initialize: Initialized = %v, %v; want false", ok, err)
	}

	if err := b.Initialize(ctx, root, plain, sealed); err != nil {
		t.Fatal(err)
	}
	if raw, _ := be.Get(ctx, "core/plain"); string(raw) != "p" {
		t.Errorf("plain op stored as %q", raw)
	}
	if raw, _ := be.Get(ctx, "core/sealed"); bytes.Contains(raw, []byte("s3cr3t")) {
		t.Error("sealed op stored in plaintext")
	}
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "core/sealed"); err != nil || string(got) != "s3cr3t" {
		t.Errorf("sealed op reads %q, %v", got, err)
	}
}

func TestKeyringPathReserved(t *testing.T) {
	ctx := context.Background()
	b, _, _ := unsealed(t)
	if _, err := b.Get(ctx, barrier.KeyringPath); !errors.Is(err, barrier.ErrReservedPath) {
		t.Errorf("Get keyring: %v", err)
	}
	if err := b.Put(ctx, barrier.KeyringPath, []byte("x")); !errors.Is(err, barrier.ErrReservedPath) {
		t.Errorf("Put keyring: %v", err)
	}
	if err := b.Txn(ctx, []storage.Op{storage.DeleteOp(barrier.KeyringPath)}); !errors.Is(err, barrier.ErrReservedPath) {
		t.Errorf("Txn delete keyring: %v", err)
	}
}

func TestTxnEncryptsAndStorageErrorsSurface(t *testing.T) {
	ctx := context.Background()
	b, be, _ := unsealed(t)
	err := b.Txn(ctx, []storage.Op{
		storage.PutOp("t/a", []byte("alpha")),
		storage.PutOp("t/b", []byte("beta")),
		storage.DeleteOp("t/a"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "t/a"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("t/a after delete: %v", err)
	}
	if got, _ := b.Get(ctx, "t/b"); string(got) != "beta" {
		t.Errorf("t/b = %q", got)
	}
	if names, err := b.List(ctx, "t/"); err != nil || len(names) != 1 || names[0] != "b" {
		t.Errorf("List t/ = %v, %v", names, err)
	}
	boom := errors.New("connection reset")
	be.SetFault(inmem.MethodGet, boom)
	if _, err := b.Get(ctx, "t/b"); !errors.Is(err, boom) || errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get with failing storage: %v, want the storage error", err)
	}
}
