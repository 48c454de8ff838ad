package segment

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"unsafe"
)

// ErrTorn reports a file that ends inside a batch: the tail of a write that
// never completed. Everything before the torn batch is intact.
var ErrTorn = errors.New("torn batch at end of file")

// ErrCorrupt reports a batch whose bytes are not a valid RecordBatch v2.
var ErrCorrupt = errors.New("corrupt batch")

// maxBatchLength bounds a batch's length field; no Kafka batch comes close.
const maxBatchLength = 1 << 30

// Batch is one RecordBatch read from a file.
type Batch struct {
	Position       int64 // byte position of the batch in the file
	BaseOffset     int64
	LastOffset     int64
	FirstTimestamp int64
	MaxTimestamp   int64
	NumRecords     int32
	Codec          Compression
	Size           int    // bytes in the file, header included
	raw            []byte // the whole batch; valid until the next call to Next
}

// BatchError says where in a file a batch could not be read.
type BatchError struct {
	Position int64 // byte position of the batch in the file
	Err      error // wraps ErrTorn or ErrCorrupt
}

// Error implements error.
func (e *BatchError) Error() string {
	return fmt.Sprintf("batch at byte %d: %v", e.Position, e.Err)
}

// Unwrap returns the cause.
func (e *BatchError) Unwrap() error { return e.Err }

// Reader reads the batches of one file in order, checking each batch's
// CRC32C. It never allocates much more than the bytes it has read, whatever
// a length field claims.
type Reader struct {
	r   *bufio.Reader
	pos int64
	buf []byte
	b   Batch
}

// NewReader returns a Reader reading batches from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next reads the next batch. It returns io.EOF after the last complete batch,
// and a *BatchError wrapping ErrTorn when the file ends inside a batch or
// ErrCorrupt when a batch is invalid. The returned Batch is reused by the
// next call.
func (r *Reader) Next() (*Batch, error) {
	pos := r.pos
	fail := func(err error) (*Batch, error) { return nil, &BatchError{Position: pos, Err: err} }
	r.buf = r.buf[:0]
	var err error
	if r.buf, err = readN(r.r, r.buf, logOverhead); err != nil {
		if err == io.EOF && len(r.buf) == 0 {
			return nil, io.EOF
		}
		return fail(tornOr(err))
	}
	length := int64(int32(binary.BigEndian.Uint32(r.buf[offLength:])))
	if length < HeaderSize-logOverhead || length > maxBatchLength {
		return fail(fmt.Errorf("%w: length field %d out of range", ErrCorrupt, length))
	}
	if r.buf, err = readN(r.r, r.buf, int(length)); err != nil {
		return fail(tornOr(err))
	}
	b := r.buf
	r.pos += int64(len(b))
	if err := checkHeader(b); err != nil {
		return fail(err)
	}
	if want, got := binary.BigEndian.Uint32(b[offCRC:]), crc32.Checksum(b[offAttributes:], castagnoli); want != got {
		return fail(fmt.Errorf("%w: CRC32C %08x, header says %08x", ErrCorrupt, got, want))
	}
	base := int64(binary.BigEndian.Uint64(b[offBaseOffset:]))
	r.b = Batch{
		Position:       pos,
		BaseOffset:     base,
		LastOffset:     base + int64(int32(binary.BigEndian.Uint32(b[offLastOffsetDelta:]))),
		FirstTimestamp: int64(binary.BigEndian.Uint64(b[offFirstTimestamp:])),
		MaxTimestamp:   int64(binary.BigEndian.Uint64(b[offMaxTimestamp:])),
		NumRecords:     int32(binary.BigEndian.Uint32(b[offNumRecords:])),
		Codec:          Compression(binary.BigEndian.Uint16(b[offAttributes:]) & 7),
		Size:           len(b),
		raw:            b,
	}
	return &r.b, nil
}

// checkHeader checks the fields of a batch header (at least HeaderSize
// bytes) that Next and ReadSpan report: the magic, and offsets and a record
// count no Kafka batch has. Neither reads on past a batch with a negative
// record count or offsets that go backwards or overflow.
func checkHeader(h []byte) error {
	if h[offMagic] != 2 {
		return fmt.Errorf("%w: magic %d, want 2", ErrCorrupt, h[offMagic])
	}
	base := int64(binary.BigEndian.Uint64(h[offBaseOffset:]))
	delta := int64(int32(binary.BigEndian.Uint32(h[offLastOffsetDelta:])))
	if base < 0 || delta < 0 || base > math.MaxInt64-delta {
		return fmt.Errorf("%w: offsets %d to %d+%d", ErrCorrupt, base, base, delta)
	}
	if n := int32(binary.BigEndian.Uint32(h[offNumRecords:])); n < 0 {
		return fmt.Errorf("%w: record count %d", ErrCorrupt, n)
	}
	return nil
}

