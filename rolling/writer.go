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
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/offsets"
	"github.com/kafka-backup/kafka-backup/segment"
)

// Fsync says when the Writer fsyncs an in-progress file.
type Fsync int

const (
	// FsyncBatch fsyncs after every Write, before it returns: an
	// acknowledged record survives a process crash and a power loss.
	FsyncBatch Fsync = iota
	// FsyncRoll fsyncs when a file rolls, before it is renamed: an
	// acknowledged record survives a process crash (it is in the page
	// cache) but the last unrolled records can be lost to a power loss.
	FsyncRoll
	// FsyncNever leaves flushing to the operating system entirely.
	FsyncNever
)

// ParseFsync returns the policy called s: "batch", "roll" or "never".
func ParseFsync(s string) (Fsync, error) {
	switch s {
	case "batch":
		return FsyncBatch, nil
	case "roll":
		return FsyncRoll, nil
	case "never":
		return FsyncNever, nil
	}
	return 0, fmt.Errorf("unknown fsync policy %q: use batch, roll or never", s)
}

// Reason says why a file rolled.
type Reason string

// The reasons a file rolls.
const (
	ReasonSize       Reason = "size"         // the next records would make it exceed the maximum size
	ReasonIdle       Reason = "idle"         // no records for the idle timeout
	ReasonAge        Reason = "age"          // open for the maximum age
	ReasonOutOfOrder Reason = "out_of_order" // records arrived with lower offsets than the file's last
	ReasonShutdown   Reason = "shutdown"     // the Writer was closed
	ReasonError      Reason = "error"        // a write failed; the file keeps its complete batches
)

// SkipReason says why records were not written.
type SkipReason string

// The reasons records are skipped.
const (
	SkipOffsetFrom SkipReason = "offset_from" // below the configured start offset
	SkipPersisted  SkipReason = "persisted"   // already in a file: a replay after a restart or retry
)

// File describes a file that has rolled: complete, closed, and still under its
// in-progress name.
type File struct {
	Topic        string
	Partition    int32
	Path         string // the in-progress file on local disk
	Name         string // the final name, in the same folder
	FirstOffset  int64
	LastOffset   int64
	Records      int64
	Bytes        int64
	MaxTimestamp int64
	MinTimestamp int64
	// Ranges are the offsets the file's batches cover, contiguous batches
	// merged. The file holds no offset outside them.
	Ranges         []offsets.Range
	Reason         Reason
	Fsync          bool // whether the destination must fsync what it makes of it
	Opened, Closed time.Time
}

// Destination takes files that have rolled and makes them final.
type Destination interface {
	// Publish makes f final, for example by renaming it to f.Name. When it
	// returns nil the Writer forgets f; when it fails the Writer tries again
	// later and f stays on disk under its in-progress name.
	Publish(ctx context.Context, f File) error
	// Persisted returns the offset ranges already held by final files of a
	// partition. The Writer calls it when it first sees a partition and skips
	// records inside those ranges, so a replay never puts an offset in two
	// final files.
	Persisted(ctx context.Context, topic string, partition int32) ([]offsets.Range, error)
}

// Observer is told what the Writer does, for logs and metrics. Its methods
// must be fast and safe for concurrent use.
type Observer interface {
	Written(topic string, partition int32, records int, bytes int)
	Finalized(f File)
	Skipped(topic string, partition int32, reason SkipReason, records int)
	// OutOfOrder is called for every batch that arrives below the open
	// file's last offset; first is true the first time for a partition.
	OutOfOrder(topic string, partition int32, offset, after int64, first bool)
	// OpenFiles is called with the number of open in-progress files
	// whenever it changes.
	OpenFiles(n int)
	Error(err error)
	// Refused is called once per run for a partition the Writer refuses
	// because its topic was deleted and recreated: err (wrapping
	// ErrRecreated) says what was found and what to do. Every Write to it
	// fails with err until the old backup is moved away.
	Refused(topic string, partition int32, err error)
}

