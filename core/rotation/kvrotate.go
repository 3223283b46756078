package rotation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/secrets/kv"
)

// rotateKV writes a new version of sch's secret with sch.Key replaced by a
// fresh value and the other keys kept. The write carries cas = the version
// it read, so a concurrent writer's version is never overwritten
// unseen. A secret that does not exist yet is created with the one key.
// It returns the version written and the one it replaced (0 if none).
func (s *Scheduler) rotateKV(ctx context.Context, sch *Schedule) (written, replaced int, err error) {
	t, err := resolveKV(s.cfg.Mounts, sch.Path)
	if err != nil {
		return 0, 0, err
	}
	do := func(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
		return s.cfg.Request(ctx, &logical.Request{
			Operation: op, Path: path, Data: data, DisplayName: displayName(sch.Name),
		})
	}
	data, current, err := s.readCurrent(t, do)
	if err != nil {
		return 0, 0, err
	}
	value, err := sch.Generator.Generate(s.cfg.Rand)
	if err != nil {
		return 0, 0, err
	}
	next := maps.Clone(data)
	if next == nil {
		next = map[string]any{}
	}
	next[sch.Key] = value
	resp, err := do(logical.OpUpdate, t.dataPath(), map[string]any{
		"data": next, "options": map[string]any{"cas": current},
	})
	if err != nil {
		return 0, 0, fmt.Errorf("write a new version of %s over version %d: %w", sch.Path, current, err)
	}
	if resp == nil {
		return 0, 0, fmt.Errorf("write a new version of %s: the engine answered no version", sch.Path)
	}
	written, ok := versionOf(resp.Data["version"])
	if !ok {
		return 0, 0, fmt.Errorf("write a new version of %s: the engine answered no version", sch.Path)
	}
	return written, current, nil
}

type doFunc func(op logical.Operation, path string, data map[string]any) (*logical.Response, error)

// readCurrent reads the secret's current version and its number; a secret
// that does not exist reads as version 0 with no data. A current version
// that is deleted or destroyed is an error: rotation does not bring a
// deleted secret back.
func (s *Scheduler) readCurrent(t kvTarget, do doFunc) (map[string]any, int, error) {
	path := t.dataPath()
	if t.mount.Layout == kv.LayoutKVv2 {
		resp, err := do(logical.OpRead, path, nil)
		if errors.Is(err, logical.ErrNotFound) {
			return nil, 0, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read %s: %w", path, err)
		}
		if resp == nil || resp.Data == nil {
			return nil, 0, fmt.Errorf("read %s: empty answer", path)
		}
		meta, _ := resp.Data["metadata"].(map[string]any)
		n, ok := versionOf(meta["version"])
		if !ok {
			return nil, 0, fmt.Errorf("read %s: the answer has no version", path)
		}
		if resp.StatusCode == 404 || resp.Data["data"] == nil {
			return nil, 0, logical.Invalid("path", "the current version %d of %s is deleted or destroyed; undelete it or write a new version first", n, path)
		}
		data, ok := resp.Data["data"].(map[string]any)
		if !ok {
			return nil, 0, fmt.Errorf("read %s: the secret is not a JSON object", path)
		}
		return data, n, nil
	}
	resp, err := do(logical.OpRead, path, map[string]any{"metadata": "true"})
	if errors.Is(err, logical.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read the metadata of %s: %w", path, err)
	}
	if resp == nil {
		return nil, 0, fmt.Errorf("read the metadata of %s: empty answer", path)
	}
	n, ok := versionOf(resp.Data["current_version"])
	if !ok {
		return nil, 0, fmt.Errorf("read the metadata of %s: no current version", path)
	}
	if n == 0 {
		return nil, 0, nil
	}
	resp, err = do(logical.OpRead, path, map[string]any{"version": strconv.Itoa(n)})
	if errors.Is(err, logical.ErrNotFound) {
		return nil, 0, logical.Invalid("path", "the current version %d of %s is deleted or destroyed; undelete it or write a new version first", n, path)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read version %d of %s: %w", n, path, err)
	}
	if resp == nil {
		return nil, 0, fmt.Errorf("read version %d of %s: empty answer", n, path)
	}
	return resp.Data, n, nil
}

// retireKV soft-deletes c's version with the delete action of the mount's
// layout. A version already deleted, destroyed or pruned is retired.
func (s *Scheduler) retireKV(ctx context.Context, name string, c *Cleanup) error {
	t, err := resolveKV(s.cfg.Mounts, c.Path)
	if err != nil {
		return fmt.Errorf("retire version %d of %s: %w", c.Version, c.Path, err)
	}
	req := &logical.Request{Operation: logical.OpUpdate, DisplayName: displayName(name)}
	if t.mount.Layout == kv.LayoutKVv2 {
		req.Path = t.mount.Path + "delete/" + t.secret
		req.Data = map[string]any{"versions": []any{c.Version}}
	} else {
		req.Path = t.dataPath()
		req.Data = map[string]any{"action": "delete", "versions": []any{c.Version}}
	}
	if _, err := s.cfg.Request(ctx, req); err != nil {
		return fmt.Errorf("retire version %d of %s: %w", c.Version, c.Path, err)
	}
	return nil
}

// displayName is who the audit log shows for a schedule's requests.
func displayName(schedule string) string { return "rotation:" + schedule }

// versionOf reads a version number from an engine's answer.
func versionOf(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		return int(n), true
	case float64:
		return int(n), n == float64(int(n))
	case json.Number:
		i, err := n.Int64()
		return int(i), err == nil
	}
	return 0, false
}
