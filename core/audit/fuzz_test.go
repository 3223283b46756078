package audit_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/audit"
)

// FuzzDecodeLine feeds DecodeLine what an attacker with write access to an
// audit file could put in a line. It must never panic, and a line it
// accepts must survive EncodeLine and DecodeLine unchanged.
func FuzzDecodeLine(f *testing.F) {
	canon, _ := audit.EncodeCanonical(1, audit.Event{Time: time.Unix(1, 0), Path: "secrets/x"})
	line, _ := audit.EncodeLine(audit.Record{Seq: 1, Time: time.Unix(1, 0), PrevHash: make([]byte, 32), Hash: bytes.Repeat([]byte{1}, 32), Signature: []byte{2}, Canonical: canon})
	f.Add(line)
	f.Add([]byte(`{"seq":1}`))
	f.Add([]byte(`{"seq":1,"time":"2025-01-01T00:00:00Z","prev_hash":"zz","hash":"","signature":"","canonical":"{}","event":{}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		rec, err := audit.DecodeLine(in)
		if err != nil {
			return
		}
		out, err := audit.EncodeLine(rec)
		if err != nil {
			return // canonical bytes that are not JSON cannot be re-encoded
		}
		again, err := audit.DecodeLine(out)
		if err != nil {
			t.Fatalf("re-encoded line does not decode: %v\n%s", err, out)
		}
		if again.Seq != rec.Seq || !again.Time.Equal(rec.Time) || !bytes.Equal(again.Hash, rec.Hash) ||
			!bytes.Equal(again.PrevHash, rec.PrevHash) || !bytes.Equal(again.Signature, rec.Signature) ||
			!bytes.Equal(again.Canonical, rec.Canonical) {
			t.Fatalf("round trip changed the record:\n%+v\n%+v", rec, again)
		}
	})
}

// FuzzDecodeCanonical feeds DecodeCanonical arbitrary bytes (a tampered
// database row). It must never panic, and what it accepts must encode again
// to a canonical form that decodes to the same sequence number and time.
func FuzzDecodeCanonical(f *testing.F) {
	canon, _ := audit.EncodeCanonical(7, event(1))
	f.Add(canon)
	f.Add([]byte(`{"v":1,"seq":1,"time":"2025-01-01T00:00:00Z","request":{"a":[1,"x",{"b":null}]}}`))
	f.Add([]byte(`{"v":1,"seq":-1,"time":"2025-01-01T00:00:00+02:00","policies":null}`))
	f.Add([]byte(`garbage`))
	f.Fuzz(func(t *testing.T, in []byte) {
		seq, ev, err := audit.DecodeCanonical(in)
		if err != nil {
			return
		}
		out, err := audit.EncodeCanonical(seq, ev)
		if err != nil {
			t.Fatalf("EncodeCanonical of a decoded event: %v", err)
		}
		seq2, ev2, err := audit.DecodeCanonical(out)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v\n%s", err, out)
		}
		if seq2 != seq || !ev2.Time.Equal(ev.Time) {
			t.Fatalf("round trip changed seq/time: %d %v -> %d %v", seq, ev.Time, seq2, ev2.Time)
		}
		// Canonical form is a fixed point.
		out2, _ := audit.EncodeCanonical(seq2, ev2)
		if !bytes.Equal(out, out2) {
			t.Fatalf("canonical form is not stable:\n%s\n%s", out, out2)
		}
	})
}
