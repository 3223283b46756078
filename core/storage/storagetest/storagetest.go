// Package storagetest is the conformance suite every storage.Backend must
// pass, and the benchmarks every backend reports.
//
// A backend's test file calls Exercise with a constructor that returns a
// fresh, empty backend; each subtest gets its own. The suite closes the
// backends it is given, so a constructor must not close them itself, but it
// may register cleanups (a temporary directory, a database to drop) with
// t.Cleanup: those run after the suite's Close.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/secrethub/secrethub/core/storage"
)

// Exercise runs the conformance suite against the backends newBackend makes.
// Each subtest calls newBackend once and receives an empty backend.
func Exercise(t *testing.T, newBackend func(t *testing.T) storage.Backend) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, b storage.Backend)
	}{
		{"GetMissing", testGetMissing},
		{"RoundTrip", testRoundTrip},
		{"Overwrite", testOverwrite},
		{"Delete", testDelete},
		{"List", testList},
		{"ListInvalidPrefix", testListInvalidPrefix},
		{"TxnOrder", testTxnOrder},
		{"TxnAtomic", testTxnAtomic},
		{"InvalidKeys", testInvalidKeys},
		{"Copies", testCopies},
		{"CancelledContext", testCancelledContext},
		{"Concurrent", testConcurrent},
		{"Close", testClose},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t)
			t.Cleanup(func() {
				if err := b.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
					t.Errorf("Close: %v", err)
				}
			})
			tt.run(t, b)
		})
	}
}

// mustPut stores value under key or fails the test.
func mustPut(t *testing.T, b storage.Backend, key string, value []byte) {
	t.Helper()
	if err := b.Put(t.Context(), key, value); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

// wantValue fails the test unless key holds want.
func wantValue(t *testing.T, b storage.Backend, key string, want []byte) {
	t.Helper()
	got, err := b.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %q, want %q", key, got, want)
	}
}

// wantMissing fails the test unless key is absent.
func wantMissing(t *testing.T, b storage.Backend, key string) {
	t.Helper()
	got, err := b.Get(t.Context(), key)
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get(%q) = %q, %v; want ErrNotFound", key, got, err)
	}
}

func testGetMissing(t *testing.T, b storage.Backend) {
	wantMissing(t, b, "missing")
	wantMissing(t, b, "no/such/key")
}

// allBytes holds every byte value once, NUL and 0xff included.
func allBytes() []byte {
	v := make([]byte, 256)
	for i := range v {
		v[i] = byte(i)
	}
	return v
}

func testRoundTrip(t *testing.T, b storage.Backend) {
	tests := []struct {
		name  string
		key   string
		value []byte
	}{
		{"text", "a/b/c", []byte("hello")},
		{"empty value", "empty", []byte{}},
		{"nil value", "nil", nil},
		{"NUL and 0xff", "binary", []byte{0, 0xff, 0, 'x', 0xff, 0xfe, 0}},
		{"every byte", "every/byte", allBytes()},
		{"256 KiB", "large", bytes.Repeat([]byte{0xff, 0, 0x80}, 256<<10/3)},
		{"unicode key", "ünï/cødé/🔑", []byte("v")},
		{"LIKE specials in key", `x%_\/y`, []byte("v")},
		{"spaces and quotes", `a key/with 'quotes' and "more"`, []byte("v")},
		{"longest key", strings.Repeat("k", storage.MaxKeyLength), []byte("v")},
		{"trailing slash key", "dir/", []byte("v")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustPut(t, b, tt.key, tt.value)
			wantValue(t, b, tt.key, tt.value)
		})
	}
}

func testOverwrite(t *testing.T, b storage.Backend) {
	mustPut(t, b, "k", []byte("first"))
	mustPut(t, b, "k", []byte("second, longer"))
	wantValue(t, b, "k", []byte("second, longer"))
	mustPut(t, b, "k", []byte{})
	wantValue(t, b, "k", []byte{})
}

func testDelete(t *testing.T, b storage.Backend) {
	ctx := t.Context()
	mustPut(t, b, "k", []byte("v"))
	mustPut(t, b, "k2", []byte("v2"))
	if err := b.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantMissing(t, b, "k")
	wantValue(t, b, "k2", []byte("v2"))
	if err := b.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete of a deleted key: %v", err)
	}
	if err := b.Delete(ctx, "never/stored"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
}

