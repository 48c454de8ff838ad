package segment

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// payloads are inputs for the codecs: empty, tiny, incompressible, and
// compressible across several blocks of every codec.
func payloads() map[string][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 300<<10)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	var text []byte
	for i := 0; len(text) < 1<<20; i++ {
		text = fmt.Appendf(text, `{"id":%d,"name":"user-%d","tags":["a","b"]}`, i, i%1000)
	}
	return map[string][]byte{
		"empty":  {},
		"byte":   {42},
		"random": random,
		"text":   text,
		"zeros":  make([]byte, 5<<20),
	}
}

// kgoCompress compresses src as Encoder does, with franz-go's compressor.
func kgoCompress(t testing.TB, codec Compression, src []byte) []byte {
	t.Helper()
	var c kgo.CompressionCodec
	switch codec {
	case Gzip:
		c = kgo.GzipCompression()
	case Snappy:
		c = kgo.SnappyCompression()
	case LZ4:
		c = kgo.Lz4Compression()
	case Zstd:
		c = kgo.ZstdCompression()
	}
	comp, err := kgo.DefaultCompressor(c)
	if err != nil {
		t.Fatal(err)
	}
	out, used := comp.Compress(new(bytes.Buffer), src)
	if used != kgo.CompressionCodecType(codec) {
		t.Fatalf("compressed with %d, want %s", used, codec)
	}
	return bytes.Clone(out)
}

// xerialFrame frames src as the xerial snappy-java library does: its header,
// then chunks of 32 KiB each preceded by its big-endian length.
func xerialFrame(src []byte) []byte {
	out := append([]byte(nil), xerialMagic...)
	out = binary.BigEndian.AppendUint32(out, 1) // version
	out = binary.BigEndian.AppendUint32(out, 1) // compatible version
	for len(src) > 0 {
		n := min(len(src), 32<<10)
		block := s2.EncodeSnappy(nil, src[:n])
		out = binary.BigEndian.AppendUint32(out, uint32(len(block)))
		out = append(out, block...)
		src = src[n:]
	}
	return out
}

// otherEncodings returns src compressed as other Kafka clients do: several
// gzip members, LZ4 frames with 64 KiB dependent blocks (Kafka's Java
// client), zstd frames without a content size (streamed) and with a
// skippable frame, snappy in xerial framing.
func otherEncodings(t testing.TB, src []byte) map[string]struct {
	codec Compression
	data  []byte
} {
	t.Helper()
	type enc = struct {
		codec Compression
		data  []byte
	}
	out := map[string]enc{}
	half := len(src) / 2

	var gz bytes.Buffer
	for _, part := range [][]byte{src[:half], src[half:]} {
		w, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
		w.Write(part)
		w.Close()
	}
	out["gzip-members"] = enc{Gzip, bytes.Clone(gz.Bytes())}

	var lz bytes.Buffer
	w := lz4.NewWriter(&lz)
	if err := w.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.ChecksumOption(true), lz4.BlockChecksumOption(true)); err != nil {
		t.Fatal(err)
	}
	w.Write(src)
	w.Close()
	w = lz4.NewWriter(&lz) // a second frame
	w.Close()
	out["lz4-64k-frames"] = enc{LZ4, bytes.Clone(lz.Bytes())}

	var zs bytes.Buffer
	zw, _ := zstd.NewWriter(&zs, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
	zw.Write(src[:half]) // a streamed frame: no content size
	zw.Close()
	zs.Write([]byte{0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 'a', 'b', 'c'}) // skippable frame
	zw.Reset(&zs)
	zw.Write(src[half:])
	zw.Close()
	out["zstd-streamed"] = enc{Zstd, bytes.Clone(zs.Bytes())}

	out["snappy-xerial"] = enc{Snappy, xerialFrame(src)}
	return out
}

func TestDecompressRoundTrip(t *testing.T) {
	kgoDec := kgo.DefaultDecompressor()
	for name, src := range payloads() {
		for _, codec := range []Compression{Gzip, Snappy, LZ4, Zstd} {
			t.Run(codec.String()+"/"+name, func(t *testing.T) {
				comp := kgoCompress(t, codec, src)
				got, err := decompress(codec, comp, decompressLimit(len(comp)))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, src) {
					t.Fatalf("got %d bytes back, want the %d compressed", len(got), len(src))
				}
			})
		}
		for kind, e := range otherEncodings(t, src) {
			t.Run(kind+"/"+name, func(t *testing.T) {
				got, err := decompress(e.codec, e.data, decompressLimit(len(e.data)))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, src) {
					t.Fatalf("got %d bytes back, want the %d compressed", len(got), len(src))
				}
				// franz-go reads them too (the encoding is what Kafka's
				// clients write, not ours alone), except an empty xerial
				// stream: the bare 16-byte header it takes for raw snappy.
				if len(src) == 0 && kind == "snappy-xerial" {
					return
				}
				if want, err := kgoDec.Decompress(e.data, kgo.CompressionCodecType(e.codec)); err != nil || !bytes.Equal(want, src) {
					t.Fatalf("franz-go: %v", err)
				}
			})
		}
	}
}

