package tests

// End-to-end tests of the metadata snapshots (issue 15): a backup with the
// kafka_backup output's metadata block, then `kafka-backup restore
// --create-topics --consumer-groups` into a second, empty cluster: topics
// created with the source's partition count and configs, and each group
// offset translated so that the record at the target offset is the record
// that was at the source offset.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/metadata"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tests/ftpd"
)

// metaAdmin returns a kadm client of a kfake broker, closed at the end of
// the test.
func metaAdmin(t testing.TB, b *broker) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// metaSource makes the source of the metadata tests: topic with
// partitions partitions and the configs, per partitions records each
// (key k-<p>-<i>, value v-<p>-<i>), and group offsets committed.
func metaSource(t testing.TB, topic string, partitions int32, per int, configs map[string]string) *broker {
	t.Helper()
	b := startBroker(t, 1)
	adm := metaAdmin(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cs := map[string]*string{}
	for k, v := range configs {
		cs[k] = &v
	}
	if _, err := adm.CreateTopic(ctx, partitions, 1, cs, topic); err != nil {
		t.Fatalf("creating %s: %v", topic, err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for p := range partitions {
		for i := range per {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Key: fmt.Appendf(nil, "k-%d-%d", p, i), Value: fmt.Appendf(nil, "v-%d-%d", p, i)})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}
	return b
}

// metaCommit commits offsets of group on topic, by partition.
func metaCommit(t testing.TB, b *broker, group, topic string, offsets map[int32]int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	offs := kadm.Offsets{}
	for p, o := range offsets {
		offs.AddOffset(topic, p, o, -1)
	}
	resp, err := metaAdmin(t, b).CommitOffsets(ctx, group, offs)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("committing %s offsets: %v", group, err)
	}
}

// metaCommitted returns the committed offsets of group on topic.
func metaCommitted(t testing.TB, b *broker, group, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	resp, err := metaAdmin(t, b).FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return map[int32]int64{}
	}
	if err != nil {
		t.Fatalf("fetching %s offsets: %v", group, err)
	}
	out := map[int32]int64{}
	for p, o := range resp[topic] {
		if o.Err == nil && o.At >= 0 {
			out[p] = o.At
		}
	}
	return out
}

// metaSnapshots reads the snapshots below dir/@metadata, by time.
func metaSnapshots(t testing.TB, dir string) []metadata.Stored {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(dir, layout.MetadataDir))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []metadata.Stored
	for _, e := range es {
		if _, ok := metadata.ParseName(e.Name()); !ok {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, layout.MetadataDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		s, err := metadata.Decode(data)
		if err != nil {
			t.Fatalf("%s: %v\n%s", e.Name(), err, data)
		}
		out = append(out, metadata.Stored{Name: e.Name(), Snapshot: s})
	}
	return out
}

// groupOffset returns a snapshot's committed offset of group on
// topic/partition, or -1.
func groupOffset(s *metadata.Snapshot, group, topic string, partition int32) int64 {
	for _, g := range s.Groups {
		if g.Name != group {
			continue
		}
		for _, o := range g.Offsets {
			if o.Topic == topic && o.Partition == partition {
				return o.Offset
			}
		}
	}
	return -1
}

// byOffset indexes records by offset.
func byOffset(recs []segment.Record) map[int64]segment.Record {
	out := map[int64]segment.Record{}
	for _, r := range recs {
		out[r.Offset] = r
	}
	return out
}

// metaMetadataBlock is the output's metadata block (indented by four
// spaces) against b.
func metaMetadataBlock(b *broker) string {
	return fmt.Sprintf(`    metadata:
      seed_brokers: [%q]
      interval: 300ms
      consumer_groups: ["app", "other"]
`, b.addr)
}

// kbRun runs the binary with args and returns its combined output and
// exit error.
func kbRun(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, kbBin, args...).CombinedOutput()
	t.Logf("kafka-backup %s: %v\n%s", strings.Join(args, " "), err, out)
	return string(out), err
}

