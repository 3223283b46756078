// Package file is a storage.Backend in one local file, for a single host
// that runs without Postgres. It uses bbolt: one bucket, keys in byte order,
// every write transaction fsynced before it returns.
//
// bbolt locks the file, so only one process can hold it open; a second one
// gets a clear error from Open after Options.Timeout.
package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/secrethub/secrethub/core/storage"
)

var (
	_ storage.Backend = (*Backend)(nil)
	_ storage.Locker  = (*Backend)(nil)
)

// bucket is the name of the one bucket every key lives in.
const bucket = "secrethub"

// DefaultTimeout is how long Open waits for another process's lock on the
// file when Options.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// DefaultMode is the permission a new file gets when Options.Mode is zero:
// readable and writable by its owner only.
const DefaultMode os.FileMode = 0o600

// Options tune Open. The zero value gives the defaults.
type Options struct {
	// Timeout is how long Open waits to lock the file while another process
	// holds it. Zero means DefaultTimeout; a negative value means do not wait.
	Timeout time.Duration
	// Mode is the permission of a newly created file. Zero means DefaultMode.
	Mode os.FileMode
}

// Backend is a storage.Backend in a bbolt file. It is safe for concurrent
// use.
type Backend struct {
	db   *bolt.DB
	path string

	mu     sync.Mutex // serialises Close
	closed bool       // guarded by mu
	// locks are the backend's named locks: in-process, since bbolt lets
	// one process at a time open the file.
	locks storage.LocalLocker
}

// Open opens the database file at path, creating it (and its bucket) if it
// does not exist.
func Open(path string, opts Options) (*Backend, error) {
	timeout := opts.Timeout
	switch {
	case timeout == 0:
		timeout = DefaultTimeout
	case timeout < 0:
		// bbolt's zero is "wait forever", its smallest wait one retry.
		timeout = time.Nanosecond
	}
	mode := opts.Mode
	if mode == 0 {
		mode = DefaultMode
	}
	db, err := bolt.Open(path, mode, &bolt.Options{Timeout: timeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("file: open %s: another process holds the database open (waited %s): %w", path, timeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("file: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte(bucket))
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("file: open %s: create bucket: %w", path, err)
	}
	return &Backend{db: db, path: path}, nil
}

// Path returns the path of the database file.
func (b *Backend) Path() string { return b.path }

// Get returns a copy of the value stored under key, or storage.ErrNotFound.
func (b *Backend) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("file: get %q: %w", key, err)
	}
	if err := storage.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("file: get %q: %w", key, err)
	}
	var value []byte
	err := b.db.View(func(tx *bolt.Tx) error {
		// A cursor tells a stored empty value from a missing key, which
		// Bucket.Get does not promise to.
		k, v := tx.Bucket([]byte(bucket)).Cursor().Seek([]byte(key))
		if k == nil || string(k) != key {
			return storage.ErrNotFound
		}
		// v is only valid inside the transaction.
		value = append(make([]byte, 0, len(v)), v...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("file: get %q: %w", key, mapErr(err))
	}
	return value, nil
}

// Put stores value under key.
func (b *Backend) Put(ctx context.Context, key string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("file: put %q: %w", key, err)
	}
	if err := storage.ValidateKey(key); err != nil {
		return fmt.Errorf("file: put %q: %w", key, err)
	}
	err := b.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte(bucket)).Put([]byte(key), nonNil(value)); err != nil {
			return err
		}
		return ctx.Err()
	})
	if err != nil {
		return fmt.Errorf("file: put %q: %w", key, mapErr(err))
	}
	return nil
}

// Delete removes key; a missing key is not an error.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("file: delete %q: %w", key, err)
	}
	if err := storage.ValidateKey(key); err != nil {
		return fmt.Errorf("file: delete %q: %w", key, err)
	}
	err := b.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte(bucket)).Delete([]byte(key)); err != nil {
			return err
		}
		return ctx.Err()
	})
	if err != nil {
		return fmt.Errorf("file: delete %q: %w", key, mapErr(err))
	}
	return nil
}

// List returns the direct children of prefix. It seeks the cursor to prefix
// and, on meeting a folder, seeks past everything in it, so a listing costs
// one seek per child rather than one step per key below prefix.
func (b *Backend) List(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("file: list %q: %w", prefix, err)
	}
	if err := storage.ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("file: list %q: %w", prefix, err)
	}
	var children []string
	err := b.db.View(func(tx *bolt.Tx) error {
		p := []byte(prefix)
		c := tx.Bucket([]byte(bucket)).Cursor()
		k, _ := c.Seek(p)
		for k != nil && bytes.HasPrefix(k, p) {
			if err := ctx.Err(); err != nil {
				return err
			}
			rest := string(k[len(p):])
			i := strings.IndexByte(rest, '/')
			if i < 0 {
				if rest != "" {
					children = append(children, rest)
				}
				k, _ = c.Next()
				continue
			}
			folder := rest[:i+1]
			children = append(children, folder)
			// Every key in the folder starts with prefix+name+"/"; the
			// first key after them all is at least prefix+name+"0", as
			// '0' follows '/' in byte order.
			k, _ = c.Seek([]byte(prefix + rest[:i] + "0"))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("file: list %q: %w", prefix, mapErr(err))
	}
	return children, nil
}

// Txn applies ops in order in one bbolt write transaction, which commits
// all of them or none. Every op is checked before the transaction starts.
func (b *Backend) Txn(ctx context.Context, ops []storage.Op) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("file: txn: %w", err)
	}
	if err := storage.ValidateOps(ops); err != nil {
		return fmt.Errorf("file: txn: %w", err)
	}
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucket))
		for i, op := range ops {
			var err error
			switch op.Kind {
			case storage.OpPut:
				err = bk.Put([]byte(op.Key), nonNil(op.Value))
			case storage.OpDelete:
				err = bk.Delete([]byte(op.Key))
			}
			if err != nil {
				return fmt.Errorf("op %d (%v %q): %w", i, op.Kind, op.Key, err)
			}
		}
		return ctx.Err()
	})
	if err != nil {
		return fmt.Errorf("file: txn: %w", mapErr(err))
	}
	return nil
}

// Close closes the file, waiting for running transactions to finish. Calls
// after Close return storage.ErrClosed.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("file: close %s: %w", b.path, storage.ErrClosed)
	}
	b.closed = true
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("file: close %s: %w", b.path, err)
	}
	return nil
}

// mapErr marks bbolt's error for a closed database as storage.ErrClosed.
func mapErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("%w: %w", storage.ErrClosed, err)
	}
	return err
}

// nonNil returns value, or an empty slice for nil, so that a nil value is
// stored as an empty one.
func nonNil(value []byte) []byte {
	if value == nil {
		return []byte{}
	}
	return value
}

// TryLock takes a named lock. bbolt locks the file for one process, so an
// in-process lock excludes every other holder.
func (b *Backend) TryLock(ctx context.Context, name string) (func(), bool, error) {
	return b.locks.TryLock(ctx, name)
}
