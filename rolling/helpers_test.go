package rolling_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafka-backup/kafka-backup/destination/local"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/rolling"
	"github.com/kafka-backup/kafka-backup/segment"
)

// recorder is an Observer that remembers what it is told.
type recorder struct {
	mu        sync.Mutex
	written   int
	bytes     int
	finalized []rolling.File
	skipped   map[string]map[rolling.SkipReason]int // by "topic/partition"
	ooo       map[string]int                        // OutOfOrder calls by "topic/partition"
	errs      []error
	refused   []error
}

func newRecorder() *recorder {
	return &recorder{skipped: map[string]map[rolling.SkipReason]int{}, ooo: map[string]int{}}
}

func pkey(topic string, partition int32) string { return fmt.Sprintf("%s/%d", topic, partition) }

func (r *recorder) Written(_ string, _ int32, records, bytes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.written += records
	r.bytes += bytes
}

func (r *recorder) Finalized(f rolling.File) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finalized = append(r.finalized, f)
}

func (r *recorder) Skipped(topic string, partition int32, reason rolling.SkipReason, records int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := pkey(topic, partition)
	if r.skipped[k] == nil {
		r.skipped[k] = map[rolling.SkipReason]int{}
	}
	r.skipped[k][reason] += records
}

func (r *recorder) OpenFiles(int) {}

func (r *recorder) OutOfOrder(topic string, partition int32, _, _ int64, first bool) {
	if !first {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ooo[pkey(topic, partition)]++
}

func (r *recorder) Refused(_ string, _ int32, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refused = append(r.refused, err)
}

func (r *recorder) Error(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

func (r *recorder) skippedFor(topic string, partition int32, reason rolling.SkipReason) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.skipped[pkey(topic, partition)][reason]
}

func (r *recorder) oooFor(topic string, partition int32) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ooo[pkey(topic, partition)]
}

func (r *recorder) files() []rolling.File {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.finalized)
}

func (r *recorder) errors() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}

func (r *recorder) countReason(why rolling.Reason) int {
	n := 0
	for _, f := range r.files() {
		if f.Reason == why {
			n++
		}
	}
	return n
}

// baseConfig is a Config writing below dir through local.New, with long
// timeouts so that only what a test asks for rolls a file.
func baseConfig(dir string, obs rolling.Observer) rolling.Config {
	return rolling.Config{
		Dir:         dir,
		Instance:    "test-1",
		MaxSize:     1 << 20,
		IdleTimeout: time.Hour,
		Fsync:       rolling.FsyncNever,
		Destination: local.New(dir),
		Observer:    obs,
	}
}

// newWriter starts a Writer and closes it at the end of the test if the test
// did not.
func newWriter(t *testing.T, cfg rolling.Config) *rolling.Writer {
	t.Helper()
	w, err := rolling.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return w
}

func closeWriter(t *testing.T, w *rolling.Writer) {
	t.Helper()
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func write(t *testing.T, w *rolling.Writer, topic string, partition int32, recs []segment.Record) {
	t.Helper()
	if err := w.Write(context.Background(), topic, partition, recs); err != nil {
		t.Fatalf("Write %s/%d: %v", topic, partition, err)
	}
}

// writeChunks writes recs in Writes of varying sizes, as a consumer's batches
// would come.
func writeChunks(t *testing.T, w *rolling.Writer, topic string, partition int32, recs []segment.Record, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	for len(recs) > 0 {
		n := min(len(recs), 1+rng.IntN(40))
		write(t, w, topic, partition, recs[:n])
		recs = recs[n:]
	}
}

// makeRecords returns n records from offset first on, with null and empty
// keys and values, duplicate header keys, null header values, timestamps
// that go back and forth, and value sizes up to maxValue.
func makeRecords(first int64, n, maxValue int, seed uint64) []segment.Record {
	rng := rand.New(rand.NewPCG(seed, uint64(first)))
	recs := make([]segment.Record, n)
	for i := range recs {
		off := first + int64(i)
		r := segment.Record{
			Offset:    off,
			Timestamp: 1_700_000_000_000 + off*3 + int64(rng.IntN(2000)) - 1000,
			Key:       []byte(fmt.Sprintf("key-%d", off)),
			Value:     make([]byte, rng.IntN(maxValue+1)),
		}
		// Half random bytes, half a repeated pattern: some of it compresses.
		for j := range r.Value {
			if j%2 == 0 {
				r.Value[j] = byte(rng.Uint32())
			} else {
				r.Value[j] = byte(off)
			}
		}
		switch off % 7 {
		case 1:
			r.Key = nil
		case 2:
			r.Value = nil
		case 3:
			r.Key, r.Value = []byte{}, []byte{}
		case 4:
			r.Headers = []segment.Header{
				{Key: "dup", Value: []byte("a")},
				{Key: "dup", Value: []byte("b")},
				{Key: "null", Value: nil},
				{Key: "empty", Value: []byte{}},
				{Key: "", Value: []byte("no key")},
			}
		case 5:
			r.Headers = []segment.Header{{Key: "trace", Value: []byte(fmt.Sprint(off))}}
			r.Timestamp = -1 // no timestamp
		}
		recs[i] = r
	}
	return recs
}

func offsetList(first, last int64) []int64 {
	var out []int64
	for o := first; o <= last; o++ {
		out = append(out, o)
	}
	return out
}

func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

// sameRecord compares two records, telling null from empty.
func sameRecord(a, b segment.Record) bool {
	if a.Offset != b.Offset || a.Timestamp != b.Timestamp || !sameBytes(a.Key, b.Key) || !sameBytes(a.Value, b.Value) || len(a.Headers) != len(b.Headers) {
		return false
	}
	for i := range a.Headers {
		if a.Headers[i].Key != b.Headers[i].Key || !sameBytes(a.Headers[i].Value, b.Headers[i].Value) {
			return false
		}
	}
	return true
}

// checkRecords asserts got holds exactly want, in order.
func checkRecords(t *testing.T, got, want []segment.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !sameRecord(got[i], want[i]) {
			t.Fatalf("record %d: read %+v, want %+v", i, got[i], want[i])
		}
	}
}

