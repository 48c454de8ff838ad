package inspect

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kafka-backup/kafka-backup/internal/backuptest"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tests/ftptest"
	"github.com/kafka-backup/kafka-backup/tree"
)

// varied returns n records from offset first with every kind of key, value
// and header: null, empty, UTF-8 and not, duplicate header names, null
// header values; timestamps from ts, not monotonic.
func varied(first int64, n int, ts int64) []segment.Record {
	out := make([]segment.Record, n)
	for i := range out {
		off := first + int64(i)
		r := segment.Record{Offset: off, Timestamp: ts + int64(i*10) - int64(i%3)*25}
		switch i % 6 {
		case 0:
			r.Key, r.Value = nil, []byte(fmt.Sprintf("value-%d <&>", off))
		case 1:
			r.Key, r.Value = []byte{}, nil // empty key, tombstone
		case 2:
			r.Key, r.Value = []byte{0xff, 0xfe, 0x00, byte(i)}, []byte{} // not UTF-8, empty value
		case 3:
			r.Key, r.Value = []byte(fmt.Sprintf("k-%d", off)), []byte{0xc3, 0x28, byte(i)} // invalid UTF-8 value
		default:
			r.Key, r.Value = []byte("ключ"), []byte(strings.Repeat("v", i%50))
		}
		if i%2 == 0 {
			r.Headers = []segment.Header{
				{Key: "trace", Value: []byte("a")},
				{Key: "trace", Value: []byte("b")},
				{Key: "null", Value: nil},
				{Key: "empty", Value: []byte{}},
				{Key: "bin", Value: []byte{0x80}},
			}
		}
		out[i] = r
	}
	return out
}

func name(off int64) string { return layout.NamePlain.FileName(off) }

// batchStarts returns the byte position of every batch of data.
func batchStarts(t testing.TB, data []byte) []int64 {
	t.Helper()
	var out []int64
	if err := WalkHeaders(bytes.NewReader(data), int64(len(data)), func(h BatchHeader) { out = append(out, h.Position) }); err != nil {
		t.Fatal(err)
	}
	return out
}

// cleanTree writes two topics: a/0 with three files (a gap between the
// second and third), gzip and zstd batches; a/1 with one file; b/0 with one
// file. It returns the root and the records by partition.
func cleanTree(t testing.TB) (string, map[string][]segment.Record) {
	root := t.TempDir()
	want := map[string][]segment.Record{}
	a0 := varied(0, 300, 1_700_000_000_000)
	backuptest.WriteSegment(t, root, "a", 0, name(0), a0[:100], 7, segment.None)
	backuptest.WriteSegment(t, root, "a", 0, name(100), a0[100:200], 30, segment.Gzip)
	a0b := varied(250, 50, 1_700_000_100_000) // offsets 250-299: a gap 200-249
	backuptest.WriteSegment(t, root, "a", 0, name(250), a0b, 9, segment.Zstd)
	want["a/0"] = append(append([]segment.Record{}, a0[:200]...), a0b...)
	a1 := varied(1000, 10, 1_600_000_000_000)
	backuptest.WriteSegment(t, root, "a", 1, name(1000), a1, 100, segment.Snappy)
	want["a/1"] = a1
	b0 := varied(5, 1, 1_500_000_000_000)
	backuptest.WriteSegment(t, root, "b", 0, layout.NameKafka.FileName(5), b0, 1, segment.LZ4)
	want["b/0"] = b0
	return root, want
}

