package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/secrethub/secrethub/core/audit"
	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/mount"
	"github.com/secrethub/secrethub/core/policy"
	"github.com/secrethub/secrethub/core/token"
)

// sysRoute serves the sys/ paths that need an unsealed core and a token.
// (init, unseal, seal-status and health are served by the HTTP layer
// directly: they must answer while sealed.)
func (c *Core) sysRoute(req *logical.Request) (route, error) {
	p := strings.TrimPrefix(req.Path, "sys/")
	req.MountPath, req.RelativePath = "sys/", p
	op := req.Operation
	isWrite := op == logical.OpCreate || op == logical.OpUpdate
	bad := func() (route, error) {
		return route{}, fmt.Errorf("%w: %s on %s", logical.ErrUnsupportedOperation, op, req.Path)
	}
	switch {
	case isLeasePath(p):
		return c.leaseRoute(req, p)
	case strings.HasPrefix(p, "agent/"):
		return c.agentRoute(req, p)
	case p == "agents" || strings.HasPrefix(p, "agents/"):
		return c.sysAgentsRoute(req, p)
	case p == "rotation" || strings.HasPrefix(p, "rotation/"):
		return c.rotationRoute(req, p)
	case p == "seal":
		if !isWrite {
			return bad()
		}
		return route{handler: func(context.Context, *logical.Request, *token.Entry) (*logical.Response, error) {
			return nil, nil
		}, sudo: true, sealAfter: true}, nil
	case p == "rotate":
		if !isWrite {
			return bad()
		}
		return route{handler: c.sysRotate, sudo: true}, nil
	case p == "key-status":
		if op != logical.OpRead {
			return bad()
		}
		return route{handler: c.sysKeyStatus}, nil
	case p == "mounts" || p == "auth":
		if op != logical.OpRead && op != logical.OpList {
			return bad()
		}
		return route{handler: c.sysListMounts(p == "auth")}, nil
	case strings.HasPrefix(p, "mounts/"), strings.HasPrefix(p, "auth/"):
		// Changing auth methods changes who can log in: sudo, as in Vault.
		sudo := strings.HasPrefix(mountPathOf(p), "auth/")
		switch {
		case isWrite:
			return route{handler: c.sysMount, sudo: sudo}, nil
		case op == logical.OpDelete:
			return route{handler: c.sysUnmount, sudo: sudo}, nil
		case op == logical.OpRead:
			return route{handler: c.sysReadMount}, nil
		}
		return bad()
	case p == "policies/acl" || p == "policy":
		if op != logical.OpList && op != logical.OpRead {
			return bad()
		}
		req.Operation = logical.OpList
		return route{handler: c.sysListPolicies}, nil
	case strings.HasPrefix(p, "policies/acl/"), strings.HasPrefix(p, "policy/"):
		switch {
		case isWrite:
			return route{handler: c.sysWritePolicy}, nil
		case op == logical.OpRead:
			return route{handler: c.sysReadPolicy}, nil
		case op == logical.OpDelete:
			return route{handler: c.sysDeletePolicy}, nil
		}
		return bad()
	case p == "capabilities-self":
		if !isWrite {
			return bad()
		}
		return route{handler: c.sysCapabilitiesSelf}, nil
	case p == "capabilities":
		if !isWrite {
			return bad()
		}
		return route{handler: c.sysCapabilities, sudo: true}, nil
	case p == "policies/explain-self":
		if !isWrite {
			return bad()
		}
		return route{handler: c.sysExplainSelf}, nil
	case p == "policies/explain":
		if !isWrite {
			return bad()
		}
		return route{handler: c.sysExplain, sudo: true}, nil
	case p == "audit-hash" || strings.HasPrefix(p, "audit-hash/"):
		if !isWrite {
			return bad()
		}
		return route{handler: c.sysAuditHash}, nil
	case p == "audit/verify":
		if op != logical.OpRead {
			return bad()
		}
		return route{handler: c.sysAuditVerify, sudo: true}, nil
	case p == "audit/export":
		if op != logical.OpRead {
			return bad()
		}
		return route{handler: c.sysAuditExport, sudo: true}, nil
	}
	return route{}, fmt.Errorf("%w: %q", logical.ErrUnsupportedPath, req.Path)
}

func (c *Core) sysRotate(ctx context.Context, _ *logical.Request, caller *token.Entry) (*logical.Response, error) {
	st, err := c.barrier.Rotate(ctx)
	if err != nil {
		return nil, fmt.Errorf("rotate: %w", err)
	}
	c.log.InfoContext(ctx, "barrier key rotated", "term", st.Term, "accessor", caller.Accessor)
	return nil, nil
}

