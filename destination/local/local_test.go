package local_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/kafka-backup/kafka-backup/destination/local"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/offsets"
	"github.com/kafka-backup/kafka-backup/rolling"
	"github.com/kafka-backup/kafka-backup/segment"
)

// segmentBytes encodes the given offsets, batchSize records per batch, as a
// backup file holds them.
func segmentBytes(t *testing.T, offs []int64, batchSize int) []byte {
	t.Helper()
	enc, err := segment.NewEncoder(segment.None)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for len(offs) > 0 {
		n := min(batchSize, len(offs))
		recs := make([]segment.Record, n)
		for i := range recs {
			recs[i] = segment.Record{Offset: offs[i], Timestamp: 1_700_000_000_000, Key: []byte("k"), Value: []byte("value")}
		}
		var k int
		out, k = enc.AppendBatch(out, recs, 1<<20)
		if k != n {
			t.Fatalf("encoded %d of %d records", k, n)
		}
		offs = offs[n:]
	}
	return out
}

func span(first, last int64) []int64 {
	var out []int64
	for o := first; o <= last; o++ {
		out = append(out, o)
	}
	return out
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sorted(rs []offsets.Range) []offsets.Range {
	rs = slices.Clone(rs)
	sort.Slice(rs, func(i, j int) bool { return rs[i].First < rs[j].First })
	return rs
}

func TestPublishRenames(t *testing.T) {
	for _, fsync := range []bool{false, true} {
		root := t.TempDir()
		d := local.New(root)
		pdir := layout.PartitionDir(root, "t", 0)
		data := segmentBytes(t, span(100, 109), 4)
		tmp := filepath.Join(pdir, layout.InProgressName("100", "i1"))
		writeFile(t, tmp, data)
		f := rolling.File{Topic: "t", Partition: 0, Path: tmp, Name: "100", FirstOffset: 100, LastOffset: 109, Fsync: fsync}
		if err := d.Publish(context.Background(), f); err != nil {
			t.Fatalf("fsync %v: Publish: %v", fsync, err)
		}
		if _, err := os.Lstat(tmp); !os.IsNotExist(err) {
			t.Fatalf("in-progress file still there: %v", err)
		}
		if got := readFile(t, filepath.Join(pdir, "100")); string(got) != string(data) {
			t.Fatal("final file does not hold the in-progress file's bytes")
		}
		rs, err := d.Persisted(context.Background(), "t", 0)
		if err != nil || !slices.Equal(rs, []offsets.Range{{First: 100, Last: 109}}) {
			t.Fatalf("Persisted = %v, %v", rs, err)
		}
	}
}

func TestPublishNeverReplaces(t *testing.T) {
	root := t.TempDir()
	d := local.New(root)
	pdir := layout.PartitionDir(root, "t", 0)
	// The existing final file holds 100-104; the new file's first batch,
	// 100-109, is only partly held, so it cannot be trimmed away.
	old := segmentBytes(t, span(100, 104), 10)
	writeFile(t, filepath.Join(pdir, "100"), old)
	tmp := filepath.Join(pdir, layout.InProgressName("100", "i2"))
	newer := segmentBytes(t, span(100, 150), 10)
	writeFile(t, tmp, newer)

	err := d.Publish(context.Background(), rolling.File{Path: tmp, Name: "100", Fsync: true})
	if err == nil {
		t.Fatal("Publish replaced an existing final file")
	}
	if !strings.Contains(err.Error(), "already exists") {
		t.Errorf("error %q does not say the file exists", err)
	}
	if got := readFile(t, filepath.Join(pdir, "100")); string(got) != string(old) {
		t.Fatal("the existing final file changed")
	}
	if got := readFile(t, tmp); string(got) != string(newer) {
		t.Fatal("the in-progress file was not left in place")
	}
}

// TestPublishTrimsWhatFinalFilesHold: two writers backed up the same
// records (a rebalance); the second file's name is taken, so the batches the
// first holds are cut and the rest is published under its new first offset.
func TestPublishTrimsWhatFinalFilesHold(t *testing.T) {
	root := t.TempDir()
	d := local.New(root)
	pdir := layout.PartitionDir(root, "t", 0)
	old := segmentBytes(t, span(100, 129), 10)
	writeFile(t, filepath.Join(pdir, "100"), old)
	tmp := filepath.Join(pdir, layout.InProgressName("100", "i2"))
	writeFile(t, tmp, segmentBytes(t, span(100, 150), 10))
	if err := d.Publish(context.Background(), rolling.File{Path: tmp, Name: "100", Fsync: true}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(pdir, "100")); string(got) != string(old) {
		t.Fatal("the existing final file changed")
	}
	rs, err := local.FinalRanges(pdir)
	if err != nil || !slices.Equal(sorted(rs), []offsets.Range{{First: 100, Last: 129}, {First: 130, Last: 150}}) {
		t.Fatalf("final ranges %v, %v; want 100-150 once", rs, err)
	}
	if _, err := os.Stat(filepath.Join(pdir, "130")); err != nil {
		t.Fatalf("the trimmed file is not final as 130: %v", err)
	}
	// A file whose every batch is held is deleted.
	tmp = filepath.Join(pdir, layout.InProgressName("100", "i3"))
	writeFile(t, tmp, segmentBytes(t, span(100, 139), 10))
	if err := d.Publish(context.Background(), rolling.File{Path: tmp, Name: "100"}); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(pdir); len(entries) != 2 {
		t.Fatalf("folder holds %v, want 100 and 130 only", entries)
	}
}

// TestPublishCutsBatchesOthersHold: a rebalance moved the partition while
// the old owner had its file open; the new owner's files, already final,
// hold some of its batches. They are cut before it is published, whatever
// its name: at its end (the name stays), at its start (it gets the name of
// its new first offset), and a batch only partly held is kept whole.
func TestPublishCutsBatchesOthersHold(t *testing.T) {
	root := t.TempDir()
	d := local.New(root)
	pdir := layout.PartitionDir(root, "t", 0)
	publish := func(name string, first, last int64, batch int) {
		t.Helper()
		tmp := filepath.Join(pdir, layout.InProgressName(name, "old-owner"))
		writeFile(t, tmp, segmentBytes(t, span(first, last), batch))
		f := rolling.File{Path: tmp, Name: name, FirstOffset: first, LastOffset: last, Ranges: []offsets.Range{{First: first, Last: last}}}
		if err := d.Publish(context.Background(), f); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(tmp); !os.IsNotExist(err) {
			t.Fatalf("in-progress file %s still there: %v", tmp, err)
		}
	}
	held := func(name string) []offsets.Range {
		t.Helper()
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, name), readFile(t, filepath.Join(pdir, name)))
		rs, err := local.FinalRanges(dir)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}

	writeFile(t, filepath.Join(pdir, "50"), segmentBytes(t, span(50, 69), 10)) // the new owner's
	publish("30", 30, 54, 10)                                                  // 30-39, 40-49, 50-54: the last is held
	if rs := held("30"); !slices.Equal(rs, []offsets.Range{{First: 30, Last: 49}}) {
		t.Fatalf("30 holds %v, want 30-49: its last batch is in 50", rs)
	}
	publish("65", 65, 79, 5) // 65-69 held, 70-79 not
	if rs := held("70"); !slices.Equal(rs, []offsets.Range{{First: 70, Last: 79}}) {
		t.Fatalf("70 holds %v, want 70-79", rs)
	}
	if _, err := os.Lstat(filepath.Join(pdir, "65")); !os.IsNotExist(err) {
		t.Fatalf("65 exists: %v", err)
	}
	publish("25", 25, 34, 10) // one batch, partly held by 30: kept whole
	if rs := held("25"); !slices.Equal(rs, []offsets.Range{{First: 25, Last: 34}}) {
		t.Fatalf("25 holds %v, want 25-34 whole", rs)
	}
	publish("40", 40, 49, 5) // all held: nothing to publish
	if entries, _ := os.ReadDir(pdir); len(entries) != 4 {
		t.Fatalf("folder holds %v, want 25, 30, 50 and 70", entries)
	}
}

