package tree

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/offsets"
	"github.com/kafka-backup/kafka-backup/segment"
)

// ReadOptions configures a PartitionReader.
type ReadOptions struct {
	// OnRead, when set, is called with the bytes read from the files as
	// they are read, each byte of a file once (bytes read again when a
	// file is opened again at a batch are not reported).
	OnRead func(n int)
	// Warn, when set, gets the oddities that do not stop the read: an empty
	// file, a file whose first batch is not at the offset its name says,
	// records returned below an offset returned before.
	Warn func(msg string)
}

// PartitionReader reads the batches of one partition in offset order across
// its final files, whatever their layout: files that interleave (file 0
// holding offsets 0-99 and 200-299, file 100 holding 100-199, as a writer
// fed out of order leaves them), overlap or repeat offsets. It merges the
// files by offset, keeping one file open at a time (an FTP source then
// never needs more than one connection per partition): a file whose next
// batch is above another file's is closed and opened again at that batch's
// byte when its turn comes. Each offset is returned once, from the file
// read first; later copies count as duplicates.
//
// The order holds as long as every file's batches grow in offset order, no
// file starts below the offset its name says, and no batch spans offsets
// that only another file holds (all as the kafka_backup output writes them:
// a batch holds records of one write); otherwise the records concerned come
// late, and Warn says so.
//
// A PartitionReader is not safe for concurrent use.
type PartitionReader struct {
	ctx  context.Context
	src  Source
	part Partition
	opts ReadOptions

	files  []*cursor // in the listing's order: by first offset as named
	next   int       // files[:next] were all opened at least once
	active []*cursor // files opened and not done
	cur    *cursor   // the file open, or nil
	rc     io.ReadCloser
	rd     *segment.Reader
	base   int64 // byte position in the file where rd started

	returned   offsets.Set // offsets returned
	pending    *Batch      // returned by Next, its offsets not yet in returned
	duplicates int64
	late       int64 // records returned below the highest offset returned before
	batch      Batch
}

// cursor is where the merge stands in one file.
type cursor struct {
	File
	pos    int64 // byte position of the next batch to read
	key    int64 // no record still to read from the file is below it (when its name is right)
	order  int64 // key, or the offset after the highest returned when above (pick)
	last   int64 // last offset read from the file; -1 before its first batch
	seen   int64 // bytes of the file read so far (reported to OnRead once)
	named  bool  // its first batch was checked against its name
	opened bool  // opened at least once
	done   bool
}

// NewPartitionReader returns a reader of the final files of part (as
// Source.List returned it) on src. The files are opened with ctx, when
// their turn comes; Close closes the one open.
func NewPartitionReader(ctx context.Context, src Source, part Partition, opts ReadOptions) *PartitionReader {
	r := &PartitionReader{ctx: ctx, src: src, part: part, opts: opts}
	for _, f := range part.Files {
		r.files = append(r.files, &cursor{File: f, key: f.FirstOffset, last: -1})
	}
	return r
}

// Batch is a RecordBatch of a partition's file, as PartitionReader.Next
// returns it.
type Batch struct {
	File     string // the file's name
	Position int64  // byte position of its RecordBatch in the file
	// BaseOffset and LastOffset bound the offsets of its records.
	BaseOffset, LastOffset int64
	MaxTimestamp           int64 // the greatest timestamp of its records
	// NumRecords is how many records it holds, offsets returned before
	// included.
	NumRecords int32

	r     *PartitionReader
	raw   *segment.Batch
	after int64 // the file's last offset before it
	base  int64 // byte position where the file's segment.Reader started
	used  bool  // Records was called
}

// ReadError says where reading a partition failed.
type ReadError struct {
	File string // the file's name
	// Position is the byte position of the batch in the file, or -1 when
	// the file could not be opened.
	Position int64
	// After is the last offset read from the file before it, or -1.
	After int64
	// Err is the cause: it wraps segment.ErrTorn or segment.ErrCorrupt for
	// a batch that cannot be read, fs.ErrNotExist for a file gone since the
	// listing, or an I/O error.
	Err error
}

