// Package audit is SecretHub's tamper-evident audit log.
//
// Every API request, allowed, denied or failed, becomes one Event, and the
// core writes it with Log.Record before it answers. Record blocks until the
// event is durably stored in every sink; if it cannot be, Record returns an
// error and the core fails the request (fail closed).
//
// Events form a hash chain. The Log gives each one the next sequence number
// (1, 2, 3, … with no gaps), encodes it canonically (see EncodeCanonical), and
// stores it as a Record with
//
//	Hash      = SHA-256(PrevHash || Canonical)
//	Signature = HMAC-SHA256(Keys.Sign, Hash)
//
// where PrevHash is the previous record's Hash (32 zero bytes for the first).
// Verify walks a stored chain and names the first record that was edited,
// deleted, reordered or forged. Secret values never reach a sink: every string
// leaf of an event's request and response data is replaced by its
// HMAC-SHA256 under Keys.HMAC (see Log.HMACData and Log.HashValue).
//
// Record group-commits: concurrent calls queue their events, and one writer
// goroutine hands everything queued (up to Options.MaxBatch) to the sinks in
// one Append, so a sink pays one durable commit per batch, not per event.
// When the only sink is a PipelineSink, up to Options.MaxInFlight batches
// are on their way at once: the next batch is sent while the one before it
// commits.
//
// The sinks in this package are Memory (dev mode and tests) and File (JSON
// lines); the Postgres sink is in package pgsink. docs/audit.md is the
// operator's description of the formats and of what Verify reports.
package audit

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"iter"
	"time"
)

// Sentinel errors.
var (
	// ErrNotRecorded wraps every error Record returns: the event is not
	// known to be stored, so the request it describes must fail. A Record
	// that fails on its context may still have been stored.
	ErrNotRecorded = errors.New("audit: event not recorded")
	// ErrClosed is returned by Record after Close.
	ErrClosed = errors.New("audit: log is closed")
	// ErrInvalidKeys is returned by New and DeriveKeys for missing or short
	// keys.
	ErrInvalidKeys = errors.New("audit: invalid keys")
	// ErrMalformed marks a stored record that cannot be parsed. Sources
	// yield it (wrapped, with the position) and go on with the next record;
	// Verify reports it as a bad record.
	ErrMalformed = errors.New("audit: malformed record")
	// ErrUnknownFormat is returned by Export for a format other than
	// FormatCSV and FormatJSON.
	ErrUnknownFormat = errors.New("audit: unknown export format")
)

// The values of Event.Result.
const (
	ResultOK      = "ok"
	ResultDenied  = "denied"
	ResultError   = "error"
	ResultInvalid = "invalid"
	// ResultStarted marks the event a state-changing request gets before
	// it runs; its outcome follows in a second event with the same
	// RequestID.
	ResultStarted = "started"
)

// HashSize is the length of Record.Hash and Record.PrevHash.
const HashSize = sha256.Size

// MinKeySize is the shortest key New accepts. DeriveKeys makes 32-byte keys.
const MinKeySize = 16

// Event is one API request as the audit log keeps it.
type Event struct {
	// Time is when the core received the request, in UTC. Record fills in
	// the Log's clock when it is zero.
	Time      time.Time
	RequestID string
	// Operation is read, create, update, delete, list, login, ...
	Operation string
	// Path is the API path below /v1/. It is kept in clear.
	Path       string
	ClientAddr string
	// TokenAccessor is the caller's token accessor, kept in clear: it is
	// the handle operators search by. The token itself is never recorded.
	TokenAccessor string
	Policies      []string
	// Result is ResultOK, ResultDenied, ResultError, ResultInvalid or
	// ResultStarted.
	Result     string
	StatusCode int
	// Error is the error message shown to the client, which never holds a
	// secret. It is kept in clear.
	Error string
	// Request and Response are the request and response data. Pass them
	// plain to Record: it replaces every string leaf by its HMAC (see
	// Log.HMACData). Numbers, booleans, nulls and the keys of maps are
	// kept.
	Request  map[string]any
	Response map[string]any
}

// Record is an Event as a sink stores it: a link of the hash chain.
type Record struct {
	// Seq is the record's place in the chain: 1, 2, 3, … with no gaps.
	Seq int64
	// Time is the event's time, as the sink stores it for querying (the
	// Postgres sink keeps microseconds).
	Time time.Time
	// PrevHash is the previous record's Hash; 32 zero bytes for Seq 1.
	PrevHash []byte
	// Hash is SHA-256(PrevHash || Canonical).
	Hash []byte
	// Signature is HMAC-SHA256(Keys.Sign, Hash).
	Signature []byte
	// Canonical is the event's canonical encoding, including Seq (see
	// EncodeCanonical). Verify works from these bytes, never from a re-encoding.
	Canonical []byte
	// EventJSON is the copy of the event the sink keeps for querying,
	// read back as stored (the Postgres event jsonb, checked against the
	// path, operation and result columns; the file line's "event"
	// member); nil where a sink keeps none. Verify checks that it says
	// what Canonical says.
	EventJSON []byte
	// Event is Canonical decoded. Sources decode it on a best-effort
	// basis: it is the zero Event when Canonical does not decode, which
	// Verify reports.
	Event Event
}

