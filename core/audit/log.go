package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultMaxBatch     = 512
	DefaultWriteTimeout = 30 * time.Second
)

// Options tune a Log. The zero value gives the defaults.
type Options struct {
	// Now stamps events whose Time is zero; it must be safe for concurrent
	// use. Default time.Now.
	Now func() time.Time
	// MaxBatch caps the records of one Append. Default DefaultMaxBatch.
	MaxBatch int
	// QueueSize is how many events may wait for the writer before Record
	// blocks on enqueueing too. Default 4 × MaxBatch.
	QueueSize int
	// WriteTimeout bounds each batch: reading the chain head when it must
	// be re-read, and the Append to every sink. Default
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
}

// Log is the audit log: it chains events and writes them to its sinks. It
// is safe for concurrent use; one goroutine of its own does the writing.
type Log struct {
	sign         *hasher
	hmac         *hasher
	now          func() time.Time
	sinks        []Sink
	maxBatch     int
	writeTimeout time.Duration

	// mu guards closed, and is held for reading while sending on queue
	// so that Close does not close queue under a sender.
	mu     sync.RWMutex
	closed bool
	queue  chan *pending
	// done is closed when the writer goroutine has drained queue.
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	// head and resync belong to the writer goroutine (and to New before
	// the writer starts).
	head   chainHead
	resync bool // re-read head from the first sink before the next batch

	// headMu guards committed, the head as of the last successful batch,
	// for Head.
	headMu    sync.Mutex
	committed chainHead
}

// chainHead is the last record of the chain: its Seq and Hash.
type chainHead struct {
	seq  int64
	hash []byte
}

// pending is one event waiting for the writer.
type pending struct {
	ev   Event  // normalized, data HMAC'd
	body []byte // encodeBody(ev)
	done chan error
}

// New opens a log over sinks with default Options: see Open.
func New(keys Keys, sinks ...Sink) (*Log, error) {
	return Open(context.Background(), keys, Options{}, sinks...)
}

// Open opens a log over sinks. It continues the chain stored in the first
// sink, which is the chain of record: Record gives the next event the
// sequence number after that sink's Last, and links it to Last's hash.
// Every sink receives every record; a record counts as written only when all
// sinks have stored it. ctx bounds reading the chain head.
//
// Open trusts the head it reads (it has to link to it); Verify is what
// checks a stored chain.
func Open(ctx context.Context, keys Keys, opts Options, sinks ...Sink) (*Log, error) {
	if err := keys.validate(); err != nil {
		return nil, err
	}
	if len(sinks) == 0 {
		return nil, errors.New("audit: open: no sink: a log that stores nothing cannot fail closed")
	}
	keys = keys.clone()
	l := &Log{
		sign:         newHasher(keys.Sign),
		hmac:         newHasher(keys.HMAC),
		now:          opts.Now,
		sinks:        append([]Sink(nil), sinks...),
		maxBatch:     opts.MaxBatch,
		writeTimeout: opts.WriteTimeout,
		done:         make(chan struct{}),
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.maxBatch <= 0 {
		l.maxBatch = DefaultMaxBatch
	}
	if l.writeTimeout <= 0 {
		l.writeTimeout = DefaultWriteTimeout
	}
	queueSize := opts.QueueSize
	if queueSize <= 0 {
		queueSize = 4 * l.maxBatch
	}
	head, err := l.readHead(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit: open: %w", err)
	}
	l.head, l.committed = head, head
	l.queue = make(chan *pending, queueSize)
	go l.run()
	return l, nil
}

// readHead reads the chain head from the first sink.
func (l *Log) readHead(ctx context.Context) (chainHead, error) {
	rec, ok, err := l.sinks[0].Last(ctx)
	if err != nil {
		return chainHead{}, fmt.Errorf("read chain head: %w", err)
	}
	if !ok {
		return chainHead{seq: 0, hash: make([]byte, HashSize)}, nil
	}
	if rec.Seq <= 0 || len(rec.Hash) != HashSize {
		return chainHead{}, fmt.Errorf("read chain head: last record has seq %d and a %d-byte hash: run audit verify", rec.Seq, len(rec.Hash))
	}
	return chainHead{seq: rec.Seq, hash: bytes.Clone(rec.Hash)}, nil
}

// Head returns the sequence number and hash of the last record the log has
// written (0 and 32 zero bytes for an empty chain). Compare it with a
// Verify Report's LastSeq and LastHash to detect records cut off the end.
func (l *Log) Head() (int64, []byte) {
	l.headMu.Lock()
	defer l.headMu.Unlock()
	return l.committed.seq, bytes.Clone(l.committed.hash)
}

// Record writes ev to every sink and returns when it is durable, or with an
// error wrapping ErrNotRecorded when it is not; the core must then fail the
// request ev describes. Pass ev's Request and Response plain: Record
// replaces their string leaves by HMACs (HMACData) before anything is
// stored. Record stamps a zero ev.Time with the log's clock.
//
// If ctx ends before the event is queued, it is not written. If ctx ends
// while the event waits in the queue or is being written, Record returns
// at once with the context's error, but the event is still written (the
// request may have taken effect, so the log keeps it), and the chain stays
// whole.
func (l *Log) Record(ctx context.Context, ev Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrNotRecorded, err)
	}
	if ev.Time.IsZero() {
		ev.Time = l.now()
	}
	ev.Request = l.HMACData(ev.Request)
	ev.Response = l.HMACData(ev.Response)
	ev = normalize(ev)
	body, err := encodeBody(ev)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotRecorded, err)
	}
	p := &pending{ev: ev, body: body, done: make(chan error, 1)}
	if err := l.enqueue(ctx, p); err != nil {
		return err
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotRecorded, context.Cause(ctx))
	}
}

