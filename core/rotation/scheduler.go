package rotation

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/storage"
)

// Defaults of Config.
const (
	DefaultPollInterval  = 10 * time.Second
	DefaultRetryInterval = time.Minute
	DefaultLockWait      = 10 * time.Second
)

// maxErrorLength bounds last_error.
const maxErrorLength = 1024

// lockRetry is how often a caller waiting for the lock asks again.
const lockRetry = 100 * time.Millisecond

// Config is what New needs. Storage, Request and Mounts are required.
type Config struct {
	// Storage keeps the schedules (under StoragePrefix): the barrier.
	Storage logical.Storage
	// Locker gives the lock due work runs under. It must be shared by
	// every core using Storage (the storage backend's). Default: a lock
	// of this process only.
	Locker storage.Locker
	// Request runs and audits the KV requests of rotations.
	Request Requester
	// Mounts tells which mount serves a path.
	Mounts MountFunc
	// Periodic lists the mounted engines with periodic rotations of their
	// own, by mount path. Optional.
	Periodic func() map[string]Periodic
	// Clock is the time. Default SystemClock{}.
	Clock Clock
	// Rand is the randomness of generated values. Default crypto/rand.
	Rand io.Reader
	// Logger receives what the scheduler does; never a secret value.
	// Default slog.Default().
	Logger *slog.Logger
	// PollInterval is how often Periodic engines are asked for due
	// roles, how often a node whose lock was refused tries again, and the
	// longest the scheduler sleeps (so it sees schedules another node
	// made). Default DefaultPollInterval.
	PollInterval time.Duration
	// RetryInterval is the wait after a failed rotation or cleanup
	// (capped by the schedule's period). Default DefaultRetryInterval.
	RetryInterval time.Duration
	// LockWait is how long Put, Delete and Rotate wait for the lock.
	// Default DefaultLockWait.
	LockWait time.Duration
	// ErrorText turns an error into the schedule's last_error. Default
	// err.Error(); the core passes its public message for internal
	// errors. Errors of this package never hold a secret value.
	ErrorText func(error) string
}

// Scheduler runs the rotations of the schedules in its storage: one
// goroutine between Start and Stop, sleeping until the earliest due time.
// Its methods are safe for concurrent use.
type Scheduler struct {
	cfg   Config
	clock Clock
	log   *slog.Logger
	// wake makes the loop recompute its timer after a change.
	wake chan struct{}

	// mu guards cancel, done and nextPoll.
	mu       sync.Mutex
	cancel   context.CancelFunc
	done     chan struct{}
	nextPoll time.Time
}

// New returns a stopped Scheduler.
func New(cfg Config) (*Scheduler, error) {
	switch {
	case cfg.Storage == nil:
		return nil, errors.New("rotation: new: no storage")
	case cfg.Request == nil:
		return nil, errors.New("rotation: new: no requester")
	case cfg.Mounts == nil:
		return nil, errors.New("rotation: new: no mount lookup")
	}
	if cfg.Locker == nil {
		cfg.Locker = &storage.LocalLocker{}
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.LockWait <= 0 {
		cfg.LockWait = DefaultLockWait
	}
	if cfg.ErrorText == nil {
		cfg.ErrorText = func(err error) string { return err.Error() }
	}
	return &Scheduler{cfg: cfg, clock: cfg.Clock, log: cfg.Logger, wake: make(chan struct{}, 1)}, nil
}

// Start starts the scheduling goroutine; its first pass runs at once, so
// rotations that fell due while the core was down run now. Starting a
// running Scheduler does nothing.
func (s *Scheduler) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go s.loop(ctx, s.done)
}

// Stop stops the goroutine and waits for it: a rotation in progress is
// cancelled (its KV write is atomic: it happened or not). Stopping a
// stopped Scheduler does nothing.
func (s *Scheduler) Stop() {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.cancel, s.done = nil, nil
	s.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// kick wakes the loop to recompute its timer.
func (s *Scheduler) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Scheduler) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	for {
		next, _ := s.pass(ctx)
		if ctx.Err() != nil {
			return
		}
		t := s.clock.NewTimer(max(next.Sub(s.clock.Now()), 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		case <-s.wake:
			t.Stop()
		}
	}
}