func problemsOf(rep *VerifyReport) string {
	var b strings.Builder
	for _, p := range rep.Problems() {
		b.WriteString(p.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func TestVerifyClean(t *testing.T) {
	root, want := cleanTree(t)
	rep, err := Verify(context.Background(), backuptest.OpenTree(t, root), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The gap 200-249 of a/0 is the only warning: offsets no file holds.
	if !rep.OK || rep.Errors != 0 || rep.Warnings != 1 {
		t.Fatalf("clean tree: %d errors, %d warnings:\n%s", rep.Errors, rep.Warnings, problemsOf(rep))
	}
	if p := one(t, rep, KindGap); p.Severity != SeverityWarning || p.Topic != "a" || p.Partition != 0 || *p.Offset != 200 ||
		!strings.Contains(p.Message, "50 offsets no file holds (200-249)") || !strings.Contains(p.Message, "lost files") {
		t.Errorf("gap: %s", p)
	}
	if len(rep.Partitions) != 3 || rep.Files != 5 || rep.Records != 261 {
		t.Fatalf("%d partitions, %d files, %d records", len(rep.Partitions), rep.Files, rep.Records)
	}
	a0 := rep.Partitions[0]
	if a0.Topic != "a" || a0.Partition != 0 || a0.Records != 250 {
		t.Fatalf("a/0: %+v", a0)
	}
	if fmt.Sprint(a0.Offsets) != "[{0 199} {250 299}]" || fmt.Sprint(a0.Gaps) != "[{200 249}]" || a0.GapOffsets != 50 {
		t.Errorf("a/0: offsets %v, gaps %v (%d)", a0.Offsets, a0.Gaps, a0.GapOffsets)
	}
	// Timestamps: the least and greatest of the records.
	f := a0.Files[0]
	var lo, hi int64 = 1 << 62, -1 << 62
	for _, r := range want["a/0"][:100] {
		lo, hi = min(lo, r.Timestamp), max(hi, r.Timestamp)
	}
	if *f.MinTimestamp != lo || *f.MaxTimestamp != hi || *f.FirstOffset != 0 || *f.LastOffset != 99 || f.Records != 100 || !f.OK || f.BytesRead != f.Size {
		t.Errorf("a/0/0: %+v", f)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	for _, s := range []string{"a/0: 1 warning: 3 files, 250 records, offsets 0-199, 250-299", "warning gap: a/0: offset 200: 50 offsets no file holds (200-249)", "a/1: OK:", "Total: 3 partitions, 5 files, 261 records", "0 errors, 1 warning: OK."} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("text report does not say %q:\n%s", s, text.String())
		}
	}
	// JSON round trip.
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		OK         bool
		Partitions []struct {
			Topic    string
			Problems []Problem
			Files    []VerifiedFile
		}
	}
	if err := json.Unmarshal(b, &back); err != nil || !back.OK || len(back.Partitions) != 3 || back.Partitions[0].Problems == nil {
		t.Errorf("JSON: %v %s", err, b)
	}

	// Filters.
	rep, err = Verify(context.Background(), backuptest.OpenTree(t, root), VerifyOptions{Filter: Filter{Topics: []string{"a"}, Partitions: []int32{1}}})
	if err != nil || len(rep.Partitions) != 1 || rep.Partitions[0].Partition != 1 || rep.Records != 10 {
		t.Errorf("filter a/1: %v %+v", err, rep)
	}
	if _, err := Verify(context.Background(), backuptest.OpenTree(t, root), VerifyOptions{Filter: Filter{Topics: []string{"nope"}}}); err == nil || !strings.Contains(err.Error(), "no topic nope") {
		t.Errorf("missing topic: %v", err)
	}
}

// one returns the only problem of a report, failing otherwise.
func one(t testing.TB, rep *VerifyReport, kind string) Problem {
	t.Helper()
	var got []Problem
	for _, p := range rep.Problems() {
		if p.Kind == kind {
			got = append(got, p)
		}
	}
	if len(got) != 1 {
		t.Fatalf("want one %s problem, got:\n%s", kind, problemsOf(rep))
	}
	return got[0]
}

func TestVerifyCorrupt(t *testing.T) {
	root := t.TempDir()
	recs := varied(40, 60, 1_700_000_000_000)
	data := backuptest.Encode(t, recs, 10, segment.None)
	starts := batchStarts(t, data)
	// A byte of the third batch's records (covered by the CRC).
	pos := starts[2] + segment.HeaderSize + 3
	data[pos] ^= 0x40
	backuptest.WriteFile(t, root, "t", 0, name(40), data)
	rep, err := Verify(context.Background(), backuptest.OpenTree(t, root), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := one(t, rep, KindCorrupt)
	if rep.OK || p.Severity != SeverityError || p.File != "40" || *p.Position != starts[2] || *p.Offset != 60 {
		t.Fatalf("problem %s", p)
	}
	for _, s := range []string{"/t/0/40: byte " + fmt.Sprint(starts[2]) + ", offset 60:", "CRC32C", "the 20 records before it (up to offset 59) are intact"} {
		if !strings.Contains(p.String(), s) {
			t.Errorf("%q does not say %q", p.String(), s)
		}
	}
	if f := rep.Partitions[0].Files[0]; f.OK || f.Records != 20 || *f.LastOffset != 59 {
		t.Errorf("file %+v", f)
	}
}

func TestVerifyTorn(t *testing.T) {
	root := t.TempDir()
	data := backuptest.Encode(t, varied(0, 30, 1_700_000_000_000), 10, segment.None)
	starts := batchStarts(t, data)
	backuptest.WriteFile(t, root, "t", 3, name(0), data[:len(data)-5])
	// A tail too short for a base offset.
	backuptest.WriteFile(t, root, "t", 4, name(0), append(append([]byte{}, data...), 0, 0, 0))
	rep, err := Verify(context.Background(), backuptest.OpenTree(t, root), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors != 2 {
		t.Fatalf("%d errors:\n%s", rep.Errors, problemsOf(rep))
	}
	p := rep.Partitions[0].Problems[0]
	if p.Kind != KindTorn || *p.Position != starts[2] || *p.Offset != 20 || !strings.Contains(p.Message, "the batch header states base offset 20") {
		t.Errorf("t/3: %s", p)
	}
	p = rep.Partitions[1].Problems[0]
	if p.Kind != KindTorn || *p.Position != int64(len(data)) || *p.Offset != 30 {
		t.Errorf("t/4: %s", p)
	}
}

func TestVerifyMisnamedEmptyOrder(t *testing.T) {
	root := t.TempDir()
	recs := varied(100, 20, 1_700_000_000_000)
	backuptest.WriteSegment(t, root, "t", 0, name(99), recs, 5, segment.None)
	backuptest.WriteFile(t, root, "t", 1, name(7), nil)
	// Two batches, the second with lower offsets than the first.
	low, high := varied(10, 5, 0), varied(20, 5, 0)
	backuptest.WriteFile(t, root, "t", 2, name(20), append(backuptest.Encode(t, high, 5, segment.None), backuptest.Encode(t, low, 5, segment.None)...))
	rep, err := Verify(context.Background(), backuptest.OpenTree(t, root), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := one(t, rep, KindMisnamed); p.File != "99" || *p.Offset != 100 || !strings.Contains(p.Message, "named for offset 99, but its first record has offset 100") {
		t.Errorf("misnamed: %s", p)
	}
	if p := one(t, rep, KindEmpty); p.File != "7" || p.Partition != 1 {
		t.Errorf("empty: %s", p)
	}
	if p := one(t, rep, KindOffsetOrder); p.File != "20" || *p.Offset != 10 || *p.Position == 0 {
		t.Errorf("order: %s", p)
	}
	// t/2 holds 10-14 and 20-24: a gap 15-19.
	if rep.Errors != 3 || rep.Warnings != 1 || one(t, rep, KindGap).Partition != 2 {
		t.Errorf("%d errors, %d warnings:\n%s", rep.Errors, rep.Warnings, problemsOf(rep))
	}
}

func TestVerifyWarnings(t *testing.T) {
	root := t.TempDir()
	recs := varied(0, 100, 1_700_000_000_000)
	backuptest.WriteSegment(t, root, "t", 0, name(0), recs[:50], 10, segment.None)
	backuptest.WriteSegment(t, root, "t", 0, name(50), recs[50:], 10, segment.None)
	backuptest.WriteSegment(t, root, "t", 0, name(40), recs[40:60], 10, segment.None) // overlaps both
	backuptest.WriteSegment(t, root, "t", 0, ".100.host-1.inprogress", varied(100, 3, 0), 10, segment.None)
	backuptest.WriteFile(t, root, "t", 0, ".50.host-2.upload", nil)
	backuptest.WriteFile(t, root, "t", 0, "notes.txt", []byte("hi"))
	// Interleaved without shared offsets: 0,2,4 and 1,3,5.
	var even, odd []segment.Record
	for i, r := range varied(0, 6, 0) {
		if i%2 == 0 {
			even = append(even, r)
		} else {
			odd = append(odd, r)
		}
	}
	backuptest.WriteSegment(t, root, "t", 1, name(0), even, 10, segment.None)
	backuptest.WriteSegment(t, root, "t", 1, name(1), odd, 10, segment.None)
	rep, err := Verify(context.Background(), backuptest.OpenTree(t, root), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Errors != 0 {
		t.Fatalf("errors:\n%s", problemsOf(rep))
	}
	p0 := rep.Partitions[0]
	if len(p0.Overlaps) != 2 || p0.Overlaps[0].Files != [2]string{"0", "40"} || p0.Overlaps[0].Count != 10 ||
		p0.Overlaps[1].Files != [2]string{"40", "50"} || fmt.Sprint(p0.Overlaps[1].Offsets) != "[{50 59}]" {
		t.Errorf("overlaps %+v", p0.Overlaps)
	}
	if len(p0.Leftovers) != 2 || p0.Leftovers[0].Kind != "inprogress" || p0.Leftovers[1].Kind != "upload" || fmt.Sprint(p0.Stray) != "[notes.txt]" {
		t.Errorf("leftovers %+v, stray %v", p0.Leftovers, p0.Stray)
	}
	if fmt.Sprint(p0.Offsets) != "[{0 99}]" || len(p0.Gaps) != 0 || p0.Records != 120 {
		t.Errorf("offsets %v gaps %v records %d", p0.Offsets, p0.Gaps, p0.Records)
	}
	one(t, rep, KindInterleaved)
	one(t, rep, KindStray)
	if rep.Warnings != 6 {
		t.Errorf("%d warnings:\n%s", rep.Warnings, problemsOf(rep))
	}
	if p := rep.Partitions[1]; fmt.Sprint(p.Offsets) != "[{0 5}]" || len(p.Overlaps) != 0 {
		t.Errorf("t/1: %+v", p)
	}
}

// TestVerifyMarker checks the FTP destination's marker against the files:
// offsets it claims for a file that does not hold them would be skipped by
// the next run.
func TestVerifyMarker(t *testing.T) {
	srv := ftptest.Start(t)
	root := srv.LocalPath("/backups")
	backuptest.WriteSegment(t, root, "t", 0, name(40), varied(40, 60, 1_700_000_000_000), 10, segment.None)
	loc := fmt.Sprintf("ftp://%s@%s/backups", srv.User, srv.Addr)
	verify := func(marker string) *VerifyReport {
		t.Helper()
		backuptest.WriteFile(t, root, "t", 0, layout.MarkerName, []byte(marker))
		src, err := tree.Open(context.Background(), loc, tree.Options{Password: srv.Password})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		rep, err := Verify(context.Background(), src, VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}

	if rep := verify("40 40-99\n"); !rep.OK || len(rep.Problems()) != 0 {
		t.Fatalf("a marker that matches the files: %s", problemsOf(rep))
	}
	// A line for a file no longer there: the file was uploaded, then lost
	// on the server, and the consumer group has moved past its records.
	rep := verify("40 40-99\n500 500-510\n")
	if p := one(t, rep, KindMissing); rep.OK || p.Severity != SeverityError || p.File != "500" || *p.Offset != 500 ||
		!strings.HasSuffix(p.Path, "/t/0/500") || !strings.Contains(p.Message, "500-510") {
		t.Errorf("a marker listing a file not there: %s", problemsOf(rep))
	}
	rep = verify("40 40-79,90-120\n")
	p := one(t, rep, KindMarker)
	if rep.OK || p.Severity != SeverityError || p.File != "40" || *p.Offset != 100 || !strings.HasSuffix(p.Path, "/t/0/"+layout.MarkerName) {
		t.Fatalf("problem %+v", p)
	}
	for _, s := range []string{"21 offsets", "(100-120)", "would skip them", "Delete " + layout.MarkerName} {
		if !strings.Contains(p.String(), s) {
			t.Errorf("%q does not say %q", p.String(), s)
		}
	}
}

func TestList(t *testing.T) {
	root, want := cleanTree(t)
	backuptest.WriteFile(t, root, "a", 1, ".1010.h-1.inprogress", []byte{1, 2, 3})
	rep, err := List(context.Background(), backuptest.OpenTree(t, root), ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors != 0 || rep.Files != 5 || rep.Records != 261 || len(rep.Partitions) != 3 {
		t.Fatalf("%+v", rep)
	}
	for _, p := range rep.Partitions {
		w := want[fmt.Sprintf("%s/%d", p.Topic, p.Partition)]
		var lo, hi int64 = 1 << 62, -1 << 62
		for _, r := range w {
			hi = max(hi, r.Timestamp)
		}
		// The least record timestamp: varied's timestamps are not
		// monotonic, so it is not the first timestamp of a batch.
		for _, r := range w {
			lo = min(lo, r.Timestamp)
		}
		if p.Records != int64(len(w)) || *p.FirstOffset != w[0].Offset || *p.LastOffset != w[len(w)-1].Offset || *p.MaxTimestamp != hi || *p.MinTimestamp != lo {
			t.Errorf("%s/%d: %+v (least timestamp %d, want %d)", p.Topic, p.Partition, p, *p.MinTimestamp, lo)
		}
	}
	// Per file too: a/0/0 holds a0[:100], whose least timestamp is not its
	// first batch's first.
	lo := int64(1 << 62)
	for _, r := range want["a/0"][:100] {
		lo = min(lo, r.Timestamp)
	}
	if f := rep.Partitions[0].Files[0]; *f.MinTimestamp != lo || lo == want["a/0"][0].Timestamp {
		t.Errorf("a/0/0: least timestamp %d, want %d", *f.MinTimestamp, lo)
	}
	if p := rep.Partitions[0]; len(p.Files) != 3 || p.Files[1].Name != "100" || p.Files[1].Records != 100 || p.Files[1].Batches != 4 || *p.Files[2].FirstOffset != 250 {
		t.Errorf("a/0 files %+v", p.Files)
	}
	if l := rep.Partitions[1].Leftovers; len(l) != 1 || l[0].Size != 3 {
		t.Errorf("leftovers %+v", l)
	}
	var text bytes.Buffer
	rep.WriteText(&text, true)
	for _, s := range []string{"a/0: 3 files, offsets 0-299, 250 records", "a/1: 1 file, offsets 1000-1009, 10 records", "b/0: 1 file, offsets 5-5, 1 record,", "00000000000000000005.log", "hidden inprogress file .1010.h-1.inprogress (3 bytes)", "Total: 3 partitions, 5 files, 261 records"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("listing does not say %q:\n%s", s, text.String())
		}
	}

	// A torn file: the batches before are listed, with the error.
	data := backuptest.Encode(t, varied(0, 20, 0), 5, segment.None)
	backuptest.WriteFile(t, root, "c", 0, name(0), data[:len(data)-1])
	rep, err = List(context.Background(), backuptest.OpenTree(t, root), ListOptions{Filter: Filter{Topics: []string{"c"}}})
	if err != nil {
		t.Fatal(err)
	}
	if f := rep.Partitions[0].Files[0]; rep.Errors != 1 || f.Records != 15 || !strings.Contains(f.Error, "torn") {
		t.Errorf("torn: %+v", f)
	}
}

// TestWalkHeaders checks that the streaming walk and the ReaderAt walk agree
// with segment.Reader, and both stop on damage the same way.
func TestWalkHeaders(t *testing.T) {
	data := backuptest.Encode(t, varied(0, 200, 5), 13, segment.Gzip)
	var want []BatchHeader
	rd := segment.NewReader(bytes.NewReader(data))
	for {
		b, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, BatchHeader{Position: b.Position, Size: int64(b.Size), BaseOffset: b.BaseOffset, LastOffset: b.LastOffset, FirstTimestamp: b.FirstTimestamp, MaxTimestamp: b.MaxTimestamp, NumRecords: b.NumRecords})
	}
	for _, cut := range []int{0, 1, 30, 61, 100} {
		d := data[:len(data)-cut]
		var a, b []BatchHeader
		errA := WalkHeaders(bytes.NewReader(d), int64(len(d)), func(h BatchHeader) { a = append(a, h) })
		errB := WalkHeaders(io.MultiReader(bytes.NewReader(d)), -1, func(h BatchHeader) { b = append(b, h) })
		if fmt.Sprint(a) != fmt.Sprint(b) || fmt.Sprint(errA) != fmt.Sprint(errB) {
			t.Fatalf("cut %d: ReaderAt %v %v, stream %v %v", cut, a, errA, b, errB)
		}
		if cut == 0 && (errA != nil || fmt.Sprint(a) != fmt.Sprint(want)) {
			t.Fatalf("whole file: %v %v, want %v", a, errA, want)
		}
		if cut > 0 && (errA == nil || !strings.Contains(errA.Error(), "torn")) {
			t.Fatalf("cut %d: %v", cut, errA)
		}
	}
	bad := append([]byte{}, data...)
	binary.BigEndian.PutUint32(bad[8:], 3) // length field
	if err := WalkHeaders(bytes.NewReader(bad), int64(len(bad)), func(BatchHeader) {}); err == nil || !strings.Contains(err.Error(), "length field 3") {
		t.Fatalf("bad length: %v", err)
	}
}

func catLines(t testing.TB, data []byte, opts CatOptions) ([]segment.Record, []map[string]any, error) {
	t.Helper()
	var out bytes.Buffer
	res, err := Cat(context.Background(), bytes.NewReader(data), &out, opts)
	var recs []segment.Record
	var raw []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if line == "" {
			continue
		}
		var j JSONRecord
		if err := json.Unmarshal([]byte(line), &j); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		r, err := j.Record()
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
		var m map[string]any
		_ = json.Unmarshal([]byte(line), &m)
		raw = append(raw, m)
	}
	if int64(len(recs)) != res.Records {
		t.Fatalf("Cat says %d records, wrote %d", res.Records, len(recs))
	}
	return recs, raw, err
}

// sameRecords compares null-aware: nil and empty differ.
func sameRecords(t testing.TB, got, want []segment.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		if d := backuptest.RecordDiff(got[i], want[i]); d != "" {
			t.Fatalf("record %d: %s", i, d)
		}
	}
}

func TestCat(t *testing.T) {
	recs := varied(10, 40, 1_700_000_000_000)
	recs[4].Headers = append(recs[4].Headers, segment.Header{Key: "\xff\xfe", Value: []byte("bad key")})
	data := backuptest.Encode(t, recs, 6, segment.Snappy)
	got, raw, err := catLines(t, data, CatOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, got, recs)
	// The JSON itself: null stays null, non-UTF-8 is flagged.
	if raw[0]["key"] != nil || raw[0]["value"] != "value-10 <&>" || raw[0]["key_encoding"] != nil {
		t.Errorf("record 0: %v", raw[0])
	}
	if raw[1]["key"] != "" || raw[1]["value"] != nil {
		t.Errorf("record 1: %v", raw[1])
	}
	if raw[2]["key_encoding"] != "base64" || raw[2]["value"] != "" || raw[2]["value_encoding"] != nil {
		t.Errorf("record 2: %v", raw[2])
	}
	if raw[3]["value_encoding"] != "base64" || raw[3]["key"] != "k-13" {
		t.Errorf("record 3: %v", raw[3])
	}
	hs := raw[4]["headers"].([]any)
	if len(hs) != 6 || hs[2].(map[string]any)["value"] != nil || hs[3].(map[string]any)["value"] != "" ||
		hs[4].(map[string]any)["value_encoding"] != "base64" || hs[5].(map[string]any)["key_encoding"] != "base64" {
		t.Errorf("record 4 headers: %v", hs)
	}
	if h, ok := raw[1]["headers"].([]any); !ok || len(h) != 0 {
		t.Errorf("record 1: headers %v, want []", raw[1]["headers"])
	}

	// --base64, --from-offset, --to-offset.
	from, to := int64(17), int64(31)
	got, raw, err = catLines(t, data, CatOptions{FromOffset: &from, ToOffset: &to, Base64: true})
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, got, recs[7:22])
	if raw[3]["value_encoding"] != "base64" || raw[3]["key_encoding"] != "base64" || raw[3]["value"] != "dnZ2dnZ2dnZ2dg==" {
		t.Errorf("--base64: %v", raw[3])
	}

	// A corrupt batch: the records before it, then an error naming the
	// byte.
	starts := batchStarts(t, data)
	data[starts[3]+segment.HeaderSize+1] ^= 1
	got, _, err = catLines(t, data, CatOptions{})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("byte %d: corrupt batch", starts[3])) || !strings.Contains(err.Error(), "up to offset 27") {
		t.Fatalf("corrupt: %v", err)
	}
	sameRecords(t, got, recs[:18])
}

// TestFTP verifies, lists and cats a tree on an FTP server.
func TestFTP(t *testing.T) {
	srv := ftptest.Start(t)
	root, want := cleanTree(t)
	if err := os.CopyFS(srv.LocalPath("/backups/kafka"), os.DirFS(root)); err != nil {
		t.Fatal(err)
	}
	backuptest.WriteFile(t, srv.LocalPath("/backups/kafka"), "a", 1, ".1010.h-1.inprogress", []byte{1, 2, 3})
	loc := fmt.Sprintf("ftp://%s@%s/backups/kafka", srv.User, srv.Addr)
	ctx := context.Background()
	src, err := tree.Open(ctx, loc, tree.Options{Password: srv.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	rep, err := Verify(ctx, src, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors != 0 || rep.Warnings != 2 || rep.Records != 261 || rep.Files != 5 { // a leftover, the gap of a/0
		t.Fatalf("FTP verify: %+v\n%s", rep, problemsOf(rep))
	}
	if p := one(t, rep, KindLeftover); !strings.HasPrefix(p.Path, "ftp://") || strings.Contains(p.Path, srv.Password) {
		t.Errorf("leftover path %q", p.Path)
	}
	lrep, err := List(ctx, src, ListOptions{})
	if err != nil || lrep.Records != 261 || lrep.Errors != 0 {
		t.Fatalf("FTP list: %v %+v", err, lrep)
	}
	rc, err := tree.OpenFile(ctx, loc+"/a/0/100", tree.Options{Password: srv.Password})
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := catLines(t, data, CatOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, got, want["a/0"][100:200])
	for _, bad := range []string{loc + "/a/x/100", loc[:strings.LastIndex(loc, "/")] + "/100"} {
		if _, err := tree.OpenFile(ctx, bad, tree.Options{Password: srv.Password}); err == nil {
			t.Errorf("tree.OpenFile(%s) succeeded", bad)
		}
	}
	if _, err := tree.OpenFile(ctx, loc+"/a/0/999", tree.Options{Password: srv.Password}); err == nil {
		t.Error("a missing file opened")
	}

	// Torn files in every partition, one connection: verify re-opens a
	// file to read a bad batch's header only after closing it.
	for _, p := range []string{"a/0/0", "a/1/1000", "b/0/00000000000000000005.log"} {
		f := srv.LocalPath("/backups/kafka/" + p)
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(f, st.Size()-1); err != nil {
			t.Fatal(err)
		}
	}
	one, err := tree.Open(ctx, loc, tree.Options{Password: srv.Password, MaxConnections: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rep, err = Verify(tctx, one, VerifyOptions{Parallel: 4})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors != 3 {
		t.Errorf("%d errors:\n%s", rep.Errors, problemsOf(rep))
	}
	for _, p := range rep.Problems() {
		if p.Kind == KindTorn && p.Offset == nil {
			t.Errorf("no offset: %s", p)
		}
	}
}

// TestVerifyEmptyAndStrays: a location without partitions is an error
// unless AllowEmpty; names at the root and in topic folders that are not
// topic or partition folders, and FIFOs, are stray warnings, in Verify and
// in List.
func TestVerifyEmptyAndStrays(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	rep, err := Verify(ctx, backuptest.OpenTree(t, root), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := one(t, rep, KindNoData); rep.OK || p.Severity != SeverityError || !strings.Contains(p.Message, "--allow-empty") {
		t.Errorf("empty location: %s", problemsOf(rep))
	}
	if rep, err := Verify(ctx, backuptest.OpenTree(t, root), VerifyOptions{AllowEmpty: true}); err != nil || !rep.OK || len(rep.Problems()) != 0 {
		t.Errorf("empty location, AllowEmpty: %v %s", err, problemsOf(rep))
	}
	backuptest.WriteSegment(t, root, "t", 0, name(0), varied(0, 10, 0), 5, segment.None)
	if rep, _ := Verify(ctx, backuptest.OpenTree(t, root), VerifyOptions{Filter: Filter{Partitions: []int32{3}}}); rep.OK || one(t, rep, KindNoData).Severity != SeverityError {
		t.Errorf("a selection without partitions: %s", problemsOf(rep))
	}
	if err := os.WriteFile(root+"/notes", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(root+"/t/p0", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(root+"/t/0/10", 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err = Verify(ctx, backuptest.OpenTree(t, root), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range rep.Problems() {
		if p.Kind == KindStray && p.Severity == SeverityWarning {
			got[p.Path[len(root):]] = p.Message
		}
	}
	if len(got) != 3 || !strings.Contains(got["/notes"], "neither a topic folder") ||
		!strings.Contains(got["/t/p0"], "neither a partition folder") || !strings.HasPrefix(got["/t/0/10"], "a FIFO, not a regular file") || !rep.OK || rep.Records != 10 {
		t.Errorf("strays %q; report:\n%s", got, problemsOf(rep))
	}
	lrep, err := List(ctx, backuptest.OpenTree(t, root), ListOptions{})
	if err != nil || !slices.Equal(lrep.Stray, []string{"notes", "t/p0"}) || !slices.Equal(lrep.Partitions[0].Stray, []string{"10 (a FIFO)"}) {
		t.Errorf("List strays %q, %q, %v", lrep.Stray, lrep.Partitions[0].Stray, err)
	}
}

// TestVerifyMissingSelectedPartition: --partition naming a partition no
// selected topic has is not OK, as a --topic naming a missing topic is not,
// even when another selected partition is there.
func TestVerifyMissingSelectedPartition(t *testing.T) {
	root, _ := cleanTree(t)
	rep, err := Verify(context.Background(), backuptest.OpenTree(t, root), VerifyOptions{Filter: Filter{Topics: []string{"a"}, Partitions: []int32{0, 5}}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || !strings.Contains(problemsOf(rep), "partition 5") {
		t.Fatalf("verify --topic a --partition 0 --partition 5 of a tree without a/5: OK %v, problems %s; want an error naming partition 5", rep.OK, problemsOf(rep))
	}
	// Partition 1 is in a, not in b: selecting both topics, it is there.
	rep, err = Verify(context.Background(), backuptest.OpenTree(t, root), VerifyOptions{Filter: Filter{Partitions: []int32{0, 1}}})
	if err != nil || !rep.OK {
		t.Fatalf("verify --partition 0 --partition 1: %v, problems %s; want OK", err, problemsOf(rep))
	}
}
