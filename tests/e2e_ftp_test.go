package tests

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tests/ftpd"
)

// TestE2EFTPSeedScenario runs the seed's headline scenario against each real
// server: topic test backed up to /test/10MB with size 10MB, roll_duration
// 3s and offset_from {test: 101} through the redpanda input. Every record
// from offset 101 on must reach the server in final files while the process
// runs (the idle roll), each exactly once and equal to Kafka's, under
// /test/10MB/test/<partition>/<first offset>, with a marker in every
// partition folder, no upload temporaries and an empty spool.
func TestE2EFTPSeedScenario(t *testing.T) {
	t.Parallel()
	needKcat(t)
	servers := []struct {
		name  string
		tls   bool
		start func(testing.TB) *ftpd.Server
	}{
		{"vsftpd", false, func(t testing.TB) *ftpd.Server { return ftpd.StartVsftpd(t, ftpd.Options{}) }},
		{"vsftpd-ftps", true, func(t testing.TB) *ftpd.Server { return ftpd.StartVsftpd(t, ftpd.Options{TLS: true}) }},
		{"pure-ftpd", false, func(t testing.TB) *ftpd.Server { return ftpd.StartPureFtpd(t, ftpd.Options{}) }},
		{"pure-ftpd-ftps", true, func(t testing.TB) *ftpd.Server { return ftpd.StartPureFtpd(t, ftpd.Options{TLS: true}) }},
	}
	for _, sc := range servers {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			srv := sc.start(t)
			logServerOnFailure(t, srv)
			const topic, partitions, from = "test", 3, 101
			const remote = "/test/10MB"
			b := startBroker(t, partitions, topic)
			// Half before the start, half while it runs.
			b.produceWorkload(topic, partitions, workload{perPartition: 600, seed: 11})

			spool := filepath.Join(t.TempDir(), "spool")
			cfg := backupConfig(redpandaInput(b, "kafka-backup-ftp", topic), remote, `    size: 10MB
    roll_duration: 3s
    offset_from:
      test: 101
`+ftpFS(srv, ftpOpts{spool: spool, tls: sc.tls}))
			p := runBackupEnv(t, sc.name, cfg, ftpEnv(srv))
			b.produceWorkload(topic, partitions, workload{perPartition: 600, seed: 12})
			truth := b.groundTruth(topic, partitions)
			requireVariety(t, truth)
			want := fromOffset(truth, from)
			total := sumRecords(want)

			// Every record from 101 on in final files on the server, and
			// the spool emptied, while the process runs: the files rolled
			// for being idle 3s (10MB is far off) and were uploaded.
			// No fault is injected: an upload failure fails the test at
			// once, with its log line.
			noUploadFailure := func() (bool, string) {
				if l := uploadFailed.FindString(p.logs()); l != "" {
					i := strings.Index(p.logs(), l)
					t.Fatalf("an upload failed on a healthy server: %s", strings.SplitN(p.logs()[i:], "\n", 2)[0])
				}
				return true, ""
			}
			dir := srv.Path(remote)
			waitFor(t, fmt.Sprintf("%d records in final files below %s", total, dir), func() (bool, string) {
				noUploadFailure()
				n, files, err := finalRecords(dir)
				if n > total {
					t.Fatalf("%d records in %d final files, more than the %d expected", n, files, total)
				}
				return err == nil && n == total, fmt.Sprintf("%d of %d records in %d final files (%v)", n, total, files, err)
			}, p)
			waitFor(t, "an empty spool", func() (bool, string) {
				noUploadFailure()
				left := spoolLeftovers(spool)
				return len(left) == 0, fmt.Sprintf("left in the spool: %v", left)
			}, p)
			idle := regexp.MustCompile(`finalized ` + topic + `/[0-9]+/[0-9]+.*reason=idle`)
			if n := len(idle.FindAllString(p.logs(), -1)); n < partitions {
				t.Errorf("%d files logged as finalized for idleness, want at least %d", n, partitions)
			}
			if n, files := waitUploadsLogged(t, p, remote, dir); n != files {
				t.Errorf("%d uploads logged for %d final files", n, files)
			}
			// On 127.0.0.1 an upload of a few MB takes milliseconds: one that
			// took fs.ftp.timeout (10s) waited for a deadline.
			var slowest float64
			for _, m := range uploadSeconds.FindAllStringSubmatch(p.logs(), -1) {
				sec, _ := strconv.ParseFloat(m[1], 64)
				slowest = max(slowest, sec)
			}
			t.Logf("%s: the slowest upload took %.3fs", sc.name, slowest)
			if slowest >= 9 {
				t.Errorf("an upload took %.3fs, about the 10s I/O timeout: some FTP call waited for its deadline", slowest)
			}
			if tmp := hiddenFiles(dir); len(tmp) != partitions {
				t.Errorf("hidden files on the server while running: %v, want only the %d markers", tmp, partitions)
			}

			start := time.Now()
			p.stop()
			t.Logf("%s: exited %v after SIGTERM", sc.name, time.Since(start).Round(time.Millisecond))
			if strings.Contains(p.logs(), "level=error") {
				t.Errorf("errors logged")
			}

			bk := verifyFTPBackup(t, dir, verifyOpts{maxSize: 10_000_000, want: map[string]map[int32][]segment.Record{topic: want}})
			if len(bk.files[topic]) != partitions {
				t.Errorf("%d partition folders, want %d", len(bk.files[topic]), partitions)
			}
			nfiles := 0
			for part, files := range bk.files[topic] {
				nfiles += len(files)
				if len(files) == 0 || filepath.Base(files[0].path) != fmt.Sprint(from) {
					t.Errorf("%s/%d: the first file is not named %d", topic, part, from)
				}
				for _, f := range files {
					if f.recs[0].Offset < from {
						t.Errorf("%s: offset %d below %d", f.path, f.recs[0].Offset, from)
					}
				}
			}
			if left := spoolLeftovers(spool); len(left) != 0 {
				t.Errorf("files left in the spool after shutdown: %v", left)
			}
			t.Logf("%s: %d records (of %d produced) in %d files", sc.name, total, sumRecords(truth), nfiles)
		})
	}
}

