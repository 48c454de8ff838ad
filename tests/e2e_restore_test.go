package tests

// End-to-end tests of `kafka-backup restore`: records produced by kcat, backed
// up by the built binary (redpanda input) to a local folder or to an FTP
// server (tests/ftptest), restored by the built binary into another topic, and
// read back with kgo: every record equal to the source's but for its offset,
// in the same order, per partition.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-backup/kafka-backup/internal/backuptest"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tests/ftptest"
)

// restoreResult is what one `kafka-backup restore` run printed.
type restoreResult struct {
	err            error // nil for exit status 0
	stdout, stderr string
	took           time.Duration
}

// restoreRun runs `kafka-backup restore args…` with env added to the
// environment and logs its output.
func restoreRun(t testing.TB, env []string, args ...string) restoreResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, kbBin, append([]string{"restore"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := restoreResult{err: err, stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	t.Logf("kafka-backup restore %s: %v in %v\n---- stdout:\n%s---- stderr:\n%s", strings.Join(args, " "), err, r.took.Round(time.Millisecond), r.stdout, r.stderr)
	return r
}

// restoreEnds returns the end offsets of partitions 0 to n-1 of topic, or an
// error (UNKNOWN_TOPIC_OR_PARTITION for a missing topic).
func restoreEnds(b *broker, topic string, n int32) ([]int64, error) {
	return backuptest.EndOffsets([]string{b.addr}, topic, n)
}

// restoreRead consumes every record of partitions 0 to n-1 of topic, up to
// their end offsets, with kgo.
func restoreRead(t testing.TB, b *broker, topic string, n int32) map[int32][]segment.Record {
	t.Helper()
	return backuptest.ReadTopic(t, []string{b.addr}, topic, n, waitTimeout)
}

// restoreCompare checks that got, read back from the restored topic, holds
// want's records in want's order, equal in everything but the offset:
// timestamp, key and value (null-aware), headers (order, duplicates, null
// values).
func restoreCompare(t testing.TB, what string, got, want map[int32][]segment.Record) {
	t.Helper()
	for p, w := range want {
		g := got[p]
		if len(g) != len(w) {
			t.Errorf("%s/%d: %d records, want %d", what, p, len(g), len(w))
		}
		bad := 0
		for i := range min(len(g), len(w)) {
			r := g[i]
			r.Offset = w[i].Offset // offsets are Kafka's to give
			if d := recordDiff(r, w[i]); d != "" {
				if bad++; bad <= 5 {
					t.Errorf("%s/%d: record %d (target offset %d): %s", what, p, i, g[i].Offset, d)
				}
			}
		}
		if bad > 5 {
			t.Errorf("%s/%d: %d records differ in all", what, p, bad)
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok && len(g) > 0 {
			t.Errorf("%s/%d: %d records in a partition that should have none", what, p, len(g))
		}
	}
}

// restoreFinalRecords counts the records in the final files below dir (files
// named by a first offset, in either naming), from their batch headers.
func restoreFinalRecords(dir string) (int, error) {
	n, _, err := headerRecords(dir, func(name string) bool {
		_, final := layout.ParseFileName(name)
		return final
	})
	return n, err
}

// restoreBackupLocal backs up topic to a new local folder with the redpanda
// input, small files, and a clean stop once every record is committed.
func restoreBackupLocal(t testing.TB, b *broker, topic string, partitions int32) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "backup")
	group := "restore-local-" + topic
	p := runBackup(t, "backup-local", backupConfig(redpandaInput(b, group, topic), dir, "    size: 32KiB\n    roll_duration: 1s\n"))
	waitCommitted(t, b, group, partitions, []string{topic}, p)
	p.stop()
	return dir
}

// restoreCreateTopic creates topic with n partitions on the broker.
func restoreCreateTopic(t testing.TB, b *broker, topic string, n int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, n, 1
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
	}
	if err != nil {
		t.Fatalf("creating %s: %v", topic, err)
	}
}

