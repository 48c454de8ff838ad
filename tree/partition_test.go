package tree_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kafka-backup/kafka-backup/internal/backuptest"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tests/ftptest"
	"github.com/kafka-backup/kafka-backup/tree"
)

// recsAt returns records of the given offsets, timestamps 1000+offset.
func recsAt(offs ...int64) []segment.Record {
	out := make([]segment.Record, len(offs))
	for i, o := range offs {
		out[i] = segment.Record{Offset: o, Timestamp: 1000 + o, Key: []byte(fmt.Sprint("k", o)), Value: []byte(fmt.Sprint("v", o))}
	}
	return out
}

// span returns the offsets from first to last, inclusive.
func span(first, last int64) []int64 {
	var out []int64
	for o := first; o <= last; o++ {
		out = append(out, o)
	}
	return out
}

func spans(ss ...[]int64) []int64 {
	var out []int64
	for _, s := range ss {
		out = append(out, s...)
	}
	return out
}

// runs encodes each run of offsets in batches of perBatch records, as the
// kafka_backup output writes what arrives in separate writes: a batch never
// spans two runs.
func runs(t *testing.T, perBatch int, rs ...[]int64) []byte {
	var out []byte
	for _, r := range rs {
		out = append(out, backuptest.Encode(t, recsAt(r...), perBatch, segment.None)...)
	}
	return out
}

// readResult is what reading a partition to its end gave.
type readResult struct {
	offsets  []int64 // in the order returned
	batches  []string
	errs     []error
	warnings []string
	read     int64
	rd       *tree.PartitionReader
}

// readAll reads partition 0 of topic t with a PartitionReader, going on
// after errors (at most 10).
func readAll(t *testing.T, src tree.Source) readResult {
	t.Helper()
	ctx := context.Background()
	part, err := src.List(ctx, "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	var res readResult
	rd := tree.NewPartitionReader(ctx, src, part, tree.ReadOptions{
		OnRead: func(n int) { res.read += int64(n) },
		Warn:   func(m string) { res.warnings = append(res.warnings, m) },
	})
	defer rd.Close()
	res.rd = rd
	for len(res.errs) < 10 {
		b, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err == nil {
			var recs []segment.Record
			if recs, err = b.Records(); err == nil {
				res.batches = append(res.batches, fmt.Sprintf("%s@%d:%d-%d", b.File, b.Position, b.BaseOffset, b.LastOffset))
				for _, r := range recs {
					if r.Timestamp != 1000+r.Offset || string(r.Value) != fmt.Sprint("v", r.Offset) {
						t.Errorf("offset %d: record %+v", r.Offset, r)
					}
					res.offsets = append(res.offsets, r.Offset)
				}
				continue
			}
		}
		res.errs = append(res.errs, err)
	}
	return res
}

func sameOffsets(t *testing.T, got, want []int64) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("offsets\n got %v\nwant %v", got, want)
	}
}

// dirSize is the size of the files of partition 0 of topic t below root.
func dirSize(t *testing.T, root string) int64 {
	t.Helper()
	es, err := os.ReadDir(layout.PartitionDir(root, "t", 0))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range es {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		n += info.Size()
	}
	return n
}

// TestPartitionInterleaved: file 0 holds 0-99 and 200-299, file 100 holds
// 100-199 (a writer fed out of order): the reader returns 0-299 in order,
// each once.
func TestPartitionInterleaved(t *testing.T) {
	root := t.TempDir()
	backuptest.WriteSegment(t, root, "t", 0, "0", recsAt(spans(span(0, 99), span(200, 299))...), 10, segment.None)
	backuptest.WriteSegment(t, root, "t", 0, "100", recsAt(span(100, 199)...), 10, segment.Zstd)
	res := readAll(t, backuptest.OpenTree(t, root))
	sameOffsets(t, res.offsets, span(0, 299))
	if len(res.errs) > 0 || len(res.warnings) > 0 || res.rd.Duplicates() != 0 || res.rd.Late() != 0 {
		t.Errorf("errors %v, warnings %v, duplicates %d, late %d", res.errs, res.warnings, res.rd.Duplicates(), res.rd.Late())
	}
	// File 0 is opened again at its batch at 200; OnRead counts each
	// byte once.
	if size := dirSize(t, root); res.read != size {
		t.Errorf("%d bytes read, files of %d bytes", res.read, size)
	}
	if got := res.rd.Returned(); len(got) != 1 || got[0] != (segment.Range{First: 0, Last: 299}) {
		t.Errorf("returned %v", got)
	}
}