// RunDue runs, now, the rotations and cleanups that are due and polls the
// Periodic engines if their interval has passed: one pass of the
// scheduling goroutine. It returns ErrBusy when there was due work but
// another holder had the lock.
func (s *Scheduler) RunDue(ctx context.Context) error {
	_, err := s.pass(ctx)
	return err
}

// pass runs what is due and returns when the next pass should run.
func (s *Scheduler) pass(ctx context.Context) (time.Time, error) {
	now := s.clock.Now()
	retry := now.Add(s.cfg.PollInterval)
	due, next, err := s.scan(ctx, now)
	if err != nil {
		s.log.ErrorContext(ctx, "rotation: reading the schedules failed", "error", err.Error())
		return retry, err
	}
	engines := s.periodicEngines()
	s.mu.Lock()
	pollDue := len(engines) > 0 && !now.Before(s.nextPoll)
	s.mu.Unlock()
	if len(due) == 0 && !pollDue {
		return earlier(next, retry), nil
	}
	unlock, ok, err := s.cfg.Locker.TryLock(ctx, LockName)
	if err != nil {
		s.log.WarnContext(ctx, "rotation: taking the rotation lock failed; trying again later", "error", err.Error())
		return retry, fmt.Errorf("rotation: take the lock: %w", err)
	}
	if !ok {
		s.log.DebugContext(ctx, "rotation: the rotation lock is held elsewhere; trying again later")
		return retry, ErrBusy
	}
	defer unlock()
	var failed bool
	for _, name := range due {
		if _, err := s.runLocked(ctx, name, false); err != nil && !errors.Is(err, ErrNotFound) {
			failed = true
		}
	}
	if pollDue {
		s.poll(ctx, engines, now)
		s.mu.Lock()
		s.nextPoll = now.Add(s.cfg.PollInterval)
		s.mu.Unlock()
	}
	now = s.clock.Now()
	due, next, err = s.scan(ctx, now)
	if err != nil || len(due) > 0 {
		// State could not be saved: do not spin on it.
		return now.Add(s.cfg.RetryInterval), err
	}
	if failed {
		return earlier(next, now.Add(s.cfg.PollInterval)), errors.New("rotation: some due work failed; see last_error")
	}
	return earlier(next, now.Add(s.cfg.PollInterval)), nil
}

// earlier returns the earlier of a (zero: none) and b.
func earlier(a, b time.Time) time.Time {
	if !a.IsZero() && a.Before(b) {
		return a
	}
	return b
}

