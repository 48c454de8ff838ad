package tests

// End-to-end tests of `kafka-backup verify`, `ls` and `cat`: a backup made by
// the built binary (redpanda input, records produced by kcat) is checked,
// listed and printed by the built binary, locally and from an FTP server
// (tests/ftptest); then copies of it are damaged (a flipped byte, a
// truncated file, a renamed file, a leftover in-progress file) and verify
// must name each problem with the file, the byte and the offset.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kafka-backup/kafka-backup/inspect"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tests/ftptest"
)

// inspectResult is what one run of the binary printed, and its exit status.
type inspectResult struct {
	code           int
	stdout, stderr string
}

// inspectRun runs `kafka-backup args…` with env added to the environment.
func inspectRun(t testing.TB, env []string, args ...string) inspectResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, kbBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := inspectResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("kafka-backup %s: %v", strings.Join(args, " "), err)
	}
	out := r.stdout
	if len(out) > 4000 {
		out = out[:4000] + "…\n"
	}
	t.Logf("kafka-backup %s: exit %d in %v\n---- stdout:\n%s---- stderr:\n%s", strings.Join(args, " "), r.code, time.Since(start).Round(time.Millisecond), out, r.stderr)
	return r
}

// copyTree copies the backup below src into a new folder.
func copyTree(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// partitionFiles returns the final files of a partition folder in offset
// order.
func partitionFiles(t testing.TB, root, topic string, p int32) []string {
	t.Helper()
	es, err := os.ReadDir(layout.PartitionDir(root, topic, p))
	if err != nil {
		t.Fatal(err)
	}
	type f struct {
		name string
		off  int64
	}
	var fs []f
	for _, e := range es {
		if off, ok := layout.ParseFileName(e.Name()); ok {
			fs = append(fs, f{e.Name(), off})
		}
	}
	for i := 1; i < len(fs); i++ {
		for j := i; j > 0 && fs[j].off < fs[j-1].off; j-- {
			fs[j], fs[j-1] = fs[j-1], fs[j]
		}
	}
	out := make([]string, len(fs))
	for i := range fs {
		out[i] = fs[i].name
	}
	return out
}

// batchesOf returns the position and base offset of every batch of a file.
func batchesOf(t testing.TB, path string) (pos, base []int64) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rd := segment.NewReader(bytes.NewReader(data))
	for {
		b, err := rd.Next()
		if err == io.EOF {
			return pos, base
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		pos, base = append(pos, b.Position), append(base, b.BaseOffset)
	}
}

// verifyJSON runs verify --json and decodes the report.
func verifyJSON(t testing.TB, env []string, args ...string) (inspectResult, inspect.VerifyReport) {
	t.Helper()
	r := inspectRun(t, env, append([]string{"verify", "--json"}, args...)...)
	var rep inspect.VerifyReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("verify --json: %v", err)
	}
	return r, rep
}

// catRecords runs cat on a file and decodes its JSON lines.
func catRecords(t testing.TB, env []string, args ...string) []segment.Record {
	t.Helper()
	r := inspectRun(t, env, append([]string{"cat"}, args...)...)
	if r.code != 0 {
		t.Fatalf("cat %v: exit %d", args, r.code)
	}
	var out []segment.Record
	for i, line := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		if line == "" {
			continue
		}
		var j inspect.JSONRecord
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&j); err != nil {
			t.Fatalf("cat line %d %q: %v", i, line, err)
		}
		rec, err := j.Record()
		if err != nil {
			t.Fatalf("cat line %d: %v", i, err)
		}
		out = append(out, rec)
	}
	return out
}

