// Package sink writes rendered files atomically, and only when their
// content changes.
//
// A reader of the destination sees either the old file or the new one,
// whole, never a partial or empty file: Write puts the content in a
// temporary file in the same directory, sets its mode, flushes it
// to disk, renames it over the destination and flushes the directory, so the
// new name survives a crash. When the destination already holds the same
// bytes nothing is written (its mtime and inode stay), which is what lets
// the agent run a reload only after a real change.
package sink

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// tempFile is the part of *os.File that Write uses, so tests can make any
// step fail.
type tempFile interface {
	Name() string
	Write(b []byte) (int, error)
	Sync() error
	Chmod(mode fs.FileMode) error
	Close() error
}

// ops are the file system calls Write makes; production uses the os
// package.
type ops struct {
	createTemp func(dir, pattern string) (tempFile, error)
	rename     func(oldpath, newpath string) error
	syncDir    func(dir string) error
}

var osOps = ops{
	createTemp: func(dir, pattern string) (tempFile, error) { return os.CreateTemp(dir, pattern) },
	rename:     os.Rename,
	syncDir:    syncDir,
}

// Result says what Write did to the content at its path.
type Result int

// The results of Write.
const (
	// Unchanged: path already was a regular file with the content (its
	// mode may have been fixed).
	Unchanged Result = iota
	// Created: nothing was at path; the file is new.
	Created
	// Replaced: something else was at path (other content, a link, ...)
	// and the file replaced it. A reader may have seen the old one.
	Replaced
)

// Write makes the file at path hold content with mode perm.
//
// When path already is a regular file with exactly this content, nothing
// is written; if only its mode differs, the mode is fixed. The Result
// says whether the content was written, and whether it replaced
// something that was there. Otherwise the content goes to a
// temporary file in the same directory (named ".<base>.tmp-*"), which is
// given mode perm, synced and renamed over path, and the directory is
// synced. A symbolic link at path is replaced by the file, not followed.
// Missing parent directories are made with mode 0755. perm must hold
// permission bits only. On error the temporary file is removed and path
// is left as it was (unless only the final directory sync failed, in
// which case the new content is in place but may not survive a crash).
func Write(path string, content []byte, perm fs.FileMode) (Result, error) {
	return osOps.write(path, content, perm)
}

func (o ops) write(path string, content []byte, perm fs.FileMode) (Result, error) {
	if perm&^fs.ModePerm != 0 {
		return Unchanged, fmt.Errorf("sink: write %q: mode %v has bits other than permissions", path, perm)
	}
	if path == "" {
		return Unchanged, errors.New("sink: write: empty path")
	}
	same, existed, err := sameContent(path, content)
	if err != nil {
		return Unchanged, fmt.Errorf("sink: write %q: %w", path, err)
	}
	if same {
		if err := fixMode(path, perm); err != nil {
			return Unchanged, fmt.Errorf("sink: write %q: %w", path, err)
		}
		return Unchanged, nil
	}

	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Unchanged, fmt.Errorf("sink: write %q: %w", path, err)
	}
	f, err := o.createTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return Unchanged, fmt.Errorf("sink: write %q: %w", path, err)
	}
	tmp := f.Name()
	renamed := false
	defer func() {
		if !renamed {
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(content); err != nil {
		f.Close()
		return Unchanged, fmt.Errorf("sink: write %q: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return Unchanged, fmt.Errorf("sink: write %q: chmod: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return Unchanged, fmt.Errorf("sink: write %q: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return Unchanged, fmt.Errorf("sink: write %q: close: %w", path, err)
	}
	if err := o.rename(tmp, path); err != nil {
		return Unchanged, fmt.Errorf("sink: write %q: %w", path, err)
	}
	renamed = true
	done := Created
	if existed {
		done = Replaced
	}
	if err := o.syncDir(dir); err != nil {
		return done, fmt.Errorf("sink: write %q: sync directory: %w", path, err)
	}
	return done, nil
}

// sameContent reports whether path is a regular file holding exactly
// content, and whether anything is at path. A missing file, a symbolic
// link or any other kind of file is not the same (a directory then makes
// the rename fail).
func sameContent(path string, content []byte) (same, existed bool, err error) {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, false, nil
	case err != nil:
		return false, false, err
	case !fi.Mode().IsRegular():
		return false, true, nil
	case fi.Size() != int64(len(content)):
		return false, true, nil
	}
	old, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, false, nil
	}
	if err != nil {
		return false, true, err
	}
	return bytes.Equal(old, content), true, nil
}

// fixMode sets path's mode to perm if it differs.
func fixMode(path string, perm fs.FileMode) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm() == perm {
		return nil
	}
	return os.Chmod(path, perm)
}

// syncDir flushes a directory, so a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
