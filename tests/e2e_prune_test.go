package tests

// End-to-end tests of `kafka-backup prune` (issue 16), through the built
// binary: a tree of files whose records are older or newer than the cutoff,
// on local disk and on an FTP server (tests/ftptest); a dry run deletes
// nothing; --yes deletes the oldest contiguous run of old files per
// partition, never an old file between two kept ones nor the newest;
// verify and ls then report where each partition starts; restore restores
// exactly the kept offsets. On FTP, a prune killed between its marker
// rewrite and its deletes leaves a marker that claims no deleted file.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-backup/kafka-backup/inspect"
	"github.com/kafka-backup/kafka-backup/internal/backuptest"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/prune"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tests/ftpd"
	"github.com/kafka-backup/kafka-backup/tests/ftptest"
	"github.com/kafka-backup/kafka-backup/tree"
)

// pruneLayout is the tree the prune tests start from, topic "old": per
// partition, files of 100 records, old (60 days ago) or new (now).
// Partition 0: 0 old, 100 old, 200 new, 300 old (between two kept files),
// 400 old (the newest, kept by --keep-files 1). Partition 1: 0 old, 100 old
// (the newest).
var pruneLayout = map[int32][]bool{0: {true, true, false, true, true}, 1: {true, true}}

// pruneKept is what --older-than 30days --yes keeps: partition → first
// kept offset.
var pruneKept = map[int32]int64{0: 200, 1: 100}

// writePruneTree writes pruneLayout below root and returns every record by
// partition, and the FTP marker lines of each partition.
func writePruneTree(t testing.TB, root string) (map[int32][]segment.Record, map[int32]string) {
	t.Helper()
	all := map[int32][]segment.Record{}
	markers := map[int32]string{}
	now := time.Now()
	for p, files := range pruneLayout {
		var marker strings.Builder
		for i, old := range files {
			first := int64(i * 100)
			ts := now.UnixMilli()
			if old {
				ts = now.Add(-60 * 24 * time.Hour).UnixMilli()
			}
			rs := numberedRecords(first, 100, ts)
			for j := range rs {
				rs[j].Value = []byte(fmt.Sprintf("p%d value %d", p, rs[j].Offset))
			}
			backuptest.WriteSegment(t, root, "old", p, fmt.Sprint(first), rs, 10, segment.None)
			all[p] = append(all[p], rs...)
			fmt.Fprintf(&marker, "%d %d-%d\n", first, first, first+99)
		}
		markers[p] = marker.String()
	}
	// Snapshots 50 and 40 days old (pruned), and one a day old (kept).
	for _, age := range []int{50, 40, 1} {
		backuptest.WriteSnapshot(t, root, now.Add(-time.Duration(age)*24*time.Hour).Truncate(time.Millisecond), "backup-0", 2, "old")
	}
	return all, markers
}

// snapshotCount returns how many snapshots the local tree root holds.
func snapshotCount(t testing.TB, root string) int {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(root, layout.MetadataDir))
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// finalNames lists the final files of a local partition folder.
func finalNames(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if _, ok := layout.ParseFileName(e.Name()); ok {
			out = append(out, e.Name())
		}
	}
	slices.SortFunc(out, func(a, b string) int {
		x, _ := layout.ParseFileName(a)
		y, _ := layout.ParseFileName(b)
		return int(x - y)
	})
	return out
}

// checkPruned checks the partition folders below root (local paths) after a
// complete prune: the kept files, and the note; and the snapshot kept.
func checkPruned(t testing.TB, root string) {
	t.Helper()
	if n := snapshotCount(t, root); n != 1 {
		t.Errorf("%d snapshots after the prune, want the newest only", n)
	}
	want := map[int32][]string{0: {"200", "300", "400"}, 1: {"100"}}
	for p, w := range want {
		dir := layout.PartitionDir(root, "old", p)
		if got := finalNames(t, dir); !slices.Equal(got, w) {
			t.Errorf("old/%d after the prune: files %v, want %v", p, got, w)
		}
		data, err := os.ReadFile(filepath.Join(dir, layout.PrunedNote))
		if err != nil {
			t.Errorf("old/%d: no prune note: %v", p, err)
			continue
		}
		note, err := layout.ParsePruned(data)
		if err != nil || note.Below != pruneKept[p] {
			t.Errorf("old/%d: note %q: %+v %v, want below %d", p, data, note, err, pruneKept[p])
		}
	}
}

