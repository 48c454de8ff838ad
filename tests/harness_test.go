// Package tests holds end-to-end tests: they run the built kafka-backup
// binary against an in-process Kafka broker (franz-go's kfake), feed it
// records produced by kcat (an independent, librdkafka-based client), read
// the ground truth back with a franz-go kgo consumer and decode the backup
// files with franz-go's kmsg, independently of kafka-backup's own reader.
//
// This file is the harness; e2e_*_test.go hold the tests.
//
// What kcat 1.7.1 (librdkafka 2.0.2) produces, checked by TestE2EKcatFacts by
// consuming the records back with kgo:
//
//   - without -K every record has a null key;
//   - with -K '\t', "k\tv" has key "k"; "\tv" has an EMPTY key; a line with no
//     tab has a NULL key and the whole line as value; "k\t" has an EMPTY value;
//   - with -Z (and -K), "\tv" has a NULL key and "k\t" a NULL value (a
//     tombstone): -Z turns every empty key and value of that run into null, so
//     an empty key and a null key need separate kcat runs;
//   - an empty line produces no record at all, with or without -Z (so an
//     empty value needs -K and "k\t"; a record with a null key and an empty
//     value cannot be produced);
//   - -H name=value adds a header to every record of the run, in the order
//     given; -H name= gives an empty value, -H name (no '=') a NULL value; a
//     name may repeat (duplicates are kept in order); the value may contain
//     '='; -H =v is rejected;
//   - there is no way to give a record an explicit timestamp: librdkafka
//     stamps each record with its CreateTime (wall clock, ms) when kcat hands
//     it over, so the records of one run share one or a few timestamps and
//     separate runs get later ones; the tests take timestamps from the
//     ground truth;
//   - -z gzip|snappy|lz4 compresses the run's batches;
//   - librdkafka writes PartitionLeaderEpoch 0 in produced batches, which
//     kfake rejects with CORRUPT_MESSAGE ("Broker: Invalid message"), so
//     startBroker rewrites it to -1 in every produce request (the field is
//     outside the CRC).
package tests

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"maps"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-backup/kafka-backup/internal/backuptest"
	"github.com/kafka-backup/kafka-backup/segment"
)

// kbBin is the kafka-backup binary TestMain builds.
var kbBin string

// waitTimeout bounds every poll of a test.
const waitTimeout = 60 * time.Second

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("tests: the end-to-end tests are skipped with -short (they build the binary and start brokers and FTP servers)")
		return 0
	}
	// KAFKA_BACKUP_BIN runs the tests against an already built binary.
	if kbBin = os.Getenv("KAFKA_BACKUP_BIN"); kbBin != "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "kafka-backup-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	kbBin = filepath.Join(dir, "kafka-backup")
	goCmd := "go"
	if _, err := exec.LookPath(goCmd); err != nil {
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	build := exec.Command(goCmd, "build", "-o", kbBin, "../cmd/kafka-backup")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building kafka-backup: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// needKcat skips the test when kcat is not installed.
func needKcat(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat is not on PATH: `make test` installs it (apt-get install -y kcat, as root)")
	}
}

// ---------------------------------------------------------------------------
// Broker

// broker is a kfake cluster of one broker and what was produced to it.
type broker struct {
	t    testing.TB
	c    *kfake.Cluster
	addr string

	mu       sync.Mutex
	produced map[string]map[int32]int // records produced by topic and partition
}

// startBroker starts a one-broker kfake cluster on 127.0.0.1 with the topics,
// each with the given number of partitions, and closes it when the test ends.
func startBroker(t testing.TB, partitions int32, topics ...string) *broker {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	// librdkafka writes PartitionLeaderEpoch 0 in the batches it produces;
	// kfake wants -1 and answers CORRUPT_MESSAGE otherwise. The field (bytes
	// 12-15 of a batch) is not covered by the CRC, so rewriting it in place
	// keeps the batch valid. Returning false lets kfake handle the request,
	// and keeps this function for every later produce request.
	c.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		if req, ok := kr.(*kmsg.ProduceRequest); ok {
			for _, tp := range req.Topics {
				for _, p := range tp.Partitions {
					if len(p.Records) >= 16 {
						binary.BigEndian.PutUint32(p.Records[12:], 0xffffffff)
					}
				}
			}
		}
		return nil, nil, false
	})
	b := &broker{t: t, c: c, addr: c.ListenAddrs()[0], produced: map[string]map[int32]int{}}
	b.expireSilentMembers()
	t.Logf("kfake broker on %s, topics %v with %d partitions", b.addr, topics, partitions)
	return b
}