// TestE2EInspect backs up 3 partitions of varied records and runs verify, ls
// and cat on the backup, locally and from an FTP copy, checking what they
// say against the ground truth; then verify on damaged copies.
func TestE2EInspect(t *testing.T) {
	t.Parallel()
	const topic, partitions = "insp", 3
	b, truth := variedTopic(t, topic, partitions, 300, 41)
	total := sumRecords(truth)
	dir := restoreBackupLocal(t, b, topic, partitions)
	for p := range int32(partitions) {
		if n := len(partitionFiles(t, dir, topic, p)); n < 3 {
			t.Fatalf("partition %d: %d files; the damage below needs at least 3 (size 32KiB)", p, n)
		}
	}

	t.Run("VerifyClean", func(t *testing.T) {
		r := inspectRun(t, nil, "verify", dir)
		if r.code != 0 {
			t.Fatalf("verify of a clean backup: exit %d", r.code)
		}
		for p := range int32(partitions) {
			s := fmt.Sprintf("%s/%d: OK: ", topic, p)
			if !strings.Contains(r.stdout, s) {
				t.Errorf("verify does not say %q", s)
			}
		}
		if s := fmt.Sprintf("0 errors, 0 warnings: OK."); !strings.Contains(r.stdout, s) {
			t.Errorf("verify does not say %q", s)
		}
		r, rep := verifyJSON(t, nil, dir)
		if r.code != 0 || !rep.OK || rep.Records != int64(total) || len(rep.Partitions) != partitions {
			t.Fatalf("verify --json: exit %d, ok %v, %d records (want %d), %d partitions", r.code, rep.OK, rep.Records, total, len(rep.Partitions))
		}
		for _, p := range rep.Partitions {
			w := truth[p.Partition]
			if p.Records != int64(len(w)) || len(p.Offsets) != 1 || p.Offsets[0].First != w[0].Offset || p.Offsets[0].Last != w[len(w)-1].Offset || len(p.Gaps) != 0 || len(p.Problems) != 0 {
				t.Errorf("%s/%d: %d records, offsets %v, gaps %v, problems %v; want %d records %d-%d", p.Topic, p.Partition, p.Records, p.Offsets, p.Gaps, p.Problems, len(w), w[0].Offset, w[len(w)-1].Offset)
			}
		}
	})

	t.Run("VerifyFlippedByte", func(t *testing.T) {
		c := copyTree(t, dir)
		name := partitionFiles(t, c, topic, 1)[1]
		path := filepath.Join(layout.PartitionDir(c, topic, 1), name)
		pos, base, _ := flipRecordByte(t, path)
		r := inspectRun(t, nil, "verify", c)
		if r.code != 1 {
			t.Fatalf("verify of a flipped byte: exit %d, want 1", r.code)
		}
		want := fmt.Sprintf("ERROR corrupt: %s: byte %d, offset %d: corrupt batch: CRC32C", path, pos, base)
		if !strings.Contains(r.stdout, want) {
			t.Errorf("verify does not say %q", want)
		}
		if !strings.Contains(r.stderr, "verify: 1 errors in") {
			t.Errorf("stderr: %q", r.stderr)
		}
		_, rep := verifyJSON(t, nil, c)
		ps := withoutGapAt(t, rep.Problems(), base) // the offsets of the unreadable rest
		if len(ps) != 1 || ps[0].Kind != inspect.KindCorrupt || ps[0].File != name || ps[0].Partition != 1 || *ps[0].Position != pos || *ps[0].Offset != base {
			t.Errorf("problems %+v", ps)
		}
	})

	t.Run("VerifyTruncated", func(t *testing.T) {
		c := copyTree(t, dir)
		name := partitionFiles(t, c, topic, 2)[0]
		path := filepath.Join(layout.PartitionDir(c, topic, 2), name)
		pos, base := batchesOf(t, path)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, st.Size()-10); err != nil {
			t.Fatal(err)
		}
		last := len(pos) - 1
		r := inspectRun(t, nil, "verify", c)
		if r.code != 1 {
			t.Fatalf("verify of a truncated file: exit %d, want 1", r.code)
		}
		want := fmt.Sprintf("ERROR torn: %s: byte %d, offset %d: the file ends inside the batch", path, pos[last], base[last])
		if !strings.Contains(r.stdout, want) {
			t.Errorf("verify does not say %q", want)
		}
	})

	t.Run("VerifyMisnamed", func(t *testing.T) {
		c := copyTree(t, dir)
		name := partitionFiles(t, c, topic, 0)[1]
		first, _ := layout.ParseFileName(name)
		pdir := layout.PartitionDir(c, topic, 0)
		wrong := strconv.FormatInt(first+1, 10)
		if err := os.Rename(filepath.Join(pdir, name), filepath.Join(pdir, wrong)); err != nil {
			t.Fatal(err)
		}
		r := inspectRun(t, nil, "verify", c)
		if r.code != 1 {
			t.Fatalf("verify of a misnamed file: exit %d, want 1", r.code)
		}
		want := fmt.Sprintf("ERROR misnamed: %s: byte 0, offset %d: named for offset %d, but its first record has offset %d", filepath.Join(pdir, wrong), first, first+1, first)
		if !strings.Contains(r.stdout, want) {
			t.Errorf("verify does not say %q", want)
		}
	})

	t.Run("VerifyLeftover", func(t *testing.T) {
		c := copyTree(t, dir)
		pdir := layout.PartitionDir(c, topic, 2)
		files := partitionFiles(t, c, topic, 2)
		data, err := os.ReadFile(filepath.Join(pdir, files[len(files)-1]))
		if err != nil {
			t.Fatal(err)
		}
		leftover := ".99999.crashed-1a2b3c4d.inprogress"
		if err := os.WriteFile(filepath.Join(pdir, leftover), data[:len(data)-3], 0o644); err != nil {
			t.Fatal(err)
		}
		r := inspectRun(t, nil, "verify", c)
		if r.code != 0 {
			t.Errorf("verify with a leftover: exit %d, want 0 (a warning)", r.code)
		}
		if want := fmt.Sprintf("warning leftover: %s: in-progress file", filepath.Join(pdir, leftover)); !strings.Contains(r.stdout, want) {
			t.Errorf("verify does not say %q", want)
		}
		if r := inspectRun(t, nil, "verify", "--strict", c); r.code != 1 {
			t.Errorf("verify --strict with a leftover: exit %d, want 1", r.code)
		}
		r = inspectRun(t, nil, "ls", "--json", c)
		var rep inspect.ListReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatal(err)
		}
		if l := rep.Partitions[2].Leftovers; len(l) != 1 || l[0].Name != leftover || l[0].Kind != "inprogress" {
			t.Errorf("ls leftovers %+v", l)
		}
	})

	t.Run("Ls", func(t *testing.T) {
		r := inspectRun(t, nil, "ls", "--json", dir)
		if r.code != 0 {
			t.Fatalf("ls: exit %d", r.code)
		}
		var rep inspect.ListReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatal(err)
		}
		checkListing(t, rep, dir, topic, truth)
		r = inspectRun(t, nil, "ls", dir)
		for p := range int32(partitions) {
			w := truth[p]
			s := fmt.Sprintf("%s/%d: %d files, offsets %d-%d, %s records", topic, p, len(partitionFiles(t, dir, topic, p)), w[0].Offset, w[len(w)-1].Offset, fmtCount(len(w)))
			if !strings.Contains(r.stdout, s) {
				t.Errorf("ls does not say %q", s)
			}
		}
		for _, f := range partitionFiles(t, dir, topic, 0) {
			if !strings.Contains(r.stdout, "\n    "+f+" ") {
				t.Errorf("ls does not list file %s", f)
			}
		}
	})

	t.Run("Cat", func(t *testing.T) {
		for p := range int32(partitions) {
			var got []segment.Record
			for _, f := range partitionFiles(t, dir, topic, p) {
				got = append(got, catRecords(t, nil, filepath.Join(layout.PartitionDir(dir, topic, p), f))...)
			}
			compareRecords(t, fmt.Sprintf("cat %s/%d", topic, p), got, truth[p])
		}
		// --from-offset/--to-offset inside one file.
		f := partitionFiles(t, dir, topic, 0)[1]
		first, _ := layout.ParseFileName(f)
		got := catRecords(t, nil, "--from-offset", fmt.Sprint(first+2), "--to-offset", fmt.Sprint(first+4), filepath.Join(layout.PartitionDir(dir, topic, 0), f))
		compareRecords(t, "cat --from-offset --to-offset", got, truth[0][first+2:first+5])
	})

	t.Run("VerifyLsCatFTP", func(t *testing.T) {
		srv := ftptest.Start(t)
		const remote = "/backups/inspect"
		if err := os.CopyFS(srv.LocalPath(remote), os.DirFS(dir)); err != nil {
			t.Fatal(err)
		}
		loc := fmt.Sprintf("ftp://%s@%s%s", srv.User, srv.Addr, remote)
		env := []string{"KAFKA_BACKUP_FTP_PASSWORD=" + srv.Password}
		r, rep := verifyJSON(t, env, loc)
		if r.code != 0 || !rep.OK || rep.Records != int64(total) || rep.Warnings != 0 {
			t.Fatalf("verify over FTP: exit %d, ok %v, %d records, want %d", r.code, rep.OK, rep.Records, total)
		}
		r = inspectRun(t, env, "ls", "--json", loc)
		var lrep inspect.ListReport
		if err := json.Unmarshal([]byte(r.stdout), &lrep); err != nil {
			t.Fatal(err)
		}
		checkListing(t, lrep, dir, topic, truth)
		f := partitionFiles(t, dir, topic, 2)[0]
		got := catRecords(t, []string{"KAFKA_BACKUP_FTP_PASSWORD=" + srv.Password}, fmt.Sprintf("%s/%s/2/%s", loc, topic, f))
		n := len(got)
		compareRecords(t, "cat over FTP", got, truth[2][:n])
		if n == 0 {
			t.Error("cat over FTP printed nothing")
		}
		// A damaged file on the server.
		name := partitionFiles(t, dir, topic, 0)[0]
		onServer := filepath.Join(layout.PartitionDir(srv.LocalPath(remote), topic, 0), name)
		st, _ := os.Stat(onServer)
		if err := os.Truncate(onServer, st.Size()-1); err != nil {
			t.Fatal(err)
		}
		r = inspectRun(t, env, "verify", loc)
		if want := fmt.Sprintf("ERROR torn: %s/%s/0/%s: byte ", loc, topic, name); r.code != 1 || !strings.Contains(r.stdout, want) {
			t.Errorf("verify over FTP of a torn file: exit %d, does it say %q?", r.code, want)
		}
		if strings.Contains(r.stdout+r.stderr, srv.Password) {
			t.Error("the FTP password is shown")
		}
	})

	t.Run("Usage", func(t *testing.T) {
		for _, args := range [][]string{{"verify"}, {"ls", dir, "--json"}, {"cat", dir}, {"verify", filepath.Join(dir, "missing")}} {
			if r := inspectRun(t, nil, args...); r.code != 2 || r.stderr == "" {
				t.Errorf("%v: exit %d (want 2), stderr %q", args, r.code, r.stderr)
			}
		}
		for _, cmd := range []string{"verify", "ls", "cat"} {
			r := inspectRun(t, nil, cmd, "--help")
			for _, s := range []string{"--json", "--password", "--ftp-ca-file", "Exit status", "Examples"} {
				if cmd == "cat" && s == "--json" {
					s = "--from-offset"
				}
				if !strings.Contains(r.stdout, s) {
					t.Errorf("%s --help does not explain %s", cmd, s)
				}
			}
		}
	})
}