// TestE2EFTPOutage takes the FTP server down for 30 seconds while records
// keep coming: they pile up in the spool, uploads fail and are retried, and
// once the server is back everything arrives, each record exactly once.
func TestE2EFTPOutage(t *testing.T) {
	t.Parallel()
	needKcat(t)
	const outage = 30 * time.Second
	srv := ftpd.StartVsftpd(t, ftpd.Options{})
	const topic, partitions = "outage", 4
	const remote = "/backups/outage"
	b := startBroker(t, partitions, topic)
	spool := filepath.Join(t.TempDir(), "spool")
	dir := srv.Path(remote)
	cfg := backupConfig(redpandaInput(b, "g1", topic), remote, "    size: 64KiB\n    roll_duration: 1s\n"+ftpFS(srv, ftpOpts{spool: spool}))
	p := runBackupEnv(t, "outage", cfg, ftpEnv(srv))

	// Before: uploads work.
	b.produceWorkload(topic, partitions, workload{perPartition: 300, seed: 21})
	before := b.totalProduced()
	waitFinalRecords(t, dir, before, p)
	waitFor(t, "an empty spool", func() (bool, string) {
		left := spoolLeftovers(spool)
		return len(left) == 0, fmt.Sprintf("left in the spool: %v", left)
	}, p)
	waitUploadsLogged(t, p, remote, dir)

	// The outage: records go on into the spool.
	srv.Stop()
	down := time.Now()
	atStop := len(p.logs())
	inSpool := func(want int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d records in final spool files and failed uploads", want), func() (bool, string) {
			n, files, err := finalRecords(spool)
			fails := len(uploadFailed.FindAllString(p.logs()[atStop:], -1))
			return err == nil && n == want && fails > 0, fmt.Sprintf("%d records in %d spool files (%v), %d failed uploads", n, files, err, fails)
		}, p)
	}
	b.produceWorkload(topic, partitions, workload{perPartition: 300, seed: 22})
	inSpool(b.totalProduced() - before)
	b.produceWorkload(topic, partitions, workload{perPartition: 100, seed: 23})
	inSpool(b.totalProduced() - before)
	if n, _, _ := finalRecords(dir); n != before {
		t.Errorf("%d records on the server during the outage, want the %d from before it", n, before)
	}
	if time.Since(down) > outage {
		t.Fatalf("the outage lasted %v, more than %v, before the records were in the spool", time.Since(down), outage)
	}
	time.Sleep(time.Until(down.Add(outage))) // the outage lasts 30 s of real time
	failedDuring := len(uploadFailed.FindAllString(p.logs()[atStop:], -1))

	// Back up: everything arrives.
	atStart := len(p.logs())
	srv.Start()
	up := time.Now()
	t.Logf("server down for %v, %d failed upload attempts logged", up.Sub(down).Round(time.Millisecond), failedDuring)
	waitFinalRecords(t, dir, b.totalProduced(), p)
	t.Logf("every record uploaded %v after the server came back", time.Since(up).Round(time.Millisecond))
	b.produceWorkload(topic, partitions, workload{perPartition: 50, seed: 24})
	waitFinalRecords(t, dir, b.totalProduced(), p)
	waitFor(t, "an empty spool", func() (bool, string) {
		left := spoolLeftovers(spool)
		return len(left) == 0, fmt.Sprintf("left in the spool: %v", left)
	}, p)
	if n := len(uploadedLine(remote).FindAllString(p.logs()[atStart:], -1)); n == 0 {
		t.Errorf("no upload logged after the server came back")
	}
	if n := len(uploadedLine(remote).FindAllString(p.logs()[atStop:atStart], -1)); n != 0 {
		t.Errorf("%d uploads logged while the server was down", n)
	}
	p.stop()

	truth := b.groundTruth(topic, partitions)
	verifyFTPBackup(t, dir, verifyOpts{maxSize: 64 << 10, want: map[string]map[int32][]segment.Record{topic: truth}})
	if left := spoolLeftovers(spool); len(left) != 0 {
		t.Errorf("files left in the spool after shutdown: %v", left)
	}
}