// TestE2EMetadataRestore: a source topic with non-default configs and a
// group with committed offsets, backed up from offset 10 (offset_from) with
// snapshots; the group then moves on partition 0. Restored into an empty
// cluster with --create-topics --consumer-groups: the topic has the
// source's partition count and configs (plus --topic-config); for each
// partition the record at the group's target offset is the record at its
// source offset (below the first backed-up record: the first restored one;
// at the end: the end). A dry run commits nothing; a live member of the
// group is refused; --until picks the older snapshot, with --rename.
func TestE2EMetadataRestore(t *testing.T) {
	t.Parallel()
	const topic, partitions, per, from = "orders", 3, 100, 10
	configs := map[string]string{"retention.ms": "315360000000", "max.message.bytes": "2097152"}
	src := metaSource(t, topic, partitions, per, configs)
	metaCommit(t, src, "app", topic, map[int32]int64{0: 50, 1: 5, 2: per})
	metaCommit(t, src, "other", topic, map[int32]int64{0: 60})
	metaCommit(t, src, "ignored", topic, map[int32]int64{0: 70})

	dir := filepath.Join(t.TempDir(), "backup")
	group := "meta-backup"
	cfg := backupConfig(redpandaInput(src, group, topic), dir,
		fmt.Sprintf("    roll_duration: 1s\n    offset_from: {%s: %d}\n", topic, from)+metaMetadataBlock(src))
	p := runBackup(t, "backup-meta", cfg)
	waitFor(t, "commits of the backup", func() (bool, string) {
		got := metaCommitted(t, src, group, topic)
		return len(got) == partitions && got[0] == per && got[1] == per && got[2] == per, fmt.Sprint(got)
	}, p)
	var older time.Time
	waitFor(t, "a snapshot with app at 50", func() (bool, string) {
		for _, s := range metaSnapshots(t, dir) {
			if groupOffset(s.Snapshot, "app", topic, 0) == 50 {
				older = s.Time.Add(time.Duration(s.TookMillis+1) * time.Millisecond)
				return true, ""
			}
		}
		return false, "none yet"
	}, p)
	time.Sleep(50 * time.Millisecond)
	metaCommit(t, src, "app", topic, map[int32]int64{0: 70})
	waitFor(t, "a snapshot with app at 70", func() (bool, string) {
		for _, s := range metaSnapshots(t, dir) {
			if groupOffset(s.Snapshot, "app", topic, 0) == 70 {
				return true, ""
			}
		}
		return false, "none yet"
	}, p)
	p.stop()

	snaps := metaSnapshots(t, dir)
	reasons := map[string]int{}
	for _, s := range snaps {
		reasons[s.Reason]++
		st := s.Topic(topic)
		if st == nil || st.Partitions != partitions || st.ReplicationFactor != 1 || !st.ConfigsRead ||
			st.Configs["retention.ms"] != configs["retention.ms"] || st.Configs["max.message.bytes"] != configs["max.message.bytes"] {
			t.Errorf("snapshot %s: topic %+v", s.Name, st)
		}
		if groupOffset(s.Snapshot, "ignored", topic, 0) >= 0 || groupOffset(s.Snapshot, "other", topic, 0) != 60 || len(s.Errors) > 0 {
			t.Errorf("snapshot %s: groups %+v, errors %v", s.Name, s.Groups, s.Errors)
		}
	}
	if reasons["start"] != 1 || reasons["shutdown"] != 1 || reasons["interval"] < 1 {
		t.Errorf("snapshot reasons %v", reasons)
	}
	if hidden := inProgressFiles(filepath.Join(dir, layout.MetadataDir)); len(hidden) > 0 {
		t.Errorf("hidden files left in @metadata: %v", hidden)
	}
	if out, err := kbRun(t, "verify", dir); err != nil || strings.Contains(out, "stray") || !strings.Contains(out, fmt.Sprintf("metadata snapshots (@metadata/): %d", len(snaps))) {
		t.Errorf("verify of a tree with snapshots: %v\n%s", err, out)
	}
	if out, err := kbRun(t, "ls", dir); err != nil || strings.Contains(out, "stray") || !strings.Contains(out, "latest: topics orders, groups app, other") {
		t.Errorf("ls of a tree with snapshots: %v\n%s", err, out)
	}

	tgt := startBroker(t, 1)
	srcRecs := restoreRead(t, src, topic, partitions)

	// A dry run plans, prints and commits nothing.
	r := restoreRun(t, nil, "--brokers", tgt.addr, "--create-topics", "--consumer-groups", "app", "--dry-run", dir)
	if r.err != nil {
		t.Fatalf("dry run: %v", r.err)
	}
	for _, want := range []string{
		"would commit group app orders/0: source offset 70 -> target offset 60 (exact)",
		"would commit group app orders/1: source offset 5 -> target offset 0 (below first)",
		"would commit group app orders/2: source offset 100 -> target offset 90 (partition end)",
		"would create topic orders with 3 partitions and configs max.message.bytes=2097152, retention.ms=315360000000",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("dry run does not say %q", want)
		}
	}
	if got := metaCommitted(t, tgt, "app", topic); len(got) != 0 {
		t.Errorf("dry run committed %v", got)
	}
	if _, err := restoreEnds(tgt, topic, 1); err == nil {
		t.Errorf("dry run created the topic")
	}

	// A live member of the group on the target: refused, nothing created.
	restoreCreateTopic(t, tgt, "elsewhere", 1)
	member, err := kgo.NewClient(kgo.SeedBrokers(tgt.addr), kgo.ConsumerGroup("app"), kgo.ConsumeTopics("elsewhere"))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if fs := member.PollFetches(context.Background()); fs.IsClientClosed() {
				return
			}
		}
	}()
	waitMembers(t, tgt, "app", true)
	r = restoreRun(t, nil, "--brokers", tgt.addr, "--create-topics", "--consumer-groups", "app", dir)
	if r.err == nil || !strings.Contains(r.stderr, "consumer group app has 1 active members on the target cluster") {
		t.Errorf("restore with a live member: %v", r.err)
	}
	if _, err := restoreEnds(tgt, topic, 1); err == nil {
		t.Errorf("the refused restore created the topic")
	}
	member.Close()
	waitMembers(t, tgt, "app", false)

	// The restore.
	mapFile := filepath.Join(t.TempDir(), "offsets.json")
	r = restoreRun(t, nil, "--brokers", tgt.addr, "--create-topics", "--consumer-groups", "app", "--topic-config", "segment.ms=3600000", "--offsets-file", mapFile, dir)
	if r.err != nil {
		t.Fatalf("restore: %v", r.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	adm := metaAdmin(t, tgt)
	td, err := adm.ListTopics(ctx, topic)
	if err != nil || len(td[topic].Partitions) != partitions {
		t.Fatalf("target topic: %v %+v", err, td[topic])
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range rcs[0].Configs {
		if c.Source == kmsg.ConfigSourceDynamicTopicConfig {
			got[c.Key] = c.MaybeValue()
		}
	}
	want := map[string]string{"segment.ms": "3600000"}
	for k, v := range configs {
		want[k] = v
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("target topic configs %v, want %v", got, want)
	}
	tgtRecs := restoreRead(t, tgt, topic, partitions)
	committed := metaCommitted(t, tgt, "app", topic)
	if len(committed) != partitions {
		t.Fatalf("committed on the target: %v", committed)
	}
	sourceAt := map[int32]int64{0: 70, 1: from, 2: -1} // 1: below the first backed-up offset; 2: at the end
	for p := range int32(partitions) {
		so, to := sourceAt[p], committed[p]
		if so < 0 {
			if end := int64(len(tgtRecs[p])); to != end {
				t.Errorf("partition %d: committed %d, want the end %d", p, to, end)
			}
			continue
		}
		sr, ok1 := byOffset(srcRecs[p])[so]
		tr, ok2 := byOffset(tgtRecs[p])[to]
		if !ok1 || !ok2 || string(sr.Key) != string(tr.Key) || string(sr.Value) != string(tr.Value) {
			t.Errorf("partition %d: source record at %d %q, target record at %d %q", p, so, sr.Key, to, tr.Key)
		}
	}
	if got := metaCommitted(t, tgt, "other", topic); len(got) != 0 {
		t.Errorf("group other, not selected, committed %v", got)
	}
	if !strings.Contains(r.stdout, "Committed consumer group offsets") || !strings.Contains(r.stdout, "group app orders/0: source offset 70 -> target offset 60") {
		t.Errorf("summary does not list the commits")
	}

	// restore-offsets: group other, not restored above, from the saved
	// map; a dry run first commits nothing.
	out, err := kbRun(t, "restore-offsets", "--brokers", tgt.addr, "--offsets-file", mapFile, "--consumer-groups", "oth.*", "--dry-run", dir)
	if err != nil || !strings.Contains(out, "would commit group other orders/0: source offset 60 -> target offset 50 (exact)") {
		t.Errorf("restore-offsets --dry-run: %v", err)
	}
	if got := metaCommitted(t, tgt, "other", topic); len(got) != 0 {
		t.Errorf("restore-offsets --dry-run committed %v", got)
	}
	if out, err := kbRun(t, "restore-offsets", "--brokers", tgt.addr, "--offsets-file", mapFile, "--consumer-groups", "oth.*", dir); err != nil ||
		!strings.Contains(out, "group other orders/0: source offset 60 -> target offset 50") {
		t.Errorf("restore-offsets: %v", err)
	}
	if got := metaCommitted(t, tgt, "other", topic); len(got) != 1 || got[0] != 50 {
		t.Errorf("restore-offsets committed %v, want partition 0 at 50", got)
	}

	// --until before the group moved: the older snapshot (app at 50 on
	// partition 0), into a renamed topic.
	r = restoreRun(t, nil, "--brokers", tgt.addr, "--create-topics", "--consumer-groups", "app", "--until", older.Format(time.RFC3339Nano),
		"--rename", topic+"=orders-old", "--partition", "0", dir)
	if r.err != nil {
		t.Fatalf("restore --until: %v", r.err)
	}
	if got := metaCommitted(t, tgt, "app", "orders-old"); got[0] != 50-from {
		t.Errorf("--until --rename: committed %v on orders-old, want partition 0 at %d", got, 50-from)
	}
	oldRecs := restoreRead(t, tgt, "orders-old", partitions)
	if tr, ok := byOffset(oldRecs[0])[50-from]; !ok || string(tr.Key) != "k-0-50" {
		t.Errorf("orders-old/0 at %d: %q", 50-from, tr.Key)
	}

	// Restoring into the existing topic again: its configs are compared.
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kadmStr("1000000")}}, topic); err != nil {
		t.Fatal(err)
	}
	r = restoreRun(t, nil, "--brokers", tgt.addr, "--create-topics", "--dry-run", dir)
	if !strings.Contains(r.stdout+r.stderr, "target topic orders differs from the backup's (not changed): retention.ms: target 1000000 (set on the topic), backup 315360000000") {
		t.Errorf("config difference not reported")
	}
}

