package cache_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/agent/cache"
	"github.com/secrethub/secrethub/agent/render"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestTTL(t *testing.T) {
	clk := newClock()
	c := cache.New(cache.Options{TTL: time.Minute, Now: clk.Now})
	put := clk.Now()
	c.Put("secrets/a", map[string]any{"k": "v"})

	steps := []struct {
		advance   time.Duration
		wantFresh bool
	}{
		{0, true},
		{59 * time.Second, true},
		{time.Second, false}, // exactly TTL old: stale
		{time.Hour, false},   // long stale: still served
	}
	for i, s := range steps {
		clk.Add(s.advance)
		data, fetchedAt, fresh, ok := c.Get("secrets/a")
		if !ok {
			t.Fatalf("step %d: entry gone", i)
		}
		if fresh != s.wantFresh {
			t.Errorf("step %d (age %v): fresh = %v, want %v", i, clk.Now().Sub(put), fresh, s.wantFresh)
		}
		if !fetchedAt.Equal(put) {
			t.Errorf("step %d: fetchedAt = %v, want %v", i, fetchedAt, put)
		}
		if data["k"] != "v" {
			t.Errorf("step %d: data = %v", i, data)
		}
	}

	// A new Put makes it fresh again.
	c.Put("secrets/a", map[string]any{"k": "v2"})
	if data, _, fresh, _ := c.Get("secrets/a"); !fresh || data["k"] != "v2" {
		t.Fatalf("after Put: fresh=%v data=%v", fresh, data)
	}

	st := c.Stats()
	want := cache.Stats{Entries: 1, Hits: 3, StaleHits: 2}
	if st != want {
		t.Fatalf("Stats = %+v, want %+v", st, want)
	}
}

func TestLRU(t *testing.T) {
	c := cache.New(cache.Options{MaxEntries: 3})
	for _, p := range []string{"a", "b", "c"} {
		c.Put(p, map[string]any{"p": p})
	}
	c.Get("a") // a is now most recently used; b is the oldest
	c.Put("d", map[string]any{"p": "d"})

	if _, _, _, ok := c.Get("b"); ok {
		t.Error("b survived; the least recently used entry must be evicted")
	}
	for _, p := range []string{"a", "c", "d"} {
		if data, _, _, ok := c.Get(p); !ok || data["p"] != p {
			t.Errorf("%s: ok=%v data=%v", p, ok, data)
		}
	}
	if got := c.Paths(); !reflect.DeepEqual(got, []string{"a", "c", "d"}) {
		t.Errorf("Paths = %q", got)
	}
	st := c.Stats()
	if st.Entries != 3 || st.Evictions != 1 || st.Misses != 1 {
		t.Errorf("Stats = %+v", st)
	}

	// Many more puts never exceed the bound.
	for i := range 100 {
		c.Put(fmt.Sprint("x", i), map[string]any{})
	}
	if n := c.Stats().Entries; n != 3 {
		t.Errorf("Entries = %d, want 3", n)
	}
}

func TestInvalidate(t *testing.T) {
	c := cache.New(cache.Options{})
	c.Put("a", map[string]any{"k": "v"})
	c.Invalidate("a")
	c.Invalidate("never-there")
	if _, _, _, ok := c.Get("a"); ok {
		t.Fatal("invalidated entry still served")
	}
	if st := c.Stats(); st.Entries != 0 || st.Evictions != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestIsolation(t *testing.T) {
	c := cache.New(cache.Options{})
	in := map[string]any{"list": []any{"a"}, "nested": map[string]any{"k": "v"}}
	c.Put("p", in)
	in["list"].([]any)[0] = "changed"
	in["nested"].(map[string]any)["k"] = "changed"
	in["new"] = 1

	out, _, _, _ := c.Get("p")
	want := map[string]any{"list": []any{"a"}, "nested": map[string]any{"k": "v"}}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("caller's later writes reached the cache: %v", out)
	}
	out["nested"].(map[string]any)["k"] = "changed"
	if again, _, _, _ := c.Get("p"); !reflect.DeepEqual(again, want) {
		t.Fatalf("a reader's writes reached the cache: %v", again)
	}
}