// pruneJSON runs prune --json and decodes its report.
func pruneJSON(t testing.TB, env []string, args ...string) (inspectResult, prune.Report) {
	t.Helper()
	r := inspectRun(t, env, append([]string{"prune", "--json"}, args...)...)
	var rep prune.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("prune --json: %v\n%s", err, r.stdout)
	}
	return r, rep
}

// checkVerifyPruned runs verify on loc and checks it is clean (no error, no
// warning) and says where each partition starts.
func checkVerifyPruned(t testing.TB, env []string, loc string) {
	t.Helper()
	r, rep := verifyJSON(t, env, loc)
	if r.code != 0 || !rep.OK || rep.Warnings != 0 {
		t.Errorf("verify after the prune: exit %d, ok %v, %d warnings: %v", r.code, rep.OK, rep.Warnings, rep.Problems())
	}
	for _, p := range rep.Partitions {
		if p.PrunedBelow == nil || *p.PrunedBelow != pruneKept[p.Partition] {
			t.Errorf("verify: old/%d pruned below %v, want %d", p.Partition, p.PrunedBelow, pruneKept[p.Partition])
		}
	}
	text := inspectRun(t, env, "verify", loc)
	ls := inspectRun(t, env, "ls", loc)
	for p, below := range pruneKept {
		if want := fmt.Sprintf("pruned below offset %d", below); !strings.Contains(text.stdout, want) || !strings.Contains(ls.stdout, want) {
			t.Errorf("verify or ls of old/%d does not say %q", p, want)
		}
	}
}

// checkRestorePruned restores loc into a new cluster and checks that the
// topic holds exactly the kept records, in order.
func checkRestorePruned(t testing.TB, env []string, loc string, all map[int32][]segment.Record) {
	t.Helper()
	c := faultCluster(t, 2, "old")
	r := restoreRun(t, env, "--brokers", c.ListenAddrs()[0], loc)
	if r.err != nil {
		t.Fatalf("restore of the pruned tree: %v", r.err)
	}
	if !strings.Contains(r.stdout+r.stderr, "pruned below offset 200") {
		t.Errorf("restore does not say where old/0 starts (pruned below offset 200)")
	}
	want := map[int32][]segment.Record{}
	for p, rs := range all {
		want[p] = rs[pruneKept[p]:]
	}
	got := backuptest.ReadTopic(t, c.ListenAddrs(), "old", 2, waitTimeout)
	for p, w := range want {
		g := got[p]
		if len(g) != len(w) {
			t.Errorf("restored old/%d: %d records, want the %d kept (offsets %d-%d)", p, len(g), len(w), w[0].Offset, w[len(w)-1].Offset)
			continue
		}
		for i := range g {
			if string(g[i].Value) != string(w[i].Value) || g[i].Timestamp != w[i].Timestamp {
				t.Fatalf("restored old/%d record %d: %q at %d, want %q at %d", p, i, g[i].Value, g[i].Timestamp, w[i].Value, w[i].Timestamp)
			}
		}
	}
}

