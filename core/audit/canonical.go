package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
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
func encodeBody(ev Event) ([]byte, error) {
	if y := ev.Time.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("audit: encode event %q: time %v is outside years 0 to 9999", ev.RequestID, ev.Time)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(canonicalBody{
		Time:          ev.Time.Format(time.RFC3339Nano),
		RequestID:     ev.RequestID,
		Operation:     ev.Operation,
		Path:          ev.Path,
		ClientAddr:    ev.ClientAddr,
		TokenAccessor: ev.TokenAccessor,
		Policies:      ev.Policies,
		Result:        ev.Result,
		StatusCode:    ev.StatusCode,
		Error:         ev.Error,
		Request:       ev.Request,
		Response:      ev.Response,
	})
	if err != nil {
		return nil, fmt.Errorf("audit: encode event %q: %w", ev.RequestID, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// canonical splices "v" and "seq" into the front of an encoded body
// ({"time":…}), giving the canonical encoding.
func canonical(seq int64, body []byte) []byte {
	out := make([]byte, 0, len(body)+32)
	out = append(out, `{"v":`...)
	out = strconv.AppendInt(out, CanonicalVersion, 10)
	out = append(out, `,"seq":`...)
	out = strconv.AppendInt(out, seq, 10)
	out = append(out, ',')
	return append(out, body[1:]...)
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
