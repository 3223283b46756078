// Package barrier is the cryptographic barrier between SecretHub and its
// untrusted storage.
//
// Every value that passes the barrier is sealed with AES-256-GCM under the
// current key of a keyring, with a fresh random 96-bit nonce and the storage
// path as additional data, so a value copied to another path fails to decrypt.
// Each value starts with a small header holding the format version and the
// key term that sealed it, so keys can rotate: Rotate adds a term, new writes
// use it, and values sealed under older terms stay readable.
//
// The keyring itself is stored sealed under the root key, which the barrier
// holds only while unsealed. A sealed barrier refuses every read and write
// with ErrSealed.
package barrier

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/secrethub/secrethub/core/storage"
)

// KeyringPath is where the sealed keyring lives in storage. It is reserved:
// the barrier refuses to read or write it through its own Get/Put.
const KeyringPath = "core/keyring"

// KeySize is the size of the root key and of every keyring key, in bytes.
const KeySize = 32

const (
	formatVersion = 1
	headerSize    = 1 + 4 // version byte + big-endian term
	nonceSize     = 12
	tagSize       = 16
)

var (
	// ErrSealed is returned by every read and write while the barrier is
	// sealed.
	ErrSealed = errors.New("barrier: sealed")
	// ErrNotInitialized is returned by Unseal when no keyring is stored.
	ErrNotInitialized = errors.New("barrier: not initialized")
	// ErrAlreadyInitialized is returned by Initialize when a keyring exists.
	ErrAlreadyInitialized = errors.New("barrier: already initialized")
	// ErrBadRootKey is returned by Unseal when the root key does not open
	// the stored keyring.
	ErrBadRootKey = errors.New("barrier: root key does not open the keyring")
	// ErrCorrupt is returned when a stored value fails authentication: it
	// was changed, truncated, or moved from another path.
	ErrCorrupt = errors.New("barrier: value failed authentication")
	// ErrReservedPath is returned for reads and writes of the barrier's own
	// keyring path.
	ErrReservedPath = errors.New("barrier: reserved path")
)

// Storage is the view of storage that engines use: the Backend interface
// without Close, with every value encrypted on the way down and
// authenticated on the way up.
type Storage interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string) ([]string, error)
	Txn(ctx context.Context, ops []storage.Op) error
}

var _ Storage = (*Barrier)(nil)

// KeyStatus describes the keyring's current key.
type KeyStatus struct {
	Term        uint32
	InstallTime time.Time
	// Terms is how many keys the keyring holds.
	Terms int
}

// Barrier encrypts values on their way to a storage.Backend.
type Barrier struct {
	backend storage.Backend
	rand    io.Reader
	now     func() time.Time

	// mu guards everything below. Readers take it shared; Unseal, Seal and
	// Rotate take it exclusively.
	mu      sync.RWMutex
	rootKey []byte
	keyring *keyring
	aeads   map[uint32]cipher.AEAD
}

// Options tune a Barrier. The zero value uses crypto/rand and time.Now.
type Options struct {
	// Rand is the source of keys and nonces. Default crypto/rand.Reader.
	Rand io.Reader
	// Now is the clock for key install times. Default time.Now.
	Now func() time.Time
}

// New returns a sealed barrier over backend.
func New(backend storage.Backend, opts Options) *Barrier {
	b := &Barrier{backend: backend, rand: opts.Rand, now: opts.Now}
	if b.rand == nil {
		b.rand = rand.Reader
	}
	if b.now == nil {
		b.now = time.Now
	}
	return b
}

// keyring is the barrier's set of data keys, one per term.
type keyring struct {
	ActiveTerm uint32 `json:"active_term"`
	Keys       []key  `json:"keys"`
}

type key struct {
	Term        uint32    `json:"term"`
	Value       []byte    `json:"value"`
	InstallTime time.Time `json:"install_time"`
}

func (kr *keyring) active() key {
	for _, k := range kr.Keys {
		if k.Term == kr.ActiveTerm {
			return k
		}
	}
	// unreachable for a keyring built by this package; validate rejects it.
	return key{}
}

