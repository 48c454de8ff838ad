package tests

// Fault tests of issue 17, rows 1, 2 and 5 (items 2 and 3): a partition whose
// files interleave (file 0 holds offsets 0-99 and 200-299, file 100 holds
// 100-199, what kafka_franz with max_in_flight > 1 and a replay through the
// kafka_backup input produce) restored with a time window and replayed
// through a pipeline, and the password of the input's ftp:// path in
// `kafka-backup echo`.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kafka-backup/kafka-backup/internal/backuptest"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tests/ftptest"
)

// interleavedTS is the timestamp of the record at offset 0 of
// interleavedBackup; the record at offset o has interleavedTS+o.
const interleavedTS = 1_700_000_000_000

// interleavedBackup writes partition 0 of topic below root as two files that
// interleave: "0" holds offsets 0-99 then 200-299, "100" holds 100-199, in
// batches of 10 records, timestamps growing with the offsets. It returns
// the 300 records in offset order.
func interleavedBackup(t testing.TB, root, topic string) []segment.Record {
	t.Helper()
	recs := make([]segment.Record, 300)
	for i := range recs {
		off := int64(i)
		recs[i] = segment.Record{
			Offset:    off,
			Timestamp: interleavedTS + off,
			Key:       []byte(fmt.Sprintf("k-%d", off)),
			Value:     []byte(fmt.Sprintf("v-%d", off)),
			Headers:   []segment.Header{{Key: "h", Value: []byte(strconv.Itoa(i))}},
		}
	}
	first := append(append([]segment.Record(nil), recs[:100]...), recs[200:]...)
	backuptest.WriteSegment(t, root, topic, 0, "0", first, 10, segment.None)
	backuptest.WriteSegment(t, root, topic, 0, "100", recs[100:200], 10, segment.Gzip)
	return recs
}

// TestFaultRestoreWindowInterleaved is issue 17 row 1: `restore --until T`
// and `--since T` on a partition whose files interleave apply the time
// window in offset order across the files, as --to-offset does: --until at
// offset 150's timestamp restores 0-150 in order (it used to stop at offset
// 200, having restored 0-99, exit 0), --since restores 150-299 in order (it
// used to restore 200-299 then 100-199).
func TestFaultRestoreWindowInterleaved(t *testing.T) {
	t.Parallel()
	const topic = "ilv"
	root := filepath.Join(t.TempDir(), "backup")
	recs := interleavedBackup(t, root, topic)
	b := startBroker(t, 1, "unused")
	at := strconv.FormatInt(interleavedTS+150, 10)
	// The same files on an FTP server: the reader opens file 0 again at
	// its batch at 200 with REST.
	srv := ftptest.Start(t)
	if err := os.CopyFS(srv.LocalPath("/backups/kafka"), os.DirFS(root)); err != nil {
		t.Fatal(err)
	}
	env := []string{"KAFKA_BACKUP_FTP_PASSWORD=" + srv.Password}
	for _, loc := range []struct{ name, path string }{
		{"local", root},
		{"ftp", fmt.Sprintf("ftp://%s@%s/backups/kafka", srv.User, srv.Addr)},
	} {
		until, since := "ilv-until-"+loc.name, "ilv-since-"+loc.name
		r := restoreRun(t, env, "--brokers", b.addr, "--rename", topic+"="+until, "--create-topics", "--until", at, loc.path)
		if r.err != nil {
			t.Fatalf("restore --until from %s: %v", loc.name, r.err)
		}
		restoreCompare(t, until, restoreRead(t, b, until, 1), map[int32][]segment.Record{0: recs[:151]})
		if s := "stopped at --until: the record at offset 151 has timestamp"; !strings.Contains(r.stdout, s) {
			t.Errorf("%s: the summary does not say %q", loc.name, s)
		}

		r = restoreRun(t, env, "--brokers", b.addr, "--rename", topic+"="+since, "--create-topics", "--since", at, loc.path)
		if r.err != nil {
			t.Fatalf("restore --since from %s: %v", loc.name, r.err)
		}
		restoreCompare(t, since, restoreRead(t, b, since, 1), map[int32][]segment.Record{0: recs[150:]})
		if strings.Contains(r.stdout, "out of offset order") {
			t.Errorf("%s: the summary reports records out of order", loc.name)
		}
	}
}

