package rotation_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/rotation"
)

// layouts are the API paths of one secret in each KV layout.
var layouts = map[string]string{
	"simple": "secrets/app/api",
	"kv-v2":  "secret/data/app/api",
}

func TestRotationKeepsPreviousVersionForGrace(t *testing.T) {
	for name, path := range layouts {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			ctx := t.Context()
			e.write(path, map[string]any{"user": "app", "token": "old-value", "port": 5432})
			s := e.scheduler(rotation.Config{})
			sch, err := s.Put(ctx, rotation.Spec{
				Name: "api", Path: path, Key: "token", Period: 24 * time.Hour, Grace: ptr(time.Hour),
				Generator: rotation.Generator{Length: 40, Charset: rotation.CharsetHex},
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := t0.Add(24 * time.Hour); !sch.NextRotation.Equal(want) {
				t.Fatalf("next rotation %s; want %s", sch.NextRotation, want)
			}

			// Not due yet: nothing happens.
			if err := s.RunDue(ctx); err != nil {
				t.Fatal(err)
			}
			if got := e.requestsBy("rotation:api"); len(got) != 0 {
				t.Fatalf("requests before the rotation is due: %v", got)
			}

			e.clock.Advance(24 * time.Hour)
			if err := s.RunDue(ctx); err != nil {
				t.Fatal(err)
			}
			latest, err := e.read(path, 0)
			if err != nil {
				t.Fatal(err)
			}
			tok, _ := latest["token"].(string)
			if len(tok) != 40 || strings.Trim(tok, "0123456789abcdef") != "" {
				t.Fatalf("new token is %d characters of %q; want 40 hex digits", len(tok), tok)
			}
			if latest["user"] != "app" || latest["port"] == nil {
				t.Fatalf("other keys not kept: %v", latest)
			}
			prev, err := e.read(path, 1)
			if err != nil || prev["token"] != "old-value" {
				t.Fatalf("version 1 during grace = %v, %v; want the old value", prev, err)
			}
			sch, err = s.Get(ctx, "api")
			if err != nil {
				t.Fatal(err)
			}
			now := e.clock.Now()
			if sch.LastVersion != 2 || !sch.LastRotation.Equal(now) || !sch.NextRotation.Equal(now.Add(24*time.Hour)) || sch.LastError != "" {
				t.Fatalf("schedule after rotation: %+v", sch)
			}
			if sch.Cleanup == nil || sch.Cleanup.Version != 1 || !sch.Cleanup.At.Equal(now.Add(time.Hour)) {
				t.Fatalf("pending cleanup %+v; want version 1 at %s", sch.Cleanup, now.Add(time.Hour))
			}
			for _, r := range e.requestsBy("rotation:api") {
				if !strings.Contains(r, path) {
					t.Errorf("rotation request %q outside the secret", r)
				}
			}

			// Within the grace: still readable.
			e.clock.Advance(59 * time.Minute)
			if err := s.RunDue(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := e.read(path, 1); err != nil {
				t.Fatalf("version 1 within the grace: %v", err)
			}
			e.clock.Advance(time.Minute)
			if err := s.RunDue(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := e.read(path, 1); !errors.Is(err, errDeleted) {
				t.Fatalf("version 1 after the grace: %v; want deleted", err)
			}
			if got, err := e.read(path, 2); err != nil || got["token"] != tok {
				t.Fatalf("version 2 after the grace = %v, %v; want the new value", got, err)
			}
			if sch, _ = s.Get(ctx, "api"); sch.Cleanup != nil {
				t.Fatalf("cleanup still pending: %+v", sch.Cleanup)
			}

			// The next rotation draws a different value.
			e.clock.Advance(23 * time.Hour)
			if err := s.RunDue(ctx); err != nil {
				t.Fatal(err)
			}
			third, err := e.read(path, 0)
			if err != nil {
				t.Fatal(err)
			}
			if third["token"] == tok {
				t.Fatal("two rotations wrote the same value")
			}
		})
	}
}

func TestRotationCreatesMissingSecret(t *testing.T) {
	for name, path := range layouts {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			s := e.scheduler(rotation.Config{})
			if _, err := s.Put(t.Context(), rotation.Spec{Name: "new", Path: path, Key: "pw", Period: time.Hour}); err != nil {
				t.Fatal(err)
			}
			sch, err := s.Rotate(t.Context(), "new")
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.read(path, 0)
			if err != nil {
				t.Fatal(err)
			}
			pw, _ := got["pw"].(string)
			if len(got) != 1 || len(pw) != rotation.DefaultLength || sch.LastVersion != 1 || sch.Cleanup != nil {
				t.Fatalf("secret %d keys, pw of %d characters, schedule %+v; want one key of %d, version 1, no cleanup",
					len(got), len(pw), sch, rotation.DefaultLength)
			}
		})
	}
}