// expireSilentMembers does what kfake misses and Kafka does: it removes a
// group member silent for longer than its session timeout. kfake starts a
// member's session timer only once its JoinGroup reply is sent; a process
// killed while its group rebalances never gets that reply, so it stays in
// the group, holding its partitions, forever, and the survivors never get
// them (TestE2ECrashFTP: two of four partitions never read again after a
// kill 163ms into a process's life). Every member's requests are watched;
// once a second the members of a group past its joins that have sent
// nothing for longer than their session timeout are made to leave (LeaveGroup by member
// ID), which rebalances the group as Kafka's expiry would.
func (b *broker) expireSilentMembers() {
	var (
		mu      sync.Mutex
		seen    = map[string]time.Time{}     // member ID: its last request
		session = map[string]time.Duration{} // member ID: its session timeout
		groups  = map[string]bool{}
	)
	note := func(group, member string, timeout int32) {
		if member == "" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		groups[group] = true
		seen[member] = time.Now()
		if timeout > 0 {
			session[member] = time.Duration(timeout) * time.Millisecond
		}
	}
	for _, key := range []kmsg.Key{kmsg.JoinGroup, kmsg.SyncGroup, kmsg.Heartbeat, kmsg.OffsetCommit} {
		b.c.ControlKey(int16(key), func(kr kmsg.Request) (kmsg.Response, error, bool) {
			switch r := kr.(type) {
			case *kmsg.JoinGroupRequest:
				note(r.Group, r.MemberID, r.SessionTimeoutMillis)
			case *kmsg.SyncGroupRequest:
				note(r.Group, r.MemberID, 0)
			case *kmsg.HeartbeatRequest:
				note(r.Group, r.MemberID, 0)
			case *kmsg.OffsetCommitRequest:
				note(r.Group, r.MemberID, 0)
			}
			return nil, nil, false
		})
	}
	silent := func(members []kadm.DescribedGroupMember) []string {
		mu.Lock()
		defer mu.Unlock()
		var ids []string
		for _, m := range members {
			last, ok := seen[m.MemberID]
			timeout := session[m.MemberID]
			if !ok || timeout == 0 {
				continue // joined before the watch: not ours to judge
			}
			if time.Since(last) > timeout {
				ids = append(ids, m.MemberID)
			}
		}
		return ids
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.t.Cleanup(func() {
		cancel()
		<-done
	})
	go func() {
		defer close(done)
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
		if err != nil {
			return
		}
		defer cl.Close()
		adm := kadm.NewClient(cl)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			mu.Lock()
			names := slices.Collect(maps.Keys(groups))
			mu.Unlock()
			if len(names) == 0 {
				continue
			}
			described, err := adm.DescribeGroups(ctx, names...)
			if err != nil {
				continue
			}
			for _, g := range described {
				if g.Err != nil || (g.State != "Stable" && g.State != "CompletingRebalance") {
					continue // a joining member waits for its reply: Kafka waits too
				}
				for _, id := range silent(g.Members) {
					req := kmsg.NewPtrLeaveGroupRequest()
					req.Group = g.Group
					m := kmsg.NewLeaveGroupRequestMember()
					m.MemberID = id
					req.Members = append(req.Members, m)
					if _, err := req.RequestWith(ctx, cl); err == nil {
						b.t.Logf("kfake: member %s of group %s silent for longer than its session timeout: made to leave, as Kafka would expire it", id, g.Group)
					}
				}
			}
		}
	}()
}

// kcatRun is one `kcat -P` run: its lines become the records of one
// partition, with the same headers and flags.
type kcatRun struct {
	Lines     []string // one record each; keyed as "key\tvalue" when KeyDelim
	KeyDelim  bool     // -K '\t'
	NullEmpty bool     // -Z: empty keys and values become null
	Headers   []string // -H arguments: "name=value", "name=" (empty) or "name" (null)
	Codec     string   // -z codec, "" for none
}

// produce runs kcat to produce run to topic/partition and returns how many
// records it produced (one per line).
func (b *broker) produce(topic string, partition int32, run kcatRun) int {
	b.t.Helper()
	needKcat(b.t)
	if len(run.Lines) == 0 {
		return 0
	}
	args := []string{"-P", "-b", b.addr, "-t", topic, "-p", strconv.Itoa(int(partition)), "-m", "30"}
	if run.KeyDelim {
		args = append(args, "-K", `\t`)
	}
	if run.NullEmpty {
		args = append(args, "-Z")
	}
	if run.Codec != "" {
		args = append(args, "-z", run.Codec)
	}
	for _, h := range run.Headers {
		args = append(args, "-H", h)
	}
	var in bytes.Buffer
	for _, l := range run.Lines {
		if l == "" || strings.ContainsAny(l, "\n") {
			b.t.Fatalf("kcat line %q: kcat drops empty lines and splits on newlines", l)
		}
		in.WriteString(l)
		in.WriteByte('\n')
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kcat", args...)
	cmd.Stdin = &in
	if out, err := cmd.CombinedOutput(); err != nil {
		b.t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.produced[topic] == nil {
		b.produced[topic] = map[int32]int{}
	}
	b.produced[topic][partition] += len(run.Lines)
	return len(run.Lines)
}

// producedCount returns how many records were produced to topic/partition.
func (b *broker) producedCount(topic string, partition int32) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.produced[topic][partition]
}

// totalProduced returns how many records were produced to all topics.
func (b *broker) totalProduced() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, ps := range b.produced {
		for _, c := range ps {
			n += c
		}
	}
	return n
}