func TestFetcher(t *testing.T) {
	clk := newClock()
	c := cache.New(cache.Options{TTL: time.Second, Now: clk.Now})
	c.Put("secrets/db", map[string]any{"password": "pw"})
	clk.Add(time.Hour) // stale entries still render

	tmpl, err := render.Compile("t", `{{ (secret "secrets/db").password }}`, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := tmpl.Render(context.Background(), c)
	if err != nil || string(out) != "pw" {
		t.Fatalf("Render = %q, %v", out, err)
	}
	if _, err := c.Secret(context.Background(), "secrets/none"); !errors.Is(err, render.ErrNotFound) {
		t.Fatalf("miss: err = %v, want render.ErrNotFound", err)
	}
}

func TestConcurrent(t *testing.T) {
	clk := newClock()
	c := cache.New(cache.Options{MaxEntries: 16, TTL: time.Second, Now: clk.Now})
	dir := t.TempDir()
	key := bytes.Repeat([]byte{7}, cache.KeySize)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				p := fmt.Sprint("secrets/", (g*7+i)%32)
				switch i % 6 {
				case 0:
					c.Put(p, map[string]any{"i": i, "l": []any{"x"}})
				case 1:
					if data, _, _, ok := c.Get(p); ok {
						data["mutated"] = true // a reader's copy is its own
					}
				case 2:
					c.Invalidate(p)
				case 3:
					_ = c.Stats()
					clk.Add(time.Millisecond)
				case 4:
					_, _ = c.Secret(context.Background(), p)
				case 5:
					if i%30 == 5 {
						if err := c.Save(filepath.Join(dir, fmt.Sprint("c", g)), key); err != nil {
							t.Error(err)
						}
					}
				}
			}
		})
	}
	wg.Wait()
	if n := c.Stats().Entries; n > 16 {
		t.Fatalf("Entries = %d > MaxEntries 16", n)
	}
	for _, p := range c.Paths() {
		if data, _, _, _ := c.Get(p); data["mutated"] != nil {
			t.Fatalf("%s: a reader's write reached the cache", p)
		}
	}
}

func testKey(t *testing.T) []byte {
	t.Helper()
	pk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	return cache.DeriveKey(der)
}

func filled(clk *clock) *cache.Cache {
	c := cache.New(cache.Options{MaxEntries: 10, TTL: time.Minute, Now: clk.Now})
	c.Put("secrets/old", map[string]any{"v": "old"})
	clk.Add(2 * time.Minute)
	c.Put("secrets/db", map[string]any{"password": "s3cr3t", "port": 5432.0, "hosts": []any{"a", "b"}, "nested": map[string]any{"x": true}})
	c.Put("secrets/empty", map[string]any{})
	return c
}

func TestSaveLoad(t *testing.T) {
	clk := newClock()
	src := filled(clk)
	key := testKey(t)
	path := filepath.Join(t.TempDir(), "cache.bin")
	if err := src.Save(path, key); err != nil {
		t.Fatal(err)
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("s3cr3t")) || bytes.Contains(raw, []byte("secrets/db")) {
		t.Error("file holds plaintext")
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".cache.bin.tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left: %q", left)
	}

	// A restarted agent: same private key, new cache, same clock.
	dst := cache.New(cache.Options{MaxEntries: 10, TTL: time.Minute, Now: clk.Now})
	if err := dst.Load(path, key); err != nil {
		t.Fatal(err)
	}
	if got := dst.Paths(); !reflect.DeepEqual(got, src.Paths()) {
		t.Fatalf("Paths = %q, want %q", got, src.Paths())
	}
	for _, p := range src.Paths() {
		wd, wt, wf, _ := src.Get(p)
		gd, gt, gf, ok := dst.Get(p)
		if !ok || !reflect.DeepEqual(gd, wd) || !gt.Equal(wt) || gf != wf {
			t.Errorf("%s: got %v %v fresh=%v, want %v %v fresh=%v", p, gd, gt, gf, wd, wt, wf)
		}
	}
	if _, _, fresh, _ := dst.Get("secrets/old"); fresh {
		t.Error("an entry stale when saved came back fresh")
	}

	// Recency survives: with room for one more, the oldest saved entry
	// (secrets/old) is the first to go.
	small := cache.New(cache.Options{MaxEntries: 2, Now: clk.Now})
	if err := small.Load(path, key); err != nil {
		t.Fatal(err)
	}
	if got := small.Paths(); !reflect.DeepEqual(got, []string{"secrets/db", "secrets/empty"}) {
		t.Errorf("bounded load kept %q", got)
	}

	// Saving again replaces the file (rename over it) and keeps 0600.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := dst.Save(path, key); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after resave = %v", fi.Mode().Perm())
	}
}

