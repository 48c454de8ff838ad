package rolling_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafka-backup/kafka-backup/destination/local"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/rolling"
	"github.com/kafka-backup/kafka-backup/segment"
)

func TestNewValidatesConfig(t *testing.T) {
	dir := t.TempDir()
	good := baseConfig(dir, nil)
	for name, mod := range map[string]func(*rolling.Config){
		"no dir":        func(c *rolling.Config) { c.Dir = "" },
		"no instance":   func(c *rolling.Config) { c.Instance = "" },
		"tiny size":     func(c *rolling.Config) { c.MaxSize = segment.HeaderSize },
		"no idle":       func(c *rolling.Config) { c.IdleTimeout = 0 },
		"negative idle": func(c *rolling.Config) { c.IdleTimeout = -time.Second },
		"no dest":       func(c *rolling.Config) { c.Destination = nil },
		"bad codec":     func(c *rolling.Config) { c.Compression = 9 },
	} {
		c := good
		mod(&c)
		if w, err := rolling.New(c); err == nil {
			_ = w.Close(context.Background())
			t.Errorf("%s: New accepted the config", name)
		}
	}
	w, err := rolling.New(good)
	if err != nil {
		t.Fatal(err)
	}
	closeWriter(t, w)
}

func TestFilesNamedAfterFirstOffsetAndRecordsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	obs := newRecorder()
	cfg := baseConfig(dir, obs)
	cfg.MaxSize = 8 << 10
	cfg.Fsync = rolling.FsyncBatch
	w := newWriter(t, cfg)

	recs := makeRecords(1000, 3000, 300, 1)
	writeChunks(t, w, "orders", 3, recs, 1)
	closeWriter(t, w)

	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 1 || entries[0].Name() != "orders" {
		t.Fatalf("root holds %v (%v), want only the topic folder", entries, err)
	}
	got, finals := checkPartition(t, dir, "orders", 3, layout.NamePlain, cfg.MaxSize)
	checkRecords(t, got, recs)
	if len(finals) < 10 {
		t.Fatalf("only %d files for %d records of up to 300 bytes in files of %d bytes", len(finals), len(recs), cfg.MaxSize)
	}
	if finals[0].name != "1000" {
		t.Fatalf("first file %s, want 1000", finals[0].name)
	}
	// Files are filled: all but the last are at least half full.
	for _, f := range finals[:len(finals)-1] {
		if f.size < cfg.MaxSize/2 {
			t.Errorf("file %s has only %d bytes", f.name, f.size)
		}
	}
	// The observer saw every file, with the right description.
	files := obs.files()
	if len(files) != len(finals) {
		t.Fatalf("observer saw %d files finalized, %d on disk", len(files), len(finals))
	}
	slices.SortFunc(files, func(a, b rolling.File) int { return int(a.FirstOffset - b.FirstOffset) })
	for i, f := range files {
		ff := finals[i]
		if f.Name != ff.name || f.FirstOffset != ff.recs[0].Offset || f.LastOffset != ff.recs[len(ff.recs)-1].Offset ||
			f.Records != int64(len(ff.recs)) || f.Bytes != ff.size || f.Topic != "orders" || f.Partition != 3 || !f.Fsync {
			t.Errorf("observer file %+v does not describe %s (%d records, %d bytes)", f, ff.name, len(ff.recs), ff.size)
		}
		minTs, maxTs := ff.recs[0].Timestamp, ff.recs[0].Timestamp
		for _, r := range ff.recs {
			minTs, maxTs = min(minTs, r.Timestamp), max(maxTs, r.Timestamp)
		}
		if f.MinTimestamp != minTs || f.MaxTimestamp != maxTs {
			t.Errorf("file %s: timestamps %d-%d, want %d-%d", f.Name, f.MinTimestamp, f.MaxTimestamp, minTs, maxTs)
		}
		want := rolling.ReasonSize
		if i == len(files)-1 {
			want = rolling.ReasonShutdown
		}
		if f.Reason != want {
			t.Errorf("file %s rolled for %s, want %s", f.Name, f.Reason, want)
		}
		if f.Opened.IsZero() || f.Closed.Before(f.Opened) {
			t.Errorf("file %s: opened %v, closed %v", f.Name, f.Opened, f.Closed)
		}
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.written != len(recs) {
		t.Errorf("observer saw %d records written, want %d", obs.written, len(recs))
	}
	var total int64
	for _, f := range finals {
		total += f.size
	}
	if int64(obs.bytes) != total {
		t.Errorf("observer saw %d bytes written, files hold %d", obs.bytes, total)
	}
	if len(obs.errs) != 0 {
		t.Errorf("errors: %v", obs.errs)
	}
}

