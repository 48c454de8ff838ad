package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-backup/kafka-backup/internal/backuptest"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/offsets"
	"github.com/kafka-backup/kafka-backup/segment"
)

// ---------------------------------------------------------------------------
// Helpers

// base is the timestamp of the first test record.
var base = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC).UnixMilli()

// rec is a record with every field set from its offset.
func rec(off int64) segment.Record {
	return segment.Record{
		Offset:    off,
		Timestamp: base + off*1000,
		Key:       fmt.Appendf(nil, "key-%d", off),
		Value:     fmt.Appendf(nil, "value-%d", off),
		Headers:   []segment.Header{{Key: "n", Value: fmt.Appendf(nil, "%d", off)}},
	}
}

// recs returns rec(off) for each offset from first to last.
func recs(first, last int64) []segment.Record {
	var out []segment.Record
	for off := first; off <= last; off++ {
		out = append(out, rec(off))
	}
	return out
}

// varied returns n records with null, empty and plain keys and values,
// headers with duplicate names, null and empty values, and timestamps that
// go back now and then.
func varied(first int64, n int) []segment.Record {
	var out []segment.Record
	for i := range n {
		off := first + int64(i)
		r := rec(off)
		switch i % 7 {
		case 1:
			r.Key = nil
		case 2:
			r.Key = []byte{}
		case 3:
			r.Value = nil // a tombstone
		case 4:
			r.Value = []byte{}
		case 5:
			r.Timestamp -= 60_000 // older than the record before
		}
		switch i % 4 {
		case 0:
			r.Headers = nil
		case 1:
			r.Headers = []segment.Header{{Key: "z", Value: []byte("1")}, {Key: "a", Value: nil}, {Key: "z", Value: []byte{}}, {Key: "z", Value: []byte("3")}}
		case 2:
			r.Headers = []segment.Header{{Key: "", Value: []byte("empty name")}}
		}
		out = append(out, r)
	}
	return out
}

// name is the plain final name of a file starting at off.
func name(off int64) string { return layout.NamePlain.FileName(off) }

// cluster starts a one-broker kfake cluster with topics of n partitions.
func cluster(t testing.TB, n int32, topics ...string) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(n, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// restore runs a restore of root to brokers with cfg's other fields.
func restore(t testing.TB, root string, brokers []string, cfg Config) (*Summary, error) {
	t.Helper()
	cfg.Source = backuptest.OpenTree(t, root)
	cfg.Brokers = brokers
	var log bytes.Buffer
	cfg.Log = &log
	cfg.Progress = ProgressLog
	cfg.ProgressInterval = 50 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := Run(ctx, cfg)
	var out bytes.Buffer
	if sum != nil {
		sum.Write(&out)
	}
	t.Logf("log:\n%s\nsummary:\n%s\nerror: %v", log.String(), out.String(), err)
	return sum, err
}

// endOffsets returns the end offsets of partitions 0 to n-1 of topic.
func endOffsets(t testing.TB, brokers []string, topic string, n int32) []int64 {
	t.Helper()
	ends, err := backuptest.EndOffsets(brokers, topic, n)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	return ends
}

// consume reads every record of partitions 0 to n-1 of topic.
func consume(t testing.TB, brokers []string, topic string, n int32) map[int32][]segment.Record {
	t.Helper()
	return backuptest.ReadTopic(t, brokers, topic, n, 30*time.Second)
}

// sameRecords checks got against want in order, offsets aside, null-aware.
func sameRecords(t testing.TB, what string, got, want []segment.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d records, want %d", what, len(got), len(want))
	}
	bad := 0
	for i := range min(len(got), len(want)) {
		g := got[i]
		g.Offset = want[i].Offset // offsets are Kafka's to give
		if d := backuptest.RecordDiff(g, want[i]); d != "" {
			if bad++; bad <= 5 {
				t.Errorf("%s: record %d (source offset %d): %s", what, i, want[i].Offset, d)
			}
		}
	}
}

func part(t testing.TB, s *Summary, topic string, p int32) *PartitionSummary {
	t.Helper()
	for _, ps := range s.Partitions {
		if ps.Topic == topic && ps.Partition == p {
			return ps
		}
	}
	t.Fatalf("no summary for %s/%d", topic, p)
	return nil
}