func (kr *keyring) validate() error {
	if len(kr.Keys) == 0 {
		return errors.New("keyring holds no keys")
	}
	seen := make(map[uint32]bool, len(kr.Keys))
	found := false
	for _, k := range kr.Keys {
		if len(k.Value) != KeySize {
			return fmt.Errorf("keyring term %d: key is %d bytes, want %d", k.Term, len(k.Value), KeySize)
		}
		if k.Term == 0 || seen[k.Term] {
			return fmt.Errorf("keyring term %d: zero or repeated", k.Term)
		}
		seen[k.Term] = true
		found = found || k.Term == kr.ActiveTerm
	}
	if !found {
		return fmt.Errorf("keyring active term %d has no key", kr.ActiveTerm)
	}
	return nil
}

func (kr *keyring) zero() {
	for _, k := range kr.Keys {
		clear(k.Value)
	}
}

// Initialize creates a keyring with one key, seals it under rootKey and
// stores it together with extra, in one transaction, so an interrupted
// initialization leaves nothing behind. The ops in sealed are encrypted
// under the new keyring first, which lets the caller store its first
// secrets (a root token, say) atomically with the keyring. ops in plain are
// stored as given. The barrier stays sealed.
func (b *Barrier) Initialize(ctx context.Context, rootKey []byte, plain, sealed []storage.Op) error {
	if len(rootKey) != KeySize {
		return fmt.Errorf("barrier: root key is %d bytes, want %d", len(rootKey), KeySize)
	}
	if _, err := b.backend.Get(ctx, KeyringPath); err == nil {
		return ErrAlreadyInitialized
	} else if !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("barrier: check keyring: %w", err)
	}
	k := make([]byte, KeySize)
	if _, err := io.ReadFull(b.rand, k); err != nil {
		return fmt.Errorf("barrier: generate key: %w", err)
	}
	kr := &keyring{ActiveTerm: 1, Keys: []key{{Term: 1, Value: k, InstallTime: b.now().UTC()}}}
	defer kr.zero()
	aeads, err := aeadsFor(kr)
	if err != nil {
		return err
	}
	sealedKeyring, err := b.sealKeyring(rootKey, kr)
	if err != nil {
		return err
	}
	ops := make([]storage.Op, 0, len(plain)+len(sealed)+1)
	ops = append(ops, plain...)
	for _, op := range sealed {
		if op.Key == KeyringPath {
			return ErrReservedPath
		}
		if op.Kind == storage.OpPut {
			ct, err := b.encrypt(aeads, kr.ActiveTerm, op.Key, op.Value)
			if err != nil {
				return err
			}
			op.Value = ct
		}
		ops = append(ops, op)
	}
	ops = append(ops, storage.PutOp(KeyringPath, sealedKeyring))
	if err := b.backend.Txn(ctx, ops); err != nil {
		return fmt.Errorf("barrier: store keyring: %w", err)
	}
	return nil
}

// Initialized reports whether a keyring is stored.
func (b *Barrier) Initialized(ctx context.Context) (bool, error) {
	_, err := b.backend.Get(ctx, KeyringPath)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, storage.ErrNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("barrier: check keyring: %w", err)
	}
}

// Unseal opens the stored keyring with rootKey. A root key that does not
// open it gives ErrBadRootKey and leaves the barrier sealed. Unsealing an
// unsealed barrier is a no-op.
func (b *Barrier) Unseal(ctx context.Context, rootKey []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.keyring != nil {
		return nil
	}
	raw, err := b.backend.Get(ctx, KeyringPath)
	if errors.Is(err, storage.ErrNotFound) {
		return ErrNotInitialized
	}
	if err != nil {
		return fmt.Errorf("barrier: read keyring: %w", err)
	}
	kr, err := openKeyring(rootKey, raw)
	if err != nil {
		return err
	}
	aeads, err := aeadsFor(kr)
	if err != nil {
		kr.zero()
		return err
	}
	b.rootKey = append([]byte(nil), rootKey...)
	b.keyring = kr
	b.aeads = aeads
	return nil
}

// Seal forgets every key. It is safe to call on a sealed barrier.
func (b *Barrier) Seal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.keyring != nil {
		b.keyring.zero()
	}
	clear(b.rootKey)
	b.rootKey, b.keyring, b.aeads = nil, nil, nil
}