// groundTruth consumes every partition of topic from the start with a plain
// kgo client (no consumer group) until it has as many records as were
// produced, and returns them as segment records by partition.
func (b *broker) groundTruth(topic string, partitions int32) map[int32][]segment.Record {
	b.t.Helper()
	offs := map[int32]kgo.Offset{}
	want := 0
	for p := int32(0); p < partitions; p++ {
		offs[p] = kgo.NewOffset().AtStart()
		want += b.producedCount(topic, p)
	}
	out := map[int32][]segment.Record{}
	if want == 0 {
		return out
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}))
	if err != nil {
		b.t.Fatalf("kgo client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	got := 0
	for got < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			b.t.Fatalf("ground truth of %s: consumed %d of %d records before the timeout", topic, got, want)
		}
		fs.EachError(func(t string, p int32, err error) {
			b.t.Fatalf("ground truth of %s/%d: %v", t, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			out[r.Partition] = append(out[r.Partition], backuptest.FromKgo(r))
			got++
		})
	}
	for p := int32(0); p < partitions; p++ {
		recs := out[p]
		if len(recs) != b.producedCount(topic, p) {
			b.t.Fatalf("ground truth of %s/%d: %d records, %d produced", topic, p, len(recs), b.producedCount(topic, p))
		}
		for i, r := range recs {
			if r.Offset != int64(i) {
				b.t.Fatalf("ground truth of %s/%d: record %d has offset %d", topic, p, i, r.Offset)
			}
		}
	}
	return out
}

// committed returns the consumer group's committed offsets of partitions 0
// to partitions-1 of topic (partitions without a commit are missing).
func committed(cl *kgo.Client, group, topic string, partitions int32) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = topic
	for p := range partitions {
		rt.Partitions = append(rt.Partitions, p)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode == 0 && p.Offset >= 0 {
				out[p.Partition] = p.Offset
			}
		}
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// Workload

// workload describes what produceWorkload sends to each partition.
type workload struct {
	perPartition int   // about this many records per partition
	seed         int64 // seed of the random sizes
}

// produceWorkload produces a varied set of records to every partition of
// topic with several kcat runs: keyed, null and empty keys, tombstones and
// empty values, headers with duplicate names, empty and null values, a
// kafka_-prefixed name, names that sort differently from their order, and
// compressed batches; values of 1 byte to 4 KiB (about a tenth over 1 KiB).
func (b *broker) produceWorkload(topic string, partitions int32, w workload) {
	b.t.Helper()
	rng := rand.New(rand.NewSource(w.seed))
	n := max(w.perPartition/5, 1)
	for p := int32(0); p < partitions; p++ {
		tag := fmt.Sprintf("%s-%d", topic, p)
		// 1: keys, some empty keys, some null keys, some empty values.
		var lines []string
		for i := range n {
			switch {
			case i%17 == 3:
				lines = append(lines, "\t"+randValue(rng)) // empty key
			case i%23 == 5:
				lines = append(lines, randValue(rng)) // no tab: null key
			case i%29 == 7:
				lines = append(lines, fmt.Sprintf("key-%s-a%d\t", tag, i)) // empty value
			default:
				lines = append(lines, fmt.Sprintf("key-%s-a%d\t%s", tag, i, randValue(rng)))
			}
		}
		b.produce(topic, p, kcatRun{Lines: lines, KeyDelim: true})

		// 2: -Z: null keys and tombstones; headers with a duplicate name,
		// an empty value, a null value, '=' in a value and a kafka_ name.
		lines = nil
		for i := range n {
			switch {
			case i%11 == 2:
				lines = append(lines, "\t"+randValue(rng)) // null key
			case i%13 == 4:
				lines = append(lines, fmt.Sprintf("key-%s-b%d\t", tag, i)) // tombstone
			default:
				lines = append(lines, fmt.Sprintf("key-%s-b%d\t%s", tag, i, randValue(rng)))
			}
		}
		b.produce(topic, p, kcatRun{Lines: lines, KeyDelim: true, NullEmpty: true, Headers: []string{
			"trace=" + tag, "empty=", "nullh", "trace=duplicate name", "eq=a=b", "kafka_custom=x",
		}})

		// 3: no key delimiter at all: null keys; headers out of name order.
		lines = nil
		for range n {
			lines = append(lines, randValue(rng))
		}
		b.produce(topic, p, kcatRun{Lines: lines, Headers: []string{"zeta=1", "Alpha=2", "zeta=3", "beta="}})

		// 4: gzip batches of larger values.
		lines = nil
		for i := range n {
			lines = append(lines, fmt.Sprintf("key-%s-d%d\t%s", tag, i, randString(rng, 1025+rng.Intn(3000))))
		}
		b.produce(topic, p, kcatRun{Lines: lines, KeyDelim: true, Codec: "gzip", Headers: []string{"codec=gzip"}})

		// 5: lz4 batches, empty keys, one header.
		lines = nil
		for i := range w.perPartition - 4*n {
			if i%5 == 0 {
				lines = append(lines, "\t"+randValue(rng))
			} else {
				lines = append(lines, fmt.Sprintf("key-%s-e%d\t%s", tag, i, randValue(rng)))
			}
		}
		b.produce(topic, p, kcatRun{Lines: lines, KeyDelim: true, Codec: "lz4", Headers: []string{"h=v"}})
	}
}