func (c *Core) sysKeyStatus(context.Context, *logical.Request, *token.Entry) (*logical.Response, error) {
	st, err := c.barrier.KeyStatus()
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{
		"term": st.Term, "install_time": st.InstallTime.Format(time.RFC3339Nano), "terms": st.Terms,
	}}, nil
}

// Mounts.

func mountData(e mount.Entry) map[string]any {
	opts := map[string]any{}
	for k, v := range e.Options {
		opts[k] = v
	}
	return map[string]any{
		"type": e.Type, "description": e.Description, "options": opts, "uuid": e.UUID, "accessor": e.Type + "_" + e.UUID[:8],
		"config": map[string]any{}, "local": false, "seal_wrap": false,
	}
}

func (c *Core) sysListMounts(auth bool) func(context.Context, *logical.Request, *token.Entry) (*logical.Response, error) {
	return func(_ context.Context, _ *logical.Request, _ *token.Entry) (*logical.Response, error) {
		st := c.active.Load()
		if st == nil {
			return nil, ErrSealed
		}
		data := map[string]any{}
		for _, e := range st.mounts.Entries() {
			if strings.HasPrefix(e.Path, "auth/") != auth {
				continue
			}
			p := e.Path
			if auth {
				p = strings.TrimPrefix(p, "auth/")
			}
			data[p] = mountData(e)
		}
		if auth {
			data["token/"] = map[string]any{"type": "token", "description": "token based credentials", "options": map[string]any{}}
		} else {
			data["sys/"] = map[string]any{"type": "system", "description": "system endpoints", "options": map[string]any{}}
		}
		return &logical.Response{Data: data}, nil
	}
}

// mountPathOf reads the mount path from sys/mounts/<path> or
// sys/auth/<path>.
func mountPathOf(rel string) string {
	if p, ok := strings.CutPrefix(rel, "auth/"); ok {
		return "auth/" + p + "/"
	}
	return strings.TrimPrefix(rel, "mounts/") + "/"
}

func (c *Core) sysReadMount(_ context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	st := c.active.Load()
	if st == nil {
		return nil, ErrSealed
	}
	path := mountPathOf(req.RelativePath)
	for _, e := range st.mounts.Entries() {
		if e.Path == path {
			return &logical.Response{Data: mountData(e)}, nil
		}
	}
	return nil, logical.ErrNotFound
}

func (c *Core) sysMount(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	d := req.Data
	if err := checkFields(d, "type", "description", "options", "config", "local", "seal_wrap", "plugin_name", "external_entropy_access", "plugin_version"); err != nil {
		return nil, err
	}
	typ, err := fieldString(d, "type")
	if err != nil {
		return nil, err
	}
	desc, err := fieldString(d, "description")
	if err != nil {
		return nil, err
	}
	opts := map[string]string{}
	if raw, ok := d["options"].(map[string]any); ok {
		for k, v := range raw {
			opts[k] = fmt.Sprint(v)
		}
	} else if d["options"] != nil {
		return nil, logical.Invalid("options", "want an object")
	}
	entry := mount.Entry{Path: mountPathOf(req.RelativePath), Type: typ, Description: desc, Options: opts}
	if err := c.mount(ctx, entry); err != nil {
		return nil, err
	}
	return nil, nil
}

func (c *Core) sysUnmount(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	return nil, c.unmount(ctx, mountPathOf(req.RelativePath))
}

// Policies.

func policyName(rel string) string {
	if n, ok := strings.CutPrefix(rel, "policies/acl/"); ok {
		return n
	}
	return strings.TrimPrefix(rel, "policy/")
}

func (c *Core) sysListPolicies(ctx context.Context, _ *logical.Request, _ *token.Entry) (*logical.Response, error) {
	names, err := c.policies.List(ctx)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"keys": names, "policies": names}}, nil
}

func (c *Core) sysReadPolicy(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	name := policyName(req.RelativePath)
	_, doc, err := c.policies.Get(ctx, name)
	if errors.Is(err, policy.ErrNotFound) {
		return nil, logical.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"name": name, "policy": string(doc), "rules": string(doc)}}, nil
}

func (c *Core) sysWritePolicy(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	if err := checkFields(req.Data, "policy", "rules", "name"); err != nil {
		return nil, err
	}
	doc, err := fieldString(req.Data, "policy")
	if err != nil {
		return nil, err
	}
	if doc == "" {
		if doc, err = fieldString(req.Data, "rules"); err != nil {
			return nil, err
		}
	}
	if strings.TrimSpace(doc) == "" {
		return nil, logical.Invalid("policy", "missing: the policy document (JSON or YAML) as a string")
	}
	if _, err := c.policies.Put(ctx, policyName(req.RelativePath), []byte(doc)); err != nil {
		return nil, policyError(err)
	}
	return nil, nil
}

