package rolling_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/kafka-backup/kafka-backup/offsets"
	"github.com/kafka-backup/kafka-backup/rolling"
	"github.com/kafka-backup/kafka-backup/segment"
)

// TestTrimCoveredRecords: a batch only partly covered is written again with
// its other records, whole (key, value, headers, timestamp), under the name
// of its new first offset; TrimCovered keeps it whole.
func TestTrimCoveredRecords(t *testing.T) {
	recs := makeRecords(0, 100, 300, 7)
	for i := range recs {
		recs[i].Headers = []segment.Header{{Key: "h", Value: []byte{byte(i)}}}
	}
	e, _ := segment.NewEncoder(segment.None)
	data, n := e.AppendBatch(nil, recs, 1<<30)
	if n != len(recs) {
		t.Fatalf("one batch holds %d records", n)
	}
	held := []offsets.Range{{First: 0, Last: 39}}
	hs := offsets.SetOf(held)
	covered := func(r offsets.Range) bool { return hs.Covers(r.First, r.Last) }
	for _, byRecord := range []bool{false, true} {
		dir := t.TempDir()
		p := filepath.Join(dir, "0")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		f := rolling.File{Path: p, Name: "0", Records: 100, Ranges: []offsets.Range{{First: 0, Last: 99}}}
		trim := rolling.TrimCovered
		if byRecord {
			trim = rolling.TrimCoveredRecords
		}
		tf, ok, err := trim(f, covered, func(name string) string { return filepath.Join(dir, name) })
		if err != nil || !ok {
			t.Fatalf("byRecord %v: %v, %v", byRecord, ok, err)
		}
		want, wantName := recs, "0"
		if byRecord {
			want, wantName = recs[40:], "40"
		}
		if tf.Name != wantName || tf.Records != int64(len(want)) || !reflect.DeepEqual(tf.Ranges, []offsets.Range{{First: want[0].Offset, Last: 99}}) {
			t.Fatalf("byRecord %v: trimmed to %s, %d records, %v", byRecord, tf.Name, tf.Records, tf.Ranges)
		}
		fh, err := os.Open(tf.Path)
		if err != nil {
			t.Fatal(err)
		}
		var got []segment.Record
		rd := segment.NewReader(fh)
		for {
			b, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			rs, err := b.Records()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, rs...)
		}
		fh.Close()
		if len(got) != len(want) {
			t.Fatalf("byRecord %v: %d records, want %d", byRecord, len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			if g.Offset != w.Offset || g.Timestamp != w.Timestamp || string(g.Key) != string(w.Key) || string(g.Value) != string(w.Value) || !reflect.DeepEqual(g.Headers, w.Headers) {
				t.Fatalf("byRecord %v: record %d is %+v, want %+v", byRecord, i, g, w)
			}
		}
	}
}
