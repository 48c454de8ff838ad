package segment

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// MaxBatchDecompressed bounds the decompressed records of one batch. The
// encoder never writes more than MaxBatchRecordsBytes of records in a batch
// unless a single record is larger, so only a batch holding one record of
// hundreds of megabytes comes near it.
const MaxBatchDecompressed = 256 << 20

// MaxDecompressionRatio bounds how much larger than their compressed form a
// batch's records may be once they are above 16 MiB: a batch of n compressed
// bytes never decompresses to more than max(16 MiB, n*MaxDecompressionRatio),
// nor to more than MaxBatchDecompressed. A few kilobytes of hostile input
// therefore never cost more than 16 MiB. Ordinary data compresses 2 to 20
// times; only a single huge record of one repeated byte goes above the ratio.
const MaxDecompressionRatio = 1024

// minDecompressLimit is the decompressed size any batch may reach, whatever
// its ratio: sixteen times what the encoder puts in a batch of several
// records.
const minDecompressLimit = 16 * MaxBatchRecordsBytes

// decompressLimit is the most that n compressed bytes may decompress to.
func decompressLimit(n int) int {
	return int(min(MaxBatchDecompressed, max(minDecompressLimit, int64(n)*MaxDecompressionRatio)))
}

// errTooLarge reports records that decompress to more than the limit.
type errTooLarge struct{ limit int }

func (e errTooLarge) Error() string {
	return fmt.Sprintf("records decompress to more than %d bytes", e.limit)
}

// decompress returns src decompressed with codec in a new slice the caller
// owns, never more than limit bytes: beyond that it returns an errTooLarge
// without having allocated much more than limit bytes. Decoders come from
// pools, so decompressing is safe for concurrent use.
func decompress(codec Compression, src []byte, limit int) ([]byte, error) {
	switch codec {
	case Gzip:
		return gunzip(src, limit)
	case Snappy:
		if len(src) >= 16 && bytes.HasPrefix(src, xerialMagic) {
			return unxerial(src, limit)
		}
		return unsnappy(nil, src, limit)
	case LZ4:
		return unlz4(src, limit)
	case Zstd:
		return unzstd(src, limit)
	default:
		return nil, fmt.Errorf("unknown compression codec %d", codec)
	}
}

// readAllBounded reads r to its end into a new slice, failing once it has
// more than limit bytes. With a hint (a size the input states, checked
// against what its codec can reach) it reads into a slice of that capacity,
// exact when the hint is right. Without, it reads into a pooled scratch
// buffer and returns an exact copy: one copy instead of a slice that grows
// by doubling.
func readAllBounded(r io.Reader, hint, limit int) ([]byte, error) {
	if hint > 0 {
		buf, err := readBounded(r, make([]byte, 0, min(hint, limit)), limit)
		if err != nil {
			return nil, err
		}
		return fit(buf), nil
	}
	p, _ := scratchBufs.Get().(*[]byte)
	if p == nil {
		p = new([]byte)
	}
	buf, err := readBounded(r, (*p)[:0], limit)
	if cap(buf) <= maxScratch {
		*p = buf[:0]
		defer scratchBufs.Put(p)
	}
	if err != nil {
		return nil, err
	}
	return append(make([]byte, 0, len(buf)), buf...), nil
}

// scratchBufs holds buffers of at most maxScratch bytes for readAllBounded.
var scratchBufs sync.Pool // of *[]byte

const maxScratch = 8 << 20

