package tests

// Fault tests of the read side (verify, ls, cat, restore --dry-run) through
// the built binary, the way an operator meets each fault: issue 12 rows 6, 7
// and 11, issue 17 row 5. The backups are segment files written where
// kafka-backup writes them (internal/backuptest), then damaged.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kafka-backup/kafka-backup/inspect"
	"github.com/kafka-backup/kafka-backup/internal/backuptest"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tests/ftptest"
)

// faultRun runs `kafka-backup args…` in dir (the test's working folder when
// empty) and reports whether it ended within timeout; a run that does not is
// killed and reported with blocked set.
func faultRun(t testing.TB, dir string, timeout time.Duration, env []string, args ...string) (r inspectResult, blocked bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, kbBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r = inspectResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		blocked = true
		r.code = -1
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("kafka-backup %s: %v", strings.Join(args, " "), err)
	}
	t.Logf("kafka-backup %s: exit %d (blocked %v)\n---- stdout:\n%s---- stderr:\n%s", strings.Join(args, " "), r.code, blocked, r.stdout, r.stderr)
	return r, blocked
}

// numberedRecords returns n records from offset first, timestamps from ts.
func numberedRecords(first int64, n int, ts int64) []segment.Record {
	out := make([]segment.Record, n)
	for i := range out {
		off := first + int64(i)
		out[i] = segment.Record{Offset: off, Timestamp: ts + int64(i), Key: []byte(fmt.Sprint("k", off)), Value: []byte(fmt.Sprint("value ", off))}
	}
	return out
}

// faultTree writes topic/0 with three files of 100 records: 0, 100 and 200
// (offsets 0-299), and returns the root.
func faultTree(t testing.TB, root, topic string) string {
	t.Helper()
	for _, first := range []int64{0, 100, 200} {
		backuptest.WriteSegment(t, root, topic, 0, layout.NamePlain.FileName(first), numberedRecords(first, 100, 1_700_000_000_000+first), 10, segment.None)
	}
	return root
}

// withoutGapAt returns ps without a gap warning starting at offset off: the
// offsets a damaged file can no longer give, which verify reports as a gap
// too (since issue 12 row 6). A gap anywhere else fails the test.
func withoutGapAt(t testing.TB, ps []inspect.Problem, off int64) []inspect.Problem {
	t.Helper()
	var out []inspect.Problem
	for _, p := range ps {
		if p.Kind != inspect.KindGap {
			out = append(out, p)
		} else if p.Severity != inspect.SeverityWarning || p.Offset == nil || *p.Offset != off {
			t.Errorf("a gap other than the unreadable rest of the damaged file (from offset %d): %s", off, p)
		}
	}
	return out
}

func problemKinds(rep inspect.VerifyReport) map[string][]inspect.Problem {
	out := map[string][]inspect.Problem{}
	for _, p := range rep.Problems() {
		out[p.Kind] = append(out[p.Kind], p)
	}
	return out
}

// TestFaultVerifyGap is Issue 12 row 6: a file missing in the middle of a
// partition leaves offsets no file holds. verify warns (gap, with what can
// explain it), so --strict fails; without the file nothing else shows it.
func TestFaultVerifyGap(t *testing.T) {
	t.Parallel()
	root := faultTree(t, t.TempDir(), "g")
	if err := os.Remove(filepath.Join(layout.PartitionDir(root, "g", 0), layout.NamePlain.FileName(100))); err != nil {
		t.Fatal(err)
	}
	r, _ := faultRun(t, "", waitTimeout, nil, "verify", "--strict", root)
	if r.code != 1 {
		t.Errorf("verify --strict of a partition missing its middle file: exit %d, want 1", r.code)
	}
	for _, s := range []string{"warning gap: g/0: offset 100:", "100-199", "lost files", "compact", "transaction", "offset_from"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("verify does not say %q", s)
		}
	}
	r, rep := verifyJSON(t, nil, root)
	gaps := problemKinds(rep)[inspect.KindGap]
	if r.code != 0 || len(gaps) != 1 || gaps[0].Severity != inspect.SeverityWarning || gaps[0].Offset == nil || *gaps[0].Offset != 100 {
		t.Errorf("verify --json: exit %d (want 0: a gap is a warning), gap problems %+v; want one warning at offset 100", r.code, gaps)
	}
}