func TestOversizedRecordGetsAFileOfItsOwn(t *testing.T) {
	dir := t.TempDir()
	cfg := baseConfig(dir, nil)
	cfg.MaxSize = 1024
	w := newWriter(t, cfg)

	recs := makeRecords(0, 40, 100, 2)
	recs[10].Value = make([]byte, 5000)  // alone larger than MaxSize
	recs[11].Value = make([]byte, 5000)  // two in a row
	recs[25].Value = make([]byte, 1000)  // larger than MaxSize with its batch header
	recs[39].Value = make([]byte, 10000) // the last one
	writeChunks(t, w, "big", 0, recs[:20], 2)
	write(t, w, "big", 0, recs[20:])
	closeWriter(t, w)

	got, finals := checkPartition(t, dir, "big", 0, layout.NamePlain, cfg.MaxSize)
	checkRecords(t, got, recs)
	alone := map[int64]bool{}
	for _, f := range finals {
		if f.size > cfg.MaxSize {
			alone[f.recs[0].Offset] = true
		}
	}
	for _, off := range []int64{10, 11, 25, 39} {
		if !alone[off] {
			t.Errorf("record %d has no file of its own: files %v", off, fileNames(finals))
		}
	}
}

func TestCompressionKeepsSizeBound(t *testing.T) {
	for _, codec := range []segment.Compression{segment.None, segment.Gzip, segment.Snappy, segment.LZ4, segment.Zstd} {
		t.Run(codec.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cfg := baseConfig(dir, nil)
			cfg.MaxSize = 4 << 10
			cfg.Compression = codec
			w := newWriter(t, cfg)
			recs := makeRecords(0, 250, 400, 3)
			recs[100].Value = make([]byte, 20000) // compresses below MaxSize
			recs[101].Value = make([]byte, 20000)
			for i := range recs[200].Value {
				recs[200].Value[i] = byte(i * 7919 >> 3)
			}
			writeChunks(t, w, "z", 1, recs, 3)
			closeWriter(t, w)
			got, finals := checkPartition(t, dir, "z", 1, layout.NamePlain, cfg.MaxSize)
			checkRecords(t, got, recs)
			if len(finals) < 5 {
				t.Fatalf("only %d files", len(finals))
			}
			for _, f := range finals {
				if codec != segment.None && f.size > cfg.MaxSize {
					// Even the 20000-byte records compress to fit.
					t.Errorf("file %s has %d bytes", f.name, f.size)
				}
				for _, c := range f.codecs {
					if c != codec {
						t.Fatalf("file %s has a %s batch, want %s", f.name, c, codec)
					}
				}
			}
		})
	}
}

func TestIdleRoll(t *testing.T) {
	dir := t.TempDir()
	obs := newRecorder()
	cfg := baseConfig(dir, obs)
	cfg.IdleTimeout = 30 * time.Millisecond
	w := newWriter(t, cfg)

	pdir := layout.PartitionDir(dir, "idle", 0)
	// Settled once the files are final and the observer heard of them (it is
	// told after the rename, so the files alone may be seen first).
	settled := func(n int) func() bool {
		return func() bool {
			finals, inprogress := partitionFiles(t, dir, "idle", 0)
			return len(finals) == n && len(inprogress) == 0 && len(obs.files()) >= n
		}
	}
	recs := makeRecords(0, 50, 100, 4)
	write(t, w, "idle", 0, recs[:30])
	eventually(t, "the idle file to be finalized", settled(1))
	if !exists(filepath.Join(pdir, "0")) {
		t.Fatal("no final file 0")
	}
	// More records after the roll open a new file, which idles out too.
	write(t, w, "idle", 0, recs[30:])
	eventually(t, "the second idle file to be finalized", settled(2))
	if !exists(filepath.Join(pdir, "30")) {
		t.Fatal("no final file 30")
	}
	if n := obs.countReason(rolling.ReasonIdle); n != 2 {
		t.Fatalf("%d files rolled as idle, want 2: %+v", n, obs.files())
	}
	closeWriter(t, w)
	got, _ := checkPartition(t, dir, "idle", 0, layout.NamePlain, cfg.MaxSize)
	checkRecords(t, got, recs)
}

