package tests

// Harness additions for the FTP end-to-end tests (e2e_ftp_test.go): configs
// with an fs.ftp block pointing at a real test server (tests/ftpd), running
// the binary with the password in its environment, and reading what arrived
// on the server through Server.Path.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tests/ftpd"
)

// ftpMarker is the per-folder range marker the FTP destination keeps on the
// server (destination/layout.MarkerName).
const ftpMarker = ".kafka-backup.ranges"

// ftpOpts says how ftpConfig points the output at a server.
type ftpOpts struct {
	spool    string // local spool folder
	tls      bool   // tls.enabled with root_cas_file = the server's CA
	password string // the fs.ftp.password value; "${FTP_PASSWORD}" when empty
	extraFTP string // more fs.ftp fields, indented by eight spaces
}

// ftpFS is the fs block (indented by four spaces) of a kafka_backup output
// uploading to srv.
func ftpFS(srv *ftpd.Server, o ftpOpts) string {
	pw := o.password
	if pw == "" {
		pw = "${FTP_PASSWORD}"
	}
	s := fmt.Sprintf(`    fs:
      schema: ftp
      ftp:
        hostname: %q
        port: %d
        user: %q
        password: %q
        spool: %q
        connect_timeout: 5s
        timeout: 10s
`, srv.Host, srv.Port, srv.User, pw, o.spool)
	if o.tls {
		s += fmt.Sprintf(`        server_name: %q
        tls:
          enabled: true
          root_cas_file: %q
`, srv.ServerName, srv.CAFile)
	}
	return s + o.extraFTP
}

// logServerOnFailure logs the end of the server's logs when the test fails.
func logServerOnFailure(t testing.TB, srv *ftpd.Server) {
	t.Cleanup(func() {
		if t.Failed() {
			l := srv.Log()
			if len(l) > 30000 {
				l = "…" + l[len(l)-30000:]
			}
			t.Logf("---- %s log:\n%s", srv.Name, l)
		}
	})
}

// ftpEnv is the environment that gives the config's ${FTP_PASSWORD} the
// test server's password.
func ftpEnv(srv *ftpd.Server) []string {
	return []string{"FTP_PASSWORD=" + srv.Password}
}

// runBackupEnv is runBackup with env added to the process's environment.
func runBackupEnv(t testing.TB, name, config string, env []string) *proc {
	t.Helper()
	return runBinaryEnv(t, kbBin, name, config, env)
}

// isFinalName reports whether name is a final file's name: a first offset.
func isFinalName(name string) bool {
	n, err := strconv.ParseInt(name, 10, 64)
	return err == nil && n >= 0 && strconv.FormatInt(n, 10) == name
}

// walkFiles calls fn for every regular file below dir; a missing dir, or
// files vanishing while it walks (renamed by the writer), are not errors.
func walkFiles(dir string, fn func(path string, d fs.DirEntry) error) error {
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || d.IsDir() {
			return err
		}
		return fn(path, d)
	})
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	return err
}

// finalRecords counts the records in the final files below dir (files named
// by a first offset), from their batch headers; in-progress, temporary and
// marker files are not counted. It also returns how many final files there
// are.
func finalRecords(dir string) (records, files int, err error) {
	return headerRecords(dir, isFinalName)
}

// headerRecords counts the records, from batch headers (a batch being
// written is not counted), and the files below dir whose name keep accepts.
// Files vanishing while it walks (renamed by the writer) are skipped.
func headerRecords(dir string, keep func(name string) bool) (records, files int, err error) {
	err = walkFiles(dir, func(path string, d fs.DirEntry) error {
		if !keep(d.Name()) {
			return nil
		}
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		span, _ := segment.ReadSpan(f, st.Size())
		records += int(span.Records)
		files++
		return nil
	})
	return records, files, err
}