// TestE2EFTPSpoolResume starts the backup while the server is down: records
// are acknowledged into the spool; SIGTERM must end the process cleanly
// within the shutdown timeout although uploads are pending, and a second run
// with the same spool and consumer group uploads them, each record exactly
// once, together with newer records.
func TestE2EFTPSpoolResume(t *testing.T) {
	t.Parallel()
	needKcat(t)
	const shutdown = 10 * time.Second
	srv := ftpd.StartPureFtpd(t, ftpd.Options{})
	srv.Stop()
	const topic, partitions = "resume", 4
	const remote = "/resume"
	b := startBroker(t, partitions, topic)
	spool := filepath.Join(t.TempDir(), "spool")
	dir := srv.Path(remote)
	config := func(roll string) string {
		return withShutdownTimeout(t, backupConfig(redpandaInput(b, "g1", topic), remote,
			"    size: 64KiB\n    roll_duration: "+roll+"\n"+ftpFS(srv, ftpOpts{spool: spool})), shutdown)
	}

	// Run 1: files roll by size only, so at SIGTERM every partition has an
	// open file, finalized into the spool at shutdown.
	b.produceWorkload(topic, partitions, workload{perPartition: 300, seed: 31})
	p := runBackupEnv(t, "run1", config("1h"), ftpEnv(srv))
	waitCommitted(t, b, "g1", partitions, []string{topic}, p)
	waitFor(t, "every record in spool files and failed uploads", func() (bool, string) {
		n, err := countRecords(spool)
		fails := len(uploadFailed.FindAllString(p.logs(), -1))
		return err == nil && n == b.totalProduced() && fails > 0, fmt.Sprintf("%d records in spool files (%v), %d failed uploads", n, err, fails)
	}, p)
	if ip := inProgressFiles(spool); len(ip) == 0 {
		t.Errorf("no file in progress before SIGTERM")
	}
	start := time.Now()
	p.stop()
	took := time.Since(start)
	t.Logf("run 1 exited %v after SIGTERM with uploads pending (shutdown_timeout %v)", took.Round(time.Millisecond), shutdown)
	if took > shutdown+5*time.Second {
		t.Errorf("run 1 took %v to exit after SIGTERM, shutdown_timeout is %v", took, shutdown)
	}
	if n := strings.Count(p.logs(), "reason=shutdown"); n < partitions {
		t.Errorf("%d files finalized at shutdown, want at least %d", n, partitions)
	}
	if n, files, err := finalRecords(spool); n != b.totalProduced() || err != nil {
		t.Errorf("after run 1, %d records in final spool files, want %d (%v)", n, b.totalProduced(), err)
	} else {
		t.Logf("after run 1: %d records in %d spool files", n, files)
	}
	if ip := inProgressFiles(spool); len(ip) != 0 {
		t.Errorf("in-progress spool files after run 1: %v", ip)
	}
	spooled := map[string][]byte{} // the files run 1 left, by path below the spool
	_ = walkFiles(spool, func(path string, d fs.DirEntry) error {
		if isFinalName(d.Name()) {
			rel, _ := filepath.Rel(spool, path)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			spooled[rel] = data
		}
		return nil
	})
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("%s exists on the server, which was down", dir)
	}

	// Run 2: the server is up, same spool, same group, and newer records.
	srv.Start()
	b.produceWorkload(topic, partitions, workload{perPartition: 100, seed: 32})
	p = runBackupEnv(t, "run2", config("1s"), ftpEnv(srv))
	waitFinalRecords(t, dir, b.totalProduced(), p)
	waitCommitted(t, b, "g1", partitions, []string{topic}, p)
	waitFor(t, "an empty spool", func() (bool, string) {
		left := spoolLeftovers(spool)
		return len(left) == 0, fmt.Sprintf("left in the spool: %v", left)
	}, p)
	if strings.Contains(p.logs(), "level=error") {
		t.Errorf("run 2 logged errors")
	}
	p.stop()

	truth := b.groundTruth(topic, partitions)
	verifyFTPBackup(t, dir, verifyOpts{maxSize: 64 << 10, want: map[string]map[int32][]segment.Record{topic: truth}})
	// The files run 1 left in the spool are on the server as they were.
	for rel, data := range spooled {
		if got, err := os.ReadFile(filepath.Join(dir, rel)); err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: the spool file of run 1 is not on the server as it was (%v)", rel, err)
		}
	}
	t.Logf("run 2 uploaded the %d files run 1 left in the spool", len(spooled))
}