// Sink stores records. The Log calls Append from one goroutine at a time,
// with records in chain order.
type Sink interface {
	// Append stores recs, which continue the chain, durably and
	// atomically: all of them or none. It returns only when they are
	// durable.
	Append(ctx context.Context, recs []Record) error
	// Last returns the record with the highest Seq, and false if the sink
	// holds none.
	Last(ctx context.Context) (Record, bool, error)
	// Close releases the sink's resources.
	Close() error
}

// PipelineSink is a Sink that can store a batch while the next one is
// already on its way, so that a batch never waits for the round trip of
// the one before it. The Log uses it when it is the only sink.
//
// StartAppend and WaitAppend are called from one goroutine at a time.
// Every batch a sink stores through them must follow a record it already
// holds: it stores recs only if it holds the record with Seq
// recs[0].Seq-1 and Hash recs[0].PrevHash (or recs[0].Seq is 1), checked
// after every earlier StartAppend has finished, atomically with storing
// recs. So when a batch fails, the batches started after it fail too,
// and the chain never gets a hole.
type PipelineSink interface {
	Sink
	// StartAppend sends recs, which continue the chain after the
	// records of the StartAppend before it, and returns without waiting
	// for them to be stored. If it returns an error, recs are not stored
	// and WaitAppend is not to be called for them.
	StartAppend(ctx context.Context, recs []Record) error
	// WaitAppend waits for the oldest StartAppend not yet waited for,
	// and returns nil only when its records are durable, as Append
	// does. ctx bounds the wait; a wait that ends on ctx may leave the
	// outcome of this batch and of the later ones unknown (each of them
	// then returns an error).
	WaitAppend(ctx context.Context) error
}

// Source yields stored records in ascending Seq order, for Verify and
// Export. A record that cannot be parsed is yielded as an error wrapping
// ErrMalformed, after which the iteration goes on; any other error ends it.
type Source interface {
	Records(ctx context.Context) iter.Seq2[Record, error]
}

// FilteredSource is a Source that can narrow what it yields to a Filter
// itself (a Postgres WHERE). It may yield more than the filter matches, never
// less: Export filters again.
type FilteredSource interface {
	Source
	FilteredRecords(ctx context.Context, f Filter) iter.Seq2[Record, error]
}

// Keys are the audit log's secret keys. Both must be at least MinKeySize
// bytes; the core derives them from its root key with DeriveKeys.
type Keys struct {
	// Sign keys the HMAC-SHA256 signature of each record's hash.
	Sign []byte
	// HMAC keys the HMAC-SHA256 that replaces secret values in events.
	HMAC []byte
}

// String hides the keys, so that printing Keys by mistake leaks nothing.
func (Keys) String() string { return "audit.Keys{REDACTED}" }

// GoString hides the keys from %#v.
func (k Keys) GoString() string { return k.String() }

// validate checks that both keys are present and long enough.
func (k Keys) validate() error {
	if len(k.Sign) < MinKeySize {
		return fmt.Errorf("%w: sign key has %d bytes, want at least %d", ErrInvalidKeys, len(k.Sign), MinKeySize)
	}
	if len(k.HMAC) < MinKeySize {
		return fmt.Errorf("%w: HMAC key has %d bytes, want at least %d", ErrInvalidKeys, len(k.HMAC), MinKeySize)
	}
	return nil
}

// clone returns a deep copy of k.
func (k Keys) clone() Keys {
	return Keys{Sign: append([]byte(nil), k.Sign...), HMAC: append([]byte(nil), k.HMAC...)}
}

// The HKDF info strings of DeriveKeys. Changing them changes every key, so
// they carry a version.
const (
	signKeyInfo = "secrethub audit sign key v1"
	hmacKeyInfo = "secrethub audit hmac key v1"
)

// DeriveKeys derives the audit keys from the core's root key with
// HKDF-SHA256 (no salt), one info string per key, 32 bytes each. The same
// root key always gives the same keys, so a restarted core continues the
// chain and can verify it.
func DeriveKeys(rootKey []byte) (Keys, error) {
	if len(rootKey) < MinKeySize {
		return Keys{}, fmt.Errorf("%w: root key has %d bytes, want at least %d", ErrInvalidKeys, len(rootKey), MinKeySize)
	}
	sign, err := hkdf.Key(sha256.New, rootKey, nil, signKeyInfo, 32)
	if err != nil {
		return Keys{}, fmt.Errorf("audit: derive sign key: %w", err)
	}
	mac, err := hkdf.Key(sha256.New, rootKey, nil, hmacKeyInfo, 32)
	if err != nil {
		return Keys{}, fmt.Errorf("audit: derive HMAC key: %w", err)
	}
	return Keys{Sign: sign, HMAC: mac}, nil
}
