package ftp_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kafka-backup/kafka-backup/destination/ftp"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tests/ftptest"
)

// spoolFile writes recs, in batches of batch records, as the finished spool
// file of test/0 named after their first offset.
func spoolFile(t *testing.T, spool string, recs []segment.Record, batch int) {
	t.Helper()
	e, _ := segment.NewEncoder(segment.None)
	var data []byte
	name := layout.NamePlain.FileName(recs[0].Offset)
	for len(recs) > 0 {
		var n int
		data, n = e.AppendBatch(data, recs[:min(batch, len(recs))], 1<<30)
		recs = recs[n:]
	}
	dir := layout.PartitionDir(spool, "test", 0)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestStaleMarkerLineOfAReusedName: a final file was deleted on the server
// (by hand, "rm *" leaves the hidden marker), its marker line stays, and the
// records are backed up again (a new consumer group) into files rolled at
// other offsets: the new file of the same name holds fewer offsets than the
// stale line says. Its rename succeeds but the reply is lost, so the marker
// is not updated at once. The stale line must not count as the new file's
// offsets: the next file's records, acknowledged, would be cut as held.
func TestStaleMarkerLineOfAReusedName(t *testing.T) {
	srv := ftptest.Start(t)
	newRig(t, srv, nil).drain(t, records(0, 100)) // file 0: offsets 0-99
	dir := srv.LocalPath("/backup/10MB/test/0")
	if err := os.Remove(filepath.Join(dir, "0")); err != nil { // the marker stays
		t.Fatal(err)
	}
	spool := t.TempDir()
	spoolFile(t, spool, records(0, 50), 10)  // file 0: 0-49
	spoolFile(t, spool, records(50, 50), 10) // file 50: 50-99
	srv.Inject(ftptest.Fault{DropAfterRename: 1})
	r := newRig(t, srv, func(c *ftp.Config) { c.Spool = spool; c.Instance = "test-2"; c.MaxConnections = 1 })
	r.drain(t, nil)
	assertAll(t, srv, 100)
}

// TestRefusalOfOneFolderHolds: the server refuses uploads into one
// partition's folder (550 on STOR: a file stands where the folder should be,
// as a folder the FTP user may not write would). Ready must fail while that
// refusal holds, even when files of another partition upload fine
// meanwhile: else records of the refused partition are acknowledged into
// the spool again.
func TestRefusalOfOneFolderHolds(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (waits out the login probe): skipped with -short")
	}
	srv := ftptest.Start(t)
	base := srv.LocalPath("/backup/10MB/test")
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "1"), []byte("not a folder"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, srv, func(c *ftp.Config) { c.MaxConnections = 1 })
	ctx := context.Background()
	if err := r.writer.Write(ctx, "test", 1, records(0, 200)); err != nil { // rolls: MaxSize 8 KiB
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var refusal *ftp.Refusal
	for err := r.dest.Ready(); !errors.As(err, &refusal); err = r.dest.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("Ready: %v, want a refusal of test/1's folder; failures %q", err, r.ev.failed())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.writer.Write(ctx, "test", 0, records(0, 200)); err != nil {
		t.Fatal(err)
	}
	for {
		r.ev.mu.Lock()
		n := r.ev.uploaded
		r.ev.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("test/0 was not uploaded; failures %q", r.ev.failed())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for range 20 {
		if err := r.dest.Ready(); err == nil {
			t.Fatal("Ready is nil after an upload of test/0 while the server still refuses test/1's folder")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRefusedRename: a server that takes uploads but refuses to rename them
// (550: an upload-only drop box, vsftpd's cmds_denied=RNFR) never holds a
// final file: like a refused STOR it is a refusal, not an outage, so Ready
// fails instead of the spool filling with acknowledged records. Once the
// server renames again, everything arrives.
func TestRefusedRename(t *testing.T) {
	srv := ftptest.Start(t)
	srv.Inject(ftptest.Fault{FailRenames: 1 << 20})
	r := newRig(t, srv, nil)
	if err := r.writer.Write(context.Background(), "test", 0, records(0, 200)); err != nil { // rolls: MaxSize 8 KiB
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var refusal *ftp.Refusal
	for err := r.dest.Ready(); !errors.As(err, &refusal); err = r.dest.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("Ready: %v, want a refusal; failures %q", err, r.ev.failed())
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.Inject(ftptest.Fault{})
	r.drain(t, nil)
	assertAll(t, srv, 200)
	if err := r.dest.Ready(); err != nil {
		t.Fatalf("Ready after the server renames again: %v", err)
	}
}

// TestTakenNameFirstBatchPartlyHeld: after a rebalance, the server holds
// file 0 with offsets 0-39 (the first instance's), and this instance's
// spool file 0 holds 0-99 in one batch (one fetch delivered again). The
// name is taken and the first batch is only partly on the server: offsets
// 40-99, acknowledged, must still reach the server.
func TestTakenNameFirstBatchPartlyHeld(t *testing.T) {
	srv := ftptest.Start(t)
	newRig(t, srv, nil).drain(t, records(0, 40))
	spool := t.TempDir()
	spoolFile(t, spool, records(0, 100), 100)
	r := newRig(t, srv, func(c *ftp.Config) { c.Spool = spool; c.Instance = "test-2" })
	r.drain(t, nil)
	assertAll(t, srv, 100)
}
