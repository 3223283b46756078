// Package token keeps SecretHub's tokens.
//
// A token's ID is a bearer secret: the store keeps only its SHA-256 hash,
// so storage (even decrypted) cannot be replayed as credentials. Each token
// also has an accessor, a second random handle that can be logged and used
// to look the token up or revoke it without knowing the ID.
package token

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
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
	randomBytes    = 32
)

var (
	// ErrNotFound is returned for a token that does not exist, was revoked,
	// or is malformed. Callers must not tell these apart to clients.
	ErrNotFound = errors.New("token: not found")
	// ErrExpired is returned for a token past its expiry.
	ErrExpired = errors.New("token: expired")
)

// Storage is the part of the barrier's storage view the store needs.
type Storage interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Txn(ctx context.Context, ops []storage.Op) error
}

// Entry is what the store knows of a token. The ID itself is not part of
// it.
type Entry struct {
	Accessor    string    `json:"accessor"`
	Policies    []string  `json:"policies"`
	DisplayName string    `json:"display_name"`
	CreatedAt   time.Time `json:"created_at"`
	// ExpiresAt is zero for a token that does not expire (root tokens).
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// IsRoot reports whether the token carries the root policy.
func (e *Entry) IsRoot() bool { return slices.Contains(e.Policies, RootPolicy) }

// Store creates and looks up tokens in the barrier's storage.
type Store struct {
	storage Storage
	rand    io.Reader
	now     func() time.Time
}

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

// Prepare makes a new token for e and returns its ID and the storage ops
// that record it, without writing them: the caller applies them, alone or
// in a larger transaction (at initialization, the root token is stored
// together with the keyring). If id is empty a random one is generated. e's
// accessor and creation time are filled in.
func (s *Store) Prepare(id string, e Entry) (string, []storage.Op, error) {
	var err error
	if id == "" {
		if id, err = s.random(Prefix); err != nil {
			return "", nil, err
		}
	} else if err := ValidateID(id); err != nil {
		return "", nil, err
	}
	if e.Accessor, err = s.random(""); err != nil {
		return "", nil, err
	}
	if e.CreatedAt.IsZero() {
		e.CreatedAt = s.now().UTC()
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return "", nil, fmt.Errorf("token: encode: %w", err)
	}
	h := Hash(id)
	return id, []storage.Op{
		storage.PutOp(idPrefix+h, raw),
		storage.PutOp(accessorPrefix+e.Accessor, []byte(h)),
	}, nil
}

// Create stores a new token for e and returns its ID.
func (s *Store) Create(ctx context.Context, id string, e Entry) (string, error) {
	id, ops, err := s.Prepare(id, e)
	if err != nil {
		return "", err
	}
	if err := s.storage.Txn(ctx, ops); err != nil {
		return "", fmt.Errorf("token: store: %w", err)
	}
	return id, nil
}

// Lookup returns the entry of a live token. A missing, malformed or
// revoked token gives ErrNotFound, an expired one ErrExpired; any other
// error is the storage's.
func (s *Store) Lookup(ctx context.Context, id string) (*Entry, error) {
	if ValidateID(id) != nil {
		return nil, ErrNotFound
	}
	raw, err := s.storage.Get(ctx, idPrefix+Hash(id))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("token: lookup: %w", err)
	}
	var e Entry
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, fmt.Errorf("token: decode: %w", err)
	}
	if !e.ExpiresAt.IsZero() && !s.now().Before(e.ExpiresAt) {
		return nil, ErrExpired
	}
	return &e, nil
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
