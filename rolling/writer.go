// Package rolling writes each Kafka partition's records into rolling files:
// one folder per partition, each file named after the offset of its first
// record, rolled by size, idle time and age. It is plain Go with no Benthos
// in it; the output package feeds it.
//
// A file is written under a hidden in-progress name (layout.InProgressName) and
// handed to a Destination when it rolls. Write returns only once the records
// are in the in-progress file (and fsynced, if the Fsync policy says so), so
// a caller may acknowledge them as soon as Write returns nil.
package rolling

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/offsets"
	"github.com/kafka-backup/kafka-backup/segment"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("rolling writer is closed")

// Writer writes records into rolling files, one open file per partition.
// Write and Close are safe for concurrent use; writes to one partition are
// serialized, writes to different partitions run in parallel.
type Writer struct {
	cfg Config
	obs Observer
	// encoders are idle encoders with their buffers. Unlike a sync.Pool,
	// a channel keeps them across garbage collections, so a buffer grown to
	// a batch's size is not allocated again for every write.
	encoders  chan *encoder
	openFiles atomic.Int64 // open in-progress files

	mu     sync.Mutex
	parts  map[partKey]*partition
	closed bool

	stop chan struct{}
	done chan struct{}
}

type partKey struct {
	topic string
	id    int32
}

// partition is the state of one partition. mu guards everything in it.
type partition struct {
	mu        sync.Mutex
	topic     string
	id        int32
	dir       string
	loaded    bool        // persisted ranges read from the destination
	written   offsets.Set // offsets in files, rolled or open, this run or before
	from      int64
	unpubl    []File // rolled but not yet accepted by the destination
	retryAt   time.Time
	retryWait time.Duration
	warnedOOO bool
	// refused, when set, is why every Write to p fails: its topic was
	// recreated (layout.RecreatedNote).
	refused error
	// runNext is the offset after the last record skipped as persisted,
	// or -1 once a record is written: a record skipped below it (or after
	// -1) starts a new run, whose first record is compared with the stored
	// one (checkRedelivered). Gaps up the offsets (a compacted topic) do
	// not end a run.
	runNext int64
	// unfound counts the records of the run looked for in vain, up to
	// maxUnfound.
	unfound int

	f         *os.File // the open in-progress file, or nil
	fID       fileID   // f's device and inode, for checkOnDisk
	unsaved   bool     // f's path was removed and its records not saved yet
	cur       File
	lastWrite time.Time
}

// encoder is a segment.Encoder with the buffer of the batch it encodes.
type encoder struct {
	enc *segment.Encoder
	buf []byte
}

