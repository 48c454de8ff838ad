package tests

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/kafka-backup/kafka-backup/segment"
)

// TestE2EKcatFacts checks what the harness assumes about kcat (see the
// package comment): how each kind of line and -H argument comes out, read
// back with kgo.
func TestE2EKcatFacts(t *testing.T) {
	t.Parallel()
	needKcat(t)
	b := startBroker(t, 1, "facts")
	b.produce("facts", 0, kcatRun{KeyDelim: true, Lines: []string{"k1\tv1", "\tempty-key", "no-tab", "k4\t"}})
	b.produce("facts", 0, kcatRun{KeyDelim: true, NullEmpty: true, Lines: []string{"k5\tv5", "\tnull-key", "k7\t"}})
	b.produce("facts", 0, kcatRun{Lines: []string{"v8"}, Headers: []string{"h=", "h=2", "n", "e=a=b"}})
	b.produce("facts", 0, kcatRun{Lines: []string{"v9"}, NullEmpty: true, Headers: []string{"h="}})
	got := b.groundTruth("facts", 1)[0]

	h := func(kv ...any) []segment.Header {
		var hs []segment.Header
		for i := 0; i < len(kv); i += 2 {
			v, _ := kv[i+1].([]byte)
			hs = append(hs, segment.Header{Key: kv[i].(string), Value: v})
		}
		return hs
	}
	want := []segment.Record{
		{Offset: 0, Key: []byte("k1"), Value: []byte("v1")},
		{Offset: 1, Key: []byte{}, Value: []byte("empty-key")},
		{Offset: 2, Key: nil, Value: []byte("no-tab")},
		{Offset: 3, Key: []byte("k4"), Value: []byte{}},
		{Offset: 4, Key: []byte("k5"), Value: []byte("v5")},
		{Offset: 5, Key: nil, Value: []byte("null-key")},
		{Offset: 6, Key: []byte("k7"), Value: nil},
		{Offset: 7, Value: []byte("v8"), Headers: h("h", []byte{}, "h", []byte("2"), "n", nil, "e", []byte("a=b"))},
		// -Z does not touch header values.
		{Offset: 8, Value: []byte("v9"), Headers: h("h", []byte{})},
	}
	for i := range want {
		want[i].Timestamp = got[i].Timestamp // kcat cannot set them
	}
	compareRecords(t, "kcat facts", got, want)
	for i := 1; i < len(got); i++ {
		if got[i].Timestamp < got[i-1].Timestamp {
			t.Errorf("timestamps go back: %d then %d", got[i-1].Timestamp, got[i].Timestamp)
		}
	}
}

// TestE2ERedpandaFidelity backs up 4 partitions of about 800 varied records
// each through the redpanda input and checks the files hold exactly what
// Kafka holds: keys, values, headers and timestamps, null-aware.
func TestE2ERedpandaFidelity(t *testing.T) {
	t.Parallel()
	needKcat(t)
	const topic = "orders"
	b := startBroker(t, 4, topic)
	b.produceWorkload(topic, 4, workload{perPartition: 800, seed: 1})
	truth := b.groundTruth(topic, 4)
	requireVariety(t, truth)

	dir := filepath.Join(t.TempDir(), "backup")
	p := runBackup(t, "redpanda", backupConfig(redpandaInput(b, "g1", topic), dir, ""))
	waitRecords(t, dir, sumRecords(truth), p)
	p.stop()

	bk := verifyBackup(t, dir, verifyOpts{want: map[string]map[int32][]segment.Record{topic: truth}})
	for part, files := range bk.files[topic] {
		// 100MB is far more than a partition's records: one file each.
		if len(files) != 1 {
			t.Errorf("%s/%d: %d files, want 1", topic, part, len(files))
		}
	}
	if len(bk.files[topic]) != 4 {
		t.Errorf("%d partition folders, want 4", len(bk.files[topic]))
	}
}

