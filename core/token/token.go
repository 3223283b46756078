// Package token keeps SecretHub's tokens.
//
// A token's ID is a bearer secret: the store keeps only its SHA-256 hash,
// so storage (even decrypted) cannot be replayed as credentials. Each token
// also has an accessor, a second random handle that can be logged and used
// to look the token up or revoke it without knowing the ID.
package token

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/secrethub/secrethub/core/storage"
)

// Prefix starts every token ID SecretHub issues, so leaked tokens are easy
// to recognise by secret scanners.
const Prefix = "shs."

// RootPolicy is the policy that allows everything.
const RootPolicy = "root"

const (
	idPrefix       = "sys/token/id/"
	accessorPrefix = "sys/token/accessor/"
	parentPrefix   = "sys/token/parent/"
	randomBytes    = 32
)

var (
	// ErrNotFound is returned for a token that does not exist, was revoked,
	// or is malformed. Callers must not tell these apart to clients.
	ErrNotFound = errors.New("token: not found")
	// ErrExpired is returned for a token past its expiry.
	ErrExpired = errors.New("token: expired")
	// ErrNotRenewable is returned by Renew for a token created
	// non-renewable.
	ErrNotRenewable = errors.New("token: not renewable")
	// ErrExists is returned by Create for a chosen ID that is taken.
	ErrExists = errors.New("token: a token with this id exists")
)

// Storage is the part of the barrier's storage view the store needs.
type Storage interface {
	Get(ctx context.Context, key string) ([]byte, error)
	List(ctx context.Context, prefix string) ([]string, error)
	Txn(ctx context.Context, ops []storage.Op) error
}

// Entry is what the store knows of a token. The ID itself is not part of
// it.
type Entry struct {
	Accessor    string            `json:"accessor"`
	Policies    []string          `json:"policies"`
	DisplayName string            `json:"display_name"`
	Meta        map[string]string `json:"meta,omitempty"`
	// Path is the API path that created the token ("auth/token/create",
	// "auth/approle/login").
	Path      string    `json:"path"`
	CreatedAt time.Time `json:"created_at"`
	// TTL is the TTL the token was created with; zero for tokens that
	// never expire (root tokens).
	TTL time.Duration `json:"ttl,omitempty"`
	// ExplicitMaxTTL, when set, caps the token's life from creation, even
	// across renewals.
	ExplicitMaxTTL time.Duration `json:"explicit_max_ttl,omitempty"`
	// ExpiresAt is zero for a token that does not expire.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// MaxExpiresAt is the hard end of the token's life; zero for none.
	MaxExpiresAt time.Time `json:"max_expires_at,omitzero"`
	Renewable    bool      `json:"renewable"`
	// Parent is the parent token's accessor; empty for an orphan.
	Parent string `json:"parent,omitempty"`
	// BoundCIDRs, when set, are the only networks the token may be used
	// from.
	BoundCIDRs []string `json:"bound_cidrs,omitempty"`
}

// IsRoot reports whether the token carries the root policy.
func (e *Entry) IsRoot() bool { return slices.Contains(e.Policies, RootPolicy) }

// RemainingTTL is the time left before expiry at now; zero for a token
// that does not expire.
func (e *Entry) RemainingTTL(now time.Time) time.Duration {
	if e.ExpiresAt.IsZero() {
		return 0
	}
	return max(e.ExpiresAt.Sub(now), 0)
}

// Store creates, looks up, renews and revokes tokens in the barrier's
// storage.
type Store struct {
	storage Storage
	rand    io.Reader
	now     func() time.Time

	// mu serializes renewals and revocations, which read and rewrite
	// records.
	mu sync.Mutex

	// decoded remembers entries decoded from storage, by token hash,
	// with the bytes they were decoded from: a lookup that reads the
	// same bytes again skips decoding them. Storage is read every time,
	// so a revoked or changed token is never served from here.
	decMu   sync.Mutex
	decoded map[string]decodedEntry
}

// decodedEntry is an entry and the stored bytes it was decoded from.
type decodedEntry struct {
	raw []byte
	e   Entry
}

// maxDecoded bounds Store.decoded; when it is full it starts over.
const maxDecoded = 4096

// New returns a store over s. A nil random source means crypto/rand; a nil
// clock means time.Now.
func New(s Storage, random io.Reader, now func() time.Time) *Store {
	if random == nil {
		random = rand.Reader
	}
	if now == nil {
		now = time.Now
	}
	return &Store{storage: s, rand: random, now: now}
}

