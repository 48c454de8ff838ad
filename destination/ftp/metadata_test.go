package ftp_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kafka-backup/kafka-backup/destination/ftp"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/metadata"
	"github.com/kafka-backup/kafka-backup/tests/ftptest"
)

// TestRefusedSnapshotsDoNotStopRecords: the server refuses the metadata
// snapshots (a file stands where @metadata should be). The snapshots wait
// in the spool and are retried, but they hold no record: the spool limit,
// which stops acknowledging records, must not count them, and records go on
// being uploaded. Past metadata.MaxSpooled waiting, no more are taken.
func TestRefusedSnapshotsDoNotStopRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (waits for retries): skipped with -short")
	}
	srv := ftptest.Start(t)
	root := srv.LocalPath("/backup/10MB")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, layout.MetadataDir), []byte("not a folder"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, srv, func(c *ftp.Config) { c.SpoolLimit = 4 << 10 })
	store := metadata.SpoolStore{Spool: r.spool, Dest: r.dest}
	for i := range metadata.MaxSpooled + 1 {
		name := metadata.Name(time.Date(2024, 5, 1, 12, i, 0, 0, time.UTC), "test-1")
		err := store.Put(context.Background(), name, []byte(strings.Repeat("x", 1<<10)))
		switch {
		case i < metadata.MaxSpooled && err != nil:
			t.Fatal(err)
		case i == metadata.MaxSpooled && (err == nil || !strings.Contains(err.Error(), "snapshots wait in the spool")):
			// Else their retries crowd out the uploads of records.
			t.Fatalf("snapshot %d, with %d waiting: %v, want a refusal", i, metadata.MaxSpooled, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(r.ev.failed()) < metadata.MaxSpooled {
		if time.Now().After(deadline) {
			t.Fatalf("snapshot uploads not refused: failures %q", r.ev.failed())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := r.dest.Ready(); err != nil {
		t.Fatalf("Ready with refused snapshots and no record waiting: %v", err)
	}
	ctx := context.Background()
	if err := r.writer.Write(ctx, "test", 0, records(0, 200)); err != nil {
		t.Fatal(err)
	}
	if err := r.writer.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for files, _ := r.dest.Pending(); files > metadata.MaxSpooled; files, _ = r.dest.Pending() {
		if time.Now().After(deadline) {
			t.Fatalf("records not uploaded: %d files pending, failures %q", files, r.ev.failed())
		}
		time.Sleep(10 * time.Millisecond)
	}
	assertAll(t, srv, 200)
}

// TestSnapshotRemovedFromSpool: a snapshot waiting for upload is removed
// from the spool (a cleanup job). It is reported, but as what it is: a
// snapshot missing from the backup, not acknowledged records lost, which
// would send the operator restoring records from another copy.
func TestSnapshotRemovedFromSpool(t *testing.T) {
	srv := ftptest.Start(t)
	r := newRig(t, srv, nil)
	srv.Stop()
	name := metadata.Name(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC), "test-1")
	if err := (metadata.SpoolStore{Spool: r.spool, Dest: r.dest}).Put(context.Background(), name, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(r.spool, layout.MetadataDir)); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	deadline := time.Now().Add(30 * time.Second)
	for files, _ := r.dest.Pending(); files > 0; files, _ = r.dest.Pending() {
		if time.Now().After(deadline) {
			t.Fatalf("the removed snapshot is still pending; failures: %q", r.ev.failed())
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.ev.mu.Lock()
	said := strings.Join(append(r.ev.errors, r.ev.warnings...), "\n")
	r.ev.mu.Unlock()
	if strings.Contains(said, "LOST") || strings.Contains(said, "offsets") || !strings.Contains(said, name) {
		t.Fatalf("reported %q, want the snapshot %s named as missing from the backup, no records lost", said, name)
	}
}