// franzExpected is the record kafka_backup writes for r when it comes through
// the kafka_franz input with multi_header: true. From connect's
// FranzRecordToMessageV0 and output/record.go:
//   - kafka_key metadata is string(key), so a null key and an empty key both
//     become "" and are written as a null key;
//   - the value stays as it is: kafka_tombstone_message keeps null apart from
//     empty;
//   - the timestamp is kafka_timestamp_ms, exact;
//   - headers come from metadata (there is no exact header list): a null
//     header value becomes "" and is written empty; names starting with
//     kafka_ (or __rpcn) are dropped, as they cannot be told apart from the
//     input's own metadata; the rest are sorted by name (byte order), values
//     of one name kept in their order (multi_header lists).
func franzExpected(r segment.Record) segment.Record {
	out := r
	if len(r.Key) == 0 {
		out.Key = nil
	}
	out.Headers = nil
	for _, h := range r.Headers {
		if strings.HasPrefix(h.Key, "kafka_") || strings.HasPrefix(h.Key, "__rpcn") {
			continue
		}
		v := h.Value
		if v == nil {
			v = []byte{}
		}
		out.Headers = append(out.Headers, segment.Header{Key: h.Key, Value: v})
	}
	sort.SliceStable(out.Headers, func(i, j int) bool { return out.Headers[i].Key < out.Headers[j].Key })
	return out
}

// TestE2EKafkaFranzTransform backs up the same kind of workload through the
// kafka_franz input (multi_header) and checks every record against the
// ground truth transformed as franzExpected documents.
func TestE2EKafkaFranzTransform(t *testing.T) {
	t.Parallel()
	needKcat(t)
	const topic = "franz"
	b := startBroker(t, 4, topic)
	b.produceWorkload(topic, 4, workload{perPartition: 600, seed: 2})
	truth := b.groundTruth(topic, 4)
	requireVariety(t, truth)

	want := map[int32][]segment.Record{}
	changed := 0
	for p, recs := range truth {
		for _, r := range recs {
			e := franzExpected(r)
			if recordDiff(e, r) != "" {
				changed++
			}
			want[p] = append(want[p], e)
		}
	}
	if changed == 0 {
		t.Fatal("the workload has no record kafka_franz changes")
	}

	// max_in_flight 1 keeps each partition's records in order (kafka_franz
	// hands over one record per batch; TestE2EKafkaFranzOutOfOrder covers
	// the default, unordered case).
	dir := filepath.Join(t.TempDir(), "backup")
	p := runBackup(t, "kafka_franz", backupConfig(franzInput(b, "g1", topic), dir, "    max_in_flight: 1\n"))
	waitRecords(t, dir, sumRecords(truth), p)
	p.stop()
	verifyBackup(t, dir, verifyOpts{want: map[string]map[int32][]segment.Record{topic: want}})
	t.Logf("%d of %d records differ from Kafka's as documented", changed, sumRecords(truth))
}

// TestE2EKafkaFranzOutOfOrder backs up through kafka_franz with the default
// max_in_flight (16): kafka_franz hands over one record per batch, so batches
// of one partition reach the writer out of order. Every record must still be
// in exactly one final file. (Until commit 7151f03 a record whose offset lay
// between the first and last offset of the open file was taken as written,
// skipped as "persisted", acknowledged and lost: about 70% of them here.)
func TestE2EKafkaFranzOutOfOrder(t *testing.T) {
	t.Parallel()
	needKcat(t)
	const topic = "franz-ooo"
	b := startBroker(t, 4, topic)
	b.produceWorkload(topic, 4, workload{perPartition: 300, seed: 5})
	truth := b.groundTruth(topic, 4)
	want := map[int32][]segment.Record{}
	for p, recs := range truth {
		for _, r := range recs {
			want[p] = append(want[p], franzExpected(r))
		}
	}
	dir := filepath.Join(t.TempDir(), "backup")
	p := runBackup(t, "kafka_franz", backupConfig(franzInput(b, "g1", topic), dir, ""))
	// Every record delivered and acknowledged: committed up to the end.
	waitCommitted(t, b, "g1", 4, []string{topic}, p)
	p.stop()
	verifyBackup(t, dir, verifyOpts{want: map[string]map[int32][]segment.Record{topic: want}})
	if n := strings.Count(p.logs(), "reason=out_of_order"); n > 0 {
		t.Logf("%d files rolled because records arrived out of order", n)
	} else {
		t.Logf("no batch arrived out of order this time: the test checked ordered delivery only")
	}

	// A new group replays everything, out of order again, into a tree whose
	// files may hold offsets with gaps between them: nothing is written twice.
	p = runBackup(t, "kafka_franz-replay", backupConfig(franzInput(b, "g2", topic), dir, ""))
	waitCommitted(t, b, "g2", 4, []string{topic}, p)
	if strings.Contains(p.logs(), "level=error") {
		t.Errorf("the replay logged errors")
	}
	p.stop()
	verifyBackup(t, dir, verifyOpts{want: map[string]map[int32][]segment.Record{topic: want}})
}

