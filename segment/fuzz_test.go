package segment

// Fuzz targets. A short run of each, as CI does it:
//
//	go test -run x -fuzz FuzzReader -fuzztime 10s ./segment/
//	go test -run x -fuzz FuzzReadSpan -fuzztime 10s ./segment/
//	go test -run x -fuzz FuzzRoundTrip -fuzztime 10s ./segment/
//
// A plain go test runs every seed below and every input checked in under
// testdata/fuzz. To rewrite the named FuzzReader seeds checked in there:
//
//	go test ./segment/ -run TestFuzzReaderCorpus -args -update-corpus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var codecs = []Compression{None, Gzip, Snappy, LZ4, Zstd}

// seedFiles are real files: every codec, null and empty keys and values,
// headers with null values and duplicates, several batches each.
func seedFiles(t testing.TB) map[string][]byte {
	recs := sampleRecords(12, 100)
	out := map[string][]byte{}
	for _, c := range codecs {
		out["real-"+c.String()] = encodeAll(t, c, recs, 700)
	}
	// As other clients compress: xerial snappy, gzip members, LZ4 frames
	// of 64 KiB blocks, streamed zstd frames.
	e, _ := NewEncoder(None)
	raw := e.appendRecords(nil, recs)
	for kind, enc := range otherEncodings(t, raw) {
		out["real-"+kind] = rawBatchAt(enc.codec, recs[0].Offset, recs[0].Timestamp, int32(len(recs)), enc.data)
	}
	return out
}

// hostileSeeds are files a torn write, bit rot or an attacker could leave.
// Their names say how the reader must fail on them (see readOutcome).
func hostileSeeds(t testing.TB) map[string][]byte {
	recs := sampleRecords(5, 100)
	plain := encodeAll(t, None, recs, 1<<20)
	zstd := encodeAll(t, Zstd, recs, 1<<20)
	out := map[string][]byte{
		"ok-two-codecs": append(bytes.Clone(plain), zstd...),
		"torn-header":   plain[:20],
		"torn-body":     plain[:len(plain)-3],
		"torn-zstd":     append(bytes.Clone(plain), zstd[:len(zstd)-1]...),
	}

	// A flipped bit in the records: the CRC no longer matches.
	flipped := bytes.Clone(zstd)
	flipped[len(flipped)-5] ^= 0x10
	out["corrupt-next-flipped-crc"] = flipped

	// Length fields: beyond any batch, and in range but far beyond the file.
	huge := bytes.Clone(plain)
	binary.BigEndian.PutUint32(huge[offLength:], math.MaxInt32)
	out["corrupt-next-hostile-length"] = huge
	long := bytes.Clone(plain)
	binary.BigEndian.PutUint32(long[offLength:], maxBatchLength)
	out["torn-hostile-length"] = long
	neg := bytes.Clone(plain)
	binary.BigEndian.PutUint32(neg[offLength:], 0xfffffff0)
	out["corrupt-next-negative-length"] = neg

	// Record counts with a valid CRC: the reader must not allocate for them.
	good := record([]byte{0}, varint(0), varint(0), varint(-1), varint(1), []byte("v"), varint(1), varint(1), []byte("k"), varint(-1))
	out["corrupt-records-hostile-record-count"] = rawBatch(None, 0, math.MaxInt32, good)
	out["corrupt-records-hostile-record-count-zstd"] = rawBatch(Zstd, 0, 1<<24, kgoCompress(t, Zstd, good))
	out["corrupt-next-negative-record-count"] = rawBatch(None, 0, -1, good)
	// Header counts: beyond the bytes of the record, and beyond 2 bytes a
	// header.
	out["corrupt-records-hostile-header-count"] = rawBatch(None, 0, 1,
		record([]byte{0}, varint(0), varint(0), varint(-1), varint(-1), varint(math.MaxInt64>>1)))
	out["corrupt-records-header-count-past-bytes"] = rawBatch(None, 0, 1,
		record([]byte{0}, varint(0), varint(0), varint(-1), varint(-1), varint(3), varint(0), varint(-1), varint(0), varint(-1)))

	// 16 MiB and 1 byte of zeros as 530 bytes of zstd, and a snappy block
	// that claims 4 GiB.
	var blocks [][]byte
	for range 128 {
		blocks = append(blocks, zstdRLE(128<<10, 0, false))
	}
	blocks = append(blocks, zstdRLE(1, 0, true))
	out["corrupt-records-zstd-bomb"] = rawBatch(Zstd, 0, 1, zstdFrame(-1, blocks...))
	out["corrupt-records-snappy-claim"] = rawBatch(Snappy, 0, 1, []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0})
	out["corrupt-records-unknown-codec"] = rawBatch(6, 0, 1, good)
	return out
}