// TestExtraSavedWithEntries: documents kept with SetExtra are saved and
// loaded in the same file as the entries, sealed like them.
func TestExtraSavedWithEntries(t *testing.T) {
	clk := newClock()
	src := filled(clk)
	src.SetExtra("leases", json.RawMessage(`{"database/creds/app":{"id":"lease-s3cr3t"}}`))
	src.SetExtra("gone", json.RawMessage(`1`))
	src.SetExtra("gone", nil)
	key := testKey(t)
	path := filepath.Join(t.TempDir(), "cache.bin")
	if err := src.Save(path, key); err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile(path); bytes.Contains(raw, []byte("lease-s3cr3t")) {
		t.Error("file holds the extra document in plaintext")
	}
	dst := cache.New(cache.Options{MaxEntries: 10, TTL: time.Minute, Now: clk.Now})
	if _, ok := dst.Extra("leases"); ok {
		t.Fatal("a new cache has an extra document")
	}
	if err := dst.Load(path, key); err != nil {
		t.Fatal(err)
	}
	got, ok := dst.Extra("leases")
	if !ok || string(got) != `{"database/creds/app":{"id":"lease-s3cr3t"}}` {
		t.Errorf("Extra(leases) = %s, %v", got, ok)
	}
	if _, ok := dst.Extra("gone"); ok {
		t.Error("a removed extra document was saved")
	}
	if len(dst.Paths()) != len(src.Paths()) {
		t.Errorf("entries = %q, want %q", dst.Paths(), src.Paths())
	}
}

func TestLoadKeepsNewer(t *testing.T) {
	clk := newClock()
	key := testKey(t)
	path := filepath.Join(t.TempDir(), "c")
	c := cache.New(cache.Options{Now: clk.Now})
	c.Put("a", map[string]any{"v": "saved"})
	c.Put("b", map[string]any{"v": "saved"})
	if err := c.Save(path, key); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	c.Put("a", map[string]any{"v": "newer"})
	if err := c.Load(path, key); err != nil {
		t.Fatal(err)
	}
	if d, _, _, _ := c.Get("a"); d["v"] != "newer" {
		t.Errorf("Load replaced a newer entry: %v", d)
	}
	c.Invalidate("b")
	if err := c.Load(path, key); err != nil {
		t.Fatal(err)
	}
	if d, _, _, _ := c.Get("b"); d["v"] != "saved" {
		t.Errorf("Load did not restore b: %v", d)
	}
}

func TestLoadRejects(t *testing.T) {
	clk := newClock()
	key := testKey(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "cache.bin")
	if err := filled(clk).Save(good, key); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(raw)
		b[i] ^= 0x01
		return b
	}

	cases := map[string]struct {
		file  []byte // written to the path; nil: use the good file
		name  string // file name; default cache.bin
		key   []byte
		errIs error
	}{
		"wrong key":          {key: cache.DeriveKey([]byte("another agent")), errIs: cache.ErrCorrupt},
		"short key":          {key: key[:16], errIs: cache.ErrKeySize},
		"nil key":            {key: cache.DeriveKey(nil), errIs: cache.ErrKeySize},
		"flipped ciphertext": {file: flip(len(raw) / 2), key: key, errIs: cache.ErrCorrupt},
		"flipped nonce":      {file: flip(1), key: key, errIs: cache.ErrCorrupt},
		"flipped tag":        {file: flip(len(raw) - 1), key: key, errIs: cache.ErrCorrupt},
		"flipped version":    {file: flip(0), key: key, errIs: cache.ErrVersion},
		"truncated":          {file: raw[:len(raw)-1], key: key, errIs: cache.ErrCorrupt},
		"truncated header":   {file: raw[:10], key: key, errIs: cache.ErrCorrupt},
		"empty":              {file: []byte{}, key: key, errIs: cache.ErrCorrupt},
		"renamed":            {file: raw, name: "other.bin", key: key, errIs: cache.ErrCorrupt},
		"missing":            {name: "absent.bin", key: key, errIs: fs.ErrNotExist},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			path := good
			if tc.name != "" {
				path = filepath.Join(dir, tc.name)
			}
			if tc.file != nil {
				path = filepath.Join(t.TempDir(), filepath.Base(path))
				if err := os.WriteFile(path, tc.file, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c := cache.New(cache.Options{Now: clk.Now})
			c.Put("kept", map[string]any{"v": "1"})
			err := c.Load(path, tc.key)
			if !errors.Is(err, tc.errIs) {
				t.Fatalf("Load err = %v, want %v", err, tc.errIs)
			}
			if got := c.Paths(); !reflect.DeepEqual(got, []string{"kept"}) {
				t.Fatalf("after a failed Load the cache holds %q", got)
			}
		})
	}
}

