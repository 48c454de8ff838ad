package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-backup/kafka-backup/internal/backuptest"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tests/ftptest"
)

// inRecords returns n records from offset first with every kind of key,
// value and header: null and empty keys and values, bytes that are not
// UTF-8, duplicate header names, null and empty header values.
func inRecords(first int64, n int, ts int64) []segment.Record {
	out := make([]segment.Record, n)
	for i := range out {
		off := first + int64(i)
		r := segment.Record{Offset: off, Timestamp: ts + int64(i*7) - int64(i%4)*9}
		switch i % 5 {
		case 0:
			r.Key, r.Value = nil, []byte(fmt.Sprintf("value-%d", off))
		case 1:
			r.Key, r.Value = []byte{}, nil
		case 2:
			r.Key, r.Value = []byte{0xff, 0x00, byte(i)}, []byte{}
		case 3:
			r.Key, r.Value = []byte(fmt.Sprintf("k-%d", off)), bytes.Repeat([]byte{0x80, byte(i)}, i%40)
		default:
			r.Key, r.Value = []byte("key"), nil
		}
		if i%3 != 2 {
			r.Headers = []segment.Header{
				{Key: "trace", Value: []byte(fmt.Sprint("t-", off))},
				{Key: "trace", Value: []byte("second")},
				{Key: "nullh", Value: nil},
				{Key: "emptyh", Value: []byte{}},
			}
		}
		out[i] = r
	}
	return out
}