// Config configures a Writer.
type Config struct {
	Dir         string        // root folder; partition folders are made below it
	Instance    string        // id of this running instance, unique among writers of Dir
	MaxSize     int64         // a file never exceeds this unless one record alone is larger
	IdleTimeout time.Duration // a file rolls after this long without records
	MaxAge      time.Duration // a file rolls this long after it opened; 0 is no limit
	Fsync       Fsync
	Compression segment.Compression
	Naming      layout.Naming
	// OffsetFrom returns the lowest offset to back up for a partition; nil
	// backs up everything.
	OffsetFrom  func(topic string, partition int32) int64
	Destination Destination
	Observer    Observer // nil observes nothing
}

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

func (w *Writer) open(ctx context.Context, p *partition, first int64, now time.Time) error {
	name := w.cfg.Naming.FileName(first)
	path := filepath.Join(p.dir, layout.InProgressName(name, w.cfg.Instance))
	f, id, err := createLocked(path)
	if errors.Is(err, os.ErrNotExist) {
		// The partition's folder was removed since it was made: what the
		// destination holds is not what was read when it was first seen.
		if rerr := w.reload(ctx, p); rerr != nil {
			return rerr
		}
		f, id, err = createLocked(path)
	}
	if err != nil {
		return fmt.Errorf("opening in-progress file for %s/%d: %w", p.topic, p.id, err)
	}
	p.f, p.fID = f, id
	w.obs.OpenFiles(int(w.openFiles.Add(1)))
	p.cur = File{Topic: p.topic, Partition: p.id, Path: path, Name: name, FirstOffset: first, LastOffset: first - 1, Opened: now}
	return nil
}

// createLocked creates the in-progress file path, which must not exist, and
// locks it. It returns the file's identity for checkOnDisk. The file is opened
// read-write: after a failed write it is read back (fail), and when its path
// is removed it is copied to a new file (saveRemoved).
func createLocked(path string) (*os.File, fileID, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fileID{}, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fileID{}, fmt.Errorf("locking in-progress file %s: %w", path, err)
	}
	id, err := idOf(f)
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, fileID{}, fmt.Errorf("stat of in-progress file %s: %w", path, err)
	}
	return f, id, nil
}

// checkOnDisk makes sure the path of the open file still names it, as it
// may not when a cleanup job or an operator removed the partition's folder
// or the file while it was written: what is written then goes into a file no
// one will ever see. If the path is gone, the file's complete batches, all
// of them acknowledged or about to be, are copied from the open file to a
// new file at the same path, the partition's folder made again if need be,
// and what the destination holds is read again. It returns an error naming
// the file and the cause whenever the path did not name the file, even when
// the records were saved, so the batch being written fails and is delivered
// again; it costs one stat.
func (w *Writer) checkOnDisk(ctx context.Context, p *partition) error {
	id, err := pathID(p.cur.Path)
	if err == nil && id == p.fID {
		return nil
	}
	cause := "the path names another file"
	if err != nil {
		cause = err.Error()
	}
	lost := fmt.Errorf("%s was removed while it was being written (%s): its partition folder or the file itself was deleted, by an operator or a cleanup job", p.cur.Path, cause)
	p.unsaved = true
	if serr := w.saveRemoved(p); serr != nil {
		// The open file, unlinked, is the last copy of its acknowledged
		// records: it stays open, and every write and roll fails and tries
		// again until they are saved (the cause may pass: a full disk, a
		// file where the folder was).
		return fmt.Errorf("%w; offsets %s of %s/%d, acknowledged, are only in the removed file kafka-backup holds open, and could not be written again (%w): "+
			"it is tried again at every write and roll, and they are LOST if kafka-backup stops before it succeeds", lost, offsets.Format(p.cur.Ranges, 0), p.topic, p.id, serr)
	}
	p.unsaved = false
	lost = fmt.Errorf("%w; its %d records were written again to a new file at the same path, and this batch is delivered again", lost, p.cur.Records)
	if rerr := w.reload(ctx, p); rerr != nil {
		lost = errors.Join(lost, rerr)
	}
	return lost
}