// listKeys returns the tree testList lists. It mixes keys whose order in bytes
// differs from a naive reading ("a-x" < "a/" < "a0"), keys with LIKE and
// regular-expression specials, and multi-byte runes up to U+10FFFF.
func listKeys() []string {
	return []string{
		"a", "a/b", "a/c/d", "a/c/e", "a-x", "a0", "ab/c", "b",
		`x%_\k`, `x%_\sub/k`, `x%_\sub/l`,
		// These match `x%_\` read as a LIKE pattern, but do not start with it.
		`xa_\q`, `x%a\q`, `xab\q`, `x%_q`, `x%_`, `X%_\k`,
		"ü/a", "ü/b/c", "üx", "ý",
		"\U0010FFFF/a", "\U0010FFFFb", "\U0010FFFF\U0010FFFF",
		"sys/token/id/1", "sys/token/id/2", "sys/token/accessor/1", "sys/tokens",
	}
}

func testList(t *testing.T, b storage.Backend) {
	for _, k := range listKeys() {
		mustPut(t, b, k, []byte("v:"+k))
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", []string{
			"X%_\\k", "a", "a-x", "a/", "a0", "ab/", "b", "sys/",
			`x%_`, `x%_\k`, `x%_\sub/`, `x%_q`, `x%a\q`, `xa_\q`, `xab\q`,
			"ü/", "üx", "ý", "\U0010FFFF/", "\U0010FFFFb", "\U0010FFFF\U0010FFFF",
		}},
		{"a/", []string{"b", "c/"}},
		{"a/c/", []string{"d", "e"}},
		{"a", []string{"-x", "/", "0", "b/"}},
		{"ab/", []string{"c"}},
		{"a/b", nil},  // the key itself is not its own child
		{"a/b/", nil}, // a leaf is no folder
		{"nope/", nil},
		{"zzz", nil},
		{`x%_\`, []string{"k", "sub/"}},
		{`x%_\sub/`, []string{"k", "l"}},
		{`x%_`, []string{`\k`, `\sub/`, "q"}},
		{"ü", []string{"/", "x"}},
		{"ü/", []string{"a", "b/"}},
		{"\U0010FFFF", []string{"/", "b", "\U0010FFFF"}},
		{"\U0010FFFF\U0010FFFF", nil},
		{"sys/token", []string{"/", "s"}},
		{"sys/token/", []string{"accessor/", "id/"}},
		{"sys/token/id/", []string{"1", "2"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.prefix), func(t *testing.T) {
			got, err := b.List(t.Context(), tt.prefix)
			if err != nil {
				t.Fatalf("List(%q): %v", tt.prefix, err)
			}
			if len(got) == 0 && len(tt.want) == 0 {
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("List(%q)\n got %q\nwant %q", tt.prefix, got, tt.want)
			}
		})
	}
	t.Run("after delete", func(t *testing.T) {
		ctx := t.Context()
		for _, k := range []string{"a/c/d", "a/c/e"} {
			if err := b.Delete(ctx, k); err != nil {
				t.Fatalf("Delete(%q): %v", k, err)
			}
		}
		got, err := b.List(ctx, "a/")
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if want := []string{"b"}; !slices.Equal(got, want) {
			t.Fatalf("List(%q) = %q, want %q", "a/", got, want)
		}
	})
}

func testListInvalidPrefix(t *testing.T, b storage.Backend) {
	for _, prefix := range []string{"a\x00", "a\n/", "\xff", strings.Repeat("p", storage.MaxKeyLength+1)} {
		if got, err := b.List(t.Context(), prefix); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("List(%q) = %q, %v; want ErrInvalidKey", prefix, got, err)
		}
	}
}

func testTxnOrder(t *testing.T, b storage.Backend) {
	mustPut(t, b, "existing", []byte("old"))
	mustPut(t, b, "doomed", []byte("old"))
	ops := []storage.Op{
		storage.PutOp("put-then-delete", []byte("1")),
		storage.DeleteOp("put-then-delete"),
		storage.DeleteOp("delete-then-put"),
		storage.PutOp("delete-then-put", []byte("2")),
		storage.PutOp("put-twice", []byte("first")),
		storage.PutOp("put-twice", []byte("second")),
		storage.PutOp("existing", []byte("new")),
		storage.DeleteOp("doomed"),
		storage.DeleteOp("never/existed"),
		storage.PutOp("empty", nil),
	}
	if err := b.Txn(t.Context(), ops); err != nil {
		t.Fatalf("Txn: %v", err)
	}
	wantMissing(t, b, "put-then-delete")
	wantValue(t, b, "delete-then-put", []byte("2"))
	wantValue(t, b, "put-twice", []byte("second"))
	wantValue(t, b, "existing", []byte("new"))
	wantMissing(t, b, "doomed")
	wantMissing(t, b, "never/existed")
	wantValue(t, b, "empty", []byte{})

	if err := b.Txn(t.Context(), nil); err != nil {
		t.Fatalf("empty Txn: %v", err)
	}
}

func testTxnAtomic(t *testing.T, b storage.Backend) {
	mustPut(t, b, "keep", []byte("original"))
	tests := []struct {
		name string
		bad  storage.Op
		is   error // the error the Txn must satisfy; nil for any error
	}{
		{"invalid key", storage.PutOp("bad\x00key", []byte("x")), storage.ErrInvalidKey},
		{"empty key", storage.DeleteOp(""), storage.ErrInvalidKey},
		{"unknown kind", storage.Op{Kind: 99, Key: "k"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops := []storage.Op{
				storage.PutOp("new", []byte("x")),
				storage.PutOp("keep", []byte("changed")),
				storage.DeleteOp("keep"),
				tt.bad,
				storage.PutOp("after", []byte("x")),
			}
			err := b.Txn(t.Context(), ops)
			if err == nil || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Fatalf("Txn = %v, want an error satisfying %v", err, tt.is)
			}
			wantMissing(t, b, "new")
			wantMissing(t, b, "after")
			wantValue(t, b, "keep", []byte("original"))
		})
	}
}

// invalidKeys returns keys every backend must refuse, by name.
func invalidKeys() map[string]string {
	return map[string]string{
		"empty":          "",
		"NUL":            "a\x00b",
		"newline":        "a\nb",
		"tab":            "a\tb",
		"DEL":            "a\x7f",
		"invalid UTF-8":  "a\xffb",
		"truncated rune": "\xc3",
		"too long":       strings.Repeat("k", storage.MaxKeyLength+1),
	}
}

func testInvalidKeys(t *testing.T, b storage.Backend) {
	ctx := t.Context()
	for name, key := range invalidKeys() {
		t.Run(name, func(t *testing.T) {
			if v, err := b.Get(ctx, key); !errors.Is(err, storage.ErrInvalidKey) {
				t.Errorf("Get(%q) = %q, %v; want ErrInvalidKey", key, v, err)
			}
			if err := b.Put(ctx, key, []byte("v")); !errors.Is(err, storage.ErrInvalidKey) {
				t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
			}
			if err := b.Delete(ctx, key); !errors.Is(err, storage.ErrInvalidKey) {
				t.Errorf("Delete(%q) = %v, want ErrInvalidKey", key, err)
			}
		})
	}
	got, err := b.List(ctx, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(got) != 0 {
		t.Fatalf("refused Puts stored something: List = %q", got)
	}
}

func testCopies(t *testing.T, b storage.Backend) {
	ctx := t.Context()

	in := []byte("original")
	mustPut(t, b, "put", in)
	copy(in, "MUTATED!")
	wantValue(t, b, "put", []byte("original"))

	out, err := b.Get(ctx, "put")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	copy(out, "MUTATED!")
	wantValue(t, b, "put", []byte("original"))

	txnValue := []byte("original")
	if err := b.Txn(ctx, []storage.Op{storage.PutOp("txn", txnValue)}); err != nil {
		t.Fatalf("Txn: %v", err)
	}
	copy(txnValue, "MUTATED!")
	wantValue(t, b, "txn", []byte("original"))

	// Two Gets must not share memory either.
	first, err := b.Get(ctx, "txn")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	second, err := b.Get(ctx, "txn")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	copy(first, "MUTATED!")
	if string(second) != "original" {
		t.Fatalf("two Gets share memory: second = %q after mutating first", second)
	}
}

func testCancelledContext(t *testing.T, b storage.Backend) {
	mustPut(t, b, "k", []byte("v"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	calls := []struct {
		name string
		call func() error
	}{
		{"Get", func() error { _, err := b.Get(ctx, "k"); return err }},
		{"Put", func() error { return b.Put(ctx, "new", []byte("v")) }},
		{"Delete", func() error { return b.Delete(ctx, "k") }},
		{"List", func() error { _, err := b.List(ctx, ""); return err }},
		{"Txn", func() error { return b.Txn(ctx, []storage.Op{storage.PutOp("txn", []byte("v"))}) }},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v, want context.Canceled", c.name, err)
		}
	}
	// Nothing a cancelled call was asked to do happened.
	wantValue(t, b, "k", []byte("v"))
	wantMissing(t, b, "new")
	wantMissing(t, b, "txn")
}

func testConcurrent(t *testing.T, b storage.Backend) {
	const (
		workers = 16
		rounds  = 25
	)
	ctx := t.Context()
	shared := [][]byte{bytes.Repeat([]byte{'a'}, 64), bytes.Repeat([]byte{'b'}, 64)}
	mustPut(t, b, "shared", shared[0])

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			errs <- concurrentWorker(ctx, b, w, rounds, shared)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	got, err := b.List(ctx, "worker/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(got) != workers {
		t.Fatalf("List(worker/) has %d entries, want %d: %q", len(got), workers, got)
	}
}

// concurrentWorker writes and reads its own keys and races the others on a
// shared key, whose value must always be one of the values written whole.
func concurrentWorker(ctx context.Context, b storage.Backend, w, rounds int, shared [][]byte) error {
	for i := range rounds {
		key := fmt.Sprintf("worker/%02d/%03d", w, i)
		value := fmt.Appendf(nil, "value %d/%d", w, i)
		if err := b.Put(ctx, key, value); err != nil {
			return fmt.Errorf("worker %d: Put(%q): %w", w, key, err)
		}
		got, err := b.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("worker %d: Get(%q): %w", w, key, err)
		}
		if !bytes.Equal(got, value) {
			return fmt.Errorf("worker %d: Get(%q) = %q, want %q", w, key, got, value)
		}
		if err := b.Put(ctx, "shared", shared[(w+i)%2]); err != nil {
			return fmt.Errorf("worker %d: Put(shared): %w", w, err)
		}
		got, err = b.Get(ctx, "shared")
		if err != nil {
			return fmt.Errorf("worker %d: Get(shared): %w", w, err)
		}
		if !bytes.Equal(got, shared[0]) && !bytes.Equal(got, shared[1]) {
			return fmt.Errorf("worker %d: Get(shared) = %q, a torn or foreign value", w, got)
		}
		if _, err := b.List(ctx, fmt.Sprintf("worker/%02d/", w)); err != nil {
			return fmt.Errorf("worker %d: List: %w", w, err)
		}
		if i%5 == 4 {
			if err := b.Txn(ctx, []storage.Op{
				storage.PutOp(key+"/txn", value),
				storage.DeleteOp(key + "/txn"),
			}); err != nil {
				return fmt.Errorf("worker %d: Txn: %w", w, err)
			}
		}
	}
	return nil
}

func testClose(t *testing.T, b storage.Backend) {
	mustPut(t, b, "k", []byte("v"))
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := t.Context()
	calls := []struct {
		name string
		call func() error
	}{
		{"Get", func() error { _, err := b.Get(ctx, "k"); return err }},
		{"Get missing", func() error { _, err := b.Get(ctx, "missing"); return err }},
		{"Put", func() error { return b.Put(ctx, "k", []byte("v")) }},
		{"Delete", func() error { return b.Delete(ctx, "k") }},
		{"List", func() error { _, err := b.List(ctx, ""); return err }},
		{"Txn", func() error { return b.Txn(ctx, []storage.Op{storage.DeleteOp("k")}) }},
		{"Close", b.Close},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, storage.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", c.name, err)
		}
	}
}
