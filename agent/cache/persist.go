package cache

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// File layout: one version byte, a 12-byte random nonce, then the AES-256-GCM
// sealed JSON document. The additional data is the version byte followed by
// the file's base name, so a file renamed or moved under another name, or
// relabelled with another version, does not open.
const fileVersion byte = 1

const (
	nonceSize = 12
	tagSize   = 16
	// KeySize is the length of the key Save and Load take.
	KeySize = 32

	// deriveInfo separates this use of the agent's private key from any
	// other key derived from it.
	deriveInfo = "secrethub agent cache encryption v1"
)

// Errors of Save and Load.
var (
	// ErrKeySize: the key is not KeySize bytes.
	ErrKeySize = errors.New("cache: key must be 32 bytes")
	// ErrCorrupt: the file is truncated, was modified, or was sealed with
	// another key (AES-GCM cannot tell these apart). Nothing was loaded.
	ErrCorrupt = errors.New("cache: file is corrupt, was modified, or was sealed with another key")
	// ErrVersion: the file was written by an unknown version.
	ErrVersion = errors.New("cache: unsupported cache file version")
)

type fileEntry struct {
	Path      string         `json:"path"`
	FetchedAt time.Time      `json:"fetched_at"`
	Data      map[string]any `json:"data"`
}

type fileDoc struct {
	// Entries run from least to most recently used.
	Entries []fileEntry `json:"entries"`
	// Extra are the owner's documents (SetExtra), saved with the entries.
	Extra map[string]json.RawMessage `json:"extra,omitempty"`
}

// DeriveKey derives the cache file key from the agent's private key (its DER
// bytes) with HKDF-SHA256, so an agent restarted with the same key pair reads
// the cache it saved. It returns nil for an empty input, which Save and Load
// reject.
func DeriveKey(privateKeyDER []byte) []byte {
	if len(privateKeyDER) == 0 {
		return nil
	}
	key, err := hkdf.Key(sha256.New, privateKeyDER, nil, deriveInfo, KeySize)
	if err != nil {
		// hkdf.Key fails only for lengths above 255 hash sizes.
		panic(fmt.Sprintf("cache: derive key: %v", err))
	}
	return key
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, ErrKeySize
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return cipher.NewGCM(block)
}

func additionalData(path string) []byte {
	return append([]byte{fileVersion}, filepath.Base(path)...)
}

// Save writes every entry, sealed with key, to the file path, atomically
// (temporary file in the same directory, fsync, rename, fsync of the
// directory) and with mode 0600. Entries keep their fetch times, so staleness
// survives a restart. Data must be JSON-encodable.
func (c *Cache) Save(path string, key []byte) error {
	aead, err := newAEAD(key)
	if err != nil {
		return fmt.Errorf("cache: save %q: %w", path, err)
	}

	var doc fileDoc
	c.mu.Lock()
	for _, k := range c.lru.Keys() { // oldest first
		e, _ := c.lru.Peek(k)
		doc.Entries = append(doc.Entries, fileEntry{Path: k, FetchedAt: e.fetchedAt, Data: e.data})
	}
	if len(c.extra) > 0 {
		doc.Extra = maps.Clone(c.extra)
	}
	c.mu.Unlock()
	plain, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("cache: save %q: encode: %w", path, err)
	}
	defer clear(plain)

	out := make([]byte, 1+nonceSize, 1+nonceSize+len(plain)+tagSize)
	out[0] = fileVersion
	nonce := out[1:]
	if _, err := io.ReadFull(c.rand, nonce); err != nil {
		return fmt.Errorf("cache: save %q: nonce: %w", path, err)
	}
	out = aead.Seal(out, nonce, plain, additionalData(path))
	if err := writeAtomic(path, out); err != nil {
		return fmt.Errorf("cache: save %q: %w", path, err)
	}
	return nil
}

func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// Make the rename itself durable.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Load reads a file written by Save with the same key and adds its entries,
// keeping their fetch times and recency order; an entry already in the cache
// that is at least as new is kept. A missing file is an error matching
// fs.ErrNotExist (a first start). A wrong key, a modified or a truncated file
// gives ErrCorrupt, and an unknown format ErrVersion; in every error case
// nothing is loaded.
func (c *Cache) Load(path string, key []byte) error {
	aead, err := newAEAD(key)
	if err != nil {
		return fmt.Errorf("cache: load %q: %w", path, err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cache: load: %w", err)
	}
	if len(raw) < 1+nonceSize+tagSize {
		return fmt.Errorf("cache: load %q: truncated (%d bytes): %w", path, len(raw), ErrCorrupt)
	}
	if raw[0] != fileVersion {
		return fmt.Errorf("cache: load %q: version %d: %w", path, raw[0], ErrVersion)
	}
	nonce, sealed := raw[1:1+nonceSize], raw[1+nonceSize:]
	plain, err := aead.Open(nil, nonce, sealed, additionalData(path))
	if err != nil {
		return fmt.Errorf("cache: load %q: %w", path, ErrCorrupt)
	}
	defer clear(plain)
	var doc fileDoc
	if err := json.Unmarshal(plain, &doc); err != nil {
		// Authenticated but unreadable: written by a buggy or foreign
		// writer. json's message may quote content, so it is not included.
		return fmt.Errorf("cache: load %q: undecodable content: %w", path, ErrCorrupt)
	}
	for i, e := range doc.Entries {
		if e.Path == "" {
			return fmt.Errorf("cache: load %q: entry %d has no path: %w", path, i, ErrCorrupt)
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	for name, raw := range doc.Extra {
		if c.extra == nil {
			c.extra = map[string]json.RawMessage{}
		}
		c.extra[name] = raw
	}
	for _, e := range doc.Entries {
		if cur, ok := c.lru.Peek(e.Path); ok && !cur.fetchedAt.Before(e.FetchedAt) {
			continue
		}
		if c.lru.Add(e.Path, entry{data: e.Data, fetchedAt: e.FetchedAt}) {
			c.stats.Evictions++
		}
	}
	return nil
}

// SetExtra keeps doc under name, to be saved and loaded with the entries:
// state that must stay consistent with them (the agent keeps the leases
// behind its dynamic credentials so) is written in the same atomic file.
// A nil doc removes name.
func (c *Cache) SetExtra(name string, doc json.RawMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if doc == nil {
		delete(c.extra, name)
		return
	}
	if c.extra == nil {
		c.extra = map[string]json.RawMessage{}
	}
	c.extra[name] = slices.Clone(doc)
}

// Extra returns the document kept under name (set, or loaded from a file).
func (c *Cache) Extra(name string) (json.RawMessage, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	doc, ok := c.extra[name]
	return slices.Clone(doc), ok
}
