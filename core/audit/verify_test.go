package audit_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/audit"
)

// chain returns n records written by a Log with keys.
func chain(t *testing.T, keys audit.Keys, n int) []audit.Record {
	t.Helper()
	mem := audit.NewMemory()
	l := openLog(t, keys, mem)
	record(t, l, 1, n)
	return collect(t, mem)
}

// rehash recomputes r's hash from its prev hash and canonical bytes, as an
// attacker without the signing key can.
func rehash(r *audit.Record) {
	h := sha256.New()
	h.Write(r.PrevHash)
	h.Write(r.Canonical)
	r.Hash = h.Sum(nil)
}

// edit replaces old by new in r's canonical bytes.
func edit(t *testing.T, r *audit.Record, old, new string) {
	t.Helper()
	if !bytes.Contains(r.Canonical, []byte(old)) {
		t.Fatalf("record %d has no %q", r.Seq, old)
	}
	r.Canonical = bytes.ReplaceAll(r.Canonical, []byte(old), []byte(new))
}

// forge makes a record for seq that links to prev, with a valid hash and a
// signature under the wrong key.
func forge(t *testing.T, seq int64, prev []byte) audit.Record {
	t.Helper()
	ev := event(1000)
	ev.Time = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	canon, err := audit.EncodeCanonical(seq, ev)
	if err != nil {
		t.Fatal(err)
	}
	r := audit.Record{Seq: seq, Time: ev.Time, PrevHash: prev, Canonical: canon, Signature: bytes.Repeat([]byte{1}, 32)}
	rehash(&r)
	return r
}