func kadmStr(s string) *string { return &s }

// waitMembers waits until group has members on b, or none.
func waitMembers(t testing.TB, b *broker, group string, some bool) {
	t.Helper()
	waitFor(t, fmt.Sprintf("group %s with members: %v", group, some), func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d, err := metaAdmin(t, b).DescribeGroups(ctx, group)
		if err != nil {
			return false, err.Error()
		}
		return (len(d[group].Members) > 0) == some, d[group].State
	})
}

// TestE2EMetadataFTP backs up with the metadata block to a real pure-ftpd
// server: the snapshots arrive under @metadata, whole and with no hidden
// file left, the spool keeps none, and a dry run of restore reads them from
// the server.
func TestE2EMetadataFTP(t *testing.T) {
	t.Parallel()
	srv := ftpd.StartPureFtpd(t, ftpd.Options{})
	logServerOnFailure(t, srv)
	const topic, partitions, per, from = "orders", 2, 50, 5
	src := metaSource(t, topic, partitions, per, map[string]string{"retention.ms": "315360000000"})
	metaCommit(t, src, "app", topic, map[int32]int64{0: 20, 1: 3})
	spool := filepath.Join(t.TempDir(), "spool")
	group := "meta-ftp"
	cfg := backupConfig(redpandaInput(src, group, topic), "/meta",
		fmt.Sprintf("    roll_duration: 1s\n    offset_from: {%s: %d}\n", topic, from)+metaMetadataBlock(src)+ftpFS(srv, ftpOpts{spool: spool}))
	p := runBackupEnv(t, "backup-meta-ftp", cfg, ftpEnv(srv))
	waitFor(t, "commits of the backup", func() (bool, string) {
		got := metaCommitted(t, src, group, topic)
		return got[0] == per && got[1] == per, fmt.Sprint(got)
	}, p)
	remote := srv.Path("meta")
	waitFor(t, "two snapshots on the server", func() (bool, string) {
		n := len(metaSnapshots(t, remote))
		return n >= 2, fmt.Sprintf("%d", n)
	}, p)
	p.stop()
	snaps := metaSnapshots(t, remote)
	var shutdown bool
	for _, s := range snaps {
		shutdown = shutdown || s.Reason == "shutdown"
		if groupOffset(s.Snapshot, "app", topic, 0) != 20 || s.Topic(topic) == nil || s.Topic(topic).Configs["retention.ms"] != "315360000000" {
			b, _ := json.Marshal(s.Snapshot)
			t.Errorf("snapshot %s: %s", s.Name, b)
		}
	}
	if !shutdown {
		t.Errorf("no shutdown snapshot on the server among %d", len(snaps))
	}
	if hidden := hiddenFiles(filepath.Join(remote, layout.MetadataDir)); len(hidden) > 0 {
		t.Errorf("hidden files on the server: %v", hidden)
	}
	if left, _ := os.ReadDir(filepath.Join(spool, layout.MetadataDir)); len(left) > 0 {
		t.Errorf("snapshots left in the spool: %d", len(left))
	}
	loc := fmt.Sprintf("ftp://%s@%s:%d/meta", srv.User, srv.Host, srv.Port)
	r := restoreRun(t, []string{"KAFKA_BACKUP_FTP_PASSWORD=" + srv.Password}, "--dry-run", "--consumer-groups", "app", loc)
	if r.err != nil || !strings.Contains(r.stderr, "would commit group app orders/0: source offset 20 -> target offset 15 (exact)") ||
		!strings.Contains(r.stderr, "would commit group app orders/1: source offset 3 -> target offset 0 (below first)") {
		t.Errorf("dry run from the server: %v", r.err)
	}
}
