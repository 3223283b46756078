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

// Write makes the file at path hold content with mode perm.
//
// When path already is a regular file with exactly this content, nothing
// is written; if only its mode differs, the mode is fixed. changed reports
// whether the content was (re)written. Otherwise the content goes to a
// temporary file in the same directory (named ".<base>.tmp-*"), which is
// given mode perm, synced and renamed over path, and the directory is
// synced. A symbolic link at path is replaced by the file, not followed.
// Missing parent directories are made with mode 0755. perm must hold
// permission bits only. On error the temporary file is removed and path
// is left as it was (unless only the final directory sync failed, in
// which case the new content is in place but may not survive a crash).
func Write(path string, content []byte, perm fs.FileMode) (changed bool, err error) {
	return osOps.write(path, content, perm)
}

func (o ops) write(path string, content []byte, perm fs.FileMode) (changed bool, err error) {
	if perm&^fs.ModePerm != 0 {
		return false, fmt.Errorf("sink: write %q: mode %v has bits other than permissions", path, perm)
	}
	if path == "" {
		return false, errors.New("sink: write: empty path")
	}
	same, err := sameContent(path, content)
	if err != nil {
		return false, fmt.Errorf("sink: write %q: %w", path, err)
	}
	if same {
		if err := fixMode(path, perm); err != nil {
			return false, fmt.Errorf("sink: write %q: %w", path, err)
		}
		return false, nil
	}

	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("sink: write %q: %w", path, err)
	}
	f, err := o.createTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return false, fmt.Errorf("sink: write %q: %w", path, err)
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
		return false, fmt.Errorf("sink: write %q: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return false, fmt.Errorf("sink: write %q: chmod: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return false, fmt.Errorf("sink: write %q: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("sink: write %q: close: %w", path, err)
	}
	if err := o.rename(tmp, path); err != nil {
		return false, fmt.Errorf("sink: write %q: %w", path, err)
	}
	renamed = true
	if err := o.syncDir(dir); err != nil {
		return true, fmt.Errorf("sink: write %q: sync directory: %w", path, err)
	}
	return true, nil
}

// sameContent reports whether path is a regular file holding exactly
// content. A missing file, a symbolic link or any other kind of file is
// not the same (a directory then makes the rename fail).
func sameContent(path string, content []byte) (bool, error) {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case !fi.Mode().IsRegular():
		return false, nil
	case fi.Size() != int64(len(content)):
		return false, nil
	}
	old, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return bytes.Equal(old, content), nil
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
