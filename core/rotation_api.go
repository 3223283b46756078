package core

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/secrethub/secrethub/core/audit"
	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/rotation"
	"github.com/secrethub/secrethub/core/secrets/kv"
	"github.com/secrethub/secrethub/core/storage"
	"github.com/secrethub/secrethub/core/token"
)

// Scheduled rotation: the scheduler (core/rotation) runs while the core is
// unsealed; sys/rotation/* manages its schedules. Its KV writes go
// through internalRequest, so they are audited like client requests.

// startRotation starts the rotation scheduler of a freshly unsealed core.
// stateMu must be held and c.active set.
func (c *Core) startRotation() error {
	var locker storage.Locker
	if l, ok := c.backend.(storage.Locker); ok {
		locker = l
	}
	s, err := rotation.New(rotation.Config{
		Storage:  c.barrier,
		Locker:   locker,
		Request:  c.internalRequest,
		Mounts:   c.rotationMount,
		Periodic: c.periodicEngines,
		Clock:    rotation.SystemClock{NowFunc: c.now},
		Rand:     c.rand,
		Logger:   c.log,
	})
	if err != nil {
		return fmt.Errorf("rotation scheduler: %w", err)
	}
	c.rotation.Store(s)
	s.Start()
	return nil
}

// stopRotation stops the scheduler and waits for its goroutine. It must
// run before a seal takes reqLock: a rotation in progress holds reqLock
// shared for its KV requests.
func (c *Core) stopRotation() {
	if s := c.rotation.Swap(nil); s != nil {
		s.Stop()
	}
}

// rotationMount tells the scheduler which mount serves path.
func (c *Core) rotationMount(path string) (rotation.MountInfo, bool) {
	st := c.active.Load()
	if st == nil {
		return rotation.MountInfo{}, false
	}
	m, ok := st.mounts.Match(path)
	if !ok {
		return rotation.MountInfo{}, false
	}
	info := rotation.MountInfo{Path: m.Path, Type: m.Type}
	if eng, ok := st.engines[m.Path].(*kv.Engine); ok {
		info.Layout = eng.Layout()
	}
	return info, true
}

// periodicEngines lists the mounted engines that rotate credentials of
// their own, by mount path.
func (c *Core) periodicEngines() map[string]rotation.Periodic {
	st := c.active.Load()
	if st == nil {
		return nil
	}
	out := map[string]rotation.Periodic{}
	for path, eng := range st.engines {
		if p, ok := eng.(rotation.Periodic); ok {
			out[path] = p
		}
	}
	return out
}

// reqLockHeldKey marks a context whose goroutine already holds reqLock
// shared (a sys/rotation handler), so internalRequest does not take it
// again: a second RLock behind a waiting seal would deadlock.
type reqLockHeldKey struct{}

func withReqLockHeld(ctx context.Context) context.Context {
	return context.WithValue(ctx, reqLockHeldKey{}, true)
}

// internalError is an internal failure of an internal request as the
// caller may show it: the public message, with the cause kept for
// errors.Is and the server log.
type internalError struct {
	msg   string
	cause error
}

func (e *internalError) Error() string { return e.msg }
func (e *internalError) Unwrap() error { return e.cause }

// internalRequest runs a request of the core's own jobs (scheduled
// rotation) through the engine mounted at req.Path: no token and no
// policy, but the same audit as a client's request, before (for changes)
// and after it runs, fail closed. The audit log names the job by
// req.DisplayName in the token accessor field. Changes are published to
// watching agents. Only mounted engines are reachable, not sys/ or
// auth/token/.
func (c *Core) internalRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	if ctx.Value(reqLockHeldKey{}) == nil {
		c.reqLock.RLock()
		defer c.reqLock.RUnlock()
	}
	st := c.active.Load()
	if st == nil {
		return nil, ErrSealed
	}
	req.ID = c.newRequestID()
	req.Time = c.now().UTC()
	req.TokenAccessor, req.Policies, req.ClientToken = req.DisplayName, nil, ""
	resp, rt, err := c.handleInternal(ctx, st, req)
	if aerr := c.record(ctx, st, c.auditEvent(req, nil, resp, err)); aerr != nil {
		c.log.ErrorContext(ctx, "audit write failed; internal request refused", "request_id", req.ID, "path", req.Path, "by", req.DisplayName, "error", aerr.Error())
		return nil, ErrAuditFailed
	}
	if err != nil {
		if StatusOf(err) >= 500 {
			c.log.ErrorContext(ctx, "internal request failed", "request_id", req.ID, "path", req.Path, "by", req.DisplayName, "error", err.Error())
			return nil, &internalError{msg: fmt.Sprintf("%s %s: %s (request %s)", req.Operation, req.Path, PublicMessage(err), req.ID), cause: err}
		}
		return nil, err
	}
	if req.Operation != logical.OpRead && req.Operation != logical.OpList {
		c.publishCommitted(req, rt, resp)
	}
	return resp, nil
}