// New returns a Writer and starts its background roller, which finalizes
// idle and old files. Close stops it.
func New(cfg Config) (*Writer, error) {
	switch {
	case cfg.Dir == "":
		return nil, errors.New("rolling: Dir is empty")
	case cfg.Instance == "":
		return nil, errors.New("rolling: Instance is empty")
	case cfg.MaxSize < segment.HeaderSize+8:
		return nil, fmt.Errorf("rolling: MaxSize %d is too small: a file must hold at least one batch of %d bytes", cfg.MaxSize, segment.HeaderSize+8)
	case cfg.IdleTimeout <= 0:
		return nil, errors.New("rolling: IdleTimeout must be positive")
	case cfg.Destination == nil:
		return nil, errors.New("rolling: Destination is nil")
	}
	if _, err := segment.NewEncoder(cfg.Compression); err != nil {
		return nil, err
	}
	w := &Writer{
		cfg:   cfg,
		obs:   cfg.Observer,
		parts: map[partKey]*partition{},
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	if w.obs == nil {
		w.obs = nopObserver{}
	}
	if err := w.recoverAll(context.Background()); err != nil {
		w.obs.Error(err)
	}
	w.encoders = make(chan *encoder, maxIdleEncoders)
	go w.roller()
	return w, nil
}

// Write appends recs, all of one partition and in the order received, to the
// partition's open file, opening and rolling files as needed. It returns nil
// only once every record is in a file on disk (fsynced when the policy is
// FsyncBatch), skipped as below offset_from, or skipped as already in a file.
// On error, records may have been written; writing them again is safe, as
// records already in a file are skipped.
func (w *Writer) Write(ctx context.Context, topic string, partition int32, recs []segment.Record) error {
	p, err := w.partition(topic, partition)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.isClosed() {
		// Close ran between w.partition and p.mu.Lock and has finalized p
		// already: a file opened now would never be finalized.
		return ErrClosed
	}
	if err := w.load(ctx, p); err != nil {
		return err
	}
	if p.refused != nil {
		return p.refused
	}
	recs, err = w.filter(ctx, p, recs)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		if p.unsaved && p.f != nil {
			return w.checkOnDisk(ctx, p) // try to save them again
		}
		return nil
	}

	e := w.encoder()
	defer w.releaseEncoder(e)
	now := time.Now()
	// removed is why a file this write went into was removed from under it:
	// the batch fails, so it is delivered again, even when its records were
	// saved.
	var removed error
	// roll returns false when the file could not roll: it was removed and
	// its records could not be saved yet (checkOnDisk).
	roll := func(why Reason) bool {
		if err := w.finalize(ctx, p, why); err != nil {
			removed = errors.Join(removed, err)
		}
		return p.f == nil
	}
	for len(recs) > 0 {
		if w.written(p, recs[0].Offset) {
			// A duplicate inside the batch itself.
			w.obs.Skipped(p.topic, p.id, SkipPersisted, 1)
			recs = recs[1:]
			continue
		}
		if p.f != nil && recs[0].Offset < p.cur.LastOffset {
			w.obs.OutOfOrder(p.topic, p.id, recs[0].Offset, p.cur.LastOffset, !p.warnedOOO)
			p.warnedOOO = true
			if !roll(ReasonOutOfOrder) {
				return removed
			}
		}
		if p.f != nil && w.cfg.MaxAge > 0 && now.Sub(p.cur.Opened) >= w.cfg.MaxAge {
			if !roll(ReasonAge) {
				return removed
			}
		}
		if p.f == nil {
			if err := w.open(ctx, p, recs[0].Offset, now); err != nil {
				return errors.Join(removed, err)
			}
		}
		// Write as many batches as fit in the open file, each as soon as it
		// is encoded: the encoder's buffer never holds more than one batch.
		var n, bytes int
		for len(recs) > 0 && (p.cur.Records == 0 || recs[0].Offset > p.cur.LastOffset) {
			var k int
			e.buf, k = e.enc.AppendBatch(e.buf[:0], recs, w.cfg.MaxSize-p.cur.Bytes)
			if k == 0 {
				if p.cur.Bytes > 0 {
					break // full: roll below
				}
				// An empty file and a record larger than MaxSize: it gets a
				// file of its own.
				e.buf, k = e.enc.AppendBatch(e.buf[:0], recs[:1], math.MaxInt64)
			}
			p.noteRecords(recs[:k])
			if err := w.append(p, e.buf); err != nil {
				return errors.Join(removed, err)
			}
			// Only offsets of batches now in the file count as written: a
			// gap between two writes may be filled by a later, out-of-order
			// write.
			r := offsets.Range{First: recs[0].Offset, Last: recs[k-1].Offset}
			p.written.AddRange(r)
			p.cur.Ranges = offsets.Append(p.cur.Ranges, r)
			n += k
			bytes += len(e.buf)
			recs = recs[k:]
		}
		w.obs.Written(p.topic, p.id, n, bytes)
		p.lastWrite = now
		if len(recs) > 0 && recs[0].Offset > p.cur.LastOffset {
			if !roll(ReasonSize) {
				return removed
			}
		}
	}
	if p.f != nil {
		// One stat per write, not per record: the records are acknowledged
		// only if the path still names the file they went into.
		if err := w.checkOnDisk(ctx, p); err != nil {
			removed = errors.Join(removed, err)
		}
	}
	if w.cfg.Fsync == FsyncBatch && p.f != nil {
		if err := p.f.Sync(); err != nil {
			return errors.Join(removed, w.fail(p, fmt.Errorf("fsync %s: %w", p.cur.Path, err)))
		}
	}
	if p.f != nil && w.cfg.MaxSize-p.cur.Bytes < segment.HeaderSize+8 {
		roll(ReasonSize)
	}
	return removed
}