// TestE2ESizeRoll backs up with size 16KiB: every partition rolls into many
// files, none over 16KiB except the one holding a single 40 KiB record.
func TestE2ESizeRoll(t *testing.T) {
	t.Parallel()
	needKcat(t)
	const topic = "sized"
	const size = 16 << 10
	b := startBroker(t, 4, topic)
	b.produceWorkload(topic, 4, workload{perPartition: 500, seed: 3})
	// One record larger than size, between others, in partition 2.
	big := fmt.Sprintf("big\t%s", strings.Repeat("0123456789abcdef", 40<<10/16))
	bigOffset := int64(b.producedCount(topic, 2)) + 1 // after "before"
	b.produce(topic, 2, kcatRun{KeyDelim: true, Lines: []string{"before\tsmall", big, "after\tsmall"}})
	truth := b.groundTruth(topic, 4)

	dir := filepath.Join(t.TempDir(), "backup")
	p := runBackup(t, "sized", backupConfig(redpandaInput(b, "g1", topic), dir, "    size: 16KiB\n"))
	waitRecords(t, dir, sumRecords(truth), p)
	p.stop()

	bk := verifyBackup(t, dir, verifyOpts{maxSize: size, want: map[string]map[int32][]segment.Record{topic: truth}})
	var bigFile *backupFile
	nfiles := 0
	for part, files := range bk.files[topic] {
		var total int64
		for i := range files {
			total += files[i].size
			if files[i].size > size {
				if bigFile != nil {
					t.Errorf("two files over size: %s and %s", bigFile.path, files[i].path)
				}
				bigFile = &files[i]
			}
		}
		if least := total/size + 1; int64(len(files)) < least {
			t.Errorf("%s/%d: %d files for %d bytes, want at least %d", topic, part, len(files), total, least)
		}
		nfiles += len(files)
		t.Logf("%s/%d: %d files, %d bytes", topic, part, len(files), total)
	}
	// Every file but each partition's last rolled for its size; the last
	// ones at shutdown.
	if n := strings.Count(p.logs(), "reason=size"); n < nfiles-4 {
		t.Errorf("%d files logged as rolled by size, want at least %d", n, nfiles-4)
	}
	switch {
	case bigFile == nil:
		t.Errorf("no file holds the %d-byte record alone", len(big))
	case len(bigFile.recs) != 1 || bigFile.recs[0].Offset != bigOffset:
		t.Errorf("%s: %d records from offset %d, want only the big record %d", bigFile.path, len(bigFile.recs), bigFile.recs[0].Offset, bigOffset)
	case filepath.Base(bigFile.path) != fmt.Sprint(bigOffset) || filepath.Base(filepath.Dir(bigFile.path)) != "2":
		t.Errorf("the big record is in %s, want %s/2/%d", bigFile.path, topic, bigOffset)
	}
}