func (c *Core) handleInternal(ctx context.Context, st *activeState, req *logical.Request) (*logical.Response, route, error) {
	clean, folder, err := logical.CleanPath(req.Path)
	if err != nil {
		return nil, route{}, err
	}
	req.Path = clean
	if folder && req.Operation == logical.OpRead {
		req.Operation = logical.OpList
	}
	if clean == "sys" || strings.HasPrefix(clean, "sys/") || clean == "auth/token" || strings.HasPrefix(clean, "auth/token/") {
		return nil, route{}, fmt.Errorf("%w: internal requests reach mounted engines only, not %q", logical.ErrUnsupportedPath, clean)
	}
	rt, err := c.route(st, req)
	if err != nil {
		return nil, rt, err
	}
	if rt.engine == nil {
		return nil, rt, fmt.Errorf("%w: no engine serves %q", logical.ErrUnsupportedPath, clean)
	}
	if err := c.resolveWrite(ctx, rt, req); err != nil {
		return nil, rt, err
	}
	if req.Operation != logical.OpRead && req.Operation != logical.OpList {
		started := c.auditEvent(req, nil, nil, nil)
		started.Result, started.StatusCode = audit.ResultStarted, 0
		if err := c.record(ctx, st, started); err != nil {
			c.log.ErrorContext(ctx, "audit write failed; internal request refused unrun", "request_id", req.ID, "path", req.Path, "error", err.Error())
			return nil, rt, ErrAuditFailed
		}
	}
	resp, err := rt.engine.HandleRequest(ctx, req)
	return resp, rt, err
}

// rotationRoute serves sys/rotation/*:
//
//	sys/rotation/schedules          list
//	sys/rotation/schedules/:name    create/update, read, delete
//	sys/rotation/rotate/:name       update: rotate now
func (c *Core) rotationRoute(req *logical.Request, p string) (route, error) {
	op := req.Operation
	isWrite := op == logical.OpCreate || op == logical.OpUpdate
	bad := func() (route, error) {
		return route{}, fmt.Errorf("%w: %s on %s", logical.ErrUnsupportedOperation, op, req.Path)
	}
	switch {
	case p == "rotation/schedules":
		if op != logical.OpList && op != logical.OpRead {
			return bad()
		}
		req.Operation = logical.OpList
		return route{handler: c.rotationList}, nil
	case strings.HasPrefix(p, "rotation/schedules/"):
		switch {
		case isWrite:
			return route{handler: c.rotationPut}, nil
		case op == logical.OpRead:
			return route{handler: c.rotationRead}, nil
		case op == logical.OpDelete:
			return route{handler: c.rotationDelete}, nil
		}
		return bad()
	case strings.HasPrefix(p, "rotation/rotate/"):
		if !isWrite {
			return bad()
		}
		return route{handler: c.rotationRotate}, nil
	}
	return route{}, fmt.Errorf("%w: %q", logical.ErrUnsupportedPath, req.Path)
}

// scheduler returns the running scheduler, or ErrSealed.
func (c *Core) scheduler() (*rotation.Scheduler, error) {
	if s := c.rotation.Load(); s != nil {
		return s, nil
	}
	return nil, ErrSealed
}

func scheduleName(req *logical.Request, prefix string) (string, error) {
	name := strings.TrimPrefix(req.RelativePath, prefix)
	if err := rotation.ValidateName(name); err != nil {
		return "", err
	}
	return name, nil
}

// scheduleData is a schedule as the API shows it. Durations are Go
// durations ("24h0m0s"), times RFC 3339 in UTC ("" when unset).
func scheduleData(s rotation.Schedule) map[string]any {
	var cleanup any
	if s.Cleanup != nil {
		cleanup = map[string]any{"path": s.Cleanup.Path, "version": s.Cleanup.Version, "at": rotationTime(s.Cleanup.At)}
	}
	return map[string]any{
		"name": s.Name, "kind": string(s.Kind), "path": s.Path, "key": s.Key,
		"length": s.Generator.Length, "charset": string(s.Generator.Charset),
		"period": s.Period.String(), "grace": s.Grace.String(),
		"created_at": rotationTime(s.CreatedAt), "updated_at": rotationTime(s.UpdatedAt),
		"last_rotation": rotationTime(s.LastRotation), "next_rotation": rotationTime(s.NextRotation),
		"last_version": s.LastVersion, "last_error": s.LastError, "cleanup": cleanup,
	}
}

func rotationTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func (c *Core) rotationList(ctx context.Context, _ *logical.Request, _ *token.Entry) (*logical.Response, error) {
	s, err := c.scheduler()
	if err != nil {
		return nil, err
	}
	names, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	keys := make([]any, len(names))
	for i, n := range names {
		keys[i] = n
	}
	return &logical.Response{Data: map[string]any{"keys": keys}}, nil
}

func (c *Core) rotationRead(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	s, err := c.scheduler()
	if err != nil {
		return nil, err
	}
	name, err := scheduleName(req, "rotation/schedules/")
	if err != nil {
		return nil, err
	}
	sch, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: scheduleData(sch)}, nil
}

// rotationPut creates or updates a schedule. On update, fields not given
// keep their values.
func (c *Core) rotationPut(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	s, err := c.scheduler()
	if err != nil {
		return nil, err
	}
	name, err := scheduleName(req, "rotation/schedules/")
	if err != nil {
		return nil, err
	}
	d := req.Data
	if err := checkFields(d, "name", "kind", "path", "key", "length", "charset", "period", "grace"); err != nil {
		return nil, err
	}
	spec := rotation.Spec{Name: name}
	old, err := s.Get(ctx, name)
	switch {
	case err == nil:
		spec = rotation.Spec{Name: name, Kind: old.Kind, Path: old.Path, Key: old.Key, Generator: old.Generator, Period: old.Period, Grace: &old.Grace}
	case !errors.Is(err, rotation.ErrNotFound):
		return nil, err
	}
	if n, err := fieldString(d, "name"); err != nil {
		return nil, err
	} else if n != "" && n != name {
		return nil, logical.Invalid("name", "%q differs from the name in the path, %q", n, name)
	}
	for f, dst := range map[string]*string{"path": &spec.Path, "key": &spec.Key} {
		if _, ok := d[f]; ok {
			if *dst, err = fieldString(d, f); err != nil {
				return nil, err
			}
		}
	}
	if _, ok := d["kind"]; ok {
		k, err := fieldString(d, "kind")
		if err != nil {
			return nil, err
		}
		spec.Kind = rotation.Kind(k)
	}
	if _, ok := d["charset"]; ok {
		cs, err := fieldString(d, "charset")
		if err != nil {
			return nil, err
		}
		spec.Generator.Charset = rotation.Charset(cs)
	}
	if _, ok := d["length"]; ok {
		if spec.Generator.Length, err = rotationInt(d, "length"); err != nil {
			return nil, err
		}
	}
	if _, ok := d["period"]; ok {
		if spec.Period, err = fieldDuration(d, "period"); err != nil {
			return nil, err
		}
	}
	if v, ok := d["grace"]; ok && v != nil {
		g, err := fieldDuration(d, "grace")
		if err != nil {
			return nil, err
		}
		spec.Grace = &g
	}
	sch, err := s.Put(withReqLockHeld(ctx), spec)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: scheduleData(sch)}, nil
}

func (c *Core) rotationDelete(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	s, err := c.scheduler()
	if err != nil {
		return nil, err
	}
	name, err := scheduleName(req, "rotation/schedules/")
	if err != nil {
		return nil, err
	}
	return nil, s.Delete(withReqLockHeld(ctx), name)
}

func (c *Core) rotationRotate(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	s, err := c.scheduler()
	if err != nil {
		return nil, err
	}
	name, err := scheduleName(req, "rotation/rotate/")
	if err != nil {
		return nil, err
	}
	if err := checkFields(req.Data); err != nil {
		return nil, err
	}
	sch, err := s.Rotate(withReqLockHeld(ctx), name)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: scheduleData(sch)}, nil
}

// rotationInt reads an optional whole number field (a JSON number or a
// string of digits).
func rotationInt(data map[string]any, name string) (int, error) {
	switch x := data[name].(type) {
	case nil:
		return 0, nil
	case float64:
		if x != float64(int(x)) {
			return 0, logical.Invalid(name, "want a whole number, got %v", x)
		}
		return int(x), nil
	case int:
		return x, nil
	case string:
		if x == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(strings.TrimSpace(x))
		if err != nil {
			return 0, logical.Invalid(name, "want a whole number, got %q", x)
		}
		return n, nil
	}
	if n, ok := data[name].(interface{ Int64() (int64, error) }); ok {
		v, err := n.Int64()
		if err != nil {
			return 0, logical.Invalid(name, "want a whole number")
		}
		return int(v), nil
	}
	return 0, logical.Invalid(name, "want a whole number, got %s", jsonType(data[name]))
}