func i64(v int64) *int64 { return &v }

// ---------------------------------------------------------------------------
// Tests

// TestRoundTrip restores several partitions of several files each (plain and
// compressed batches) and reads them back: every field but the offset the
// same, in order, null-aware.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	want := map[int32][]segment.Record{}
	for p := int32(0); p < 3; p++ {
		all := varied(0, 300+int(p)*50)
		cut := []int{0, 100, 220, len(all)}
		for i := 0; i+1 < len(cut); i++ {
			codec := []segment.Compression{segment.None, segment.Gzip, segment.Zstd}[i]
			part := all[cut[i]:cut[i+1]]
			backuptest.WriteSegment(t, root, "orders", p, name(part[0].Offset), part, 17, codec)
		}
		want[p] = all
	}
	// A leftover and a marker are listed but not restored.
	os.WriteFile(filepath.Join(layout.PartitionDir(root, "orders", 0), ".400.h.inprogress"), []byte("x"), 0o644)
	brokers := cluster(t, 3, "orders")
	sum, err := restore(t, root, brokers, Config{})
	if err != nil {
		t.Fatal(err)
	}
	got := consume(t, brokers, "orders", 3)
	for p := int32(0); p < 3; p++ {
		sameRecords(t, fmt.Sprintf("orders/%d", p), got[p], want[p])
		ps := part(t, sum, "orders", p)
		if ps.Records != int64(len(want[p])) || len(ps.Gaps) != 0 || ps.Duplicates != 0 || ps.Err != nil {
			t.Errorf("orders/%d summary: %+v", p, ps)
		}
		if wantR := []segment.Range{{First: 0, Last: int64(len(want[p]) - 1)}}; !reflect.DeepEqual(ps.Restored, wantR) {
			t.Errorf("orders/%d restored %v, want %v", p, ps.Restored, wantR)
		}
		if ps.ReadBytes != ps.FileBytes {
			t.Errorf("orders/%d: read %d of %d bytes", p, ps.ReadBytes, ps.FileBytes)
		}
	}
	if ps := part(t, sum, "orders", 0); len(ps.Leftovers) != 1 || len(ps.Warnings) != 1 || !strings.Contains(ps.Warnings[0], ".400.h.inprogress") {
		t.Errorf("leftover not reported: %+v", ps)
	}
}

// TestDedup restores overlapping files: each offset once, the first file's
// copy kept, duplicates counted.
func TestDedup(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	backuptest.WriteSegment(t, root, "t", 0, name(0), recs(0, 9), 3, segment.None)
	// The same offsets 5-14 in another file, with different values: the
	// first seen (file 0 for 5-9) wins.
	other := recs(5, 14)
	for i := range other {
		other[i].Value = []byte("second copy")
	}
	backuptest.WriteSegment(t, root, "t", 0, name(5), other, 4, segment.None)
	// Offsets 10-19 under Kafka's naming, overlapping 10-14 again, and an
	// exact copy of file 0 under a later name.
	backuptest.WriteSegment(t, root, "t", 0, "00000000000000000010.log", recs(10, 19), 5, segment.Snappy)
	backuptest.WriteSegment(t, root, "t", 0, name(12), recs(0, 9), 3, segment.None)
	brokers := cluster(t, 1, "t")
	sum, err := restore(t, root, brokers, Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := recs(0, 19)
	for i := 10; i <= 14; i++ {
		want[i].Value = []byte("second copy")
	}
	sameRecords(t, "t/0", consume(t, brokers, "t", 1)[0], want)
	ps := part(t, sum, "t", 0)
	if ps.Duplicates != 5+5+10 || ps.Records != 20 || ps.OutOfOrder != 0 || len(ps.Gaps) != 0 {
		t.Errorf("summary: %d duplicates (want 20), %d records (want 20), %d out of order, gaps %v", ps.Duplicates, ps.Records, ps.OutOfOrder, ps.Gaps)
	}
	if len(ps.Warnings) != 1 || !strings.Contains(ps.Warnings[0], "12 starts at offset 0") {
		t.Errorf("warnings %q: want one about file 12", ps.Warnings)
	}
}

// TestOutOfOrderFiles restores files whose offsets interleave (as the
// kafka_franz input may leave them) in offset order: nothing lost, nothing
// counted as a gap or out of order; --until cuts the same log (issue 17).
func TestOutOfOrderFiles(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	backuptest.WriteSegment(t, root, "t", 0, name(0), append(recs(0, 4), recs(10, 14)...), 5, segment.None)
	backuptest.WriteSegment(t, root, "t", 0, name(5), recs(5, 9), 5, segment.None)
	brokers := cluster(t, 1, "t")
	sum, err := restore(t, root, brokers, Config{})
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "t/0", consume(t, brokers, "t", 1)[0], recs(0, 14))
	ps := part(t, sum, "t", 0)
	if ps.OutOfOrder != 0 || len(ps.Gaps) != 0 || ps.Records != 15 {
		t.Errorf("summary: %+v", ps)
	}
	until := time.UnixMilli(recs(7, 7)[0].Timestamp)
	sum, err = restore(t, root, nil, Config{DryRun: true, Until: &until})
	if err != nil {
		t.Fatal(err)
	}
	if ps := part(t, sum, "t", 0); fmt.Sprint(ps.Restored) != "[{0 7}]" || !strings.Contains(ps.Stopped, "offset 8") {
		t.Errorf("--until at offset 7: restored %v, stopped %q", ps.Restored, ps.Stopped)
	}
}