func TestRotateBeforeGraceEndsRetiresOlderVersion(t *testing.T) {
	for name, path := range layouts {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			ctx := t.Context()
			e.write(path, map[string]any{"k": "v1"})
			s := e.scheduler(rotation.Config{})
			if _, err := s.Put(ctx, rotation.Spec{Name: "r", Path: path, Key: "k", Period: time.Hour, Grace: ptr(30 * time.Minute)}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Rotate(ctx, "r"); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(time.Minute)
			sch, err := s.Rotate(ctx, "r")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.read(path, 1); !errors.Is(err, errDeleted) {
				t.Fatalf("version 1 after a second rotation: %v; want deleted", err)
			}
			if _, err := e.read(path, 2); err != nil {
				t.Fatalf("version 2, just replaced: %v; want readable", err)
			}
			if sch.Cleanup == nil || sch.Cleanup.Version != 2 {
				t.Fatalf("cleanup %+v; want version 2", sch.Cleanup)
			}
		})
	}
}

func TestZeroGraceRetiresAtOnce(t *testing.T) {
	for name, path := range layouts {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.write(path, map[string]any{"k": "v1"})
			s := e.scheduler(rotation.Config{})
			if _, err := s.Put(t.Context(), rotation.Spec{Name: "r", Path: path, Key: "k", Period: time.Hour, Grace: ptr(time.Duration(0))}); err != nil {
				t.Fatal(err)
			}
			sch, err := s.Rotate(t.Context(), "r")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.read(path, 1); !errors.Is(err, errDeleted) {
				t.Fatalf("version 1 with no grace: %v; want deleted", err)
			}
			if sch.Cleanup != nil {
				t.Fatalf("cleanup %+v; want none", sch.Cleanup)
			}
		})
	}
}

func TestFailedRotationRecordsErrorWithoutValue(t *testing.T) {
	for name, path := range layouts {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			ctx := t.Context()
			e.write(path, map[string]any{"k": "do-not-leak-me"})
			s := e.scheduler(rotation.Config{RetryInterval: 5 * time.Minute})
			if _, err := s.Put(ctx, rotation.Spec{Name: "r", Path: path, Key: "k", Period: time.Hour}); err != nil {
				t.Fatal(err)
			}
			// The latest version is soft-deleted (DELETE on the secret's
			// path, in both layouts): rotation must not bring it back.
			if _, err := e.request(ctx, &logical.Request{Operation: logical.OpDelete, Path: path}); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(time.Hour)
			if err := s.RunDue(ctx); err == nil {
				t.Fatal("RunDue over a deleted secret reported no failure")
			}
			sch, err := s.Get(ctx, "r")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(sch.LastError, "deleted") || strings.Contains(sch.LastError, "do-not-leak-me") {
				t.Fatalf("last_error %q; want the reason and no value", sch.LastError)
			}
			if want := e.clock.Now().Add(5 * time.Minute); !sch.NextRotation.Equal(want) {
				t.Fatalf("retry at %s; want %s", sch.NextRotation, want)
			}
			if _, err := s.Rotate(ctx, "r"); err == nil {
				t.Fatal("Rotate over a deleted secret succeeded")
			}

			// Restored: the retry succeeds and clears the error.
			e.write(path, map[string]any{"k": "again"})
			e.clock.Advance(5 * time.Minute)
			if err := s.RunDue(ctx); err != nil {
				t.Fatal(err)
			}
			if sch, _ = s.Get(ctx, "r"); sch.LastError != "" || sch.LastVersion != 3 {
				t.Fatalf("after the retry: %+v", sch)
			}
		})
	}
}

// A Stop and a new Scheduler over the same storage keep the schedule; a
// rotation that fell due meanwhile runs at Start.
func TestRestartRunsMissedRotation(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	path := layouts["simple"]
	e.write(path, map[string]any{"k": "v1"})
	first := e.scheduler(rotation.Config{})
	first.Start()
	if _, err := first.Put(ctx, rotation.Spec{Name: "r", Path: path, Key: "k", Period: time.Hour}); err != nil {
		t.Fatal(err)
	}
	first.Stop()

	e.clock.Advance(5 * time.Hour) // the core was down
	second := e.scheduler(rotation.Config{})
	names, err := second.List(ctx)
	if err != nil || len(names) != 1 || names[0] != "r" {
		t.Fatalf("schedules after restart = %v, %v", names, err)
	}
	second.Start()
	waitFor(t, "the missed rotation", func() bool {
		sch, err := second.Get(ctx, "r")
		return err == nil && sch.LastVersion == 2
	})
	sch, _ := second.Get(ctx, "r")
	if want := e.clock.Now().Add(time.Hour); !sch.NextRotation.Equal(want) {
		t.Fatalf("next rotation %s; want one period after the late run, %s", sch.NextRotation, want)
	}
}

