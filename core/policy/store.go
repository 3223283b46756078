package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/secrethub/secrethub/core/storage"
)

// StoragePrefix is where a Store keeps policies in its Storage, one key
// per policy: StoragePrefix + name.
const StoragePrefix = "sys/policy/"

// maxCachedACLs bounds the compiled-ACL cache; past it, an arbitrary entry
// makes room.
const maxCachedACLs = 4096

// maxCachedPolicies bounds the parsed-policy cache (names of missing
// policies included); past it, policies are read from storage each time.
const maxCachedPolicies = 4096

// Storage is what a Store needs of storage: the barrier's view (or a
// logical.Storage), whose Get returns an error wrapping
// storage.ErrNotFound for a missing key.
type Storage interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string) ([]string, error)
}

// Document formats, as Entry.Format reports them.
const (
	FormatJSON = "json"
	FormatYAML = "yaml"
)

// Entry is a policy as stored.
type Entry struct {
	Name string
	// Format is "json" or "yaml", as the document was written; built-in
	// policies are yaml (root has no document).
	Format string
	// Document is the text the author wrote, byte for byte.
	Document []byte
	Policy   *Policy
}

// record is the stored form of a policy.
type record struct {
	Name     string `json:"name"`
	Format   string `json:"format"`
	Document []byte `json:"document"`
}

// Store keeps policies in storage and caches them parsed, and ACLs
// compiled, until the next Put or Delete (or Invalidate). It is safe for
// concurrent use.
type Store struct {
	storage Storage

	mu sync.RWMutex
	// gen counts writes; a cache entry read from storage before a write
	// must not be cached after it. Guarded by mu.
	gen uint64
	// parsed caches stored policies by name; a nil *Policy records that
	// the name is not stored. Guarded by mu.
	parsed map[string]*Policy
	// acls caches compiled ACLs by aclKey. Guarded by mu.
	acls map[string]*ACL
}

// NewStore returns a Store over s.
func NewStore(s Storage) *Store {
	return &Store{storage: s, parsed: make(map[string]*Policy), acls: make(map[string]*ACL)}
}

// DocumentFormat tells a JSON document (it starts with '{', after white
// space) from a YAML one.
func DocumentFormat(doc []byte) string {
	if t := bytes.TrimLeft(doc, " \t\r\n\ufeff"); len(t) > 0 && t[0] == '{' {
		return FormatJSON
	}
	return FormatYAML
}

// Put validates doc as the policy name and stores it, as written. It
// returns the parsed policy, or a *ValidationError for a bad name or
// document. The next ACL call sees the change.
func (s *Store) Put(ctx context.Context, name string, doc []byte) (*Policy, error) {
	p, err := Parse(name, doc)
	if err != nil {
		return nil, fmt.Errorf("policy: put %q: %w", name, err)
	}
	raw, err := json.Marshal(record{Name: p.Name, Format: DocumentFormat(doc), Document: doc})
	if err != nil {
		return nil, fmt.Errorf("policy: put %q: encode: %w", p.Name, err)
	}
	if err := s.storage.Put(ctx, StoragePrefix+p.Name, raw); err != nil {
		// The write may or may not have happened: drop the caches either way.
		s.Invalidate()
		return nil, fmt.Errorf("policy: put %q: %w", p.Name, err)
	}
	s.Invalidate()
	return p, nil
}

// Get returns the policy name and its document as written. The built-in
// root policy has no document (nil); the built-in default policy, unless
// a stored one replaces it, has DefaultPolicyDocument. A policy that does
// not exist gives an error wrapping ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) (*Policy, []byte, error) {
	e, err := s.GetEntry(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	return e.Policy, e.Document, nil
}

// GetEntry is Get, with the document's format.
func (s *Store) GetEntry(ctx context.Context, name string) (*Entry, error) {
	if name == RootPolicyName {
		return &Entry{Name: name, Format: FormatYAML, Policy: RootPolicy()}, nil
	}
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("policy: get %q: %w", name, err)
	}
	rec, err := s.read(ctx, name)
	switch {
	case errors.Is(err, ErrNotFound) && name == DefaultPolicyName:
		return &Entry{Name: name, Format: FormatYAML, Document: []byte(DefaultPolicyDocument), Policy: DefaultPolicy()}, nil
	case err != nil:
		return nil, err
	}
	p, err := parseStored(name, rec)
	if err != nil {
		return nil, err
	}
	return &Entry{Name: name, Format: rec.Format, Document: rec.Document, Policy: p}, nil
}

