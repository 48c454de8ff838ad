package segment

import (
	"fmt"
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
