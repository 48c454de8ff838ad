package tests

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tests/ftptest"
)

// TestFaultFTPStaleMarkerLine: an operator deletes the backed-up files of a
// partition on the server ("rm *": the hidden marker .kafka-backup.ranges
// stays, listing them) and backs the records up again with a new consumer
// group, as the README advises for files the server lost. The new files roll
// smaller, so the new file 0 holds fewer offsets than the marker's old line
// "0 0-…". The rename of the new file 0 succeeds but its reply is lost (the
// connection drops). Before the fix the old line counted as the new file's
// offsets: the next files' records, all acknowledged, were cut from the
// spool as "held by the server", and never uploaded.
func TestFaultFTPStaleMarkerLine(t *testing.T) {
	t.Parallel()
	needKcat(t)
	srv := ftptest.Start(t)
	fsrv := ftptestServer(srv)
	const topic, remote = "stale", "/stale"
	b := startBroker(t, 1, topic)
	b.produceWorkload(topic, 1, workload{perPartition: 500, seed: 91})
	total := b.totalProduced()
	spool := filepath.Join(t.TempDir(), "spool")
	run := func(name, group, size string) {
		t.Helper()
		cfg := backupConfig(redpandaInput(b, group, topic), remote,
			"    roll_duration: 500ms\n    size: "+size+"\n"+ftpFS(fsrv, ftpOpts{spool: spool, extraFTP: "        max_connections: 1\n"}))
		p := runBackupEnv(t, name, cfg, ftpEnv(fsrv))
		waitCommitted(t, b, group, 1, []string{topic}, p)
		waitEmptySpool(t, spool, p)
		p.stop()
	}
	run("first", "g1", "64MiB") // one file 0 with every offset
	dir := srv.LocalPath(remote + "/" + topic + "/0")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if isFinalName(e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	srv.Inject(ftptest.Fault{DropAfterRename: 1})
	run("again", "g2", "64KiB") // many smaller files, the first named 0 again
	if n, files, err := finalRecords(srv.LocalPath(remote)); n != total || err != nil {
		t.Fatalf("%d of %d acknowledged records in %d files on the server (%v)", n, total, files, err)
	}
	verifyFTPBackup(t, srv.LocalPath(remote), verifyOpts{want: map[string]map[int32][]segment.Record{topic: b.groundTruth(topic, 1)}})
}
