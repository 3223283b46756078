// Package seal guards SecretHub's root key with Shamir's secret sharing.
//
// At initialization a random unseal key is split into shares
// (github.com/hashicorp/vault/shamir) and handed to the operators once; the
// root key is stored sealed under the unseal key. Unsealing collects shares
// one by one; when enough have arrived they are combined and the result is
// verified by opening the sealed root key with it (AES-256-GCM), so a wrong
// or foreign share is detected before the key is used, and progress starts
// over.
//
// Nothing that could rebuild the unseal key is stored: not the key, not a
// share, not a hash of either. Shares held in memory while an unseal is in
// progress are zeroed when it completes or is reset.
package seal

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/google/uuid"
	"github.com/hashicorp/vault/shamir"

	"github.com/secrethub/secrethub/core/storage"
)

// Storage paths of the seal's records. Both are stored without the barrier:
// the configuration is not secret, and the root key is sealed by this
// package under the unseal key.
const (
	ConfigPath  = "core/seal-config"
	RootKeyPath = "core/root-key"
)

// Type is the seal type reported in seal status.
const Type = "shamir"

// Defaults and bounds for share counts.
const (
	DefaultShares    = 5
	DefaultThreshold = 3
	MaxShares        = 255
	keySize          = 32
)

var (
	// ErrNotInitialized is returned when no seal configuration is stored.
	ErrNotInitialized = errors.New("seal: not initialized")
	// ErrInvalidShare is returned for a share that cannot belong to this
	// seal at all: undecodable, or of the wrong length. Progress is kept.
	ErrInvalidShare = errors.New("seal: invalid unseal key share")
	// ErrDuplicateShare is returned for a share already submitted in this
	// unseal attempt. Progress is kept.
	ErrDuplicateShare = errors.New("seal: unseal key share already provided")
	// ErrWrongShares is returned when the threshold was reached but the
	// shares do not combine into the unseal key: at least one was wrong or
	// came from another seal. Progress is reset.
	ErrWrongShares = errors.New("seal: unseal key shares do not combine into this seal's key; progress reset")
)

// Config is the seal configuration chosen at initialization.
type Config struct {
	Type      string `json:"type"`
	Shares    int    `json:"secret_shares"`
	Threshold int    `json:"secret_threshold"`
}

// FieldError names the request field that is wrong and why.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// WithDefaults fills zero counts with the defaults (5 shares, threshold 3).
func (c Config) WithDefaults() Config {
	c.Type = Type
	if c.Shares == 0 && c.Threshold == 0 {
		c.Shares, c.Threshold = DefaultShares, DefaultThreshold
	} else if c.Shares == 0 {
		c.Shares = max(c.Threshold, DefaultShares)
	} else if c.Threshold == 0 {
		c.Threshold = min(c.Shares, DefaultThreshold)
	}
	return c
}

// Validate checks the share counts: 1 ≤ threshold ≤ shares ≤ 255, and a
// threshold of 1 only with a single share (splitting a key so any one share
// rebuilds it protects nothing).
func (c Config) Validate() error {
	switch {
	case c.Shares < 1:
		return &FieldError{"secret_shares", "must be at least 1"}
	case c.Shares > MaxShares:
		return &FieldError{"secret_shares", fmt.Sprintf("must be at most %d", MaxShares)}
	case c.Threshold < 1:
		return &FieldError{"secret_threshold", "must be at least 1"}
	case c.Threshold > c.Shares:
		return &FieldError{"secret_threshold", fmt.Sprintf("must not exceed secret_shares (%d)", c.Shares)}
	case c.Threshold == 1 && c.Shares > 1:
		return &FieldError{"secret_threshold", "must be at least 2 when secret_shares is more than 1"}
	}
	return nil
}

// shareLen is the length of one share: the key, plus Shamir's x coordinate
// when the key is split.
func (c Config) shareLen() int {
	if c.Shares == 1 {
		return keySize
	}
	return keySize + 1
}

// Progress is where an unseal attempt stands.
type Progress struct {
	Provided  int
	Threshold int
	// Nonce identifies the unseal attempt in progress; empty when none is.
	Nonce string
}

// Seal holds the state of an unseal attempt.
type Seal struct {
	backend storage.Backend
	rand    io.Reader

	// mu guards shares and nonce.
	mu     sync.Mutex
	shares [][]byte
	nonce  string
}

// New returns a Seal over backend. A nil random source means crypto/rand.
func New(backend storage.Backend, random io.Reader) *Seal {
	if random == nil {
		random = rand.Reader
	}
	return &Seal{backend: backend, rand: random}
}

