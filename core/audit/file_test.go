package audit_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/core/audit"
)

// openFile opens the File sink at path, failing the test on error.
func openFile(t *testing.T, path string) *audit.File {
	t.Helper()
	f, err := audit.OpenFile(path)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// writeFile writes n events to a fresh audit file and returns its path.
func writeFile(t *testing.T, keys audit.Keys, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, keys, openFile(t, path))
	record(t, l, 1, n)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// readLines returns the lines of the file at path, without newlines.
func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

// writeLines replaces the file at path with lines.
func writeLines(t *testing.T, path string, lines [][]byte) {
	t.Helper()
	data := append(bytes.Join(lines, []byte("\n")), '\n')
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// setMember rewrites one member of a JSON line, as someone with a text
// editor can.
func setMember(t *testing.T, line []byte, set func(m map[string]any)) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	set(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFileSink(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	f := openFile(t, path)
	if _, ok, err := f.Last(t.Context()); ok || err != nil {
		t.Fatalf("Last of a new file = %v, %v", ok, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("mode %o, want 600", mode)
	}
	l := openLog(t, keys, f)
	record(t, l, 1, 5)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != 5 {
		t.Fatalf("%d lines, want 5", len(lines))
	}
	for i, line := range lines {
		rec, err := audit.DecodeLine(line)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if rec.Seq != int64(i+1) || rec.Event.RequestID != event(i+1).RequestID {
			t.Errorf("line %d holds seq %d, %q", i+1, rec.Seq, rec.Event.RequestID)
		}
		if bytes.Contains(line, []byte("hunter")) {
			t.Errorf("line %d holds a secret: %s", i+1, line)
		}
	}

	// A new sink and Log over the same file continue the chain.
	f2 := openFile(t, path)
	last, ok, err := f2.Last(t.Context())
	if err != nil || !ok || last.Seq != 5 {
		t.Fatalf("Last after reopen = seq %d, %v, %v; want 5", last.Seq, ok, err)
	}
	l2 := openLog(t, keys, f2)
	record(t, l2, 6, 3)
	if rep := verify(t, f2, &keys); !rep.OK || rep.Records != 8 {
		t.Errorf("Verify (sink) = %+v", rep)
	}
	if rep := verify(t, audit.FileSource(path), &keys); !rep.OK || rep.Records != 8 || rep.LastSeq != 8 {
		t.Errorf("Verify (FileSource) = %+v", rep)
	}
}

func TestFileTamper(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	tests := map[string]struct {
		// tamper edits the lines of a file of ten records (index i holds
		// seq i+1).
		tamper     func(t *testing.T, lines [][]byte) [][]byte
		keys       *audit.Keys
		wantBad    int64
		wantReason string
	}{
		"line edited": {
			tamper: func(t *testing.T, lines [][]byte) [][]byte {
				lines[4] = bytes.ReplaceAll(lines[4], []byte("secrets/app/5"), []byte("secrets/app/X"))
				return lines
			},
			keys: &keys, wantBad: 5, wantReason: "hash mismatch",
		},
		"only the readable event member edited": {
			tamper: func(t *testing.T, lines [][]byte) [][]byte {
				lines[4] = setMember(t, lines[4], func(m map[string]any) {
					m["event"].(map[string]any)["result"] = "denied"
				})
				return lines
			},
			keys: &keys, wantBad: 5, wantReason: "stored copy of the event differs",
		},
		"line deleted": {
			tamper: func(t *testing.T, lines [][]byte) [][]byte {
				return slices.Delete(lines, 4, 5)
			},
			keys: &keys, wantBad: 5, wantReason: "sequence gap: 6 follows 4 (record deleted)",
		},
		"lines swapped": {
			tamper: func(t *testing.T, lines [][]byte) [][]byte {
				lines[3], lines[6] = lines[6], lines[3]
				return lines
			},
			keys: &keys, wantBad: 4, wantReason: "(records reordered)",
		},
		"forged line inserted, later seqs renumbered": {
			tamper: func(t *testing.T, lines [][]byte) [][]byte {
				prev, err := audit.DecodeLine(lines[3])
				if err != nil {
					t.Fatal(err)
				}
				forged, err := audit.EncodeLine(forge(t, 5, prev.Hash))
				if err != nil {
					t.Fatal(err)
				}
				for i := 4; i < len(lines); i++ {
					lines[i] = setMember(t, lines[i], func(m map[string]any) { m["seq"] = int64(i + 2) })
				}
				return slices.Insert(lines, 4, bytes.TrimSuffix(forged, []byte("\n")))
			},
			keys: &keys, wantBad: 5, wantReason: "signature invalid",
		},
		"seq member renumbered": {
			tamper: func(t *testing.T, lines [][]byte) [][]byte {
				lines[4] = setMember(t, lines[4], func(m map[string]any) { m["seq"] = 50 })
				lines = slices.Delete(lines, 5, len(lines))
				return lines
			},
			keys: &keys, wantBad: 5, wantReason: "sequence gap: 50 follows 4",
		},
		"line cut short": {
			tamper: func(t *testing.T, lines [][]byte) [][]byte {
				lines[4] = lines[4][:len(lines[4])/2]
				return lines
			},
			keys: &keys, wantBad: 5, wantReason: "record after seq 4 is unreadable",
		},
		"blank line inserted": {
			tamper: func(t *testing.T, lines [][]byte) [][]byte {
				return slices.Insert(lines, 4, []byte{})
			},
			keys: &keys, wantBad: 5, wantReason: "unreadable",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, keys, 10)
			writeLines(t, path, tc.tamper(t, readLines(t, path)))
			rep := verify(t, audit.FileSource(path), tc.keys)
			if rep.OK || rep.FirstBadSeq != tc.wantBad || !strings.Contains(rep.Reason, tc.wantReason) {
				t.Errorf("Verify = %+v\nwant FirstBadSeq %d, Reason with %q", rep, tc.wantBad, tc.wantReason)
			}
		})
	}
}

func TestFileTornLastLine(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	path := writeFile(t, keys, 3)
	lines := readLines(t, path)
	// A crash in the middle of writing record 4.
	torn := append(bytes.Join(lines, []byte("\n")), '\n')
	torn = append(torn, []byte(`{"seq":4,"time":"2025-`)...)
	if err := os.WriteFile(path, torn, 0o600); err != nil {
		t.Fatal(err)
	}
	if rep := verify(t, audit.FileSource(path), &keys); rep.OK || rep.FirstBadSeq != 4 {
		t.Errorf("Verify of the torn file = %+v, want a bad record 4", rep)
	}

	f := openFile(t, path)
	if last, ok, _ := f.Last(t.Context()); !ok || last.Seq != 3 {
		t.Fatalf("Last = %d, %v; want 3", last.Seq, ok)
	}
	l := openLog(t, keys, f)
	record(t, l, 4, 2)
	if rep := verify(t, audit.FileSource(path), &keys); !rep.OK || rep.Records != 5 {
		t.Errorf("Verify after OpenFile cut the torn line = %+v", rep)
	}
}

func TestFileCorruptLastLine(t *testing.T) {
	t.Parallel()
	path := writeFile(t, newKeys(t), 3)
	lines := readLines(t, path)
	lines[2] = []byte("not a record")
	writeLines(t, path, lines)
	if f, err := audit.OpenFile(path); err == nil {
		f.Close()
		t.Fatal("OpenFile continued a chain whose last line is unreadable")
	}
}

func TestFileAppendAfterClose(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	f := openFile(t, path)
	l := openLog(t, keys, f)
	record(t, l, 1, 1)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Record(t.Context(), event(2)); err == nil {
		t.Fatal("Record succeeded with the file closed")
	}
	if got := len(readLines(t, path)); got != 1 {
		t.Errorf("%d lines, want 1", got)
	}
}