// onDisk reports whether the path of p's open file names it; only called
// after checkOnDisk failed.
func (w *Writer) onDisk(p *partition) bool {
	id, err := pathID(p.cur.Path)
	return err == nil && id == p.fID
}

// saveRemoved copies the complete batches of the open file, whose path was
// removed, into a new file at the same path, which becomes the open file.
func (w *Writer) saveRemoved(p *partition) error {
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return fmt.Errorf("making the folder again: %w", err)
	}
	f, id, err := createLocked(p.cur.Path)
	if err != nil {
		return fmt.Errorf("making the file again: %w", err)
	}
	_, err = io.Copy(f, io.NewSectionReader(p.f, 0, p.cur.Bytes))
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = SyncDir(p.dir)
	}
	if err != nil {
		f.Close()
		os.Remove(p.cur.Path)
		return fmt.Errorf("copying the removed file to a new one: %w", err)
	}
	p.f.Close()
	p.f, p.fID = f, id
	return nil
}

// reload forgets which offsets of p are in files and reads it again from
// what is on disk: the destination's final files, the open file and the
// rolled files waiting to be published that are still there. It makes the
// partition's folder again if it is gone. Offsets that counted as written and
// are no longer on disk were acknowledged: Kafka does not deliver them again,
// so the error names them as lost (those of rolled files removed once).
func (w *Writer) reload(ctx context.Context, p *partition) error {
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return fmt.Errorf("making the folder of %s/%d again: %w", p.topic, p.id, err)
	}
	ranges, err := w.cfg.Destination.Persisted(ctx, p.topic, p.id)
	if err != nil {
		return fmt.Errorf("reading again which offsets of %s/%d are backed up: %w", p.topic, p.id, err)
	}
	written := offsets.SetOf(ranges)
	if p.f != nil {
		for _, r := range p.cur.Ranges {
			written.AddRange(r)
		}
	}
	var errs []error
	var removed []File
	left := p.unpubl[:0]
	for _, f := range p.unpubl {
		if _, err := os.Stat(f.Path); err != nil {
			removed = append(removed, f)
			errs = append(errs, fmt.Errorf("%s, rolled and waiting to be finalized as %s, was removed: offsets %s of %s/%d are LOST from the backup: %w", f.Path, f.Name, offsets.Format(f.Ranges, 0), p.topic, p.id, err))
			continue
		}
		for _, r := range f.Ranges {
			written.AddRange(r)
		}
		left = append(left, f)
	}
	p.unpubl = left
	known := offsets.SetOf(written.Ranges()) // what is on disk, and the removed rolled files named above
	for _, f := range removed {
		for _, r := range f.Ranges {
			known.AddRange(r)
		}
	}
	if gone := p.written.Minus(known); len(gone) > 0 {
		errs = append(errs, fmt.Errorf("offsets %s of %s/%d, acknowledged, were in final files that are no longer at the destination (%s was removed): they are LOST from the backup, and Kafka will not deliver them again; restore them from another copy, or reset the consumer group to re-read them if the topic still holds them",
			offsets.Format(gone, 0), p.topic, p.id, p.dir))
	}
	p.written = *written
	return errors.Join(errs...)
}