func TestVerify(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	otherKeys := newKeys(t)
	base := chain(t, keys, 10)

	tests := map[string]struct {
		// tamper changes a copy of the ten records (seqs 1..10; index
		// i holds seq i+1) into the source to verify.
		tamper func(t *testing.T, recs []audit.Record) sliceSource
		// keys to verify with; nil checks the hash chain only.
		keys *audit.Keys
		// wantBad is the expected FirstBadSeq, 0 for a clean chain.
		wantBad int64
		// wantReason is a part of the expected Reason.
		wantReason string
		// wantLast is the expected LastSeq when not wantBad-1.
		wantLast int64
	}{
		"clean, with keys": {
			tamper: func(t *testing.T, recs []audit.Record) sliceSource { return recordsOf(recs) },
			keys:   &keys,
		},
		"clean, without keys": {
			tamper: func(t *testing.T, recs []audit.Record) sliceSource { return recordsOf(recs) },
		},
		"empty chain": {
			tamper: func(t *testing.T, recs []audit.Record) sliceSource { return nil },
			keys:   &keys,
		},
		"canonical edited": {
			tamper: func(t *testing.T, recs []audit.Record) sliceSource {
				edit(t, &recs[4], "secrets/app/5", "secrets/app/X")
				return recordsOf(recs)
			},
			keys: &keys, wantBad: 5, wantReason: "hash mismatch: record edited",
		},
		"canonical edited and rehashed, with keys": {
			tamper: func(t *testing.T, recs []audit.Record) sliceSource {
				edit(t, &recs[4], `"result":"ok"`, `"result":"denied"`)
				rehash(&recs[4])
				return recordsOf(recs)
			},
			keys: &keys, wantBad: 5, wantReason: "signature invalid",
		},
		"canonical edited and rehashed, without keys": {
			tamper: func(t *testing.T, recs []audit.Record) sliceSource {
				edit(t, &recs[4], `"result":"ok"`, `"result":"denied"`)
				rehash(&recs[4])
				return recordsOf(recs)
			},
			wantBad: 6, wantReason: "prev_hash does not match record 5",
		},
		"edit and relink of the whole suffix is caught by the signature": {
			tamper: func(t *testing.T, recs []audit.Record) sliceSource {
				edit(t, &recs[4], `"result":"ok"`, `"result":"denied"`)
				for i := 4; i < len(recs); i++ {
					if i > 4 {
						recs[i].PrevHash = recs[i-1].Hash
					}
					rehash(&recs[i])
				}
				return recordsOf(recs)
			},
			keys: &keys, wantBad: 5, wantReason: "signature invalid",
		},
		"canonical replaced by garbage": {
			tamper: func(t *testing.T, recs []audit.Record) sliceSource {
				recs[4].Canonical = []byte("garbage")
				return recordsOf(recs)
			},
			keys: &keys, wantBad: 5, wantReason: "canonical event unreadable",
		},
		"record deleted": {
			tamper: func(t *testing.T, recs []audit.Record) sliceSource {
				return recordsOf(slices.Delete(recs, 4, 5))
			},
			keys: &keys, wantBad: 5, wantReason: "sequence gap: 6 follows 4 (record deleted)",
		},
		"first record deleted": {
			tamper: func(t *testing.T, recs []audit.Record) sliceSource {
				return recordsOf(recs[1:])
			},
			keys: &keys, wantBad: 1, wantReason: "chain starts at 2, not 1",
		},
		"contents swapped, seqs kept": {
			tamper: func(t *testing.T, recs []audit.Record) sliceSource {
				recs[3], recs[6] = recs[6], recs[3]
				recs[3].Seq, recs[6].Seq = 4, 7
				return recordsOf(recs)
			},
			keys: &keys, wantBad: 4, wantReason: "record at seq 4 holds the event signed as seq 7 (records reordered)",
		},
		"records moved": {
			tamper: func(t *testing.T, recs []audit.Record) sliceSource {
				recs[3], recs[6] = recs[6], recs[3]
				return recordsOf(recs)
			},
			keys: &keys, wantBad: 4, wantReason: "sequence gap: 7 follows 3, and 5 comes later (records reordered)",
		},
		"forged record inserted, later seqs shifted, with keys": {
			tamper: func(t *testing.T, recs []audit.Record) sliceSource {
				f := forge(t, 5, recs[3].Hash)
				for i := 4; i < len(recs); i++ {
					recs[i].Seq++
				}
				return recordsOf(slices.Insert(recs, 4, f))
			},
			keys: &keys, wantBad: 5, wantReason: "signature invalid",
		},
		"forged record inserted, later seqs shifted, without keys": {
			tamper: func(t *testing.T, recs []audit.Record) sliceSource {
				f := forge(t, 5, recs[3].Hash)
				for i := 4; i < len(recs); i++ {
					recs[i].Seq++
				}
				return recordsOf(slices.Insert(recs, 4, f))
			},
			wantBad: 6, wantReason: "holds the event signed as seq 5",
		},
		"record duplicated": {
			tamper: func(t *testing.T, recs []audit.Record) sliceSource {
				return recordsOf(slices.Insert(recs, 5, recs[4]))
			},
			keys: &keys, wantBad: 5, wantReason: "sequence out of order: 5 follows 5", wantLast: 5,
		},
		"verified with other keys": {
			tamper: func(t *testing.T, recs []audit.Record) sliceSource { return recordsOf(recs) },
			keys:   &otherKeys, wantBad: 1, wantReason: "signature invalid",
		},
		"query copy of the event edited": {
			tamper: func(t *testing.T, recs []audit.Record) sliceSource {
				for i := range recs {
					recs[i].EventJSON = bytes.Clone(recs[i].Canonical)
				}
				recs[6].EventJSON = bytes.ReplaceAll(recs[6].EventJSON, []byte("secrets/app/7"), []byte("secrets/app/X"))
				return recordsOf(recs)
			},
			keys: &keys, wantBad: 7, wantReason: "stored copy of the event differs",
		},
		"stored time edited": {
			tamper: func(t *testing.T, recs []audit.Record) sliceSource {
				recs[2].Time = recs[2].Time.Add(-time.Hour)
				return recordsOf(recs)
			},
			keys: &keys, wantBad: 3, wantReason: "stored time differs",
		},
		"first prev hash not zero": {
			tamper: func(t *testing.T, recs []audit.Record) sliceSource {
				recs[0].PrevHash = bytes.Repeat([]byte{9}, 32)
				rehash(&recs[0])
				recs[1].PrevHash = recs[0].Hash
				for i := 1; i < len(recs); i++ {
					recs[i].PrevHash = recs[i-1].Hash
					rehash(&recs[i])
				}
				return recordsOf(recs)
			},
			wantBad: 1, wantReason: "prev_hash of the first record is not zero",
		},
		"unreadable record": {
			tamper: func(t *testing.T, recs []audit.Record) sliceSource {
				s := recordsOf(recs)
				s[4] = item{err: fmt.Errorf("line 5: %w", audit.ErrMalformed)}
				return s
			},
			keys: &keys, wantBad: 5, wantReason: "record after seq 4 is unreadable",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			recs := make([]audit.Record, len(base))
			for i, r := range base {
				recs[i] = r
				recs[i].Canonical = bytes.Clone(r.Canonical)
			}
			src := tc.tamper(t, recs)
			rep := verify(t, src, tc.keys)
			if rep.Records != int64(len(src)) {
				t.Errorf("Records = %d, want %d", rep.Records, len(src))
			}
			if tc.wantBad == 0 {
				if !rep.OK || rep.FirstBadSeq != 0 || rep.Reason != "" {
					t.Errorf("Verify = %+v, want OK", rep)
				}
				if len(src) > 0 && (rep.LastSeq != 10 || !bytes.Equal(rep.LastHash, base[9].Hash)) {
					t.Errorf("LastSeq %d LastHash %x, want 10 %x", rep.LastSeq, rep.LastHash, base[9].Hash)
				}
				return
			}
			if rep.OK || rep.FirstBadSeq != tc.wantBad || !strings.Contains(rep.Reason, tc.wantReason) {
				t.Errorf("Verify = %+v\nwant FirstBadSeq %d, Reason with %q", rep, tc.wantBad, tc.wantReason)
			}
			wantLast := tc.wantBad - 1
			if tc.wantLast != 0 {
				wantLast = tc.wantLast
			}
			if rep.LastSeq != wantLast {
				t.Errorf("LastSeq = %d, want %d (the last good record)", rep.LastSeq, wantLast)
			}
		})
	}
}

func TestVerifyReadError(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	recs := chain(t, keys, 3)
	broken := errors.New("connection lost")
	src := append(recordsOf(recs), item{err: broken})
	if _, err := audit.Verify(t.Context(), src, &keys); !errors.Is(err, broken) {
		t.Errorf("Verify = %v, want the source's error", err)
	}
	if _, err := audit.Verify(t.Context(), recordsOf(recs), &audit.Keys{Sign: []byte("short")}); !errors.Is(err, audit.ErrInvalidKeys) {
		t.Errorf("Verify with a short key = %v, want ErrInvalidKeys", err)
	}
}
