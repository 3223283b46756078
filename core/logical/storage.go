package logical

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/secrethub/secrethub/core/storage"
)

// GetOptional reads key from s: nil, without an error, when nothing is
// stored there.
func GetOptional(ctx context.Context, s Storage, key string) ([]byte, error) {
	b, err := s.Get(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return b, nil
}

// GetJSON decodes the JSON stored at key into v and reports whether
// anything was stored there.
func GetJSON(ctx context.Context, s Storage, key string, v any) (bool, error) {
	b, err := GetOptional(ctx, s, key)
	if err != nil || b == nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("decode %s: %w", key, err)
	}
	return true, nil
}

// PutJSON stores v at key as JSON.
func PutJSON(ctx context.Context, s Storage, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	if err := s.Put(ctx, key, b); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

// ListKeys returns the keys directly under prefix, relative to it, without
// the deeper "folders" s.List also names. The error is s.List's, unwrapped,
// for the caller to put in context.
func ListKeys(ctx context.Context, s Storage, prefix string) ([]string, error) {
	entries, err := s.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(entries))
	for _, k := range entries {
		if !strings.HasSuffix(k, "/") {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// ListResponse answers a LIST with keys, as Vault does: {"keys": [...]}.
func ListResponse(keys []string) *Response {
	return &Response{Data: map[string]any{"keys": keys}}
}