// rawBatch builds a batch whose records section is records as given
// (compressed or not per codec), with a valid CRC.
func rawBatch(codec Compression, base int64, numRecords int32, records []byte) []byte {
	return rawBatchAt(codec, base, 1700000000000, numRecords, records)
}

// rawBatchAt is rawBatch with the batch's first timestamp.
func rawBatchAt(codec Compression, base, ts int64, numRecords int32, records []byte) []byte {
	rb := kmsg.RecordBatch{
		FirstOffset: base, PartitionLeaderEpoch: -1, Magic: 2,
		Attributes: int16(codec), LastOffsetDelta: max(numRecords-1, 0),
		FirstTimestamp: ts, MaxTimestamp: ts,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1,
		NumRecords: numRecords, Records: records,
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[offLength:], uint32(len(b)-logOverhead))
	binary.BigEndian.PutUint32(b[offCRC:], crc32c(b[offAttributes:]))
	return b
}

// TestRecordsOtherEncodings reads batches compressed as Kafka's Java client
// and others do, through Reader and Records.
func TestRecordsOtherEncodings(t *testing.T) {
	recs := sampleRecords(3000, 7)
	e, _ := NewEncoder(None)
	raw := e.appendRecords(nil, recs)
	for kind, enc := range otherEncodings(t, raw) {
		t.Run(kind, func(t *testing.T) {
			data := rawBatchAt(enc.codec, recs[0].Offset, recs[0].Timestamp, int32(len(recs)), enc.data)
			if got := readAll(t, data); !reflect.DeepEqual(got, recs) {
				t.Fatal("records differ")
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// gzipBomb is n bytes of zeros as gzip members of 1 MiB each: the best
// deflate can do (1:1000), built without holding the zeros.
func gzipBomb(n int64) []byte {
	var member bytes.Buffer
	w, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	io.CopyN(w, zeros{}, 1<<20)
	w.Close()
	return bytes.Repeat(member.Bytes(), int(n>>20))
}

// zstdBomb is n bytes of zeros as one streamed zstd frame.
func zstdBomb(t testing.TB, n int64) []byte {
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(w, zeros{}, n); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// allocated returns how many bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestDecompressionBombs reads batches of a few kilobytes to a megabyte that
// decompress to a gigabyte: Records refuses them as corrupt, having
// allocated no more than the limit allows.
func TestDecompressionBombs(t *testing.T) {
	const size = 1 << 30
	bombs := []struct {
		name  string
		codec Compression
		data  []byte
	}{
		{"zstd", Zstd, zstdBomb(t, size)},
		{"gzip", Gzip, gzipBomb(size)},
		// A snappy block that says it holds 4 GiB - 1, and a xerial chunk
		// that says so.
		{"snappy", Snappy, []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0}},
		{"snappy-xerial", Snappy, append(bytes.Clone(xerialMagic), 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 6, 0xff, 0xff, 0xff, 0xff, 0x0f, 0)},
	}
	for _, b := range bombs {
		t.Run(b.name, func(t *testing.T) {
			if raceEnabled && b.codec == Gzip {
				t.Skip("inflating 256 MiB takes seconds under the race detector; TestDecompressLimit checks gzip stops at the limit")
			}
			data := rawBatch(b.codec, 0, 1, b.data)
			var err error
			alloc := allocated(func() {
				batch, nerr := NewReader(bytes.NewReader(data)).Next()
				if nerr != nil {
					t.Fatal(nerr)
				}
				_, err = batch.Records()
			})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%d bytes of %s: %v, want ErrCorrupt", len(b.data), b.codec, err)
			}
			// The reader holds the batch; decompressing may take up to
			// twice the limit while its buffer doubles.
			if max := 2*uint64(len(data)) + 2*uint64(decompressLimit(len(b.data))) + 4<<20; alloc > max {
				t.Fatalf("allocated %d bytes, want at most %d", alloc, max)
			}
			t.Logf("%d bytes: %v; %d MiB allocated", len(b.data), err, alloc>>20)
		})
	}
}

// TestDecompressLimit checks each codec stops at the limit, whatever the
// ratio. LZ4 has no way to exceed the ratio: only the limit bounds it.
func TestDecompressLimit(t *testing.T) {
	src := make([]byte, 4<<20)
	for _, codec := range []Compression{Gzip, Snappy, LZ4, Zstd} {
		comp := kgoCompress(t, codec, src)
		for _, limit := range []int{len(src) - 1, len(src) / 3, 0} {
			var err error
			alloc := allocated(func() { _, err = decompress(codec, comp, limit) })
			var tl errTooLarge
			if !errors.As(err, &tl) {
				t.Fatalf("%s, limit %d: %v, want errTooLarge", codec, limit, err)
			}
			// LZ4 takes two pooled buffers of its block size (4 MiB).
			if alloc > 2*uint64(limit)+10<<20 {
				t.Fatalf("%s, limit %d: allocated %d", codec, limit, alloc)
			}
		}
		if got, err := decompress(codec, comp, len(src)); err != nil || len(got) != len(src) {
			t.Fatalf("%s, limit %d: %d bytes, %v", codec, len(src), len(got), err)
		}
	}
}

func TestDecompressLimits(t *testing.T) {
	for _, c := range []struct{ n, want int }{
		{0, 16 << 20},
		{100, 16 << 20},
		{16 << 10, 16 << 20},
		{64 << 10, 64 << 20},
		{256 << 10, 256 << 20},
		{1 << 30, 256 << 20},
	} {
		if got := decompressLimit(c.n); got != c.want {
			t.Errorf("decompressLimit(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

// zstdFrame is a zstd frame header stating fcs (when not negative)
// followed by blocks.
func zstdFrame(fcs int64, blocks ...[]byte) []byte {
	out := []byte{0x28, 0xb5, 0x2f, 0xfd}
	if fcs >= 0 {
		out = append(out, 3<<6, 0x70) // 8-byte FCS, 128 MiB window
		out = binary.LittleEndian.AppendUint64(out, uint64(fcs))
	} else {
		out = append(out, 0, 0x70)
	}
	for _, b := range blocks {
		out = append(out, b...)
	}
	return out
}

// zstdRLE is a zstd RLE block of n copies of c.
func zstdRLE(n int, c byte, last bool) []byte {
	h := uint32(n)<<3 | 1<<1
	if last {
		h |= 1
	}
	return []byte{byte(h), byte(h >> 8), byte(h >> 16), c}
}

func TestZstdHostileSizes(t *testing.T) {
	var blocks [][]byte
	for range 200 {
		blocks = append(blocks, zstdRLE(128<<10, 0, false))
	}
	blocks = append(blocks, zstdRLE(1, 0, true))
	for _, c := range []struct {
		name  string
		data  []byte
		large bool // refused as too large, not as invalid
	}{
		{"states a terabyte", zstdFrame(1 << 40), true},
		{"states 16 MiB, holds 1 byte", zstdFrame(16<<20, zstdRLE(1, 'x', true)), false},
		{"states 1 byte, holds 2", zstdFrame(1, zstdRLE(2, 'x', true)), false},
		{"25 MiB of RLE blocks", zstdFrame(-1, blocks...), true},
		{"25 MiB of RLE blocks, stated", zstdFrame(200*128<<10+1, blocks...), true},
		{"truncated", zstdFrame(-1, zstdRLE(10, 'x', true))[:9], false},
		{"reserved block", zstdFrame(-1, []byte{7, 0, 0}), false},
		{"short skippable", []byte{0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 'a'}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var err error
			alloc := allocated(func() { _, err = decompress(Zstd, c.data, decompressLimit(len(c.data))) })
			var tl errTooLarge
			if err == nil || errors.As(err, &tl) != c.large {
				t.Fatalf("%v, want too large %v", err, c.large)
			}
			if alloc > 1<<20 {
				t.Fatalf("allocated %d bytes", alloc)
			}
		})
	}
	// The same RLE blocks under the limit decode.
	data := zstdFrame(-1, zstdRLE(128<<10, 'a', false), zstdRLE(5, 'b', true))
	got, err := decompress(Zstd, data, decompressLimit(len(data)))
	if err != nil || len(got) != 128<<10+5 || got[0] != 'a' || got[len(got)-1] != 'b' {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
}

// record encodes one record body the way a hostile writer might.
func record(body ...[]byte) []byte {
	var b []byte
	for _, p := range body {
		b = append(b, p...)
	}
	return append(binary.AppendVarint(nil, int64(len(b))), b...)
}

func varint(v int64) []byte { return binary.AppendVarint(nil, v) }

func TestRecordsHostileCounts(t *testing.T) {
	good := record([]byte{0}, varint(0), varint(0), varint(-1), varint(1), []byte("v"), varint(1), varint(1), []byte("k"), varint(-1))
	for _, c := range []struct {
		name  string
		codec Compression
		n     int32
		data  []byte
	}{
		{"count beyond the bytes", None, math.MaxInt32, good},
		{"count beyond the limit", Zstd, math.MaxInt32, kgoCompress(t, Zstd, good)},
		{"count one too many", None, 2, good},
		{"count one too few", None, 0, good},
		{"header count beyond the bytes", None, 1, record([]byte{0}, varint(0), varint(0), varint(-1), varint(-1), varint(math.MaxInt64))},
		{"header count of a 2-byte header plus one", None, 1, record([]byte{0}, varint(0), varint(0), varint(-1), varint(-1), varint(2), varint(0), varint(-1))},
		{"null header key", None, 1, record([]byte{0}, varint(0), varint(0), varint(-1), varint(-1), varint(1), varint(-1), varint(-1))},
		{"record length below the minimum", None, 1, append(varint(5), 0, 0, 0, 1, 1)},
		{"negative record length", None, 1, append(varint(-3), good...)},
		{"key longer than the record", None, 1, record([]byte{0}, varint(0), varint(0), varint(100), varint(-1), varint(0))},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := rawBatch(c.codec, 0, c.n, c.data)
			b, err := NewReader(bytes.NewReader(data)).Next()
			if err != nil {
				t.Fatal(err)
			}
			var recs []Record
			alloc := allocated(func() { recs, err = b.Records() })
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v, %d records; want ErrCorrupt", err, len(recs))
			}
			if alloc > 1<<20 {
				t.Fatalf("allocated %d bytes", alloc)
			}
		})
	}
	b, err := NewReader(bytes.NewReader(rawBatch(None, 5, 1, good))).Next()
	if err != nil {
		t.Fatal(err)
	}
	recs, err := b.Records()
	want := []Record{{Offset: 5, Timestamp: 1700000000000, Value: []byte("v"), Headers: []Header{{Key: "k"}}}}
	if err != nil || !reflect.DeepEqual(recs, want) {
		t.Fatalf("%+v, %v", recs, err)
	}
}

// TestHeaderChecks checks Next and ReadSpan refuse the same impossible
// headers.
func TestHeaderChecks(t *testing.T) {
	good := encodeAll(t, None, sampleRecords(3, 10), 1<<20)
	for _, c := range []struct {
		name string
		edit func(b []byte)
	}{
		{"magic 1", func(b []byte) { b[offMagic] = 1 }},
		{"negative base offset", func(b []byte) { binary.BigEndian.PutUint64(b[offBaseOffset:], 1<<63) }},
		{"negative last offset delta", func(b []byte) { binary.BigEndian.PutUint32(b[offLastOffsetDelta:], 1<<31) }},
		{"last offset overflows", func(b []byte) { binary.BigEndian.PutUint64(b[offBaseOffset:], math.MaxInt64-1) }},
		{"negative record count", func(b []byte) { binary.BigEndian.PutUint32(b[offNumRecords:], 1<<31) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := bytes.Clone(good)
			c.edit(bad)
			binary.BigEndian.PutUint32(bad[offCRC:], crc32c(bad[offAttributes:]))
			if _, err := NewReader(bytes.NewReader(bad)).Next(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Next: %v", err)
			}
			if s, err := ReadSpan(bytes.NewReader(bad), int64(len(bad))); !errors.Is(err, ErrCorrupt) || s.Batches != 0 {
				t.Fatalf("ReadSpan: %+v, %v", s, err)
			}
		})
	}
}

// eofReaderAt returns io.EOF with a read that reaches the end, as
// io.ReaderAt allows.
type eofReaderAt struct{ b []byte }

func (r eofReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r.b)) {
		return 0, io.EOF
	}
	n := copy(p, r.b[off:])
	if int(off)+n == len(r.b) {
		return n, io.EOF
	}
	return n, nil
}

func TestReadSpanEOFWithFullRead(t *testing.T) {
	// A last batch of no records is a bare header: reading it reaches the
	// end of the file.
	data := append(encodeAll(t, None, sampleRecords(3, 0), 1<<20), rawBatch(None, 3, 0, nil)...)
	want, err := ReadSpan(bytes.NewReader(data), int64(len(data)))
	if err != nil || want.Batches != 2 {
		t.Fatalf("%+v, %v", want, err)
	}
	got, err := ReadSpan(eofReaderAt{data}, int64(len(data)))
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%+v, %v; want %+v", got, err, want)
	}
}

// TestRecordsConcurrent reads with several Readers at once: the pooled
// decoders must not be shared (run with -race).
func TestRecordsConcurrent(t *testing.T) {
	recs := sampleRecords(300, 0)
	files := map[Compression][]byte{}
	for _, c := range []Compression{Gzip, Snappy, LZ4, Zstd} {
		files[c] = encodeAll(t, c, recs, 4096)
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			for i := range 20 {
				c := Compression(1 + (g+i)%4)
				r := NewReader(bytes.NewReader(files[c]))
				var got []Record
				for {
					b, err := r.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						errs <- err
						return
					}
					rs, err := b.Records()
					if err != nil {
						errs <- err
						return
					}
					got = append(got, rs...)
				}
				if !reflect.DeepEqual(got, recs) {
					errs <- fmt.Errorf("%s: records differ", c)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
