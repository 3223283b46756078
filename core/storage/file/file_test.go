package file_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	berrors "go.etcd.io/bbolt/errors"

	"github.com/secrethub/secrethub/core/storage"
	"github.com/secrethub/secrethub/core/storage/file"
	"github.com/secrethub/secrethub/core/storage/storagetest"
)

func newBackend(tb testing.TB) *file.Backend {
	tb.Helper()
	b, err := file.Open(filepath.Join(tb.TempDir(), "secrethub.db"), file.Options{})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return b
}

func TestConformance(t *testing.T) {
	storagetest.Exercise(t, func(t *testing.T) storage.Backend { return newBackend(t) })
}

func BenchmarkBackend(b *testing.B) {
	storagetest.Bench(b, func(tb testing.TB) storage.Backend { return newBackend(tb) })
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secrethub.db")
	b, err := file.Open(path, file.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := b.Put(t.Context(), "a/b", []byte{0, 0xff}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	b, err = file.Open(path, file.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer b.Close()
	got, err := b.Get(t.Context(), "a/b")
	if err != nil || string(got) != "\x00\xff" {
		t.Fatalf("Get after reopen = %q, %v; want %q", got, err, "\x00\xff")
	}
}

func TestFileMode(t *testing.T) {
	b := newBackend(t)
	defer b.Close()
	fi, err := os.Stat(b.Path())
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != file.DefaultMode {
		t.Fatalf("file mode = %v, want %v", perm, file.DefaultMode)
	}
}

// TestLocked opens the same file twice. bbolt's flock is held per open file,
// so a second Open in this process stands in for a second process.
func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secrethub.db")
	first, err := file.Open(path, file.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer first.Close()

	for _, timeout := range []time.Duration{-1, 100 * time.Millisecond} {
		second, err := file.Open(path, file.Options{Timeout: timeout})
		if err == nil {
			second.Close()
			t.Fatalf("second Open (timeout %v) succeeded while the first holds the lock", timeout)
		}
		if !errors.Is(err, berrors.ErrTimeout) || !strings.Contains(err.Error(), "another process holds the database open") {
			t.Fatalf("second Open (timeout %v) = %v, want a lock timeout that says so", timeout, err)
		}
	}

	// The first is unaffected, and once it closes the file can be opened.
	if err := first.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatalf("Put on the first: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	again, err := file.Open(path, file.Options{Timeout: -1})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	again.Close()
}

func TestOpenError(t *testing.T) {
	_, err := file.Open(filepath.Join(t.TempDir(), "no", "such", "dir", "x.db"), file.Options{})
	if err == nil {
		t.Fatal("Open in a missing directory succeeded")
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open in a missing directory = %v, want it to wrap os.ErrNotExist", err)
	}
}
