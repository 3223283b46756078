package sink

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// old is the mtime given to existing files, so a rewrite shows.
var old = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)

type fileState struct {
	content []byte
	mode    fs.FileMode
	ino     uint64
	mtime   time.Time
}

func stat(t *testing.T, path string) fileState {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fileState{content: b, mode: fi.Mode(), ino: fi.Sys().(*syscall.Stat_t).Ino, mtime: fi.ModTime()}
}

// existing makes a file with content and mode and an old mtime.
func existing(t *testing.T, path string, content string, mode fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
}

// leftovers lists temporary files Write left in dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestWrite(t *testing.T) {
	tests := map[string]struct {
		setup     func(t *testing.T, path string) // nil: no file
		content   string
		perm      fs.FileMode
		want      Result
		wantMode  fs.FileMode
		sameInode bool // the file was not replaced
		sameMtime bool // the file was not written
	}{
		"new file": {
			content: "hello", perm: 0o640, want: Created, wantMode: 0o640,
		},
		"new empty file": {
			content: "", perm: 0o600, want: Created, wantMode: 0o600,
		},
		"same content, same mode: untouched": {
			setup:   func(t *testing.T, p string) { existing(t, p, "hello", 0o640) },
			content: "hello", perm: 0o640, want: Unchanged, wantMode: 0o640, sameInode: true, sameMtime: true,
		},
		"same content, other mode: mode fixed, content untouched": {
			setup:   func(t *testing.T, p string) { existing(t, p, "hello", 0o600) },
			content: "hello", perm: 0o644, want: Unchanged, wantMode: 0o644, sameInode: true, sameMtime: true,
		},
		"same empty content: untouched": {
			setup:   func(t *testing.T, p string) { existing(t, p, "", 0o640) },
			content: "", perm: 0o640, want: Unchanged, wantMode: 0o640, sameInode: true, sameMtime: true,
		},
		"different content, same length": {
			setup:   func(t *testing.T, p string) { existing(t, p, "hellO", 0o640) },
			content: "hello", perm: 0o640, want: Replaced, wantMode: 0o640,
		},
		"different length": {
			setup:   func(t *testing.T, p string) { existing(t, p, "hello, world", 0o640) },
			content: "hello", perm: 0o640, want: Replaced, wantMode: 0o640,
		},
		"content emptied": {
			setup:   func(t *testing.T, p string) { existing(t, p, "x", 0o640) },
			content: "", perm: 0o640, want: Replaced, wantMode: 0o640,
		},
		"new content and new mode": {
			setup:   func(t *testing.T, p string) { existing(t, p, "a", 0o600) },
			content: "b", perm: 0o440, want: Replaced, wantMode: 0o440,
		},
		"umask does not narrow the mode": {
			content: "x", perm: 0o666, want: Created, wantMode: 0o666,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out")
			var before fileState
			if tc.setup != nil {
				tc.setup(t, path)
				before = stat(t, path)
			}
			res, err := Write(path, []byte(tc.content), tc.perm)
			if err != nil {
				t.Fatal(err)
			}
			if res != tc.want {
				t.Errorf("result = %v, want %v", res, tc.want)
			}
			after := stat(t, path)
			if string(after.content) != tc.content {
				t.Errorf("content = %q, want %q", after.content, tc.content)
			}
			if after.mode != tc.wantMode {
				t.Errorf("mode = %v, want %v", after.mode, tc.wantMode)
			}
			if tc.setup != nil {
				if got := after.ino == before.ino; got != tc.sameInode {
					t.Errorf("same inode = %v, want %v", got, tc.sameInode)
				}
				if got := after.mtime.Equal(before.mtime); got != tc.sameMtime {
					t.Errorf("same mtime = %v (%v -> %v), want %v", got, before.mtime, after.mtime, tc.sameMtime)
				}
			}
			if l := leftovers(t, dir); len(l) > 0 {
				t.Errorf("temporary files left: %q", l)
			}
		})
	}
}

func TestWriteReplacesSymlinkWithoutFollowing(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	existing(t, target, "same", 0o640)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	// Even with the target holding the same bytes, the link is replaced:
	// the destination must be a regular file the agent owns.
	res, err := Write(link, []byte("same"), 0o640)
	if err != nil || res != Replaced {
		t.Fatalf("Write = %v, %v; want Replaced, nil", res, err)
	}
	fi, err := os.Lstat(link)
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("link is now %v (%v), want a regular file", fi.Mode(), err)
	}
	if st := stat(t, target); !st.mtime.Equal(old) {
		t.Errorf("the link's target was written")
	}
}

func TestWriteMakesParents(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "out")
	if _, err := Write(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "a", "b"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("parent: %v, %v; want mode 0755", fi, err)
	}
}

func TestWriteRefusesBadMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	for _, m := range []fs.FileMode{fs.ModeSetuid | 0o640, fs.ModeDir | 0o750, 0o1640} {
		if _, err := Write(path, []byte("x"), m); err == nil {
			t.Errorf("Write with mode %v succeeded", m)
		}
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused write made the file: %v", err)
	}
}

// failingFile wraps a temporary file and fails one step.
type failingFile struct {
	*os.File
	fail string
}

