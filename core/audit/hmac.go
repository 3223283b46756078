package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"math"
	"strconv"
	"sync"
)

// HashPrefix starts every value HashValue returns.
const HashPrefix = "hmac-sha256:"

// hasher computes HMAC-SHA256 under one key, reusing hash states.
type hasher struct {
	key  []byte
	pool sync.Pool // of hash.Hash keyed with key
}

func newHasher(key []byte) *hasher {
	h := &hasher{key: key}
	h.pool.New = func() any { return hmac.New(sha256.New, h.key) }
	return h
}

// sum returns HMAC-SHA256(key, b).
func (h *hasher) sum(b []byte) []byte {
	m := h.pool.Get().(hash.Hash)
	m.Reset()
	m.Write(b)
	out := m.Sum(make([]byte, 0, sha256.Size))
	h.pool.Put(m)
	return out
}

// sumTo appends the HMAC of b to dst.
func (h *hasher) sumTo(dst, b []byte) []byte {
	m := h.pool.Get().(hash.Hash)
	m.Reset()
	m.Write(b)
	out := m.Sum(dst)
	h.pool.Put(m)
	return out
}

// hashString returns HashPrefix and the hex HMAC of s.
func (h *hasher) hashString(s string) string {
	m := h.pool.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(s))
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	h.pool.Put(m)
	var out [len(HashPrefix) + 2*sha256.Size]byte
	copy(out[:], HashPrefix)
	hex.Encode(out[len(HashPrefix):], sum[:])
	return string(out[:])
}

// HashValue returns "hmac-sha256:" and the hex HMAC-SHA256 of s under the
// log's HMAC key: what Record writes in place of s when s is a string in an
// event's data. An operator who knows a value can search the log for it
// (the core's sys/audit-hash endpoint).
func (l *Log) HashValue(s string) string {
	return l.hmac.hashString(s)
}

// HMACData returns a deep copy of m with every string leaf replaced by
// HashValue of it, at any depth of maps and slices. Numbers, booleans and
// nulls are kept, and so are map keys (made valid UTF-8 without NUL, as in
// the canonical encoding); a json.Number that is not a number literal, is
// longer than 64 characters or is beyond float64's range is hashed like the
// string it is. Values of other Go types ([]string, structs,
// []byte, time.Time, …) are first turned into what encoding/json makes of
// them, so their strings are replaced too. A value encoding/json cannot
// encode becomes a description of its type. HMACData(nil) is nil.
func (l *Log) HMACData(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	return l.hmacMap(m)
}

func (l *Log) hmacMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[cleanString(k)] = l.hmacValue(v)
	}
	return out
}

// hmacValue is HMACData for one value.
func (l *Log) hmacValue(v any) any {
	switch v := v.(type) {
	case nil, bool,
		int, int8, int16, int32, int64,
		uint, uint8, uint16, uint32, uint64, uintptr:
		return v
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Sprint(v) // not a secret, and JSON has no such number
		}
		return v
	case float32:
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Sprint(v)
		}
		return v
	case json.Number:
		if isNumberLiteral(string(v)) {
			return v
		}
		// Not a number literal after all: treat it as the string it is.
		return l.HashValue(string(v))
	case string:
		return l.HashValue(v)
	case map[string]any:
		return l.hmacMap(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = l.hmacValue(e)
		}
		return out
	case map[string]string:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[cleanString(k)] = l.HashValue(e)
		}
		return out
	case []string:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = l.HashValue(e)
		}
		return out
	default:
		// Let encoding/json say what v is, then hash that.
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprintf("[unencodable %T]", v)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var generic any
		if err := dec.Decode(&generic); err != nil {
			return fmt.Sprintf("[unencodable %T]", v)
		}
		return l.hmacValue(generic)
	}
}

// maxNumberLen bounds the json.Number literals HMACData keeps as numbers.
const maxNumberLen = 64

// isNumberLiteral reports whether s is one JSON number and nothing else, as
// encoding/json requires of a json.Number it encodes, short and within
// float64's range, so that every sink (Postgres numeric included) can store
// it.
func isNumberLiteral(s string) bool {
	if s == "" || len(s) > maxNumberLen || !(s[0] == '-' || '0' <= s[0] && s[0] <= '9') {
		return false
	}
	if _, err := strconv.ParseFloat(s, 64); err != nil {
		return false
	}
	if c := s[len(s)-1]; c < '0' || c > '9' {
		return false
	}
	return json.Valid([]byte(s))
}