func TestMaxAgeRollWhileRecordsKeepComing(t *testing.T) {
	dir := t.TempDir()
	obs := newRecorder()
	cfg := baseConfig(dir, obs)
	cfg.MaxAge = 40 * time.Millisecond
	w := newWriter(t, cfg)

	var recs []segment.Record
	deadline := time.Now().Add(10 * time.Second)
	for off := int64(0); obs.countReason(rolling.ReasonAge) < 3; off++ {
		if time.Now().After(deadline) {
			t.Fatalf("no age rolls after %d records: %+v", off, obs.files())
		}
		r := makeRecords(off, 1, 50, 5)
		write(t, w, "age", 0, r)
		recs = append(recs, r...)
		time.Sleep(time.Millisecond) // pace the records; not a synchronisation
	}
	closeWriter(t, w)
	got, finals := checkPartition(t, dir, "age", 0, layout.NamePlain, cfg.MaxSize)
	checkRecords(t, got, recs)
	if len(finals) < 4 {
		t.Fatalf("%d files, want at least 4", len(finals))
	}
	for _, f := range obs.files() {
		if f.Reason == rolling.ReasonIdle || f.Reason == rolling.ReasonSize {
			t.Errorf("file %s rolled for %s", f.Name, f.Reason)
		}
	}
}

func TestCloseFinalizesOpenFiles(t *testing.T) {
	dir := t.TempDir()
	obs := newRecorder()
	cfg := baseConfig(dir, obs)
	cfg.Fsync = rolling.FsyncRoll
	w := newWriter(t, cfg)
	want := map[string][]segment.Record{}
	for _, topic := range []string{"a", "b"} {
		for p := int32(0); p < 3; p++ {
			recs := makeRecords(int64(p)*1000, 20, 50, 6)
			write(t, w, topic, p, recs)
			want[pkey(topic, p)] = recs
			if _, inprogress := partitionFiles(t, dir, topic, p); len(inprogress) != 1 {
				t.Fatalf("%s/%d: in-progress files %v before Close, want one", topic, p, inprogress)
			}
		}
	}
	closeWriter(t, w)
	for _, topic := range []string{"a", "b"} {
		for p := int32(0); p < 3; p++ {
			got, finals := checkPartition(t, dir, topic, p, layout.NamePlain, cfg.MaxSize)
			checkRecords(t, got, want[pkey(topic, p)])
			if len(finals) != 1 || finals[0].name != fmt.Sprint(p*1000) {
				t.Fatalf("%s/%d: files %v", topic, p, fileNames(finals))
			}
		}
	}
	if n := obs.countReason(rolling.ReasonShutdown); n != 6 {
		t.Fatalf("%d files rolled at shutdown, want 6", n)
	}
	// Closing twice is fine.
	closeWriter(t, w)
}

func TestWriteAfterClose(t *testing.T) {
	dir := t.TempDir()
	w := newWriter(t, baseConfig(dir, nil))
	write(t, w, "t", 0, makeRecords(0, 5, 10, 7))
	closeWriter(t, w)
	for _, p := range []int32{0, 1} { // a partition it knows and one it does not
		if err := w.Write(context.Background(), "t", p, makeRecords(5, 5, 10, 7)); !errors.Is(err, rolling.ErrClosed) {
			t.Fatalf("Write to partition %d after Close: %v, want ErrClosed", p, err)
		}
	}
	got, _ := checkPartition(t, dir, "t", 0, layout.NamePlain, 1<<20)
	if len(got) != 5 {
		t.Fatalf("%d records, want 5", len(got))
	}
	if exists(layout.PartitionDir(dir, "t", 1)) {
		t.Fatal("a Write after Close made a folder")
	}
}

