package audit

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"
	"time"
)

// The formats of Export.
const (
	// FormatJSON is one record a line, as EncodeLine writes it (the File
	// sink's format): an unfiltered export verifies with FileSource.
	FormatJSON = "json"
	// FormatCSV is a header line and one line per record with CSVHeader's
	// columns.
	FormatCSV = "csv"
)

// CSVHeader names the columns of the "csv" format.
var CSVHeader = []string{"seq", "time", "request_id", "operation", "path", "client_addr", "token_accessor", "policies", "result", "status_code", "error"}

// Filter selects records for Export. Its zero value selects all.
type Filter struct {
	// Since, when set, keeps events at or after it.
	Since time.Time
	// Until, when set, keeps events before it.
	Until time.Time
	// PathPrefix, when set, keeps events whose path starts with it.
	PathPrefix string
}

// Match reports whether ev passes f.
func (f Filter) Match(ev Event) bool {
	if !f.Since.IsZero() && ev.Time.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !ev.Time.Before(f.Until) {
		return false
	}
	return strings.HasPrefix(ev.Path, f.PathPrefix)
}

// Export writes the records of src that pass f to w in format (FormatJSON
// or FormatCSV), in sequence order. It decodes each record from its
// canonical bytes and fails on a record that does not decode (run Verify).
// Export does not verify, and writes no key: only what the records hold,
// whose secret values are HMACs.
//
// In the CSV format, policies are joined with ";", times are RFC 3339 in
// UTC, and a field that starts with =, +, -, @, tab or carriage return is
// prefixed with a single quote so that a spreadsheet does not run it as a
// formula.
func Export(ctx context.Context, src Source, w io.Writer, format string, f Filter) error {
	if format != FormatJSON && format != FormatCSV {
		return fmt.Errorf("%w: %q (want %q or %q)", ErrUnknownFormat, format, FormatJSON, FormatCSV)
	}
	var recs iter.Seq2[Record, error]
	if fs, ok := src.(FilteredSource); ok {
		recs = fs.FilteredRecords(ctx, f)
	} else {
		recs = src.Records(ctx)
	}
	bw := bufio.NewWriter(w)
	var cw *csv.Writer
	if format == FormatCSV {
		cw = csv.NewWriter(bw)
		if err := cw.Write(CSVHeader); err != nil {
			return fmt.Errorf("audit: export: %w", err)
		}
	}
	for rec, err := range recs {
		if err != nil {
			return fmt.Errorf("audit: export: %w", err)
		}
		seq, ev, err := DecodeCanonical(rec.Canonical)
		if err != nil {
			return fmt.Errorf("audit: export: record %d: %w (run audit verify)", rec.Seq, err)
		}
		if seq != rec.Seq {
			return fmt.Errorf("audit: export: record %d holds the event of seq %d (run audit verify)", rec.Seq, seq)
		}
		if !f.Match(ev) {
			continue
		}
		if cw != nil {
			err = cw.Write([]string{
				strconv.FormatInt(rec.Seq, 10),
				ev.Time.Format(time.RFC3339Nano),
				csvSafe(ev.RequestID),
				csvSafe(ev.Operation),
				csvSafe(ev.Path),
				csvSafe(ev.ClientAddr),
				csvSafe(ev.TokenAccessor),
				csvSafe(strings.Join(ev.Policies, ";")),
				csvSafe(ev.Result),
				strconv.Itoa(ev.StatusCode),
				csvSafe(ev.Error),
			})
		} else {
			var line []byte
			if line, err = EncodeLine(rec); err == nil {
				_, err = bw.Write(line)
			}
		}
		if err != nil {
			return fmt.Errorf("audit: export: record %d: %w", rec.Seq, err)
		}
	}
	if cw != nil {
		cw.Flush()
		if err := cw.Error(); err != nil {
			return fmt.Errorf("audit: export: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("audit: export: %w", err)
	}
	return nil
}

// csvSafe defuses a field a spreadsheet would read as a formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