// TestGaps reports offsets no file holds, and restores the rest.
func TestGaps(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	backuptest.WriteSegment(t, root, "t", 0, name(0), recs(0, 4), 5, segment.None)
	backuptest.WriteSegment(t, root, "t", 0, name(10), recs(10, 14), 5, segment.None)
	// A compacted-looking file: offsets 20, 22, 23 in one batch.
	backuptest.WriteSegment(t, root, "t", 0, name(20), []segment.Record{rec(20), rec(22), rec(23)}, 3, segment.None)
	brokers := cluster(t, 1, "t")
	sum, err := restore(t, root, brokers, Config{})
	if err != nil {
		t.Fatalf("gaps must not fail a restore: %v", err)
	}
	want := append(append(recs(0, 4), recs(10, 14)...), rec(20), rec(22), rec(23))
	sameRecords(t, "t/0", consume(t, brokers, "t", 1)[0], want)
	ps := part(t, sum, "t", 0)
	wantGaps := []segment.Range{{First: 5, Last: 9}, {First: 15, Last: 19}, {First: 21, Last: 21}}
	if !reflect.DeepEqual(ps.Gaps, wantGaps) || ps.GapOffsets() != 11 {
		t.Errorf("gaps %v (%d offsets), want %v (11)", ps.Gaps, ps.GapOffsets(), wantGaps)
	}
	var out bytes.Buffer
	sum.Write(&out)
	if !strings.Contains(out.String(), "gaps: 5-9, 15-19, 21 (11 offsets no file holds)") {
		t.Errorf("summary does not show the gaps:\n%s", out.String())
	}
}