// TestE2EIdleRoll uses roll_duration 1s: once the records are written, every
// file becomes final while the process keeps running. Batches are zstd
// compressed, which the kmsg-based check decompresses itself.
func TestE2EIdleRoll(t *testing.T) {
	t.Parallel()
	needKcat(t)
	const topic = "idle"
	b := startBroker(t, 4, topic)
	b.produceWorkload(topic, 4, workload{perPartition: 300, seed: 4})
	truth := b.groundTruth(topic, 4)

	dir := filepath.Join(t.TempDir(), "backup")
	p := runBackup(t, "idle", backupConfig(redpandaInput(b, "g1", topic), dir, "    roll_duration: 1s\n    compression: zstd\n"))
	waitRecords(t, dir, sumRecords(truth), p)
	waitFor(t, "every file final", func() (bool, string) {
		ip := inProgressFiles(dir)
		n, err := countRecords(dir)
		return len(ip) == 0 && n == sumRecords(truth) && err == nil, fmt.Sprintf("in progress: %v; %d records (%v)", ip, n, err)
	}, p)
	// Before the stop: the files were finalized for being idle.
	idle := regexp.MustCompile(`finalized ` + topic + `/[0-9]+/[0-9]+.*reason=idle`)
	// The log line follows the rename: poll for it.
	waitFor(t, "files logged as finalized for idleness", func() (bool, string) {
		n := len(idle.FindAllString(p.logs(), -1))
		return n >= 4, fmt.Sprintf("%d logged, want at least 4", n)
	}, p)
	p.stop()

	bk := verifyBackup(t, dir, verifyOpts{want: map[string]map[int32][]segment.Record{topic: truth}})
	for part, files := range bk.files[topic] {
		for _, f := range files {
			if !f.codecs[int8(segment.Zstd)] || len(f.codecs) != 1 {
				t.Errorf("%s/%d %s: codecs %v, want zstd only", topic, part, f.path, f.codecs)
			}
		}
	}
}

// TestE2EOffsetFrom backs up two topics, one with dots in its name, with
// offset_from at topic level (test: 101), at partition level winning over it
// ("test:0": 50, a dotted "my.dotted.topic:1": 10) and beyond the end of a
// partition ("test:3": 1000000): records below are acknowledged and not
// written, the partition past its end gets no file, and the process neither
// fails nor loops (the group commits every partition to its end).
func TestE2EOffsetFrom(t *testing.T) {
	t.Parallel()
	needKcat(t)
	const topic, dotted = "test", "my.dotted.topic"
	b := startBroker(t, 4, topic, dotted)
	b.produceWorkload(topic, 4, workload{perPartition: 300, seed: 6})
	b.produceWorkload(dotted, 4, workload{perPartition: 60, seed: 7})
	truth := map[string]map[int32][]segment.Record{topic: b.groundTruth(topic, 4), dotted: b.groundTruth(dotted, 4)}

	from := map[string]map[int32]int64{
		topic:  {0: 50, 1: 101, 2: 101, 3: 1_000_000},
		dotted: {0: 0, 1: 10, 2: 0, 3: 0},
	}
	want := map[string]map[int32][]segment.Record{topic: {}, dotted: {}}
	total := 0
	for tp, parts := range truth {
		for p, recs := range parts {
			for _, r := range recs {
				if r.Offset >= from[tp][p] {
					want[tp][p] = append(want[tp][p], r)
					total++
				}
			}
		}
	}
	delete(want[topic], 3)

	dir := filepath.Join(t.TempDir(), "backup")
	p := runBackup(t, "offset_from", backupConfig(redpandaInput(b, "g1", topic, dotted), dir, `    offset_from:
      test: 101
      "test:0": 50
      "test:3": 1000000
      "my.dotted.topic:1": 10
`))
	waitCommitted(t, b, "g1", 4, []string{topic, dotted}, p)
	waitRecords(t, dir, total, p)
	if n, err := countRecords(dir); n != total || err != nil {
		t.Errorf("%d records in files, want %d (%v)", n, total, err)
	}
	if strings.Contains(p.logs(), "level=error") {
		t.Errorf("errors logged")
	}
	p.stop()

	bk := verifyBackup(t, dir, verifyOpts{want: want})
	for tp, parts := range from {
		for part, off := range parts {
			files := bk.files[tp][part]
			if tp == topic && part == 3 {
				continue // no file: checked by verifyBackup
			}
			if len(files) == 0 || files[0].recs[0].Offset != off || filepath.Base(files[0].path) != fmt.Sprint(off) {
				t.Errorf("%s/%d: first file is not %d", tp, part, off)
			}
		}
	}
}

