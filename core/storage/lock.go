package storage

import (
	"context"
	"errors"
	"sync"
)

// ErrLockUnsupported is returned by a Locker that wraps a backend which
// cannot lock (a cache over a backend without locks).
var ErrLockUnsupported = errors.New("storage: backend has no locks")

// Locker is implemented by backends that hand out named, exclusive,
// non-blocking locks shared by every process using the same storage. Work
// that must run on one node only (scheduled rotations) runs while holding
// one.
//
// A lock is advisory: it excludes other holders of the same name, not
// writes. It lasts until unlock is called or the holder goes away (its
// process or, for Postgres, its database session ends), so a holder that
// is cut off from storage may lose it without noticing: work done under a
// lock should still be safe to repeat.
type Locker interface {
	// TryLock takes the lock called name if no one holds it. ok is false,
	// and err nil, when someone else does; unlock is then nil. unlock
	// releases the lock; it may be called once.
	TryLock(ctx context.Context, name string) (unlock func(), ok bool, err error)
}

// LocalLocker is a Locker whose locks exclude holders in this process
// only: right for backends one process holds at a time (inmem, and file,
// which bbolt locks per process). Its zero value is ready for use.
type LocalLocker struct {
	mu   sync.Mutex
	held map[string]bool // guarded by mu
}

var _ Locker = (*LocalLocker)(nil)

// TryLock takes the lock called name if no one in this process holds it.
// It is not reentrant: a holder asking again is refused.
func (l *LocalLocker) TryLock(ctx context.Context, name string) (func(), bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[name] {
		return nil, false, nil
	}
	if l.held == nil {
		l.held = map[string]bool{}
	}
	l.held[name] = true
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			delete(l.held, name)
		})
	}, true, nil
}