// TestE2ERestoreRoundTrip backs up 3 partitions of varied records (keys, null
// and empty keys, null and empty values, headers with duplicate names, empty
// and null values, compressed batches) to a local folder and to an FTP
// server, restores each with the built binary into a new topic
// (--rename src=dst --create-topics), and compares the restored topics with
// the source record by record.
func TestE2ERestoreRoundTrip(t *testing.T) {
	t.Parallel()
	const topic, partitions = "src", 3
	b, truth := variedTopic(t, topic, partitions, 400, 31)
	total := sumRecords(truth)
	if total < 1000 || total > 999_999 {
		t.Fatalf("%d records: the summary check below formats 1,000 to 999,999", total)
	}

	// The FTP backup runs while the local one does.
	srv := ftptest.Start(t)
	const remote = "/backups/kafka"
	ftpGroup := "restore-ftp"
	ftpCfg := backupConfig(redpandaInput(b, ftpGroup, topic), remote, fmt.Sprintf(`    size: 32KiB
    roll_duration: 1s
    fs:
      schema: ftp
      ftp:
        hostname: %q
        port: %d
        user: %q
        password: %q
        spool: %q
        connect_timeout: 5s
        timeout: 10s
`, srv.Host, srv.Port, srv.User, srv.Password, filepath.Join(t.TempDir(), "spool")))
	ftpProc := runBackup(t, "backup-ftp", ftpCfg)

	dir := restoreBackupLocal(t, b, topic, partitions)
	verifyBackup(t, dir, verifyOpts{maxSize: 32 << 10, want: map[string]map[int32][]segment.Record{topic: truth}})

	// Every record in final files on the server (rolled for being idle,
	// then uploaded), then a clean stop.
	onServer := srv.LocalPath(remote)
	waitFor(t, "every record in final files on the FTP server", func() (bool, string) {
		n, err := restoreFinalRecords(onServer)
		if err != nil {
			return false, err.Error()
		}
		return n >= total, fmt.Sprintf("%d of %d records", n, total)
	}, ftpProc)
	ftpProc.stop()
	if n, _ := restoreFinalRecords(onServer); n != total {
		t.Fatalf("%d records on the FTP server, want %d", n, total)
	}

	t.Run("local", func(t *testing.T) {
		r := restoreRun(t, nil, "--brokers", b.addr, "--rename", topic+"=dst", "--create-topics", dir)
		if r.err != nil {
			t.Fatalf("restore failed: %v", r.err)
		}
		restoreCompare(t, "dst", restoreRead(t, b, "dst", partitions), truth)
		for _, s := range []string{fmt.Sprintf("Total: %d,%03d records", total/1000, total%1000), "0 gaps", "0 duplicates skipped", "created dst."} {
			if !strings.Contains(r.stdout, s) {
				t.Errorf("the summary does not say %q", s)
			}
		}
		if !strings.Contains(r.stderr, "created topic dst with 3 partitions") {
			t.Error("stderr does not say the topic was created")
		}
		for p := range partitions {
			if want := fmt.Sprintf("src/%d -> dst/%d: ", p, p); !strings.Contains(r.stdout, want) {
				t.Errorf("the summary has no line for %s", want)
			}
		}
		if ends, _ := restoreEnds(b, topic, partitions); sumInts(ends) != int64(total) {
			t.Errorf("the source topic changed: end offsets %v", ends)
		}
	})
	t.Run("ftp", func(t *testing.T) {
		// The password from the environment, the user in the URL.
		loc := fmt.Sprintf("ftp://%s@%s%s", srv.User, srv.Addr, remote)
		r := restoreRun(t, []string{"KAFKA_BACKUP_FTP_PASSWORD=" + srv.Password},
			"--brokers", b.addr, "--rename", topic+"=dst-ftp", "--create-topics", "--progress", "log", loc)
		if r.err != nil {
			t.Fatalf("restore failed: %v", r.err)
		}
		restoreCompare(t, "dst-ftp", restoreRead(t, b, "dst-ftp", partitions), truth)
		if strings.Contains(r.stdout+r.stderr, srv.Password) {
			t.Error("the output shows the FTP password")
		}
		// The marker and nothing else was skipped; no leftovers.
		if strings.Contains(r.stdout, "warning") {
			t.Error("warnings in a restore of a clean FTP backup")
		}
	})
}

