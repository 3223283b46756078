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
	DefaultMaxInFlight  = 2
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
	// MaxInFlight is how many batches may be on their way to a
	// PipelineSink at once. Default DefaultMaxInFlight; 1 waits for each
	// batch before sending the next. It has no effect unless the log has
	// one sink and that sink is a PipelineSink.
	MaxInFlight int
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
	// pipe is the only sink when it is a PipelineSink and MaxInFlight
	// is above 1; nil otherwise.
	pipe        PipelineSink
	maxInFlight int

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
	ev Event // normalized, data HMAC'd
	// body is encodeBody(ev) after canonicalHeadroom bytes of room
	// (encodeBodyHeadroom), which chain fills in once, with the seq.
	body []byte
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
	l.maxInFlight = opts.MaxInFlight
	if l.maxInFlight <= 0 {
		l.maxInFlight = DefaultMaxInFlight
	}
	if ps, ok := sinks[0].(PipelineSink); ok && len(sinks) == 1 && l.maxInFlight > 1 {
		l.pipe = ps
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
	body, err := encodeBodyHeadroom(ev)
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
	if l.pipe != nil {
		l.runPipelined()
		return
	}
	batch := make([]*pending, 0, l.maxBatch)
	for {
		p, ok := <-l.queue
		if !ok {
			return
		}
		batch = l.fill(append(batch[:0], p))
		l.write(batch)
		clear(batch) // let the events be collected
	}
}

// fill appends to batch whatever is queued, without waiting, up to
// maxBatch events.
func (l *Log) fill(batch []*pending) []*pending {
	for len(batch) < l.maxBatch {
		select {
		case p, ok := <-l.queue:
			if !ok {
				return batch
			}
			batch = append(batch, p)
		default:
			return batch
		}
	}
	return batch
}

// fail tells every event of batch that it was not recorded, and makes
// the next batch re-read the chain head first.
func (l *Log) fail(batch []*pending, err error) {
	l.resync = true
	err = fmt.Errorf("%w: %w", ErrNotRecorded, err)
	for _, p := range batch {
		p.done <- err
	}
}

// succeed moves the committed head to head and tells every event of batch
// that it is recorded.
func (l *Log) succeed(batch []*pending, head chainHead) {
	l.headMu.Lock()
	l.committed = head
	l.headMu.Unlock()
	for _, p := range batch {
		p.done <- nil
	}
}

// chain turns batch into records that continue the chain from l.head, and
// returns them with the head they lead to. It re-reads the head first if
// a failed batch asked for it.
func (l *Log) chain(ctx context.Context, batch []*pending) ([]Record, chainHead, error) {
	if l.resync {
		head, err := l.readHead(ctx)
		if err != nil {
			return nil, chainHead{}, err
		}
		l.head, l.resync = head, false
	}
	recs := make([]Record, len(batch))
	// One allocation for the hashes and signatures of the batch.
	sums := make([]byte, 2*sha256.Size*len(batch))
	seq, prev := l.head.seq, l.head.hash
	for i, p := range batch {
		seq++
		canon := canonicalInPlace(seq, p.body)
		h := sha256.New()
		h.Write(prev)
		h.Write(canon)
		sum := h.Sum(sums[:0:sha256.Size])
		sig := l.sign.sumTo(sums[sha256.Size:sha256.Size:2*sha256.Size], sum)
		sums = sums[2*sha256.Size:]
		recs[i] = Record{
			Seq:       seq,
			Time:      p.ev.Time,
			PrevHash:  prev,
			Hash:      sum,
			Signature: sig,
			Canonical: canon,
			Event:     p.ev,
		}
		prev = sum
	}
	return recs, chainHead{seq: seq, hash: prev}, nil
}

// write chains batch onto the head and appends it to every sink, then tells
// each waiting Record the outcome.
//
// If any sink fails, every event of the batch fails, the head is not moved,
// and the next batch first re-reads the head from the first sink: the chain
// continues from what the chain of record holds, whether the failed Append
// stored nothing or (a commit whose acknowledgement was lost) everything.
//
// Every queued event is written, even one whose caller has stopped
// waiting: the request it describes may have taken effect, and a log with
// an event too many is better than one with a hole.
func (l *Log) write(batch []*pending) {
	ctx, cancel := context.WithTimeout(context.Background(), l.writeTimeout)
	defer cancel()
	recs, head, err := l.chain(ctx, batch)
	if err != nil {
		l.fail(batch, err)
		return
	}
	for i, s := range l.sinks {
		if err := s.Append(ctx, recs); err != nil {
			l.fail(batch, fmt.Errorf("append records %d..%d to sink %d: %w", recs[0].Seq, head.seq, i, err))
			return
		}
	}
	l.head = head
	l.succeed(batch, head)
}

// flight is a batch sent to the PipelineSink and not yet waited for.
type flight struct {
	batch  []*pending
	head   chainHead // the head once the batch is stored
	ctx    context.Context
	cancel context.CancelFunc
}

// runPipelined is run with a PipelineSink: it sends a batch while up to
// maxInFlight-1 earlier ones are still committing, so the sink always has
// the next batch at hand.
//
// l.head runs ahead of what is committed: it is the head after the last
// batch sent. When a batch fails, the ones sent after it fail too (the
// sink refuses a batch whose predecessor it does not hold), so nothing is
// sent until every batch in flight has been waited for; then the head is
// re-read from the sink, as after a failure without pipelining.
func (l *Log) runPipelined() {
	var (
		inflight []*flight
		closed   bool
		// stopped is set when a batch failed since inflight was last
		// empty: nothing is sent until the batches in flight are
		// answered and the head is re-read.
		stopped bool
		// cause is the error of the first batch in flight that failed;
		// the batches behind it that fail too are reported with it,
		// their likely cause.
		cause error
	)
	for {
		if len(inflight) == 0 {
			if closed {
				return
			}
			p, ok := <-l.queue
			if !ok {
				return
			}
			stopped, cause = false, nil
			inflight, _ = l.send(inflight, l.fill([]*pending{p}))
			continue
		}
		if !closed && !stopped && len(inflight) < l.maxInFlight {
			select {
			case p, ok := <-l.queue:
				if !ok {
					closed = true
					continue
				}
				var err error
				inflight, err = l.send(inflight, l.fill([]*pending{p}))
				stopped = err != nil
				continue
			default:
			}
		}
		f := inflight[0]
		inflight[0] = nil
		inflight = inflight[1:]
		err := l.pipe.WaitAppend(f.ctx)
		f.cancel()
		if err != nil {
			err = fmt.Errorf("append records %d..%d: %w", f.head.seq-int64(len(f.batch))+1, f.head.seq, err)
			if cause != nil {
				err = fmt.Errorf("%w; a batch before it failed: %w", err, cause)
			} else {
				cause = err
			}
			stopped = true
			l.fail(f.batch, err)
			continue
		}
		l.succeed(f.batch, f.head)
	}
}

// send chains batch and starts appending it, and returns inflight with
// it added; if it cannot be started, the batch fails, and inflight is
// returned as it was with the error.
func (l *Log) send(inflight []*flight, batch []*pending) ([]*flight, error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.writeTimeout)
	recs, head, err := l.chain(ctx, batch)
	if err == nil {
		err = l.pipe.StartAppend(ctx, recs)
		if err != nil {
			err = fmt.Errorf("append records %d..%d: %w", recs[0].Seq, head.seq, err)
		}
	}
	if err != nil {
		cancel()
		l.fail(batch, err)
		return inflight, err
	}
	l.head = head
	return append(inflight, &flight{batch: batch, head: head, ctx: ctx, cancel: cancel}), nil
}