// readBounded appends r to its end to buf, failing once buf holds more than
// limit bytes. buf grows by doubling, never beyond limit.
func readBounded(r io.Reader, buf []byte, limit int) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			// Full: look for one more byte before growing, so that an
			// exact capacity costs no second allocation.
			var one [1]byte
			n, err := io.ReadFull(r, one[:])
			if n > 0 {
				if len(buf) >= limit {
					return nil, errTooLarge{limit}
				}
				next := min(max(2*cap(buf), 64<<10), limit)
				buf = append(make([]byte, 0, next), buf...)
				buf = append(buf, one[0])
				continue
			}
			if err == io.EOF {
				return buf, nil
			}
			return nil, err
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// fit returns b, or a copy of it without its unused capacity when that is
// large: the records keep the whole array alive.
func fit(b []byte) []byte {
	if cap(b)-len(b) <= len(b)/8+4<<10 {
		return b
	}
	return append(make([]byte, 0, len(b)), b...)
}

// gzipReader is a pooled gzip decoder with the reader of its input.
type gzipReader struct {
	src bytes.Reader
	zr  gzip.Reader
}

var gzipReaders = sync.Pool{New: func() any { return new(gzipReader) }}

// gunzip decompresses gzip (RFC 1952), several members one after the other
// included, as Kafka's Java client reads it.
func gunzip(src []byte, limit int) ([]byte, error) {
	g := gzipReaders.Get().(*gzipReader)
	defer gzipReaders.Put(g)
	defer g.src.Reset(nil) // keep no reference to src in the pool
	g.src.Reset(src)
	if err := g.zr.Reset(&g.src); err != nil {
		return nil, err
	}
	// The trailer holds the size of the last member, the whole size when
	// there is one member. Trust it only as far as deflate can compress
	// (1032:1), so that a hostile trailer cannot make us allocate.
	hint := 0
	if len(src) >= 18 {
		hint = int(min(int64(binary.LittleEndian.Uint32(src[len(src)-4:])), 1032*int64(len(src))))
	}
	return readAllBounded(&g.zr, hint, limit)
}

// xerialMagic starts the framing the xerial snappy-java library (Kafka's
// Java client) writes: magic, version and compatible version, then chunks of
// a big-endian int32 length and a raw snappy block. franz-go detects it the
// same way.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

// unxerial decompresses xerial-framed snappy.
func unxerial(src []byte, limit int) ([]byte, error) {
	src = src[16:]
	var out []byte
	for len(src) > 0 {
		if len(src) < 4 {
			return nil, errors.New("xerial snappy: truncated chunk length")
		}
		n := int64(int32(binary.BigEndian.Uint32(src)))
		src = src[4:]
		if n < 0 || n > int64(len(src)) {
			return nil, errors.New("xerial snappy: chunk length out of range")
		}
		var err error
		if out, err = unsnappy(out, src[:n], limit); err != nil {
			return nil, err
		}
		src = src[n:]
	}
	if out == nil {
		out = []byte{}
	}
	return fit(out), nil
}

// unsnappy appends the decoding of the raw snappy block src to dst, failing
// when dst would exceed limit bytes.
func unsnappy(dst, src []byte, limit int) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return nil, err
	}
	// Snappy's best element is a 3-byte copy of 64 bytes: a block claiming
	// more than 64/3 bytes per byte lies, whatever the limit.
	if int64(n) > int64(len(src))*64/3 {
		return nil, fmt.Errorf("snappy block of %d bytes claims %d", len(src), n)
	}
	if n > limit-len(dst) {
		return nil, errTooLarge{limit}
	}
	if cap(dst)-len(dst) < n {
		dst = append(make([]byte, 0, max(len(dst)+n, min(2*cap(dst), limit))), dst...)
	}
	if _, err := s2.Decode(dst[len(dst):len(dst)+n], src); err != nil {
		return nil, err
	}
	return dst[:len(dst)+n], nil
}

// unlz4 decompresses the LZ4 frame format, several frames one after the
// other included. Its readers are not pooled: one keeps the last 64 KiB it
// decoded as a dictionary for the next frame, even after Reset, so a pooled
// reader would let a hostile batch read another batch's records. A new one
// costs two small allocations; the block buffers are pooled by lz4.
func unlz4(src []byte, limit int) ([]byte, error) {
	return readAllBounded(lz4.NewReader(bytes.NewReader(src)), 0, limit)
}