// Sealed reports whether the barrier is sealed.
func (b *Barrier) Sealed() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.keyring == nil
}

// VerifyRootKey reports whether rootKey opens the stored keyring, without
// changing the barrier's state.
func (b *Barrier) VerifyRootKey(ctx context.Context, rootKey []byte) error {
	raw, err := b.backend.Get(ctx, KeyringPath)
	if errors.Is(err, storage.ErrNotFound) {
		return ErrNotInitialized
	}
	if err != nil {
		return fmt.Errorf("barrier: read keyring: %w", err)
	}
	kr, err := openKeyring(rootKey, raw)
	if err != nil {
		return err
	}
	kr.zero()
	return nil
}

// Rotate adds a new key term to the keyring and makes it the one new writes
// use. Values written under older terms stay readable.
func (b *Barrier) Rotate(ctx context.Context) (KeyStatus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.keyring == nil {
		return KeyStatus{}, ErrSealed
	}
	k := make([]byte, KeySize)
	if _, err := io.ReadFull(b.rand, k); err != nil {
		return KeyStatus{}, fmt.Errorf("barrier: generate key: %w", err)
	}
	var maxTerm uint32
	for _, existing := range b.keyring.Keys {
		maxTerm = max(maxTerm, existing.Term)
	}
	next := &keyring{ActiveTerm: maxTerm + 1, Keys: append(append([]key(nil), b.keyring.Keys...),
		key{Term: maxTerm + 1, Value: k, InstallTime: b.now().UTC()})}
	aead, err := newAEAD(k)
	if err != nil {
		return KeyStatus{}, err
	}
	sealed, err := b.sealKeyring(b.rootKey, next)
	if err != nil {
		return KeyStatus{}, err
	}
	if err := b.backend.Put(ctx, KeyringPath, sealed); err != nil {
		clear(k)
		return KeyStatus{}, fmt.Errorf("barrier: store keyring: %w", err)
	}
	b.keyring = next
	b.aeads[next.ActiveTerm] = aead
	return statusOf(next), nil
}

// KeyStatus returns the active key's term and install time.
func (b *Barrier) KeyStatus() (KeyStatus, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.keyring == nil {
		return KeyStatus{}, ErrSealed
	}
	return statusOf(b.keyring), nil
}

func statusOf(kr *keyring) KeyStatus {
	a := kr.active()
	return KeyStatus{Term: a.Term, InstallTime: a.InstallTime, Terms: len(kr.Keys)}
}