func TestPublishAfterLinkWithoutUnlink(t *testing.T) {
	// A previous Publish linked the final name and died before removing the
	// in-progress name: publishing again finishes the job.
	root := t.TempDir()
	d := local.New(root)
	pdir := layout.PartitionDir(root, "t", 3)
	data := segmentBytes(t, span(0, 9), 5)
	tmp := filepath.Join(pdir, layout.InProgressName("0", "i1"))
	writeFile(t, tmp, data)
	if err := os.Link(tmp, filepath.Join(pdir, "0")); err != nil {
		t.Skipf("no hard links here: %v", err)
	}
	if err := d.Publish(context.Background(), rolling.File{Path: tmp, Name: "0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(tmp); !os.IsNotExist(err) {
		t.Fatalf("in-progress name still there: %v", err)
	}
	if got := readFile(t, filepath.Join(pdir, "0")); string(got) != string(data) {
		t.Fatal("final file changed")
	}
}

func TestPublishMissingFile(t *testing.T) {
	root := t.TempDir()
	pdir := layout.PartitionDir(root, "t", 0)
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		t.Fatal(err)
	}
	err := local.New(root).Publish(context.Background(), rolling.File{Path: filepath.Join(pdir, ".5.i.inprogress"), Name: "5"})
	if err == nil {
		t.Fatal("Publish of a missing file succeeded")
	}
	if _, err := os.Lstat(filepath.Join(pdir, "5")); !os.IsNotExist(err) {
		t.Fatal("a final file appeared")
	}
}

