package tests

// Fault tests of `kafka-backup restore`, through the built binary, the way an
// operator meets them: a restore interrupted or stalled and resumed as its
// summary says, records near the target's max.message.bytes or above
// --max-batch-bytes, a backup with nothing final in it. The backups are
// written as files directly (backuptest), the target is a kfake cluster of
// the test's own.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-backup/kafka-backup/internal/backuptest"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/segment"
)

// faultRecords returns records first to last of a partition, each with a
// value naming its partition and offset, padded to size bytes.
func faultRecords(p int32, first, last int64, size int) []segment.Record {
	var out []segment.Record
	for off := first; off <= last; off++ {
		v := fmt.Appendf(nil, "p%d-o%d-", p, off)
		if len(v) < size {
			v = append(v, bytes.Repeat([]byte("x"), size-len(v))...)
		}
		out = append(out, segment.Record{Offset: off, Timestamp: 1714564800000 + off, Key: fmt.Appendf(nil, "k%d", off), Value: v})
	}
	return out
}

// faultWrite writes rs as final files of topic/p below root, per records a
// file, named by their first offsets.
func faultWrite(t testing.TB, root, topic string, p int32, rs []segment.Record, per int) {
	t.Helper()
	for i := 0; i < len(rs); i += per {
		chunk := rs[i:min(len(rs), i+per)]
		backuptest.WriteSegment(t, root, topic, p, layout.NamePlain.FileName(chunk[0].Offset), chunk, 100, segment.None)
	}
}

// faultCluster starts a one-broker kfake cluster with topics of n
// partitions; configs, when given, are set on every topic it creates later
// with faultCreateTopic.
func faultCluster(t testing.TB, n int32, topics ...string) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(n, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// faultCreateTopic creates topic with n partitions and the given topic
// configs on the cluster.
func faultCreateTopic(t testing.TB, c *kfake.Cluster, topic string, n int32, configs map[string]string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, n, 1
	for k, v := range configs {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
	}
	if err != nil {
		t.Fatalf("creating %s: %v", topic, err)
	}
}

// stallingProduce makes the cluster answer the first `pass` produce requests,
// then hang (every request) until release is called. Held requests are then
// dropped unanswered, never written, and so is every later
// request of the producers that sent them (as a broker that stalled and
// lost what it was sent): only what the target acknowledged is in it.
// Producers that start later (the advised restores) are served. It returns
// how many requests were held, and release.
func stallingProduce(t testing.TB, c *kfake.Cluster, pass int64) (held func() int64, release func()) {
	var n, holding atomic.Int64
	var mu sync.Mutex
	stalled := map[int64]bool{} // producer IDs
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	c.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		var pids []int64
		if req, ok := kr.(*kmsg.ProduceRequest); ok {
			for _, tp := range req.Topics {
				for _, p := range tp.Partitions {
					if len(p.Records) >= 51 {
						pids = append(pids, int64(binary.BigEndian.Uint64(p.Records[43:51])))
					}
				}
			}
		}
		mu.Lock()
		hold := false
		for _, pid := range pids {
			hold = hold || stalled[pid]
		}
		select {
		case <-gate:
		default:
			hold = hold || n.Add(1) > pass
		}
		if hold {
			for _, pid := range pids {
				stalled[pid] = true
			}
		}
		mu.Unlock()
		if !hold {
			return nil, nil, false
		}
		// The whole broker stalls (control functions run one at a time),
		// as one that hangs: metadata requests too.
		holding.Add(1)
		<-gate
		// Dropped without an answer: (nil, nil, true). An error would
		// close the connection, and kfake would then block answering the
		// requests queued behind on it.
		return nil, nil, true
	})
	t.Cleanup(release) // before c.Close, which runs later
	return holding.Load, release
}

// adviceRe matches the advice a failed partition gets.
var adviceRe = regexp.MustCompile(`restore it again with --topic (\S+) --partition (\d+)(?: --from-offset (\d+))?`)

// twiceRe matches how many acknowledged records the advice restores twice.
var twiceRe = regexp.MustCompile(`(\d[\d,]*) records? acknowledged above it will be restored twice`)

