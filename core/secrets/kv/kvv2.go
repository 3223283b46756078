package kv

import (
	"context"
	"fmt"
	"strings"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
)

// The kv-v2 layout: Vault's KV version 2 paths.
//
//	config                          read, update: max_versions, cas_required, delete_version_after
//	data/<path>                     read (?version=N), create/update {"data", "options"}, delete (latest)
//	metadata/<path>                 read, create/update, delete (everything)
//	metadata/<folder>               list
//	delete/<path>                   update {"versions"}: soft-delete
//	undelete/<path>                 update {"versions"}
//	destroy/<path>                  update {"versions"}
//	subkeys/<path>                  read (?version=N&depth=D)

// The kv-v2 routes, the first segment of the relative path.
const (
	routeConfig   = "config"
	routeData     = "data"
	routeMetadata = "metadata"
	routeDelete   = "delete"
	routeUndelete = "undelete"
	routeDestroy  = "destroy"
	routeSubkeys  = "subkeys"
)

// Fields of the kv-v2 metadata and config bodies.
const (
	fieldMaxVersions        = "max_versions"
	fieldCASRequired        = "cas_required"
	fieldDeleteVersionAfter = "delete_version_after"
	fieldCustomMetadata     = "custom_metadata"
)

// splitRoute splits a kv-v2 relative path into its route and the secret
// path below it.
func splitRoute(rel string) (route, rest string) {
	route, rest, _ = strings.Cut(rel, "/")
	return route, rest
}

func unsupportedOp(req *logical.Request) error {
	return fmt.Errorf("kv: %s %q: %w", req.Operation, req.RelativePath, logical.ErrUnsupportedOperation)
}

func isWrite(op logical.Operation) bool { return op == logical.OpCreate || op == logical.OpUpdate }

func (e *Engine) handleKVv2(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	route, rest := splitRoute(req.RelativePath)
	switch route {
	case routeConfig:
		if rest != "" {
			break
		}
		switch {
		case req.Operation == logical.OpRead:
			return e.configRead(ctx)
		case isWrite(req.Operation):
			return e.configWrite(ctx, req.Data)
		}
		return nil, unsupportedOp(req)
	case routeData:
		return e.dataPath(ctx, req, rest)
	case routeMetadata:
		return e.metadataPath(ctx, req, rest)
	case routeDelete, routeUndelete, routeDestroy:
		if !isWrite(req.Operation) {
			return nil, unsupportedOp(req)
		}
		return e.versionsPath(ctx, route, rest, req.Data)
	case routeSubkeys:
		if req.Operation != logical.OpRead {
			return nil, unsupportedOp(req)
		}
		return e.subkeysRead(ctx, rest, req.Data)
	}
	return nil, fmt.Errorf("kv: %q: %w", req.RelativePath, logical.ErrUnsupportedPath)
}

func (e *Engine) existsKVv2(ctx context.Context, req *logical.Request) (bool, error) {
	route, rest := splitRoute(req.RelativePath)
	switch route {
	case routeData, routeMetadata:
		p, err := secretPath(rest)
		if err != nil {
			return false, err
		}
		return e.exists(ctx, p)
	case routeConfig, routeDelete, routeUndelete, routeDestroy:
		return true, nil
	}
	return false, nil
}

func (e *Engine) dataPath(ctx context.Context, req *logical.Request, rest string) (*logical.Response, error) {
	if req.Operation == logical.OpList {
		return nil, unsupportedOp(req)
	}
	p, err := secretPath(rest)
	if err != nil {
		return nil, err
	}
	switch req.Operation {
	case logical.OpRead:
		n, err := versionParam(req.Data)
		if err != nil {
			return nil, err
		}
		r, err := e.read(ctx, p, n)
		if err != nil {
			return nil, err
		}
		if !r.View.live() {
			return deletedResponse("data", r), nil
		}
		return &logical.Response{Data: map[string]any{
			"data":     r.Data,
			"metadata": versionData(r.View, r.Meta),
		}}, nil
	case logical.OpCreate, logical.OpUpdate:
		data, cas, err := dataBody(req.Data)
		if err != nil {
			return nil, err
		}
		w, err := e.write(ctx, p, data, cas)
		if err != nil {
			return nil, err
		}
		resp := &logical.Response{Data: versionData(w.View, w.Meta)}
		return withWarnings(resp, ignoredWarning(field.Unknown(req.Data, "data", "options"))), nil
	case logical.OpDelete:
		return nil, e.apply(ctx, "delete", p, nil, softDelete)
	}
	return nil, unsupportedOp(req)
}

// dataBody parses a kv-v2 write body: {"data": {...}, "options": {"cas": N}}.
func dataBody(body map[string]any) (map[string]any, *int, error) {
	raw := body["data"]
	if raw == nil {
		return nil, nil, logical.Invalid("data", "no data provided")
	}
	data, ok := raw.(map[string]any)
	if !ok {
		return nil, nil, logical.Invalid("data", "must be a JSON object")
	}
	var cas *int
	switch opts := body["options"].(type) {
	case nil:
	case map[string]any:
		var err error
		if cas, err = parseCAS("options.cas", opts["cas"]); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, logical.Invalid("options", "must be a JSON object")
	}
	return data, cas, nil
}

