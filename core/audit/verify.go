package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Report is what Verify found.
type Report struct {
	// Records is how many records the source yielded, unreadable ones
	// included.
	Records int64
	// OK is true when every record checked out.
	OK bool
	// FirstBadSeq is the first sequence number at which the chain is not
	// intact: the Seq of the first record that fails a check, or, when
	// records are missing, the first missing one. Zero when OK.
	FirstBadSeq int64
	// Reason says what failed at FirstBadSeq, and what that suggests was
	// done to the log. Empty when OK.
	Reason string
	// LastSeq and LastHash are the head of the verified chain: the last
	// record before the first failure (the last record when OK). Compare
	// them with Log.Head to detect records cut off the end, which a chain
	// cannot show by itself.
	LastSeq  int64
	LastHash []byte
}

// Verify walks the records of src in order and checks the chain. For each
// record it checks, in this order:
//
//  1. continuity: Seq is the previous record's plus one, starting at 1;
//  2. Canonical decodes and holds the same Seq as the record;
//  3. Hash is SHA-256(PrevHash || Canonical), recomputed from the stored
//     bytes;
//  4. PrevHash is the previous record's Hash (32 zero bytes for the first);
//  5. with keys (only keys.Sign is used), Signature is
//     HMAC-SHA256(keys.Sign, Hash);
//  6. the copies kept for querying (Time, EventJSON) say what Canonical
//     says.
//
// Without keys only the hash chain is checked, which someone who rewrites
// every record after the one they edit can recompute: verify with keys.
// Verify reads to the end even after a failure, to count the records and
// to tell a moved record from a deleted one. It returns an error only when
// the source cannot be read; a bad chain is a Report with OK false.
func Verify(ctx context.Context, src Source, keys *Keys) (Report, error) {
	v := verifier{prevHash: make([]byte, HashSize)}
	if keys != nil {
		// Only the signing key is needed.
		if len(keys.Sign) < MinKeySize {
			return Report{}, fmt.Errorf("%w: sign key has %d bytes, want at least %d", ErrInvalidKeys, len(keys.Sign), MinKeySize)
		}
		v.sign = newHasher(bytes.Clone(keys.Sign))
	}
	var rep Report
	for rec, err := range src.Records(ctx) {
		if err != nil && !errors.Is(err, ErrMalformed) {
			return rep, fmt.Errorf("audit: verify: %w", err)
		}
		rep.Records++
		if v.bad != 0 {
			v.refine(rec, err)
			continue
		}
		if err != nil {
			v.fail(v.prevSeq+1, fmt.Sprintf("record after seq %d is unreadable (record edited): %v", v.prevSeq, err))
			continue
		}
		v.check(rec)
	}
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("audit: verify: %w", err)
	}
	rep.OK = v.bad == 0
	rep.FirstBadSeq, rep.Reason = v.bad, v.reason
	rep.LastSeq, rep.LastHash = v.prevSeq, v.prevHash
	return rep, nil
}

// verifier is Verify's state.
type verifier struct {
	sign *hasher // nil: no signature check

	// The last record that checked out.
	prevSeq  int64
	prevHash []byte

	// The first failure.
	bad    int64
	reason string
	// gapLo..gapHi are the missing sequence numbers when the first failure
	// is a gap; gapNext is the Seq that followed the gap.
	gapLo, gapHi, gapNext int64
}

func (v *verifier) fail(seq int64, reason string) {
	v.bad, v.reason = seq, reason
}

