package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tests/ftpd"
)

// TestFaultPartitionFolderRemoved is Issue 12 row 5: a cleanup job deletes
// partition folders while the backup runs, with the partitions' acknowledged
// records still in their open in-progress files. The writer notices that the
// path no longer names its open file: the next batch fails with an error
// naming the file and the cause, the records already acknowledged are written
// again from the open file, and after a clean shutdown every record is in a
// final file: partition 0 gets more records after the deletion, partition 1
// none (its file is checked when it rolls at shutdown).
func TestFaultPartitionFolderRemoved(t *testing.T) {
	t.Parallel()
	needKcat(t)
	const topic = "removed"
	b := startBroker(t, 2, topic)
	dir := filepath.Join(t.TempDir(), "backup")
	b.produce(topic, 0, kcatRun{Lines: numbered("p0-before", 120)})
	b.produce(topic, 1, kcatRun{Lines: numbered("p1-before", 80)})
	// The files stay open: nothing rolls before the shutdown.
	p := runBackup(t, "removed", backupConfig(redpandaInput(b, "removed-group", topic), dir, "    roll_duration: 10m\n    max_age: 1h\n"))
	waitCommitted(t, b, "removed-group", 2, []string{topic}, p)
	if n, _ := countRecords(dir); n != 200 {
		t.Fatalf("%d records in files before the deletion, want 200", n)
	}
	for part := range 2 {
		if err := os.RemoveAll(filepath.Join(dir, topic, fmt.Sprint(part))); err != nil {
			t.Fatal(err)
		}
	}
	b.produce(topic, 0, kcatRun{Lines: numbered("p0-after", 60)})
	removed := regexp.MustCompile(`level=error.*` + regexp.QuoteMeta(filepath.Join(dir, topic, "0")) + `/\.0\.[^ ]*\.inprogress[^\n]*removed`)
	waitFor(t, "an error naming the removed file", func() (bool, string) {
		return removed.MatchString(p.logs()), "not logged yet"
	}, p)
	waitCommitted(t, b, "removed-group", 2, []string{topic}, p)
	p.stop()
	verifyBackup(t, dir, verifyOpts{want: map[string]map[int32][]segment.Record{topic: b.groundTruth(topic, 2)}})
}

// TestFaultSpoolFolderRemoved is Issue 12 row 5 for an FTP destination: the
// files are built in the local spool, and a cleanup job deletes a spool
// partition folder while its file is open with acknowledged records. As on
// local disk, the error names the file and the cause, and every record
// reaches the server.
func TestFaultSpoolFolderRemoved(t *testing.T) {
	t.Parallel()
	needKcat(t)
	srv := ftpd.StartPureFtpd(t, ftpd.Options{})
	logServerOnFailure(t, srv)
	const topic, remote = "spooled", "/backups"
	b := startBroker(t, 1, topic)
	b.produce(topic, 0, kcatRun{Lines: numbered("before", 100)})
	spool := filepath.Join(t.TempDir(), "spool")
	cfg := backupConfig(redpandaInput(b, "spooled-group", topic), remote, "    roll_duration: 10m\n    max_age: 1h\n"+ftpFS(srv, ftpOpts{spool: spool}))
	p := runBackupEnv(t, "spooled", cfg, ftpEnv(srv))
	waitCommitted(t, b, "spooled-group", 1, []string{topic}, p)
	if err := os.RemoveAll(filepath.Join(spool, topic, "0")); err != nil {
		t.Fatal(err)
	}
	b.produce(topic, 0, kcatRun{Lines: numbered("after", 50)})
	removed := regexp.MustCompile(`level=error.*` + regexp.QuoteMeta(filepath.Join(spool, topic, "0")) + `/\.0\.[^ ]*\.inprogress[^\n]*removed`)
	waitFor(t, "an error naming the removed spool file", func() (bool, string) {
		return removed.MatchString(p.logs()), "not logged yet"
	}, p)
	waitCommitted(t, b, "spooled-group", 1, []string{topic}, p)
	p.stop()
	verifyFTPBackup(t, srv.Path(remote), verifyOpts{want: map[string]map[int32][]segment.Record{topic: b.groundTruth(topic, 1)}})
}

// numbered returns n lines "<tag>-0", "<tag>-1", ….
func numbered(tag string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", tag, i)
	}
	return out
}

// TestFaultFTPWithoutHostname is Issue 12 row 10: an FTP destination with no
// hostname was accepted by lint and backed up to localhost. Lint now fails
// naming fs.ftp.hostname, and so does run, at start, before it consumes.
func TestFaultFTPWithoutHostname(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, fields := range map[string]string{
		"no ftp section": "    fs: {schema: ftp}\n",
		"no hostname":    "    fs:\n      schema: ftp\n      ftp: {user: backup, spool: " + dir + "/spool}\n",
		"empty hostname": "    fs:\n      schema: ftp\n      ftp: {hostname: \"\"}\n",
		"blank hostname": "    fs:\n      schema: ftp\n      ftp: {hostname: \"  \"}\n",
	} {
		t.Run(name, func(t *testing.T) {
			cfg := "http: {enabled: false}\n" + lintConfig(fields)
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			out, code := kb(t, "lint", path)
			if code == 0 || !strings.Contains(out, "fs.ftp.hostname") {
				t.Errorf("lint: exit %d, want non-zero and fs.ftp.hostname named:\n%s", code, out)
			}
			out, code = kbIn(t, dir, 20*time.Second, "run", path)
			if code == 0 || !strings.Contains(out, "fs.ftp.hostname") {
				t.Errorf("run: exit %d, want non-zero and fs.ftp.hostname named:\n%s", code, out)
			}
		})
	}
	// Local needs no hostname.
	path := filepath.Join(dir, "local.yaml")
	if err := os.WriteFile(path, []byte(lintConfig("    fs: {schema: local}\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := kb(t, "lint", path); code != 0 {
		t.Errorf("lint of a local destination: exit %d:\n%s", code, out)
	}
}

// kbIn runs the kafka-backup binary with args in the folder dir, for at most
// timeout, and returns its combined output and exit code (-1 when it was
// killed at the timeout).
func kbIn(t *testing.T, dir string, timeout time.Duration, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, kbBin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case ctx.Err() != nil:
		return string(out), -1
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	default:
		t.Fatalf("kafka-backup %s: %v\n%s", strings.Join(args, " "), err, out)
		return "", 0
	}
}