func (e *Engine) metadataPath(ctx context.Context, req *logical.Request, rest string) (*logical.Response, error) {
	if req.Operation == logical.OpList {
		folder, err := folderPath(rest)
		if err != nil {
			return nil, err
		}
		return e.listResponse(ctx, folder)
	}
	p, err := secretPath(rest)
	if err != nil {
		return nil, err
	}
	switch req.Operation {
	case logical.OpRead:
		cfg, m, err := e.metadata(ctx, p)
		if err != nil {
			return nil, err
		}
		return &logical.Response{Data: metadataData(cfg, m, e.now())}, nil
	case logical.OpCreate, logical.OpUpdate:
		u, err := parseMetaUpdate(req.Data, true)
		if err != nil {
			return nil, err
		}
		if err := e.writeMeta(ctx, p, u); err != nil {
			return nil, err
		}
		unknown := field.Unknown(req.Data, fieldMaxVersions, fieldCASRequired, fieldDeleteVersionAfter, fieldCustomMetadata)
		return withWarnings(nil, ignoredWarning(unknown)), nil
	case logical.OpDelete:
		return nil, e.deleteAll(ctx, p)
	}
	return nil, unsupportedOp(req)
}

// parseMetaUpdate parses the fields of a metadata (withCustom) or config
// body. A field that is absent or null is left as it is, except
// custom_metadata, which null clears.
func parseMetaUpdate(body map[string]any, withCustom bool) (metaUpdate, error) {
	var u metaUpdate
	if v := body[fieldMaxVersions]; v != nil {
		n, err := parseInt(fieldMaxVersions, v, 0, maxVersionNumber)
		if err != nil {
			return u, err
		}
		mv := int(n)
		u.MaxVersions = &mv
	}
	if v := body[fieldCASRequired]; v != nil {
		b, err := parseBool(fieldCASRequired, v)
		if err != nil {
			return u, err
		}
		u.CASRequired = &b
	}
	if v := body[fieldDeleteVersionAfter]; v != nil {
		d, err := parseDuration(fieldDeleteVersionAfter, v)
		if err != nil {
			return u, err
		}
		u.DeleteVersionAfter = &d
	}
	if v, ok := body[fieldCustomMetadata]; ok && withCustom {
		cm, err := parseCustomMetadata(fieldCustomMetadata, v)
		if err != nil {
			return u, err
		}
		u.CustomMetadata = &cm
	}
	return u, nil
}

func (e *Engine) versionsPath(ctx context.Context, route, rest string, body map[string]any) (*logical.Response, error) {
	p, err := secretPath(rest)
	if err != nil {
		return nil, err
	}
	versions, err := parseVersions("versions", body["versions"])
	if err != nil {
		return nil, err
	}
	act := map[string]versionAction{routeDelete: softDelete, routeUndelete: undelete, routeDestroy: destroy}[route]
	if err := e.apply(ctx, route, p, versions, act); err != nil {
		return nil, err
	}
	return withWarnings(nil, ignoredWarning(field.Unknown(body, "versions"))), nil
}

func (e *Engine) subkeysRead(ctx context.Context, rest string, params map[string]any) (*logical.Response, error) {
	p, err := secretPath(rest)
	if err != nil {
		return nil, err
	}
	n, err := versionParam(params)
	if err != nil {
		return nil, err
	}
	depth := 0
	if v := param(params, "depth"); v != nil {
		d, err := parseInt("depth", v, 0, maxVersionNumber)
		if err != nil {
			return nil, err
		}
		depth = int(d)
	}
	r, err := e.read(ctx, p, n)
	if err != nil {
		return nil, err
	}
	if !r.View.live() {
		return deletedResponse("subkeys", r), nil
	}
	return &logical.Response{Data: map[string]any{
		"subkeys":  subkeys(r.Data, depth, 1),
		"metadata": versionData(r.View, r.Meta),
	}}, nil
}

// subkeys returns m's structure without its values: every key maps to nil,
// or to its own subkeys when it holds an object and level is within depth
// (0: unlimited).
func subkeys(m map[string]any, depth, level int) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		child, ok := v.(map[string]any)
		if ok && (depth == 0 || level < depth) {
			out[k] = subkeys(child, depth, level+1)
			continue
		}
		out[k] = nil
	}
	return out
}

func (e *Engine) configRead(ctx context.Context) (*logical.Response, error) {
	cfg, err := e.config(ctx)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{
		fieldMaxVersions:        cfg.MaxVersions,
		fieldCASRequired:        cfg.CASRequired,
		fieldDeleteVersionAfter: cfg.DeleteVersionAfter.String(),
	}}, nil
}

func (e *Engine) configWrite(ctx context.Context, body map[string]any) (*logical.Response, error) {
	u, err := parseMetaUpdate(body, false)
	if err != nil {
		return nil, err
	}
	if err := e.writeConfig(ctx, u); err != nil {
		return nil, err
	}
	unknown := field.Unknown(body, fieldMaxVersions, fieldCASRequired, fieldDeleteVersionAfter)
	return withWarnings(nil, ignoredWarning(unknown)), nil
}