// checkListing checks an ls --json report of the backup below dir against
// the files on disk and the ground truth.
func checkListing(t testing.TB, rep inspect.ListReport, dir, topic string, truth map[int32][]segment.Record) {
	t.Helper()
	if len(rep.Partitions) != len(truth) || rep.Errors != 0 || rep.Records != int64(sumRecords(truth)) {
		t.Fatalf("ls: %d partitions, %d errors, %d records", len(rep.Partitions), rep.Errors, rep.Records)
	}
	for _, p := range rep.Partitions {
		w := truth[p.Partition]
		files := partitionFiles(t, dir, topic, p.Partition)
		var lo, hi int64 = 1 << 62, -1 << 62
		for _, r := range w {
			lo, hi = min(lo, r.Timestamp), max(hi, r.Timestamp)
		}
		if p.Topic != topic || p.Records != int64(len(w)) || len(p.Files) != len(files) || *p.FirstOffset != w[0].Offset || *p.LastOffset != w[len(w)-1].Offset ||
			*p.MinTimestamp < lo || *p.MaxTimestamp != hi {
			t.Errorf("ls %s/%d: %d records in %d files, offsets %d-%d, times %d-%d; want %d records in %d files, offsets %d-%d, times %d-%d",
				p.Topic, p.Partition, p.Records, len(p.Files), *p.FirstOffset, *p.LastOffset, *p.MinTimestamp, *p.MaxTimestamp,
				len(w), len(files), w[0].Offset, w[len(w)-1].Offset, lo, hi)
		}
		var sum int64
		for i, f := range p.Files {
			st, err := os.Stat(filepath.Join(layout.PartitionDir(dir, topic, p.Partition), files[i]))
			if err != nil {
				t.Fatal(err)
			}
			if f.Name != files[i] || f.Size != st.Size() || f.Error != "" {
				t.Errorf("ls %s/%d file %d: %+v, want %s of %d bytes", topic, p.Partition, i, f, files[i], st.Size())
			}
			sum += f.Records
		}
		if sum != p.Records {
			t.Errorf("ls %s/%d: files hold %d records, the partition says %d", topic, p.Partition, sum, p.Records)
		}
	}
}

// fmtCount formats n as ls does: 1,234.
func fmtCount(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
