package ftp_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafka-backup/kafka-backup/destination/ftp"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/prune"
	"github.com/kafka-backup/kafka-backup/rolling"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tests/ftptest"
	"github.com/kafka-backup/kafka-backup/tree"
)

// events records what the destination reports.
type events struct {
	mu       sync.Mutex
	uploaded int
	failures []string
	errors   []string
	warnings []string
}

func (e *events) Uploaded(string, int64, time.Duration) {
	e.mu.Lock()
	e.uploaded++
	e.mu.Unlock()
}

func (e *events) UploadFailed(p string, attempt int, err error) {
	e.mu.Lock()
	e.failures = append(e.failures, fmt.Sprintf("%s #%d: %v", p, attempt, err))
	e.mu.Unlock()
}

func (e *events) SpoolBytes(int64) {}

func (e *events) Warn(err error) {
	e.mu.Lock()
	e.warnings = append(e.warnings, err.Error())
	e.mu.Unlock()
}

func (e *events) Error(err error) {
	e.mu.Lock()
	e.errors = append(e.errors, err.Error())
	e.mu.Unlock()
}

func (e *events) failed() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.failures...)
}

type rig struct {
	srv    *ftptest.Server
	dest   *ftp.Destination
	writer *rolling.Writer
	ev     *events
	spool  string
}

func newRig(t *testing.T, srv *ftptest.Server, tweak func(*ftp.Config)) *rig {
	t.Helper()
	ev := &events{}
	cfg := ftp.Config{
		Addr: srv.Addr, User: srv.User, Password: srv.Password, TLS: srv.ClientTLSConfig(),
		Root: "/backup/10MB", Spool: t.TempDir(), Instance: "test-1",
		ConnectTimeout: 2 * time.Second, IOTimeout: 2 * time.Second, MaxConnections: 2,
		Observer: ev,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	d, err := ftp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w, err := rolling.New(rolling.Config{Dir: cfg.Spool, Instance: cfg.Instance, MaxSize: 8 << 10, IdleTimeout: time.Hour, Destination: d})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{srv: srv, dest: d, writer: w, ev: ev, spool: cfg.Spool}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		w.Close(ctx)
		d.Close(ctx)
	})
	return r
}

func records(first, n int64) []segment.Record {
	recs := make([]segment.Record, n)
	for i := range recs {
		off := first + int64(i)
		recs[i] = segment.Record{Offset: off, Timestamp: 1700000000000 + off, Key: fmt.Appendf(nil, "k%d", off), Value: []byte(strings.Repeat("v", int(off%200)))}
	}
	return recs
}