// TestE2EFTPPasswordNeverLogged runs with debug logging through failing
// logins (a wrong password), an unreachable server and successful uploads,
// the password coming from ${FTP_PASSWORD}: neither password ever appears in
// the output, and `kafka-backup echo` shows the password field scrubbed.
func TestE2EFTPPasswordNeverLogged(t *testing.T) {
	t.Parallel()
	needKcat(t)
	const wrong = "Wr0ng-Pa55-7c1e9d-never-logged"
	srv := ftpd.StartPureFtpd(t, ftpd.Options{})
	const topic, partitions = "secret", 2
	const remote = "/secret"
	b := startBroker(t, partitions, topic)
	b.produceWorkload(topic, partitions, workload{perPartition: 100, seed: 41})
	config := func(group, spool string) string {
		return withShutdownTimeout(t, withLogger(t, backupConfig(redpandaInput(b, group, topic), remote,
			"    roll_duration: 1s\n"+ftpFS(srv, ftpOpts{spool: spool})), "DEBUG"), 5*time.Second)
	}
	checkOutput := func(what, out string) {
		t.Helper()
		for _, pw := range []string{wrong, srv.Password} {
			if i := strings.Index(out, pw); i >= 0 {
				t.Errorf("%s: the password %q appears: …%s…", what, pw, out[max(i-200, 0):min(i+len(pw)+50, len(out))])
			}
		}
	}

	// 1: a wrong password: every login is refused.
	cfg1 := config("g-wrong", filepath.Join(t.TempDir(), "spool1"))
	p := runBackupEnv(t, "wrong-password", cfg1, []string{"FTP_PASSWORD=" + wrong})
	waitFor(t, "an error for the refused login", func() (bool, string) {
		return strings.Contains(p.logs(), "fs.ftp.password"), "none logged yet"
	}, p)
	p.stop()
	if !strings.Contains(p.logs(), "530") {
		t.Errorf("run 1: no 530 (login refused) logged")
	}
	checkOutput("run 1 (wrong password) output", p.logs())

	// 2: the right password, the server unreachable at first, then up.
	srv.Stop()
	cfg2 := config("g-right", filepath.Join(t.TempDir(), "spool2"))
	p = runBackupEnv(t, "unreachable", cfg2, ftpEnv(srv))
	waitFor(t, "failed uploads while the server is down", func() (bool, string) {
		return len(uploadFailed.FindAllString(p.logs(), -1)) > 0, "none logged yet"
	}, p)
	srv.Start()
	waitFinalRecords(t, srv.Path(remote), b.totalProduced(), p)
	p.stop()
	if !strings.Contains(p.logs(), "level=debug") {
		t.Errorf("run 2: no debug lines logged: is the logger at DEBUG?")
	}
	if !uploadedLine(remote).MatchString(p.logs()) {
		t.Errorf("run 2: no upload logged")
	}
	checkOutput("run 2 (unreachable, then uploads) output", p.logs())

	// echo, from the environment and written in the config.
	echo := func(name, cfg string, env ...string) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), name+".yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(kbBin, "echo", path)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kafka-backup echo %s: %v\n%s", name, err, out)
		}
		if !strings.Contains(string(out), "password: '!!!SECRET_SCRUBBED!!!'") {
			t.Errorf("echo %s: the password is not shown as !!!SECRET_SCRUBBED!!!:\n%s", name, out)
		}
		return string(out)
	}
	checkOutput("echo with ${FTP_PASSWORD}", echo("env", cfg2, "FTP_PASSWORD="+srv.Password))
	checkOutput("echo with ${FTP_PASSWORD} (wrong)", echo("env-wrong", cfg1, "FTP_PASSWORD="+wrong))
	literal := replaceOnce(t, cfg1, `password: "${FTP_PASSWORD}"`, fmt.Sprintf("password: %q", wrong))
	checkOutput("echo with the password in the config", echo("literal", literal))
}