// Get returns the plaintext stored under key, or storage.ErrNotFound.
func (b *Barrier) Get(ctx context.Context, key string) ([]byte, error) {
	if key == KeyringPath {
		return nil, ErrReservedPath
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.keyring == nil {
		return nil, ErrSealed
	}
	raw, err := b.backend.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	return decrypt(b.aeads, key, raw)
}

// Put encrypts value and stores it under key.
func (b *Barrier) Put(ctx context.Context, key string, value []byte) error {
	if key == KeyringPath {
		return ErrReservedPath
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.keyring == nil {
		return ErrSealed
	}
	ct, err := b.encrypt(b.aeads, b.keyring.ActiveTerm, key, value)
	if err != nil {
		return err
	}
	return b.backend.Put(ctx, key, ct)
}

// Delete removes key.
func (b *Barrier) Delete(ctx context.Context, key string) error {
	if key == KeyringPath {
		return ErrReservedPath
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.keyring == nil {
		return ErrSealed
	}
	return b.backend.Delete(ctx, key)
}

// List returns the direct children of prefix. Paths are not secret, but a
// sealed barrier answers nothing.
func (b *Barrier) List(ctx context.Context, prefix string) ([]string, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.keyring == nil {
		return nil, ErrSealed
	}
	return b.backend.List(ctx, prefix)
}

// Txn encrypts every put and applies ops atomically.
func (b *Barrier) Txn(ctx context.Context, ops []storage.Op) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.keyring == nil {
		return ErrSealed
	}
	out := make([]storage.Op, len(ops))
	for i, op := range ops {
		if op.Key == KeyringPath {
			return ErrReservedPath
		}
		out[i] = op
		if op.Kind == storage.OpPut {
			ct, err := b.encrypt(b.aeads, b.keyring.ActiveTerm, op.Key, op.Value)
			if err != nil {
				return err
			}
			out[i].Value = ct
		}
	}
	return b.backend.Txn(ctx, out)
}

// encrypt seals value for path under the key of term. The result is
// header || nonce || ciphertext+tag; header and path are authenticated.
func (b *Barrier) encrypt(aeads map[uint32]cipher.AEAD, term uint32, path string, value []byte) ([]byte, error) {
	aead, ok := aeads[term]
	if !ok {
		return nil, fmt.Errorf("barrier: no key for term %d", term)
	}
	out := make([]byte, headerSize+nonceSize, headerSize+nonceSize+len(value)+tagSize)
	out[0] = formatVersion
	binary.BigEndian.PutUint32(out[1:headerSize], term)
	if _, err := io.ReadFull(b.rand, out[headerSize:]); err != nil {
		return nil, fmt.Errorf("barrier: nonce: %w", err)
	}
	return aead.Seal(out, out[headerSize:], value, additionalData(out[:headerSize], path)), nil
}

func decrypt(aeads map[uint32]cipher.AEAD, path string, raw []byte) ([]byte, error) {
	if len(raw) < headerSize+nonceSize+tagSize {
		return nil, fmt.Errorf("%w: %q is truncated", ErrCorrupt, path)
	}
	if raw[0] != formatVersion {
		return nil, fmt.Errorf("%w: %q has unknown format version %d", ErrCorrupt, path, raw[0])
	}
	term := binary.BigEndian.Uint32(raw[1:headerSize])
	aead, ok := aeads[term]
	if !ok {
		return nil, fmt.Errorf("%w: %q names unknown key term %d", ErrCorrupt, path, term)
	}
	nonce := raw[headerSize : headerSize+nonceSize]
	pt, err := aead.Open(nil, nonce, raw[headerSize+nonceSize:], additionalData(raw[:headerSize], path))
	if err != nil {
		return nil, fmt.Errorf("%w: %q", ErrCorrupt, path)
	}
	if pt == nil {
		pt = []byte{}
	}
	return pt, nil
}

// additionalData binds a ciphertext to its header and its storage path.
func additionalData(header []byte, path string) []byte {
	ad := make([]byte, 0, len(header)+len(path))
	return append(append(ad, header...), path...)
}

// sealKeyring encrypts kr under rootKey, bound to KeyringPath.
func (b *Barrier) sealKeyring(rootKey []byte, kr *keyring) ([]byte, error) {
	if err := kr.validate(); err != nil {
		return nil, fmt.Errorf("barrier: %w", err)
	}
	aead, err := newAEAD(rootKey)
	if err != nil {
		return nil, err
	}
	pt, err := json.Marshal(kr)
	if err != nil {
		return nil, fmt.Errorf("barrier: encode keyring: %w", err)
	}
	defer clear(pt)
	return b.encrypt(map[uint32]cipher.AEAD{0: aead}, 0, KeyringPath, pt)
}

func openKeyring(rootKey, raw []byte) (*keyring, error) {
	if len(rootKey) != KeySize {
		return nil, ErrBadRootKey
	}
	aead, err := newAEAD(rootKey)
	if err != nil {
		return nil, err
	}
	pt, err := decrypt(map[uint32]cipher.AEAD{0: aead}, KeyringPath, raw)
	if err != nil {
		return nil, ErrBadRootKey
	}
	defer clear(pt)
	var kr keyring
	if err := json.Unmarshal(pt, &kr); err != nil {
		return nil, fmt.Errorf("barrier: decode keyring: %w", err)
	}
	if err := kr.validate(); err != nil {
		kr.zero()
		return nil, fmt.Errorf("barrier: %w", err)
	}
	return &kr, nil
}

func aeadsFor(kr *keyring) (map[uint32]cipher.AEAD, error) {
	out := make(map[uint32]cipher.AEAD, len(kr.Keys))
	for _, k := range kr.Keys {
		aead, err := newAEAD(k.Value)
		if err != nil {
			return nil, err
		}
		out[k.Term] = aead
	}
	return out, nil
}

func newAEAD(k []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("barrier: cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("barrier: gcm: %w", err)
	}
	return aead, nil
}