// TestPointInTime stops each partition at its first record later than
// --until, even when later records are earlier again; --since starts at the
// first record at or after it; offset bounds are inclusive.
func TestPointInTime(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	// Partition 0: timestamps base+off s, except offset 12 which is late
	// (base+100 s) and offset 13 early again.
	p0 := recs(0, 19)
	p0[12].Timestamp = base + 100_000
	backuptest.WriteSegment(t, root, "t", 0, name(0), p0[:8], 3, segment.None)
	backuptest.WriteSegment(t, root, "t", 0, name(8), p0[8:], 3, segment.LZ4)
	// Partition 1: every record after --until.
	backuptest.WriteSegment(t, root, "t", 1, name(0), recs(50, 59), 10, segment.None)
	brokers := cluster(t, 2, "t")
	until := time.UnixMilli(base + 15_000) // offset 15 of partition 0 is exactly at it
	sum, err := restore(t, root, brokers, Config{Until: &until})
	if err != nil {
		t.Fatal(err)
	}
	got := consume(t, brokers, "t", 2)
	sameRecords(t, "t/0 --until", got[0], p0[:12])
	sameRecords(t, "t/1 --until", got[1], nil)
	ps := part(t, sum, "t", 0)
	if !strings.Contains(ps.Stopped, "offset 12") {
		t.Errorf("stopped %q: want it to name offset 12", ps.Stopped)
	}
	if ps1 := part(t, sum, "t", 1); !strings.Contains(ps1.Stopped, "offset 50") || ps1.Records != 0 {
		t.Errorf("t/1: %+v", ps1)
	}

	// --since, and offset bounds, into a fresh cluster.
	brokers = cluster(t, 2, "t")
	since := time.UnixMilli(base + 5_000)
	sum, err = restore(t, root, brokers, Config{Since: &since, ToOffset: i64(16), Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	got = consume(t, brokers, "t", 2)
	sameRecords(t, "t/0 --since --to-offset", got[0], p0[5:17])
	sameRecords(t, "t/1 --since --to-offset", got[1], recs(50, 56)[:0]) // offsets 50+ are above --to-offset
	if ps := part(t, sum, "t", 0); ps.Skipped != 5 {
		t.Errorf("skipped %d, want 5", ps.Skipped)
	}

	brokers = cluster(t, 2, "t")
	if _, err := restore(t, root, brokers, Config{FromOffset: i64(3), ToOffset: i64(9)}); err != nil {
		t.Fatal(err)
	}
	got = consume(t, brokers, "t", 2)
	sameRecords(t, "t/0 offsets 3-9", got[0], p0[3:10])
	sameRecords(t, "t/1 offsets 3-9", got[1], nil)

	if _, err := restore(t, root, brokers, Config{FromOffset: i64(9), ToOffset: i64(3)}); !errors.Is(err, ErrRefused) {
		t.Errorf("--from-offset above --to-offset: %v", err)
	}
}

// TestRename restores into another topic and refuses bad renames.
func TestRename(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	backuptest.WriteSegment(t, root, "src", 0, name(0), varied(0, 40), 7, segment.None)
	backuptest.WriteSegment(t, root, "src", 1, name(0), varied(0, 30), 7, segment.None)
	backuptest.WriteSegment(t, root, "other", 0, name(0), recs(0, 3), 7, segment.None)
	brokers := cluster(t, 2, "src", "dst", "other")
	sum, err := restore(t, root, brokers, Config{Topics: []string{"src"}, Rename: map[string]string{"src": "dst"}})
	if err != nil {
		t.Fatal(err)
	}
	got := consume(t, brokers, "dst", 2)
	sameRecords(t, "dst/0", got[0], varied(0, 40))
	sameRecords(t, "dst/1", got[1], varied(0, 30))
	if ends := endOffsets(t, brokers, "src", 2); ends[0]+ends[1] != 0 {
		t.Errorf("records went to the source topic: %v", ends)
	}
	if ends := endOffsets(t, brokers, "other", 2); ends[0] != 0 {
		t.Errorf("other was restored without being selected: %v", ends)
	}
	if ps := part(t, sum, "src", 1); ps.Target != "dst" || ps.Records != 30 {
		t.Errorf("summary: %+v", ps)
	}

	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Rename: map[string]string{"nope": "x"}}, "--rename nope=x: topic nope is not in the backup"},
		{Config{Topics: []string{"src"}, Rename: map[string]string{"other": "x"}}, "topic other is not selected by --topic"},
		{Config{Rename: map[string]string{"src": "other"}}, "topics other and src would both be restored into other"},
		{Config{Rename: map[string]string{"src": "bad/name"}}, "bad/name"},
		{Config{Topics: []string{"missing"}}, "no topic missing in the backup"},
	} {
		_, err := restore(t, root, brokers, tc.cfg)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want a refusal with %q", tc.cfg, err, tc.want)
		}
	}
}

// TestPartitionSelection restores only the partitions asked for.
func TestPartitionSelection(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for p := int32(0); p < 3; p++ {
		backuptest.WriteSegment(t, root, "t", p, name(0), recs(0, 4), 5, segment.None)
	}
	brokers := cluster(t, 3, "t")
	sum, err := restore(t, root, brokers, Config{Partitions: []int32{1}})
	if err != nil {
		t.Fatal(err)
	}
	if ends := endOffsets(t, brokers, "t", 3); !reflect.DeepEqual(ends, []int64{0, 5, 0}) {
		t.Errorf("end offsets %v, want only partition 1 restored", ends)
	}
	if len(sum.Partitions) != 1 || sum.Partitions[0].Partition != 1 {
		t.Errorf("summary of %d partitions", len(sum.Partitions))
	}
	if _, err := restore(t, root, brokers, Config{Partitions: []int32{1, 7}}); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "--partition 7") {
		t.Errorf("a missing partition: %v", err)
	}
}

