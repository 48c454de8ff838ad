package tests

// End-to-end test of the FTP reader side of the binary against the real
// servers of tests/ftpd: a backup written by the built binary to vsftpd or
// pure-ftpd (plain or FTPS) is verified, listed, printed and restored by the
// built binary from its ftp:// or ftps:// URL, and checked against what kcat
// produced. TestE2EInspect and TestE2ERestoreRoundTrip do the same against
// the embedded server (tests/ftptest).

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kafka-backup/kafka-backup/inspect"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/segment"
)

// TestE2EFTPReadRealServers backs up 3 partitions of varied records (keys,
// null and empty keys, tombstones, duplicate header names, null header
// values, compressed batches) to each real server kind through the binary,
// then, from the server's URL:
//   - verify counts every record and exits 0; with one byte of a final file
//     flipped on the server's disk it exits 1 naming the file, the byte and
//     the offset; a hidden in-progress file on the server is a warning (the
//     server must list dot files);
//   - ls lists every partition and file as they are on the server's disk;
//   - cat prints a partition's records, null keys and null header values as
//     JSON null;
//   - restore produces every record into a new topic, equal field by field.
//
// The password reaches the binary in each of the three documented ways:
// $KAFKA_BACKUP_FTP_PASSWORD, --password and the URL; it is never printed.
func TestE2EFTPReadRealServers(t *testing.T) {
	t.Parallel()
	const topic, partitions = "rd", 3
	b, truth := variedTopic(t, topic, partitions, 300, 51)
	total := sumRecords(truth)
	auth := map[string]string{"vsftpd": "env", "vsftpd-ftps": "flag", "pure-ftpd": "url", "pure-ftpd-ftps": "env"}
	for _, sc := range realFTPServers() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			srv := sc.start(t)
			logServerOnFailure(t, srv)
			remote := "/backups/" + sc.name
			dir := srv.Path(remote)

			// 1: the backup, through the binary.
			group := "read-" + sc.name
			cfg := backupConfig(redpandaInput(b, group, topic), remote, "    size: 32KiB\n    roll_duration: 1s\n"+
				ftpFS(srv, ftpOpts{spool: filepath.Join(t.TempDir(), "spool"), tls: sc.tls}))
			p := runBackupEnv(t, "backup-"+sc.name, cfg, ftpEnv(srv))
			waitFinalRecords(t, dir, total, p)
			waitUploadsLogged(t, p, remote, dir)
			p.stop()
			for part := range int32(partitions) {
				if n := len(partitionFiles(t, dir, topic, part)); n < 2 {
					t.Fatalf("partition %d: %d files on the server; want at least 2 (size 32KiB)", part, n)
				}
			}

			// The location, and how the password gets to the binary.
			u := url.URL{Scheme: "ftp", User: url.User(srv.User), Host: srv.Addr, Path: remote}
			var env, opts []string
			switch auth[sc.name] {
			case "env":
				env = []string{"KAFKA_BACKUP_FTP_PASSWORD=" + srv.Password}
			case "flag":
				opts = append(opts, "--password", srv.Password)
			case "url":
				u.User = url.UserPassword(srv.User, srv.Password)
			default:
				t.Fatalf("no password mode for %s", sc.name)
			}
			if sc.tls {
				u.Scheme = "ftps"
				opts = append(opts, "--ftp-ca-file", srv.CAFile)
			}
			loc, shown := u.String(), u.Redacted()
			args := func(a ...string) []string { return append(append(a, opts...), loc) }
			var outputs []string
			run := func(a ...string) inspectResult {
				t.Helper()
				r := inspectRun(t, env, a...)
				outputs = append(outputs, r.stdout, r.stderr)
				return r
			}

			// 2: verify, clean.
			r := run(args("verify")...)
			if r.code != 0 {
				t.Fatalf("verify of a clean backup on %s: exit %d", sc.name, r.code)
			}
			for _, s := range []string{
				fmt.Sprintf("Verify of %s:", shown),
				fmt.Sprintf("%d partitions, %d files, %s records", partitions, sumFiles(t, dir, topic, partitions), fmtCount(total)),
				"0 errors, 0 warnings: OK.",
			} {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("verify does not say %q", s)
				}
			}
			for part := range int32(partitions) {
				w := truth[part]
				if s := fmt.Sprintf("%s/%d: OK: %d files, %s records, offsets %d-%d,", topic, part, len(partitionFiles(t, dir, topic, part)), fmtCount(len(w)), w[0].Offset, w[len(w)-1].Offset); !strings.Contains(r.stdout, s) {
					t.Errorf("verify does not say %q", s)
				}
			}
			r, rep := verifyJSON(t, env, args()...)
			outputs = append(outputs, r.stdout, r.stderr)
			if r.code != 0 || !rep.OK || rep.Records != int64(total) || rep.Errors != 0 || rep.Warnings != 0 || len(rep.Partitions) != partitions {
				t.Errorf("verify --json: exit %d, ok %v, %d records (want %d), %d errors, %d warnings, %d partitions",
					r.code, rep.OK, rep.Records, total, rep.Errors, rep.Warnings, len(rep.Partitions))
			}

			// verify, with one byte flipped in a final file on the server.
			name := partitionFiles(t, dir, topic, 1)[1]
			path := filepath.Join(layout.PartitionDir(dir, topic, 1), name)
			pos, base, orig := flipRecordByte(t, path)
			r = run(args("verify")...)
			if want := fmt.Sprintf("ERROR corrupt: %s/%s/1/%s: byte %d, offset %d: corrupt batch: CRC32C", shown, topic, name, pos, base); r.code != 1 || !strings.Contains(r.stdout, want) {
				t.Errorf("verify of a flipped byte on %s: exit %d (want 1); does it say %q?", sc.name, r.code, want)
			}
			r, rep = verifyJSON(t, env, args()...)
			outputs = append(outputs, r.stdout, r.stderr)
			if ps := withoutGapAt(t, rep.Problems(), base); r.code != 1 || rep.OK || len(ps) != 1 || ps[0].Kind != inspect.KindCorrupt || ps[0].File != name || ps[0].Partition != 1 ||
				ps[0].Position == nil || *ps[0].Position != pos || ps[0].Offset == nil || *ps[0].Offset != base {
				t.Errorf("verify --json of a flipped byte: exit %d, ok %v, problems %+v; want one corrupt batch in %s at byte %d, offset %d", r.code, rep.OK, ps, name, pos, base)
			}
			if err := os.WriteFile(path, orig, 0o644); err != nil {
				t.Fatal(err)
			}

			// verify, with a hidden in-progress file on the server: the
			// reader lists dot files (LIST -a), the marker is not one.
			leftover := ".99999.crashed-1a2b3c4d.inprogress"
			srv.WriteFile(t, fmt.Sprintf("%s/%s/2/%s", remote, topic, leftover), orig[:len(orig)/2])
			r = run(args("verify")...)
			if want := fmt.Sprintf("warning leftover: %s/%s/2/%s: in-progress file", shown, topic, leftover); r.code != 0 || !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "0 errors, 1 warning: OK.") {
				t.Errorf("verify with a leftover on %s: exit %d (want 0); does it say %q and 1 warning?", sc.name, r.code, want)
			}
			if err := os.Remove(filepath.Join(layout.PartitionDir(dir, topic, 2), leftover)); err != nil {
				t.Fatal(err)
			}

			// 3: ls.
			r = run(args("ls", "--json")...)
			var lrep inspect.ListReport
			if err := json.Unmarshal([]byte(r.stdout), &lrep); err != nil {
				t.Fatalf("ls --json (exit %d): %v", r.code, err)
			}
			if r.code != 0 {
				t.Errorf("ls: exit %d", r.code)
			}
			checkListing(t, lrep, dir, topic, truth)
			for _, pi := range lrep.Partitions {
				if len(pi.Leftovers) != 0 || len(pi.Stray) != 0 {
					t.Errorf("ls %s/%d: leftovers %+v, stray %v; want none (the marker is neither)", pi.Topic, pi.Partition, pi.Leftovers, pi.Stray)
				}
			}
			r = run(args("ls")...)
			for part := range int32(partitions) {
				files := partitionFiles(t, dir, topic, part)
				w := truth[part]
				if s := fmt.Sprintf("%s/%d: %d files, offsets %d-%d, %s records", topic, part, len(files), w[0].Offset, w[len(w)-1].Offset, fmtCount(len(w))); !strings.Contains(r.stdout, s) {
					t.Errorf("ls does not say %q", s)
				}
				for _, f := range files {
					if !strings.Contains(r.stdout, "\n    "+f+" ") {
						t.Errorf("ls does not list file %s/%d/%s", topic, part, f)
					}
				}
			}

			// cat: every file of partition 0, in order, is the partition.
			fileURL := func(part int32, f string) string { return fmt.Sprintf("%s/%s/%d/%s", loc, topic, part, f) }
			var got []segment.Record
			for _, f := range partitionFiles(t, dir, topic, 0) {
				got = append(got, catRecords(t, env, append(append([]string(nil), opts...), fileURL(0, f))...)...)
			}
			compareRecords(t, fmt.Sprintf("cat %s/0 from %s", topic, sc.name), got, truth[0])
			// A null key and a null header value print as JSON null.
			nullKey, nullHeader := firstRecord(truth[0], func(r segment.Record) bool { return r.Key == nil }),
				firstRecord(truth[0], func(r segment.Record) bool {
					return slices.ContainsFunc(r.Headers, func(h segment.Header) bool { return h.Value == nil })
				})
			if nullKey == nil || nullHeader == nil {
				t.Fatalf("partition 0 has no record with a null key or no record with a null header value")
			}
			for _, rec := range []*segment.Record{nullKey, nullHeader} {
				f := fileHolding(t, dir, topic, 0, rec.Offset)
				off := fmt.Sprint(rec.Offset)
				r := run(append(append([]string{"cat", "--from-offset", off, "--to-offset", off}, opts...), fileURL(0, f))...)
				line := strings.TrimSuffix(r.stdout, "\n")
				var j struct {
					Offset  int64           `json:"offset"`
					Key     json.RawMessage `json:"key"`
					Headers []struct {
						Key   string          `json:"key"`
						Value json.RawMessage `json:"value"`
					} `json:"headers"`
				}
				if err := json.Unmarshal([]byte(line), &j); r.code != 0 || strings.Contains(line, "\n") || err != nil {
					t.Errorf("cat of offset %s in %s: exit %d, %v, output %q; want one JSON line", off, f, r.code, err, line)
					continue
				}
				if j.Offset != rec.Offset || len(j.Headers) != len(rec.Headers) {
					t.Errorf("cat of offset %s: offset %d, %d headers; want %d headers", off, j.Offset, len(j.Headers), len(rec.Headers))
					continue
				}
				if (rec.Key == nil) != (string(j.Key) == "null") {
					t.Errorf("cat of offset %s: key %s, the record's key is %s", off, j.Key, showBytes(rec.Key))
				}
				for i, h := range rec.Headers {
					if (h.Value == nil) != (string(j.Headers[i].Value) == "null") || j.Headers[i].Key != h.Key {
						t.Errorf("cat of offset %s: header %d is %s=%s, want %s=%s", off, i, j.Headers[i].Key, j.Headers[i].Value, h.Key, showBytes(h.Value))
					}
				}
			}

			// 4: restore into a new topic, compared record by record.
			dst := "dst-" + sc.name
			rr := restoreRun(t, env, append(append([]string{"--brokers", b.addr, "--rename", topic + "=" + dst, "--create-topics", "--progress", "log"}, opts...), loc)...)
			outputs = append(outputs, rr.stdout, rr.stderr)
			if rr.err != nil {
				t.Fatalf("restore from %s: %v", sc.name, rr.err)
			}
			restoreCompare(t, dst, restoreRead(t, b, dst, partitions), truth)
			for _, s := range []string{fmt.Sprintf("Total: %s records", fmtCount(total)), "0 gaps", "0 duplicates skipped", "created " + dst + "."} {
				if !strings.Contains(rr.stdout, s) {
					t.Errorf("the restore summary does not say %q", s)
				}
			}
			if strings.Contains(rr.stdout, "warning") {
				t.Errorf("warnings in a restore of a clean backup on %s", sc.name)
			}

			for _, out := range outputs {
				if i := strings.Index(out, srv.Password); i >= 0 {
					t.Errorf("the FTP password is shown: …%s…", out[max(i-100, 0):min(i+50, len(out))])
				}
			}
		})
	}
}

// sumFiles counts the final files of partitions 0 to n-1 of topic below dir.
func sumFiles(t testing.TB, dir, topic string, n int32) int {
	t.Helper()
	files := 0
	for p := range n {
		files += len(partitionFiles(t, dir, topic, p))
	}
	return files
}

// fileHolding returns the name of the final file of a partition below dir
// that holds offset off: the last one whose first offset is at most off.
func fileHolding(t testing.TB, dir, topic string, p int32, off int64) string {
	t.Helper()
	holder := ""
	for _, f := range partitionFiles(t, dir, topic, p) {
		if first, _ := layout.ParseFileName(f); first <= off {
			holder = f
		}
	}
	if holder == "" {
		t.Fatalf("no file of %s/%d holds offset %d", topic, p, off)
	}
	return holder
}

// firstRecord returns the first record of recs that ok accepts, or nil.
func firstRecord(recs []segment.Record, ok func(segment.Record) bool) *segment.Record {
	if i := slices.IndexFunc(recs, ok); i >= 0 {
		return &recs[i]
	}
	return nil
}