// resumeArgs returns the arguments the summary says to restore each failed
// partition with, and how many records they restore a second time. It
// fails the test when a FAILED partition has no advice.
func resumeArgs(t testing.TB, summary string) (runs [][]string, twice int64) {
	t.Helper()
	failed := 0
	if m := regexp.MustCompile(`; (\d+) partitions FAILED`).FindStringSubmatch(summary); m != nil {
		failed, _ = strconv.Atoi(m[1])
	}
	// The summary's lines of each partition: "  topic/p…" then indented
	// notes, an ERROR and its advice, possibly over several lines.
	seen := map[string]bool{}
	head := regexp.MustCompile(`^  (\S+)/(\d+)[: ]`)
	var blocks []string
	for _, line := range strings.Split(summary, "\n") {
		switch {
		case head.MatchString(line):
			blocks = append(blocks, line)
		case strings.HasPrefix(line, "Total:"):
			blocks = append(blocks, "")
		case len(blocks) > 0:
			blocks[len(blocks)-1] += "\n" + line
		}
	}
	for _, b := range blocks {
		if !strings.Contains(b, "ERROR:") {
			continue
		}
		m := adviceRe.FindStringSubmatch(b)
		if m == nil {
			t.Errorf("a failed partition gets no advice: %s", b)
			continue
		}
		seen[m[1]+"/"+m[2]] = true
		args := []string{"--topic", m[1], "--partition", m[2]}
		if m[3] != "" {
			args = append(args, "--from-offset", m[3])
		}
		runs = append(runs, args)
		if d := twiceRe.FindStringSubmatch(b); d != nil {
			n, _ := strconv.ParseInt(strings.ReplaceAll(d[1], ",", ""), 10, 64)
			twice += n
		}
	}
	if len(seen) != failed {
		t.Errorf("%d partitions FAILED, advice for %d", failed, len(seen))
	}
	return runs, twice
}

// checkTarget reads topic back and checks that it holds every record of
// want (by value) at least once, and exactly extra records more.
func checkTarget(t testing.TB, c *kfake.Cluster, topic string, want map[int32][]segment.Record, extra int64) {
	t.Helper()
	got := backuptest.ReadTopic(t, c.ListenAddrs(), topic, int32(len(want)), waitTimeout)
	var total, wantTotal int64
	for p, w := range want {
		have := map[string]int{}
		for _, r := range got[p] {
			have[string(r.Value)]++
		}
		total += int64(len(got[p]))
		wantTotal += int64(len(w))
		missing := 0
		var first string
		for _, r := range w {
			if have[string(r.Value)] == 0 {
				if missing++; missing == 1 {
					first = fmt.Sprint(r.Offset)
				}
			}
		}
		if missing > 0 {
			t.Errorf("%s/%d: %d of %d records missing, the first at source offset %s", topic, p, missing, len(w), first)
		}
	}
	if total-wantTotal != extra {
		t.Errorf("%s: %d records, %d more than the backup's %d; the summaries announced %d duplicates", topic, total, total-wantTotal, wantTotal, extra)
	}
}

// startRestore starts `kafka-backup restore args…` and returns the process,
// its output buffers, and a wait function.
func startRestore(t testing.TB, args ...string) (cmd *exec.Cmd, stdout, stderr *syncBuffer, wait func() error) {
	t.Helper()
	cmd = exec.Command(kbBin, append([]string{"restore"}, args...)...)
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var err error
	go func() { err = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	})
	wait = func() error {
		select {
		case <-done:
		case <-time.After(2 * waitTimeout):
			t.Fatalf("kafka-backup restore %s did not exit in %v", strings.Join(args, " "), 2*waitTimeout)
		}
		t.Logf("kafka-backup restore %s: %v\n---- stdout:\n%s---- stderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		return err
	}
	return cmd, stdout, stderr, wait
}