// TestFaultVerifyMarkerMissingFile is Issue 12 row 6: a file the FTP
// destination's marker lists was deleted on the server. A backup run trusts
// the marker and never writes those offsets again: verify must say so (error
// missing), though the file is no longer there to be read.
func TestFaultVerifyMarkerMissingFile(t *testing.T) {
	t.Parallel()
	srv := ftptest.Start(t)
	const remote = "/backups/marker"
	root := faultTree(t, srv.LocalPath(remote), "m")
	dir := layout.PartitionDir(root, "m", 0)
	marker := fmt.Sprintf("%s 0-99\n%s 100-199\n%s 200-299\n", layout.NamePlain.FileName(0), layout.NamePlain.FileName(100), layout.NamePlain.FileName(200))
	if err := os.WriteFile(filepath.Join(dir, ".kafka-backup.ranges"), []byte(marker), 0o644); err != nil {
		t.Fatal(err)
	}
	loc := fmt.Sprintf("ftp://%s@%s%s", srv.User, srv.Addr, remote)
	env := []string{"KAFKA_BACKUP_FTP_PASSWORD=" + srv.Password}
	if r, rep := verifyJSON(t, env, loc); r.code != 0 || !rep.OK {
		t.Fatalf("verify of the intact backup: exit %d", r.code)
	}
	gone := layout.NamePlain.FileName(200)
	if err := os.Remove(filepath.Join(dir, gone)); err != nil {
		t.Fatal(err)
	}
	r, rep := verifyJSON(t, env, loc)
	missing := problemKinds(rep)[inspect.KindMissing]
	if r.code != 1 || len(missing) != 1 || missing[0].Severity != inspect.SeverityError || missing[0].File != gone {
		t.Errorf("verify with %s deleted on the server: exit %d, missing problems %+v; want exit 1 and one error naming it", gone, r.code, missing)
	}
	r, _ = faultRun(t, "", waitTimeout, env, "verify", loc)
	if want := "ERROR missing: "; !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "200-299") {
		t.Errorf("verify does not say %q with the offsets 200-299", want)
	}
}

// TestFaultVerifyEmptyLocation is Issue 12 row 6: verify of a location that
// holds no partition (an empty folder, a topic folder without partitions, a
// mistyped path that vsftpd lists as empty) fails unless --allow-empty.
func TestFaultVerifyEmptyLocation(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	r, _ := faultRun(t, "", waitTimeout, nil, "verify", empty)
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "--allow-empty") {
		t.Errorf("verify of an empty folder: exit %d, want 1 with a hint of --allow-empty", r.code)
	}
	if r, _ := faultRun(t, "", waitTimeout, nil, "verify", "--allow-empty", empty); r.code != 0 {
		t.Errorf("verify --allow-empty of an empty folder: exit %d, want 0", r.code)
	}
	topicOnly := t.TempDir()
	if err := os.Mkdir(filepath.Join(topicOnly, "orders"), 0o755); err != nil {
		t.Fatal(err)
	}
	if r, _ := faultRun(t, "", waitTimeout, nil, "verify", topicOnly); r.code != 1 {
		t.Errorf("verify of a topic folder without partitions: exit %d, want 1", r.code)
	}
	full := faultTree(t, t.TempDir(), "e")
	if r, _ := faultRun(t, "", waitTimeout, nil, "verify", "--partition", "7", full); r.code != 1 {
		t.Errorf("verify --partition 7 of a backup without partition 7: exit %d, want 1", r.code)
	}

	t.Run("vsftpd", func(t *testing.T) {
		// vsftpd lists a missing folder as an empty one.
		srv := realFTPServers()[0].start(t)
		faultTree(t, srv.Path("/backups/real"), "v")
		env := []string{"KAFKA_BACKUP_FTP_PASSWORD=" + srv.Password}
		u := url.URL{Scheme: "ftp", User: url.User(srv.User), Host: srv.Addr, Path: "/backups/real"}
		if r, _ := faultRun(t, "", waitTimeout, env, "verify", u.String()); r.code != 0 {
			t.Fatalf("verify of the backup on vsftpd: exit %d", r.code)
		}
		u.Path = "/backups/typo"
		r, _ := faultRun(t, "", waitTimeout, env, "verify", u.String())
		if r.code == 0 || strings.Contains(r.stdout, ": OK.") {
			t.Errorf("verify of a missing folder on vsftpd: exit %d, want an error", r.code)
		}
	})
}