// TestE2ERestart runs kafka-backup, stops it, produces more and runs it again
// with the same group and path, then once more with a new group that replays
// every record from the start: each record is in exactly one final file, no
// file name collides, nothing is left in progress.
func TestE2ERestart(t *testing.T) {
	t.Parallel()
	needKcat(t)
	const topic = "restart"
	b := startBroker(t, 4, topic)
	dir := filepath.Join(t.TempDir(), "backup")
	extra := "    size: 16KiB\n"
	cfg := backupConfig(redpandaInput(b, "g1", topic), dir, extra)
	check := func(run string) backup {
		t.Helper()
		truth := b.groundTruth(topic, 4)
		bk := verifyBackup(t, dir, verifyOpts{maxSize: 16 << 10, want: map[string]map[int32][]segment.Record{topic: truth}})
		files := 0
		for _, fs := range bk.files[topic] {
			files += len(fs)
		}
		t.Logf("after %s: %d records in %d files", run, sumRecords(truth), files)
		return bk
	}

	b.produceWorkload(topic, 4, workload{perPartition: 200, seed: 8})
	p := runBackup(t, "run1", cfg)
	waitRecords(t, dir, b.totalProduced(), p)
	p.stop()
	first := check("run 1")

	b.produceWorkload(topic, 4, workload{perPartition: 150, seed: 9})
	p = runBackup(t, "run2", cfg)
	waitRecords(t, dir, b.totalProduced(), p)
	waitCommitted(t, b, "g1", 4, []string{topic}, p)
	p.stop()
	second := check("run 2")

	// A new group: every record is delivered again and must be skipped.
	b.produceWorkload(topic, 4, workload{perPartition: 100, seed: 10})
	p = runBackup(t, "run3", backupConfig(redpandaInput(b, "g-replay", topic), dir, extra))
	waitCommitted(t, b, "g-replay", 4, []string{topic}, p)
	waitRecords(t, dir, b.totalProduced(), p)
	if strings.Contains(p.logs(), "level=error") {
		t.Errorf("run 3 logged errors")
	}
	p.stop()
	third := check("run 3")

	// Files of earlier runs are kept as they were.
	for _, earlier := range []backup{first, second} {
		for part, files := range earlier.files[topic] {
			later := map[string]int64{}
			for _, f := range third.files[topic][part] {
				later[f.path] = f.size
			}
			for _, f := range files {
				if size, ok := later[f.path]; !ok || size != f.size {
					t.Errorf("%s: changed by a later run", f.path)
				}
			}
		}
	}
}

// TestE2ENoKafkaMetadata feeds kafka_backup from the generate input, whose
// messages have no Kafka metadata: the output logs an error naming
// kafka_topic and writes nothing.
func TestE2ENoKafkaMetadata(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "backup")
	p := runBackup(t, "generate", backupConfig(`  generate:
    mapping: 'root = "no kafka metadata here"'
    interval: 20ms
`, dir, ""))
	errLine := regexp.MustCompile(`level=error.*no kafka_topic metadata`)
	waitFor(t, "an error naming kafka_topic", func() (bool, string) {
		return errLine.MatchString(p.logs()), "not logged yet"
	}, p)
	// Killed, not stopped: the error comes so early that a SIGTERM may find
	// Benthos not listening for it yet (it listens once the pipeline runs),
	// and the signal's default action ends the process: no clean stop to
	// check here, only that nothing was written.
	p.sigkill()
	var files []string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	if len(files) > 0 {
		t.Errorf("files written from messages without Kafka metadata: %v", files)
	}
}