// drain writes recs to partition 0 of topic test, closes the writer and
// waits until every file is uploaded.
func (r *rig) drain(t *testing.T, recs []segment.Record) {
	t.Helper()
	ctx := context.Background()
	if len(recs) > 0 {
		if err := r.writer.Write(ctx, "test", 0, recs); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.writer.Close(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if files, _ := r.dest.Pending(); files == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("uploads did not finish; failures: %q", r.ev.failed())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// remoteOffsets reads every final file the server holds for test/0 and
// returns the offsets in them, failing on a duplicate or a misnamed file.
func remoteOffsets(t *testing.T, srv *ftptest.Server) []int64 {
	t.Helper()
	dir := srv.LocalPath("/backup/10MB/test/0")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	var offs []int64
	for _, e := range entries {
		first, ok := layout.ParseFileName(e.Name())
		if !ok {
			if e.Name() != layout.MarkerName {
				t.Errorf("unexpected file left on the server: %s", e.Name())
			}
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		rd := segment.NewReader(f)
		for i := 0; ; i++ {
			b, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", e.Name(), err)
			}
			if i == 0 && b.BaseOffset != first {
				t.Errorf("%s starts at offset %d", e.Name(), b.BaseOffset)
			}
			recs, err := b.Records()
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if seen[r.Offset] {
					t.Errorf("offset %d is in two files", r.Offset)
				}
				seen[r.Offset] = true
				offs = append(offs, r.Offset)
			}
		}
		f.Close()
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	return offs
}

func assertAll(t *testing.T, srv *ftptest.Server, n int64) {
	t.Helper()
	offs := remoteOffsets(t, srv)
	if int64(len(offs)) != n {
		t.Fatalf("server holds %d records, want %d", len(offs), n)
	}
	for i, o := range offs {
		if o != int64(i) {
			t.Fatalf("offset %d missing", i)
		}
	}
}

func TestUploads(t *testing.T) {
	srv := ftptest.Start(t)
	r := newRig(t, srv, nil)
	r.drain(t, records(0, 2000))
	assertAll(t, srv, 2000)
	if left := spoolFiles(t, r.spool); len(left) > 0 {
		t.Fatalf("spool still holds %v", left)
	}
}

func TestFTPS(t *testing.T) {
	srv := ftptest.Start(t, ftptest.WithTLS())
	r := newRig(t, srv, nil)
	r.drain(t, records(0, 500))
	assertAll(t, srv, 500)
}

func TestFaults(t *testing.T) {
	for name, f := range map[string]ftptest.Fault{
		"552 on open":       {RejectUploads: 2},
		"552 mid write":     {FailWrites: 2},
		"drop mid upload":   {DropMidUpload: 2},
		"silent truncation": {TruncateUploads: 2},
		"failing rename":    {FailRenames: 2},
		"drop after rename": {DropAfterRename: 2},
		"failing mkdir":     {FailMkdirs: 2},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := ftptest.Start(t)
			srv.Inject(f)
			r := newRig(t, srv, nil)
			r.drain(t, records(0, 1500))
			assertAll(t, srv, 1500)
			if fired := srv.Counts().Fired; fired == (ftptest.Fault{}) {
				t.Fatal("no fault fired")
			}
			// A refused MKD need not fail an upload: the other uploader may
			// create the same folder in between, and each refused MKD of a
			// folder that exists is harmless.
			// A refused rename is reported once as a refusal (Error).
			r.ev.mu.Lock()
			refusals := len(r.ev.errors)
			r.ev.mu.Unlock()
			if len(r.ev.failed())+refusals == 0 && f.FailMkdirs == 0 {
				t.Fatal("no upload failure was reported")
			}
		})
	}
}

// TestRefusedLogin: a refused login is a Refusal, not an outage: the first
// write fails naming the fields to fix, Ready fails, the error is reported
// once, and once the server accepts the login again Ready recovers without
// a restart and everything is uploaded.
func TestRefusedLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (waits out the login probe): skipped with -short")
	}
	srv := ftptest.Start(t)
	srv.Inject(ftptest.Fault{FailLogins: 1 << 20})
	r := newRig(t, srv, nil)
	ctx := context.Background()
	err := r.writer.Write(ctx, "test", 0, records(0, 100))
	var refusal *ftp.Refusal
	if !errors.As(err, &refusal) || !strings.Contains(err.Error(), "fs.ftp.password") {
		t.Fatalf("Write with a refused login: %v, want a *ftp.Refusal naming fs.ftp.password", err)
	}
	if err := r.dest.Ready(); !errors.As(err, &refusal) {
		t.Fatalf("Ready: %v, want the refusal", err)
	}
	if _, err := r.dest.Persisted(ctx, "test", 1); err == nil {
		t.Fatal("Persisted went on while the login is refused")
	}
	r.ev.mu.Lock()
	errs := len(r.ev.errors)
	r.ev.mu.Unlock()
	if errs != 1 {
		t.Errorf("%d errors reported, want one: %q", errs, r.ev.errors)
	}
	srv.Inject(ftptest.Fault{})
	deadline := time.Now().Add(20 * time.Second)
	for r.dest.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Ready still fails after the login works again: %v", r.dest.Ready())
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.drain(t, records(0, 500))
	assertAll(t, srv, 500)
}