// TestPartitionCount refuses a target topic with fewer partitions than the
// backup uses, and a missing one unless CreateTopics, which creates it with
// the backup's partition count.
func TestPartitionCount(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for p := int32(0); p < 4; p++ {
		backuptest.WriteSegment(t, root, "wide", p, name(0), recs(0, 2), 3, segment.None)
	}
	// Partition folders 4 and 5 exist but hold no final file.
	os.MkdirAll(layout.PartitionDir(root, "wide", 4), 0o755)
	os.MkdirAll(layout.PartitionDir(root, "wide", 5), 0o755)
	brokers := cluster(t, 2, "wide")
	_, err := restore(t, root, brokers, Config{})
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("target with 2 partitions: %v, want a refusal", err)
	}
	for _, s := range []string{"target topic wide has 2 partitions", "fewer than the 4 the backup of wide uses"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("refusal %q does not say %q", err, s)
		}
	}
	if ends := endOffsets(t, brokers, "wide", 2); ends[0]+ends[1] != 0 {
		t.Errorf("records were produced before the refusal: %v", ends)
	}
	// The same under another name.
	_, err = restore(t, root, brokers, Config{Rename: map[string]string{"wide": "narrow"}, CreateTopics: false})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "target topic narrow does not exist (restoring backup topic wide): the backup has 6 partitions") {
		t.Errorf("missing target: %v", err)
	}
	// A dry run reports the refusal and still reads everything.
	sum, err := restore(t, root, brokers, Config{DryRun: true})
	if !errors.Is(err, ErrRefused) || sum == nil || sum.Totals().Records != 12 {
		t.Errorf("dry run against a narrow target: %v, %+v", err, sum)
	}

	sum, err = restore(t, root, brokers, Config{Rename: map[string]string{"wide": "narrow"}, CreateTopics: true})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sum.Created, []string{"narrow"}) {
		t.Errorf("created %v", sum.Created)
	}
	if ends := endOffsets(t, brokers, "narrow", 6); !reflect.DeepEqual(ends, []int64{3, 3, 3, 3, 0, 0}) {
		t.Errorf("narrow: end offsets %v, want 6 partitions, 3 records in 0-3", ends)
	}
}

// TestCorrupt stops a partition at a corrupt or torn batch, naming the file
// and byte, after restoring what came before; other partitions go on; the
// run fails.
func TestCorrupt(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	path := backuptest.WriteSegment(t, root, "t", 0, name(0), recs(0, 9), 5, segment.None)
	data, _ := os.ReadFile(path)
	secondBatch := int64(len(data) / 2) // two batches of the same size
	data[secondBatch+70] ^= 0xff        // a byte of the second batch's records
	os.WriteFile(path, data, 0o644)
	backuptest.WriteSegment(t, root, "t", 0, name(10), recs(10, 14), 5, segment.None)
	tornPath := backuptest.WriteSegment(t, root, "t", 1, name(0), recs(0, 9), 5, segment.None)
	data, _ = os.ReadFile(tornPath)
	os.WriteFile(tornPath, data[:len(data)-3], 0o644)
	backuptest.WriteSegment(t, root, "t", 2, name(0), recs(0, 9), 5, segment.None)

	brokers := cluster(t, 3, "t")
	sum, err := restore(t, root, brokers, Config{})
	if err == nil {
		t.Fatal("no error")
	}
	e0 := part(t, sum, "t", 0).Err
	if e0 == nil || !errors.Is(e0, segment.ErrCorrupt) || !strings.Contains(e0.Error(), fmt.Sprintf("t/0/0: byte %d", secondBatch)) ||
		!strings.Contains(e0.Error(), "restored up to offset 4") {
		t.Errorf("t/0: %v", e0)
	}
	// Every failed partition gets advice: past the damage, the next file.
	if e0 == nil || !strings.Contains(e0.Error(), "offsets 5-9 are lost unless another copy holds them") ||
		!strings.Contains(e0.Error(), "--topic t --partition 0 --from-offset 10") || part(t, sum, "t", 0).Resume != 10 {
		t.Errorf("t/0: no advice to go on at the next file (offset 10): %v (resume %d)", e0, part(t, sum, "t", 0).Resume)
	}
	e1 := part(t, sum, "t", 1).Err
	if e1 == nil || !errors.Is(e1, segment.ErrTorn) || !strings.Contains(e1.Error(), fmt.Sprintf("t/1/0: byte %d", secondBatch)) ||
		!strings.Contains(e1.Error(), "no later file of this partition") {
		t.Errorf("t/1: %v", e1)
	}
	if !strings.Contains(err.Error(), "t/0:") || !strings.Contains(err.Error(), "t/1:") {
		t.Errorf("the run's error does not name both partitions: %v", err)
	}
	got := consume(t, brokers, "t", 3)
	sameRecords(t, "t/0", got[0], recs(0, 4))
	sameRecords(t, "t/1", got[1], recs(0, 4))
	sameRecords(t, "t/2", got[2], recs(0, 9))
}

