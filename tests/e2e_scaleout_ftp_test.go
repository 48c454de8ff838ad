package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tests/ftpd"
)

// TestE2EScaleOutFTP is TestE2EScaleOutLocal with the FTP destination:
// kafka-backup processes a, b and c in one consumer group, each with its own
// spool, upload to the same folder of a real pure-ftpd. They are started and
// stopped one after the other, records produced between the rebalances, so
// partitions move a→b (b joins), a→b (a stops), b→c (c joins) and b→c (b
// stops), each move waited for on the group's assignment. Files roll by size
// (32KiB) or at shutdown only (roll_duration 1m): an instance still has files
// open in its spool when its partitions move, and uploads them at its stop
// into folders another instance now writes to; the new owner learns from the
// server's markers what is already uploaded. Every partition folder gets
// files, and marker updates, from several instances.
//
// After a clean stop of all, the server's folder must hold every record
// produced (against the broker's ground truth), each offset in exactly one
// final file, a marker in every partition folder listing exactly its files
// and no other hidden file (no upload or marker temporary); every spool must
// be empty, no error logged, every instance must have uploaded files, every
// partition must have files of two instances or more; `kafka-backup verify`
// on the server's local folder must pass without warnings.
//
// KAFKA_BACKUP_SCALEOUT_LOAD=1 also produces records during each rebalance.
// The old owner then writes the batch in flight at the revoke into its open
// file while the new owner, starting from the last commit, writes it again
// into a file of its own. The file uploaded second has the batches the
// server's marker shows cut from it; only a batch partly held elsewhere is
// kept whole (README "Scale-out and rebalances"), and would fail the check
// that every offset is in one file. Before that cut existed this mode failed
// 2 runs of 12; with it, 0 of 10.
func TestE2EScaleOutFTP(t *testing.T) {
	t.Parallel()
	needKcat(t)
	// pure-ftpd admits half as many clients as passive ports (8 by default):
	// room for 3 x (4 uploaders + a look-up per partition taken over).
	srv := ftpd.StartPureFtpd(t, ftpd.Options{PassivePorts: 80})
	logServerOnFailure(t, srv)
	const topic, parts, group = "scale", 6, "scale-ftp-group"
	const remote = "/backups/scale"
	b := startBroker(t, parts, topic)
	dir := srv.Path(remote)
	spools := map[string]string{}
	start := func(name string) *proc {
		t.Helper()
		spools[name] = filepath.Join(t.TempDir(), "spool-"+name) // each process its own spool
		cfg := backupConfig(redpandaInput(b, group, topic), remote,
			"    size: 32KiB\n    roll_duration: 1m\n"+ftpFS(srv, ftpOpts{spool: spools[name]}))
		return runBackupEnv(t, name, cfg, ftpEnv(srv))
	}
	produce := func(seed int64) { b.produceWorkload(topic, parts, workload{perPartition: 150, seed: seed}) }
	committed := func(procs ...*proc) {
		t.Helper()
		waitCommitted(t, b, group, parts, []string{topic}, procs...)
	}
	// rebalance runs change (a start or a stop) and waits until the group
	// is stable with owners members, each with partitions (producing
	// meanwhile with KAFKA_BACKUP_SCALEOUT_LOAD=1).
	underLoad := os.Getenv("KAFKA_BACKUP_SCALEOUT_LOAD") == "1"
	rebalance := func(change func(), owners int, procs ...*proc) {
		t.Helper()
		if underLoad {
			defer produceInBackground(t, b, topic, parts)()
		}
		change()
		waitGroupOwners(t, b, group, parts, owners, procs...)
	}

	produce(31)
	a := start("a")
	waitGroupOwners(t, b, group, parts, 1, a)
	committed(a) // every record in a's spool (open files) or on the server

	// Three instances never share the group at once: with two members
	// owning partitions, a third one joining makes both give some up, and
	// kfake answers the rejoin of a member that is not the group's leader
	// with the current assignment instead of a rebalance (Kafka rebalances
	// when its subscription changed), so the partitions it gave up can stay
	// unassigned. Here only the leader (the oldest member) gives partitions
	// up; the other moves are takeovers at a stop.
	var bb, c *proc
	rebalance(func() { bb = start("b") }, 2, a) // a gives half its partitions to b
	produce(32)
	committed(a, bb)

	rebalance(a.stop, 1, bb) // b takes a's; a uploads the files it still had open
	produce(33)
	committed(bb)

	rebalance(func() { c = start("c") }, 2, bb) // b gives half to c
	produce(34)
	committed(bb, c)

	rebalance(bb.stop, 1, c) // c takes b's; b uploads the files it still had open
	produce(35)
	committed(c)
	c.stop()

	uploadedBy := map[string][]string{} // topic/partition/name → instances that logged its upload
	for name, p := range map[string]*proc{"a": a, "b": bb, "c": c} {
		logs := p.logs()
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, "level=error") {
				t.Errorf("%s: %s", name, line)
			}
		}
		ups, fins := loggedFiles(logs, "uploaded "+remote+"/"), loggedFiles(logs, "finalized ")
		for f := range ups {
			uploadedBy[f] = append(uploadedBy[f], name)
		}
		// An upload under a name the instance did not finalize is a file
		// trimmed because another instance took its name first.
		t.Logf("instance %s: finalized %d files, uploaded %d, %d of them under a trimmed name",
			name, len(fins), len(ups), len(notIn(ups, fins)))
		if len(ups) == 0 {
			t.Errorf("instance %s uploaded no file: no partition moved to it", name)
		}
		if left := spoolLeftovers(spools[name]); len(left) != 0 {
			t.Errorf("instance %s: files left in its spool after a clean stop: %v", name, left)
		}
	}

	truth := b.groundTruth(topic, parts)
	total := sumRecords(truth)
	bk := verifyFTPBackup(t, dir, verifyOpts{maxSize: 32 << 10, want: map[string]map[int32][]segment.Record{topic: truth}})
	for p := range int32(parts) {
		writers := map[string]bool{}
		for _, f := range bk.files[topic][p] {
			key := fmt.Sprintf("%s/%d/%s", topic, p, filepath.Base(f.path))
			if len(uploadedBy[key]) == 0 {
				t.Errorf("%s is on the server, no instance logged its upload", key)
			}
			for _, w := range uploadedBy[key] {
				writers[w] = true
			}
		}
		if len(writers) < 2 {
			t.Errorf("%s/%d: files uploaded by %v only: the partition never moved", topic, p, writers)
		}
	}
	t.Logf("%d records in %d final files on the server", total, bk.fileCount(topic))

	r, rep := verifyJSON(t, nil, dir)
	if r.code != 0 || !rep.OK || rep.Errors != 0 || rep.Warnings != 0 || rep.Records != int64(total) {
		t.Errorf("kafka-backup verify %s: exit %d, ok %v, %d errors, %d warnings, %d records (want exit 0, no problem, %d records)",
			dir, r.code, rep.OK, rep.Errors, rep.Warnings, rep.Records, total)
	}
}

