package rolling

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/offsets"
	"github.com/kafka-backup/kafka-backup/segment"
)

// renameDest finalizes by renaming, as destination/local does, without
// importing it (it imports this package).
type renameDest struct{}

func (renameDest) Publish(_ context.Context, f File) error {
	return os.Rename(f.Path, f.Path[:len(f.Path)-len(layout.InProgressSuffix)]+".done")
}
func (renameDest) Persisted(context.Context, string, int32) ([]offsets.Range, error) { return nil, nil }

// BenchmarkWriter writes 4 MiB batches of 1 KiB records to one partition with
// each fsync policy, against a plain os.File.Write of the same bytes.
func BenchmarkWriter(b *testing.B) {
	const batch, size = 4096, 1024
	val := make([]byte, size)
	mk := func(first int64) []segment.Record {
		recs := make([]segment.Record, batch)
		for i := range recs {
			recs[i] = segment.Record{Offset: first + int64(i), Timestamp: 1700000000000, Key: fmt.Appendf(nil, "k%d", i), Value: val}
		}
		return recs
	}
	for _, policy := range []struct {
		name string
		f    Fsync
	}{{"batch", FsyncBatch}, {"roll", FsyncRoll}, {"never", FsyncNever}} {
		b.Run("fsync="+policy.name, func(b *testing.B) {
			w, err := New(Config{Dir: b.TempDir(), Instance: "bench", MaxSize: 100e6, IdleTimeout: time.Hour, Fsync: policy.f, Destination: renameDest{}})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close(context.Background())
			recs := mk(0)
			b.SetBytes(batch * size)
			b.ReportAllocs()
			var off int64
			for b.Loop() {
				for i := range recs {
					recs[i].Offset = off + int64(i)
				}
				off += batch
				if err := w.Write(context.Background(), "t", 0, recs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("os.File.Write", func(b *testing.B) {
		e, _ := segment.NewEncoder(segment.None)
		buf, _ := e.AppendBatch(nil, mk(0), 1<<40)
		f, err := os.Create(b.TempDir() + "/plain")
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.SetBytes(batch * size)
		var written int64
		for b.Loop() {
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
			if written += int64(len(buf)); written > 100e6 {
				f.Truncate(0)
				f.Seek(0, 0)
				written = 0
			}
		}
	})
}

// BenchmarkWriterSmallBatches writes batches of 16 records of 1 KiB with
// fsync=never, where what a Write costs besides its records shows most (such
// as the check that the open file is still on disk: one stat per Write).
func BenchmarkWriterSmallBatches(b *testing.B) {
	const batch, size = 16, 1024
	w, err := New(Config{Dir: b.TempDir(), Instance: "bench", MaxSize: 100e6, IdleTimeout: time.Hour, Fsync: FsyncNever, Destination: renameDest{}})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close(context.Background())
	val := make([]byte, size)
	recs := make([]segment.Record, batch)
	for i := range recs {
		recs[i] = segment.Record{Timestamp: 1700000000000, Key: fmt.Appendf(nil, "k%d", i), Value: val}
	}
	b.SetBytes(batch * size)
	b.ReportAllocs()
	var off int64
	for b.Loop() {
		for i := range recs {
			recs[i].Offset = off + int64(i)
		}
		off += batch
		if err := w.Write(context.Background(), "t", 0, recs); err != nil {
			b.Fatal(err)
		}
	}
}