// TestJournalOfAnotherDestination: a spool whose journal belongs to another
// destination (another path) gets it removed with a warning, and its lines
// never count as backed up.
func TestJournalOfAnotherDestination(t *testing.T) {
	srv := ftptest.Start(t)
	spool := t.TempDir()
	jdir := filepath.Join(spool, "test", "0")
	if err := os.MkdirAll(jdir, 0o755); err != nil {
		t.Fatal(err)
	}
	journal := filepath.Join(jdir, layout.JournalName)
	old := "# kafka-backup upload journal of ftp://u@elsewhere:21/other\n0 0-499\n"
	if err := os.WriteFile(journal, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, srv, func(c *ftp.Config) { c.Spool = spool })
	r.ev.mu.Lock()
	warnings := append([]string(nil), r.ev.warnings...)
	r.ev.mu.Unlock()
	if len(warnings) != 1 || !strings.Contains(warnings[0], "elsewhere:21/other") {
		t.Errorf("warnings %q, want one naming the other destination", warnings)
	}
	if _, err := os.Stat(journal); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the other destination's journal is still there (%v)", err)
	}
	held, err := r.dest.Persisted(context.Background(), "test", 0)
	if err != nil || len(held) != 0 {
		t.Fatalf("Persisted: %v, %v; want nothing held", held, err)
	}
	r.drain(t, records(0, 500))
	assertAll(t, srv, 500)
	data, err := os.ReadFile(journal)
	if err != nil || !strings.HasPrefix(string(data), "# kafka-backup upload journal of ftp://ftptest@"+srv.Addr+"/backup/10MB\n") {
		t.Errorf("the new journal %q (%v) does not name this destination first", data, err)
	}
}

func TestFrozenServerTimesOut(t *testing.T) {
	srv := ftptest.Start(t)
	r := newRig(t, srv, func(c *ftp.Config) { c.IOTimeout = 300 * time.Millisecond; c.ConnectTimeout = 300 * time.Millisecond })
	srv.Freeze()
	if err := r.writer.Write(context.Background(), "test", 0, records(0, 300)); err != nil {
		t.Fatal(err)
	}
	r.writer.Close(context.Background())
	deadline := time.Now().Add(10 * time.Second)
	for len(r.ev.failed()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a frozen server did not make an upload fail")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if f := r.ev.failed()[0]; !strings.Contains(f, "timeout") {
		t.Errorf("failure does not say timeout: %s", f)
	}
	srv.Unfreeze()
	r.drain(t, nil)
	assertAll(t, srv, 300)
}

// TestOutageAndSpoolLimit stops the server, fills the spool past its limit,
// checks that Ready refuses, restarts the server and checks everything
// arrives once.
func TestOutageAndSpoolLimit(t *testing.T) {
	srv := ftptest.Start(t)
	r := newRig(t, srv, func(c *ftp.Config) { c.SpoolLimit = 20 << 10 })
	srv.Stop()
	ctx := context.Background()
	var n int64
	for r.dest.Ready() == nil {
		if err := r.writer.Write(ctx, "test", 0, records(n, 100)); err != nil {
			t.Fatal(err)
		}
		n += 100
		if n > 100000 {
			t.Fatal("Ready never refused while the server was down")
		}
	}
	if err := r.dest.Ready(); !strings.Contains(err.Error(), "spool") {
		t.Fatalf("Ready: %v", err)
	}
	srv.Restart()
	r.drain(t, nil)
	assertAll(t, srv, n)
	if r.dest.Ready() != nil {
		t.Fatal("Ready still refuses after the spool drained")
	}
}

// TestRestartUploadsSpoolAndSkipsPersisted: files left in the spool by a
// previous run are uploaded by the next, and records the server already has
// are skipped.
func TestRestartUploadsSpoolAndSkipsPersisted(t *testing.T) {
	srv := ftptest.Start(t)
	spool := t.TempDir()
	srv.Stop()
	r1 := newRig(t, srv, func(c *ftp.Config) { c.Spool = spool })
	if err := r1.writer.Write(context.Background(), "test", 0, records(0, 1000)); err != nil {
		t.Fatal(err)
	}
	r1.writer.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	r1.dest.Close(ctx) // the server is down: files stay in the spool
	cancel()
	if len(spoolFiles(t, spool)) == 0 {
		t.Fatal("nothing left in the spool")
	}
	srv.Restart()
	r2 := newRig(t, srv, func(c *ftp.Config) { c.Spool = spool; c.Instance = "test-2" })
	r2.drain(t, records(0, 1500)) // a replay from offset 0
	assertAll(t, srv, 1500)
}