// Prepare makes a new token for e and returns its ID, its completed entry
// and the storage ops that record it, without writing them: the caller
// applies them, alone or in a larger transaction (at initialization, the
// root token is stored together with the keyring). If id is empty a random
// one is generated. The accessor, creation time and expiry are filled in
// from e.TTL and e.ExplicitMaxTTL.
func (s *Store) Prepare(id string, e Entry) (string, *Entry, []storage.Op, error) {
	var err error
	if id == "" {
		if id, err = s.random(Prefix); err != nil {
			return "", nil, nil, err
		}
	} else if err := ValidateID(id); err != nil {
		return "", nil, nil, err
	}
	if e.Accessor, err = s.random(""); err != nil {
		return "", nil, nil, err
	}
	e.CreatedAt = s.now().UTC()
	e.ExpiresAt, e.MaxExpiresAt = time.Time{}, time.Time{}
	if e.ExplicitMaxTTL > 0 {
		e.MaxExpiresAt = e.CreatedAt.Add(e.ExplicitMaxTTL)
	}
	if e.TTL > 0 {
		e.ExpiresAt = e.CreatedAt.Add(e.TTL)
		if !e.MaxExpiresAt.IsZero() && e.ExpiresAt.After(e.MaxExpiresAt) {
			e.ExpiresAt = e.MaxExpiresAt
		}
	} else if !e.MaxExpiresAt.IsZero() {
		e.ExpiresAt = e.MaxExpiresAt
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return "", nil, nil, fmt.Errorf("token: encode: %w", err)
	}
	h := Hash(id)
	ops := []storage.Op{
		storage.PutOp(idPrefix+h, raw),
		storage.PutOp(accessorPrefix+e.Accessor, []byte(h)),
	}
	if e.Parent != "" {
		ops = append(ops, storage.PutOp(parentPrefix+e.Parent+"/"+e.Accessor, nil))
	}
	return id, &e, ops, nil
}

// Create stores a new token for e and returns its ID and entry. A parent
// named in e must exist; a chosen id must be free.
func (s *Store) Create(ctx context.Context, id string, e Entry) (string, *Entry, error) {
	if e.Parent != "" || id != "" {
		// Serialized with Revoke, so a child cannot slip in beside a
		// parent being revoked, and two creates cannot claim one id.
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	if e.Parent != "" {
		if _, err := s.LookupAccessor(ctx, e.Parent); err != nil {
			return "", nil, fmt.Errorf("token: parent: %w", err)
		}
	}
	if id != "" && ValidateID(id) == nil {
		if _, err := s.read(ctx, Hash(id)); err == nil {
			return "", nil, ErrExists
		} else if !errors.Is(err, ErrNotFound) {
			return "", nil, err
		}
	}
	id, entry, ops, err := s.Prepare(id, e)
	if err != nil {
		return "", nil, err
	}
	if err := s.storage.Txn(ctx, ops); err != nil {
		return "", nil, fmt.Errorf("token: store: %w", err)
	}
	return id, entry, nil
}

// Lookup returns the entry of a live token. A missing, malformed or
// revoked token gives ErrNotFound, an expired one ErrExpired; any other
// error is the storage's.
func (s *Store) Lookup(ctx context.Context, id string) (*Entry, error) {
	if ValidateID(id) != nil {
		return nil, ErrNotFound
	}
	return s.byHash(ctx, Hash(id))
}

// LookupAccessor returns the entry of the live token with accessor.
func (s *Store) LookupAccessor(ctx context.Context, accessor string) (*Entry, error) {
	h, err := s.hashOf(ctx, accessor)
	if err != nil {
		return nil, err
	}
	return s.byHash(ctx, h)
}

func (s *Store) hashOf(ctx context.Context, accessor string) (string, error) {
	if accessor == "" || storage.ValidateKey(accessorPrefix+accessor) != nil || strings.Contains(accessor, "/") {
		return "", ErrNotFound
	}
	raw, err := s.storage.Get(ctx, accessorPrefix+accessor)
	if errors.Is(err, storage.ErrNotFound) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("token: lookup accessor: %w", err)
	}
	return string(raw), nil
}

func (s *Store) byHash(ctx context.Context, h string) (*Entry, error) {
	e, err := s.read(ctx, h)
	if err != nil {
		return nil, err
	}
	if !e.ExpiresAt.IsZero() && !s.now().Before(e.ExpiresAt) {
		return nil, ErrExpired
	}
	return e, nil
}

func (s *Store) read(ctx context.Context, h string) (*Entry, error) {
	raw, err := s.storage.Get(ctx, idPrefix+h)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("token: lookup: %w", err)
	}
	s.decMu.Lock()
	d, ok := s.decoded[h]
	s.decMu.Unlock()
	if ok && bytes.Equal(d.raw, raw) {
		return d.e.clone(), nil
	}
	var e Entry
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, fmt.Errorf("token: decode: %w", err)
	}
	s.decMu.Lock()
	if s.decoded == nil || len(s.decoded) >= maxDecoded {
		s.decoded = make(map[string]decodedEntry)
	}
	s.decoded[h] = decodedEntry{raw: bytes.Clone(raw), e: *e.clone()}
	s.decMu.Unlock()
	return &e, nil
}

// clone returns a copy of e that shares no slice or map with it.
func (e *Entry) clone() *Entry {
	c := *e
	c.Policies = slices.Clone(e.Policies)
	c.Meta = maps.Clone(e.Meta)
	c.BoundCIDRs = slices.Clone(e.BoundCIDRs)
	return &c
}

