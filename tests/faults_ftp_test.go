package tests

// Fault tests of the FTP destination: the ways an operator loses records, or
// would have lost them without a word, with an FTP server (issue 12 rows 1
// and 9, issue 17 row 3). Each runs the built binary as an operator would.

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tests/ftpd"
	"github.com/kafka-backup/kafka-backup/tests/ftptest"
)

// ftptestServer describes an embedded tests/ftptest server the way ftpFS
// and ftpEnv want a server.
func ftptestServer(s *ftptest.Server) *ftpd.Server {
	return &ftpd.Server{Name: "ftptest", Addr: s.Addr, Host: s.Host, Port: s.Port, User: s.User, Password: s.Password, Root: s.Root}
}

// withHTTP enables the HTTP server (/ready) of a backupConfig on a free port
// and returns the config and the server's base URL.
func withHTTP(t *testing.T, cfg string) (string, string) {
	t.Helper()
	port := freePort(t)
	return replaceOnce(t, cfg, "http:\n  enabled: false\n", fmt.Sprintf("http:\n  enabled: true\n  address: 127.0.0.1:%d\n", port)),
		fmt.Sprintf("http://127.0.0.1:%d", port)
}

// waitEmptySpool waits until the spool holds nothing to upload.
func waitEmptySpool(t testing.TB, spool string, procs ...*proc) {
	t.Helper()
	waitFor(t, "an empty spool "+spool, func() (bool, string) {
		left := spoolLeftovers(spool)
		return len(left) == 0, fmt.Sprintf("left in the spool: %v", left)
	}, procs...)
}

// TestFaultFTPSpoolOfAnotherDestination is issue 12 row 1: a backup with an
// existing spool, whose upload journal (.uploaded.ranges) remembers what it
// uploaded, pointed at a new path, and then at a server folder emptied since.
// Before the fix every record the journal remembered was skipped as already
// uploaded, with no error: the new path got none of them. The server
// decides: every record is backed up to the new path and again into the
// emptied folder, and each time a warning says the journal is not trusted.
func TestFaultFTPSpoolOfAnotherDestination(t *testing.T) {
	t.Parallel()
	needKcat(t)
	srv := ftptest.Start(t)
	fsrv := ftptestServer(srv)
	const topic, parts = "journal", 2
	b := startBroker(t, parts, topic)
	b.produceWorkload(topic, parts, workload{perPartition: 1000, seed: 61})
	total := b.totalProduced()
	truth := b.groundTruth(topic, parts)
	spool := filepath.Join(t.TempDir(), "spool")
	run := func(name, group, remote string) *proc {
		t.Helper()
		cfg := backupConfig(redpandaInput(b, group, topic), remote, "    roll_duration: 500ms\n"+ftpFS(fsrv, ftpOpts{spool: spool}))
		p := runBackupEnv(t, name, cfg, ftpEnv(fsrv))
		waitCommitted(t, b, group, parts, []string{topic}, p)
		waitEmptySpool(t, spool, p)
		p.stop()
		// Every record is acknowledged and the spool is empty: the server
		// must hold them all.
		if n, files, err := finalRecords(srv.LocalPath(remote)); n != total || err != nil {
			t.Fatalf("%s: %d of %d records in %d final files on the server below %s (%v): the rest was skipped as already uploaded",
				name, n, total, files, remote, err)
		}
		verifyFTPBackup(t, srv.LocalPath(remote), verifyOpts{want: map[string]map[int32][]segment.Record{topic: truth}})
		return p
	}
	warned := func(p *proc, re string) {
		t.Helper()
		if !regexp.MustCompile(`level=warn.*` + re).MatchString(p.logs()) {
			t.Errorf("%s: no warning matching %q", p.name, re)
		}
	}

	run("first", "g1", "/a")
	// The same spool, a new path, a new consumer group: every record is
	// delivered again and belongs on /b.
	p := run("new-path", "g2", "/b")
	warned(p, `\.uploaded\.ranges.*another destination.*/a`)
	// The server folder emptied (by hand, a cleanup job, a new server):
	// the journal says uploaded, the server holds nothing.
	if err := os.RemoveAll(srv.LocalPath("/b")); err != nil {
		t.Fatal(err)
	}
	p = run("emptied", "g3", "/b")
	warned(p, `not on the server`)
}

// permanentCase is one permanent FTP fault an operator makes.
type permanentCase struct {
	name  string
	fs    string         // the fs block
	env   []string       // environment of the process
	cause *regexp.Regexp // the one error line naming the cause and the fix
	// login: the fault is there before anything is acknowledged (a refused
	// login), so nothing may ever be committed. Otherwise the first
	// records go into the spool and the fault shows at their upload.
	login bool
	// spoolFirst: the fault shows only once the spool holds the first
	// records and more arrive (a full spool).
	spoolFirst bool
	fix        func() // repairs the fault on the server side, or nil
	spool      string
	dir        string // the server's local folder of the remote path
}