// randValue returns a value of 1 byte to 4 KiB: 60% up to 100 bytes, 30% up
// to 1 KiB and 10% over 1 KiB.
func randValue(rng *rand.Rand) string {
	switch r := rng.Intn(10); {
	case r < 6:
		return randString(rng, 1+rng.Intn(100))
	case r < 9:
		return randString(rng, 100+rng.Intn(925))
	default:
		return randString(rng, 1025+rng.Intn(3072))
	}
}

const valueChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 {}[]:,.\"'=-_/!@#$%^&*()"

// randString returns n printable characters, never a tab or a newline.
func randString(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = valueChars[rng.Intn(len(valueChars))]
	}
	return string(b)
}

// ---------------------------------------------------------------------------
// The kafka-backup process

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a running `kafka-backup run <config>`.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	out  syncBuffer // stdout and stderr
	done chan struct{}
	err  error // set when done is closed
}

// runBackup writes config into the test's temp folder and starts
// `kafka-backup run <config>`. Its output goes to the test log when the test
// fails; it is killed if still running when the test ends.
func runBackup(t testing.TB, name, config string) *proc {
	t.Helper()
	return runBinaryEnv(t, kbBin, name, config, nil)
}

// runBinaryEnv writes config into the test's temp folder and starts
// `<bin> run <config>` with env added to its environment. Its output goes to
// the test log when the test fails; it is killed if still running when the
// test ends.
func runBinaryEnv(t testing.TB, bin, name, config string, env []string) *proc {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "run", path)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = &p.out
	p.cmd.Stderr = &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("---- kafka-backup %s config:\n%s\n---- kafka-backup %s output (%v):\n%s", name, config, name, p.err, p.out.String())
		}
	})
	return p
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// logs returns what the process wrote so far.
func (p *proc) logs() string { return p.out.String() }

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	if p.exited() {
		p.t.Fatalf("kafka-backup %s exited before it was stopped: %v", p.name, p.err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(waitTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("kafka-backup %s did not exit within %v of SIGTERM", p.name, waitTimeout)
	}
	if p.err != nil {
		p.t.Fatalf("kafka-backup %s exited with %v after SIGTERM", p.name, p.err)
	}
}

// waitFor polls cond every 50ms until it returns true, failing the test after
// waitTimeout or as soon as one of procs exits. cond returns a description of
// the state for the failure message.
func waitFor(t testing.TB, what string, cond func() (bool, string), procs ...*proc) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		for _, p := range procs {
			if p.exited() {
				t.Fatalf("waiting for %s: kafka-backup %s exited: %v; %s", what, p.name, p.err, state)
			}
		}
		if time.Now().After(deadline) {
			dumpGoroutines(procs)
			t.Fatalf("waiting for %s: not done after %v: %s", what, waitTimeout, state)
		}
		<-tick.C
	}
}

// dumpGoroutines makes each process that still runs print its goroutines to
// its log and exit (SIGQUIT), so that a stalled process's log shows where it
// stalled.
func dumpGoroutines(procs []*proc) {
	for _, p := range procs {
		if p.exited() {
			continue
		}
		_ = p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
	}
}

// waitRecords waits until the files below dir, in-progress ones included,
// hold at least want records.
func waitRecords(t testing.TB, dir string, want int, procs ...*proc) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d records in %s", want, dir), func() (bool, string) {
		n, err := countRecords(dir)
		if err != nil {
			return false, err.Error()
		}
		return n >= want, fmt.Sprintf("%d of %d records in files", n, want)
	}, procs...)
}

