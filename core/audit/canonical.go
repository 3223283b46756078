package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/secrethub/secrethub/internal/jsonstr"
)

// CanonicalVersion is the value of the "v" member of every canonical
// encoding this package writes.
const CanonicalVersion = 1

// canonicalBody is an event's canonical encoding without its "v" and "seq"
// members. Its fields are encoded in this order, every one of them always
// present.
type canonicalBody struct {
	Time          string         `json:"time"`
	RequestID     string         `json:"request_id"`
	Operation     string         `json:"operation"`
	Path          string         `json:"path"`
	ClientAddr    string         `json:"client_addr"`
	TokenAccessor string         `json:"token_accessor"`
	Policies      []string       `json:"policies"`
	Result        string         `json:"result"`
	StatusCode    int            `json:"status_code"`
	Error         string         `json:"error"`
	Request       map[string]any `json:"request"`
	Response      map[string]any `json:"response"`
}

// canonicalDoc is a whole canonical encoding, for decoding.
type canonicalDoc struct {
	V   int   `json:"v"`
	Seq int64 `json:"seq"`
	canonicalBody
}

// EncodeCanonical returns the canonical encoding of ev as record seq. It is
// the JSON object
//
//	{"v":1,"seq":N,"time":…,"request_id":…,"operation":…,"path":…,
//	 "client_addr":…,"token_accessor":…,"policies":[…],"result":…,
//	 "status_code":N,"error":…,"request":{…},"response":{…}}
//
// with the members in exactly that order and no white space; time in
// RFC 3339 with nanoseconds, UTC, trailing zeros of the fraction dropped
// (time.RFC3339Nano); a nil policies list as [] and a nil request or
// response as {}; map keys sorted bytewise; strings escaped as encoding/json
// does without HTML escaping (only ", \ and control characters), invalid
// UTF-8 and NUL replaced by U+FFFD; numbers as encoding/json writes them.
//
// EncodeCanonical does not HMAC ev's data: Log.Record does that first.
func EncodeCanonical(seq int64, ev Event) ([]byte, error) {
	body, err := encodeBody(normalize(ev))
	if err != nil {
		return nil, err
	}
	return canonical(seq, body), nil
}

// normalize returns ev as the canonical encoding records it: time in UTC,
// clear-text strings valid UTF-8 without NUL (so that every sink, Postgres
// text and jsonb included, can store them), no nil policies or data.
func normalize(ev Event) Event {
	ev.Time = ev.Time.UTC()
	ev.RequestID = cleanString(ev.RequestID)
	ev.Operation = cleanString(ev.Operation)
	ev.Path = cleanString(ev.Path)
	ev.ClientAddr = cleanString(ev.ClientAddr)
	ev.TokenAccessor = cleanString(ev.TokenAccessor)
	ev.Result = cleanString(ev.Result)
	ev.Error = cleanString(ev.Error)
	policies := make([]string, len(ev.Policies))
	for i, p := range ev.Policies {
		policies[i] = cleanString(p)
	}
	ev.Policies = policies
	if ev.Request == nil {
		ev.Request = map[string]any{}
	}
	if ev.Response == nil {
		ev.Response = map[string]any{}
	}
	return ev
}

// cleanString replaces invalid UTF-8 and NUL characters by U+FFFD.
func cleanString(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	return s
}

// encodeBody encodes a normalized event without "v" and "seq". Record calls
// it in the caller's goroutine, so that the writer only splices in the
// sequence number.
//
// It writes the bytes encoding/json writes for canonicalBody (with HTML
// escaping off, less the trailing newline), without reflection for the
// types HMACData leaves in event data (strings, booleans, integers,
// json.Number literals, nil, map[string]any and []any); a value of any
// other type is handed to encoding/json. TestEncodeBodyMatchesEncodingJSON
// and FuzzEncodeBody hold it to encoding/json's bytes.
func encodeBody(ev Event) ([]byte, error) {
	buf, err := encodeBodyHeadroom(ev)
	if err != nil {
		return nil, err
	}
	return buf[canonicalHeadroom:], nil
}