func TestOffsetFrom(t *testing.T) {
	dir := t.TempDir()
	obs := newRecorder()
	cfg := baseConfig(dir, obs)
	cfg.MaxSize = 2 << 10
	cfg.OffsetFrom = func(topic string, partition int32) int64 {
		if topic == "t" && partition == 0 {
			return 50
		}
		if topic == "t" && partition == 2 {
			return 1000 // beyond everything written
		}
		return 0
	}
	w := newWriter(t, cfg)
	recs := makeRecords(0, 100, 100, 8)
	for p := int32(0); p < 3; p++ {
		writeChunks(t, w, "t", p, recs, uint64(p))
	}
	closeWriter(t, w)

	got, finals := checkPartition(t, dir, "t", 0, layout.NamePlain, cfg.MaxSize)
	checkRecords(t, got, recs[50:])
	if finals[0].name != "50" {
		t.Fatalf("first file %s, want 50", finals[0].name)
	}
	if n := obs.skippedFor("t", 0, rolling.SkipOffsetFrom); n != 50 {
		t.Fatalf("skipped %d below offset_from, want 50", n)
	}
	got, _ = checkPartition(t, dir, "t", 1, layout.NamePlain, cfg.MaxSize)
	checkRecords(t, got, recs)
	if n := obs.skippedFor("t", 1, rolling.SkipOffsetFrom); n != 0 {
		t.Fatalf("partition 1: skipped %d below offset_from, want 0", n)
	}
	if got, _ := checkPartition(t, dir, "t", 2, layout.NamePlain, cfg.MaxSize); len(got) != 0 {
		t.Fatalf("partition 2: %d records written below offset_from", len(got))
	}
	if n := obs.skippedFor("t", 2, rolling.SkipOffsetFrom); n != 100 {
		t.Fatalf("partition 2: skipped %d below offset_from, want 100", n)
	}
}

func TestOffsetFromAndPersistedInOneBatch(t *testing.T) {
	dir := t.TempDir()
	obs := newRecorder()
	cfg := baseConfig(dir, obs)
	cfg.OffsetFrom = func(string, int32) int64 { return 10 }
	w := newWriter(t, cfg)
	recs := makeRecords(0, 40, 20, 9)
	write(t, w, "t", 0, recs[10:20])
	write(t, w, "t", 0, recs) // 0-9 below offset_from, 10-19 written, 20-39 new
	closeWriter(t, w)
	got, _ := checkPartition(t, dir, "t", 0, layout.NamePlain, cfg.MaxSize)
	checkRecords(t, got, recs[10:])
	if a, b := obs.skippedFor("t", 0, rolling.SkipOffsetFrom), obs.skippedFor("t", 0, rolling.SkipPersisted); a != 10 || b != 10 {
		t.Fatalf("skipped %d below offset_from and %d persisted, want 10 and 10", a, b)
	}
}