// sourceTree writes topic "orders" with 3 partitions (several files,
// compressed batches, a file overlapping two others, a leftover in-progress
// file) and topic "other". It returns the root and the records of orders by
// partition, each offset once.
func sourceTree(t testing.TB) (string, map[int32][]segment.Record) {
	t.Helper()
	root := t.TempDir()
	want := map[int32][]segment.Record{}
	codecs := []segment.Compression{segment.None, segment.Gzip, segment.Snappy, segment.LZ4, segment.Zstd}
	for p := range int32(3) {
		recs := inRecords(0, 120+int(p)*37, 1_700_000_000_000+int64(p)*1000)
		// Files of 50 records; a gap of 10 offsets after the first file.
		var kept []segment.Record
		for i, f := 0, 0; i < len(recs); f++ {
			j := min(len(recs), i+50)
			part := recs[i:j]
			if f == 1 {
				part = part[10:]
			}
			backuptest.WriteSegment(t, root, "orders", p, layout.NamePlain.FileName(part[0].Offset), part, 7+f, codecs[(int(p)+f)%len(codecs)])
			kept = append(kept, part...)
			i = j
		}
		want[p] = kept
	}
	// Partition 0: a misnamed file ("41") holding offsets 40-49 and 60-69,
	// which two other files hold too.
	backuptest.WriteSegment(t, root, "orders", 0, "41", want[0][40:60], 100, segment.None)
	if err := os.WriteFile(filepath.Join(layout.PartitionDir(root, "orders", 1), ".999.host-1.inprogress"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	backuptest.WriteSegment(t, root, "other", 0, "0", inRecords(0, 5, 0), 5, segment.None)
	return root, want
}

// readBack reads every final file of a topic below root with
// segment.Reader, by partition in file order.
func readBack(t testing.TB, root, topic string) map[int32][]segment.Record {
	t.Helper()
	ctx := context.Background()
	src := backuptest.OpenTree(t, root)
	out := map[int32][]segment.Record{}
	parts, err := src.Partitions(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		part, err := src.List(ctx, topic, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(part.Leftovers) > 0 {
			t.Errorf("%s/%d: leftovers %v", topic, p, part.Leftovers)
		}
		for _, f := range part.Files {
			rc, err := src.Open(ctx, topic, p, f.Name)
			if err != nil {
				t.Fatal(err)
			}
			rd := segment.NewReader(rc)
			for {
				b, err := rd.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s/%d/%s: %v", topic, p, f.Name, err)
				}
				recs, err := b.Records()
				if err != nil {
					t.Fatal(err)
				}
				out[p] = append(out[p], recs...)
			}
			rc.Close()
		}
	}
	return out
}

func compareParts(t testing.TB, got, want map[int32][]segment.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d partitions, want %d", len(got), len(want))
	}
	for p, w := range want {
		g := got[p]
		if len(g) != len(w) {
			t.Errorf("partition %d: %d records, want %d", p, len(g), len(w))
			continue
		}
		for i := range w {
			if d := backuptest.RecordDiff(g[i], w[i]); d != "" {
				t.Fatalf("partition %d record %d: %s", p, i, d)
			}
		}
	}
}

// runStream runs a pipeline config to its end (the input ends) with
// kafka-backup's components, and optionally a consumer of every batch
// instead of an output.
func runStream(t testing.TB, conf string, consume service.MessageBatchHandlerFunc) error {
	t.Helper()
	env := service.NewEnvironment()
	if err := Register(env); err != nil {
		t.Fatal(err)
	}
	sb := env.NewStreamBuilder()
	if err := sb.SetLoggerYAML("level: warn"); err != nil {
		t.Fatal(err)
	}
	if err := sb.SetYAML(conf); err != nil {
		t.Fatal(err)
	}
	if consume != nil {
		if err := sb.AddBatchConsumerFunc(consume); err != nil {
			t.Fatal(err)
		}
	}
	stream, err := sb.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return stream.Run(ctx)
}

// TestInputRoundTrip reads a backup with the kafka_backup input and writes
// it with the kafka_backup output into a new folder: every record comes out
// equal (null keys and values, empty ones, headers in order with duplicates
// and null values, timestamps, offsets), each offset once, the other topic
// left out.
func TestInputRoundTrip(t *testing.T) {
	src, want := sourceTree(t)
	dst := filepath.Join(t.TempDir(), "copy")
	start := time.Now()
	err := runStream(t, fmt.Sprintf(`
input:
  kafka_backup:
    path: %q
    topics: [orders]
output:
  kafka_backup:
    path: %q
    max_in_flight: 1
    size: 4KiB
`, src, dst), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("round trip in %v", time.Since(start))
	compareParts(t, readBack(t, dst, "orders"), want)
	if _, err := os.Stat(filepath.Join(dst, "other")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("topic other was copied: %v", err)
	}
}

// TestInputFTP reads the same backup from an FTP server.
func TestInputFTP(t *testing.T) {
	src, want := sourceTree(t)
	srv := ftptest.Start(t)
	if err := os.CopyFS(srv.LocalPath("/backups/kafka"), os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "copy")
	err := runStream(t, fmt.Sprintf(`
input:
  kafka_backup:
    path: "ftp://%s@%s/backups/kafka"
    password: %q
    topics: [orders]
    timeout: 10s
output:
  kafka_backup:
    path: %q
    max_in_flight: 1
`, srv.User, srv.Addr, srv.Password, dst), nil)
	if err != nil {
		t.Fatal(err)
	}
	compareParts(t, readBack(t, dst, "orders"), want)
}

// TestInputMetadata checks the metadata of every message against the
// record it came from, as the redpanda input sets it, and that batches are
// the file's RecordBatches in offset order, partition after partition.
func TestInputMetadata(t *testing.T) {
	root := t.TempDir()
	recs := inRecords(10, 30, 1_700_000_000_000)
	backuptest.WriteSegment(t, root, "m", 0, "10", recs[:20], 8, segment.Gzip)
	backuptest.WriteSegment(t, root, "m", 0, "30", recs[20:], 8, segment.None)
	p1 := inRecords(0, 3, 5)
	backuptest.WriteSegment(t, root, "m", 1, "0", p1, 8, segment.None)
	var mu sync.Mutex
	var sizes []int
	var got []segment.Record
	var parts []int
	var errs []string
	err := runStream(t, fmt.Sprintf("input:\n  kafka_backup:\n    path: %q\noutput:\n  drop: {}\n", root), func(_ context.Context, b service.MessageBatch) error {
		mu.Lock()
		defer mu.Unlock()
		sizes = append(sizes, len(b))
		for _, m := range b {
			meta := map[string]any{}
			_ = m.MetaWalkMut(func(k string, v any) error { meta[k] = v; return nil })
			key, ok := meta["kafka_key"].([]byte)
			part, ok2 := meta["kafka_partition"].(int)
			off, ok3 := meta["kafka_offset"].(int)
			ms, ok4 := meta["kafka_timestamp_ms"].(int64)
			unix, ok5 := meta["kafka_timestamp_unix"].(int64)
			tomb, ok6 := meta["kafka_tombstone_message"].(bool)
			if !ok || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || meta["kafka_topic"] != "m" {
				errs = append(errs, fmt.Sprintf("metadata types: %#v", meta))
				continue
			}
			v, _ := m.AsBytes()
			if tomb != (v == nil) || unix != ms/1000 {
				errs = append(errs, fmt.Sprintf("offset %d: tombstone %v with value %q, unix %d ms %d", off, tomb, v, unix, ms))
			}
			r := segment.Record{Offset: int64(off), Timestamp: ms, Key: key, Value: v}
			if hl, ok := meta["__rpcn_kafka_headers"].([]kgo.RecordHeader); ok {
				for _, h := range hl {
					r.Headers = append(r.Headers, segment.Header{Key: h.Key, Value: h.Value})
				}
				// Each header is metadata too: the last value, nil when null.
				if meta["trace"] != "second" || meta["nullh"] != nil || meta["emptyh"] != "" {
					errs = append(errs, fmt.Sprintf("offset %d: header metadata %#v", off, meta))
				}
				if _, has := meta["nullh"]; !has {
					errs = append(errs, fmt.Sprintf("offset %d: no nullh metadata", off))
				}
			} else if _, has := meta["__rpcn_kafka_headers"]; has {
				errs = append(errs, fmt.Sprintf("offset %d: header list %T", off, meta["__rpcn_kafka_headers"]))
			}
			got = append(got, r)
			parts = append(parts, part)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range errs[:min(len(errs), 5)] {
		t.Error(e)
	}
	if fmt.Sprint(sizes) != "[8 8 4 8 2 3]" {
		t.Errorf("batch sizes %v, want the files' RecordBatches [8 8 4 8 2 3]", sizes)
	}
	want := append(append([]segment.Record{}, recs...), p1...)
	compareParts(t, map[int32][]segment.Record{0: got}, map[int32][]segment.Record{0: want})
	if fmt.Sprint(parts[29:]) != "[0 1 1 1]" {
		t.Errorf("partitions %v", parts)
	}
}

// TestInputCorrupt: a corrupt batch stops the input after the records before
// it (it does not end and skips nothing); with skip_corrupt the rest of the
// file is skipped and the next files are read.
func TestInputCorrupt(t *testing.T) {
	root := t.TempDir()
	recs := inRecords(0, 60, 1_700_000_000_000)
	data := backuptest.Encode(t, recs[:30], 10, segment.None)
	backuptest.WriteFile(t, root, "c", 0, "0", data)
	backuptest.WriteSegment(t, root, "c", 0, "30", recs[30:], 10, segment.None)
	// The second batch of file 0: a byte of its records.
	second := int64(0)
	var rs []int64
	rd := segment.NewReader(bytes.NewReader(data))
	for {
		b, err := rd.Next()
		if err != nil {
			break
		}
		rs = append(rs, b.Position)
	}
	second = rs[1]
	data[second+segment.HeaderSize+2] ^= 0xff
	if err := os.WriteFile(filepath.Join(layout.PartitionDir(root, "c", 0), "0"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	collect := func(conf string, wait time.Duration) ([]int64, error) {
		var mu sync.Mutex
		var offs []int64
		env := service.NewEnvironment()
		if err := Register(env); err != nil {
			t.Fatal(err)
		}
		sb := env.NewStreamBuilder()
		_ = sb.SetLoggerYAML("level: off")
		if err := sb.SetYAML(conf); err != nil {
			t.Fatal(err)
		}
		_ = sb.AddBatchConsumerFunc(func(_ context.Context, b service.MessageBatch) error {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range b {
				o, _ := m.MetaGetMut("kafka_offset")
				offs = append(offs, int64(o.(int)))
			}
			return nil
		})
		stream, err := sb.Build()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		err = stream.Run(ctx)
		mu.Lock()
		defer mu.Unlock()
		return offs, err
	}
	offs, err := collect(fmt.Sprintf("input:\n  kafka_backup:\n    path: %q\noutput:\n  drop: {}\n", root), 2*time.Second)
	if err == nil {
		t.Error("the input ended despite a corrupt batch")
	}
	if len(offs) != 10 || offs[9] != 9 {
		t.Errorf("without skip_corrupt: offsets %v, want 0-9", offs)
	}
	offs, err = collect(fmt.Sprintf("input:\n  kafka_backup:\n    path: %q\n    skip_corrupt: true\noutput:\n  drop: {}\n", root), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(offs) != 40 || offs[9] != 9 || offs[10] != 30 {
		t.Errorf("with skip_corrupt: offsets %v, want 0-9 and 30-59", offs)
	}
}

func TestInputConfig(t *testing.T) {
	env := testEnv(t)
	root, _ := sourceTree(t)
	parse := func(yml string) (service.BatchInput, error) {
		conf, err := InputSpec().ParseYAML(yml, env)
		if err != nil {
			return nil, err
		}
		return newInput(conf, service.MockResources())
	}
	in, err := parse(fmt.Sprintf("path: %q\ntopics: [orders, nope]\n", root))
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Connect(context.Background()); err == nil || !strings.Contains(err.Error(), "no topic nope") {
		t.Errorf("missing topic: %v", err)
	}
	in.Close(context.Background())
	for yml, want := range map[string]string{
		`path: ""`:                                             "path",
		"path: /x\ntimeout: soon":                              "timeout",
		"path: /x\nmax_connections: 0":                         "max_connections",
		"path: /x\nconnect_timeout: 0s":                        "connect_timeout",
		"path: ftps://h/x\ntls: {root_cas_file: /nonexistent}": "tls",
	} {
		if _, err := parse(yml); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v does not name %s", yml, err, want)
		}
	}
	linter := env.FullConfigSchema("", "").NewStreamConfigLinter()
	lints, err := linter.LintYAML([]byte("input:\n  kafka_backup:\n    path: /b\n    topics: [a]\n    timeout: 3s\noutput:\n  drop: {}\n"))
	if err != nil || len(lints) != 0 {
		t.Errorf("lint: %v %v", lints, err)
	}
}

// TestInputToStockOutput documents what the stock redpanda output carries
// from the input: values, keys, timestamps and partitions through
// interpolations; headers only as metadata strings, so a duplicate header
// name keeps one value and a null header value becomes "null". The README's
// "Replaying a backup through a pipeline" says so.
func TestInputToStockOutput(t *testing.T) {
	root := t.TempDir()
	recs := inRecords(0, 10, 1_700_000_000_000)
	backuptest.WriteSegment(t, root, "s", 0, "0", recs, 10, segment.None)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "target"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	err = runStream(t, fmt.Sprintf(`
input:
  kafka_backup:
    path: %q
output:
  redpanda:
    seed_brokers: [%q]
    topic: target
    key: ${! @kafka_key }
    partitioner: manual
    partition: ${! @kafka_partition }
    timestamp_ms: ${! @kafka_timestamp_ms }
    metadata:
      include_prefixes: [trace, nullh, emptyh]
    max_in_flight: 1
`, root, addr), nil)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"target": {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []*kgo.Record
	for len(got) < len(recs) && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, r) })
	}
	if len(got) != len(recs) {
		t.Fatalf("%d records in the target, want %d", len(got), len(recs))
	}
	for i, r := range got {
		w := recs[i]
		if !bytes.Equal(r.Value, w.Value) || !bytes.Equal(r.Key, w.Key) || r.Timestamp.UnixMilli() != w.Timestamp {
			t.Errorf("record %d: key %q value %q ts %d, want %q %q %d", i, r.Key, r.Value, r.Timestamp.UnixMilli(), w.Key, w.Value, w.Timestamp)
		}
		t.Logf("record %d: key null %v (want %v), value null %v (want %v), headers %v", i, r.Key == nil, w.Key == nil, r.Value == nil, w.Value == nil, r.Headers)
		if len(w.Headers) == 0 {
			continue
		}
		hs := map[string][]string{}
		for _, h := range r.Headers {
			hs[h.Key] = append(hs[h.Key], string(h.Value))
		}
		if fmt.Sprint(hs["trace"]) != "[second]" || fmt.Sprint(hs["nullh"]) != "[null]" || len(hs["emptyh"]) != 1 || hs["emptyh"][0] != "" {
			t.Errorf("record %d: headers %v: the README says duplicates keep the last value and a null value becomes \"null\"", i, hs)
		}
	}
}

// TestInputInterleavedOrder (issue 17 row 2): on files that interleave
// (file 0 holding 0-99 and 200-299, file 100 holding 100-199, as kafka_franz
// with max_in_flight > 1 leaves them), each partition leaves the input in
// offset order, each offset once; with a processor and pipeline.threads: 1
// (what the README's "Order" says keeps it) the order reaches the output.
// The input used to emit 0-99, 200-299, 100-199.
func TestInputInterleavedOrder(t *testing.T) {
	root := t.TempDir()
	recs := inRecords(0, 300, 1_700_000_000_000)
	backuptest.WriteSegment(t, root, "i", 0, "0", append(append([]segment.Record(nil), recs[:100]...), recs[200:]...), 10, segment.None)
	backuptest.WriteSegment(t, root, "i", 0, "100", recs[100:200], 10, segment.Snappy)
	// Partition 1: the same offsets twice, in files that overlap.
	backuptest.WriteSegment(t, root, "i", 1, "0", recs[:150], 10, segment.None)
	backuptest.WriteSegment(t, root, "i", 1, "100", recs[100:], 10, segment.Gzip)
	for name, pipeline := range map[string]string{
		"no processors":       "",
		"threads 1, mutation": "pipeline:\n  threads: 1\n  processors:\n    - mutation: 'meta seen = \"yes\"'\n",
	} {
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			got := map[int][]segment.Record{}
			err := runStream(t, fmt.Sprintf("input:\n  kafka_backup:\n    path: %q\n%soutput:\n  drop: {}\n", root, pipeline), func(_ context.Context, b service.MessageBatch) error {
				mu.Lock()
				defer mu.Unlock()
				for _, m := range b {
					p, _ := m.MetaGetMut("kafka_partition")
					off, _ := m.MetaGetMut("kafka_offset")
					v, _ := m.AsBytes()
					got[p.(int)] = append(got[p.(int)], segment.Record{Offset: int64(off.(int)), Value: v})
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for p := range 2 {
				g := got[p]
				if len(g) != len(recs) {
					t.Errorf("partition %d: %d records, want %d", p, len(g), len(recs))
					continue
				}
				for i, r := range g {
					if r.Offset != int64(i) || !bytes.Equal(r.Value, recs[i].Value) {
						t.Fatalf("partition %d: message %d is offset %d (value %q), want %d (%q)", p, i, r.Offset, r.Value, i, recs[i].Value)
					}
				}
			}
		})
	}
}