// canonicalHeadroom is how many bytes encodeBodyHeadroom leaves before the
// body, so that canonicalInPlace can put "v" and "seq" there: `{"v":1,` and
// `"seq":` (13 bytes), at most 20 digits and a comma, less the body's
// opening brace, which the comma replaces.
const canonicalHeadroom = 33

// scratch holds the buffers events are encoded in before they are copied
// out at their size.
var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// maxScratch is the largest buffer put back into scratch.
const maxScratch = 64 << 10

// encodeBodyHeadroom returns encodeBody(ev) preceded by canonicalHeadroom
// bytes of room, in a buffer of its own of exactly that length.
func encodeBodyHeadroom(ev Event) ([]byte, error) {
	sp := scratch.Get().(*[]byte)
	b, err := appendBody((*sp)[:canonicalHeadroom], ev)
	if err != nil {
		scratch.Put(sp)
		return nil, err
	}
	out := append([]byte(nil), b...)
	if cap(b) <= maxScratch {
		*sp = b[:0]
		scratch.Put(sp)
	}
	return out, nil
}

// appendBody appends encodeBody(ev) to b.
func appendBody(b []byte, ev Event) ([]byte, error) {
	if y := ev.Time.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("audit: encode event %q: time %v is outside years 0 to 9999", ev.RequestID, ev.Time)
	}
	// RFC 3339 of a year 0 to 9999 has no character JSON escapes.
	b = append(b, `{"time":"`...)
	b = ev.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","request_id":`...)
	b = jsonstr.Append(b, ev.RequestID, false)
	b = append(b, `,"operation":`...)
	b = jsonstr.Append(b, ev.Operation, false)
	b = append(b, `,"path":`...)
	b = jsonstr.Append(b, ev.Path, false)
	b = append(b, `,"client_addr":`...)
	b = jsonstr.Append(b, ev.ClientAddr, false)
	b = append(b, `,"token_accessor":`...)
	b = jsonstr.Append(b, ev.TokenAccessor, false)
	b = append(b, `,"policies":`...)
	if ev.Policies == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, p := range ev.Policies {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonstr.Append(b, p, false)
		}
		b = append(b, ']')
	}
	b = append(b, `,"result":`...)
	b = jsonstr.Append(b, ev.Result, false)
	b = append(b, `,"status_code":`...)
	b = strconv.AppendInt(b, int64(ev.StatusCode), 10)
	b = append(b, `,"error":`...)
	b = jsonstr.Append(b, ev.Error, false)
	b = append(b, `,"request":`...)
	b, err := appendJSONValue(b, ev.Request, 0)
	if err != nil {
		return nil, fmt.Errorf("audit: encode event %q: %w", ev.RequestID, err)
	}
	b = append(b, `,"response":`...)
	b, err = appendJSONValue(b, ev.Response, 0)
	if err != nil {
		return nil, fmt.Errorf("audit: encode event %q: %w", ev.RequestID, err)
	}
	return append(b, '}'), nil
}

// maxFastDepth is how deep appendJSONValue descends itself; below it,
// encoding/json takes over (and detects cycles).
const maxFastDepth = 64

// appendJSONValue appends the JSON encoding/json writes for v (HTML
// escaping off).
func appendJSONValue(b []byte, v any, depth int) ([]byte, error) {
	if depth > maxFastDepth {
		return appendJSONFallback(b, v)
	}
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return jsonstr.Append(b, v, false), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int8:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int16:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int32:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case uint:
		return strconv.AppendUint(b, uint64(v), 10), nil
	case uint8:
		return strconv.AppendUint(b, uint64(v), 10), nil
	case uint16:
		return strconv.AppendUint(b, uint64(v), 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(v), 10), nil
	case uint64:
		return strconv.AppendUint(b, v, 10), nil
	case json.Number:
		if isJSONNumber(string(v)) {
			return append(b, v...), nil
		}
	case map[string]any:
		if v == nil {
			return append(b, "null"...), nil
		}
		var small [16]string
		keys := small[:0]
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonstr.Append(b, k, false)
			b = append(b, ':')
			var err error
			if b, err = appendJSONValue(b, v[k], depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case []any:
		if v == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendJSONValue(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	}
	return appendJSONFallback(b, v)
}

// appendJSONFallback appends what encoding/json writes for v with HTML
// escaping off: floats, other json.Numbers, and every other type.
func appendJSONFallback(b []byte, v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...), nil
}

