package segment

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

func benchRecords(n, size int) []Record {
	recs := make([]Record, n)
	val := make([]byte, size)
	for i := range recs {
		recs[i] = Record{Offset: int64(i), Timestamp: 1700000000000 + int64(i), Key: fmt.Appendf(nil, "key-%d", i), Value: val,
			Headers: []Header{{Key: "trace", Value: []byte("abc")}}}
	}
	return recs
}

// BenchmarkEncoder encodes 4 MiB batches of 1 KiB records, as the
// recommended input settings deliver them.
func BenchmarkEncoder(b *testing.B) {
	for _, codec := range []Compression{None, LZ4, Zstd} {
		b.Run(codec.String(), func(b *testing.B) {
			recs := benchRecords(4096, 1024)
			e, _ := NewEncoder(codec)
			var buf []byte
			b.SetBytes(int64(4096 * 1024))
			b.ReportAllocs()
			for b.Loop() {
				buf = buf[:0]
				for r := recs; len(r) > 0; {
					var n int
					buf, n = e.AppendBatch(buf, r, 1<<40)
					r = r[n:]
				}
			}
		})
	}
}

// BenchmarkReader reads back what BenchmarkEncoder writes: Next and Records
// for every batch, decompression included.
func BenchmarkReader(b *testing.B) {
	for _, codec := range []Compression{None, Gzip, Snappy, LZ4, Zstd} {
		b.Run(codec.String(), func(b *testing.B) {
			recs := benchRecords(4096, 1024)
			for i := range recs {
				// Compressible but not trivially so.
				recs[i].Value = fmt.Appendf(nil, "%0900d-%d", i*7919, i)
			}
			e, _ := NewEncoder(codec)
			var data []byte
			for r := recs; len(r) > 0; {
				var n int
				data, n = e.AppendBatch(data, r, 1<<40)
				r = r[n:]
			}
			b.SetBytes(int64(4096 * 1024))
			b.ReportAllocs()
			for b.Loop() {
				rd := NewReader(bytes.NewReader(data))
				for {
					batch, err := rd.Next()
					if err != nil {
						if err != io.EOF {
							b.Fatal(err)
						}
						break
					}
					if _, err := batch.Records(); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