// TestFaultNonRegularFiles is Issue 12 row 7: a FIFO, a socket or a device
// where a data file should be, and a symbolic link out of the tree. verify,
// ls, cat and restore --dry-run end (they used to block on the FIFO forever),
// report them as strays and never open them; the link's target is not read.
func TestFaultNonRegularFiles(t *testing.T) {
	t.Parallel()
	root := faultTree(t, t.TempDir(), "s")
	dir := layout.PartitionDir(root, "s", 0)
	fifo := filepath.Join(dir, layout.NamePlain.FileName(300))
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// A socket: its path must fit in 108 bytes.
	sockDir, err := os.MkdirTemp("", "kb-sock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	ln, err := net.Listen("unix", filepath.Join(sockDir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if err := os.Symlink(filepath.Join(sockDir, "s"), filepath.Join(dir, layout.NamePlain.FileName(400))); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mknod(filepath.Join(dir, layout.NamePlain.FileName(500)), syscall.S_IFCHR|0o644, 1<<8|3); err != nil { // /dev/null's numbers
		t.Logf("no device file (%v): the FIFO and the socket remain", err)
	}
	// A link out of the tree, to a valid file holding 600-699.
	outside := backuptest.WriteSegment(t, t.TempDir(), "x", 0, "600", numberedRecords(600, 100, 1_700_000_000_600), 10, segment.None)
	if err := os.Symlink(outside, filepath.Join(dir, layout.NamePlain.FileName(600))); err != nil {
		t.Fatal(err)
	}
	const timeout = 30 * time.Second

	r, blocked := faultRun(t, "", timeout, nil, "verify", "--json", root)
	if blocked {
		t.Fatalf("verify blocked on a non-regular file")
	}
	var rep inspect.VerifyReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	strays := map[string]bool{}
	for _, p := range problemKinds(rep)[inspect.KindStray] {
		strays[p.File] = true
	}
	for _, off := range []int64{300, 400, 600} {
		if n := layout.NamePlain.FileName(off); !strays[n] {
			t.Errorf("verify: %s is not reported as a stray (strays %v)", n, strays)
		}
	}
	if r.code != 0 || rep.Records != 300 || rep.Files != 3 {
		t.Errorf("verify: exit %d, %d files, %d records; want 0, 3 files, 300 records (nothing read through the strays)", r.code, rep.Files, rep.Records)
	}
	if r, blocked := faultRun(t, "", timeout, nil, "verify", "--strict", root); blocked || r.code != 1 || !strings.Contains(r.stdout, "not a regular file") {
		t.Errorf("verify --strict: exit %d (blocked %v), want 1 saying \"not a regular file\"", r.code, blocked)
	}

	r, blocked = faultRun(t, "", timeout, nil, "ls", "--json", root)
	var lrep inspect.ListReport
	if blocked || json.Unmarshal([]byte(r.stdout), &lrep) != nil || len(lrep.Partitions) != 1 || len(lrep.Partitions[0].Files) != 3 || len(lrep.Partitions[0].Stray) < 3 {
		t.Errorf("ls: exit %d (blocked %v); want the 3 regular files listed and the others as strays", r.code, blocked)
	}

	r, blocked = faultRun(t, "", timeout, nil, "cat", fifo)
	if blocked || r.code != 2 || !strings.Contains(r.stderr, "not a regular file") {
		t.Errorf("cat of a FIFO: exit %d (blocked %v), want 2 saying \"not a regular file\"", r.code, blocked)
	}

	r, blocked = faultRun(t, "", timeout, nil, "restore", "--dry-run", root)
	if blocked || r.code != 0 || !strings.Contains(r.stdout, "300") {
		t.Errorf("restore --dry-run: exit %d (blocked %v), want 0 with 300 records", r.code, blocked)
	}
	if strings.Contains(r.stdout, "600-699") || strings.Contains(r.stdout, "400 records") {
		t.Errorf("restore --dry-run read the file the link out of the tree points to")
	}
}

// TestFaultHelpLocation is Issue 12 row 11: a backup folder named h or help
// is a location like any other, not a request for help.
func TestFaultHelpLocation(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	for _, name := range []string{"h", "help"} {
		faultTree(t, filepath.Join(parent, name), "t")
		for _, cmd := range [][]string{{"verify", name}, {"ls", name}, {"restore", "--dry-run", name}} {
			r, _ := faultRun(t, parent, waitTimeout, nil, cmd...)
			if r.code != 0 || strings.Contains(r.stdout, "USAGE:") || !strings.Contains(r.stdout, "300") {
				t.Errorf("kafka-backup %s in a folder holding %s/: exit %d; want it read as the location (300 records), not help", strings.Join(cmd, " "), name, r.code)
			}
		}
	}
}

