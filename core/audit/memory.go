package audit

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"slices"
	"sync"
)

var (
	_ Sink   = (*Memory)(nil)
	_ Source = (*Memory)(nil)
)

// Memory is a Sink and Source that keeps records in memory, for dev mode
// and tests. Its zero value is an empty sink ready for use. It has a fault
// switch (SetFault) for testing fail-closed behaviour.
type Memory struct {
	mu    sync.Mutex // guards recs and fault
	recs  []Record
	fault error
}

// NewMemory returns an empty Memory sink.
func NewMemory() *Memory { return &Memory{} }

// SetFault makes every Append fail with err, storing nothing, until it is
// called again with nil.
func (m *Memory) SetFault(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fault = err
}

// Append stores copies of recs, or nothing if a fault is set or ctx has
// ended.
func (m *Memory) Append(ctx context.Context, recs []Record) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("audit: memory: append: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fault != nil {
		return fmt.Errorf("audit: memory: append: %w", m.fault)
	}
	for _, r := range recs {
		m.recs = append(m.recs, cloneRecord(r))
	}
	return nil
}

// Last returns the last record stored.
func (m *Memory) Last(ctx context.Context) (Record, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.recs) == 0 {
		return Record{}, false, nil
	}
	return cloneRecord(m.recs[len(m.recs)-1]), true, nil
}

// Len returns the number of records stored.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.recs)
}

// Records yields copies of the records stored when it is called.
func (m *Memory) Records(ctx context.Context) iter.Seq2[Record, error] {
	m.mu.Lock()
	snapshot := slices.Clone(m.recs)
	m.mu.Unlock()
	return func(yield func(Record, error) bool) {
		for _, r := range snapshot {
			if err := ctx.Err(); err != nil {
				yield(Record{}, fmt.Errorf("audit: memory: read: %w", err))
				return
			}
			if !yield(cloneRecord(r), nil) {
				return
			}
		}
	}
}

// Close does nothing: the records stay readable.
func (m *Memory) Close() error { return nil }

// cloneRecord copies r's byte slices and top-level event slices, so that
// neither the sink nor its reader can change the other's copy.
func cloneRecord(r Record) Record {
	r.PrevHash = bytes.Clone(r.PrevHash)
	r.Hash = bytes.Clone(r.Hash)
	r.Signature = bytes.Clone(r.Signature)
	r.Canonical = bytes.Clone(r.Canonical)
	r.EventJSON = bytes.Clone(r.EventJSON)
	r.Event.Policies = slices.Clone(r.Event.Policies)
	return r
}