// loggedFiles returns the <topic>/<partition>/<name> of every file named by
// the log messages that start with prefix.
func loggedFiles(logs, prefix string) map[string]bool {
	out := map[string]bool{}
	re := regexp.MustCompile(`msg="` + regexp.QuoteMeta(prefix) + `([^"/\s]+/[0-9]+/[0-9]+)"`)
	for _, m := range re.FindAllStringSubmatch(logs, -1) {
		out[m[1]] = true
	}
	return out
}

// notIn returns the keys of a that are not in b, sorted.
func notIn(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// waitGroupOwners waits until the consumer group is stable with n members,
// each assigned at least one partition, and partitions 0 to parts-1 all
// assigned (the group reads one topic).
func waitGroupOwners(t testing.TB, b *broker, group string, parts int32, n int, procs ...*proc) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		t.Fatalf("kgo client: %v", err)
	}
	defer cl.Close()
	waitFor(t, fmt.Sprintf("%d members of group %s with partitions", n, group), func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Groups = []string{group}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return false, err.Error()
		}
		if len(resp.Groups) != 1 {
			return false, fmt.Sprintf("%d groups described", len(resp.Groups))
		}
		g := resp.Groups[0]
		if err := kerr.ErrorForCode(g.ErrorCode); err != nil {
			return false, err.Error()
		}
		owning, assigned := 0, map[int32]bool{}
		for _, m := range g.Members {
			var as kmsg.ConsumerMemberAssignment
			if as.ReadFrom(m.MemberAssignment) != nil {
				continue
			}
			owns := false
			for _, tp := range as.Topics {
				for _, p := range tp.Partitions {
					owns, assigned[p] = true, true
				}
			}
			if owns {
				owning++
			}
		}
		return g.State == "Stable" && len(g.Members) == n && owning == n && len(assigned) == int(parts),
			fmt.Sprintf("group %s, %d members, %d with partitions, %d of %d partitions assigned", g.State, len(g.Members), owning, len(assigned), parts)
	}, procs...)
}

// produceInBackground produces small records to every partition of topic,
// five a partition every 10ms, with a kgo client until the returned function
// is called; they count as produced (groundTruth, waitCommitted).
func produceInBackground(t testing.TB, b *broker, topic string, parts int32) (stop func()) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatalf("kgo client: %v", err)
	}
	const perTick = 5
	done, stopped := make(chan struct{}), make(chan struct{})
	var perr error
	go func() {
		defer close(stopped)
		tick := time.NewTicker(10 * time.Millisecond) // a steady flow, not a synchronisation
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			var rs []*kgo.Record
			for p := range parts {
				for j := range perTick {
					rs = append(rs, &kgo.Record{Topic: topic, Partition: p,
						Key: fmt.Appendf(nil, "bg-%d-%d", i, j), Value: []byte(strings.Repeat("v", 100+i%200))})
				}
			}
			if perr = cl.ProduceSync(context.Background(), rs...).FirstErr(); perr != nil {
				return
			}
			b.mu.Lock()
			if b.produced[topic] == nil {
				b.produced[topic] = map[int32]int{}
			}
			for p := range parts {
				b.produced[topic][p] += perTick
			}
			b.mu.Unlock()
		}
	}()
	return func() {
		t.Helper()
		close(done)
		<-stopped
		cl.Close()
		if perr != nil {
			t.Fatalf("producing in the background: %v", perr)
		}
	}
}