// TestFaultTopicLevelStrays is Issue 12 row 11: names at the root of a backup
// that are not topic folders, and names in a topic folder that are not
// partition folders, are reported as strays (warnings), not ignored.
func TestFaultTopicLevelStrays(t *testing.T) {
	t.Parallel()
	root := faultTree(t, t.TempDir(), "a")
	for _, p := range []string{"notes.txt", filepath.Join("a", "README")} {
		if err := os.WriteFile(filepath.Join(root, p), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"тема", filepath.Join("a", "01")} {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r, rep := verifyJSON(t, nil, root)
	var paths []string
	for _, p := range problemKinds(rep)[inspect.KindStray] {
		paths = append(paths, p.Path)
	}
	for _, want := range []string{"notes.txt", "тема", "a/README", "a/01"} {
		found := false
		for _, p := range paths {
			found = found || strings.HasSuffix(p, "/"+want)
		}
		if !found {
			t.Errorf("verify: %s is not reported as a stray (strays %v)", want, paths)
		}
	}
	if r.code != 0 || rep.Warnings != 4 {
		t.Errorf("verify: exit %d, %d warnings; want 0 and 4", r.code, rep.Warnings)
	}
	if r, _ := faultRun(t, "", waitTimeout, nil, "verify", "--strict", root); r.code != 1 || !strings.Contains(r.stdout, "тема") {
		t.Errorf("verify --strict: exit %d, want 1 naming тема", r.code)
	}
	if r, _ := faultRun(t, "", waitTimeout, nil, "ls", root); !strings.Contains(r.stdout, "notes.txt") || !strings.Contains(r.stdout, "тема") {
		t.Errorf("ls does not list the strays at the root")
	}
}

// TestFaultUnicodeTopicName is Issue 12 row 11: a topic name with a
// character Kafka refuses is named as typed, not as the bytes of its UTF-8
// (mojibake such as 'Ñ').
func TestFaultUnicodeTopicName(t *testing.T) {
	t.Parallel()
	root := faultTree(t, t.TempDir(), "a")
	r, _ := faultRun(t, "", waitTimeout, nil, "restore", "--dry-run", "--rename", "a=тема", root)
	if r.code == 0 || !strings.Contains(r.stderr, "'т'") || strings.Contains(r.stderr, "Ñ") {
		t.Errorf("restore --rename a=тема: exit %d; want an error naming the character 'т'", r.code)
	}
}

// TestFaultLsLeastTimestamp is Issue 17 row 5: a file whose records are not
// in timestamp order (CreateTime set by producers) starts at its least
// timestamp in ls, as in verify --json, not at its first batch's first one.
func TestFaultLsLeastTimestamp(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	const ts = 1_700_000_000_000
	recs := numberedRecords(0, 20, ts)
	recs[0].Timestamp = ts + 5000 // the first record is the latest
	recs[7].Timestamp = ts - 3000 // the least, inside the first batch
	backuptest.WriteSegment(t, root, "ts", 0, layout.NamePlain.FileName(0), recs, 10, segment.None)
	r, _ := faultRun(t, "", waitTimeout, nil, "ls", "--json", root)
	var rep inspect.ListReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	p := rep.Partitions[0]
	if f := p.Files[0]; f.MinTimestamp == nil || *f.MinTimestamp != ts-3000 || f.MaxTimestamp == nil || *f.MaxTimestamp != ts+5000 {
		t.Errorf("ls --json: file timestamps %v to %v; want %d to %d", f.MinTimestamp, f.MaxTimestamp, ts-3000, ts+5000)
	}
	if p.MinTimestamp == nil || *p.MinTimestamp != ts-3000 {
		t.Errorf("ls --json: partition's least timestamp %v, want %d", p.MinTimestamp, ts-3000)
	}
	r, _ = faultRun(t, "", waitTimeout, nil, "ls", root)
	if want := inspect.FormatTime(ts - 3000); !strings.Contains(r.stdout, want) {
		t.Errorf("ls does not show the least timestamp %s", want)
	}
	_, vrep := verifyJSON(t, nil, root)
	if vf := vrep.Partitions[0].Files[0]; vf.MinTimestamp == nil || *vf.MinTimestamp != ts-3000 {
		t.Errorf("verify --json: least timestamp %v", vf.MinTimestamp)
	}
}

// TestFaultMetadataMaxAge is Issue 12 row 11: metadata_max_age below 5s
// passes lint (the stock inputs' specs cannot be given a rule) but the Kafka
// client refuses it, and the input used to log the refusal every second
// forever. run now refuses the config at start, naming each such field.
func TestFaultMetadataMaxAge(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	out := filepath.Join(t.TempDir(), "backup")
	if err := os.WriteFile(cfg, []byte(`input:
  broker:
    inputs:
      - redpanda:
          seed_brokers: [127.0.0.1:1]
          topics: [t]
          consumer_group: g
          metadata_max_age: 2s
      - kafka_franz:
          seed_brokers: [127.0.0.1:1]
          topics: [u]
          consumer_group: g
          metadata_max_age: 1m
output:
  kafka_backup:
    path: `+out+`
http:
  enabled: false
`), 0o644); err != nil {
		t.Fatal(err)
	}
	r, blocked := faultRun(t, "", 30*time.Second, nil, "run", cfg)
	if blocked || r.code == 0 || !strings.Contains(r.stderr+r.stdout, "input.broker.inputs.0.redpanda.metadata_max_age: 2s is below 5s") ||
		strings.Contains(r.stderr+r.stdout, "kafka_franz.metadata_max_age") {
		t.Errorf("run with metadata_max_age: 2s: exit %d (blocked %v); want it refused at start naming input.broker.inputs.0.redpanda.metadata_max_age only", r.code, blocked)
	}
}