// TestDryRun reads and checks everything and produces nothing.
func TestDryRun(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	backuptest.WriteSegment(t, root, "t", 0, name(0), varied(0, 50), 7, segment.Gzip)
	backuptest.WriteSegment(t, root, "t", 0, name(25), varied(25, 50), 7, segment.None)
	brokers := cluster(t, 1, "t")
	for _, b := range [][]string{brokers, nil} {
		sum, err := restore(t, root, b, Config{DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		ps := part(t, sum, "t", 0)
		if ps.Records != 75 || ps.Duplicates != 25 || !sum.DryRun {
			t.Errorf("dry run summary: %+v", ps)
		}
	}
	if ends := endOffsets(t, brokers, "t", 1); ends[0] != 0 {
		t.Errorf("a dry run produced %d records", ends[0])
	}
	if _, err := restore(t, root, nil, Config{}); !errors.Is(err, ErrRefused) {
		t.Errorf("no brokers without --dry-run: %v", err)
	}
}

// TestProduceError fails a partition whose record the producer cannot send,
// naming the offset, and reports exactly what the target acknowledged: a
// record above the batch limit stops the partition before it is handed
// over (issue 17 row 4); a batch the broker refuses fails its records, and
// the advice is the lowest offset not acknowledged.
func TestProduceError(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	rs := recs(0, 9)
	rs[6].Value = bytes.Repeat([]byte("x"), 64<<10)
	backuptest.WriteSegment(t, root, "t", 0, name(0), rs, 1, segment.None)

	check := func(t *testing.T, brokers []string, sum *Summary, resume int64) {
		t.Helper()
		ps := part(t, sum, "t", 0)
		if ps.Err == nil || ps.Resume != resume ||
			!strings.Contains(ps.Err.Error(), fmt.Sprintf("restore it again with --topic t --partition 0 --from-offset %d,", resume)) {
			t.Errorf("error %v, resume %d: want the advice --from-offset %d", ps.Err, ps.Resume, resume)
		}
		// The summary says what the target holds.
		got := consume(t, brokers, "t", 1)[0]
		var want []segment.Record
		for _, r := range ps.Restored {
			want = append(want, recs(r.First, r.Last)...)
		}
		sameRecords(t, "t/0", got, want)
		if ps.Records != int64(len(got)) {
			t.Errorf("summary: %d records acknowledged, the target has %d", ps.Records, len(got))
		}
	}

	t.Run("client", func(t *testing.T) {
		brokers := cluster(t, 1, "t")
		sum, err := restore(t, root, brokers, Config{MaxBatchBytes: 16 << 10})
		if err == nil {
			t.Fatal("no error")
		}
		check(t, brokers, sum, 6)
		ps := part(t, sum, "t", 0)
		if !strings.Contains(ps.Err.Error(), "offset 6 takes 65,") || len(ps.TooLarge) != 1 || ps.Twice != 0 {
			t.Errorf("error %v, too large %v", ps.Err, ps.TooLarge)
		}
		if fmt.Sprint(ps.Restored) != "[{0 5}]" {
			t.Errorf("restored %v: the partition went on after offset 6", ps.Restored)
		}
	})
	t.Run("broker", func(t *testing.T) {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		// The broker refuses every batch over 32 KiB (a smaller
		// max.message.bytes than the topic says).
		c.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
			c.KeepControl()
			req := kr.(*kmsg.ProduceRequest)
			for _, tp := range req.Topics {
				for _, p := range tp.Partitions {
					if len(p.Records) > 32<<10 {
						resp := req.ResponseKind().(*kmsg.ProduceResponse)
						rt := kmsg.NewProduceResponseTopic()
						rt.Topic, rt.TopicID = tp.Topic, tp.TopicID
						rp := kmsg.NewProduceResponseTopicPartition()
						rp.Partition = p.Partition
						rp.ErrorCode = kerr.MessageTooLarge.Code
						rt.Partitions = append(rt.Partitions, rp)
						resp.Topics = append(resp.Topics, rt)
						return resp, nil, true
					}
				}
			}
			return nil, nil, false
		})
		// Record 6 incompressible, so that its batch stays large.
		root := t.TempDir()
		rs := recs(0, 9)
		rs[6].Value = make([]byte, 64<<10)
		rand.NewChaCha8([32]byte{1}).Read(rs[6].Value)
		backuptest.WriteSegment(t, root, "t", 0, name(0), rs, 1, segment.None)
		sum, err := restore(t, root, c.ListenAddrs(), Config{})
		if err == nil {
			t.Fatal("no error")
		}
		ps := part(t, sum, "t", 0)
		// Records before 6 may share its batch: the advice is the lowest
		// offset not acknowledged, whatever it is.
		resume := int64(0)
		if len(ps.Restored) > 0 {
			resume = ps.Restored[0].Last + 1
		}
		if resume > 6 || !strings.Contains(ps.Err.Error(), "MESSAGE_TOO_LARGE") {
			t.Errorf("restored %v, error %v", ps.Restored, ps.Err)
		}
		check(t, c.ListenAddrs(), sum, resume)
	})
}