// TestPartitionThreeWayFTP: three files interleaving batch by batch, read
// from an FTP server allowing one connection: the reader never holds two
// files open.
func TestPartitionThreeWayFTP(t *testing.T) {
	srv := ftptest.Start(t)
	root := srv.LocalPath("/b")
	backuptest.WriteFile(t, root, "t", 0, "0", runs(t, 10, span(0, 9), span(30, 39), span(60, 69)))
	backuptest.WriteFile(t, root, "t", 0, "10", runs(t, 10, span(10, 19), span(40, 49)))
	backuptest.WriteFile(t, root, "t", 0, "20", runs(t, 3, span(20, 29), span(50, 59), span(70, 75)))
	src, err := tree.Open(context.Background(), fmt.Sprintf("ftp://%s@%s/b", srv.User, srv.Addr), tree.Options{Password: srv.Password, MaxConnections: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	res := readAll(t, src)
	sameOffsets(t, res.offsets, span(0, 75))
	if len(res.errs) > 0 || len(res.warnings) > 0 {
		t.Errorf("errors %v, warnings %v", res.errs, res.warnings)
	}
}

// TestPartitionOverlapAndDuplicates: a file overlapping the next one, and
// a whole file held twice under both namings: each offset once, in order,
// the copies counted as duplicates; duplicate files are read one after the
// other (every byte once), not alternately.
func TestPartitionOverlapAndDuplicates(t *testing.T) {
	root := t.TempDir()
	backuptest.WriteSegment(t, root, "t", 0, "0", recsAt(span(0, 149)...), 10, segment.None)
	backuptest.WriteSegment(t, root, "t", 0, "100", recsAt(span(100, 249)...), 7, segment.Snappy)
	backuptest.WriteSegment(t, root, "t", 0, "250", recsAt(span(250, 399)...), 10, segment.LZ4)
	backuptest.WriteSegment(t, root, "t", 0, layout.NameKafka.FileName(250), recsAt(span(250, 399)...), 10, segment.LZ4)
	src := &countingSource{Source: backuptest.OpenTree(t, root), opens: map[string]int{}}
	res := readAll(t, src)
	sameOffsets(t, res.offsets, span(0, 399))
	if res.rd.Duplicates() != 50+150 || res.rd.Late() != 0 || len(res.errs) > 0 {
		t.Errorf("duplicates %d (want 200), late %d, errors %v", res.rd.Duplicates(), res.rd.Late(), res.errs)
	}
	if size := dirSize(t, root); res.read != size {
		t.Errorf("%d bytes read, files of %d bytes", res.read, size)
	}
	// Each file is opened once: file 0 is read to its end (its batch at
	// 100 comes no later than file 100's), then 100; the two copies of 250
	// one after the other.
	if fmt.Sprint(src.opens) != "map[0:1 00000000000000000250.log:1 100:1 250:1]" {
		t.Errorf("opens %v", src.opens)
	}
}

// TestPartitionCorruptMidMerge: a corrupt batch in the file read second of
// an interleaved pair: the error names the file, the byte and the offset
// before it, after the records before it in offset order; going on skips
// the rest of that file only.
func TestPartitionCorruptMidMerge(t *testing.T) {
	root := t.TempDir()
	backuptest.WriteSegment(t, root, "t", 0, "0", recsAt(spans(span(0, 99), span(200, 299))...), 10, segment.None)
	data := backuptest.Encode(t, recsAt(span(100, 199)...), 10, segment.None)
	// The third batch (120-129): a byte of its records.
	var positions []int64
	rd := segment.NewReader(strings.NewReader(string(data)))
	for {
		b, err := rd.Next()
		if err != nil {
			break
		}
		positions = append(positions, b.Position)
	}
	data[positions[2]+segment.HeaderSize+3] ^= 0xff
	backuptest.WriteFile(t, root, "t", 0, "100", data)
	res := readAll(t, backuptest.OpenTree(t, root))
	sameOffsets(t, res.offsets, spans(span(0, 119), span(200, 299)))
	if len(res.errs) != 1 {
		t.Fatalf("errors %v, want one", res.errs)
	}
	var re *tree.ReadError
	if !errors.As(res.errs[0], &re) || !tree.Damaged(re) || re.File != "100" || re.Position != positions[2] || re.After != 119 {
		t.Fatalf("error %#v (%v), want file 100 byte %d after offset 119, corrupt", re, res.errs[0], positions[2])
	}
	if s := re.Error(); !strings.Contains(s, fmt.Sprintf("100: byte %d (after offset 119 of the file)", positions[2])) {
		t.Errorf("error %q", s)
	}
}

// TestPartitionTorn: a torn last batch in the file read first ends that
// file; the other file is read on.
func TestPartitionTorn(t *testing.T) {
	root := t.TempDir()
	data := backuptest.Encode(t, recsAt(spans(span(0, 99), span(200, 299))...), 10, segment.None)
	backuptest.WriteFile(t, root, "t", 0, "0", data[:len(data)-5])
	backuptest.WriteSegment(t, root, "t", 0, "100", recsAt(span(100, 199)...), 10, segment.None)
	res := readAll(t, backuptest.OpenTree(t, root))
	sameOffsets(t, res.offsets, span(0, 289))
	if len(res.errs) != 1 || !errors.Is(res.errs[0], segment.ErrTorn) || !strings.Contains(res.errs[0].Error(), "0: byte") {
		t.Errorf("errors %v, want a torn batch in file 0", res.errs)
	}
}

// TestPartitionOddities: an empty file and a misnamed file are warned
// about; records a misnamed file holds below offsets already returned come
// late, counted and warned about.
func TestPartitionOddities(t *testing.T) {
	root := t.TempDir()
	backuptest.WriteSegment(t, root, "t", 0, "0", recsAt(spans(span(0, 19), span(40, 59))...), 10, segment.None)
	backuptest.WriteSegment(t, root, "t", 0, "60", recsAt(span(20, 39)...), 10, segment.None)
	backuptest.WriteFile(t, root, "t", 0, "70", nil)
	res := readAll(t, backuptest.OpenTree(t, root))
	sameOffsets(t, res.offsets, spans(span(0, 19), span(40, 59), span(20, 39)))
	if res.rd.Late() != 20 {
		t.Errorf("late %d, want 20", res.rd.Late())
	}
	all := strings.Join(res.warnings, "\n")
	for _, w := range []string{"60 starts at offset 20, not at the offset its name says", "70 is empty", "60: offset 20 comes after offset 59"} {
		if !strings.Contains(all, w) {
			t.Errorf("warnings %q do not say %q", all, w)
		}
	}
}

// countingSource counts the opens of each file.
type countingSource struct {
	tree.Source
	opens map[string]int
}

func (s *countingSource) Open(ctx context.Context, topic string, partition int32, name string) (io.ReadCloser, error) {
	s.opens[name]++
	return s.Source.Open(ctx, topic, partition, name)
}

// flakySource fails the first read of a file after some bytes, as a broken
// connection would; Open is all it has (no reopening at a byte).
type flakySource struct {
	tree.Source
	failed map[string]bool
}

func (s *flakySource) Open(ctx context.Context, topic string, partition int32, name string) (io.ReadCloser, error) {
	rc, err := s.Source.Open(ctx, topic, partition, name)
	if err != nil || s.failed[name] {
		return rc, err
	}
	s.failed[name] = true
	return &flakyReader{ReadCloser: rc, left: 300}, nil
}

type flakyReader struct {
	io.ReadCloser
	left int
}

func (f *flakyReader) Read(p []byte) (int, error) {
	if f.left <= 0 {
		return 0, errors.New("connection reset")
	}
	if len(p) > f.left {
		p = p[:f.left]
	}
	n, err := f.ReadCloser.Read(p)
	f.left -= n
	return n, err
}

// TestPartitionReadErrorRetried: a read that fails (not a damaged batch)
// is an error naming the file; the next Next opens the file again at that
// batch and nothing is lost or repeated.
func TestPartitionReadErrorRetried(t *testing.T) {
	root := t.TempDir()
	backuptest.WriteSegment(t, root, "t", 0, "0", recsAt(spans(span(0, 99), span(200, 299))...), 10, segment.None)
	backuptest.WriteSegment(t, root, "t", 0, "100", recsAt(span(100, 199)...), 10, segment.None)
	res := readAll(t, &flakySource{Source: backuptest.OpenTree(t, root), failed: map[string]bool{}})
	sameOffsets(t, res.offsets, span(0, 299))
	if len(res.errs) != 2 {
		t.Fatalf("errors %v, want one per file", res.errs)
	}
	for _, err := range res.errs {
		if tree.Damaged(err) || !strings.Contains(err.Error(), "connection reset") {
			t.Errorf("error %v", err)
		}
	}
}

// TestPartitionManyFiles: a thousand files in order, each opened once; a
// file deleted since the listing is an error wrapping fs.ErrNotExist, and
// the read goes on with the next.
func TestPartitionManyFiles(t *testing.T) {
	root := t.TempDir()
	for f := int64(0); f < 1000; f++ {
		backuptest.WriteSegment(t, root, "t", 0, fmt.Sprint(f*3), recsAt(span(f*3, f*3+2)...), 2, segment.None)
	}
	src := &countingSource{Source: backuptest.OpenTree(t, root), opens: map[string]int{}}
	ctx := context.Background()
	part, err := src.List(ctx, "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(layout.PartitionDir(root, "t", 0), "30")); err != nil {
		t.Fatal(err)
	}
	rd := tree.NewPartitionReader(ctx, src, part, tree.ReadOptions{})
	defer rd.Close()
	var got []int64
	var errs []error
	for {
		b, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		recs, err := b.Records()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			got = append(got, r.Offset)
		}
	}
	sameOffsets(t, got, spans(span(0, 29), span(33, 2999)))
	if len(errs) != 1 || !errors.Is(errs[0], fs.ErrNotExist) || !strings.HasPrefix(errs[0].Error(), "30: ") {
		t.Errorf("errors %v, want file 30 missing", errs)
	}
	for name, n := range src.opens {
		if n != 1 {
			t.Errorf("file %s opened %d times", name, n)
		}
	}
}