func TestReplayWritesNothingNew(t *testing.T) {
	for _, naming := range []layout.Naming{layout.NamePlain, layout.NameKafka} {
		t.Run(naming.FileName(0), func(t *testing.T) {
			dir := t.TempDir()
			obs := newRecorder()
			cfg := baseConfig(dir, obs)
			cfg.MaxSize = 4 << 10
			cfg.Naming = naming
			w := newWriter(t, cfg)
			recs := makeRecords(0, 610, 200, 10)

			// The same slice twice: the first time rolls several files and
			// leaves one open; the second finds every offset in a file.
			write(t, w, "r", 0, recs[:600])
			before, inprogress := partitionFiles(t, dir, "r", 0)
			if len(before) < 3 || len(inprogress) != 1 {
				t.Fatalf("%d final files and in-progress %v after the first Write", len(before), inprogress)
			}
			write(t, w, "r", 0, recs[:600])
			if n := obs.skippedFor("r", 0, rolling.SkipPersisted); n != 600 {
				t.Fatalf("skipped %d persisted records, want 600", n)
			}
			// Replayed in other chunks, with an overlap into new records.
			writeChunks(t, w, "r", 0, recs[300:600], 10)
			write(t, w, "r", 0, recs[590:]) // 590-599 replayed, 600-609 new
			if n := obs.skippedFor("r", 0, rolling.SkipPersisted); n != 910 {
				t.Fatalf("skipped %d persisted records, want 910", n)
			}
			closeWriter(t, w)
			got, finals := checkPartition(t, dir, "r", 0, naming, cfg.MaxSize)
			checkRecords(t, got, recs)

			// A new Writer on the same folder, as after a restart: the
			// consumer resumes from an older commit and replays.
			obs2 := newRecorder()
			cfg2 := cfg
			cfg2.Instance = "test-2"
			cfg2.Observer = obs2
			cfg2.Destination = local.New(dir)
			w2 := newWriter(t, cfg2)
			writeChunks(t, w2, "r", 0, recs[100:], 11)
			write(t, w2, "r", 0, recs)
			closeWriter(t, w2)
			if n := obs2.skippedFor("r", 0, rolling.SkipPersisted); n != len(recs)-100+len(recs) {
				t.Fatalf("second writer skipped %d persisted records, want %d", n, 2*len(recs)-100)
			}
			if len(obs2.files()) != 0 {
				t.Fatalf("the replay finalized files: %+v", obs2.files())
			}
			got2, finals2 := checkPartition(t, dir, "r", 0, naming, cfg.MaxSize)
			checkRecords(t, got2, recs)
			if !slices.Equal(fileNames(finals), fileNames(finals2)) {
				t.Fatalf("files changed from %v to %v", fileNames(finals), fileNames(finals2))
			}

			// A third Writer, same instance name as the first, replays and
			// continues.
			obs3 := newRecorder()
			cfg3 := cfg
			cfg3.Observer = obs3
			cfg3.Destination = local.New(dir)
			w3 := newWriter(t, cfg3)
			more := makeRecords(610, 100, 200, 12)
			writeChunks(t, w3, "r", 0, append(slices.Clone(recs[500:]), more...), 12)
			closeWriter(t, w3)
			got3, _ := checkPartition(t, dir, "r", 0, naming, cfg.MaxSize)
			checkRecords(t, got3, append(recs, more...))
		})
	}
}

func TestOutOfOrderBatches(t *testing.T) {
	dir := t.TempDir()
	obs := newRecorder()
	cfg := baseConfig(dir, obs)
	w := newWriter(t, cfg)
	all := makeRecords(0, 300, 50, 13)
	for p := int32(0); p < 2; p++ {
		write(t, w, "o", p, all[100:200])
		write(t, w, "o", p, all[0:100])
	}
	// Partition 2 goes out of order twice: still one warning.
	write(t, w, "o", 2, all[200:300])
	write(t, w, "o", 2, all[100:200])
	write(t, w, "o", 2, all[0:100])
	closeWriter(t, w)

	got, finals := checkPartition(t, dir, "o", 0, layout.NamePlain, cfg.MaxSize)
	checkRecords(t, got, all[:200])
	if names := fileNames(finals); !slices.Equal(names, []string{"0", "100"}) {
		t.Fatalf("partition 0: files %v, want [0 100]", names)
	}
	got, finals = checkPartition(t, dir, "o", 1, layout.NamePlain, cfg.MaxSize)
	checkRecords(t, got, all[:200])
	if names := fileNames(finals); !slices.Equal(names, []string{"0", "100"}) {
		t.Fatalf("partition 1: files %v, want [0 100]", names)
	}
	got, finals = checkPartition(t, dir, "o", 2, layout.NamePlain, cfg.MaxSize)
	checkRecords(t, got, all)
	if names := fileNames(finals); !slices.Equal(names, []string{"0", "100", "200"}) {
		t.Fatalf("partition 2: files %v, want [0 100 200]", names)
	}
	for p := int32(0); p < 3; p++ {
		if n := obs.oooFor("o", p); n != 1 {
			t.Errorf("partition %d: OutOfOrder called %d times, want 1", p, n)
		}
	}
	if n := obs.countReason(rolling.ReasonOutOfOrder); n != 4 {
		t.Errorf("%d files rolled out of order, want 4", n)
	}
}