var errInjected = errors.New("injected failure")

func (f failingFile) Write(b []byte) (int, error) {
	if f.fail == "write" {
		n, _ := f.File.Write(b[:len(b)/2])
		return n, errInjected
	}
	return f.File.Write(b)
}

func (f failingFile) Sync() error {
	if f.fail == "sync" {
		return errInjected
	}
	return f.File.Sync()
}

func (f failingFile) Chmod(m fs.FileMode) error {
	if f.fail == "chmod" {
		return errInjected
	}
	return f.File.Chmod(m)
}

func (f failingFile) Close() error {
	err := f.File.Close()
	if f.fail == "close" {
		return errInjected
	}
	return err
}

// TestWriteCleansUpOnError fails each step in turn and checks that no
// temporary file is left and the destination is untouched.
func TestWriteCleansUpOnError(t *testing.T) {
	steps := map[string]struct {
		fail        string
		want        Result
		wantContent string // what the destination holds afterwards
	}{
		"write fails":          {fail: "write", wantContent: "old"},
		"chmod fails":          {fail: "chmod", wantContent: "old"},
		"sync fails":           {fail: "sync", wantContent: "old"},
		"close fails":          {fail: "close", wantContent: "old"},
		"rename fails":         {fail: "rename", wantContent: "old"},
		"create fails":         {fail: "create", wantContent: "old"},
		"directory sync fails": {fail: "syncdir", want: Replaced, wantContent: "new content"}, // in place, not durable
	}
	for name, tc := range steps {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out")
			existing(t, path, "old", 0o640)
			o := ops{
				createTemp: func(dir, pattern string) (tempFile, error) {
					if tc.fail == "create" {
						return nil, errInjected
					}
					f, err := os.CreateTemp(dir, pattern)
					if err != nil {
						return nil, err
					}
					return failingFile{File: f, fail: tc.fail}, nil
				},
				rename: func(o, n string) error {
					if tc.fail == "rename" {
						return errInjected
					}
					return os.Rename(o, n)
				},
				syncDir: func(d string) error {
					if tc.fail == "syncdir" {
						return errInjected
					}
					return syncDir(d)
				},
			}
			res, err := o.write(path, []byte("new content"), 0o600)
			if !errors.Is(err, errInjected) {
				t.Fatalf("err = %v, want the injected failure", err)
			}
			if res != tc.want {
				t.Errorf("result = %v, want %v", res, tc.want)
			}
			if got := stat(t, path); string(got.content) != tc.wantContent {
				t.Errorf("destination holds %q, want %q", got.content, tc.wantContent)
			}
			if l := leftovers(t, dir); len(l) > 0 {
				t.Errorf("temporary files left: %q", l)
			}
		})
	}
}

// TestWriteCleansUpWhenRenameFails uses a real failure: the destination
// is a non-empty directory, which rename cannot replace.
func TestWriteCleansUpWhenRenameFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	if err := os.MkdirAll(filepath.Join(path, "child"), 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := Write(path, []byte("x"), 0o640)
	if err == nil || res != Unchanged {
		t.Fatalf("Write over a directory = %v, %v; want an error", res, err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the destination", err)
	}
	if l := leftovers(t, dir); len(l) > 0 {
		t.Errorf("temporary files left: %q", l)
	}
}

// TestConcurrentReadersSeeWholeFiles rewrites a file many times while
// readers read it; every read must be one of the two contents, whole.
func TestConcurrentReadersSeeWholeFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	const size = 256 << 10
	a := bytes.Repeat([]byte("a"), size)
	b := bytes.Repeat([]byte("b"), size)
	// Make the two contents differ at both ends and in the middle, so a
	// torn read cannot equal either.
	a[0], b[size-1] = 'A', 'B'
	if _, err := Write(path, a, 0o640); err != nil {
		t.Fatal(err)
	}

	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	reads, bad := 0, 0
	var firstBad string
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				got, err := os.ReadFile(path)
				mu.Lock()
				reads++
				if err != nil || !(bytes.Equal(got, a) || bytes.Equal(got, b)) {
					bad++
					if firstBad == "" {
						firstBad = describe(got, err)
					}
				}
				mu.Unlock()
			}
		}()
	}
	const rewrites = 150
	for i := range rewrites {
		want := a
		if i%2 == 0 {
			want = b
		}
		res, err := Write(path, want, 0o640)
		if err != nil {
			close(done)
			wg.Wait()
			t.Fatal(err)
		}
		if res != Replaced {
			t.Errorf("rewrite %d: result %v for new content, want Replaced", i, res)
		}
	}
	close(done)
	wg.Wait()
	if bad > 0 {
		t.Fatalf("%d of %d reads saw neither content; first: %s", bad, reads, firstBad)
	}
	if reads == 0 {
		t.Fatal("readers never read")
	}
	if l := leftovers(t, dir); len(l) > 0 {
		t.Errorf("temporary files left: %q", l)
	}
}

func describe(b []byte, err error) string {
	if err != nil {
		return err.Error()
	}
	if len(b) > 8 {
		return string(b[:4]) + "…" + string(b[len(b)-4:]) + " (" + strconv.Itoa(len(b)) + " bytes)"
	}
	return string(b)
}
