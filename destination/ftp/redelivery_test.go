package ftp_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/kafka-backup/kafka-backup/destination/ftp"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/rolling"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tests/ftptest"
)

// TestRedeliveryDuringOutageGoesOn: records uploaded and gone from the
// spool are delivered again after a restart while the server is down. They
// cannot be compared with the server's copy; backing up must go on into the
// spool (as it did before the recreated-topic check), not fail every Write
// of the partition until the server is back.
func TestRedeliveryDuringOutageGoesOn(t *testing.T) {
	srv := ftptest.Start(t)
	spool := t.TempDir()
	r1 := newRig(t, srv, func(c *ftp.Config) { c.Spool = spool })
	r1.drain(t, records(0, 1000))
	srv.Stop()
	r2 := newRig(t, srv, func(c *ftp.Config) { c.Spool = spool; c.Instance = "test-2" })
	// Delivered again, then new (in two writes: a batch partly held on the
	// server is kept whole, which would put its held offsets in two files).
	if err := r2.writer.Write(context.Background(), "test", 0, records(900, 100)); err != nil {
		t.Fatalf("Write of records 900-999 (delivered again) while the server is down: %v", err)
	}
	if err := r2.writer.Write(context.Background(), "test", 0, records(1000, 100)); err != nil {
		t.Fatalf("Write of records 1000-1099 while the server is down: %v", err)
	}
	srv.Restart()
	r2.drain(t, nil)
	assertAll(t, srv, 1100)
}

// TestRecreatedNoteOnServerRefusesWithNewSpool: a partition refused as
// recreated keeps its note on the server. A restart with an empty spool (a
// container's) must still refuse it: the destination is the truth, and the
// new topic's records must not go into the old topic's folder.
func TestRecreatedNoteOnServerRefusesWithNewSpool(t *testing.T) {
	srv := ftptest.Start(t)
	r1 := newRig(t, srv, nil)
	r1.drain(t, records(0, 1000))

	fresh := records(0, 100)
	for i := range fresh {
		fresh[i].Value = append(fresh[i].Value, "new"...)
	}
	r2 := newRig(t, srv, func(c *ftp.Config) { c.Instance = "test-2" })
	if err := r2.writer.Write(context.Background(), "test", 0, fresh); !errors.Is(err, rolling.ErrRecreated) {
		t.Fatalf("Write of the recreated topic's records: %v, want ErrRecreated", err)
	}
	if _, err := os.Stat(filepath.Join(srv.LocalPath("/backup/10MB/test/0"), layout.RecreatedNote)); err != nil {
		t.Fatalf("no note on the server: %v", err)
	}

	r3 := newRig(t, srv, func(c *ftp.Config) { c.Instance = "test-3" }) // a new, empty spool
	err := r3.writer.Write(context.Background(), "test", 0, records(1000, 100))
	if !errors.Is(err, rolling.ErrRecreated) {
		t.Fatalf("Write to the partition the server's note refuses, from a new spool: %v, want ErrRecreated", err)
	}
}

// TestPartlyHeldBatchUploads: a spool file whose batch is only partly held
// on the server (written during an outage, when what the server holds could
// not be read) is kept whole and uploaded. Its size was lost on the way
// (taken as 0), and the upload was retried forever: "has 6580 bytes on the
// server, 0 were sent".
func TestPartlyHeldBatchUploads(t *testing.T) {
	srv := ftptest.Start(t)
	spool := t.TempDir()
	r1 := newRig(t, srv, func(c *ftp.Config) { c.Spool = spool })
	r1.drain(t, records(0, 1000))
	srv.Stop()
	r2 := newRig(t, srv, func(c *ftp.Config) { c.Spool = spool; c.Instance = "test-2" })
	if err := r2.writer.Write(context.Background(), "test", 0, records(900, 200)); err != nil {
		t.Fatalf("Write of records 900-1099 while the server is down: %v", err)
	}
	srv.Restart()
	r2.drain(t, nil)
	seen := map[int64]bool{}
	dir := srv.LocalPath("/backup/10MB/test/0")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := layout.ParseFileName(e.Name()); !ok {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		rd := segment.NewReader(bytes.NewReader(data))
		for {
			b, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", e.Name(), err)
			}
			for o := b.BaseOffset; o <= b.LastOffset; o++ {
				seen[o] = true
			}
		}
	}
	for o := int64(0); o < 1100; o++ {
		if !seen[o] {
			t.Fatalf("offset %d is not on the server", o)
		}
	}
}