// SyncDir fsyncs a folder, so a file made, renamed or removed in it
// survives a power loss.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// finalize closes the open file and hands it to the destination. A file the
// destination refuses stays on disk and is offered again by the roller. It
// first makes sure the file is still on disk (checkOnDisk) and returns that
// error, if any; other errors are only observed.
func (w *Writer) finalize(ctx context.Context, p *partition, why Reason) error {
	if p.f == nil {
		return nil
	}
	removed := w.checkOnDisk(ctx, p)
	if removed != nil && !w.onDisk(p) {
		return removed // kept open, not saved yet: said so
	}
	f := p.f
	p.f = nil
	w.obs.OpenFiles(int(w.openFiles.Add(-1)))
	file := p.cur
	file.Reason = why
	file.Closed = time.Now()
	file.Fsync = w.cfg.Fsync != FsyncNever
	var err error
	if file.Fsync {
		err = f.Sync()
	}
	if file.Records == 0 {
		f.Close()
		os.Remove(file.Path)
		return removed
	}
	if err != nil {
		// The data was written but the fsync failed: keep the file; it is
		// offered to the destination again later.
		f.Close()
		w.obs.Error(fmt.Errorf("closing %s: %w", file.Path, err))
		p.unpubl = append(p.unpubl, file)
		return removed
	}
	// The file stays open, and so locked, until the destination has taken
	// it (renamed it away from its in-progress name): closed first, it
	// would be free for another instance's recovery to take while its path
	// still names it, and both would publish it.
	err = w.cfg.Destination.Publish(ctx, file)
	if cerr := f.Close(); err == nil && cerr != nil {
		w.obs.Error(fmt.Errorf("closing %s: %w", file.Path, cerr))
	}
	if err != nil {
		w.obs.Error(fmt.Errorf("finalizing %s as %s: %w", file.Path, file.Name, err))
		p.unpubl = append(p.unpubl, file)
		return removed
	}
	w.obs.Finalized(file)
	return removed
}

// retry offers rolled files the destination refused before to it again,
// backing off between attempts.
func (w *Writer) retry(ctx context.Context, p *partition, now time.Time) error {
	if len(p.unpubl) == 0 || now.Before(p.retryAt) {
		return nil
	}
	var errs []error
	left := p.unpubl[:0]
	for _, f := range p.unpubl {
		if _, err := os.Stat(f.Path); errors.Is(err, os.ErrNotExist) {
			// Removed (with its folder) since it rolled: no retry brings
			// it back.
			errs = append(errs, fmt.Errorf("%s, rolled and waiting to be finalized as %s, was removed: offsets %s of %s/%d, acknowledged, are LOST from the backup: %w", f.Path, f.Name, offsets.Format(f.Ranges, 0), p.topic, p.id, err))
			continue
		}
		if err := w.cfg.Destination.Publish(ctx, f); err != nil {
			errs = append(errs, fmt.Errorf("finalizing %s as %s: %w", f.Path, f.Name, err))
			left = append(left, f)
			continue
		}
		w.obs.Finalized(f)
	}
	p.unpubl = left
	if len(left) == 0 {
		p.retryWait = 0
		return errors.Join(errs...)
	}
	p.retryWait = min(max(2*p.retryWait, time.Second), time.Minute)
	p.retryAt = now.Add(p.retryWait)
	return errors.Join(errs...)
}

// roller finalizes idle and old files until Close.
func (w *Writer) roller() {
	defer close(w.done)
	tick := w.cfg.IdleTimeout / 4
	if w.cfg.MaxAge > 0 {
		tick = min(tick, w.cfg.MaxAge/4)
	}
	tick = min(max(tick, 10*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case now := <-t.C:
			w.rollDue(now)
		}
	}
}

func (w *Writer) rollDue(now time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, p := range w.partitions() {
		p.mu.Lock()
		var err error
		if p.f != nil && now.Sub(p.lastWrite) >= w.cfg.IdleTimeout {
			err = w.finalize(ctx, p, ReasonIdle)
		} else if p.f != nil && w.cfg.MaxAge > 0 && now.Sub(p.cur.Opened) >= w.cfg.MaxAge {
			err = w.finalize(ctx, p, ReasonAge)
		}
		if err != nil {
			w.obs.Error(err)
		}
		if err := w.retry(ctx, p, now); err != nil {
			w.obs.Error(err)
		}
		p.mu.Unlock()
	}
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

type nopObserver struct{}

func (nopObserver) Written(string, int32, int, int)              {}
func (nopObserver) Finalized(File)                               {}
func (nopObserver) Skipped(string, int32, SkipReason, int)       {}
func (nopObserver) OutOfOrder(string, int32, int64, int64, bool) {}
func (nopObserver) OpenFiles(int)                                {}
func (nopObserver) Error(error)                                  {}
func (nopObserver) Refused(string, int32, error)                 {}
