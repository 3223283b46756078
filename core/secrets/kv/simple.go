package kv

import (
	"context"
	"fmt"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
)

// The simple layout: the relative path is the secret's path.
//
//	read   <path>                     the latest version's key/values
//	read   <path>?version=N           version N
//	read   <path>?metadata=true       the metadata, as kv-v2's metadata/ read
//	read   <path>?history=true        the metadata with versions as a list
//	write  <path>  {...}              the body is the new version
//	write  <path>  {"data": {...}, "options": {"cas": N}}
//	                                  wrapped: data is the new version
//	write  <path>  {"action": "delete"|"undelete"|"destroy", "versions": [...]}
//	                                  acts on versions instead of writing
//	delete <path>[?versions=1,2]      soft-deletes the latest (or the listed) versions
//	delete <path>?metadata=true       deletes every version and the metadata
//	list   <folder>                   {"keys": [...]}

// Simple-layout action names.
const (
	actionDelete   = "delete"
	actionUndelete = "undelete"
	actionDestroy  = "destroy"
)

func (e *Engine) handleSimple(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	switch req.Operation {
	case logical.OpList:
		folder, err := folderPath(req.RelativePath)
		if err != nil {
			return nil, err
		}
		return e.listResponse(ctx, folder)
	case logical.OpRead:
		return e.simpleRead(ctx, req)
	case logical.OpCreate, logical.OpUpdate:
		return e.simpleWrite(ctx, req)
	case logical.OpDelete:
		return e.simpleDelete(ctx, req)
	default:
		return nil, fmt.Errorf("kv: %s %q: %w", req.Operation, req.RelativePath, logical.ErrUnsupportedOperation)
	}
}

func (e *Engine) listResponse(ctx context.Context, folder string) (*logical.Response, error) {
	keys, err := e.list(ctx, folder)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"keys": keys}}, nil
}

// param returns a request parameter, treating an empty query string value
// ("?version=") as absent.
func param(data map[string]any, key string) any {
	v := data[key]
	if s, ok := v.(string); ok && s == "" {
		return nil
	}
	return v
}

// flag parses an optional boolean parameter.
func flag(data map[string]any, key string) (bool, error) {
	v := param(data, key)
	if v == nil {
		return false, nil
	}
	return parseBool(key, v)
}

// versionParam parses the optional "version" parameter; 0 is the latest.
func versionParam(data map[string]any) (int, error) {
	v := param(data, "version")
	if v == nil {
		return 0, nil
	}
	return parseVersion("version", v)
}

func (e *Engine) simpleRead(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	p, err := secretPath(req.RelativePath)
	if err != nil {
		return nil, err
	}
	wantMeta, err := flag(req.Data, "metadata")
	if err != nil {
		return nil, err
	}
	wantHistory, err := flag(req.Data, "history")
	if err != nil {
		return nil, err
	}
	n, err := versionParam(req.Data)
	if err != nil {
		return nil, err
	}
	switch {
	case wantMeta && wantHistory:
		return nil, logical.Invalid("history", "cannot be combined with metadata")
	case wantMeta || wantHistory:
		cfg, m, err := e.metadata(ctx, p)
		if err != nil {
			return nil, err
		}
		data := metadataData(cfg, m, e.now())
		if wantHistory {
			data["versions"] = history(cfg, m, e.now())
		}
		return &logical.Response{Data: data}, nil
	}
	r, err := e.read(ctx, p, n)
	if err != nil {
		return nil, err
	}
	if !r.View.live() {
		// The seed's layout answers like a plain key-value store: a
		// deleted version is simply not there (history shows it).
		return nil, logical.ErrNotFound
	}
	return &logical.Response{Data: r.Data}, nil
}

// history lists m's versions, oldest first.
func history(cfg engineConfig, m *secretMeta, now time.Time) []any {
	views := m.views(cfg, now)
	out := make([]any, 0, len(views))
	for _, v := range views {
		out = append(out, map[string]any{
			"version":       v.Version,
			"created_time":  formatTime(v.CreatedTime),
			"deletion_time": formatTime(v.DeletionTime),
			"destroyed":     v.Destroyed,
		})
	}
	return out
}

// actionBody recognises the simple layout's action body: exactly the keys
// "action" and "versions", the action a string.
func actionBody(body map[string]any) (string, bool) {
	if len(body) != 2 {
		return "", false
	}
	action, ok := body["action"].(string)
	if !ok {
		return "", false
	}
	_, ok = body["versions"]
	return action, ok
}

// wrappedBody recognises the wrapped write body: exactly the keys "data"
// and "options", options an object whose only key, if any, is "cas". It
// returns the data and cas; data that is not an object is an error.
func wrappedBody(body map[string]any) (data map[string]any, cas *int, ok bool, err error) {
	if len(body) != 2 {
		return nil, nil, false, nil
	}
	rawData, hasData := body["data"]
	opts, isObject := body["options"].(map[string]any)
	if !hasData || !isObject || len(field.Unknown(opts, "cas")) > 0 {
		return nil, nil, false, nil
	}
	data, isObject = rawData.(map[string]any)
	if !isObject {
		return nil, nil, true, logical.Invalid("data", "must be a JSON object")
	}
	cas, err = parseCAS("options.cas", opts["cas"])
	return data, cas, true, err
}

func (e *Engine) simpleWrite(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	p, err := secretPath(req.RelativePath)
	if err != nil {
		return nil, err
	}
	body := req.Data
	if len(body) == 0 {
		// As Vault's KV v1: an empty body is more likely a mistake than a
		// wish for an empty secret. {"data": {}, "options": {}} writes one.
		return nil, logical.Invalid("data", "missing data fields: the body must be a non-empty JSON object")
	}
	if action, ok := actionBody(body); ok {
		return nil, e.simpleAction(ctx, p, action, body["versions"])
	}
	data, cas, wrapped, err := wrappedBody(body)
	if err != nil {
		return nil, err
	}
	if !wrapped {
		data = body
	}
	w, err := e.write(ctx, p, data, cas)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{
		"version":      w.Version,
		"created_time": formatTime(w.View.CreatedTime),
	}}, nil
}

func (e *Engine) simpleAction(ctx context.Context, p, action string, rawVersions any) error {
	var act versionAction
	switch action {
	case actionDelete:
		act = softDelete
	case actionUndelete:
		act = undelete
	case actionDestroy:
		act = destroy
	default:
		return logical.Invalid("action", "must be %q, %q or %q", actionDelete, actionUndelete, actionDestroy)
	}
	versions, err := parseVersions("versions", rawVersions)
	if err != nil {
		return err
	}
	return e.apply(ctx, action, p, versions, act)
}

func (e *Engine) simpleDelete(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	p, err := secretPath(req.RelativePath)
	if err != nil {
		return nil, err
	}
	all, err := flag(req.Data, "metadata")
	if err != nil {
		return nil, err
	}
	if all {
		if param(req.Data, "versions") != nil {
			return nil, logical.Invalid("versions", "cannot be combined with metadata")
		}
		return nil, e.deleteAll(ctx, p)
	}
	var versions []int
	if v := param(req.Data, "versions"); v != nil {
		if versions, err = parseVersions("versions", v); err != nil {
			return nil, err
		}
	}
	return nil, e.apply(ctx, "delete", p, versions, softDelete)
}