// read reads and decodes the record of name; an error wraps ErrNotFound
// when nothing is stored.
func (s *Store) read(ctx context.Context, name string) (*record, error) {
	raw, err := s.storage.Get(ctx, StoragePrefix+name)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, fmt.Errorf("policy: get %q: %w", name, ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("policy: get %q: %w", name, err)
	}
	var rec record
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("policy: get %q: decode stored record: %w", name, err)
	}
	return &rec, nil
}

// parseStored parses a stored document. It fails only if the document no
// longer validates, which a Put could not have stored: the error is then
// not a ValidationError (the caller's input is not at fault).
func parseStored(name string, rec *record) (*Policy, error) {
	if rec.Name != name {
		return nil, fmt.Errorf("policy: get %q: stored record names policy %q", name, rec.Name)
	}
	p, err := parse(name, rec.Document, parseOptions{keepUnknownZones: true})
	if err != nil {
		return nil, fmt.Errorf("policy: get %q: stored document does not parse: %s", name, err)
	}
	return p, nil
}

// Delete deletes the policy name. Deleting a policy that does not exist
// is not an error; the built-in root and default policies cannot be
// deleted (ErrBuiltin).
func (s *Store) Delete(ctx context.Context, name string) error {
	if name == RootPolicyName || name == DefaultPolicyName {
		return fmt.Errorf("policy: delete %q: %w", name, ErrBuiltin)
	}
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("policy: delete %q: %w", name, err)
	}
	err := s.storage.Delete(ctx, StoragePrefix+name)
	s.Invalidate()
	if err != nil {
		return fmt.Errorf("policy: delete %q: %w", name, err)
	}
	return nil
}

// List returns the names of all policies, sorted, including the built-in
// root and default.
func (s *Store) List(ctx context.Context) ([]string, error) {
	keys, err := s.storage.List(ctx, StoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("policy: list: %w", err)
	}
	names := []string{RootPolicyName, DefaultPolicyName}
	for _, k := range keys {
		if !strings.HasSuffix(k, "/") {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// Invalidate drops every cached policy and ACL. Put and Delete call it;
// call it when another server changed the policies in shared storage.
func (s *Store) Invalidate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	clear(s.parsed)
	clear(s.acls)
}

// ACL returns the compiled ACL of the named policies, from the cache when
// no policy changed since it was compiled. Names of policies that do not
// exist are ignored (a token may name a deleted policy); root makes the
// ACL allow everything; default is the built-in one unless stored. A
// storage failure, or a stored policy that no longer parses, is an error:
// the caller must deny.
func (s *Store) ACL(ctx context.Context, names []string) (*ACL, error) {
	names = slices.Clone(names)
	slices.Sort(names)
	names = slices.Compact(names)
	key := strings.Join(names, "\x00") // names cannot hold NUL

	s.mu.RLock()
	a, ok := s.acls[key]
	gen := s.gen
	s.mu.RUnlock()
	if ok {
		return a, nil
	}

	policies := make([]*Policy, 0, len(names))
	for _, name := range names {
		p, err := s.policy(ctx, name, gen)
		if err != nil {
			return nil, err
		}
		if p != nil {
			policies = append(policies, p)
		}
	}
	a = NewACL(policies...)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen == gen {
		if len(s.acls) >= maxCachedACLs {
			for k := range s.acls {
				delete(s.acls, k)
				break
			}
		}
		s.acls[key] = a
	}
	return a, nil
}

// policy returns the parsed policy name for an ACL, from the cache when it
// is there, or nil when it does not exist. gen is the generation the
// caller started at.
func (s *Store) policy(ctx context.Context, name string, gen uint64) (*Policy, error) {
	if name == RootPolicyName {
		return RootPolicy(), nil
	}
	if ValidateName(name) != nil {
		return nil, nil // cannot be stored, so does not exist
	}
	s.mu.RLock()
	p, ok := s.parsed[name]
	s.mu.RUnlock()
	if ok {
		return p, nil
	}

	rec, err := s.read(ctx, name)
	switch {
	case errors.Is(err, ErrNotFound) && name == DefaultPolicyName:
		p = DefaultPolicy()
	case errors.Is(err, ErrNotFound):
		p = nil
	case err != nil:
		return nil, err
	default:
		if p, err = parseStored(name, rec); err != nil {
			return nil, err
		}
	}

	s.mu.Lock()
	if s.gen == gen && len(s.parsed) < maxCachedPolicies {
		s.parsed[name] = p
	}
	s.mu.Unlock()
	return p, nil
}