// waitFinalRecords waits until the final files below dir hold exactly want
// records (more than want fails at once: a record was written twice).
func waitFinalRecords(t testing.TB, dir string, want int, procs ...*proc) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d records in final files below %s", want, dir), func() (bool, string) {
		n, files, err := finalRecords(dir)
		if err != nil {
			return false, err.Error()
		}
		if n > want {
			t.Fatalf("%d records in %d final files below %s, more than the %d expected", n, files, dir, want)
		}
		return n == want, fmt.Sprintf("%d of %d records in %d final files", n, want, files)
	}, procs...)
}

// hiddenFiles returns the files below dir whose names start with a dot,
// relative to dir.
func hiddenFiles(dir string) []string {
	var out []string
	_ = walkFiles(dir, func(path string, d fs.DirEntry) error {
		if strings.HasPrefix(d.Name(), ".") {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// spoolLeftovers returns the files in the spool that are still to be
// uploaded: final files and in-progress files (anything but the upload
// journal, .uploaded.ranges).
func spoolLeftovers(spool string) []string {
	var out []string
	_ = walkFiles(spool, func(path string, d fs.DirEntry) error {
		if d.Name() != ".uploaded.ranges" {
			rel, _ := filepath.Rel(spool, path)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// fromOffset keeps the records of truth at or above offset from.
func fromOffset(truth map[int32][]segment.Record, from int64) map[int32][]segment.Record {
	out := map[int32][]segment.Record{}
	for p, recs := range truth {
		for _, r := range recs {
			if r.Offset >= from {
				out[p] = append(out[p], r)
			}
		}
	}
	return out
}

// verifyFTPBackup checks the tree an FTP backup left below the server's
// local folder dir (the output's path) after a clean shutdown: every
// partition folder holds exactly one hidden file, the marker, whose lines
// list each final file with the offsets it holds; nothing else is hidden
// (no .upload temporaries, no marker temporaries). The tree without the
// markers must then pass verifyBackup (layout, names, kmsg decoding, each
// offset exactly once, records equal to want).
func verifyFTPBackup(t testing.TB, dir string, o verifyOpts) backup {
	t.Helper()
	hidden := hiddenFiles(dir)
	markers := map[string]bool{}
	for _, h := range hidden {
		if filepath.Base(h) == ftpMarker && strings.Count(h, string(filepath.Separator)) == 2 {
			markers[filepath.Dir(h)] = true
			continue
		}
		t.Errorf("%s: a hidden file left on the server (an upload or marker temporary?)", filepath.Join(dir, h))
	}

	// A copy without the markers, for verifyBackup.
	cp := filepath.Join(t.TempDir(), "server-copy")
	err := walkFiles(dir, func(path string, d fs.DirEntry) error {
		rel, _ := filepath.Rel(dir, path)
		if d.Name() == ftpMarker {
			return nil
		}
		if err := os.MkdirAll(filepath.Join(cp, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return copyFile(path, filepath.Join(cp, rel))
	})
	if err != nil {
		t.Fatalf("copying %s: %v", dir, err)
	}
	bk := verifyBackup(t, cp, o)

	// Every partition folder with files has a marker listing exactly its
	// files, each with the offsets it holds.
	for topic, parts := range bk.files {
		for p, files := range parts {
			rel := filepath.Join(topic, strconv.Itoa(int(p)))
			if len(files) == 0 {
				continue
			}
			if !markers[rel] {
				t.Errorf("%s: no %s marker", filepath.Join(dir, rel), ftpMarker)
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, rel, ftpMarker))
			if err != nil {
				t.Errorf("reading the marker: %v", err)
				continue
			}
			got := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				name, ranges, ok := strings.Cut(line, " ")
				if !ok {
					t.Errorf("%s marker: malformed line %q", rel, line)
					continue
				}
				if _, dup := got[name]; dup {
					t.Errorf("%s marker: %s listed twice", rel, name)
				}
				got[name] = ranges
			}
			for _, f := range files {
				name := filepath.Base(f.path)
				if want := offsetRanges(f.recs); got[name] != want {
					t.Errorf("%s marker: %s listed as %q, the file holds %q", rel, name, got[name], want)
				}
				delete(got, name)
			}
			for name := range got {
				t.Errorf("%s marker lists %s, which is not on the server", rel, name)
			}
		}
	}
	return bk
}

// offsetRanges formats the offsets of recs as the marker does:
// "first-last[,first-last…]", contiguous offsets merged.
func offsetRanges(recs []segment.Record) string {
	offs := make([]int64, len(recs))
	for i, r := range recs {
		offs[i] = r.Offset
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	var parts []string
	for i := 0; i < len(offs); {
		j := i
		for j+1 < len(offs) && offs[j+1] == offs[j]+1 {
			j++
		}
		parts = append(parts, fmt.Sprintf("%d-%d", offs[i], offs[j]))
		i = j + 1
	}
	return strings.Join(parts, ",")
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// withLogger and withShutdownTimeout change backupConfig's logger level and
// shutdown_timeout.
func withLogger(t testing.TB, cfg, level string) string {
	t.Helper()
	return replaceOnce(t, cfg, "  level: INFO\n", "  level: "+level+"\n")
}

func withShutdownTimeout(t testing.TB, cfg string, d time.Duration) string {
	t.Helper()
	return replaceOnce(t, cfg, "shutdown_timeout: 30s\n", fmt.Sprintf("shutdown_timeout: %s\n", d))
}

func replaceOnce(t testing.TB, s, old, new string) string {
	t.Helper()
	if strings.Count(s, old) != 1 {
		t.Fatalf("the config does not hold %q exactly once:\n%s", old, s)
	}
	return strings.Replace(s, old, new, 1)
}

// uploadFailed matches the log line of a failed upload attempt.
var uploadFailed = regexp.MustCompile(`level=error msg="uploading \S+ failed, retrying with backoff`)

// uploadSeconds matches the duration of an upload in its log line.
var uploadSeconds = regexp.MustCompile(`msg="uploaded \S+".* seconds=([0-9.]+)`)

// uploadedLine matches the log line of a finished upload below remote.
func uploadedLine(remote string) *regexp.Regexp {
	return regexp.MustCompile(`msg="uploaded ` + regexp.QuoteMeta(remote) + `/`)
}

// waitUploadsLogged waits until p logged as many uploads below remote as
// there are final files below dir, the server's local folder of remote (the
// log line comes after the spool copy is deleted), and returns both counts.
func waitUploadsLogged(t testing.TB, p *proc, remote, dir string) (uploads, files int) {
	t.Helper()
	waitFor(t, "an upload logged for every file", func() (bool, string) {
		_, files, _ = finalRecords(dir)
		uploads = len(uploadedLine(remote).FindAllString(p.logs(), -1))
		return uploads >= files, fmt.Sprintf("%d uploads logged, %d final files", uploads, files)
	}, p)
	return uploads, files
}

// realFTPServer is a kind of real server tests/ftpd runs: its name, whether
// it requires explicit FTPS, and how to start one (it skips the test when
// the servers are not installed or the tests do not run as root).
type realFTPServer struct {
	name  string
	tls   bool
	start func(testing.TB) *ftpd.Server
}

// realFTPServers lists every kind: vsftpd and pure-ftpd, plain and FTPS.
func realFTPServers() []realFTPServer {
	return []realFTPServer{
		{"vsftpd", false, func(t testing.TB) *ftpd.Server { return ftpd.StartVsftpd(t, ftpd.Options{}) }},
		{"vsftpd-ftps", true, func(t testing.TB) *ftpd.Server { return ftpd.StartVsftpd(t, ftpd.Options{TLS: true}) }},
		{"pure-ftpd", false, func(t testing.TB) *ftpd.Server { return ftpd.StartPureFtpd(t, ftpd.Options{}) }},
		{"pure-ftpd-ftps", true, func(t testing.TB) *ftpd.Server { return ftpd.StartPureFtpd(t, ftpd.Options{TLS: true}) }},
	}
}