// TestFaultRestoreResume: Issue 12 row 2. A restore whose target stalls (the
// producer's buffer full, a record blocked in Produce) is stopped by
// --stall-timeout, or by Ctrl-C; every FAILED partition gets advice, the
// lowest offset not acknowledged, and running the advised commands restores
// every record of the backup, with exactly as many duplicates as the
// summaries announce.
func TestFaultRestoreResume(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "backup")
	want := map[int32][]segment.Record{}
	// Partition 0 has a gap (offsets 15000-15099 in no file).
	want[0] = append(faultRecords(0, 0, 14999, 60), faultRecords(0, 15100, 30099, 60)...)
	want[1] = faultRecords(1, 0, 24999, 60)
	for p, rs := range want {
		faultWrite(t, root, "t", p, rs, 5000)
	}
	for _, how := range []string{"stall", "interrupt"} {
		t.Run(how, func(t *testing.T) {
			c := faultCluster(t, 2, "t")
			held, release := stallingProduce(t, c, 4)
			// Batches of at most 100KB: the 3.3 MB take more produce requests
			// than the 4 let through (with the default max.message.bytes, four
			// requests of two 1MB batches could carry everything).
			args := []string{"--brokers", c.ListenAddrs()[0], "--progress", "log", "--max-batch-bytes", "100KB"}
			if how == "stall" {
				args = append(args, "--stall-timeout", "3s")
			}
			cmd, stdout, stderr, wait := startRestore(t, append(args, root)...)
			if how == "interrupt" {
				// As an operator: the progress stops, Ctrl-C. A progress
				// line printed after the target stalled.
				var at int
				waitFor(t, "the target to stall", func() (bool, string) {
					if held() == 0 {
						return false, "no produce request held"
					}
					if at == 0 {
						at = len(stderr.String()) + 1
					}
					return strings.Contains(stderr.String()[at-1:], "restore: "), "no progress line since the stall"
				})
				if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
					t.Fatal(err)
				}
			}
			err := wait()
			if err == nil {
				t.Fatal("the stalled restore exited 0")
			}
			if held() == 0 {
				t.Fatal("no produce request was held: the target never stalled")
			}
			release()
			runs, twice := resumeArgs(t, stdout.String())
			if len(runs) == 0 {
				t.Fatal("no advice")
			}
			for _, r := range runs {
				r := restoreRun(t, nil, append(append([]string{"--brokers", c.ListenAddrs()[0]}, r...), root)...)
				if r.err != nil {
					t.Fatalf("the advised restore failed: %v", r.err)
				}
			}
			checkTarget(t, c, "t", want, twice)
		})
	}
}

// TestFaultRestoreMaxMessageBytes: Issue 12 row 8. Without --max-batch-bytes
// restore fits each target topic: a record just under the broker default
// max.message.bytes (1048588) restores, and so does a 2 MB record into a
// topic whose max.message.bytes is 3000000. A dry run names the records too
// large for the target topic, or for --max-batch-bytes, and fails.
func TestFaultRestoreMaxMessageBytes(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "backup")
	big := faultRecords(0, 0, 5, 100)
	big[3].Value = bytes.Repeat([]byte("b"), 1_040_000) // above 1MB, below 1048588 in a batch of its own
	faultWrite(t, root, "big", 0, big, 10)
	huge := faultRecords(0, 0, 3, 100)
	huge[2].Value = bytes.Repeat([]byte("h"), 2_000_000)
	faultWrite(t, root, "huge", 0, huge, 10)

	c := faultCluster(t, 1, "big")
	faultCreateTopic(t, c, "huge", 1, map[string]string{"max.message.bytes": "3000000"})
	faultCreateTopic(t, c, "small", 1, map[string]string{"max.message.bytes": "500000"})
	brokers := c.ListenAddrs()[0]

	r := restoreRun(t, nil, "--brokers", brokers, "--topic", "big", "--topic", "huge", root)
	if r.err != nil {
		t.Errorf("restore with the default --max-batch-bytes failed: %v", r.err)
	}
	checkTarget(t, c, "big", map[int32][]segment.Record{0: big}, 0)
	checkTarget(t, c, "huge", map[int32][]segment.Record{0: huge}, 0)

	// The dry run against a topic with a smaller max.message.bytes.
	r = restoreRun(t, nil, "--dry-run", "--brokers", brokers, "--topic", "big", "--rename", "big=small", root)
	if r.err == nil {
		t.Error("a dry run with a record too large for the target exited 0")
	}
	if !regexp.MustCompile(`offset 3: 1,04\d,\d{3} bytes.*max\.message\.bytes 500,?000 of target topic small`).MatchString(r.stdout) {
		t.Errorf("the dry run does not name offset 3 as too large for topic small")
	}
	// And against --max-batch-bytes, without a target.
	r = restoreRun(t, nil, "--dry-run", "--max-batch-bytes", "64KiB", root)
	if r.err == nil {
		t.Error("a dry run with records above --max-batch-bytes exited 0")
	}
	for _, s := range []string{"big/0: ", "huge/0: "} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("no line for %s", s)
		}
	}
	if !regexp.MustCompile(`offset 3: 1,04\d,\d{3} bytes.*--max-batch-bytes`).MatchString(r.stdout) ||
		!regexp.MustCompile(`offset 2: 2,00\d,\d{3} bytes.*--max-batch-bytes`).MatchString(r.stdout) {
		t.Error("the dry run does not name the records above --max-batch-bytes")
	}
}