func TestSaveErrors(t *testing.T) {
	c := cache.New(cache.Options{})
	c.Put("a", map[string]any{"v": "1"})
	dir := t.TempDir()
	if err := c.Save(filepath.Join(dir, "c"), make([]byte, 31)); !errors.Is(err, cache.ErrKeySize) {
		t.Errorf("short key: %v", err)
	}
	key := make([]byte, cache.KeySize)
	if err := c.Save(filepath.Join(dir, "missing-dir", "c"), key); err == nil {
		t.Error("save into a missing directory succeeded")
	}
	c.Put("bad", map[string]any{"f": func() {}})
	if err := c.Save(filepath.Join(dir, "c"), key); err == nil {
		t.Error("unencodable data saved")
	}
	if _, err := os.Stat(filepath.Join(dir, "c")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed save left a file: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".c.tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left: %q", left)
	}
}

func TestSaveNonce(t *testing.T) {
	// Two saves of the same content differ (fresh nonce); a broken random
	// source fails the save rather than reusing a nonce.
	c := cache.New(cache.Options{})
	c.Put("a", map[string]any{"v": "1"})
	key := make([]byte, cache.KeySize)
	dir := t.TempDir()
	p1, p2 := filepath.Join(dir, "x"), filepath.Join(t.TempDir(), "x")
	if err := c.Save(p1, key); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(p2, key); err != nil {
		t.Fatal(err)
	}
	b1, _ := os.ReadFile(p1)
	b2, _ := os.ReadFile(p2)
	if bytes.Equal(b1, b2) {
		t.Error("two saves produced identical files")
	}

	broken := cache.New(cache.Options{Rand: bytes.NewReader(nil)})
	if err := broken.Save(filepath.Join(dir, "y"), key); err == nil {
		t.Error("save with an empty random source succeeded")
	}
}

func TestDeriveKey(t *testing.T) {
	a1 := cache.DeriveKey([]byte("private key A"))
	a2 := cache.DeriveKey([]byte("private key A"))
	b := cache.DeriveKey([]byte("private key B"))
	if len(a1) != cache.KeySize {
		t.Fatalf("len = %d", len(a1))
	}
	if !bytes.Equal(a1, a2) {
		t.Error("same input, different keys")
	}
	if bytes.Equal(a1, b) {
		t.Error("different inputs, same key")
	}
	if bytes.Contains(a1, []byte("private")) {
		t.Error("key contains its input")
	}
	if cache.DeriveKey(nil) != nil {
		t.Error("empty input gave a key")
	}
	// Pinned: changing the derivation (hash, salt, info) would make every
	// agent's saved cache unreadable after an upgrade.
	if got := hex.EncodeToString(a1); got != "a2590aaddf57ea65189ab5f560b96176ef60fc97b4fbb69eba52d9c97580ff3e" {
		t.Errorf("DeriveKey = %s; the derivation changed", got)
	}
}

// FuzzLoad feeds Load arbitrary files, and arbitrary content sealed with the
// right key, so both the header checks and the decoding of authenticated
// content are exercised. Load must never panic, and a failed Load must leave
// the cache as it was.
func FuzzLoad(f *testing.F) {
	f.Add([]byte{1, 2, 3}, []byte(`{"entries":[{"path":"a","fetched_at":"2025-01-01T00:00:00Z","data":{"k":"v"}}]}`))
	f.Add([]byte{}, []byte(`{"entries":[{"path":"","data":null}]}`))
	f.Add(bytes.Repeat([]byte{1}, 40), []byte(`[]`))
	f.Add([]byte{}, []byte(`{"entries":[{"path":"a","data":{"x":[1,{"y":null}]}},{"path":"a","data":{}}]}`))
	key := bytes.Repeat([]byte{9}, cache.KeySize)
	f.Fuzz(func(t *testing.T, raw, plain []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "cache.bin")
		c := cache.New(cache.Options{MaxEntries: 4})
		c.Put("kept", map[string]any{"v": "1"})

		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := c.Load(path, key); err != nil && !reflect.DeepEqual(c.Paths(), []string{"kept"}) {
			t.Fatalf("failed Load changed the cache: %q", c.Paths())
		}

		block, _ := aes.NewCipher(key)
		aead, _ := cipher.NewGCM(block)
		file := append([]byte{1}, make([]byte, 12)...)
		file = aead.Seal(file, file[1:13], plain, append([]byte{1}, "cache.bin"...))
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		before := c.Paths()
		if err := c.Load(path, key); err != nil {
			if !errors.Is(err, cache.ErrCorrupt) {
				t.Fatalf("authenticated content rejected with %v, want ErrCorrupt", err)
			}
			if !reflect.DeepEqual(c.Paths(), before) {
				t.Fatalf("failed Load changed the cache: %q", c.Paths())
			}
			return
		}
		if n := c.Stats().Entries; n > 4 {
			t.Fatalf("Entries = %d > MaxEntries", n)
		}
		for _, p := range c.Paths() {
			if _, _, _, ok := c.Get(p); !ok {
				t.Fatalf("listed path %q not readable", p)
			}
		}
	})
}