// scan lists the schedules due at now and the earliest due time after
// now (zero if none).
func (s *Scheduler) scan(ctx context.Context, now time.Time) (due []string, next time.Time, err error) {
	names, err := s.List(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	for _, name := range names {
		sch, err := s.Get(ctx, name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, time.Time{}, err
		}
		at := sch.dueAt()
		if !at.After(now) {
			due = append(due, name)
		} else if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return due, next, nil
}

// runLocked runs schedule name's due cleanup and, if due or forced, its
// rotation, and saves its state. The lock must be held.
func (s *Scheduler) runLocked(ctx context.Context, name string, force bool) (Schedule, error) {
	sch, err := s.Get(ctx, name)
	if err != nil {
		return Schedule{}, err
	}
	now := s.clock.Now()
	retryAt := now.Add(min(s.cfg.RetryInterval, sch.Period))
	if c := sch.Cleanup; c != nil && !c.At.After(now) {
		if err := s.retireKV(ctx, name, c); err != nil {
			c.At = retryAt
			return s.failed(ctx, &sch, err)
		}
		s.log.InfoContext(ctx, "rotation: replaced version retired", "schedule", name, "path", c.Path, "version", c.Version)
		sch.Cleanup = nil
	}
	if !force && sch.NextRotation.After(now) {
		return sch, s.save(ctx, &sch)
	}
	written, replaced, err := s.rotateKV(ctx, &sch)
	if err != nil {
		sch.NextRotation = retryAt
		return s.failed(ctx, &sch, err)
	}
	s.log.InfoContext(ctx, "rotation: secret rotated", "schedule", name, "path", sch.Path, "key", sch.Key, "version", written)
	sch.LastRotation, sch.NextRotation = now, now.Add(sch.Period)
	sch.LastVersion, sch.LastError = written, ""
	if old := sch.Cleanup; old != nil {
		// A rotation before the previous grace ended: the version two
		// rotations back is retired now; only the one just replaced
		// stays readable.
		if err := s.retireKV(ctx, name, old); err != nil {
			sch.LastError = s.errorText(err)
			s.log.WarnContext(ctx, "rotation: retiring an older version failed", "schedule", name, "error", err.Error())
		} else {
			s.log.InfoContext(ctx, "rotation: older version retired early", "schedule", name, "path", old.Path, "version", old.Version)
		}
		sch.Cleanup = nil
	}
	if replaced > 0 {
		c := &Cleanup{Path: sch.Path, Version: replaced, At: now.Add(sch.Grace)}
		if sch.Grace == 0 {
			if err := s.retireKV(ctx, name, c); err != nil {
				c.At = retryAt
				sch.Cleanup = c
				sch.LastError = s.errorText(err)
			}
		} else {
			sch.Cleanup = c
		}
	}
	// The new version exists: record it even if the scheduler is being
	// stopped, or the next start would rotate again.
	if err := s.save(context.WithoutCancel(ctx), &sch); err != nil {
		return sch, fmt.Errorf("rotation: %s rotated to version %d, but its schedule was not saved: %w", name, written, err)
	}
	return sch, nil
}

// failed records err on sch (whose retry time is set), saves it, and
// returns err.
func (s *Scheduler) failed(ctx context.Context, sch *Schedule, err error) (Schedule, error) {
	s.log.WarnContext(ctx, "rotation: failed", "schedule", sch.Name, "path", sch.Path, "error", err.Error())
	sch.LastError = s.errorText(err)
	if serr := s.save(context.WithoutCancel(ctx), sch); serr != nil {
		s.log.ErrorContext(ctx, "rotation: saving the schedule failed", "schedule", sch.Name, "error", serr.Error())
	}
	return *sch, fmt.Errorf("rotation: %s: %w", sch.Name, err)
}

func (s *Scheduler) errorText(err error) string {
	msg := s.cfg.ErrorText(err)
	if len(msg) > maxErrorLength {
		msg = msg[:maxErrorLength]
	}
	return msg
}

// periodicEngines returns the Periodic engines, sorted by mount path.
func (s *Scheduler) periodicEngines() []mountPeriodic {
	if s.cfg.Periodic == nil {
		return nil
	}
	var out []mountPeriodic
	for path, p := range s.cfg.Periodic() {
		out = append(out, mountPeriodic{path, p})
	}
	slices.SortFunc(out, func(a, b mountPeriodic) int { return cmp.Compare(a.path, b.path) })
	return out
}

type mountPeriodic struct {
	path string
	p    Periodic
}

// poll asks each Periodic engine for its due roles and rotates them. The
// lock must be held. A failure is logged; the engine reports the role due
// again at the next poll.
func (s *Scheduler) poll(ctx context.Context, engines []mountPeriodic, now time.Time) {
	for _, e := range engines {
		names, err := e.p.DueStaticRoles(ctx, now)
		if err != nil {
			s.log.WarnContext(ctx, "rotation: listing due static roles failed", "mount", e.path, "error", err.Error())
			continue
		}
		for _, name := range names {
			if err := e.p.RotateStaticRole(ctx, name); err != nil {
				s.log.WarnContext(ctx, "rotation: static role rotation failed", "mount", e.path, "role", name, "error", err.Error())
				continue
			}
			s.log.InfoContext(ctx, "rotation: static role rotated", "mount", e.path, "role", name)
		}
	}
}

// withLock runs fn holding the lock, waiting up to LockWait for it.
func (s *Scheduler) withLock(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(s.cfg.LockWait)
	for {
		unlock, ok, err := s.cfg.Locker.TryLock(ctx, LockName)
		if err != nil {
			return fmt.Errorf("rotation: take the lock: %w", err)
		}
		if ok {
			defer unlock()
			return fn()
		}
		if time.Now().After(deadline) {
			return ErrBusy
		}
		t := time.NewTimer(lockRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Put creates or updates the schedule spec describes. An update keeps the
// state (last rotation, pending cleanup); a changed period moves the next
// rotation to one period after the last (or after creation). A new
// schedule's first rotation is one period from now: Rotate runs one at
// once.
func (s *Scheduler) Put(ctx context.Context, spec Spec) (Schedule, error) {
	sch, err := build(spec, s.cfg.Mounts)
	if err != nil {
		return Schedule{}, err
	}
	err = s.withLock(ctx, func() error {
		now := s.clock.Now()
		old, err := s.Get(ctx, sch.Name)
		switch {
		case errors.Is(err, ErrNotFound):
			sch.CreatedAt, sch.NextRotation = now, now.Add(sch.Period)
		case err != nil:
			return err
		default:
			sch.CreatedAt, sch.NextRotation = old.CreatedAt, old.NextRotation
			sch.LastRotation, sch.LastVersion, sch.LastError, sch.Cleanup = old.LastRotation, old.LastVersion, old.LastError, old.Cleanup
			if sch.Period != old.Period {
				base := old.LastRotation
				if base.IsZero() {
					base = old.CreatedAt
				}
				sch.NextRotation = base.Add(sch.Period)
			}
		}
		sch.UpdatedAt = now
		return s.save(ctx, &sch)
	})
	if err != nil {
		return Schedule{}, err
	}
	s.kick()
	return sch, nil
}

// Get returns schedule name, or ErrNotFound.
func (s *Scheduler) Get(ctx context.Context, name string) (Schedule, error) {
	if err := ValidateName(name); err != nil {
		return Schedule{}, err
	}
	raw, err := s.cfg.Storage.Get(ctx, StoragePrefix+name)
	if errors.Is(err, storage.ErrNotFound) {
		return Schedule{}, ErrNotFound
	}
	if err != nil {
		return Schedule{}, fmt.Errorf("rotation: read schedule %s: %w", name, err)
	}
	var sch Schedule
	if err := json.Unmarshal(raw, &sch); err != nil {
		return Schedule{}, fmt.Errorf("rotation: decode schedule %s: %w", name, err)
	}
	return sch, nil
}

// List returns the schedules' names, sorted.
func (s *Scheduler) List(ctx context.Context) ([]string, error) {
	keys, err := s.cfg.Storage.List(ctx, StoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("rotation: list schedules: %w", err)
	}
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		if ValidateName(k) == nil {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return names, nil
}

// Delete removes schedule name. The secret is left as it is: a replaced
// version waiting for its grace to end stays readable.
func (s *Scheduler) Delete(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	err := s.withLock(ctx, func() error {
		if _, err := s.Get(ctx, name); err != nil {
			return err
		}
		if err := s.cfg.Storage.Delete(ctx, StoragePrefix+name); err != nil {
			return fmt.Errorf("rotation: delete schedule %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.kick()
	return nil
}

// Rotate rotates schedule name now, whether due or not, and returns its
// new state. A failure is returned and recorded in last_error.
func (s *Scheduler) Rotate(ctx context.Context, name string) (Schedule, error) {
	if err := ValidateName(name); err != nil {
		return Schedule{}, err
	}
	var sch Schedule
	err := s.withLock(ctx, func() error {
		var err error
		sch, err = s.runLocked(ctx, name, true)
		return err
	})
	s.kick()
	return sch, err
}

func (s *Scheduler) save(ctx context.Context, sch *Schedule) error {
	raw, err := json.Marshal(sch)
	if err != nil {
		return fmt.Errorf("rotation: encode schedule %s: %w", sch.Name, err)
	}
	if err := s.cfg.Storage.Put(ctx, StoragePrefix+sch.Name, raw); err != nil {
		return fmt.Errorf("rotation: save schedule %s: %w", sch.Name, err)
	}
	return nil
}