// check runs the checks on rec, the record after prevSeq.
func (v *verifier) check(rec Record) {
	want := v.prevSeq + 1
	switch {
	case rec.Seq > want:
		v.gapLo, v.gapHi, v.gapNext = want, rec.Seq-1, rec.Seq
		if v.prevSeq == 0 {
			v.fail(want, fmt.Sprintf("sequence gap: chain starts at %d, not 1 (record deleted)", rec.Seq))
		} else {
			v.fail(want, fmt.Sprintf("sequence gap: %d follows %d (record deleted)", rec.Seq, v.prevSeq))
		}
		return
	case rec.Seq < want:
		v.fail(rec.Seq, fmt.Sprintf("sequence out of order: %d follows %d (record inserted or reordered)", rec.Seq, v.prevSeq))
		return
	}
	seq, ev, err := DecodeCanonical(rec.Canonical)
	if err != nil {
		v.fail(rec.Seq, fmt.Sprintf("canonical event unreadable (record edited): %v", err))
		return
	}
	if seq != rec.Seq {
		v.fail(rec.Seq, fmt.Sprintf("record at seq %d holds the event signed as seq %d (records reordered)", rec.Seq, seq))
		return
	}
	h := sha256.New()
	h.Write(rec.PrevHash)
	h.Write(rec.Canonical)
	sum := h.Sum(nil)
	if !bytes.Equal(sum, rec.Hash) {
		v.fail(rec.Seq, "hash mismatch: record edited")
		return
	}
	if !bytes.Equal(rec.PrevHash, v.prevHash) {
		if v.prevSeq == 0 {
			v.fail(rec.Seq, "prev_hash of the first record is not zero (reordered or inserted)")
		} else {
			v.fail(rec.Seq, fmt.Sprintf("prev_hash does not match record %d (reordered or inserted)", v.prevSeq))
		}
		return
	}
	if v.sign != nil && !hmac.Equal(v.sign.sum(rec.Hash), rec.Signature) {
		v.fail(rec.Seq, "signature invalid (record forged, or verified with the wrong keys)")
		return
	}
	if d := rec.Time.Sub(ev.Time); d >= time.Microsecond || d <= -time.Microsecond {
		v.fail(rec.Seq, "stored time differs from the signed event (record edited)")
		return
	}
	if rec.EventJSON != nil && !sameJSON(rec.EventJSON, rec.Canonical) {
		v.fail(rec.Seq, "stored copy of the event differs from the signed event (record edited)")
		return
	}
	v.prevSeq, v.prevHash = rec.Seq, rec.Hash
}

// refine looks at a record after the first failure: if the failure was a
// gap and a missing record turns up later, the records were moved, not
// deleted.
func (v *verifier) refine(rec Record, err error) {
	if err != nil || v.gapNext == 0 || rec.Seq < v.gapLo || rec.Seq > v.gapHi {
		return
	}
	v.reason = fmt.Sprintf("sequence gap: %d follows %d, and %d comes later (records reordered)", v.gapNext, v.gapLo-1, rec.Seq)
	v.gapNext = 0
}

// sameJSON reports whether a and b are JSON texts with the same value:
// objects equal member by member whatever their order, numbers equal by
// exact decimal value whatever their notation (as Postgres jsonb rewrites
// them).
func sameJSON(a, b []byte) bool {
	va, ok := decodeJSON(a)
	if !ok {
		return false
	}
	vb, ok := decodeJSON(b)
	return ok && jsonEqual(va, vb)
}

func decodeJSON(b []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	if dec.More() {
		return nil, false
	}
	return v, true
}

func jsonEqual(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, va := range a {
			vb, ok := b[k]
			if !ok || !jsonEqual(va, vb) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !jsonEqual(a[i], b[i]) {
				return false
			}
		}
		return true
	case json.Number:
		b, ok := b.(json.Number)
		if !ok {
			return false
		}
		if a == b {
			return true
		}
		na, oka := normalNumber(string(a))
		nb, okb := normalNumber(string(b))
		return oka && okb && na == nb
	default: // string, bool, nil
		return a == b
	}
}

// normalNumber rewrites a JSON number literal as sign, significant digits
// and exponent ("-125e-2" for -1.250), so that equal values compare equal
// as strings. It never expands the exponent, however large.
func normalNumber(s string) (string, bool) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mant, expStr, hasExp := strings.Cut(strings.ToLower(s), "e")
	exp := new(big.Int)
	if hasExp {
		if _, ok := exp.SetString(strings.TrimPrefix(expStr, "+"), 10); !ok {
			return "", false
		}
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := intPart + frac
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return "", false
	}
	exp.Sub(exp, big.NewInt(int64(len(frac))))
	digits = strings.TrimLeft(digits, "0")
	trimmed := strings.TrimRight(digits, "0")
	exp.Add(exp, big.NewInt(int64(len(digits)-len(trimmed))))
	if trimmed == "" {
		return "0", true
	}
	sign := ""
	if neg {
		sign = "-"
	}
	return sign + trimmed + "e" + exp.String(), true
}