// enqueue hands p to the writer.
func (l *Log) enqueue(ctx context.Context, p *pending) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return fmt.Errorf("%w: %w", ErrNotRecorded, ErrClosed)
	}
	select {
	case l.queue <- p:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotRecorded, context.Cause(ctx))
	}
}

// Close stops taking events, writes those already queued, and closes the
// sinks. Record returns ErrClosed afterwards. Close is idempotent.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		close(l.queue)
		l.mu.Unlock()
		<-l.done
		var errs []error
		for i, s := range l.sinks {
			if err := s.Close(); err != nil {
				errs = append(errs, fmt.Errorf("audit: close sink %d: %w", i, err))
			}
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

// run is the writer goroutine: it takes the first queued event, everything
// else queued behind it up to maxBatch, and writes them as one batch.
func (l *Log) run() {
	defer close(l.done)
	batch := make([]*pending, 0, l.maxBatch)
	for {
		p, ok := <-l.queue
		if !ok {
			return
		}
		batch = append(batch[:0], p)
	drain:
		for len(batch) < l.maxBatch {
			select {
			case p, ok := <-l.queue:
				if !ok {
					break drain
				}
				batch = append(batch, p)
			default:
				break drain
			}
		}
		l.write(batch)
		clear(batch) // let the events be collected
	}
}

// write chains batch onto the head and appends it to every sink, then tells
// each waiting Record the outcome.
//
// If any sink fails, every event of the batch fails, the head is not moved,
// and the next batch first re-reads the head from the first sink: the chain
// continues from what the chain of record holds, whether the failed Append
// stored nothing or (a commit whose acknowledgement was lost) everything.
func (l *Log) write(batch []*pending) {
	// Every queued event is written, even one whose caller has stopped
	// waiting: the request it describes may have taken effect, and a log
	// with an event too many is better than one with a hole.
	live := batch
	fail := func(err error) {
		l.resync = true
		err = fmt.Errorf("%w: %w", ErrNotRecorded, err)
		for _, p := range live {
			p.done <- err
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), l.writeTimeout)
	defer cancel()
	if l.resync {
		head, err := l.readHead(ctx)
		if err != nil {
			fail(err)
			return
		}
		l.head, l.resync = head, false
	}

	recs := make([]Record, len(live))
	seq, prev := l.head.seq, l.head.hash
	for i, p := range live {
		seq++
		canon := canonical(seq, p.body)
		h := sha256.New()
		h.Write(prev)
		h.Write(canon)
		sum := h.Sum(nil)
		recs[i] = Record{
			Seq:       seq,
			Time:      p.ev.Time,
			PrevHash:  prev,
			Hash:      sum,
			Signature: l.sign.sum(sum),
			Canonical: canon,
			Event:     p.ev,
		}
		prev = sum
	}
	for i, s := range l.sinks {
		if err := s.Append(ctx, recs); err != nil {
			fail(fmt.Errorf("append records %d..%d to sink %d: %w", recs[0].Seq, seq, i, err))
			return
		}
	}
	l.head = chainHead{seq: seq, hash: prev}
	l.headMu.Lock()
	l.committed = l.head
	l.headMu.Unlock()
	for _, p := range live {
		p.done <- nil
	}
}