// Renew extends the live token with accessor by increment from now (its
// creation TTL when increment is zero), never past its MaxExpiresAt. A
// token that does not expire is returned unchanged. The boolean reports
// whether the maximum capped the renewal.
func (s *Store) Renew(ctx context.Context, accessor string, increment time.Duration) (*Entry, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, err := s.hashOf(ctx, accessor)
	if err != nil {
		return nil, false, err
	}
	e, err := s.byHash(ctx, h)
	if err != nil {
		return nil, false, err
	}
	if e.ExpiresAt.IsZero() {
		return e, false, nil
	}
	if !e.Renewable {
		return nil, false, ErrNotRenewable
	}
	if increment <= 0 {
		increment = e.TTL
	}
	exp := s.now().UTC().Add(increment)
	capped := false
	if !e.MaxExpiresAt.IsZero() && exp.After(e.MaxExpiresAt) {
		exp, capped = e.MaxExpiresAt, true
	}
	e.ExpiresAt = exp
	raw, err := json.Marshal(e)
	if err != nil {
		return nil, false, fmt.Errorf("token: encode: %w", err)
	}
	if err := s.storage.Txn(ctx, []storage.Op{storage.PutOp(idPrefix+h, raw)}); err != nil {
		return nil, false, fmt.Errorf("token: renew: %w", err)
	}
	return e, capped, nil
}

// Revoke revokes the token with accessor and, recursively, every token it
// created, in one transaction. It returns the accessors revoked. Revoking
// an unknown accessor gives ErrNotFound. Expired tokens are revoked too.
func (s *Store) Revoke(ctx context.Context, accessor string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ops []storage.Op
	var revoked []string
	queue := []string{accessor}
	for len(queue) > 0 {
		acc := queue[0]
		queue = queue[1:]
		h, err := s.hashOf(ctx, acc)
		if errors.Is(err, ErrNotFound) && acc != accessor {
			continue // a child already gone
		}
		if err != nil {
			return nil, err
		}
		e, err := s.read(ctx, h)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		children, err := s.storage.List(ctx, parentPrefix+acc+"/")
		if err != nil {
			return nil, fmt.Errorf("token: list children: %w", err)
		}
		for _, c := range children {
			ops = append(ops, storage.DeleteOp(parentPrefix+acc+"/"+c))
			queue = append(queue, c)
		}
		ops = append(ops, storage.DeleteOp(idPrefix+h), storage.DeleteOp(accessorPrefix+acc))
		if e != nil && e.Parent != "" && acc == accessor {
			ops = append(ops, storage.DeleteOp(parentPrefix+e.Parent+"/"+acc))
		}
		revoked = append(revoked, acc)
	}
	if err := s.storage.Txn(ctx, ops); err != nil {
		return nil, fmt.Errorf("token: revoke: %w", err)
	}
	return revoked, nil
}

// RevokeOrphan revokes only the token with accessor; its children become
// orphans.
func (s *Store) RevokeOrphan(ctx context.Context, accessor string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, err := s.hashOf(ctx, accessor)
	if err != nil {
		return err
	}
	e, err := s.read(ctx, h)
	if err != nil {
		return err
	}
	ops := []storage.Op{storage.DeleteOp(idPrefix + h), storage.DeleteOp(accessorPrefix + accessor)}
	if e.Parent != "" {
		ops = append(ops, storage.DeleteOp(parentPrefix+e.Parent+"/"+accessor))
	}
	children, err := s.storage.List(ctx, parentPrefix+accessor+"/")
	if err != nil {
		return fmt.Errorf("token: list children: %w", err)
	}
	for _, c := range children {
		ops = append(ops, storage.DeleteOp(parentPrefix+accessor+"/"+c))
		ch, err := s.hashOf(ctx, c)
		if err != nil {
			continue
		}
		ce, err := s.read(ctx, ch)
		if err != nil {
			continue
		}
		ce.Parent = ""
		raw, err := json.Marshal(ce)
		if err != nil {
			return fmt.Errorf("token: encode: %w", err)
		}
		ops = append(ops, storage.PutOp(idPrefix+ch, raw))
	}
	if err := s.storage.Txn(ctx, ops); err != nil {
		return fmt.Errorf("token: revoke: %w", err)
	}
	return nil
}

// Accessors lists the accessors of every stored token.
func (s *Store) Accessors(ctx context.Context) ([]string, error) {
	keys, err := s.storage.List(ctx, accessorPrefix)
	if err != nil {
		return nil, fmt.Errorf("token: list accessors: %w", err)
	}
	return keys, nil
}

// Hash is the form in which a token ID is stored: hex SHA-256. IDs carry
// 256 random bits, so an unsalted hash is not open to guessing.
func Hash(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// ValidateID checks that id can be a token: printable ASCII without spaces,
// 8 to 256 bytes. IDs chosen by an operator (dev mode) must pass it too.
func ValidateID(id string) error {
	if len(id) < 8 || len(id) > 256 {
		return errors.New("token: id must be 8 to 256 characters")
	}
	if strings.IndexFunc(id, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return errors.New("token: id must be printable ASCII without spaces")
	}
	return nil
}

func (s *Store) random(prefix string) (string, error) {
	b := make([]byte, randomBytes)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", fmt.Errorf("token: random: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}
