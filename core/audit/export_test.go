package audit_test

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/core/audit"
)

// exportFixture writes six events, a millisecond apart from t0, with paths
// alternating between secrets/ and sys/, and returns the sink.
func exportFixture(t *testing.T, keys audit.Keys) (*audit.Memory, time.Time) {
	t.Helper()
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	mem := audit.NewMemory()
	l := openLog(t, keys, mem)
	for i := range 6 {
		ev := event(i + 1)
		ev.Time = t0.Add(time.Duration(i) * time.Millisecond)
		if i%2 == 1 {
			ev.Path = fmt.Sprintf("sys/policy/p%d", i+1)
			ev.Result = audit.ResultDenied
			ev.StatusCode = 403
			ev.Error = "=HYPERLINK(\"http://evil\")"
		}
		if err := l.Record(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	return mem, t0
}

func TestExportCSV(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	mem, t0 := exportFixture(t, keys)
	var buf bytes.Buffer
	if err := audit.Export(t.Context(), mem, &buf, audit.FormatCSV, audit.Filter{}); err != nil {
		t.Fatalf("Export: %v", err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatalf("output is not CSV: %v", err)
	}
	if len(rows) != 7 {
		t.Fatalf("%d rows, want header and 6", len(rows))
	}
	if !slices.Equal(rows[0], []string{"seq", "time", "request_id", "operation", "path", "client_addr", "token_accessor", "policies", "result", "status_code", "error"}) {
		t.Errorf("header = %v", rows[0])
	}
	want1 := []string{"1", t0.Format(time.RFC3339Nano), "req-1", "update", "secrets/app/1", "127.0.0.1", "accessor-1", "default;app", "ok", "200", ""}
	if !slices.Equal(rows[1], want1) {
		t.Errorf("row 1 = %q\nwant      %q", rows[1], want1)
	}
	want2 := []string{"2", t0.Add(time.Millisecond).Format(time.RFC3339Nano), "req-2", "update", "sys/policy/p2", "127.0.0.1", "accessor-1", "default;app", "denied", "403", `'=HYPERLINK("http://evil")`}
	if !slices.Equal(rows[2], want2) {
		t.Errorf("row 2 = %q\nwant      %q", rows[2], want2)
	}
}

func TestExportFilter(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	mem, t0 := exportFixture(t, keys)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	tests := map[string]struct {
		f    audit.Filter
		want []int64
	}{
		"all":                   {audit.Filter{}, []int64{1, 2, 3, 4, 5, 6}},
		"since is inclusive":    {audit.Filter{Since: ms(2)}, []int64{3, 4, 5, 6}},
		"until is exclusive":    {audit.Filter{Until: ms(2)}, []int64{1, 2}},
		"window":                {audit.Filter{Since: ms(1), Until: ms(4)}, []int64{2, 3, 4}},
		"path prefix":           {audit.Filter{PathPrefix: "sys/"}, []int64{2, 4, 6}},
		"prefix and window":     {audit.Filter{PathPrefix: "secrets/", Since: ms(1)}, []int64{3, 5}},
		"nothing matches":       {audit.Filter{PathPrefix: "auth/"}, nil},
		"window before the log": {audit.Filter{Until: t0}, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := audit.Export(t.Context(), mem, &buf, audit.FormatJSON, tc.f); err != nil {
				t.Fatalf("Export: %v", err)
			}
			var got []int64
			for line := range bytes.Lines(buf.Bytes()) {
				rec, err := audit.DecodeLine(line)
				if err != nil {
					t.Fatalf("DecodeLine: %v", err)
				}
				got = append(got, rec.Seq)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("exported %v, want %v", got, tc.want)
			}
		})
	}
}

func TestExportJSONVerifies(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	mem, _ := exportFixture(t, keys)
	path := filepath.Join(t.TempDir(), "export.jsonl")
	var buf bytes.Buffer
	if err := audit.Export(t.Context(), mem, &buf, audit.FormatJSON, audit.Filter{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if rep := verify(t, audit.FileSource(path), &keys); !rep.OK || rep.Records != 6 {
		t.Errorf("Verify of the export = %+v", rep)
	}
}

func TestExportLeaksNothing(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	mem, _ := exportFixture(t, keys)
	for _, format := range []string{audit.FormatCSV, audit.FormatJSON} {
		var buf bytes.Buffer
		if err := audit.Export(t.Context(), mem, &buf, format, audit.Filter{}); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		for _, key := range [][]byte{keys.Sign, keys.HMAC} {
			for _, enc := range []string{hex.EncodeToString(key), base64.StdEncoding.EncodeToString(key), string(key)} {
				if strings.Contains(out, enc) {
					t.Errorf("%s export holds a key", format)
				}
			}
		}
		if strings.Contains(out, "hunter") {
			t.Errorf("%s export holds a secret value", format)
		}
	}
}

func TestExportErrors(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	mem, _ := exportFixture(t, keys)
	if err := audit.Export(t.Context(), mem, &bytes.Buffer{}, "xml", audit.Filter{}); !errors.Is(err, audit.ErrUnknownFormat) {
		t.Errorf("Export(xml) = %v, want ErrUnknownFormat", err)
	}
	recs := collect(t, mem)
	recs[2].Canonical = []byte("garbage")
	if err := audit.Export(t.Context(), recordsOf(recs), &bytes.Buffer{}, audit.FormatCSV, audit.Filter{}); !errors.Is(err, audit.ErrMalformed) {
		t.Errorf("Export of an undecodable record = %v, want ErrMalformed", err)
	}
}