// Error implements error.
func (e *ReadError) Error() string {
	s := e.File
	if e.Position >= 0 {
		s += fmt.Sprintf(": byte %d", e.Position)
	}
	if e.After >= 0 {
		s += fmt.Sprintf(" (after offset %d of the file)", e.After)
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *ReadError) Unwrap() error { return e.Err }

// Damaged reports whether err is a torn or corrupt batch.
func Damaged(err error) bool {
	return errors.Is(err, segment.ErrTorn) || errors.Is(err, segment.ErrCorrupt)
}

// Next returns the partition's next batch in offset order, or io.EOF after
// the last one. The batch is valid until the next call to Next. A batch
// whose offsets were all returned before is skipped (and counted in
// Duplicates).
//
// An error is a *ReadError, or the context's. Next may be called again
// after one: a damaged batch (Damaged) or a file gone since the listing
// ends that file, whose offsets after it are not read; after any other
// error (an I/O error) the file is opened again at the batch that failed.
func (r *PartitionReader) Next() (*Batch, error) {
	r.account()
	for {
		if err := r.ctx.Err(); err != nil {
			return nil, err
		}
		c, other := r.pick()
		if c == nil {
			r.closeFile()
			return nil, io.EOF
		}
		if r.cur != c {
			r.closeFile()
			if err := r.open(c); err != nil {
				return nil, err
			}
		}
		b, err := r.rd.Next()
		if err == io.EOF {
			if c.pos == 0 {
				r.warn(fmt.Sprintf("%s is empty", c.Name))
			}
			c.done = true
			r.closeFile()
			continue
		}
		if err != nil {
			return nil, r.fail(c, r.base, err)
		}
		pos := r.base + b.Position
		if pos == 0 && !c.named {
			c.named = true
			if b.BaseOffset != c.FirstOffset {
				r.warn(fmt.Sprintf("%s starts at offset %d, not at the offset its name says", c.Name, b.BaseOffset))
			}
		}
		if r.returned.Covers(b.BaseOffset, b.LastOffset) {
			r.duplicates += int64(b.NumRecords)
			r.advance(c, b, pos)
			continue
		}
		if b.BaseOffset > other {
			// Another file's records come first: this batch is read again
			// when its turn comes.
			c.key = b.BaseOffset
			continue
		}
		after := c.last
		r.advance(c, b, pos)
		r.batch = Batch{
			File: c.Name, Position: pos,
			BaseOffset: b.BaseOffset, LastOffset: b.LastOffset,
			MaxTimestamp: b.MaxTimestamp, NumRecords: b.NumRecords,
			r: r, raw: b, after: after, base: r.base,
		}
		r.pending = &r.batch
		return r.pending, nil
	}
}

// advance moves c past batch b at byte pos.
func (r *PartitionReader) advance(c *cursor, b *segment.Batch, pos int64) {
	c.pos = pos + int64(b.Size)
	c.last = b.LastOffset
	c.key = max(c.key, b.LastOffset+1)
}

// pick returns the file to read next, the one whose next records come
// first (the open one among equals), and the offset below which no other
// file's next record is; nil when every file is read.
//
// A file's records below the highest offset returned come late (or are
// duplicates, the usual case: two files holding the same batches) whenever
// they are read: such a file counts as coming right after it, so that
// duplicate files are read one after the other, not alternately.
//
// It looks at the files opened before and at the two next never opened
// (those come in the order of their names' offsets): a partition of many
// files costs no more per batch than one of a few.
func (r *PartitionReader) pick() (best *cursor, other int64) {
	floor := r.returned.Max() + 1
	other = math.MaxInt64
	consider := func(c *cursor) {
		c.order = max(c.key, floor)
		switch {
		case best == nil:
			best = c
		case c.order < best.order || c.order == best.order && c == r.cur:
			other = min(other, best.order)
			best = c
		default:
			other = min(other, c.order)
		}
	}
	r.active = slices.DeleteFunc(r.active, func(c *cursor) bool { return c.done })
	for _, c := range r.active {
		consider(c)
	}
	for i := r.next; i < len(r.files) && i < r.next+2; i++ {
		consider(r.files[i])
	}
	return best, other
}

// account adds the offsets of the batch Next returned last to those
// returned, when Records did not.
func (r *PartitionReader) account() {
	if b := r.pending; b != nil && !b.used {
		r.returned.AddRange(segment.Range{First: b.BaseOffset, Last: b.LastOffset})
	}
	r.pending = nil
}

// Records decodes the batch's records and returns those whose offsets were
// not returned before, in offset order (as the file holds them). The
// records own their memory. A batch that cannot be decoded is a *ReadError
// (Damaged), and ends its file as Next's errors do.
func (b *Batch) Records() ([]segment.Record, error) {
	r := b.r
	if b.used {
		return nil, errors.New("Records called twice on a batch")
	}
	b.used = true
	recs, err := b.raw.Records()
	if err != nil {
		c := r.cur
		c.last = b.after
		return nil, r.fail(c, b.base, err)
	}
	out := recs[:0]
	high := r.returned.Max()
	for _, rec := range recs {
		if r.returned.Contains(rec.Offset) {
			r.duplicates++
			continue
		}
		if rec.Offset < high {
			if r.late == 0 {
				r.warn(fmt.Sprintf("%s: offset %d comes after offset %d: the file is misnamed or its batches are out of order", b.File, rec.Offset, high))
			}
			r.late++
		}
		r.returned.Add(rec.Offset)
		out = append(out, rec)
	}
	return out, nil
}

// Duplicates returns how many records were skipped because their offset
// was returned before (from another file, or earlier in the same one).
func (r *PartitionReader) Duplicates() int64 { return r.duplicates }

// Late returns how many records were returned below an offset returned
// before them (a misnamed file, batches out of order inside a file).
func (r *PartitionReader) Late() int64 { return r.late }

// Returned returns the offsets returned so far, contiguous ones merged:
// the records Records returned, and the whole range of batches it was not
// called for.
func (r *PartitionReader) Returned() []segment.Range {
	r.account()
	return slices.Clone(r.returned.Ranges())
}

// Close closes the file open.
func (r *PartitionReader) Close() error {
	r.closeFile()
	return nil
}

func (r *PartitionReader) warn(msg string) {
	if r.opts.Warn != nil {
		r.opts.Warn(msg)
	}
}

// fail handles an error reading c at byte base (plus the position the
// error states).
func (r *PartitionReader) fail(c *cursor, base int64, err error) error {
	pos := c.pos
	var be *segment.BatchError
	cause := err
	if errors.As(err, &be) {
		pos, cause = base+be.Position, be.Err
	}
	re := &ReadError{File: c.Name, Position: pos, After: c.last, Err: cause}
	r.closeFile()
	if Damaged(err) {
		c.done = true
	}
	return re
}

// open opens c at its position.
func (r *PartitionReader) open(c *cursor) error {
	rc, err := openAt(r.ctx, r.src, r.part.Topic, r.part.Partition, c.Name, c.pos)
	if !c.opened && (err == nil || errors.Is(err, fs.ErrNotExist)) {
		c.opened = true
		r.active = append(r.active, c)
		for r.next < len(r.files) && r.files[r.next].opened {
			r.next++
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			c.done = true
		}
		pos := int64(-1)
		if c.pos > 0 {
			pos = c.pos
		}
		return &ReadError{File: c.Name, Position: pos, After: c.last, Err: err}
	}
	var rd io.Reader = rc
	if r.opts.OnRead != nil {
		rd = &countReader{r: rc, c: c, pos: c.pos, on: r.opts.OnRead}
	}
	r.cur, r.rc, r.rd, r.base = c, rc, segment.NewReader(rd), c.pos
	return nil
}

func (r *PartitionReader) closeFile() {
	if r.rc != nil {
		r.rc.Close()
	}
	r.cur, r.rc, r.rd = nil, nil, nil
}

// countReader reports the bytes of a file read for the first time: bytes
// read again after the file was opened again at a batch are not.
type countReader struct {
	r   io.Reader
	c   *cursor
	pos int64
	on  func(int)
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	end := c.pos + int64(n)
	if end > c.c.seen {
		c.on(int(end - max(c.pos, c.c.seen)))
		c.c.seen = end
	}
	c.pos = end
	return n, err
}

// openAt opens a file of a partition folder for reading from byte pos:
// where the source can, without reading the bytes before it.
func openAt(ctx context.Context, src Source, topic string, partition int32, name string, pos int64) (io.ReadCloser, error) {
	switch s := src.(type) {
	case *localSource:
		if err := checkName(topic, name); err != nil {
			return nil, err
		}
		f, err := os.Open(filepath.Join(layout.PartitionDir(s.root, topic, partition), name))
		if err != nil {
			return nil, err
		}
		if _, err := f.Seek(pos, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	case *ftpSource:
		if err := checkName(topic, name); err != nil {
			return nil, err
		}
		fr := &ftpReader{s: s, ctx: ctx, path: path.Join(s.partitionDir(topic, partition), name), size: -1, pos: pos}
		if err := fr.start(); err != nil {
			return nil, err
		}
		return fr, nil
	}
	rc, err := src.Open(ctx, topic, partition, name)
	if err != nil || pos == 0 {
		return rc, err
	}
	if _, err := io.CopyN(io.Discard, rc, pos); err != nil {
		rc.Close()
		return nil, fmt.Errorf("skipping to byte %d: %w", pos, err)
	}
	return rc, nil
}