// checkNotReady runs a backup into a permanent fault. Once the error c.cause
// is logged, more records are produced; then /ready must stop answering 200
// and, for 5 s, none of the newer records may be committed (with c.login,
// none at all), with no "Failed to connect" error every second. With c.fix
// the fault is then repaired and every record must reach the server.
func checkNotReady(t *testing.T, c permanentCase) {
	t.Helper()
	const topic, parts, group, remote = "perm", 2, "perm-group", "/perm"
	b := startBroker(t, parts, topic)
	b.produceWorkload(topic, parts, workload{perPartition: 300, seed: 71})
	cfg, base := withHTTP(t, backupConfig(redpandaInput(b, group, topic), remote, "    roll_duration: 500ms\n"+c.fs))
	p := runBackupEnv(t, c.name, cfg, c.env)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	logged := func(what string, re *regexp.Regexp) {
		t.Helper()
		waitFor(t, what, func() (bool, string) { return re.MatchString(p.logs()), "not logged yet" }, p)
	}
	if c.spoolFirst {
		waitCommitted(t, b, group, parts, []string{topic}, p)
		logged("a failed upload", uploadFailed)
	} else {
		logged("an error naming the cause and the fix", c.cause)
	}
	before := map[int32]int64{}
	for part := range int32(parts) {
		before[part] = int64(b.producedCount(topic, part))
		if c.login {
			before[part] = 0
		}
	}
	b.produceWorkload(topic, parts, workload{perPartition: 300, seed: 72})
	logged("an error naming the cause and the fix", c.cause)
	at := len(p.logs())
	waitFor(t, "/ready not answering 200", func() (bool, string) {
		code, _, err := httpGet(base + "/ready")
		return err == nil && code != http.StatusOK, fmt.Sprintf("%d %v", code, err)
	}, p)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) { // a state that must hold for a while
		got, err := committed(cl, group, topic, parts)
		if err != nil {
			t.Fatal(err)
		}
		for part := range int32(parts) {
			if got[part] > before[part] {
				t.Fatalf("partition %d: offset %d committed after: %s (want at most %d): records only in the spool were acknowledged", part, got[part], c.cause, before[part])
			}
		}
		if code, _, err := httpGet(base + "/ready"); err == nil && code == http.StatusOK {
			t.Fatalf("/ready answers 200 after: %s", c.cause)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := strings.Count(p.logs()[at:], "Failed to connect"); n > 0 {
		t.Errorf("%d \"Failed to connect\" errors logged in 5 s: one clear error, not one a second", n)
	}
	if n := len(c.cause.FindAllString(p.logs(), -1)); n > 2 {
		t.Errorf("the error is logged %d times, want one", n)
	}
	if c.fix == nil {
		p.stop()
		return
	}
	c.fix()
	waitCommitted(t, b, group, parts, []string{topic}, p)
	waitEmptySpool(t, c.spool, p)
	p.stop()
	verifyFTPBackup(t, c.dir, verifyOpts{want: map[string]map[int32][]segment.Record{topic: b.groundTruth(topic, parts)}})
}

// TestFaultFTPPermanentErrors is issue 12 row 9: a mistyped password, a
// server requiring TLS, a path the user may not write, and a full spool.
// Before the fix a 530 was retried like an outage: records went on into the
// spool, /ready answered 200 and the group committed records only the spool
// held; a full spool logged "Failed to connect" every second. Now the
// output is not ready and acknowledges nothing, with one error naming the
// cause and the field to fix; a full spool waits with a warning a minute.
func TestFaultFTPPermanentErrors(t *testing.T) {
	t.Parallel()
	needKcat(t)
	t.Run("wrong-password", func(t *testing.T) {
		t.Parallel()
		srv := ftptest.Start(t)
		fsrv := ftptestServer(srv)
		spool := filepath.Join(t.TempDir(), "spool")
		// The password is wrong until fix: then FailLogins runs out.
		srv.Inject(ftptest.Fault{FailLogins: 1 << 20})
		checkNotReady(t, permanentCase{
			name: "wrong-password", fs: ftpFS(fsrv, ftpOpts{spool: spool}), env: ftpEnv(fsrv), spool: spool, dir: srv.LocalPath("/perm"),
			cause: regexp.MustCompile(`level=error.*530.*fs\.ftp\.password`), login: true,
			fix: func() { srv.Inject(ftptest.Fault{}) },
		})
	})
	for _, s := range realFTPServers() {
		if !s.tls {
			continue
		}
		t.Run("tls-required-"+s.name, func(t *testing.T) {
			t.Parallel()
			srv := s.start(t)
			logServerOnFailure(t, srv)
			spool := filepath.Join(t.TempDir(), "spool")
			fs := ftpFS(srv, ftpOpts{spool: spool}) // no tls block
			checkNotReady(t, permanentCase{
				name: "tls-required", fs: fs, env: ftpEnv(srv), spool: spool,
				cause: regexp.MustCompile(`level=error.*refuses kafka-backup.*fs\.ftp\.tls`), login: true,
			})
		})
	}
	t.Run("path-not-writable", func(t *testing.T) {
		t.Parallel()
		srv := ftpd.StartVsftpd(t, ftpd.Options{})
		logServerOnFailure(t, srv)
		dir := srv.Path("/perm")
		if err := os.MkdirAll(dir, 0o555); err != nil { // root's, not the FTP user's
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		spool := filepath.Join(t.TempDir(), "spool")
		checkNotReady(t, permanentCase{
			name: "path-not-writable", fs: ftpFS(srv, ftpOpts{spool: spool}), env: ftpEnv(srv), spool: spool, dir: dir,
			cause: regexp.MustCompile(`level=error.*55[03].*/perm.*permission.*path`),
			fix: func() {
				if err := os.Chmod(dir, 0o777); err != nil {
					t.Fatal(err)
				}
			},
		})
	})
	t.Run("full-spool", func(t *testing.T) {
		t.Parallel()
		srv := ftptest.Start(t)
		fsrv := ftptestServer(srv)
		srv.Stop()
		spool := filepath.Join(t.TempDir(), "spool")
		checkNotReady(t, permanentCase{
			name: "full-spool", fs: ftpFS(fsrv, ftpOpts{spool: spool, extraFTP: "        spool_limit: 4KiB\n"}), env: ftpEnv(fsrv), spool: spool,
			dir:   srv.LocalPath("/perm"),
			cause: regexp.MustCompile(`level=warn.*spool.*over its limit`), spoolFirst: true,
			fix: srv.Restart,
		})
	})
}

// TestFaultFTPSameNameTwoInstances is issue 17 row 3: two instances upload
// a file of the same name, the server slow. Instance B spooled file 0 with
// offsets 0-1999, instance A file 0 with 0-3999 (both acknowledged, the
// server down). B's upload checks the name (free), its STOR is held by the
// server; A uploads its file 0 meanwhile; then B's STOR ends. Before the fix
// B renamed its temporary over A's final file: 2000 acknowledged records
// gone, the marker saying 0-1999, nothing logged. A final file is never
// replaced: B finds the name taken and trims its copy against what the
// server holds.
func TestFaultFTPSameNameTwoInstances(t *testing.T) {
	t.Parallel()
	needKcat(t)
	srv := ftptest.Start(t)
	fsrv := ftptestServer(srv)
	srv.Stop()
	const topic, remote = "same", "/same"
	b := startBroker(t, 1, topic, "idle")
	spoolA, spoolB := filepath.Join(t.TempDir(), "spool-a"), filepath.Join(t.TempDir(), "spool-b")
	config := func(group, topic, spool string) string {
		return replaceOnce(t, backupConfig(redpandaInput(b, group, topic), remote,
			"    roll_duration: 500ms\n"+ftpFS(fsrv, ftpOpts{spool: spool})), "        timeout: 10s\n", "        timeout: 60s\n")
	}
	spoolOnly := func(name, group, spool string, want int) {
		t.Helper()
		p := runBackupEnv(t, name, config(group, topic, spool), ftpEnv(fsrv))
		waitCommitted(t, b, group, 1, []string{topic}, p)
		waitFor(t, fmt.Sprintf("%d records in final spool files", want), func() (bool, string) {
			n, files, err := finalRecords(spool)
			return n == want && err == nil, fmt.Sprintf("%d records in %d files (%v)", n, files, err)
		}, p)
		p.stop()
	}
	b.produceWorkload(topic, 1, workload{perPartition: 2000, seed: 81})
	spoolOnly("b-spool", "gB", spoolB, 2000)
	b.produceWorkload(topic, 1, workload{perPartition: 2000, seed: 82})
	spoolOnly("a-spool", "gA", spoolA, 4000)

	srv.Restart()
	srv.Inject(ftptest.Fault{StallUploads: 1})
	pb := runBackupEnv(t, "b-upload", config("gB2", "idle", spoolB), ftpEnv(fsrv))
	waitFor(t, "B's upload held by the server", func() (bool, string) {
		n := srv.Counts().Fired.StallUploads
		return n == 1, fmt.Sprintf("%d uploads held", n)
	}, pb)
	pa := runBackupEnv(t, "a-upload", config("gA2", "idle", spoolA), ftpEnv(fsrv))
	waitEmptySpool(t, spoolA, pa, pb)
	if n, _, _ := finalRecords(srv.LocalPath(remote)); n != 4000 {
		t.Fatalf("%d records on the server after A's upload, want 4000", n)
	}
	srv.ReleaseUploads()
	waitEmptySpool(t, spoolB, pa, pb)
	pa.stop()
	pb.stop()
	verifyFTPBackup(t, srv.LocalPath(remote), verifyOpts{want: map[string]map[int32][]segment.Record{topic: b.groundTruth(topic, 1)}})
}