func (c *Core) sysDeletePolicy(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	if err := c.policies.Delete(ctx, policyName(req.RelativePath)); err != nil {
		return nil, policyError(err)
	}
	return nil, nil
}

// policyError turns the policy package's validation errors into 400s.
func policyError(err error) error {
	var ve *policy.ValidationError
	if errors.As(err, &ve) {
		return &logical.InvalidRequestError{Field: "policy", Reason: ve.Error()}
	}
	if errors.Is(err, policy.ErrNotFound) {
		return logical.ErrNotFound
	}
	if errors.Is(err, policy.ErrBuiltin) {
		return logical.Invalid("name", "root and default are built in: root cannot be written or deleted, default cannot be deleted")
	}
	return err
}

// Capabilities and explain.

func pathsOf(data map[string]any) ([]string, error) {
	paths, err := fieldStrings(data, "paths")
	if err != nil {
		return nil, err
	}
	p, err := fieldString(data, "path")
	if err != nil {
		return nil, err
	}
	if p != "" {
		paths = append(paths, p)
	}
	if len(paths) == 0 {
		return nil, logical.Invalid("paths", "missing: give path or paths")
	}
	for i, raw := range paths {
		clean, _, err := logical.CleanPath(raw)
		if err != nil {
			return nil, logical.Invalid(fmt.Sprintf("paths[%d]", i), "%v", err)
		}
		paths[i] = clean
	}
	return paths, nil
}

func (c *Core) capabilities(ctx context.Context, req *logical.Request, e *token.Entry) (*logical.Response, error) {
	paths, err := pathsOf(req.Data)
	if err != nil {
		return nil, err
	}
	acl, err := c.aclFor(ctx, e)
	if err != nil {
		return nil, err
	}
	data := map[string]any{}
	var all []string
	for _, p := range paths {
		caps := acl.Capabilities(p, req.Time, req.ClientAddr)
		data[p] = caps
		all = append(all, caps...)
	}
	slices.Sort(all)
	data["capabilities"] = slices.Compact(all)
	return &logical.Response{Data: data}, nil
}

func (c *Core) sysCapabilitiesSelf(ctx context.Context, req *logical.Request, caller *token.Entry) (*logical.Response, error) {
	if err := checkFields(req.Data, "path", "paths", "token"); err != nil {
		return nil, err
	}
	return c.capabilities(ctx, req, caller)
}

func (c *Core) sysCapabilities(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	if err := checkFields(req.Data, "path", "paths", "token"); err != nil {
		return nil, err
	}
	_, e, err := c.targetToken(ctx, req)
	if err != nil {
		return nil, err
	}
	return c.capabilities(ctx, req, e)
}

// explain evaluates one operation on a path for token entry e and answers
// which rule of which policy decided, with the trace.
func (c *Core) explain(ctx context.Context, req *logical.Request, e *token.Entry) (*logical.Response, error) {
	p, err := fieldString(req.Data, "path")
	if err != nil {
		return nil, err
	}
	path, _, err := logical.CleanPath(p)
	if err != nil {
		return nil, err
	}
	capName, err := fieldString(req.Data, "capability")
	if err != nil {
		return nil, err
	}
	if capName == "" {
		if capName, err = fieldString(req.Data, "operation"); err != nil {
			return nil, err
		}
	}
	if capName == "" {
		capName = "read"
	}
	capability := policy.Capability(capName)
	if !slices.Contains([]policy.Capability{policy.Create, policy.Read, policy.Update, policy.Delete, policy.List, policy.Sudo}, capability) {
		return nil, logical.Invalid("capability", "unknown capability %q; want create, read, update, delete, list or sudo", capName)
	}
	ttl, err := fieldDuration(req.Data, "ttl")
	if err != nil {
		return nil, err
	}
	acl, err := c.aclFor(ctx, e)
	if err != nil {
		return nil, err
	}
	d := acl.Explain(policy.Request{Path: path, Capability: capability, Time: req.Time, ClientAddr: req.ClientAddr, TTL: ttl})
	trace := make([]any, 0, len(d.Trace))
	for _, r := range d.Trace {
		conds := make([]any, 0, len(r.Conditions))
		for _, cr := range r.Conditions {
			conds = append(conds, map[string]any{"name": cr.Name, "ok": cr.OK, "unknown": cr.Unknown, "why": cr.Why})
		}
		caps := make([]any, len(r.Capabilities))
		for i, c := range r.Capabilities {
			caps[i] = string(c)
		}
		trace = append(trace, map[string]any{
			"policy": r.Policy, "rule_index": r.RuleIndex, "path": r.Path, "matched": r.Matched,
			"effect": string(r.Effect), "capabilities": caps, "conditions": conds, "outcome": string(r.Outcome),
		})
	}
	return &logical.Response{Data: map[string]any{
		"path": path, "capability": string(capability), "allowed": d.Allowed, "reason": d.Reason,
		"policy": d.Policy, "rule_index": d.RuleIndex, "rule_path": d.RulePath,
		"failed_condition": d.FailedCondition, "policies": acl.Policies(), "trace": trace,
	}}, nil
}