// The goroutine sleeps until the due time and rotates when the clock
// reaches it.
func TestLoopRotatesWhenDue(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	path := layouts["kv-v2"]
	e.write(path, map[string]any{"k": "v1"})
	s := e.scheduler(rotation.Config{})
	s.Start()
	if _, err := s.Put(ctx, rotation.Spec{Name: "r", Path: path, Key: "k", Period: 2 * time.Hour, Grace: ptr(10 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Hour)
	waitFor(t, "the rotation", func() bool {
		sch, err := s.Get(ctx, "r")
		return err == nil && sch.LastVersion == 2
	})
	e.clock.Advance(10 * time.Minute)
	waitFor(t, "the cleanup", func() bool {
		sch, err := s.Get(ctx, "r")
		return err == nil && sch.Cleanup == nil
	})
	if _, err := e.read(path, 1); !errors.Is(err, errDeleted) {
		t.Fatalf("version 1 after the grace: %v; want deleted", err)
	}
	s.Stop()
}

// Two schedulers (two cores) share storage and its lock: only the holder
// rotates.
func TestSharedLockOneRotates(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	path := layouts["simple"]
	e.write(path, map[string]any{"k": "v1"})
	a := e.scheduler(rotation.Config{LockWait: 50 * time.Millisecond})
	b := e.scheduler(rotation.Config{LockWait: 50 * time.Millisecond})
	if _, err := a.Put(ctx, rotation.Spec{Name: "r", Path: path, Key: "k", Period: time.Hour}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)

	// Another node holds the lock: nothing runs.
	unlock, ok, err := e.store.TryLock(ctx, rotation.LockName)
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	if err := b.RunDue(ctx); !errors.Is(err, rotation.ErrBusy) {
		t.Fatalf("RunDue while the lock is held: %v; want ErrBusy", err)
	}
	if _, err := b.Rotate(ctx, "r"); !errors.Is(err, rotation.ErrBusy) {
		t.Fatalf("Rotate while the lock is held: %v; want ErrBusy", err)
	}
	if got := e.requestsBy("rotation:r"); len(got) != 0 {
		t.Fatalf("requests while another node holds the lock: %v", got)
	}
	unlock()

	// Both nodes find the rotation due at once: one rotates.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []*rotation.Scheduler{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.RunDue(ctx)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, rotation.ErrBusy) {
			t.Fatalf("RunDue: %v", err)
		}
	}
	sch, err := a.Get(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if sch.LastVersion != 2 || sch.LastError != "" {
		t.Fatalf("schedule %+v; want exactly one rotation, to version 2", sch)
	}
	if _, err := e.read(path, 3); !errors.Is(err, errDeleted) {
		t.Fatalf("version 3 exists (%v): both nodes rotated", err)
	}
}

// periodicEngine records the rotations the scheduler asks for. It stands
// in for the database engine's static roles.
type periodicEngine struct {
	mu      sync.Mutex
	due     []string
	rotated []string // guarded by mu
}

func (p *periodicEngine) DueStaticRoles(context.Context, time.Time) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.due...), nil
}

func (p *periodicEngine) RotateStaticRole(_ context.Context, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rotated = append(p.rotated, name)
	return nil
}

func (p *periodicEngine) rotations() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.rotated...)
}

func TestPeriodicEnginesPolledUnderLock(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	eng := &periodicEngine{due: []string{"app", "reports"}}
	cfg := rotation.Config{
		PollInterval: 10 * time.Second,
		Periodic:     func() map[string]rotation.Periodic { return map[string]rotation.Periodic{"database/": eng} },
	}
	a, b := e.scheduler(cfg), e.scheduler(cfg)

	unlock, ok, err := e.store.TryLock(ctx, rotation.LockName)
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	if err := b.RunDue(ctx); !errors.Is(err, rotation.ErrBusy) {
		t.Fatalf("RunDue while the lock is held: %v; want ErrBusy", err)
	}
	if got := eng.rotations(); len(got) != 0 {
		t.Fatalf("rotations without the lock: %v", got)
	}
	unlock()

	if err := a.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	if got := eng.rotations(); strings.Join(got, ",") != "app,reports" {
		t.Fatalf("rotations %v; want app, reports", got)
	}
	// Within the interval a second pass does not poll again.
	if err := a.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	if got := eng.rotations(); len(got) != 2 {
		t.Fatalf("polled again within the interval: %v", got)
	}
	e.clock.Advance(10 * time.Second)
	if err := a.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	if got := eng.rotations(); len(got) != 4 {
		t.Fatalf("not polled after the interval: %v", got)
	}
}