// maxIdleEncoders bounds the encoders kept between writes: about the writes
// that run at once (the output's default max_in_flight); each holds a buffer
// of one batch, about segment.MaxBatchRecordsBytes.
const maxIdleEncoders = 16

// encoder returns an idle encoder, or a new one.
func (w *Writer) encoder() *encoder {
	select {
	case e := <-w.encoders:
		return e
	default:
		enc, _ := segment.NewEncoder(w.cfg.Compression) // checked in New
		return &encoder{enc: enc}
	}
}

// releaseEncoder keeps e for the next write, unless enough are kept.
func (w *Writer) releaseEncoder(e *encoder) {
	select {
	case w.encoders <- e:
	default:
	}
}

// noteRecords updates the open file's description with records about to be
// appended to it.
func (p *partition) noteRecords(recs []segment.Record) {
	for i := range recs {
		ts := recs[i].Timestamp
		if p.cur.Records == 0 {
			p.cur.MinTimestamp, p.cur.MaxTimestamp = ts, ts
		}
		p.cur.MinTimestamp = min(p.cur.MinTimestamp, ts)
		p.cur.MaxTimestamp = max(p.cur.MaxTimestamp, ts)
		p.cur.Records++
	}
	p.cur.LastOffset = recs[len(recs)-1].Offset
}

// append writes buf at the end of the open file. On failure it cuts the file
// back to where it was, so a torn batch never stays in it.
func (w *Writer) append(p *partition, buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	if _, err := p.f.Write(buf); err != nil {
		return w.fail(p, fmt.Errorf("writing %s: %w", p.cur.Path, err))
	}
	p.cur.Bytes += int64(len(buf))
	return nil
}

// fail gives up the open file after a write error. Its complete batches are
// kept: the file is truncated to the last batch known to be whole and handed
// to the destination like any rolled file, so nothing acknowledged is lost.
func (w *Writer) fail(p *partition, err error) error {
	f := p.f
	good := p.cur
	// Records noted for the failed write are not in the file; recompute the
	// description from the file itself.
	if terr := f.Truncate(p.cur.Bytes); terr != nil {
		err = errors.Join(err, fmt.Errorf("truncating %s to its last complete batch: %w", p.cur.Path, terr))
	}
	span, serr := segment.ReadSpan(f, p.cur.Bytes)
	switch {
	case serr == nil && span.Batches > 0:
		good.LastOffset, good.Records, good.Bytes = span.LastOffset, span.Records, span.Size
		p.cur = good
		err = errors.Join(err, w.finalize(context.Background(), p, ReasonError))
	case serr == nil:
		// No complete batch: nothing in it was acknowledged.
		f.Close()
		os.Remove(p.cur.Path)
		p.f = nil
		w.obs.OpenFiles(int(w.openFiles.Add(-1)))
	default:
		// It cannot be read back: keep it as it is, for the recovery at
		// the next start, and write what follows to a new file.
		err = errors.Join(err, fmt.Errorf("reading back %s after the failed write, left for recovery at the next start: %w", p.cur.Path, serr))
		f.Close()
		p.f = nil
		w.obs.OpenFiles(int(w.openFiles.Add(-1)))
	}
	return err
}

// maxUnfound bounds the records of a run delivered again that filter looks
// for in the stored files without finding them, before it takes the run as
// the stored one.
const maxUnfound = 16