// waitCommitted waits until the consumer group has committed, for every
// partition of every topic, the offset after the last record produced: every
// record was delivered and acknowledged.
func waitCommitted(t testing.TB, b *broker, group string, partitions int32, topics []string, procs ...*proc) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		t.Fatalf("kgo client: %v", err)
	}
	defer cl.Close()
	start := time.Now()
	waitFor(t, "commits of group "+group, func() (bool, string) {
		var behind []string
		for _, topic := range topics {
			got, err := committed(cl, group, topic, partitions)
			if err != nil {
				return false, err.Error()
			}
			for p := range partitions {
				if want := int64(b.producedCount(topic, p)); got[p] != want {
					behind = append(behind, fmt.Sprintf("%s/%d at %d of %d", topic, p, got[p], want))
				}
			}
		}
		if len(behind) == 0 {
			return true, ""
		}
		state := "behind: " + strings.Join(behind, ", ")
		if time.Since(start) > waitTimeout/2 {
			state += "; " + groupAssignment(cl, group) // why: nobody owns them, or their owner does not ack
		}
		return false, state
	}, procs...)
}

// groupAssignment describes which member of group holds which partitions.
func groupAssignment(cl *kgo.Client, group string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gs, err := kadm.NewClient(cl).DescribeGroups(ctx, group)
	if err != nil {
		return "describing the group: " + err.Error()
	}
	g, ok := gs[group]
	if !ok {
		return "group not described"
	}
	if g.Err != nil {
		return "describing the group: " + g.Err.Error()
	}
	var ms []string
	for _, m := range g.Members {
		var parts []string
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				parts = append(parts, fmt.Sprintf("%s%v", t.Topic, t.Partitions))
			}
		}
		ms = append(ms, fmt.Sprintf("%s %s", m.ClientHost+"/"+m.MemberID, strings.Join(parts, " ")))
	}
	return fmt.Sprintf("group %s %s, members: %s", g.State, g.Protocol, strings.Join(ms, "; "))
}

// ---------------------------------------------------------------------------
// Configs

// redpandaInput is a redpanda input reading topics as group from the start.
func redpandaInput(b *broker, group string, topics ...string) string {
	return fmt.Sprintf(`  redpanda:
    seed_brokers: [%q]
    topics: %s
    consumer_group: %q
    start_offset: earliest
    commit_period: 200ms
`, b.addr, yamlList(topics), group)
}

// franzInput is a kafka_franz input with multi_header reading topics as group
// from the oldest offset.
func franzInput(b *broker, group string, topics ...string) string {
	return fmt.Sprintf(`  kafka_franz:
    seed_brokers: [%q]
    topics: %s
    consumer_group: %q
    start_from_oldest: true
    multi_header: true
    commit_period: 200ms
`, b.addr, yamlList(topics), group)
}

func yamlList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = strconv.Quote(v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// backupConfig is a whole config: input (from redpandaInput, franzInput or
// any YAML indented by two spaces) into kafka_backup at path, with extra
// kafka_backup fields (YAML lines indented by four spaces).
func backupConfig(input, path, extra string) string {
	return fmt.Sprintf(`http:
  enabled: false
logger:
  level: INFO
  format: logfmt
shutdown_timeout: 30s
input:
%soutput:
  kafka_backup:
    path: %q
%s`, input, path, extra)
}

// ---------------------------------------------------------------------------
// Reading the backup

// countRecords counts the records in every file below dir, in-progress files
// included, from batch headers (a batch being written is not counted).
func countRecords(dir string) (int, error) {
	n, _, err := headerRecords(dir, func(string) bool { return true })
	return n, err
}

// inProgressFiles returns the hidden files below dir.
func inProgressFiles(dir string) []string {
	var out []string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), ".") {
			out = append(out, path)
		}
		return nil
	})
	return out
}