func TestPutUpdateDeleteList(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	path := layouts["simple"]
	s := e.scheduler(rotation.Config{})
	if _, err := s.Put(ctx, rotation.Spec{Name: "b", Path: path, Key: "k", Period: time.Hour}); err != nil {
		t.Fatal(err)
	}
	sch, err := s.Put(ctx, rotation.Spec{Name: "a", Path: path, Key: "k", Period: 30 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if sch.Grace != 30*time.Minute || sch.Generator.Length != rotation.DefaultLength || sch.Generator.Charset != rotation.CharsetAlnum || sch.Kind != rotation.KindKV {
		t.Fatalf("defaults: %+v; want grace capped by the period, length 32, alnum, kind kv", sch)
	}
	e.clock.Advance(10 * time.Minute)
	if _, err := s.Rotate(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	sch, err = s.Put(ctx, rotation.Spec{Name: "a", Path: path, Key: "k", Period: 2 * time.Hour, Grace: ptr(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	last := t0.Add(10 * time.Minute)
	if !sch.LastRotation.Equal(last) || !sch.NextRotation.Equal(last.Add(2*time.Hour)) || sch.LastVersion != 1 || !sch.CreatedAt.Equal(t0) {
		t.Fatalf("after update: %+v; want the state kept and the next rotation a new period after the last", sch)
	}
	names, err := s.List(ctx)
	if err != nil || strings.Join(names, ",") != "a,b" {
		t.Fatalf("List = %v, %v", names, err)
	}
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "a"); !errors.Is(err, rotation.ErrNotFound) || !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("Get after Delete: %v; want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "a"); !errors.Is(err, rotation.ErrNotFound) {
		t.Fatalf("second Delete: %v; want ErrNotFound", err)
	}
	if _, err := s.Rotate(ctx, "a"); !errors.Is(err, rotation.ErrNotFound) {
		t.Fatalf("Rotate of a deleted schedule: %v; want ErrNotFound", err)
	}
}

func TestPutValidation(t *testing.T) {
	ok := rotation.Spec{Name: "r", Path: "secrets/app/api", Key: "k", Period: time.Hour}
	tests := map[string]struct {
		change func(*rotation.Spec)
		field  string
	}{
		"no name":            {func(s *rotation.Spec) { s.Name = "" }, "name"},
		"slash in name":      {func(s *rotation.Spec) { s.Name = "a/b" }, "name"},
		"database kind":      {func(s *rotation.Spec) { s.Kind = "database" }, "kind"},
		"unknown kind":       {func(s *rotation.Spec) { s.Kind = "ssh" }, "kind"},
		"no path":            {func(s *rotation.Spec) { s.Path = "" }, "path"},
		"no mount":           {func(s *rotation.Spec) { s.Path = "nothing/here" }, "path"},
		"not kv":             {func(s *rotation.Spec) { s.Path = "pki/issue/x" }, "path"},
		"kv-v2 without data": {func(s *rotation.Spec) { s.Path = "secret/app/api" }, "path"},
		"mount only":         {func(s *rotation.Spec) { s.Path = "secret/data/" }, "path"},
		"trailing slash":     {func(s *rotation.Spec) { s.Path = "secrets/app/" }, "path"},
		"dot segment":        {func(s *rotation.Spec) { s.Path = "secrets/../x" }, "path"},
		"no key":             {func(s *rotation.Spec) { s.Key = "" }, "key"},
		"short":              {func(s *rotation.Spec) { s.Generator.Length = 7 }, "length"},
		"long":               {func(s *rotation.Spec) { s.Generator.Length = 129 }, "length"},
		"negative length":    {func(s *rotation.Spec) { s.Generator.Length = -1 }, "length"},
		"charset":            {func(s *rotation.Spec) { s.Generator.Charset = "emoji" }, "charset"},
		"short period":       {func(s *rotation.Spec) { s.Period = 59 * time.Second }, "period"},
		"no period":          {func(s *rotation.Spec) { s.Period = 0 }, "period"},
		"negative grace":     {func(s *rotation.Spec) { s.Grace = ptr(-time.Second) }, "grace"},
		"grace over period":  {func(s *rotation.Spec) { s.Grace = ptr(2 * time.Hour) }, "grace"},
	}
	e := newEnv(t)
	s := e.scheduler(rotation.Config{})
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			spec := ok
			tt.change(&spec)
			_, err := s.Put(t.Context(), spec)
			var invalid *logical.InvalidRequestError
			if !errors.As(err, &invalid) || invalid.Field != tt.field {
				t.Fatalf("Put = %v; want an invalid %s", err, tt.field)
			}
		})
	}
	if names, _ := s.List(t.Context()); len(names) != 0 {
		t.Fatalf("invalid specs stored: %v", names)
	}
	for _, l := range []int{rotation.MinLength, rotation.MaxLength} {
		spec := ok
		spec.Generator.Length = l
		if _, err := s.Put(t.Context(), spec); err != nil {
			t.Fatalf("length %d: %v", l, err)
		}
	}
}