func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != layout.JournalName {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestTakenNameIsTrimmed: another writer's spool file starts at an offset
// whose final name the server already has (a rebalance moved the partition
// while both held records of it). The records the server holds are cut and
// the rest arrives under its new first offset: everything once, nothing
// replaced.
func TestTakenNameIsTrimmed(t *testing.T) {
	srv := ftptest.Start(t)
	r1 := newRig(t, srv, nil)
	r1.drain(t, records(0, 1000))

	spool := t.TempDir()
	e, _ := segment.NewEncoder(segment.None)
	var data []byte
	for recs := records(0, 1500); len(recs) > 0; {
		var n int
		data, n = e.AppendBatch(data, recs[:100], 1<<30)
		recs = recs[n:]
	}
	dir := layout.PartitionDir(spool, "test", 0)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "0"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	r2 := newRig(t, srv, func(c *ftp.Config) { c.Spool = spool; c.Instance = "test-2" })
	r2.drain(t, nil)
	assertAll(t, srv, 1500)
	if _, err := os.Stat(srv.LocalPath("/backup/10MB/test/0/1000")); err != nil {
		t.Fatalf("the trimmed file is not on the server as 1000: %v", err)
	}
}

// TestHeldBatchesAreCut: another instance uploaded some of the same records
// under another name (a rebalance moved the partition while this one had the
// file open). The batches the folder's marker shows on the server are cut
// from the spool copy before it is uploaded: at its end the name stays, at
// its start it gets the name of its new first offset.
func TestHeldBatchesAreCut(t *testing.T) {
	for name, c := range map[string]struct {
		server       []segment.Record // uploaded first, by another instance
		spooled      []segment.Record // this instance's file, batches of 100
		wantUploaded string
	}{
		"at the end":   {server: records(1000, 500), spooled: records(0, 1100), wantUploaded: "0"},
		"at the start": {server: records(0, 1000), spooled: records(900, 600), wantUploaded: "1000"},
	} {
		t.Run(name, func(t *testing.T) {
			srv := ftptest.Start(t)
			newRig(t, srv, nil).drain(t, c.server)

			spool := t.TempDir()
			e, _ := segment.NewEncoder(segment.None)
			var data []byte
			for recs := c.spooled; len(recs) > 0; {
				var n int
				data, n = e.AppendBatch(data, recs[:min(100, len(recs))], 1<<30)
				recs = recs[n:]
			}
			dir := layout.PartitionDir(spool, "test", 0)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			first := layout.NamePlain.FileName(c.spooled[0].Offset)
			if err := os.WriteFile(filepath.Join(dir, first), data, 0o644); err != nil {
				t.Fatal(err)
			}
			r2 := newRig(t, srv, func(c *ftp.Config) { c.Spool = spool; c.Instance = "test-2" })
			r2.drain(t, nil)
			assertAll(t, srv, 1500) // every offset once
			if _, err := os.Stat(srv.LocalPath("/backup/10MB/test/0/" + c.wantUploaded)); err != nil {
				t.Fatalf("the cut file is not on the server as %s: %v", c.wantUploaded, err)
			}
		})
	}
}

// TestTakenNameIsNeverReplaced: two instances upload a file of the same
// name; B (offsets 0-39) checks the name (free) and its STOR is held by the
// server while A uploads its larger file (0-99) under that name. When B's STOR ends, B must find
// the name taken and trim its copy against A's file, not rename over it.
func TestTakenNameIsNeverReplaced(t *testing.T) {
	srv := ftptest.Start(t)
	a := newRig(t, srv, func(c *ftp.Config) { c.Instance = "a"; c.MaxConnections = 1 })
	b := newRig(t, srv, func(c *ftp.Config) { c.Instance = "b"; c.MaxConnections = 1 })
	srv.Inject(ftptest.Fault{StallUploads: 1})
	ctx := context.Background()
	if err := b.writer.Write(ctx, "test", 0, records(0, 40)); err != nil {
		t.Fatal(err)
	}
	if err := b.writer.Close(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.Counts().Fired.StallUploads == 0 {
		if time.Now().After(deadline) {
			t.Fatal("B's upload never reached the server")
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.drain(t, records(0, 100)) // A's file 0, offsets 0-99, uploaded while B's STOR is held
	srv.ReleaseUploads()
	b.drain(t, nil)
	assertAll(t, srv, 100)
	if left := spoolFiles(t, b.spool); len(left) > 0 {
		t.Fatalf("B's spool still holds %v", left)
	}
}

// TestMarkerAcrossInstances: two instances upload many files into one
// folder at once, each updating the folder's marker: every file ends up
// listed, with its offsets (an update replaced by the other instance's is
// done again, at the next update and at Close).
func TestMarkerAcrossInstances(t *testing.T) {
	srv := ftptest.Start(t)
	a := newRig(t, srv, func(c *ftp.Config) { c.Instance = "a" })
	b := newRig(t, srv, func(c *ftp.Config) { c.Instance = "b" })
	var wg sync.WaitGroup
	wg.Go(func() { a.drain(t, records(0, 3000)) })
	wg.Go(func() { b.drain(t, records(3000, 3000)) })
	wg.Wait()
	for _, r := range []*rig{a, b} {
		if err := r.dest.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	assertAll(t, srv, 6000)
	dir := srv.LocalPath("/backup/10MB/test/0")
	data, err := os.ReadFile(filepath.Join(dir, layout.MarkerName))
	if err != nil {
		t.Fatal(err)
	}
	marker := layout.ParseRanges(data)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	for _, e := range entries {
		first, ok := layout.ParseFileName(e.Name())
		if !ok {
			continue
		}
		files++
		if rs := marker[e.Name()]; len(rs) == 0 || rs[0].First != first {
			t.Errorf("%s: the marker lists it as %v", e.Name(), rs)
		}
	}
	if files < 10 || len(marker) != files {
		t.Errorf("%d files, the marker lists %d", files, len(marker))
	}
}

// TestUntrustedCertificate: a server certificate the configuration does not
// trust is a Refusal naming fs.ftp.tls.root_cas_file, not an outage.
func TestUntrustedCertificate(t *testing.T) {
	srv := ftptest.Start(t, ftptest.WithTLS())
	r := newRig(t, srv, func(c *ftp.Config) { c.TLS = &tls.Config{ServerName: "127.0.0.1"} })
	err := r.writer.Write(context.Background(), "test", 0, records(0, 10))
	var refusal *ftp.Refusal
	if !errors.As(err, &refusal) || !strings.Contains(err.Error(), "fs.ftp.tls.root_cas_file") {
		t.Fatalf("Write against an untrusted certificate: %v, want a *ftp.Refusal naming fs.ftp.tls.root_cas_file", err)
	}
	if r.dest.Ready() == nil {
		t.Fatal("Ready with an untrusted certificate")
	}
}

// TestSpoolFolderRemovedWhileQueued: files rolled while the server is down
// wait in the spool; a cleanup job deletes the spool's partition folder.
// Their records are lost (said loudly), but the uploads of files that no
// longer exist must not be retried forever, holding the spool's byte count
// (and so readiness) hostage.
func TestSpoolFolderRemovedWhileQueued(t *testing.T) {
	srv := ftptest.Start(t)
	r := newRig(t, srv, nil)
	srv.Stop()
	if err := r.writer.Write(context.Background(), "test", 0, records(0, 1000)); err != nil {
		t.Fatal(err)
	}
	if files, _ := r.dest.Pending(); files == 0 {
		t.Fatal("nothing queued")
	}
	if err := os.RemoveAll(filepath.Join(r.spool, "test", "0")); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	deadline := time.Now().Add(30 * time.Second)
	for {
		files, bytes := r.dest.Pending()
		if files == 0 && bytes == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d files (%d bytes) still pending after their spool folder was removed; failures: %q", files, bytes, r.ev.failed())
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.ev.mu.Lock()
	said := strings.Join(r.ev.errors, "\n")
	r.ev.mu.Unlock()
	if !strings.Contains(said, "LOST") {
		t.Fatalf("errors %q, want one saying the removed spool files' records are lost", said)
	}
}

// TestSpoolFolderRemovedAfterUpload: a file reached the server under its
// final name, but the reply was lost, so the upload is retried; meanwhile a
// cleanup job deletes the spool's partition folder. The retry finds the file
// on the server: it is done, though the spool's journal (a hint) cannot be
// written any more; it must not be retried for ever.
func TestSpoolFolderRemovedAfterUpload(t *testing.T) {
	srv := ftptest.Start(t)
	r := newRig(t, srv, func(c *ftp.Config) { c.MaxConnections = 1 })
	srv.Inject(ftptest.Fault{DropAfterRename: 1})
	if err := r.writer.Write(context.Background(), "test", 0, records(0, 1000)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(r.ev.failed()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the dropped rename was never reported")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Uploads going on may add a journal while the folder is removed.
	for err := os.RemoveAll(filepath.Join(r.spool, "test", "0")); err != nil; err = os.RemoveAll(filepath.Join(r.spool, "test", "0")) {
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	for {
		files, bytes := r.dest.Pending()
		if files == 0 && bytes == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d files (%d bytes) still pending; failures: %q", files, bytes, r.ev.failed())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMarkerKeptOnFailedRead: reading the marker fails with a reply that
// does not say it is missing (552 here; 425 or 451 on real servers). The
// upload must not rewrite the marker as if it were empty, dropping the lines
// of the files uploaded before: verify relies on them to find files deleted
// from the server.
func TestMarkerKeptOnFailedRead(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (waits for retries): skipped with -short")
	}
	srv := ftptest.Start(t)
	r := newRig(t, srv, func(c *ftp.Config) { c.MaxConnections = 1 })
	ctx := context.Background()
	if err := r.writer.Write(ctx, "test", 0, records(0, 1000)); err != nil {
		t.Fatal(err)
	}
	r.drain(t, nil)
	marker := filepath.Join(srv.LocalPath("/backup/10MB/test/0"), layout.MarkerName)
	before, err := os.ReadFile(marker)
	if err != nil {
		t.Fatal(err)
	}
	n := len(layout.ParseRanges(before))
	// The next run (another instance) uploads one more file; its two reads
	// of the marker fail: the one that finds what the server holds already,
	// and the one before the marker is rewritten.
	r2 := newRig(t, srv, func(c *ftp.Config) { c.MaxConnections = 1; c.Instance = "test-2" })
	if err := r2.writer.Write(ctx, "test", 0, records(1000, 10)); err != nil {
		t.Fatal(err)
	}
	srv.Inject(ftptest.Fault{FailDownloads: 2})
	if err := r2.writer.Close(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if files, _ := r2.dest.Pending(); files == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("upload did not finish; failures %q", r2.ev.failed())
		}
		time.Sleep(20 * time.Millisecond)
	}
	after, err := os.ReadFile(marker)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(layout.ParseRanges(after)); got != n+1 {
		t.Fatalf("marker lists %d files after one more upload, want %d:\nbefore:\n%s\nafter:\n%s", got, n+1, before, after)
	}
}

// TestMarkerAfterPrune: a prune deletes old files under a running
// destination; the destination's later marker updates (uploads, and the
// check at shutdown) never bring back the lines of the deleted files,
// which it had written itself.
func TestMarkerAfterPrune(t *testing.T) {
	srv := ftptest.Start(t)
	r := newRig(t, srv, nil)
	r.drain(t, records(0, 3000))
	ctx := context.Background()
	src, err := tree.Open(ctx, fmt.Sprintf("ftp://%s@%s/backup/10MB", srv.User, srv.Addr), tree.Options{Password: srv.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	rep, err := prune.Run(ctx, src, prune.Options{Cutoff: time.UnixMilli(1700000000000 + 2000), KeepFiles: 1, Apply: true})
	if err != nil || rep.Errors != 0 || rep.Files < 2 {
		t.Fatalf("prune: %v, %+v", err, rep)
	}
	w, err := rolling.New(rolling.Config{Dir: r.spool, Instance: "test-1", MaxSize: 8 << 10, IdleTimeout: time.Hour, Destination: r.dest})
	if err != nil {
		t.Fatal(err)
	}
	r.writer = w
	r.drain(t, records(3000, 1000))
	if err := r.dest.Close(ctx); err != nil {
		t.Fatal(err)
	}
	dir := srv.LocalPath("/backup/10MB/test/0")
	data, err := os.ReadFile(filepath.Join(dir, layout.MarkerName))
	if err != nil {
		t.Fatal(err)
	}
	marker := layout.ParseRanges(data)
	for name := range marker {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("the marker lists %s, which the prune deleted: %v", name, err)
		}
	}
	if len(marker) < 3 {
		t.Errorf("the marker lists %d files", len(marker))
	}
}