func sumInts(v []int64) int64 {
	var n int64
	for _, x := range v {
		n += x
	}
	return n
}

// TestE2ERestorePointInTime backs up three kcat runs a moment apart and
// restores up to the last timestamp of the second (--until, in
// milliseconds): each partition stops at its first record of the third run.
// --since then restores from the second run on.
func TestE2ERestorePointInTime(t *testing.T) {
	t.Parallel()
	needKcat(t)
	const topic, partitions = "pit", 2
	b := startBroker(t, partitions, topic)
	for run := range 3 {
		for p := range int32(partitions) {
			var lines []string
			for i := range 50 {
				lines = append(lines, fmt.Sprintf("k-%d-%d\tv-%d-%d", run, i, run, i))
			}
			b.produce(topic, p, kcatRun{Lines: lines, KeyDelim: true, Headers: []string{fmt.Sprintf("run=%d", run)}})
		}
		time.Sleep(30 * time.Millisecond) // later runs get later timestamps
	}
	truth := b.groundTruth(topic, partitions)
	// The split points, from the ground truth: until is the greatest
	// timestamp of runs 0 and 1, which must be below every timestamp of
	// run 2; since is the least of runs 1 and 2, above all of run 0.
	var until, since int64 = 0, 1 << 62
	for _, recs := range truth {
		for _, r := range recs[:100] {
			until = max(until, r.Timestamp)
		}
		for _, r := range recs[50:] {
			since = min(since, r.Timestamp)
		}
	}
	for p, recs := range truth {
		for _, r := range recs[100:] {
			if r.Timestamp <= until {
				t.Fatalf("%s/%d: run 2 has timestamp %d, not after %d: kcat runs too close", topic, p, r.Timestamp, until)
			}
		}
		for _, r := range recs[:50] {
			if r.Timestamp >= since {
				t.Fatalf("%s/%d: run 0 has timestamp %d, not before %d", topic, p, r.Timestamp, since)
			}
		}
	}
	dir := restoreBackupLocal(t, b, topic, partitions)

	r := restoreRun(t, nil, "--brokers", b.addr, "--rename", topic+"=pit-until", "--create-topics", "--until", strconv.FormatInt(until, 10), dir)
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := map[int32][]segment.Record{}
	for p, recs := range truth {
		want[p] = recs[:100]
	}
	restoreCompare(t, "pit-until", restoreRead(t, b, "pit-until", partitions), want)
	for p := range partitions {
		if s := fmt.Sprintf("stopped at --until: the record at offset 100 has timestamp"); !strings.Contains(r.stdout, s) {
			t.Errorf("partition %d: the summary does not say where it stopped (%q)", p, s)
		}
	}

	// --since as RFC3339 with milliseconds.
	sinceRFC := time.UnixMilli(since).UTC().Format("2006-01-02T15:04:05.000Z07:00")
	r = restoreRun(t, nil, "--brokers", b.addr, "--rename", topic+"=pit-since", "--create-topics", "--since", sinceRFC, dir)
	if r.err != nil {
		t.Fatal(r.err)
	}
	for p, recs := range truth {
		want[p] = recs[50:]
	}
	restoreCompare(t, "pit-since", restoreRead(t, b, "pit-since", partitions), want)
}