func TestOutOfOrderInsideOneBatch(t *testing.T) {
	dir := t.TempDir()
	obs := newRecorder()
	w := newWriter(t, baseConfig(dir, obs))
	all := makeRecords(0, 20, 50, 14)
	// 10-19 then 0-9 in a single Write.
	write(t, w, "o", 0, append(slices.Clone(all[10:]), all[:10]...))
	closeWriter(t, w)
	got, finals := checkPartition(t, dir, "o", 0, layout.NamePlain, 1<<20)
	checkRecords(t, got, all)
	if names := fileNames(finals); !slices.Equal(names, []string{"0", "10"}) {
		t.Fatalf("files %v, want [0 10]", names)
	}
	if n := obs.oooFor("o", 0); n != 1 {
		t.Fatalf("OutOfOrder called %d times", n)
	}
}

func TestDuplicatesInsideOneBatch(t *testing.T) {
	dir := t.TempDir()
	obs := newRecorder()
	w := newWriter(t, baseConfig(dir, obs))
	recs := makeRecords(0, 10, 50, 15)
	var batch []segment.Record
	for _, r := range recs {
		batch = append(batch, r)
		if r.Offset%3 == 0 {
			batch = append(batch, r, r) // three times
		}
	}
	batch = append(batch, recs[9]) // and the last again at the end
	write(t, w, "d", 0, batch)
	write(t, w, "d", 0, batch)
	closeWriter(t, w)
	got, finals := checkPartition(t, dir, "d", 0, layout.NamePlain, 1<<20)
	checkRecords(t, got, recs)
	if len(finals) != 1 {
		t.Fatalf("files %v, want one", fileNames(finals))
	}
	if n, want := obs.skippedFor("d", 0, rolling.SkipPersisted), len(batch)-len(recs)+len(batch); n != want {
		t.Fatalf("skipped %d, want %d", n, want)
	}
	if n := obs.oooFor("d", 0); n != 0 {
		t.Fatalf("duplicates reported as out of order %d times", n)
	}
}

func TestKafkaNaming(t *testing.T) {
	dir := t.TempDir()
	cfg := baseConfig(dir, nil)
	cfg.Naming = layout.NameKafka
	cfg.MaxSize = 2 << 10
	w := newWriter(t, cfg)
	recs := makeRecords(101, 200, 100, 16)
	writeChunks(t, w, "k", 0, recs, 16)
	closeWriter(t, w)
	got, finals := checkPartition(t, dir, "k", 0, layout.NameKafka, cfg.MaxSize)
	checkRecords(t, got, recs)
	if finals[0].name != "00000000000000000101.log" {
		t.Fatalf("first file %s", finals[0].name)
	}
	for _, f := range finals {
		if len(f.name) != 24 || !strings.HasSuffix(f.name, ".log") || f.name != fmt.Sprintf("%020d.log", f.first) {
			t.Fatalf("file name %s is not Kafka's", f.name)
		}
	}

	// A restart with the other naming still sees what is there.
	cfg.Naming = layout.NamePlain
	cfg.Instance = "test-2"
	w2 := newWriter(t, cfg)
	more := makeRecords(301, 10, 100, 16)
	write(t, w2, "k", 0, append(slices.Clone(recs), more...))
	closeWriter(t, w2)
	finals, _ = partitionFiles(t, dir, "k", 0)
	last := finals[len(finals)-1]
	if last.name != "301" || len(last.recs) != 10 {
		t.Fatalf("last file %s with %d records, want 301 with 10", last.name, len(last.recs))
	}
}