// Raw returns the batch's bytes as they are in the file, header included.
// They are valid until the next call to Reader.Next.
func (b *Batch) Raw() []byte { return b.raw }

// Records decodes the batch's records. The records own their memory.
//
// A batch is reported as corrupt, before its memory is allocated, when its
// records decompress to more than a limit (MaxBatchDecompressed, and
// MaxDecompressionRatio times the compressed size past 16 MiB), or when the
// Record and Header values it would return take more than that limit for
// its size. Nothing is allocated for a record count or a header count before
// the bytes of that many records or headers are known to be there.
func (b *Batch) Records() ([]Record, error) {
	src := b.raw[HeaderSize:]
	n := int64(b.NumRecords)
	limit := decompressLimit(len(src))
	// budget is what the Record and Header values may take, on top of the
	// bytes they point into.
	budget := int64(limit) - n*recordValueSize
	if n < 0 || budget < 0 {
		return nil, b.errorf("record count %d out of range", n)
	}
	data := src
	if b.Codec != None {
		d, err := decompress(b.Codec, src, limit)
		if err != nil {
			return nil, b.errorf("decompressing %s: %v", b.Codec, err)
		}
		data = d
	}
	// Frame the records before allocating anything for them: a hostile
	// count fails here, on its own bytes.
	d := decoder{src: data}
	for i := range n {
		length := d.varint()
		if d.err != nil || length < minRecordSize-1 || length > int64(len(d.src)) {
			return nil, b.errorf("record %d: bad length", i)
		}
		d.src = d.src[length:]
	}
	if len(d.src) != 0 {
		return nil, b.errorf("%d bytes after the last record", len(d.src))
	}
	if b.Codec == None {
		data = append([]byte(nil), data...) // the records own their memory
	}
	recs := make([]Record, n)
	d = decoder{src: data}
	for i := range recs {
		length := d.varint()
		rd := decoder{src: d.src[:length]}
		d.src = d.src[length:]
		rd.src = rd.src[1:] // attributes, unused
		tsDelta := rd.varint()
		offDelta := rd.varint()
		r := &recs[i]
		r.Offset = b.BaseOffset + offDelta
		r.Timestamp = b.FirstTimestamp + tsDelta
		r.Key = rd.bytes()
		r.Value = rd.bytes()
		// A header takes at least two bytes: an empty key and a null value.
		nh := rd.varint()
		if rd.err != nil || nh < 0 || nh > int64(len(rd.src))/2 || nh*headerValueSize > budget {
			return nil, b.errorf("record %d: bad header count %d", i, nh)
		}
		budget -= nh * headerValueSize
		if nh > 0 {
			r.Headers = make([]Header, nh)
			for j := range r.Headers {
				k := rd.bytes()
				if k == nil {
					rd.fail() // a header key is never null
				}
				r.Headers[j] = Header{Key: string(k), Value: rd.bytes()}
			}
		}
		if rd.err != nil || len(rd.src) != 0 {
			return nil, b.errorf("record %d: malformed", i)
		}
	}
	return recs, nil
}

// The memory of one Record and one Header value.
const (
	recordValueSize = int64(unsafe.Sizeof(Record{}))
	headerValueSize = int64(unsafe.Sizeof(Header{}))
)

// minRecordSize is the size of the smallest record: one byte each for the
// length, attributes, timestamp delta, offset delta, key, value and header
// count.
const minRecordSize = 7

func (b *Batch) errorf(format string, args ...any) error {
	return &BatchError{Position: b.Position, Err: fmt.Errorf("%w: offset %d: %s", ErrCorrupt, b.BaseOffset, fmt.Sprintf(format, args...))}
}

// decoder reads varints and varint-prefixed bytes, remembering the first
// error.
type decoder struct {
	src []byte
	err error
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.src)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.src = d.src[n:]
	return v
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = ErrCorrupt
	}
}

// bytes returns a nullable byte slice; it aliases the decoder's source.
func (d *decoder) bytes() []byte {
	n := d.varint()
	if d.err != nil || n < 0 {
		return nil
	}
	if n > int64(len(d.src)) {
		d.fail()
		return nil
	}
	b := d.src[:n:n]
	d.src = d.src[n:]
	return b
}

// readN appends exactly n bytes from r to buf, growing buf only as data
// arrives.
func readN(r io.Reader, buf []byte, n int) ([]byte, error) {
	for n > 0 {
		chunk := min(n, 1<<20)
		start := len(buf)
		buf = append(buf, make([]byte, chunk)...)
		k, err := io.ReadFull(r, buf[start:])
		buf = buf[:start+k]
		if err != nil {
			return buf, err
		}
		n -= chunk
	}
	return buf, nil
}

func tornOr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return ErrTorn
	}
	return err
}