// TestFaultReplayOrderInterleaved is issue 17 row 2: the kafka_backup input
// yields a partition in offset order whatever its file layout, and with
// what the README's "Order" says keeps it (pipeline.threads: 1 with
// processors, the output's max_in_flight: 1) the order reaches the output:
// a copy made through a processor holds the partition in one run of
// increasing offsets. The input used to emit 0-99, 200-299, 100-199, and
// the kafka_backup output then started a new file at 100: the copy
// interleaved again.
func TestFaultReplayOrderInterleaved(t *testing.T) {
	t.Parallel()
	const topic = "ilv"
	root := filepath.Join(t.TempDir(), "backup")
	recs := interleavedBackup(t, root, topic)
	dst := filepath.Join(t.TempDir(), "copy")
	p := runBackup(t, "replay", fmt.Sprintf(`http:
  enabled: false
logger:
  level: INFO
  format: logfmt
input:
  kafka_backup:
    path: %q
pipeline:
  threads: 1
  processors:
    - mutation: 'meta replayed = "yes"'
output:
  kafka_backup:
    path: %q
    max_in_flight: 1
`, root, dst))
	select {
	case <-p.done:
	case <-time.After(waitTimeout):
		t.Fatal("the replay did not end")
	}
	if p.err != nil {
		t.Fatalf("the replay exited with %v", p.err)
	}
	files := readPartition(t, layout.PartitionDir(dst, topic, 0), 1<<30)
	var got []segment.Record
	var names []string
	for _, f := range files {
		got = append(got, f.recs...)
		names = append(names, filepath.Base(f.path))
	}
	if len(files) != 1 {
		t.Errorf("the copy has files %v: the partition reached the output out of order", names)
	}
	if len(got) != len(recs) {
		t.Fatalf("the copy holds %d records, want %d", len(got), len(recs))
	}
	for i := range recs {
		if d := recordDiff(got[i], recs[i]); d != "" {
			t.Fatalf("record %d of the copy in file order: %s", i, d)
		}
	}
	if strings.Contains(p.logs(), "out_of_order") || strings.Contains(p.logs(), "out of order") {
		t.Errorf("the output logged records out of order")
	}
}

// TestFaultEchoInputPassword is issue 17 row 5, item 2: `kafka-backup echo`
// does not print a password given inside the kafka_backup input's ftp://
// path; a path without a password is shown as written.
func TestFaultEchoInputPassword(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-Pw"
	echo := func(path string) string {
		cfg := filepath.Join(t.TempDir(), "replay.yaml")
		conf := fmt.Sprintf("input:\n  kafka_backup:\n    path: %q\noutput:\n  drop: {}\n", path)
		if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(kbBin, "echo", cfg).CombinedOutput()
		if err != nil {
			t.Fatalf("kafka-backup echo: %v\n%s", err, out)
		}
		return string(out)
	}
	for _, path := range []string{
		"ftp://backup:" + secret + "@127.0.0.1:2121/kafka",
		"ftps://backup:" + secret + "@ftp.example.com/kafka",
	} {
		if out := echo(path); strings.Contains(out, secret) {
			t.Errorf("echo of %s prints the password:\n%s", path, out)
		}
	}
	for _, path := range []string{"/backups/kafka", "ftp://backup@127.0.0.1:2121/kafka"} {
		if out := echo(path); !strings.Contains(out, path) {
			t.Errorf("echo does not show the path %s as written:\n%s", path, out)
		}
	}
}

// replayConfig is a replay of the backup at src into a kafka_backup copy at
// dst, order kept (pipeline.threads: 1, max_in_flight: 1), each batch held
// back by a sleep so that it can be stopped halfway.
func replayConfig(src, dst string, sleep string) string {
	return fmt.Sprintf(`http:
  enabled: false
logger:
  level: INFO
  format: logfmt
input:
  kafka_backup:
    path: %q
pipeline:
  threads: 1
  processors:
    - sleep:
        duration: %s
output:
  kafka_backup:
    path: %q
    max_in_flight: 1
    size: 2KiB
`, src, sleep, dst)
}

// TestFaultReplayRestart is issue 17 row 5, item 3, as the README's
// "Stopping halfway" documents it (documented, not changed: this test passed
// before too): the kafka_backup input keeps no position, so a replay
// stopped halfway reads the backup again from its start; into a
// kafka_backup copy nothing is lost or held twice, because the output skips
// the offsets its files hold.
func TestFaultReplayRestart(t *testing.T) {
	t.Parallel()
	const topic = "ilv"
	root := filepath.Join(t.TempDir(), "backup")
	recs := interleavedBackup(t, root, topic)
	dst := filepath.Join(t.TempDir(), "copy")
	p := runBackup(t, "replay-1", replayConfig(root, dst, "20ms"))
	waitRecords(t, dst, 50, p)
	p.stop()
	first, err := countRecords(dst)
	if err != nil {
		t.Fatal(err)
	}
	if first >= len(recs) {
		t.Fatalf("the first run copied all %d records before it was stopped", first)
	}
	p = runBackup(t, "replay-2", replayConfig(root, dst, "0s"))
	select {
	case <-p.done:
	case <-time.After(waitTimeout):
		t.Fatal("the second replay did not end")
	}
	if p.err != nil {
		t.Fatalf("the second replay exited with %v", p.err)
	}
	if !strings.Contains(p.logs(), "300 records from 2 files") {
		t.Errorf("the second run did not read the backup from its start")
	}
	// readPartition fails the test on an offset held by two files.
	var got []segment.Record
	for _, f := range readPartition(t, layout.PartitionDir(dst, topic, 0), 1<<30) {
		got = append(got, f.recs...)
	}
	if len(got) != len(recs) {
		t.Fatalf("the copy holds %d records after the restart (%d after the first run), want %d", len(got), first, len(recs))
	}
	for i := range recs {
		if d := recordDiff(got[i], recs[i]); d != "" {
			t.Fatalf("record %d of the copy in file order: %s", i, d)
		}
	}
	t.Logf("%d records copied before the stop, %d in all", first, len(got))
}