func TestConcurrentPartitions(t *testing.T) {
	dir := t.TempDir()
	obs := newRecorder()
	cfg := baseConfig(dir, obs)
	cfg.MaxSize = 4 << 10
	cfg.IdleTimeout = 5 * time.Millisecond // the roller runs during the writes
	cfg.MaxAge = 15 * time.Millisecond
	cfg.Compression = segment.Snappy
	cfg.Fsync = rolling.FsyncRoll
	w := newWriter(t, cfg)

	topics := []string{"t1", "t2"}
	want := map[string][]segment.Record{}
	for _, topic := range topics {
		for p := int32(0); p < 6; p++ {
			want[pkey(topic, p)] = makeRecords(int64(p)*10, 400, 200, uint64(p))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(want))
	for _, topic := range topics {
		for p := int32(0); p < 6; p++ {
			recs := want[pkey(topic, p)]
			wg.Go(func() {
				for i := 0; i < len(recs); i += 17 {
					if err := w.Write(context.Background(), topic, p, recs[i:min(i+17, len(recs))]); err != nil {
						errs <- err
						return
					}
					// Replay a little now and then.
					if i%85 == 0 {
						if err := w.Write(context.Background(), topic, p, recs[max(0, i-30):i+1]); err != nil {
							errs <- err
							return
						}
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	closeWriter(t, w)
	for _, topic := range topics {
		for p := int32(0); p < 6; p++ {
			got, _ := checkPartition(t, dir, topic, p, layout.NamePlain, cfg.MaxSize)
			checkRecords(t, got, want[pkey(topic, p)])
		}
	}
	if errs := obs.errors(); len(errs) != 0 {
		t.Fatalf("observer errors: %v", errs)
	}
}

// TestCloseWhileWriting closes a Writer under concurrent writes: every Write
// that returned nil must have its records in final files, nothing may stay
// in progress, and no Write may succeed after Close returned.
func TestCloseWhileWriting(t *testing.T) {
	for round := 0; round < 10; round++ {
		dir := t.TempDir()
		cfg := baseConfig(dir, nil)
		w := newWriter(t, cfg)
		const parts = 8
		acked := make([][]segment.Record, parts)
		var started sync.WaitGroup
		var wg sync.WaitGroup
		ready := make(chan struct{})
		for p := range parts {
			started.Add(1)
			wg.Go(func() {
				<-ready
				first := true
				for off := int64(0); ; off += 3 {
					recs := makeRecords(off, 3, 10, 17)
					err := w.Write(context.Background(), "c", int32(p), recs)
					if first {
						first = false
						started.Done()
					}
					if errors.Is(err, rolling.ErrClosed) {
						return
					}
					if err != nil {
						t.Errorf("partition %d: %v", p, err)
						return
					}
					acked[p] = append(acked[p], recs...)
				}
			})
		}
		close(ready)
		started.Wait()
		closeWriter(t, w)
		wg.Wait()
		for p := range parts {
			got, _ := checkPartition(t, dir, "c", int32(p), layout.NamePlain, cfg.MaxSize)
			if !slices.Equal(recordOffsets(got), recordOffsets(acked[p])) {
				t.Fatalf("round %d partition %d: %d records in final files, %d acknowledged", round, p, len(got), len(acked[p]))
			}
		}
	}
}

func TestInvalidTopicsAreRefused(t *testing.T) {
	dir := t.TempDir()
	w := newWriter(t, baseConfig(dir, nil))
	for _, topic := range []string{"", ".", "..", "a/b", "../escape", "/abs", "a b", strings.Repeat("x", 250)} {
		if err := w.Write(context.Background(), topic, 0, makeRecords(0, 1, 10, 18)); err == nil {
			t.Errorf("Write to topic %q accepted", topic)
		}
	}
	if err := w.Write(context.Background(), "ok", -1, makeRecords(0, 1, 10, 18)); err == nil {
		t.Error("Write to partition -1 accepted")
	}
	closeWriter(t, w)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("folders made for refused writes: %v", entries)
	}
	if entries, _ := os.ReadDir(filepath.Dir(dir)); slices.ContainsFunc(entries, func(e os.DirEntry) bool { return e.Name() == "escape" }) {
		t.Fatal("a folder was made outside Dir")
	}
}

func TestEmptyWrite(t *testing.T) {
	dir := t.TempDir()
	obs := newRecorder()
	w := newWriter(t, baseConfig(dir, obs))
	write(t, w, "e", 0, nil)
	write(t, w, "e", 0, []segment.Record{})
	closeWriter(t, w)
	if finals, inprogress := partitionFiles(t, dir, "e", 0); len(finals)+len(inprogress) != 0 {
		t.Fatalf("files %v %v for empty writes", fileNames(finals), inprogress)
	}
	if len(obs.files()) != 0 {
		t.Fatalf("finalized %+v", obs.files())
	}
}

func TestPublishFailsThenSucceeds(t *testing.T) {
	dir := t.TempDir()
	obs := newRecorder()
	dest := &gatedDest{Destination: local.New(dir)}
	dest.shut.Store(true)
	cfg := baseConfig(dir, obs)
	cfg.Destination = dest
	cfg.MaxSize = 2 << 10
	cfg.IdleTimeout = 20 * time.Millisecond
	w := newWriter(t, cfg)

	recs := makeRecords(0, 100, 100, 19)
	write(t, w, "p", 0, recs) // rolls at least once for size
	if dest.failures.Load() == 0 {
		t.Fatal("the size roll did not try to publish")
	}
	pdir := layout.PartitionDir(dir, "p", 0)
	first := filepath.Join(pdir, layout.InProgressName("0", cfg.Instance))
	if !exists(first) || exists(filepath.Join(pdir, "0")) {
		t.Fatal("the refused file is not under its in-progress name")
	}
	// The roller retries while the destination still refuses; the file
	// stays where it is.
	eventually(t, "a retry", func() bool { return dest.failures.Load() >= 3 })
	if finals, _ := partitionFiles(t, dir, "p", 0); len(finals) != 0 {
		t.Fatalf("final files %v while the destination refuses", fileNames(finals))
	}
	if !exists(first) {
		t.Fatal("the refused file vanished")
	}
	if len(obs.errors()) == 0 || !errors.Is(obs.errors()[0], errInjected) {
		t.Fatalf("observer errors %v", obs.errors())
	}
	if len(obs.files()) != 0 {
		t.Fatalf("observer saw files finalized: %+v", obs.files())
	}

	dest.shut.Store(false)
	eventually(t, "the retried files to be finalized", func() bool {
		finals, inprogress := partitionFiles(t, dir, "p", 0)
		n := 0
		for _, f := range finals {
			n += len(f.recs)
		}
		return len(inprogress) == 0 && n == len(recs)
	})
	closeWriter(t, w)
	got, _ := checkPartition(t, dir, "p", 0, layout.NamePlain, cfg.MaxSize)
	checkRecords(t, got, recs)
}

func TestPublishRefusedAtClose(t *testing.T) {
	dir := t.TempDir()
	dest := &gatedDest{Destination: local.New(dir)}
	cfg := baseConfig(dir, nil)
	cfg.Destination = dest
	w := newWriter(t, cfg)
	recs := makeRecords(0, 30, 100, 20)
	write(t, w, "p", 0, recs[:20])
	dest.shut.Store(true)
	err := w.Close(context.Background())
	if !errors.Is(err, errInjected) {
		t.Fatalf("Close: %v, want the publish error", err)
	}
	finals, inprogress := partitionFiles(t, dir, "p", 0)
	if len(finals) != 0 || len(inprogress) != 1 {
		t.Fatalf("after a refused Close: final %v, in progress %v", fileNames(finals), inprogress)
	}

	// A new instance adopts the in-progress file the first one left (its
	// lock is gone with it) and the replay adds only what is missing: every
	// record reaches a final file once.
	cfg2 := baseConfig(dir, nil)
	cfg2.Instance = "test-2"
	w2 := newWriter(t, cfg2)
	write(t, w2, "p", 0, recs)
	closeWriter(t, w2)
	finals, inprogress = partitionFiles(t, dir, "p", 0)
	if len(finals) != 2 || len(inprogress) != 0 {
		t.Fatalf("final %v, in progress %v", fileNames(finals), inprogress)
	}
	checkRecords(t, append(finals[0].recs, finals[1].recs...), recs)
}

// TestOutOfOrderAcrossAGap is the order in which max_in_flight > 1 can hand
// one partition's batches to Write: 0-99, then 200-299, then 100-199. The
// file opened at 0 then spans offsets 0-299 with 100-199 missing, and the
// Writer takes 100-199 for records already in a file.
func TestOutOfOrderAcrossAGap(t *testing.T) {
	dir := t.TempDir()
	w := newWriter(t, baseConfig(dir, nil))
	all := makeRecords(0, 300, 50, 21)
	write(t, w, "g", 0, all[0:100])
	write(t, w, "g", 0, all[200:300])
	write(t, w, "g", 0, all[100:200])
	closeWriter(t, w)
	got, _ := checkPartition(t, dir, "g", 0, layout.NamePlain, 1<<20)
	checkRecords(t, got, all)
}