// TestResumeUnordered gives the advice of a failed partition whatever order
// its acknowledgements and failures came in (issue 12 row 2): the lowest
// offset handed over and not acknowledged, gaps skipped, with the
// acknowledged records above it counted as restored twice; a partition cut
// short with everything acknowledged goes on after its last record.
func TestResumeUnordered(t *testing.T) {
	newPS := func() *partState {
		ps := &partState{sum: PartitionSummary{Topic: "t", Target: "t", Partition: 3}}
		for off := int64(0); off <= 29; off++ {
			if off < 10 || off >= 20 { // 10-19: a gap
				ps.seen.Add(off)
			}
		}
		return ps
	}
	// The failure of 27 (blocked in Produce) first, then acknowledgements
	// out of order, 22 never answered.
	ps := newPS()
	ps.prodErr, ps.errOff = errors.New("producing the record of offset 27: interrupted"), 27
	for _, off := range []int64{0, 1, 2, 5, 3, 4, 6, 7, 8, 9, 20, 21, 24, 23, 25} {
		ps.acked.Add(off)
		ps.ackRecs++
	}
	ps.finish(&Config{})
	if ps.sum.Resume != 22 || ps.sum.Twice != 3 || ps.sum.Err == nil ||
		!strings.Contains(ps.sum.Err.Error(), "acknowledged: offsets 0-9, 20-21, 23-25; to go on, restore it again with --topic t --partition 3 --from-offset 22 (3 records acknowledged above it will be restored twice)") ||
		!strings.Contains(ps.sum.Err.Error(), "5 records handed to the producer not acknowledged") {
		t.Errorf("resume %d, twice %d, error %v", ps.sum.Resume, ps.sum.Twice, ps.sum.Err)
	}
	// Everything up to 9 acknowledged, then interrupted: the gap is not
	// waited for.
	ps = newPS()
	for off := int64(0); off <= 9; off++ {
		ps.acked.Add(off)
	}
	ps.seen = offsets.Set{}
	for off := int64(0); off <= 9; off++ {
		ps.seen.Add(off)
	}
	ps.seen.Add(20)
	ps.cut = errors.New("interrupted")
	ps.finish(&Config{Since: new(time.Time)})
	if ps.sum.Resume != 20 || !strings.Contains(ps.sum.Err.Error(), "--from-offset 20 and without --since") {
		t.Errorf("resume %d, error %v", ps.sum.Resume, ps.sum.Err)
	}
	// All handed over acknowledged, cut short: after the last.
	ps = newPS()
	ps.acked = ps.seen
	ps.cut = errors.New("interrupted")
	ps.finish(&Config{})
	if ps.sum.Resume != 30 || ps.sum.Twice != 0 {
		t.Errorf("resume %d, twice %d, error %v", ps.sum.Resume, ps.sum.Twice, ps.sum.Err)
	}
	// Nothing handed over: the same command again.
	ps = &partState{sum: PartitionSummary{Topic: "t", Partition: 0}, cut: errors.New("interrupted")}
	ps.finish(&Config{})
	if ps.sum.Resume != -1 || !strings.Contains(ps.sum.Err.Error(), "nothing of this partition was acknowledged; to go on, restore it again with --topic t --partition 0, the other options as before") {
		t.Errorf("resume %d, error %v", ps.sum.Resume, ps.sum.Err)
	}
	// Done, all acknowledged: no error.
	ps = newPS()
	ps.acked = ps.seen
	ps.finish(&Config{})
	if ps.sum.Err != nil {
		t.Errorf("error %v", ps.sum.Err)
	}
}

