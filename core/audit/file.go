package audit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"sync"
)

var (
	_ Sink   = (*File)(nil)
	_ Source = (*File)(nil)
)

// File is a Sink that appends records to a file as JSON lines (EncodeLine),
// one record a line. The file is opened with O_APPEND and created with mode
// 0600; every Append is one write followed by an fsync.
type File struct {
	path string

	mu      sync.Mutex // guards the fields below
	f       *os.File
	size    int64 // bytes of whole, durable lines
	last    Record
	hasLast bool
}

// OpenFile opens (creating it if needed) the audit file at path and reads
// its last record, which the Log continues from.
//
// A last line without its newline is a write that was cut short (the
// process died mid-write, before the fsync that would have acknowledged
// it), so OpenFile truncates it. A last line that is whole but does not
// parse is an error: move the file aside after running Verify on it.
func OpenFile(path string) (*File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open file: %w", err)
	}
	s := &File{path: path, f: f}
	if err := s.readTail(); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: open file %s: %w", path, err)
	}
	return s, nil
}

// readTail sets size and last from the end of the file.
func (s *File) readTail() error {
	info, err := s.f.Stat()
	if err != nil {
		return err
	}
	size := info.Size()
	if size == 0 {
		return nil
	}
	nl, err := lastNewline(s.f, size)
	if err != nil {
		return err
	}
	if nl != size-1 {
		// A torn last line: never acknowledged, so never part of the chain.
		if err := s.f.Truncate(nl + 1); err != nil {
			return fmt.Errorf("truncate torn last line: %w", err)
		}
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("truncate torn last line: %w", err)
		}
		size = nl + 1
	}
	s.size = size
	if size == 0 {
		return nil
	}
	start, err := lastNewline(s.f, size-1)
	if err != nil {
		return err
	}
	line := make([]byte, size-1-(start+1))
	if _, err := s.f.ReadAt(line, start+1); err != nil {
		return fmt.Errorf("read last line: %w", err)
	}
	rec, err := DecodeLine(line)
	if err != nil {
		return fmt.Errorf("last line: %w", err)
	}
	s.last, s.hasLast = rec, true
	return nil
}

// lastNewline returns the offset of the last '\n' before offset end, or -1.
func lastNewline(f *os.File, end int64) (int64, error) {
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	for end > 0 {
		n := min(int64(chunk), end)
		start := end - n
		if _, err := f.ReadAt(buf[:n], start); err != nil {
			return 0, fmt.Errorf("read: %w", err)
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return start + int64(i), nil
		}
		end = start
	}
	return -1, nil
}

// Append writes recs as lines in one write and fsyncs. If either fails it
// truncates the file back to where it was, so the file never holds records
// that were reported as not written.
func (s *File) Append(ctx context.Context, recs []Record) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("audit: file: append: %w", err)
	}
	var buf bytes.Buffer
	for _, r := range recs {
		line, err := EncodeLine(r)
		if err != nil {
			return fmt.Errorf("audit: file: append: %w", err)
		}
		buf.Write(line)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return fmt.Errorf("audit: file: append: %w", os.ErrClosed)
	}
	_, err := s.f.Write(buf.Bytes())
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		// Best effort: the error is what the caller must see.
		_ = s.f.Truncate(s.size)
		return fmt.Errorf("audit: file: append to %s: %w", s.path, err)
	}
	s.size += int64(buf.Len())
	if len(recs) > 0 {
		s.last, s.hasLast = cloneRecord(recs[len(recs)-1]), true
	}
	return nil
}

// Last returns the last record written.
func (s *File) Last(ctx context.Context) (Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneRecord(s.last), s.hasLast, nil
}

// Records yields the records in the file up to its end when Records is
// called, from a reader of its own.
func (s *File) Records(ctx context.Context) iter.Seq2[Record, error] {
	s.mu.Lock()
	size := s.size
	s.mu.Unlock()
	return readLines(ctx, s.path, size)
}

// Close closes the file.
func (s *File) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("audit: file: close %s: %w", s.path, err)
	}
	return nil
}

// FileSource returns a Source that reads the audit file at path (written by
// File, or by Export in the "json" format) without opening it for writing.
func FileSource(path string) Source { return fileSource(path) }

type fileSource string

func (p fileSource) Records(ctx context.Context) iter.Seq2[Record, error] {
	return readLines(ctx, string(p), -1)
}

// readLines yields the records in the file at path, reading up to limit
// bytes (all of it when limit < 0). A line that does not parse is yielded
// as an error wrapping ErrMalformed that names the line, and reading goes
// on.
func readLines(ctx context.Context, path string, limit int64) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		f, err := os.Open(path)
		if err != nil {
			yield(Record{}, fmt.Errorf("audit: read file: %w", err))
			return
		}
		defer f.Close()
		var r io.Reader = f
		if limit >= 0 {
			r = io.LimitReader(f, limit)
		}
		br := bufio.NewReaderSize(r, 64<<10)
		for n := 1; ; n++ {
			if err := ctx.Err(); err != nil {
				yield(Record{}, fmt.Errorf("audit: read file %s: %w", path, err))
				return
			}
			line, err := br.ReadBytes('\n')
			if errors.Is(err, io.EOF) && len(line) == 0 {
				return
			}
			if err != nil && !errors.Is(err, io.EOF) {
				yield(Record{}, fmt.Errorf("audit: read file %s: %w", path, err))
				return
			}
			rec, derr := DecodeLine(line)
			if derr == nil && !bytes.HasSuffix(line, []byte("\n")) {
				derr = fmt.Errorf("%w: no newline at the end", ErrMalformed)
			}
			if derr != nil {
				if !yield(Record{}, fmt.Errorf("audit: file %s line %d: %w", path, n, derr)) {
					return
				}
			} else if !yield(rec, nil) {
				return
			}
			if err != nil { // io.EOF after a last line without newline
				return
			}
		}
	}
}
