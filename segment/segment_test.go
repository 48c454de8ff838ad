package segment

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func sampleRecords(n int, first int64) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{
			Offset:    first + int64(i),
			Timestamp: 1700000000000 + int64(i%7) - 3,
			Key:       []byte(fmt.Sprintf("key-%d", i)),
			Value:     bytes.Repeat([]byte{byte(i)}, i%300),
			Headers:   []Header{{Key: "h", Value: []byte("1")}, {Key: "h", Value: nil}, {Key: "e", Value: []byte{}}},
		}
		switch i % 5 {
		case 1:
			recs[i].Key = nil
		case 2:
			recs[i].Value = nil
		case 3:
			recs[i].Key = []byte{}
			recs[i].Headers = nil
		}
	}
	return recs
}

func encodeAll(t testing.TB, codec Compression, recs []Record, limit int64) []byte {
	t.Helper()
	e, err := NewEncoder(codec)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for len(recs) > 0 {
		var n int
		out, n = e.AppendBatch(out, recs, limit)
		if n == 0 {
			t.Fatalf("record at offset %d does not fit in %d bytes", recs[0].Offset, limit)
		}
		recs = recs[n:]
	}
	return out
}

func readAll(t testing.TB, data []byte) []Record {
	t.Helper()
	r := NewReader(bytes.NewReader(data))
	var out []Record
	for {
		b, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		recs, err := b.Records()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, recs...)
	}
}

// kgoDecompressor is franz-go's, shared: each has its own pools.
var kgoDecompressor = kgo.DefaultDecompressor()

// kmsgRecords decodes data with franz-go's kmsg, a reader that shares no code
// with Encoder.
func kmsgRecords(t testing.TB, data []byte) []Record {
	t.Helper()
	var out []Record
	dec := kgoDecompressor
	for len(data) > 0 {
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(data); err != nil {
			t.Fatal(err)
		}
		size := 12 + int(rb.Length)
		if got := int32(crc32c(data[21:size])); got != rb.CRC {
			t.Fatalf("CRC %x, header %x", got, rb.CRC)
		}
		raw, err := dec.Decompress(rb.Records, kgo.CompressionCodecType(rb.Attributes&7))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < int(rb.NumRecords); i++ {
			var kr kmsg.Record
			if err := kr.ReadFrom(raw); err != nil {
				t.Fatal(err)
			}
			n := int(kr.Length) + varintSize(int64(kr.Length))
			raw = raw[n:]
			r := Record{Offset: rb.FirstOffset + int64(kr.OffsetDelta), Timestamp: rb.FirstTimestamp + kr.TimestampDelta64, Key: kr.Key, Value: kr.Value, Headers: kr.Headers}
			if len(r.Headers) == 0 {
				r.Headers = nil
			}
			out = append(out, r)
		}
		data = data[size:]
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	recs := sampleRecords(2000, 42)
	for _, codec := range []Compression{None, Gzip, Snappy, LZ4, Zstd} {
		t.Run(codec.String(), func(t *testing.T) {
			data := encodeAll(t, codec, recs, 1<<62)
			for name, got := range map[string][]Record{"segment.Reader": readAll(t, data), "kmsg": kmsgRecords(t, data)} {
				if !reflect.DeepEqual(got, recs) {
					t.Fatalf("%s: records differ after the round trip", name)
				}
				for i := range got {
					if (got[i].Key == nil) != (recs[i].Key == nil) || (got[i].Value == nil) != (recs[i].Value == nil) {
						t.Fatalf("%s: record %d: null-ness changed", name, i)
					}
				}
			}
		})
	}
}

func TestAppendBatchRespectsLimit(t *testing.T) {
	recs := sampleRecords(500, 0)
	for _, codec := range []Compression{None, Zstd} {
		e, _ := NewEncoder(codec)
		for _, limit := range []int64{200, 1000, 4096, 50000} {
			out, n := e.AppendBatch(nil, recs, limit)
			if n == 0 {
				t.Fatalf("%s limit %d: nothing fit", codec, limit)
			}
			if int64(len(out)) > limit {
				t.Fatalf("%s limit %d: batch of %d bytes", codec, limit, len(out))
			}
		}
		if _, n := e.AppendBatch(nil, recs[299:300], 100); n != 0 {
			t.Fatalf("%s: a 300-byte record fit in 100 bytes", codec)
		}
	}
}

func TestBatchSplitsOnOffsetGapsAndSize(t *testing.T) {
	recs := []Record{{Offset: 1}, {Offset: 5}, {Offset: 3}}
	e, _ := NewEncoder(None)
	if _, n := e.AppendBatch(nil, recs, 1<<20); n != 2 {
		t.Fatalf("batch took %d records; it must stop before the offset that goes backwards", n)
	}
	big := make([]Record, 3)
	for i := range big {
		big[i] = Record{Offset: int64(i), Value: make([]byte, MaxBatchRecordsBytes/2)}
	}
	if _, n := e.AppendBatch(nil, big, 1<<30); n != 1 {
		t.Fatalf("batch took %d half-megabyte records, want 1", n)
	}
}

func TestReaderTornAndCorrupt(t *testing.T) {
	data := encodeAll(t, None, sampleRecords(100, 0), 2000)
	r := NewReader(bytes.NewReader(data[:len(data)-3]))
	var last error
	for last == nil {
		_, last = r.Next()
	}
	if !errors.Is(last, ErrTorn) {
		t.Fatalf("truncated file: %v, want ErrTorn", last)
	}
	bad := bytes.Clone(data)
	bad[len(bad)-10] ^= 1
	r = NewReader(bytes.NewReader(bad))
	for last = nil; last == nil; {
		_, last = r.Next()
	}
	var be *BatchError
	if !errors.Is(last, ErrCorrupt) || !errors.As(last, &be) || be.Position == 0 {
		t.Fatalf("flipped byte: %v, want ErrCorrupt with a position", last)
	}
}

func TestParseCompression(t *testing.T) {
	for _, n := range CompressionNames() {
		c, err := ParseCompression(n)
		if err != nil || c.String() != n {
			t.Fatalf("%s: %v %v", n, c, err)
		}
	}
	if _, err := ParseCompression("brotli"); err == nil {
		t.Fatal("brotli accepted")
	}
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

func TestRecordAt(t *testing.T) {
	recs := sampleRecords(200, 1000)
	for _, codec := range []Compression{None, Zstd} {
		data := encodeAll(t, codec, recs, 2000)
		for _, i := range []int{0, 1, 57, 199} {
			got, ok, err := RecordAt(bytes.NewReader(data), int64(len(data)), recs[i].Offset)
			if err != nil || !ok {
				t.Fatalf("%s: offset %d: %v %v", codec, recs[i].Offset, ok, err)
			}
			if !reflect.DeepEqual(got, recs[i]) {
				t.Fatalf("%s: offset %d: got %+v, want %+v", codec, recs[i].Offset, got, recs[i])
			}
		}
		for _, off := range []int64{999, 1200} {
			if _, ok, err := RecordAt(bytes.NewReader(data), int64(len(data)), off); ok || err != nil {
				t.Fatalf("%s: offset %d, outside the file: %v %v", codec, off, ok, err)
			}
		}
		bad := bytes.Clone(data)
		bad[len(bad)-10] ^= 1
		if _, _, err := RecordAt(bytes.NewReader(bad), int64(len(bad)), 1199); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: flipped byte in the batch read: %v, want ErrCorrupt", codec, err)
		}
	}
}