// unansweringCluster returns a broker with topic t (one partition) that
// never answers a produce request.
func unansweringCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		select {}
	})
	return c
}

// TestStall fails the records of a restore when the target stops answering.
func TestStall(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	backuptest.WriteSegment(t, root, "t", 0, name(0), recs(0, 9), 5, segment.None)
	c := unansweringCluster(t)
	start := time.Now()
	sum, err := restore(t, root, c.ListenAddrs(), Config{StallTimeout: time.Second})
	if !errors.Is(err, errStalled) {
		t.Fatalf("error %v, want a stall", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("took %v", took)
	}
	if ps := part(t, sum, "t", 0); ps.Err == nil || ps.Records != 0 {
		t.Errorf("summary %+v", ps)
	}
}

// TestInterrupted stops a restore when its context is cancelled, waiting
// only briefly for records in flight.
func TestInterrupted(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	backuptest.WriteSegment(t, root, "t", 0, name(0), recs(0, 99), 10, segment.None)
	c := unansweringCluster(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	sum, err := Run(ctx, Config{Source: backuptest.OpenTree(t, root), Brokers: c.ListenAddrs(), StallTimeout: 3 * time.Second})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("error %v, want interrupted", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %v", took)
	}
	if sum == nil || sum.Totals().Records != 0 || part(t, sum, "t", 0).Err == nil {
		t.Errorf("summary %+v", sum)
	}
}

// TestBatchBytes checks batchBytes against franz-go itself: a record whose
// batchBytes is the producer's limit is accepted, one byte more is refused
// client-side, so restore stops where franz-go would refuse, not after.
func TestBatchBytes(t *testing.T) {
	t.Parallel()
	brokers := cluster(t, 1, "t")
	const limit = 20_000
	for _, tc := range []struct {
		extra int
		ok    bool
	}{{0, true}, {1, false}} {
		r := segment.Record{Key: []byte("k"), Value: bytes.Repeat([]byte("v"), 100),
			Headers: []segment.Header{{Key: "h", Value: []byte("x")}, {Key: "n", Value: nil}}}
		for i := 0; i < 5 && batchBytes(&r) != int64(limit+tc.extra); i++ { // varint widths move
			r.Value = bytes.Repeat([]byte("v"), len(r.Value)+int(int64(limit+tc.extra)-batchBytes(&r)))
		}
		if got := batchBytes(&r); got != int64(limit+tc.extra) {
			t.Fatalf("batchBytes %d, want %d", got, limit+tc.extra)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerBatchMaxBytes(limit), kgo.ProducerBatchCompression(kgo.NoCompression()))
		if err != nil {
			t.Fatal(err)
		}
		kr := &kgo.Record{Topic: "t", Key: r.Key, Value: r.Value, Timestamp: time.UnixMilli(base)}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = cl.ProduceSync(ctx, kr).FirstErr()
		cancel()
		cl.Close()
		if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, kerr.MessageTooLarge)) {
			t.Errorf("batchBytes %d, limit %d: produce error %v", limit+tc.extra, limit, err)
		}
	}
}