// backupFile is one final file, decoded.
type backupFile struct {
	path    string
	size    int64
	batches int
	codecs  map[int8]bool
	recs    []segment.Record
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// decodeKmsg decodes a backup file with franz-go's kmsg: every batch with
// kmsg.RecordBatch.ReadFrom (CRC32C, length, magic and the header fields
// checked here) and every record with kmsg.Record.ReadFrom, re-encoding each
// record to check that ReadFrom consumed exactly its bytes.
func decodeKmsg(data []byte) (recs []segment.Record, batches int, codecs map[int8]bool, err error) {
	codecs = map[int8]bool{}
	dec := kgo.DefaultDecompressor()
	for pos := 0; pos < len(data); {
		fail := func(format string, args ...any) error {
			return fmt.Errorf("batch at byte %d: %s", pos, fmt.Sprintf(format, args...))
		}
		if len(data)-pos < 61 {
			return nil, 0, nil, fail("%d bytes left, less than a batch header", len(data)-pos)
		}
		length := int(int32(binary.BigEndian.Uint32(data[pos+8:])))
		if length < 49 || pos+12+length > len(data) {
			return nil, 0, nil, fail("length %d does not fit in the file", length)
		}
		raw := data[pos : pos+12+length]
		var b kmsg.RecordBatch
		if err := b.ReadFrom(raw); err != nil {
			return nil, 0, nil, fail("kmsg: %v", err)
		}
		if b.Magic != 2 {
			return nil, 0, nil, fail("magic %d", b.Magic)
		}
		if int(b.Length) != len(raw)-12 {
			return nil, 0, nil, fail("length %d, batch is %d bytes", b.Length, len(raw))
		}
		if crc := crc32.Checksum(raw[21:], castagnoli); uint32(b.CRC) != crc {
			return nil, 0, nil, fail("CRC32C %08x, header says %08x", crc, uint32(b.CRC))
		}
		if b.Attributes&^7 != 0 {
			return nil, 0, nil, fail("attributes %#x: only a codec expected", b.Attributes)
		}
		codec := int8(b.Attributes & 7)
		codecs[codec] = true
		rs, err := dec.Decompress(b.Records, kgo.CompressionCodecType(codec))
		if err != nil {
			return nil, 0, nil, fail("decompressing codec %d: %v", codec, err)
		}
		if b.NumRecords < 1 {
			return nil, 0, nil, fail("%d records", b.NumRecords)
		}
		maxTs := int64(-1 << 63)
		var lastDelta int32
		for i := int32(0); i < b.NumRecords; i++ {
			l, n := binary.Varint(rs)
			if n <= 0 || l < 1 || int(l) > len(rs)-n {
				return nil, 0, nil, fail("record %d: bad length", i)
			}
			rb := rs[:n+int(l)]
			rs = rs[n+int(l):]
			var r kmsg.Record
			if err := r.ReadFrom(rb); err != nil {
				return nil, 0, nil, fail("record %d: kmsg: %v", i, err)
			}
			if re := r.AppendTo(nil); !bytes.Equal(re, rb) {
				return nil, 0, nil, fail("record %d: does not re-encode to its own bytes", i)
			}
			if i > 0 && r.OffsetDelta <= lastDelta {
				return nil, 0, nil, fail("record %d: offset delta %d after %d", i, r.OffsetDelta, lastDelta)
			}
			lastDelta = r.OffsetDelta
			rec := segment.Record{
				Offset:    b.FirstOffset + int64(r.OffsetDelta),
				Timestamp: b.FirstTimestamp + r.TimestampDelta64,
				Key:       r.Key,
				Value:     r.Value,
			}
			for _, h := range r.Headers {
				rec.Headers = append(rec.Headers, segment.Header{Key: h.Key, Value: h.Value})
			}
			maxTs = max(maxTs, rec.Timestamp)
			recs = append(recs, rec)
		}
		if len(rs) != 0 {
			return nil, 0, nil, fail("%d bytes after the last record", len(rs))
		}
		if lastDelta != b.LastOffsetDelta {
			return nil, 0, nil, fail("last offset delta %d, header says %d", lastDelta, b.LastOffsetDelta)
		}
		if maxTs != b.MaxTimestamp {
			return nil, 0, nil, fail("max timestamp %d, header says %d", maxTs, b.MaxTimestamp)
		}
		batches++
		pos += len(raw)
	}
	return recs, batches, codecs, nil
}

// decodeSegment decodes a backup file with kafka-backup's own reader.
func decodeSegment(data []byte) ([]segment.Record, error) {
	r := segment.NewReader(bytes.NewReader(data))
	var out []segment.Record
	for {
		b, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		recs, err := b.Records()
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
}

// backup is what a backup folder holds after a clean shutdown.
type backup struct {
	files map[string]map[int32][]backupFile // by topic and partition, in offset order
}

// fileCount returns how many files the backup holds of topic, in all its
// partitions.
func (bk backup) fileCount(topic string) int {
	n := 0
	for _, fs := range bk.files[topic] {
		n += len(fs)
	}
	return n
}

// verifyOpts says what verifyBackup expects.
type verifyOpts struct {
	// maxSize is the output's size: no file is larger unless it holds a
	// single record. 0 is the default size, 100MB.
	maxSize int64
	// want is the records each partition's files must hold, exactly, by topic
	// and partition. A topic or partition with no records must have no files.
	want map[string]map[int32][]segment.Record
}

// verifyBackup checks the whole tree below dir after a clean shutdown:
// <dir>/<topic>/<partition>/<first offset> and nothing else, no in-progress
// file, sizes, every file decoded by kmsg (and, identically, by
// segment.Reader), each offset exactly once, and the records equal to want.
func verifyBackup(t testing.TB, dir string, o verifyOpts) backup {
	t.Helper()
	bk := backup{files: map[string]map[int32][]backupFile{}}
	if o.maxSize == 0 {
		o.maxSize = 100_000_000
	}
	if ip := inProgressFiles(dir); len(ip) > 0 {
		t.Errorf("in-progress files left after a clean shutdown: %v", ip)
	}
	topics, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	for _, te := range topics {
		topic := te.Name()
		if !te.IsDir() {
			t.Errorf("%s: a file where a topic folder belongs", filepath.Join(dir, topic))
			continue
		}
		if _, ok := o.want[topic]; !ok {
			t.Errorf("%s: folder of a topic that was not backed up", filepath.Join(dir, topic))
			continue
		}
		bk.files[topic] = map[int32][]backupFile{}
		parts, err := os.ReadDir(filepath.Join(dir, topic))
		if err != nil {
			t.Fatal(err)
		}
		for _, pe := range parts {
			pdir := filepath.Join(dir, topic, pe.Name())
			p, err := strconv.ParseInt(pe.Name(), 10, 32)
			if err != nil || !pe.IsDir() || strconv.FormatInt(p, 10) != pe.Name() {
				t.Errorf("%s: not a partition folder", pdir)
				continue
			}
			bk.files[topic][int32(p)] = readPartition(t, pdir, o.maxSize)
		}
	}
	for topic, parts := range o.want {
		for p, want := range parts {
			var got []segment.Record
			for _, f := range bk.files[topic][p] {
				got = append(got, f.recs...)
			}
			compareRecords(t, fmt.Sprintf("%s/%d", topic, p), got, want)
		}
		for p, files := range bk.files[topic] {
			if _, ok := parts[p]; !ok && len(files) > 0 {
				t.Errorf("%s/%d: %d files for a partition that should have none", topic, p, len(files))
			}
		}
	}
	return bk
}

// readPartition reads and checks every file of a partition folder and
// returns them in offset order.
func readPartition(t testing.TB, pdir string, maxSize int64) []backupFile {
	t.Helper()
	entries, err := os.ReadDir(pdir)
	if err != nil {
		t.Fatal(err)
	}
	var files []backupFile
	for _, e := range entries {
		path := filepath.Join(pdir, e.Name())
		first, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil || first < 0 || strconv.FormatInt(first, 10) != e.Name() || !e.Type().IsRegular() {
			t.Errorf("%s: not a final file named by its first offset", path)
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		recs, batches, codecs, err := decodeKmsg(data)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if len(recs) == 0 {
			t.Errorf("%s: an empty file", path)
			continue
		}
		if recs[0].Offset != first {
			t.Errorf("%s: named %d, first offset inside is %d", path, first, recs[0].Offset)
		}
		if int64(len(data)) > maxSize && len(recs) != 1 {
			t.Errorf("%s: %d bytes, more than size %d, with %d records", path, len(data), maxSize, len(recs))
		}
		own, err := decodeSegment(data)
		if err != nil {
			t.Errorf("%s: segment.Reader: %v", path, err)
		} else {
			compareRecords(t, path+" (segment.Reader vs kmsg)", own, recs)
		}
		files = append(files, backupFile{path: path, size: int64(len(data)), batches: batches, codecs: codecs, recs: recs})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].recs[0].Offset < files[j].recs[0].Offset })
	// Each offset exactly once across the partition's files.
	seen := map[int64]string{}
	for _, f := range files {
		for _, r := range f.recs {
			if prev, dup := seen[r.Offset]; dup {
				t.Errorf("offset %d is in %s and in %s", r.Offset, prev, f.path)
			}
			seen[r.Offset] = f.path
		}
	}
	return files
}

// compareRecords checks got (in file order) against want (in offset order):
// the same offsets, each exactly once, with equal records.
func compareRecords(t testing.TB, what string, got, want []segment.Record) {
	t.Helper()
	sorted := append([]segment.Record(nil), got...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Offset < sorted[j].Offset })
	if len(sorted) != len(want) {
		t.Errorf("%s: %d records, want %d (%s)", what, len(sorted), len(want), offsetSummary(sorted, want))
		return
	}
	bad := 0
	for i := range want {
		if diff := recordDiff(sorted[i], want[i]); diff != "" {
			if bad++; bad <= 5 {
				t.Errorf("%s: record %d: %s", what, i, diff)
			}
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d records differ in all", what, bad)
	}
}

func offsetSummary(got, want []segment.Record) string {
	g := map[int64]int{}
	for _, r := range got {
		g[r.Offset]++
	}
	var missing, dup []int64
	for _, r := range want {
		if g[r.Offset] == 0 {
			missing = append(missing, r.Offset)
		}
	}
	for off, n := range g {
		if n > 1 {
			dup = append(dup, off)
		}
	}
	sort.Slice(dup, func(i, j int) bool { return dup[i] < dup[j] })
	return fmt.Sprintf("missing %s, duplicated %s", headOf(missing), headOf(dup))
}

func headOf(s []int64) string {
	if len(s) > 10 {
		return fmt.Sprintf("%v… (%d)", s[:10], len(s))
	}
	return fmt.Sprint(s)
}

// recordDiff describes how got differs from want, null-aware: a nil key,
// value or header value is null and differs from an empty one.
func recordDiff(got, want segment.Record) string {
	var d []string
	if got.Offset != want.Offset {
		d = append(d, fmt.Sprintf("offset %d, want %d", got.Offset, want.Offset))
	}
	if got.Timestamp != want.Timestamp {
		d = append(d, fmt.Sprintf("timestamp %d, want %d", got.Timestamp, want.Timestamp))
	}
	if !nullEqual(got.Key, want.Key) {
		d = append(d, fmt.Sprintf("key %s, want %s", showBytes(got.Key), showBytes(want.Key)))
	}
	if !nullEqual(got.Value, want.Value) {
		d = append(d, fmt.Sprintf("value %s, want %s", showBytes(got.Value), showBytes(want.Value)))
	}
	if !headersEqual(got.Headers, want.Headers) {
		d = append(d, fmt.Sprintf("headers %s, want %s", showHeaders(got.Headers), showHeaders(want.Headers)))
	}
	if len(d) == 0 {
		return ""
	}
	return fmt.Sprintf("offset %d: %s", want.Offset, strings.Join(d, "; "))
}

func nullEqual(a, b []byte) bool {
	return (a == nil) == (b == nil) && bytes.Equal(a, b)
}

func headersEqual(a, b []segment.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || !nullEqual(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

func showBytes(b []byte) string {
	if b == nil {
		return "null"
	}
	if len(b) > 40 {
		return fmt.Sprintf("%q…(%d bytes)", b[:40], len(b))
	}
	return fmt.Sprintf("%q", b)
}

func showHeaders(hs []segment.Header) string {
	s := make([]string, len(hs))
	for i, h := range hs {
		s[i] = strconv.Quote(h.Key) + "=" + showBytes(h.Value)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// recordKinds counts the kinds of records in recs, to check a workload has
// the variety a test relies on.
type recordKinds struct {
	nullKey, emptyKey, nullValue, emptyValue, large  int
	emptyHeaderValue, nullHeaderValue, dupHeaderName int
}

func kindsOf(parts map[int32][]segment.Record) recordKinds {
	var k recordKinds
	for _, recs := range parts {
		for _, r := range recs {
			switch {
			case r.Key == nil:
				k.nullKey++
			case len(r.Key) == 0:
				k.emptyKey++
			}
			switch {
			case r.Value == nil:
				k.nullValue++
			case len(r.Value) == 0:
				k.emptyValue++
			case len(r.Value) > 1024:
				k.large++
			}
			names := map[string]bool{}
			dup := false
			for _, h := range r.Headers {
				switch {
				case h.Value == nil:
					k.nullHeaderValue++
				case len(h.Value) == 0:
					k.emptyHeaderValue++
				}
				dup = dup || names[h.Key]
				names[h.Key] = true
			}
			if dup {
				k.dupHeaderName++
			}
		}
	}
	return k
}

// requireVariety fails the test unless the ground truth has every kind of
// record the fidelity checks are about.
func requireVariety(t testing.TB, truth map[int32][]segment.Record) {
	t.Helper()
	k := kindsOf(truth)
	if k.nullKey == 0 || k.emptyKey == 0 || k.nullValue == 0 || k.emptyValue == 0 || k.large == 0 ||
		k.emptyHeaderValue == 0 || k.nullHeaderValue == 0 || k.dupHeaderName == 0 {
		t.Fatalf("the workload lacks a kind of record: %+v", k)
	}
	t.Logf("workload: %+v", k)
}

// variedTopic starts a broker with topic, of partitions partitions, produces
// the varied workload to it with kcat (about perPartition records a
// partition, sizes from seed), checks that the records have every kind the
// fidelity checks are about (requireVariety), and returns the broker and the
// records as Kafka has them (groundTruth).
func variedTopic(t testing.TB, topic string, partitions int32, perPartition int, seed int64) (*broker, map[int32][]segment.Record) {
	t.Helper()
	needKcat(t)
	b := startBroker(t, partitions, topic)
	b.produceWorkload(topic, partitions, workload{perPartition: perPartition, seed: seed})
	truth := b.groundTruth(topic, partitions)
	requireVariety(t, truth)
	return b, truth
}

// sumRecords counts the records of a ground truth.
func sumRecords(truth map[int32][]segment.Record) int {
	n := 0
	for _, recs := range truth {
		n += len(recs)
	}
	return n
}

// flipRecordByte flips one byte inside the records of the middle batch of
// the file at path, under the batch's CRC, and returns that batch's position
// and base offset, and the file as it was (to put it back).
func flipRecordByte(t testing.TB, path string) (pos, base int64, orig []byte) {
	t.Helper()
	ps, bs := batchesOf(t, path)
	k := len(ps) / 2
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data := append([]byte(nil), orig...)
	data[ps[k]+segment.HeaderSize+2] ^= 0x01
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return ps[k], bs[k], orig
}