// filter drops records below offset_from and records already in a file. It
// returns recs itself when it keeps them all. The first record of each run of
// records already in a file is compared with the stored one
// (checkRedelivered); when they differ, filter returns the refusal and
// nothing is written.
func (w *Writer) filter(ctx context.Context, p *partition, recs []segment.Record) ([]segment.Record, error) {
	keep := func(r *segment.Record) (bool, SkipReason, error) {
		if r.Offset < p.from {
			return false, SkipOffsetFrom, nil
		}
		if w.written(p, r.Offset) {
			// A run goes on up the offsets, over gaps (a compacted or
			// transactional topic); it ends when offsets go back or a
			// record is written.
			first := p.runNext < 0 || r.Offset < p.runNext
			p.runNext = r.Offset + 1
			if first {
				compared, err := w.checkRedelivered(ctx, p, r)
				switch {
				case err != nil:
					p.runNext = -1 // refused: compare again when retried
					return false, SkipPersisted, err
				case compared:
					p.unfound = 0
				case p.unfound < maxUnfound:
					// Not found (an offset a batch of the old files spans
					// but does not hold: compacted away): compare the next.
					p.unfound++
					p.runNext = -1
				default:
					// The destination claims offsets it cannot show: the
					// rest of the run is not compared, as a look-up per
					// record would cost a download each over FTP.
					p.unfound = 0
				}
			}
			return false, SkipPersisted, nil
		}
		p.runNext = -1
		return true, "", nil
	}
	i := 0
	var why SkipReason
	for ; i < len(recs); i++ {
		ok, reason, err := keep(&recs[i])
		if err != nil {
			return nil, err
		}
		if !ok {
			why = reason
			break
		}
	}
	if i == len(recs) {
		return recs, nil
	}
	out := append([]segment.Record(nil), recs[:i]...)
	skipped := map[SkipReason]int{why: 1}
	for i++; i < len(recs); i++ {
		ok, why, err := keep(&recs[i])
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, recs[i])
		} else {
			skipped[why]++
		}
	}
	for why, n := range skipped {
		w.obs.Skipped(p.topic, p.id, why, n)
	}
	return out, nil
}

// written reports whether off is already in a file of p: one that rolled or
// the open one.
func (w *Writer) written(p *partition, off int64) bool {
	return p.written.Contains(off)
}

func (w *Writer) isClosed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed
}

func (w *Writer) partition(topic string, id int32) (*partition, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, ErrClosed
	}
	k := partKey{topic, id}
	if p := w.parts[k]; p != nil {
		return p, nil
	}
	if err := layout.ValidTopic(topic); err != nil {
		return nil, err
	}
	if id < 0 {
		return nil, fmt.Errorf("partition %d of topic %q is negative", id, topic)
	}
	p := &partition{topic: topic, id: id, dir: layout.PartitionDir(w.cfg.Dir, topic, id), runNext: -1}
	if w.cfg.OffsetFrom != nil {
		p.from = w.cfg.OffsetFrom(topic, id)
	}
	w.parts[k] = p
	return p, nil
}

// load reads, once, which offsets the destination already holds.
func (w *Writer) load(ctx context.Context, p *partition) error {
	if p.loaded {
		return nil
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return fmt.Errorf("creating folder for %s/%d: %w", p.topic, p.id, err)
	}
	ranges, err := w.cfg.Destination.Persisted(ctx, p.topic, p.id)
	if err != nil {
		return fmt.Errorf("reading which offsets of %s/%d are already backed up: %w", p.topic, p.id, err)
	}
	for _, r := range ranges {
		p.written.AddRange(r)
	}
	if err := w.loadNote(ctx, p); err != nil {
		return err
	}
	p.loaded = true
	return nil
}

func (w *Writer) partitions() []*partition {
	w.mu.Lock()
	defer w.mu.Unlock()
	ps := make([]*partition, 0, len(w.parts))
	for _, p := range w.parts {
		ps = append(ps, p)
	}
	return ps
}

// Close finalizes every open file and stops the roller. Files the destination
// refuses stay on disk under their in-progress names; Close returns why.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	var errs []error
	for _, p := range w.partitions() {
		p.mu.Lock()
		if err := w.finalize(ctx, p, ReasonShutdown); err != nil {
			errs = append(errs, err)
		}
		p.retryAt = time.Time{}
		if err := w.retry(ctx, p, time.Now()); err != nil {
			errs = append(errs, err)
		}
		p.mu.Unlock()
	}
	return errors.Join(errs...)
}