func TestFinalRanges(t *testing.T) {
	root := t.TempDir()
	dir := layout.PartitionDir(root, "t", 0)
	put := func(name string, data []byte) { writeFile(t, filepath.Join(dir, name), data) }

	put("0", segmentBytes(t, span(0, 9), 3))
	put("10", segmentBytes(t, span(10, 19), 10))
	put("00000000000000000020.log", segmentBytes(t, span(20, 29), 4))
	put("30", segmentBytes(t, []int64{30, 32, 35}, 1)) // gaps between batches
	// A file that ends inside a batch: its complete batches count.
	torn := segmentBytes(t, span(60, 69), 5)
	put("60", torn[:len(torn)-7])
	// Ignored: in-progress, hidden, stray and badly named files with
	// valid content; an empty file; garbage; a folder; a symbolic link.
	valid := segmentBytes(t, span(1000, 1009), 10)
	put(".40.host-1.inprogress", valid)
	put(layout.InProgressName("00000000000000000041.log", "h"), valid)
	put(".50", valid)
	put("0101", valid)
	put("101.log", valid)
	put("stray.txt", valid)
	put("70.tmp", valid)
	put("80", nil)
	put("90", []byte("this is not a record batch at all, not even close to one"))
	if err := os.MkdirAll(filepath.Join(dir, "95"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "0"), filepath.Join(dir, "99")); err != nil {
		t.Logf("no symbolic link: %v", err)
	}

	got, err := local.FinalRanges(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Gaps between batches are not covered: offsets 31, 33 and 34 may
	// still come.
	want := []offsets.Range{{First: 0, Last: 9}, {First: 10, Last: 19}, {First: 20, Last: 29}, {First: 30, Last: 30}, {First: 32, Last: 32}, {First: 35, Last: 35}, {First: 60, Last: 64}}
	if got = sorted(got); !slices.Equal(got, want) {
		t.Fatalf("FinalRanges = %v, want %v", got, want)
	}
	persisted, err := local.New(root).Persisted(context.Background(), "t", 0)
	if err != nil || !slices.Equal(sorted(persisted), want) {
		t.Fatalf("Persisted = %v, %v; want %v", persisted, err, want)
	}
}

func TestFinalRangesOfMissingFolder(t *testing.T) {
	root := t.TempDir()
	rs, err := local.FinalRanges(filepath.Join(root, "nothing", "here"))
	if err != nil || len(rs) != 0 {
		t.Fatalf("FinalRanges = %v, %v", rs, err)
	}
	rs, err = local.New(root).Persisted(context.Background(), "t", 7)
	if err != nil || len(rs) != 0 {
		t.Fatalf("Persisted = %v, %v", rs, err)
	}
}

func TestFinalRangesUnreadableFolder(t *testing.T) {
	root := t.TempDir()
	notDir := filepath.Join(root, "file")
	writeFile(t, notDir, []byte("x"))
	if _, err := local.FinalRanges(notDir); err == nil {
		t.Fatal("FinalRanges of a file succeeded")
	}
}