// zstdDecoders holds synchronous decoders (no goroutines, nothing to
// close) for DecodeAll.
var zstdDecoders = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(MaxBatchDecompressed),
	)
	if err != nil {
		panic(err) // the options are constant
	}
	return d
}}

// unzstd decompresses one or more zstd frames, skippable frames included.
// It first walks the frame and block headers to learn the most they can
// decompress to, and refuses them past limit without decoding anything;
// otherwise it decodes into a slice of that size, which is exact when the
// frames state their size (franz-go's encoder always does).
func unzstd(src []byte, limit int) ([]byte, error) {
	size, err := zstdSize(src, limit)
	if err != nil {
		return nil, err
	}
	d := zstdDecoders.Get().(*zstd.Decoder)
	defer zstdDecoders.Put(d)
	// Never an empty capacity: DecodeAll would allocate its own guess.
	out, err := d.DecodeAll(src, make([]byte, 0, max(size, 1)))
	if err != nil {
		return nil, err
	}
	if len(out) > limit { // cannot happen: zstdSize is an upper bound
		return nil, errTooLarge{limit}
	}
	return out, nil
}

// zstdMaxBlock is the most a zstd block decompresses to.
const zstdMaxBlock = 128 << 10

var errShort = errors.New("zstd: frame ends early")

// zstdSize returns an upper bound of what the zstd frames in src decompress
// to, from their headers alone: a frame's content size when it states one,
// else the sum of its blocks' sizes (a compressed block counts as the most a
// block holds). It fails on frames that end early or whose stated size they
// cannot hold, and with errTooLarge as soon as the bound exceeds limit.
func zstdSize(src []byte, limit int) (int, error) {
	total := uint64(0)
	for len(src) > 0 {
		var h zstd.Header
		rest, err := h.DecodeAndStrip(src)
		if err != nil {
			return 0, fmt.Errorf("zstd: %w", err)
		}
		if h.Skippable {
			if uint64(h.SkippableSize) > uint64(len(rest)) {
				return 0, errShort
			}
			src = rest[h.SkippableSize:]
			continue
		}
		if h.HasFCS && h.FrameContentSize > uint64(limit)-total {
			return 0, errTooLarge{limit}
		}
		window := h.WindowSize
		if h.SingleSegment {
			window = h.FrameContentSize
		}
		blockMax := min(max(window, 1<<10), zstdMaxBlock)
		frame := uint64(0)
		for last := false; !last; {
			if len(rest) < 3 {
				return 0, errShort
			}
			bh := uint64(rest[0]) | uint64(rest[1])<<8 | uint64(rest[2])<<16
			rest = rest[3:]
			last = bh&1 != 0
			n := bh >> 3
			switch (bh >> 1) & 3 {
			case 0: // raw: n bytes as they are
				if n > uint64(len(rest)) {
					return 0, errShort
				}
				rest = rest[n:]
				frame += n
			case 1: // RLE: one byte n times
				if len(rest) < 1 {
					return 0, errShort
				}
				rest = rest[1:]
				frame += n
			case 2: // compressed: n bytes
				if n > uint64(len(rest)) {
					return 0, errShort
				}
				rest = rest[n:]
				frame += blockMax
			default:
				return 0, errors.New("zstd: reserved block type")
			}
			if !h.HasFCS && total+frame > uint64(limit) {
				return 0, errTooLarge{limit}
			}
		}
		if h.HasFCS {
			if h.FrameContentSize > frame {
				return 0, fmt.Errorf("zstd: frame of at most %d bytes states %d", frame, h.FrameContentSize)
			}
			frame = h.FrameContentSize
		}
		if h.HasCheckSum {
			if len(rest) < 4 {
				return 0, errShort
			}
			rest = rest[4:]
		}
		if total += frame; total > uint64(limit) {
			return 0, errTooLarge{limit}
		}
		src = rest
	}
	return int(total), nil
}