// readOutcome reads data to its end with Reader and says how it ended: "ok",
// "torn", "corrupt-next" (Next refused a batch) or "corrupt-records"
// (Records refused one).
func readOutcome(data []byte) string {
	r := NewReader(bytes.NewReader(data))
	for {
		b, err := r.Next()
		switch {
		case err == io.EOF:
			return "ok"
		case errors.Is(err, ErrTorn):
			return "torn"
		case err != nil:
			return "corrupt-next"
		}
		if _, err := b.Records(); err != nil {
			return "corrupt-records"
		}
	}
}

func TestHostileSeeds(t *testing.T) {
	for name, data := range hostileSeeds(t) {
		if got := readOutcome(data); !strings.HasPrefix(name, got+"-") {
			t.Errorf("%s: %s", name, got)
		}
	}
	for name, data := range seedFiles(t) {
		if got := readOutcome(data); got != "ok" {
			t.Errorf("%s: %s", name, got)
		}
	}
}

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the named seeds under testdata/fuzz/FuzzReader")

// corpusDir holds the checked-in FuzzReader inputs: the named seeds, and
// every crasher fuzzing found (named by their hash).
var corpusDir = filepath.Join("testdata", "fuzz", "FuzzReader")

// TestFuzzReaderCorpus checks the named seeds checked in under
// testdata/fuzz/FuzzReader still end as their names say, and rewrites them
// with -update-corpus.
func TestFuzzReaderCorpus(t *testing.T) {
	if *updateCorpus {
		if err := os.MkdirAll(corpusDir, 0o755); err != nil {
			t.Fatal(err)
		}
		seeds := hostileSeeds(t)
		seeds["ok-real-none"] = seedFiles(t)["real-none"]
		seeds["ok-real-zstd"] = seedFiles(t)["real-zstd"]
		for name, data := range seeds {
			if err := os.WriteFile(filepath.Join(corpusDir, name), marshalCorpus(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	entries, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	named := 0
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(corpusDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		in, err := unmarshalCorpus(data)
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		for _, outcome := range []string{"ok", "torn", "corrupt-next", "corrupt-records"} {
			if strings.HasPrefix(e.Name(), outcome+"-") {
				named++
				if got := readOutcome(in); got != outcome && !strings.HasPrefix(e.Name(), got+"-") {
					t.Errorf("%s: %s", e.Name(), got)
				}
			}
		}
	}
	if named < 6 {
		t.Fatalf("%d named seeds in %s; run with -update-corpus", named, corpusDir)
	}
}

func marshalCorpus(data []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
}

func unmarshalCorpus(file []byte) ([]byte, error) {
	s, ok := strings.CutPrefix(string(file), "go test fuzz v1\n[]byte(")
	if !ok {
		return nil, errors.New("not a one-[]byte corpus file")
	}
	s, ok = strings.CutSuffix(strings.TrimSpace(s), ")")
	if !ok {
		return nil, errors.New("not a one-[]byte corpus file")
	}
	u, err := strconv.Unquote(s)
	return []byte(u), err
}

// heapAllocated is the bytes allocated so far, all goroutines included.
func heapAllocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// checkAlloc fails t when f allocates more than max bytes.
func checkAlloc(t *testing.T, what string, max uint64, f func()) {
	t.Helper()
	before := heapAllocated()
	f()
	if got := heapAllocated() - before; got > max {
		t.Fatalf("%s allocated %d bytes, want at most %d", what, got, max)
	}
}

func FuzzReader(f *testing.F) {
	for _, seeds := range []map[string][]byte{seedFiles(f), hostileSeeds(f)} {
		for _, name := range slices.Sorted(maps.Keys(seeds)) {
			f.Add(seeds[name])
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRead(t, data)
		// Mutations seldom keep a CRC right: check the records and the
		// codecs behind it with the CRCs made right.
		if fixed := fixCRCs(data); !bytes.Equal(fixed, data) {
			checkRead(t, fixed)
		}
	})
}

// fixCRCs returns data with the CRC of every batch its length fields frame
// made right.
func fixCRCs(data []byte) []byte {
	data = bytes.Clone(data)
	for pos := 0; len(data)-pos >= HeaderSize; {
		length := int(int32(binary.BigEndian.Uint32(data[pos+offLength:])))
		if length < HeaderSize-logOverhead || length > len(data)-pos-logOverhead {
			break
		}
		b := data[pos : pos+logOverhead+length]
		binary.BigEndian.PutUint32(b[offCRC:], crc32c(b[offAttributes:]))
		pos += len(b)
	}
	return data
}

// checkRead reads data with Reader, to its end or its first error, checking
// each batch and its records, what the reader allocates, and that ReadSpan
// agrees.
func checkRead(t *testing.T, data []byte) {
	span, spanErr := ReadSpan(bytes.NewReader(data), int64(len(data)))
	r := NewReader(bytes.NewReader(data))
	var pos int64
	for batches := 0; ; batches++ {
		var b *Batch
		var err error
		// Next reads what the file holds, up to 1 MiB ahead of it.
		checkAlloc(t, "Next", 2*uint64(len(data))+3<<20, func() { b, err = r.Next() })
		if err == io.EOF {
			if pos != int64(len(data)) {
				t.Fatalf("io.EOF at byte %d of %d", pos, len(data))
			}
			// ReadSpan checks less: it accepts whatever Next does.
			if spanErr != nil || span.Batches != batches || span.Size != pos {
				t.Fatalf("Next read %d batches, %d bytes; ReadSpan: %+v, %v", batches, pos, span, spanErr)
			}
			return
		}
		if err != nil {
			var be *BatchError
			if !errors.Is(err, ErrTorn) && !errors.Is(err, ErrCorrupt) || !errors.As(err, &be) || be.Position != pos {
				t.Fatalf("Next at byte %d: %v", pos, err)
			}
			if span.Batches < batches || span.Size < pos {
				t.Fatalf("Next read %d batches, %d bytes; ReadSpan: %+v", batches, pos, span)
			}
			return
		}
		if b.Position != pos || b.Size < HeaderSize || pos+int64(b.Size) > int64(len(data)) ||
			!bytes.Equal(b.Raw(), data[pos:pos+int64(b.Size)]) {
			t.Fatalf("batch at byte %d: position %d, size %d", pos, b.Position, b.Size)
		}
		if b.NumRecords < 0 || b.BaseOffset < 0 || b.LastOffset < b.BaseOffset {
			t.Fatalf("batch at byte %d: %d records, offsets %d to %d", pos, b.NumRecords, b.BaseOffset, b.LastOffset)
		}
		var recs []Record
		// Decompressing takes at most twice the limit while its
		// buffer grows, Record and Header values at most the limit,
		// header keys at most the records' bytes; the codecs' own
		// buffers (LZ4's are 4 MiB) come on top.
		limit := uint64(decompressLimit(b.Size - HeaderSize))
		checkAlloc(t, "Records", 4*limit+16<<20, func() { recs, err = b.Records() })
		if err != nil {
			var be *BatchError
			if !errors.Is(err, ErrCorrupt) || !errors.As(err, &be) || be.Position != pos {
				t.Fatalf("Records at byte %d: %v", pos, err)
			}
		} else if len(recs) != int(b.NumRecords) {
			t.Fatalf("batch at byte %d: %d records, header says %d", pos, len(recs), b.NumRecords)
		}
		pos += int64(b.Size)
	}
}

func FuzzReadSpan(f *testing.F) {
	for _, seeds := range []map[string][]byte{seedFiles(f), hostileSeeds(f)} {
		for _, name := range slices.Sorted(maps.Keys(seeds)) {
			f.Add(seeds[name], int64(len(seeds[name])))
			f.Add(seeds[name], int64(len(seeds[name])/2))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, size int64) {
		if size < 0 || size > int64(len(data)) {
			size = int64(len(data))
		}
		span, err := ReadSpan(bytes.NewReader(data), size)
		if span.Size < 0 || span.Size > size {
			t.Fatalf("span of %d bytes in %d", span.Size, size)
		}
		if err == nil && span.Size != size {
			t.Fatalf("no error, span of %d bytes in %d", span.Size, size)
		}
		if err != nil {
			var be *BatchError
			if !errors.Is(err, ErrTorn) && !errors.Is(err, ErrCorrupt) || !errors.As(err, &be) || be.Position != span.Size {
				t.Fatalf("span of %d bytes: %v", span.Size, err)
			}
		}
		if span.Batches < 0 || int64(span.Batches)*HeaderSize > span.Size || span.Records < 0 ||
			span.Records > int64(span.Batches)*math.MaxInt32 {
			t.Fatalf("%+v", span)
		}
		if (span.Batches == 0) != (len(span.Ranges) == 0) || len(span.Ranges) > span.Batches {
			t.Fatalf("%d batches, %d ranges", span.Batches, len(span.Ranges))
		}
		for i, r := range span.Ranges {
			if r.First < 0 || r.Last < r.First || i == 0 && r.First != span.FirstOffset || i == len(span.Ranges)-1 && r.Last != span.LastOffset {
				t.Fatalf("range %d of %+v", i, span)
			}
		}
		// A ReaderAt may report io.EOF with the read that reaches the end.
		if s2, err2 := ReadSpan(eofReaderAt{data[:size]}, size); !reflect.DeepEqual(s2, span) || (err2 == nil) != (err == nil) {
			t.Fatalf("through a ReaderAt returning io.EOF: %+v, %v; want %+v, %v", s2, err2, span, err)
		}
		// The span's bytes alone are a file with the same span.
		if s2, err2 := ReadSpan(bytes.NewReader(data), span.Size); err2 != nil || !reflect.DeepEqual(s2, span) {
			t.Fatalf("cut at %d bytes: %+v, %v; want %+v", span.Size, s2, err2, span)
		}
	})
}

// recordsFrom turns fuzzer bytes into records with strictly increasing
// offsets from base: keys, values, headers, null or empty, timestamps near
// ts or anywhere.
func recordsFrom(spec []byte, base, ts int64) []Record {
	next := func() byte {
		if len(spec) == 0 {
			return 0
		}
		b := spec[0]
		spec = spec[1:]
		return b
	}
	take := func() []byte {
		n := min(int(next()%80), len(spec))
		b := bytes.Clone(spec[:n])
		spec = spec[n:]
		return b
	}
	if base < 0 {
		base = -(base + 1)
	}
	off := base % (1 << 60)
	var recs []Record
	for len(spec) > 0 && len(recs) < 300 {
		flags := next()
		if len(recs) > 0 {
			off += 1 + int64(next())
			if flags&0x80 != 0 {
				off += math.MaxInt32 // a delta a batch cannot hold
			}
		}
		r := Record{Offset: off, Timestamp: ts + int64(int8(next()))}
		if flags&0x40 != 0 {
			var b [8]byte
			for i := range b {
				b[i] = next()
			}
			r.Timestamp = int64(binary.LittleEndian.Uint64(b[:]))
		}
		if flags&1 == 0 {
			r.Key = take()
		}
		if flags&2 == 0 {
			r.Value = take()
		}
		for range flags >> 2 & 7 {
			h := Header{Key: string(take())}
			if next()&1 == 0 {
				h.Value = take()
			}
			r.Headers = append(r.Headers, h)
		}
		recs = append(recs, r)
	}
	return recs
}

func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("\x00\x00\x05key-0\x07value-0"), uint32(1<<20), int64(0), int64(1700000000000))
	f.Add([]byte("\x03\x01\x00\x1c\x02ab\x00\x02cd\x01\x81\x05\x00\x02\x40\x41\x42\x43\x44\x45\x46\x47\x48"), uint32(100), int64(math.MaxInt64), int64(math.MinInt64))
	f.Add(bytes.Repeat([]byte("\x1c\x01\x7f\x10abcdefghijklmnop\x03xyz\x00\x00\x01\x02\x00\x02"), 50), uint32(300), int64(1<<40), int64(-1))
	encoders := make([]*Encoder, len(codecs))
	for i, c := range codecs {
		var err error
		if encoders[i], err = NewEncoder(c); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, spec []byte, limit uint32, base, ts int64) {
		recs := recordsFrom(spec, base, ts)
		if len(recs) == 0 {
			return
		}
		for _, e := range encoders {
			var data []byte
			batches := 0
			for r := recs; len(r) > 0; batches++ {
				// AppendBatch compresses up to a megabyte of records
				// to find how many fit; with a limit of a few bytes,
				// batch after batch, that is slow: offer it a few.
				var n int
				data, n = e.AppendBatch(data, r[:min(len(r), 32)], HeaderSize+int64(limit%(1<<20)))
				if n == 0 { // the record is larger than limit: alone
					data, n = e.AppendBatch(data, r[:1], math.MaxInt64)
				}
				if n == 0 {
					t.Fatalf("%s: record at offset %d fits in no batch", e.Codec(), r[0].Offset)
				}
				r = r[n:]
			}
			if got := readAll(t, data); !reflect.DeepEqual(got, recs) {
				t.Fatalf("%s: read back\n%+v\nwant\n%+v", e.Codec(), got, recs)
			}
			if got := kmsgRecords(t, data); !reflect.DeepEqual(got, recs) {
				t.Fatalf("%s: franz-go reads back\n%+v\nwant\n%+v", e.Codec(), got, recs)
			}
			span, err := ReadSpan(bytes.NewReader(data), int64(len(data)))
			if err != nil || span.Batches != batches || span.Records != int64(len(recs)) || span.Size != int64(len(data)) ||
				span.FirstOffset != recs[0].Offset || span.LastOffset != recs[len(recs)-1].Offset {
				t.Fatalf("%s: span %+v, %v", e.Codec(), span, err)
			}
		}
	})
}
