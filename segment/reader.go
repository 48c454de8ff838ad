package segment

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/twmb/franz-go/pkg/kgo"
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
	dec            kgo.Decompressor
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
	dec kgo.Decompressor
}

// NewReader returns a Reader reading batches from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10), dec: kgo.DefaultDecompressor()}
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
	if b[offMagic] != 2 {
		return fail(fmt.Errorf("%w: magic %d, want 2", ErrCorrupt, b[offMagic]))
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
		dec:            r.dec,
	}
	return &r.b, nil
}

// Raw returns the batch's bytes as they are in the file, header included.
// They are valid until the next call to Reader.Next.
func (b *Batch) Raw() []byte { return b.raw }

// Records decodes the batch's records. The records own their memory.
func (b *Batch) Records() ([]Record, error) {
	data := b.raw[HeaderSize:]
	if b.Codec != None {
		d, err := b.dec.Decompress(data, kgo.CompressionCodecType(b.Codec))
		if err != nil {
			return nil, b.errorf("decompressing %s: %v", b.Codec, err)
		}
		data = append([]byte(nil), d...)
	} else {
		data = append([]byte(nil), data...)
	}
	if b.NumRecords < 0 || int(b.NumRecords) > len(data)/7+1 {
		return nil, b.errorf("record count %d does not fit in %d bytes", b.NumRecords, len(data))
	}
	recs := make([]Record, 0, b.NumRecords)
	d := decoder{src: data}
	for i := int32(0); i < b.NumRecords; i++ {
		length := d.varint()
		if d.err != nil || length < 1 || length > int64(len(d.src)) {
			return nil, b.errorf("record %d: bad length", i)
		}
		rd := decoder{src: d.src[:length]}
		d.src = d.src[length:]
		rd.src = rd.src[1:] // attributes, unused
		tsDelta := rd.varint()
		offDelta := rd.varint()
		r := Record{
			Offset:    b.BaseOffset + offDelta,
			Timestamp: b.FirstTimestamp + tsDelta,
			Key:       rd.bytes(),
			Value:     rd.bytes(),
		}
		nh := rd.varint()
		if nh < 0 || nh > int64(len(rd.src)) {
			return nil, b.errorf("record %d: bad header count %d", i, nh)
		}
		if nh > 0 {
			r.Headers = make([]Header, nh)
			for j := range r.Headers {
				k := rd.bytes()
				r.Headers[j] = Header{Key: string(k), Value: rd.bytes()}
			}
		}
		if rd.err != nil || len(rd.src) != 0 {
			return nil, b.errorf("record %d: malformed", i)
		}
		recs = append(recs, r)
	}
	if len(d.src) != 0 {
		return nil, b.errorf("%d bytes after the last record", len(d.src))
	}
	return recs, nil
}

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
		d.err = ErrCorrupt
		return 0
	}
	d.src = d.src[n:]
	return v
}

// bytes returns a nullable byte slice; it aliases the decoder's source.
func (d *decoder) bytes() []byte {
	n := d.varint()
	if d.err != nil || n < 0 {
		return nil
	}
	if n > int64(len(d.src)) {
		d.err = ErrCorrupt
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
