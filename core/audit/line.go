package audit

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// jsonLine is one record as a line of JSON: the File sink's format and
// Export's "json" format. The members are written in this order.
type jsonLine struct {
	Seq       int64           `json:"seq"`
	Time      string          `json:"time"`
	PrevHash  string          `json:"prev_hash"`
	Hash      string          `json:"hash"`
	Signature string          `json:"signature"`
	Canonical *string         `json:"canonical"`
	Event     json.RawMessage `json:"event"`
}

// EncodeLine returns rec as one line of JSON, newline included:
//
//	{"seq":N,"time":"RFC 3339","prev_hash":"hex","hash":"hex",
//	 "signature":"hex","canonical":"<the canonical bytes as a JSON string>",
//	 "event":{<the canonical bytes as JSON>}}
//
// "canonical" is authoritative; "event" is a copy to read and query (Verify
// checks that they agree). rec.Canonical must be valid JSON, which every
// record a Log makes is.
func EncodeLine(rec Record) ([]byte, error) {
	canon := string(rec.Canonical)
	b, err := json.Marshal(jsonLine{
		Seq:       rec.Seq,
		Time:      rec.Time.UTC().Format(time.RFC3339Nano),
		PrevHash:  hex.EncodeToString(rec.PrevHash),
		Hash:      hex.EncodeToString(rec.Hash),
		Signature: hex.EncodeToString(rec.Signature),
		Canonical: &canon,
		Event:     json.RawMessage(rec.Canonical),
	})
	if err != nil {
		return nil, fmt.Errorf("audit: encode record %d: %w", rec.Seq, err)
	}
	return append(b, '\n'), nil
}

// DecodeLine parses one line EncodeLine wrote (with or without its
// newline). Errors wrap ErrMalformed. The record's Event is decoded from
// "canonical" when that decodes, and is zero otherwise; EventJSON is the
// "event" member as written.
func DecodeLine(line []byte) (Record, error) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	var l jsonLine
	if err := json.Unmarshal(line, &l); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if l.Canonical == nil {
		return Record{}, fmt.Errorf("%w: no canonical member", ErrMalformed)
	}
	if len(l.Event) == 0 || bytes.Equal(l.Event, []byte("null")) {
		return Record{}, fmt.Errorf("%w: no event member", ErrMalformed)
	}
	t, err := time.Parse(time.RFC3339Nano, l.Time)
	if err != nil {
		return Record{}, fmt.Errorf("%w: time: %w", ErrMalformed, err)
	}
	rec := Record{Seq: l.Seq, Time: t.UTC(), Canonical: []byte(*l.Canonical), EventJSON: bytes.Clone(l.Event)}
	for _, f := range []struct {
		name string
		hex  string
		dst  *[]byte
	}{
		{"prev_hash", l.PrevHash, &rec.PrevHash},
		{"hash", l.Hash, &rec.Hash},
		{"signature", l.Signature, &rec.Signature},
	} {
		b, err := hex.DecodeString(f.hex)
		if err != nil {
			return Record{}, fmt.Errorf("%w: %s: %w", ErrMalformed, f.name, err)
		}
		*f.dst = b
	}
	if _, ev, err := DecodeCanonical(rec.Canonical); err == nil {
		rec.Event = ev
	}
	return rec, nil
}