// finalFile is a final file read back.
type finalFile struct {
	name   string
	first  int64
	size   int64
	recs   []segment.Record
	codecs []segment.Compression
}

// readFile reads every record of a file with segment.NewReader.
func readFile(t *testing.T, path string) ([]segment.Record, []segment.Compression) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := segment.NewReader(f)
	var recs []segment.Record
	var codecs []segment.Compression
	for {
		b, err := r.Next()
		if err == io.EOF {
			return recs, codecs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		rs, err := b.Records()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if int64(len(rs)) != int64(b.NumRecords) || len(rs) == 0 || rs[0].Offset != b.BaseOffset || rs[len(rs)-1].Offset != b.LastOffset {
			t.Fatalf("%s: batch at %d: header says %d-%d (%d records), records %d", path, b.Position, b.BaseOffset, b.LastOffset, b.NumRecords, len(rs))
		}
		recs = append(recs, rs...)
		codecs = append(codecs, b.Codec)
	}
}

// partitionFiles lists a partition's folder: its final files, read back and
// sorted by first offset, and the names of its in-progress files. Any other
// name fails the test.
func partitionFiles(t *testing.T, dir, topic string, partition int32) ([]finalFile, []string) {
	t.Helper()
	pdir := layout.PartitionDir(dir, topic, partition)
	entries, err := os.ReadDir(pdir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var finals []finalFile
	var inprogress []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") && strings.HasSuffix(name, layout.InProgressSuffix) {
			inprogress = append(inprogress, name)
			continue
		}
		first, ok := layout.ParseFileName(name)
		if !ok {
			t.Fatalf("stray file %s in %s", name, pdir)
		}
		path := filepath.Join(pdir, name)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		recs, codecs := readFile(t, path)
		finals = append(finals, finalFile{name: name, first: first, size: st.Size(), recs: recs, codecs: codecs})
	}
	sort.Slice(finals, func(i, j int) bool { return finals[i].first < finals[j].first })
	return finals, inprogress
}

// checkPartition asserts the invariants of a partition's final files: each
// is named after its first record in naming, offsets increase within a file,
// no file exceeds maxSize unless it holds one record alone, no offset is in
// two files, and no in-progress file is left. It returns every record, sorted
// by offset.
func checkPartition(t *testing.T, dir, topic string, partition int32, naming layout.Naming, maxSize int64) ([]segment.Record, []finalFile) {
	t.Helper()
	finals, inprogress := partitionFiles(t, dir, topic, partition)
	if len(inprogress) > 0 {
		t.Fatalf("%s/%d: in-progress files left: %v", topic, partition, inprogress)
	}
	var all []segment.Record
	seen := map[int64]string{}
	for _, f := range finals {
		if len(f.recs) == 0 {
			t.Fatalf("%s/%d: final file %s is empty", topic, partition, f.name)
		}
		if want := naming.FileName(f.recs[0].Offset); f.name != want {
			t.Fatalf("%s/%d: file %s starts at offset %d: want the name %s", topic, partition, f.name, f.recs[0].Offset, want)
		}
		if f.size > maxSize && len(f.recs) != 1 {
			t.Fatalf("%s/%d: file %s has %d bytes, over the maximum %d, and %d records", topic, partition, f.name, f.size, maxSize, len(f.recs))
		}
		for i, r := range f.recs {
			if i > 0 && r.Offset <= f.recs[i-1].Offset {
				t.Fatalf("%s/%d: file %s: offset %d after %d", topic, partition, f.name, r.Offset, f.recs[i-1].Offset)
			}
			if other, dup := seen[r.Offset]; dup {
				t.Fatalf("%s/%d: offset %d is in files %s and %s", topic, partition, r.Offset, other, f.name)
			}
			seen[r.Offset] = f.name
		}
		all = append(all, f.recs...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Offset < all[j].Offset })
	return all, finals
}

func recordOffsets(recs []segment.Record) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.Offset
	}
	return out
}

func fileNames(fs []finalFile) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.name
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// gatedDest is local.New with a Publish that fails while the gate is shut.
type gatedDest struct {
	*local.Destination
	shut     atomic.Bool
	attempts atomic.Int32
	failures atomic.Int32
}

var errInjected = errors.New("injected publish failure")

func (d *gatedDest) Publish(ctx context.Context, f rolling.File) error {
	d.attempts.Add(1)
	if d.shut.Load() {
		d.failures.Add(1)
		return errInjected
	}
	return d.Destination.Publish(ctx, f)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