func (c *Core) sysExplainSelf(ctx context.Context, req *logical.Request, caller *token.Entry) (*logical.Response, error) {
	if err := checkFields(req.Data, "path", "capability", "operation", "ttl"); err != nil {
		return nil, err
	}
	return c.explain(ctx, req, caller)
}

func (c *Core) sysExplain(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	if err := checkFields(req.Data, "path", "capability", "operation", "ttl", "token", "accessor"); err != nil {
		return nil, err
	}
	var e *token.Entry
	var err error
	if _, ok := req.Data["accessor"]; ok {
		e, err = c.targetAccessor(ctx, req)
	} else {
		_, e, err = c.targetToken(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	return c.explain(ctx, req, e)
}

// Audit.

func (c *Core) sysAuditHash(_ context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	if err := checkFields(req.Data, "input"); err != nil {
		return nil, err
	}
	in, err := fieldString(req.Data, "input")
	if err != nil {
		return nil, err
	}
	st := c.active.Load()
	if st == nil {
		return nil, ErrSealed
	}
	return &logical.Response{Data: map[string]any{"hash": st.audit.HashValue(in)}}, nil
}

func (c *Core) sysAuditVerify(ctx context.Context, _ *logical.Request, _ *token.Entry) (*logical.Response, error) {
	st := c.active.Load()
	if st == nil {
		return nil, ErrSealed
	}
	if len(c.auditSinks) == 0 {
		return nil, logical.Invalid("", "no audit sink is configured")
	}
	data := map[string]any{}
	ok := true
	headSeq, _ := st.audit.Head()
	for _, s := range c.auditSinks {
		src, isSource := s.Sink.(audit.Source)
		if !isSource {
			continue
		}
		rep, err := audit.Verify(ctx, src, &st.auditKeys)
		if err != nil {
			return nil, fmt.Errorf("audit verify %s: %w", s.Name, err)
		}
		// The chain alone cannot show records cut from its end; the log's
		// head (as of this request) can.
		if rep.OK && rep.LastSeq < headSeq {
			rep.OK, rep.FirstBadSeq = false, rep.LastSeq+1
			rep.Reason = fmt.Sprintf("records %d to %d are missing: the end of the log was cut", rep.LastSeq+1, headSeq)
		}
		ok = ok && rep.OK
		data[s.Name] = map[string]any{
			"records": rep.Records, "ok": rep.OK, "first_bad_seq": rep.FirstBadSeq, "reason": rep.Reason,
		}
	}
	data["ok"] = ok
	return &logical.Response{Data: data}, nil
}

func (c *Core) sysAuditExport(ctx context.Context, req *logical.Request, _ *token.Entry) (*logical.Response, error) {
	if err := checkFields(req.Data, "format", "since", "until", "path_prefix", "sink"); err != nil {
		return nil, err
	}
	format, _ := fieldString(req.Data, "format")
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "csv" {
		return nil, logical.Invalid("format", "want json or csv, got %q", format)
	}
	var f audit.Filter
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		s, err := fieldString(req.Data, name)
		if err != nil {
			return nil, err
		}
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return nil, logical.Invalid(name, "want an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", s)
		}
		*dst = t
	}
	f.PathPrefix, _ = fieldString(req.Data, "path_prefix")
	var src audit.Source
	for _, s := range c.auditSinks {
		if as, ok := s.Sink.(audit.Source); ok {
			src = as
			break
		}
	}
	if src == nil {
		return nil, logical.Invalid("", "no audit sink can be read back")
	}
	var buf bytes.Buffer
	if err := audit.Export(ctx, src, &buf, format, f); err != nil {
		return nil, fmt.Errorf("audit export: %w", err)
	}
	ct := "application/x-ndjson"
	if format == "csv" {
		ct = "text/csv"
	}
	return &logical.Response{Raw: buf.Bytes(), RawContentType: ct}, nil
}