// TestE2ERestoreDedup copies a backup file under a later first-offset name,
// so that its offsets are in two files: each is restored once, and the
// summary counts the duplicates.
func TestE2ERestoreDedup(t *testing.T) {
	t.Parallel()
	needKcat(t)
	const topic, partitions = "dup", 2
	b := startBroker(t, partitions, topic)
	b.produceWorkload(topic, partitions, workload{perPartition: 300, seed: 32})
	truth := b.groundTruth(topic, partitions)
	dir := restoreBackupLocal(t, b, topic, partitions)

	// Partition 0's second file, copied as if it started one offset later:
	// it overlaps itself and the next file's name order.
	pdir := layout.PartitionDir(dir, topic, 0)
	files := readPartition(t, pdir, 1<<30)
	if len(files) < 3 {
		t.Fatalf("%d files in %s: want at least 3 (size 32KiB)", len(files), pdir)
	}
	second := files[1]
	data, err := os.ReadFile(second.path)
	if err != nil {
		t.Fatal(err)
	}
	copyName := strconv.FormatInt(second.recs[0].Offset+1, 10)
	if err := os.WriteFile(filepath.Join(pdir, copyName), data, 0o644); err != nil {
		t.Fatal(err)
	}
	r := restoreRun(t, nil, "--brokers", b.addr, "--rename", topic+"=dedup", "--create-topics", dir)
	if r.err != nil {
		t.Fatal(r.err)
	}
	restoreCompare(t, "dedup", restoreRead(t, b, "dedup", partitions), truth)
	if s := fmt.Sprintf("%d duplicates skipped (overlapping files)", len(second.recs)); !strings.Contains(r.stdout, s) {
		t.Errorf("the summary does not say %q", s)
	}
	if s := fmt.Sprintf("warning: %s starts at offset %d", copyName, second.recs[0].Offset); !strings.Contains(r.stdout, s) {
		t.Errorf("the summary does not say %q", s)
	}
}

// TestE2ERestoreRefusal refuses to restore into a topic with fewer
// partitions than the backup uses, or into a missing topic, and produces
// nothing; a dry run reads everything and fails the same way.
func TestE2ERestoreRefusal(t *testing.T) {
	t.Parallel()
	needKcat(t)
	const topic, partitions = "wide", 3
	b := startBroker(t, partitions, topic)
	for p := range int32(partitions) {
		b.produce(topic, p, kcatRun{Lines: []string{"a", "b", "c"}})
	}
	dir := restoreBackupLocal(t, b, topic, partitions)
	restoreCreateTopic(t, b, "narrow", 2)

	r := restoreRun(t, nil, "--brokers", b.addr, "--rename", topic+"=narrow", dir)
	if r.err == nil {
		t.Fatal("restore into a topic with 2 partitions succeeded")
	}
	if s := "target topic narrow has 2 partitions, fewer than the 3 the backup of wide uses"; !strings.Contains(r.stderr, s) {
		t.Errorf("stderr does not say %q", s)
	}
	if ends, err := restoreEnds(b, "narrow", 2); err != nil || sumInts(ends) != 0 {
		t.Errorf("narrow: end offsets %v (%v): something was produced", ends, err)
	}

	r = restoreRun(t, nil, "--brokers", b.addr, "--rename", topic+"=missing", dir)
	if r.err == nil || !strings.Contains(r.stderr, "target topic missing does not exist (restoring backup topic wide): the backup has 3 partitions") {
		t.Errorf("restore into a missing topic: %v", r.err)
	}
	if _, err := restoreEnds(b, "missing", 1); err == nil {
		t.Error("the missing topic was created")
	}

	r = restoreRun(t, nil, "--dry-run", "--brokers", b.addr, "--rename", topic+"=narrow", dir)
	if r.err == nil || !strings.Contains(r.stdout, "Total: 9 records (9 B) would be restored") || !strings.Contains(r.stderr, "restore refused: target topic narrow has 2 partitions") {
		t.Errorf("dry run against a narrow topic: %v", r.err)
	}
}