// TestFaultRestoreOversizedRecord: Issue 17 row 4. A record larger than
// --max-batch-bytes stops its partition at that record: the target holds the
// records before it and nothing after, the advice is its offset, and
// restoring from there with a larger limit completes the partition without
// a duplicate. The dry run lists the record.
func TestFaultRestoreOversizedRecord(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "backup")
	rs := faultRecords(0, 0, 199, 100)
	rs[100].Value = bytes.Repeat([]byte("o"), 64<<10)
	faultWrite(t, root, "t", 0, rs, 200)
	c := faultCluster(t, 1, "t")
	brokers := c.ListenAddrs()[0]

	r := restoreRun(t, nil, "--dry-run", "--max-batch-bytes", "16KiB", root)
	if r.err == nil || !regexp.MustCompile(`offset 100: 65,\d{3} bytes.*--max-batch-bytes`).MatchString(r.stdout) {
		t.Errorf("the dry run does not list the record at offset 100 as too large (exit %v)", r.err)
	}

	r = restoreRun(t, nil, "--brokers", brokers, "--max-batch-bytes", "16KiB", root)
	if r.err == nil {
		t.Fatal("exit 0 with a record above --max-batch-bytes")
	}
	got := backuptest.ReadTopic(t, c.ListenAddrs(), "t", 1, waitTimeout)[0]
	if len(got) != 100 || !bytes.Equal(got[len(got)-1].Value, rs[99].Value) {
		var last string
		if len(got) > 0 {
			last = string(got[len(got)-1].Value[:12])
		}
		t.Errorf("the target holds %d records (the last %q), want offsets 0-99", len(got), last)
	}
	runs, twice := resumeArgs(t, r.stdout)
	if len(runs) != 1 || strings.Join(runs[0], " ") != "--topic t --partition 0 --from-offset 100" || twice != 0 {
		t.Fatalf("advice %v (%d twice), want --from-offset 100 alone", runs, twice)
	}
	r = restoreRun(t, nil, append(append([]string{"--brokers", brokers, "--max-batch-bytes", "128KiB"}, runs[0]...), root)...)
	if r.err != nil {
		t.Fatal(r.err)
	}
	checkTarget(t, c, "t", map[int32][]segment.Record{0: rs}, 0)
}

// TestFaultRestoreNothingFinal: Issue 17 row 5 (last item). A backup whose
// selected partitions hold no final file (only in-progress ones: the backup
// never rolled, or was stopped before its files rolled) is an error, saying
// so and what to do; an empty folder too. Filters that leave nothing of
// final files (--from-offset above them) are the user's choice: exit 0.
func TestFaultRestoreNothingFinal(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "backup")
	data := backuptest.Encode(t, faultRecords(0, 0, 9, 50), 10, segment.None)
	backuptest.WriteFile(t, root, "t", 0, layout.InProgressName(layout.NamePlain.FileName(0), "host-1"), data)
	c := faultCluster(t, 1, "t")
	brokers := c.ListenAddrs()[0]
	for _, args := range [][]string{{"--brokers", brokers}, {"--dry-run"}} {
		r := restoreRun(t, nil, append(args, root)...)
		if r.err == nil {
			t.Errorf("%v: exit 0 restoring a backup with no final file", args)
		}
		for _, s := range []string{"nothing final to restore", "in-progress", "start the backup"} {
			if !strings.Contains(r.stderr, s) {
				t.Errorf("%v: stderr does not say %q", args, s)
			}
		}
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if r := restoreRun(t, nil, "--brokers", brokers, empty); r.err == nil || !strings.Contains(r.stderr, "nothing final to restore") {
		t.Errorf("an empty folder: exit %v", r.err)
	}
	// Final files, all below --from-offset: the user's filter, exit 0.
	faultWrite(t, root, "t", 0, faultRecords(0, 10, 19, 50), 10)
	if r := restoreRun(t, nil, "--brokers", brokers, "--from-offset", "100", root); r.err != nil {
		t.Errorf("a restore whose filter selects nothing failed: %v", r.err)
	}
	if ends, _ := backuptest.EndOffsets(c.ListenAddrs(), "t", 1); ends[0] != 0 {
		t.Errorf("%d records restored", ends[0])
	}
}
