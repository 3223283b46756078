// Package rolestore keeps a mountable engine's roles: one JSON entry per
// role name under a storage prefix ("role/"), with the list, read, write
// and delete plumbing that the engines share, and the error messages they
// answer, each led by the engine's name ("pki: role \"web\": not found").
//
// It holds no locks and knows nothing of a role's fields: an engine that
// merges writes, or keeps an index beside its roles, takes its own lock
// around Get and Put, or writes through storage transactions itself.
package rolestore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/secrethub/secrethub/core/logical"
)

// Store keeps the roles of type T of one engine. Its zero value is not
// usable; create it with New. It is safe for concurrent use as far as its
// storage is.
type Store[T any] struct {
	storage logical.Storage
	engine  string
	prefix  string
}

// New returns the store of the roles under prefix in s. engine leads every
// error message ("approle", "kubernetes auth").
func New[T any](s logical.Storage, engine, prefix string) *Store[T] {
	return &Store[T]{storage: s, engine: engine, prefix: prefix}
}

// key is the storage key of the role name.
func (st *Store[T]) key(name string) string { return st.prefix + name }

// Get reads the role name: nil, without an error, when there is none.
func (st *Store[T]) Get(ctx context.Context, name string) (*T, error) {
	raw, err := logical.GetOptional(ctx, st.storage, st.key(name))
	if err != nil {
		return nil, fmt.Errorf("%s: read role %q: %w", st.engine, name, err)
	}
	if raw == nil {
		return nil, nil
	}
	var r T
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("%s: decode role %q: %w", st.engine, name, err)
	}
	return &r, nil
}

// Put stores r as the role name, replacing any earlier one.
func (st *Store[T]) Put(ctx context.Context, name string, r *T) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("%s: encode role %q: %w", st.engine, name, err)
	}
	if err := st.storage.Put(ctx, st.key(name), raw); err != nil {
		return fmt.Errorf("%s: write role %q: %w", st.engine, name, err)
	}
	return nil
}

// Delete removes the role name. Deleting a role that is not there
// succeeds.
func (st *Store[T]) Delete(ctx context.Context, name string) error {
	if err := st.storage.Delete(ctx, st.key(name)); err != nil {
		return fmt.Errorf("%s: delete role %q: %w", st.engine, name, err)
	}
	return nil
}

// List answers a LIST of the role names: {"keys": [...]}, empty when there
// are none.
func (st *Store[T]) List(ctx context.Context) (*logical.Response, error) {
	names, err := logical.ListKeys(ctx, st.storage, st.prefix)
	if err != nil {
		return nil, fmt.Errorf("%s: list roles: %w", st.engine, err)
	}
	return logical.ListResponse(names), nil
}

// NotFound is the error for a read of the role name, which does not exist
// (404): it matches logical.ErrNotFound.
func (st *Store[T]) NotFound(name string) error {
	return fmt.Errorf("%s: role %q: %w", st.engine, name, logical.ErrNotFound)
}
