package segment

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// MaxBatchRecordsBytes bounds the uncompressed record bytes the encoder puts
// in one batch: a written batch of many megabytes becomes several batches, so
// a reader never needs more than about this much memory per batch and a torn
// tail loses at most one batch. A single larger record gets a batch alone.
const MaxBatchRecordsBytes = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Encoder appends records to a buffer as RecordBatch v2, encoded with
// franz-go's kmsg. An Encoder reuses its buffers and is not safe for
// concurrent use.
type Encoder struct {
	codec      Compression
	compressor kgo.Compressor
	cbuf       bytes.Buffer
	raw        []byte
	rec        kmsg.Record
	batch      kmsg.RecordBatch
}

// NewEncoder returns an Encoder that compresses each batch with codec.
func NewEncoder(codec Compression) (*Encoder, error) {
	e := &Encoder{codec: codec}
	if codec != None {
		var c kgo.Compressor
		var err error
		switch codec {
		case Gzip:
			c, err = kgo.DefaultCompressor(kgo.GzipCompression())
		case Snappy:
			c, err = kgo.DefaultCompressor(kgo.SnappyCompression())
		case LZ4:
			c, err = kgo.DefaultCompressor(kgo.Lz4Compression())
		case Zstd:
			c, err = kgo.DefaultCompressor(kgo.ZstdCompression())
		default:
			return nil, fmt.Errorf("unknown compression codec %d", codec)
		}
		if err != nil {
			return nil, fmt.Errorf("compression %s: %w", codec, err)
		}
		e.compressor = c
	}
	return e, nil
}

// Codec returns the compression codec of the batches the Encoder writes.
func (e *Encoder) Codec() Compression { return e.codec }

// AppendBatch appends the longest leading run of recs that fits in one batch
// of at most limit bytes (header included) to dst, and returns the extended
// buffer and how many records it holds. It returns n == 0 and dst unchanged
// when not even recs[0] fits. Offsets in recs must be strictly increasing.
//
// A batch also ends before MaxBatchRecordsBytes of uncompressed records and
// before an offset too far from the first to be a 32-bit delta.
func (e *Encoder) AppendBatch(dst []byte, recs []Record, limit int64) ([]byte, int) {
	if len(recs) == 0 || limit < HeaderSize {
		return dst, 0
	}
	n := e.prefix(recs, limit)
	if e.codec == None {
		if n == 0 {
			return dst, 0
		}
		return e.appendBatch(dst, recs[:n], nil), n
	}
	// Compressed: the uncompressed prefix bounds the batch; shrink it until
	// the compressed batch fits.
	if n == 0 {
		n = 1
	}
	for {
		raw := e.appendRecords(e.raw[:0], recs[:n])
		e.raw = raw
		e.cbuf.Reset()
		comp, _ := e.compressor.Compress(&e.cbuf, raw)
		if int64(HeaderSize+len(comp)) <= limit {
			return e.appendBatch(dst, recs[:n], comp), n
		}
		if n == 1 {
			return dst, 0
		}
		n /= 2
	}
}

// prefix returns how many leading records fit, uncompressed, in limit bytes
// and in one batch.
func (e *Encoder) prefix(recs []Record, limit int64) int {
	base := &recs[0]
	size := int64(HeaderSize)
	for i := range recs {
		r := &recs[i]
		d := r.Offset - base.Offset
		if i > 0 && (r.Offset <= recs[i-1].Offset || d > math.MaxInt32) {
			return i
		}
		body := recordBodySize(r, r.Timestamp-base.Timestamp, int32(d))
		size += int64(varintSize(int64(body)) + body)
		if size > limit && e.codec == None {
			return i
		}
		if size-HeaderSize > MaxBatchRecordsBytes && i > 0 {
			return i
		}
	}
	return len(recs)
}

// appendRecords appends the records of one batch, uncompressed.
func (e *Encoder) appendRecords(dst []byte, recs []Record) []byte {
	base := &recs[0]
	for i := range recs {
		r := &recs[i]
		tsDelta := r.Timestamp - base.Timestamp
		offDelta := int32(r.Offset - base.Offset)
		e.rec = kmsg.Record{
			Length:           int32(recordBodySize(r, tsDelta, offDelta)),
			TimestampDelta64: tsDelta,
			OffsetDelta:      offDelta,
			Key:              r.Key,
			Value:            r.Value,
			Headers:          r.Headers,
		}
		dst = e.rec.AppendTo(dst)
	}
	return dst
}

// appendBatch appends one batch holding recs; comp is their compressed form,
// or nil to append them uncompressed.
func (e *Encoder) appendBatch(dst []byte, recs []Record, comp []byte) []byte {
	first, last := &recs[0], &recs[len(recs)-1]
	maxTs := first.Timestamp
	for i := range recs {
		maxTs = max(maxTs, recs[i].Timestamp)
	}
	start := len(dst)
	e.batch = kmsg.RecordBatch{
		FirstOffset:          first.Offset,
		PartitionLeaderEpoch: -1,
		Magic:                2,
		LastOffsetDelta:      int32(last.Offset - first.Offset),
		FirstTimestamp:       first.Timestamp,
		MaxTimestamp:         maxTs,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           int32(len(recs)),
	}
	if comp != nil {
		e.batch.Attributes = int16(e.codec)
		e.batch.Records = comp
		dst = e.batch.AppendTo(dst)
	} else {
		// Encode the records straight into dst after the header.
		dst = e.batch.AppendTo(dst)
		dst = e.appendRecords(dst, recs)
	}
	b := dst[start:]
	binary.BigEndian.PutUint32(b[offLength:], uint32(len(b)-logOverhead))
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
	return dst
}

// recordBodySize is the encoded size of a record after its length varint.
func recordBodySize(r *Record, tsDelta int64, offDelta int32) int {
	n := 1 + varintSize(tsDelta) + varintSize(int64(offDelta)) +
		bytesSize(r.Key) + bytesSize(r.Value) + varintSize(int64(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		n += varintSize(int64(len(h.Key))) + len(h.Key) + bytesSize(h.Value)
	}
	return n
}

// bytesSize is the size of a varint-length-prefixed, nullable byte slice.
func bytesSize(b []byte) int {
	if b == nil {
		return 1 // varint -1
	}
	return varintSize(int64(len(b))) + len(b)
}

// varintSize is the size of v as a zig-zag varint.
func varintSize(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	return (bits.Len64(u|1) + 6) / 7
}