// TestPruneLocal: dry run (text and JSON) deletes nothing; --yes deletes
// old/0's files 0 and 100 (not 300, between 200 and 400, nor 400, the
// newest) and old/1's 0; a second prune deletes nothing; verify and ls say
// where the partitions start; restore restores exactly the kept offsets.
func TestPruneLocal(t *testing.T) {
	root := t.TempDir()
	all, _ := writePruneTree(t, root)

	r := inspectRun(t, nil, "prune", "--older-than", "30days", root)
	if r.code != 0 || !strings.Contains(r.stdout, "DRY RUN") || !strings.Contains(r.stdout, "new first offset 200") || !strings.Contains(r.stdout, "new first offset 100") {
		t.Fatalf("dry run: exit %d, output without DRY RUN and the new first offsets", r.code)
	}
	r, rep := pruneJSON(t, nil, "--older-than", "30days", root)
	if r.code != 0 || !rep.DryRun || rep.Files != 3 || len(rep.Partitions) != 2 || len(rep.Snapshots) != 2 || snapshotCount(t, root) != 3 {
		t.Fatalf("dry run --json: exit %d, %+v", r.code, rep)
	}
	if p0 := rep.Partitions[0]; len(p0.Files) != 2 || p0.Files[0].Name != "0" || p0.Files[1].LastOffset != 199 || *p0.NewFirstOffset != 200 {
		t.Errorf("dry run of old/0: %+v", p0)
	}
	for p := range pruneLayout {
		if n := len(finalNames(t, layout.PartitionDir(root, "old", p))); n != len(pruneLayout[p]) {
			t.Fatalf("the dry run deleted files of old/%d: %d left", p, n)
		}
		if _, err := os.Stat(filepath.Join(layout.PartitionDir(root, "old", p), layout.PrunedNote)); !os.IsNotExist(err) {
			t.Fatalf("the dry run wrote a note in old/%d", p)
		}
	}
	// Errors name the flag.
	for _, args := range [][]string{{root}, {"--older-than", "30 weeks", root}, {"--older-than", "1day", "--before", "2024-01-01T00:00:00Z", root}} {
		r := inspectRun(t, nil, append([]string{"prune"}, args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, "--older-than") {
			t.Errorf("prune %v: exit %d, stderr %q; want 2 naming --older-than", args, r.code, r.stderr)
		}
	}

	r, rep = pruneJSON(t, nil, "--older-than", "30days", "--yes", root)
	if r.code != 0 || rep.DryRun || rep.Files != 3 || rep.Errors != 0 || len(rep.Snapshots) != 2 {
		t.Fatalf("prune --yes: exit %d, %+v", r.code, rep)
	}
	checkPruned(t, root)
	if r, rep = pruneJSON(t, nil, "--older-than", "30days", "--yes", root); r.code != 0 || rep.Files != 0 {
		t.Errorf("a second prune: exit %d, %d files", r.code, rep.Files)
	}
	checkPruned(t, root)
	checkVerifyPruned(t, nil, root)
	checkRestorePruned(t, nil, root, all)
}

// pruneFTP starts an FTP server holding the prune tree below /backups, with
// the markers a kafka_backup output leaves, and returns the location, the
// environment with the password, and the server's local root of the tree.
func pruneFTP(t testing.TB) (srv *ftptest.Server, loc string, env []string, local string, all map[int32][]segment.Record) {
	t.Helper()
	srv = ftptest.Start(t)
	const remote = "/backups"
	local = srv.LocalPath(remote)
	all, markers := writePruneTree(t, local)
	writeMarkers(t, local, markers)
	return srv, fmt.Sprintf("ftp://%s@%s%s", srv.User, srv.Addr, remote), []string{"KAFKA_BACKUP_FTP_PASSWORD=" + srv.Password}, local, all
}

// writeMarkers writes each partition's marker below local.
func writeMarkers(t testing.TB, local string, markers map[int32]string) {
	t.Helper()
	for p, m := range markers {
		if err := os.WriteFile(filepath.Join(layout.PartitionDir(local, "old", p), layout.MarkerName), []byte(m), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// markerNames returns the names a local copy of a marker lists.
func markerNames(t testing.TB, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, layout.MarkerName))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for n := range layout.ParseRanges(data) {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// TestPruneFTP: the same as TestPruneLocal on FTP servers (ftpserverlib
// and vsftpd); the markers then list exactly the kept files.
func TestPruneFTP(t *testing.T) {
	t.Run("ftpserverlib", func(t *testing.T) {
		_, loc, env, local, all := pruneFTP(t)
		pruneFTPServer(t, loc, env, local, all)
	})
	t.Run("vsftpd", func(t *testing.T) {
		srv := ftpd.StartVsftpd(t, ftpd.Options{})
		logServerOnFailure(t, srv)
		// Written as the FTP user, who must be able to delete them.
		tmp := t.TempDir()
		all, markers := writePruneTree(t, tmp)
		writeMarkers(t, tmp, markers)
		err := filepath.WalkDir(tmp, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			if err == nil {
				rel, _ := filepath.Rel(tmp, p)
				srv.WriteFile(t, "/backups/"+filepath.ToSlash(rel), data)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		local := srv.Path("backups")
		loc := fmt.Sprintf("ftp://%s@%s:%d/backups", srv.User, srv.Host, srv.Port)
		pruneFTPServer(t, loc, []string{"KAFKA_BACKUP_FTP_PASSWORD=" + srv.Password}, local, all)
	})
}

// pruneFTPServer runs TestPruneFTP on the tree at loc, held at local.
func pruneFTPServer(t *testing.T, loc string, env []string, local string, all map[int32][]segment.Record) {
	r, rep := pruneJSON(t, env, "--older-than", "30days", loc)
	if r.code != 0 || !rep.DryRun || rep.Files != 3 {
		t.Fatalf("dry run: exit %d, %+v", r.code, rep)
	}
	if n := len(finalNames(t, layout.PartitionDir(local, "old", 0))); n != 5 {
		t.Fatalf("the dry run deleted files: %d left", n)
	}
	r, rep = pruneJSON(t, env, "--older-than", "30days", "--yes", loc)
	if r.code != 0 || rep.Files != 3 || rep.Errors != 0 || len(rep.Snapshots) != 2 {
		t.Fatalf("prune --yes: exit %d, %+v", r.code, rep)
	}
	checkPruned(t, local)
	for p, want := range map[int32][]string{0: {"200", "300", "400"}, 1: {"100"}} {
		if got := markerNames(t, layout.PartitionDir(local, "old", p)); !slices.Equal(got, want) {
			t.Errorf("marker of old/%d lists %v, want %v", p, got, want)
		}
	}
	checkVerifyPruned(t, env, loc)
	checkRestorePruned(t, env, loc, all)
}

// TestPruneFTPKilled: a prune killed while the server holds its first
// delete (after the note and the marker were written): the marker no
// longer lists the files to delete, which are all still there; verify
// finds no error (the files below the prune point are warnings); a second
// prune finishes the job and verify is clean.
func TestPruneFTPKilled(t *testing.T) {
	srv, loc, env, local, all := pruneFTP(t)
	srv.Inject(ftptest.Fault{StallDeletes: 1})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, kbBin, "prune", "--older-than", "30days", "--yes", "--partition", "0", loc)
	cmd.Env = append(os.Environ(), env...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitFor(t, "the prune's first delete", func() (bool, string) {
		select {
		case err := <-exited:
			t.Fatalf("the prune exited (%v) before its first delete:\n%s", err, out.String())
		default:
		}
		c := srv.Counts()
		return c.Fired.StallDeletes == 1, fmt.Sprintf("%d removes", c.Removes)
	})
	dir := layout.PartitionDir(local, "old", 0)
	// The state the kill leaves: the marker was rewritten before any delete.
	if got := markerNames(t, dir); !slices.Equal(got, []string{"200", "300", "400"}) {
		t.Errorf("marker while the first delete waits: %v, want 200 300 400", got)
	}
	if got := finalNames(t, dir); len(got) != 5 {
		t.Errorf("files while the first delete waits: %v, want all 5", got)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	t.Logf("killed prune:\n%s", out.String())
	srv.ReleaseUploads() // the held delete fails: the process is gone

	r, rep := verifyJSON(t, env, loc)
	if r.code != 0 || !rep.OK {
		t.Errorf("verify after the kill: exit %d, errors %v", r.code, rep.Problems())
	}
	below := 0
	for _, p := range rep.Problems() {
		if p.Kind == inspect.KindPruned {
			below++
		}
	}
	if below != 2 {
		t.Errorf("verify after the kill: %d files reported below the prune point, want 2 (0 and 100)", below)
	}
	if got := finalNames(t, dir); len(got) != 5 {
		t.Errorf("files after the kill: %v, want all 5", got)
	}

	r2, rep2 := pruneJSON(t, env, "--older-than", "30days", "--yes", loc)
	if r2.code != 0 || rep2.Files != 3 {
		t.Fatalf("second prune: exit %d, %+v", r2.code, rep2)
	}
	checkPruned(t, local)
	checkVerifyPruned(t, env, loc)
	checkRestorePruned(t, env, loc, all)
}

// produceOld produces per records of 200 bytes to each partition of topic,
// with timestamps 60 days old, and counts them as produced.
func produceOld(t testing.TB, b *broker, topic string, partitions int32, per int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	old := time.Now().Add(-60 * 24 * time.Hour)
	for p := range partitions {
		for i := 0; i < per; i += 10 {
			var recs []*kgo.Record
			for j := i; j < min(i+10, per); j++ {
				recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Timestamp: old.Add(time.Duration(j) * time.Millisecond),
					Value: []byte(fmt.Sprintf("%-200s", fmt.Sprintf("p%d-%d", p, j)))})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatalf("producing: %v", err)
			}
		}
		if b.produced[topic] == nil {
			b.produced[topic] = map[int32]int{}
		}
		b.produced[topic][p] += per
	}
}

// prunedFiles returns, by partition, how many files an instance's log says
// its retention pruned.
func prunedFiles(logs string) map[string]int {
	out := map[string]int{}
	for _, line := range strings.Split(logs, "\n") {
		if _, rest, ok := strings.Cut(line, "kafka_backup retention: pruned "); ok {
			f := strings.Fields(rest)
			n, _ := strconv.Atoi(f[1])
			out[strings.TrimSuffix(f[0], ":")] += n
		}
	}
	return out
}

// prunedBy returns the partitions an instance's log says its retention
// pruned.
func prunedBy(logs string) map[string]bool {
	out := map[string]bool{}
	for p := range prunedFiles(logs) {
		out[p] = true
	}
	return out
}

// TestPruneRetentionTwoInstances: two kafka-backup processes in one group
// write a topic of old records to one tree, on local disk and on a real
// FTP server (pure-ftpd), with retention: 30days. Each prunes, and only the
// partitions it writes (none pruned by both); every partition ends with
// its note and no file below it, the kept files hold every offset from the
// note on, and verify is clean.
func TestPruneRetentionTwoInstances(t *testing.T) {
	t.Run("Local", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "backup")
		retentionTwoInstances(t, dir, dir, func(string) string { return "" }, nil, nil)
	})
	t.Run("FTP", func(t *testing.T) {
		srv := ftpd.StartPureFtpd(t, ftpd.Options{})
		logServerOnFailure(t, srv)
		spools := t.TempDir()
		// pure-ftpd takes 8 logins: per instance one upload, the side
		// connections and the retention's.
		fs := func(instance string) string {
			return ftpFS(srv, ftpOpts{spool: filepath.Join(spools, instance), extraFTP: "        max_connections: 1\n"})
		}
		loc := fmt.Sprintf("ftp://%s@%s:%d/ret", srv.User, srv.Host, srv.Port)
		retentionTwoInstances(t, "/ret", srv.Path("ret"), fs, ftpEnv(srv), []string{"KAFKA_BACKUP_FTP_PASSWORD=" + srv.Password, "LOC=" + loc})
	})
}

// retentionTwoInstances runs TestPruneRetentionTwoInstances with the
// output's path at path (with the fs block fs returns for an instance, and
// env), the tree readable at local, and verify given verifyEnv (with
// LOC=location when not local).
func retentionTwoInstances(t *testing.T, path, local string, fs func(instance string) string, env, verifyEnv []string) {
	const topic, parts, per = "ret", 4, 120
	b := startBroker(t, parts, topic)
	ports := map[string]int{"a": freePort(t), "b": freePort(t)}
	cfg := func(instance string) string {
		c := backupConfig(redpandaInput(b, "ret-group", topic), path,
			"    size: 4KiB\n    roll_duration: 300ms\n    retention: 30days\n    retention_check: 500ms\n"+fs(instance))
		return strings.Replace(c, "http:\n  enabled: false\n", fmt.Sprintf("http:\n  enabled: true\n  address: 127.0.0.1:%d\n", ports[instance]), 1)
	}
	a := runBackupEnv(t, "a", cfg("a"), env)
	waitMembers(t, b, "ret-group", true)
	bb := runBackupEnv(t, "b", cfg("b"), env)
	waitFor(t, "two members in ret-group", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d, err := metaAdmin(t, b).DescribeGroups(ctx, "ret-group")
		if err != nil {
			return false, err.Error()
		}
		return len(d["ret-group"].Members) == 2 && d["ret-group"].State == "Stable", d["ret-group"].State
	}, a, bb)
	// Rounds of records until every partition is pruned past the first: an
	// instance prunes the partitions it wrote since its last check, and a
	// file still waiting for its upload is not on the server yet, so a
	// partition may need records after its files arrived.
	produceOld(t, b, topic, parts, per)
	waitCommitted(t, b, "ret-group", parts, []string{topic}, a, bb)
	src := backuptest.OpenTree(t, local)
	notPruned := func() []string {
		var notYet []string
		for p := range int32(parts) {
			note, ok, err := tree.ReadPruned(context.Background(), src, topic, p)
			if err != nil || !ok || note.Below < per {
				notYet = append(notYet, fmt.Sprintf("%d (%v %v)", p, note.Below, err))
			}
		}
		return notYet
	}
	for round := 0; ; round++ {
		produceOld(t, b, topic, parts, per)
		waitCommitted(t, b, "ret-group", parts, []string{topic}, a, bb)
		if round == 5 {
			waitFor(t, "every partition pruned", func() (bool, string) {
				n := notPruned()
				return len(n) == 0, "not pruned past the first round: " + strings.Join(n, ", ")
			}, a, bb)
			break
		}
		deadline := time.Now().Add(3 * time.Second) // a few checks
		for len(notPruned()) > 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if len(notPruned()) == 0 {
			break
		}
	}
	// The metric counts, per partition, the files each instance's log says
	// it pruned.
	for name, p := range map[string]*proc{"a": a, "b": bb} {
		code, body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[name]))
		if err != nil || code != 200 {
			t.Fatalf("%s: GET /metrics: %d %v", name, code, err)
		}
		ps, err := parseProm(body)
		if err != nil {
			t.Fatal(err)
		}
		logged := prunedFiles(p.logs())
		got := map[string]int{}
		for _, x := range scrape(ps).family("kafka_backup_retention_files_deleted") {
			got[x.labels["topic"]+"/"+x.labels["partition"]] += int(x.value)
		}
		if fmt.Sprint(got) != fmt.Sprint(logged) {
			t.Errorf("%s: kafka_backup_retention_files_deleted %v, its log says %v", name, got, logged)
		}
		if e := scrape(ps).sum("kafka_backup_retention_errors", nil); e != 0 {
			t.Errorf("%s: kafka_backup_retention_errors %v", name, e)
		}
	}
	a.stop()
	bb.stop()

	byA, byB := prunedBy(a.logs()), prunedBy(bb.logs())
	t.Logf("pruned by a: %v, by b: %v", byA, byB)
	if len(byA) == 0 || len(byB) == 0 {
		t.Errorf("an instance pruned nothing: a %v, b %v", byA, byB)
	}
	for p := range byA {
		if byB[p] {
			t.Errorf("%s pruned by both instances", p)
		}
	}
	for name, p := range map[string]*proc{"a": a, "b": bb} {
		for _, line := range strings.Split(p.logs(), "\n") {
			if strings.Contains(line, "level=error") {
				t.Errorf("%s: %s", name, line)
			}
		}
	}
	loc := local
	for _, e := range verifyEnv {
		if v, ok := strings.CutPrefix(e, "LOC="); ok {
			loc = v
		}
	}
	r, rep := verifyJSON(t, verifyEnv, loc)
	if r.code != 0 || !rep.OK || rep.Warnings != 0 {
		t.Errorf("verify after retention: exit %d, %v", r.code, rep.Problems())
	}
	for _, p := range rep.Partitions {
		end := int64(b.producedCount(topic, p.Partition)) - 1
		if p.PrunedBelow == nil || len(p.Offsets) != 1 || p.Offsets[0].First != *p.PrunedBelow || p.Offsets[0].Last != end {
			t.Errorf("%s/%d: pruned below %v, offsets %v; want the offsets from the note to %d, contiguous", p.Topic, p.Partition, p.PrunedBelow, p.Offsets, end)
		}
	}
}