// isJSONNumber reports whether s is a JSON number (RFC 8259, section 6):
// what encoding/json writes a json.Number as, unchanged.
func isJSONNumber(s string) bool {
	if s != "" && s[0] == '-' {
		s = s[1:]
	}
	switch {
	case s == "":
		return false
	case s[0] == '0':
		s = s[1:]
	case '1' <= s[0] && s[0] <= '9':
		s = skipDigits(s[1:])
	default:
		return false
	}
	if len(s) >= 2 && s[0] == '.' && '0' <= s[1] && s[1] <= '9' {
		s = skipDigits(s[2:])
	}
	if len(s) >= 2 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if s[0] == '+' || s[0] == '-' {
			s = s[1:]
		}
		if s == "" || s[0] < '0' || s[0] > '9' {
			return false
		}
		s = skipDigits(s)
	}
	return s == ""
}

// skipDigits returns s without its leading ASCII digits.
func skipDigits(s string) string {
	for s != "" && '0' <= s[0] && s[0] <= '9' {
		s = s[1:]
	}
	return s
}

// canonical splices "v" and "seq" into the front of an encoded body
// ({"time":…}), giving the canonical encoding.
func canonical(seq int64, body []byte) []byte {
	return append(canonicalPrefix(make([]byte, 0, len(body)+32), seq), body[1:]...)
}

// canonicalPrefix appends `{"v":1,"seq":N,` to b.
func canonicalPrefix(b []byte, seq int64) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, CanonicalVersion, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	return append(b, ',')
}

// canonicalInPlace returns the canonical encoding of record seq from buf,
// a body as encodeBodyHeadroom returns it, without copying the body: it
// writes "v" and "seq" into the room before it, over the body's opening
// brace. The result shares buf, which must not be used again for
// another seq while the result is in use.
func canonicalInPlace(seq int64, buf []byte) []byte {
	var room [canonicalHeadroom + 1]byte
	pre := canonicalPrefix(room[:0], seq)
	start := canonicalHeadroom + 1 - len(pre)
	if start < 0 {
		return canonical(seq, buf[canonicalHeadroom:])
	}
	copy(buf[start:], pre)
	return buf[start:]
}

// DecodeCanonical parses a canonical encoding, returning the sequence number
// and the event in it. Numbers in the data come back as json.Number. It does
// not check that b is canonical (Verify hashes the bytes themselves), only
// that it is one JSON object of version CanonicalVersion whose time is in
// canonical form.
func DecodeCanonical(b []byte) (int64, Event, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc canonicalDoc
	if err := dec.Decode(&doc); err != nil {
		return 0, Event{}, fmt.Errorf("%w: canonical event: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return 0, Event{}, fmt.Errorf("%w: canonical event: data after the object", ErrMalformed)
	}
	if doc.V != CanonicalVersion {
		return 0, Event{}, fmt.Errorf("%w: canonical event: version %d, want %d", ErrMalformed, doc.V, CanonicalVersion)
	}
	t, err := time.Parse(time.RFC3339Nano, doc.Time)
	if err != nil {
		return 0, Event{}, fmt.Errorf("%w: canonical event: time: %w", ErrMalformed, err)
	}
	if t.UTC().Format(time.RFC3339Nano) != doc.Time {
		return 0, Event{}, fmt.Errorf("%w: canonical event: time %q is not in canonical form", ErrMalformed, doc.Time)
	}
	return doc.Seq, Event{
		Time:          t.UTC(),
		RequestID:     doc.RequestID,
		Operation:     doc.Operation,
		Path:          doc.Path,
		ClientAddr:    doc.ClientAddr,
		TokenAccessor: doc.TokenAccessor,
		Policies:      doc.Policies,
		Result:        doc.Result,
		StatusCode:    doc.StatusCode,
		Error:         doc.Error,
		Request:       doc.Request,
		Response:      doc.Response,
	}, nil
}