// Config returns the stored seal configuration, or ErrNotInitialized.
func (s *Seal) Config(ctx context.Context) (Config, error) {
	raw, err := s.backend.Get(ctx, ConfigPath)
	if errors.Is(err, storage.ErrNotFound) {
		return Config{}, ErrNotInitialized
	}
	if err != nil {
		return Config{}, fmt.Errorf("seal: read config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(raw, &c); err != nil {
		return Config{}, fmt.Errorf("seal: decode config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("seal: stored config: %w", err)
	}
	return c, nil
}

// Prepare makes a fresh unseal key, splits it per cfg, and seals rootKey
// under it. It returns the shares, to be shown once, and the storage ops
// that record the configuration and the sealed root key; the caller stores
// them in the same transaction as the rest of initialization. The unseal
// key itself is zeroed before Prepare returns.
func (s *Seal) Prepare(cfg Config, rootKey []byte) ([][]byte, []storage.Op, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	cfg.Type = Type
	unsealKey := make([]byte, keySize)
	defer clear(unsealKey)
	if _, err := io.ReadFull(s.rand, unsealKey); err != nil {
		return nil, nil, fmt.Errorf("seal: generate unseal key: %w", err)
	}
	var shares [][]byte
	if cfg.Shares == 1 {
		shares = [][]byte{bytes.Clone(unsealKey)}
	} else {
		var err error
		if shares, err = shamir.Split(unsealKey, cfg.Shares, cfg.Threshold); err != nil {
			return nil, nil, fmt.Errorf("seal: split unseal key: %w", err)
		}
	}
	sealed, err := s.sealRootKey(unsealKey, rootKey)
	if err != nil {
		return nil, nil, err
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("seal: encode config: %w", err)
	}
	return shares, []storage.Op{storage.PutOp(ConfigPath, cfgJSON), storage.PutOp(RootKeyPath, sealed)}, nil
}

// Submit adds one share to the unseal attempt in progress. Until the
// threshold is reached it returns the progress and a nil key. At the
// threshold it combines the shares, verifies the result against the sealed
// root key and returns the root key; either way, progress starts over. The
// caller must zero the returned key when done with it.
func (s *Seal) Submit(ctx context.Context, share []byte) (Progress, []byte, error) {
	cfg, err := s.Config(ctx)
	if err != nil {
		return Progress{}, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	progress := func() Progress {
		return Progress{Provided: len(s.shares), Threshold: cfg.Threshold, Nonce: s.nonce}
	}
	if len(share) != cfg.shareLen() {
		return progress(), nil, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidShare, len(share), cfg.shareLen())
	}
	for _, have := range s.shares {
		if bytes.Equal(have, share) {
			return progress(), nil, ErrDuplicateShare
		}
		if cfg.Shares > 1 && have[len(have)-1] == share[len(share)-1] {
			// Same x coordinate, different y: two shares can't both be
			// right, and Combine would reject the pair. Treat as wrong.
			s.resetLocked()
			return progress(), nil, ErrWrongShares
		}
	}
	if len(s.shares) == 0 {
		if s.nonce, err = s.newNonce(); err != nil {
			return progress(), nil, err
		}
	}
	s.shares = append(s.shares, bytes.Clone(share))
	if len(s.shares) < cfg.Threshold {
		return progress(), nil, nil
	}
	defer s.resetLocked()

	var unsealKey []byte
	if cfg.Shares == 1 {
		unsealKey = bytes.Clone(s.shares[0])
	} else if unsealKey, err = shamir.Combine(s.shares); err != nil {
		return Progress{Threshold: cfg.Threshold}, nil, ErrWrongShares
	}
	defer clear(unsealKey)
	rootKey, err := s.openRootKey(ctx, unsealKey)
	if err != nil {
		return Progress{Threshold: cfg.Threshold}, nil, err
	}
	return Progress{Threshold: cfg.Threshold}, rootKey, nil
}

// Reset discards the shares of the unseal attempt in progress.
func (s *Seal) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
}

// Progress reports the unseal attempt in progress.
func (s *Seal) Progress() (provided int, nonce string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.shares), s.nonce
}

func (s *Seal) resetLocked() {
	for _, sh := range s.shares {
		clear(sh)
	}
	s.shares, s.nonce = nil, ""
}

func (s *Seal) newNonce() (string, error) {
	u, err := uuid.NewRandomFromReader(s.rand)
	if err != nil {
		return "", fmt.Errorf("seal: nonce: %w", err)
	}
	return u.String(), nil
}

const rootKeyFormat = 1

func (s *Seal) sealRootKey(unsealKey, rootKey []byte) ([]byte, error) {
	aead, err := newAEAD(unsealKey)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(rootKey)+aead.Overhead())
	out[0] = rootKeyFormat
	if _, err := io.ReadFull(s.rand, out[1:]); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return aead.Seal(out, out[1:], rootKey, []byte(RootKeyPath)), nil
}

func (s *Seal) openRootKey(ctx context.Context, unsealKey []byte) ([]byte, error) {
	raw, err := s.backend.Get(ctx, RootKeyPath)
	if err != nil {
		return nil, fmt.Errorf("seal: read sealed root key: %w", err)
	}
	aead, err := newAEAD(unsealKey)
	if err != nil {
		return nil, err
	}
	n := aead.NonceSize()
	if len(raw) < 1+n+aead.Overhead() || raw[0] != rootKeyFormat {
		return nil, errors.New("seal: sealed root key is malformed")
	}
	rootKey, err := aead.Open(nil, raw[1:1+n], raw[1+n:], []byte(RootKeyPath))
	if err != nil {
		return nil, ErrWrongShares
	}
	return rootKey, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: gcm: %w", err)
	}
	return aead, nil
}

// DecodeShare accepts a share as hex (as `keys` shows it) or standard
// base64 (as `keys_base64` shows it). Surrounding space is ignored.
func DecodeShare(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidShare)
	}
	if b, err := hex.DecodeString(s); err == nil {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return nil, fmt.Errorf("%w: neither hex nor base64", ErrInvalidShare)
}
