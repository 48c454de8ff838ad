package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-backup/kafka-backup/internal/backuptest"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tests/ftpd"
)

// TestFaultPartitionFolderRemoved is Issue 12 row 5: a cleanup job deletes
// partition folders while the backup runs, with the partitions' acknowledged
// records still in their open in-progress files. The writer notices that the
// path no longer names its open file: the next batch fails with an error
// naming the file and the cause, the records already acknowledged are written
// again from the open file, and after a clean shutdown every record is in a
// final file: partition 0 gets more records after the deletion, partition 1
// none (its file is checked when it rolls at shutdown).
func TestFaultPartitionFolderRemoved(t *testing.T) {
	t.Parallel()
	needKcat(t)
	const topic = "removed"
	b := startBroker(t, 2, topic)
	dir := filepath.Join(t.TempDir(), "backup")
	b.produce(topic, 0, kcatRun{Lines: numbered("p0-before", 120)})
	b.produce(topic, 1, kcatRun{Lines: numbered("p1-before", 80)})
	// The files stay open: nothing rolls before the shutdown.
	p := runBackup(t, "removed", backupConfig(redpandaInput(b, "removed-group", topic), dir, "    roll_duration: 10m\n    max_age: 1h\n"))
	waitCommitted(t, b, "removed-group", 2, []string{topic}, p)
	if n, _ := countRecords(dir); n != 200 {
		t.Fatalf("%d records in files before the deletion, want 200", n)
	}
	for part := range 2 {
		if err := os.RemoveAll(filepath.Join(dir, topic, fmt.Sprint(part))); err != nil {
			t.Fatal(err)
		}
	}
	b.produce(topic, 0, kcatRun{Lines: numbered("p0-after", 60)})
	removed := regexp.MustCompile(`level=error.*` + regexp.QuoteMeta(filepath.Join(dir, topic, "0")) + `/\.0\.[^ ]*\.inprogress[^\n]*removed`)
	waitFor(t, "an error naming the removed file", func() (bool, string) {
		return removed.MatchString(p.logs()), "not logged yet"
	}, p)
	waitCommitted(t, b, "removed-group", 2, []string{topic}, p)
	p.stop()
	verifyBackup(t, dir, verifyOpts{want: map[string]map[int32][]segment.Record{topic: b.groundTruth(topic, 2)}})
}

// TestFaultSpoolFolderRemoved is Issue 12 row 5 for an FTP destination: the
// files are built in the local spool, and a cleanup job deletes a spool
// partition folder while its file is open with acknowledged records. As on
// local disk, the error names the file and the cause, and every record
// reaches the server.
func TestFaultSpoolFolderRemoved(t *testing.T) {
	t.Parallel()
	needKcat(t)
	srv := ftpd.StartPureFtpd(t, ftpd.Options{})
	logServerOnFailure(t, srv)
	const topic, remote = "spooled", "/backups"
	b := startBroker(t, 1, topic)
	b.produce(topic, 0, kcatRun{Lines: numbered("before", 100)})
	spool := filepath.Join(t.TempDir(), "spool")
	cfg := backupConfig(redpandaInput(b, "spooled-group", topic), remote, "    roll_duration: 10m\n    max_age: 1h\n"+ftpFS(srv, ftpOpts{spool: spool}))
	p := runBackupEnv(t, "spooled", cfg, ftpEnv(srv))
	waitCommitted(t, b, "spooled-group", 1, []string{topic}, p)
	if err := os.RemoveAll(filepath.Join(spool, topic, "0")); err != nil {
		t.Fatal(err)
	}
	b.produce(topic, 0, kcatRun{Lines: numbered("after", 50)})
	removed := regexp.MustCompile(`level=error.*` + regexp.QuoteMeta(filepath.Join(spool, topic, "0")) + `/\.0\.[^ ]*\.inprogress[^\n]*removed`)
	waitFor(t, "an error naming the removed spool file", func() (bool, string) {
		return removed.MatchString(p.logs()), "not logged yet"
	}, p)
	waitCommitted(t, b, "spooled-group", 1, []string{topic}, p)
	p.stop()
	verifyFTPBackup(t, srv.Path(remote), verifyOpts{want: map[string]map[int32][]segment.Record{topic: b.groundTruth(topic, 1)}})
}

// numbered returns n lines "<tag>-0", "<tag>-1", ….
func numbered(tag string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", tag, i)
	}
	return out
}

// TestFaultAbortedTransactions is Issue 12 row 4: records of aborted
// transactions must not be backed up. Transactions are produced to kfake
// with a transactional franz-go client, some committed, some aborted, and
// backed up with each example config for local disk as shipped (the
// recommended config): the backup holds exactly the committed records.
func TestFaultAbortedTransactions(t *testing.T) {
	t.Parallel()
	for _, example := range []string{"local-redpanda.yaml", "local-kafka-franz.yaml"} {
		t.Run(example, func(t *testing.T) {
			t.Parallel()
			const topic, partitions = "txns", 2
			b := startBroker(t, partitions, topic)
			aborted := produceTransactions(t, b, topic, partitions)
			truth := readCommitted(t, b, topic, partitions)
			conf, err := os.ReadFile(filepath.Join("..", "config", example))
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "backup")
			p := runBackupEnv(t, example, "http: {enabled: false}\n"+string(conf), []string{
				"KAFKA_BROKERS=" + b.addr, "BACKUP_TOPICS=" + topic, "BACKUP_GROUP=txn-group", "BACKUP_PATH=" + dir,
			})
			// Each partition is delivered in order and ends with a committed
			// transaction: once its last record is in a file, every record
			// that will be delivered is.
			for part, recs := range truth {
				last := recs[len(recs)-1].Offset
				waitFor(t, fmt.Sprintf("offset %d of partition %d in the backup", last, part), func() (bool, string) {
					n, _, err := headerRecords(filepath.Join(dir, topic, fmt.Sprint(part)), func(string) bool { return true })
					return err == nil && n >= len(recs), fmt.Sprintf("%d records in files (%v), %d committed", n, err, len(recs))
				}, p)
			}
			p.stop()
			bk := verifyBackup(t, dir, verifyOpts{want: map[string]map[int32][]segment.Record{topic: truth}})
			var bad []string
			for _, files := range bk.files[topic] {
				for _, f := range files {
					for _, r := range f.recs {
						if aborted[string(r.Value)] {
							bad = append(bad, fmt.Sprintf("%s offset %d", f.path, r.Offset))
						}
					}
				}
			}
			if len(bad) > 0 {
				t.Errorf("%d records of aborted transactions in the backup, the first: %s", len(bad), bad[0])
			}
		})
	}
}

// TestFaultUncommittedInputWarned is Issue 12 row 4: a Kafka input feeding
// kafka_backup that reads uncommitted records (the inputs' default) gets a
// warning naming the input and the fix, from lint (which still exits 0) and
// in the log at the start of run; read_committed, or another output, gets
// none.
func TestFaultUncommittedInputWarned(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := startBroker(t, 1, "warned")
	input := func(kind, extra string) string {
		return fmt.Sprintf("  %s:\n    seed_brokers: [%q]\n    topics: [warned]\n    consumer_group: warned\n%s", kind, b.addr, extra)
	}
	warned := regexp.MustCompile(`input\.(redpanda|kafka_franz) reads records of aborted and open transactions \(transaction_isolation_level: read_uncommitted[^)]*\)[^\n]*set transaction_isolation_level: read_committed`)
	for _, c := range []struct {
		name, input, output string
		warn                bool
	}{
		{"redpanda default", input("redpanda", ""), "", true},
		{"kafka_franz default", input("kafka_franz", ""), "", true},
		{"redpanda read_uncommitted", input("redpanda", "    transaction_isolation_level: read_uncommitted\n"), "", true},
		{"redpanda read_committed", input("redpanda", "    transaction_isolation_level: read_committed\n"), "", false},
		{"kafka_franz read_committed", input("kafka_franz", "    transaction_isolation_level: read_committed\n"), "", false},
		{"not backed up", input("redpanda", ""), "output:\n  drop: {}\n", false},
	} {
		cfg := backupConfig(c.input, filepath.Join(dir, "backup"), "")
		if c.output != "" {
			cfg = cfg[:strings.Index(cfg, "output:")] + c.output
		}
		path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		out, code := kb(t, "lint", path)
		if code != 0 || warned.MatchString(out) != c.warn {
			t.Errorf("%s: lint: exit %d, warning %v, want exit 0, warning %v:\n%s", c.name, code, warned.MatchString(out), c.warn, out)
		}
		if !c.warn {
			continue
		}
		p := runBackup(t, strings.ReplaceAll(c.name, " ", "_"), cfg)
		// The warning is logged before Benthos handles SIGTERM: wait for the
		// output to be active too, or stop() may kill a process still starting.
		waitFor(t, c.name+": the warning in the log of run", func() (bool, string) {
			logs := p.logs()
			return regexp.MustCompile(`level=warn.*`+warned.String()).MatchString(logs) &&
				strings.Contains(logs, "Output type kafka_backup is now active"), "not logged"
		}, p)
		p.stop()
	}
}

// produceTransactions produces to every partition of topic, with one
// transactional franz-go client, transactions that are committed and aborted
// in turn, the last one committed, and returns the values of the aborted
// records.
func produceTransactions(t *testing.T, b *broker, topic string, partitions int32) map[string]bool {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.TransactionalID("kafka-backup-test-txn"),
		kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	aborted := map[string]bool{}
	for i, n := range []int{40, 25, 30, 1, 20, 35, 15} {
		commit := i%2 == 0
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for part := range partitions {
			for j := range n {
				v := fmt.Sprintf("txn%d-p%d-%d-committed=%v", i, part, j, commit)
				if err := cl.ProduceSync(ctx, &kgo.Record{Partition: part, Value: []byte(v)}).FirstErr(); err != nil {
					t.Fatalf("producing in transaction %d: %v", i, err)
				}
				if !commit {
					aborted[v] = true
				}
			}
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("ending transaction %d (commit %v): %v", i, commit, err)
		}
	}
	return aborted
}

// readCommitted reads every committed record of topic with a read_committed
// kgo client, up to each partition's end offset.
func readCommitted(t *testing.T, b *broker, topic string, partitions int32) map[int32][]segment.Record {
	t.Helper()
	ends, err := backuptest.EndOffsets([]string{b.addr}, topic, partitions)
	if err != nil {
		t.Fatal(err)
	}
	offs := map[int32]kgo.Offset{}
	for p := range partitions {
		offs[p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	out := map[int32][]segment.Record{}
	done := func() bool {
		for p := range partitions {
			recs := out[p]
			// The end offset is past the last record's commit marker.
			if len(recs) == 0 || recs[len(recs)-1].Offset < ends[p]-2 {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading the committed records of %s: %v so far, end offsets %v", topic, len(out), ends)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("%s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if strings.Contains(string(r.Value), "committed=false") {
				t.Fatalf("a read_committed client got %q, of an aborted transaction", r.Value)
			}
			out[r.Partition] = append(out[r.Partition], backuptest.FromKgo(r))
		})
	}
	return out
}

// TestFaultFTPWithoutHostname is Issue 12 row 10: an FTP destination with no
// hostname was accepted by lint and backed up to localhost. Lint now fails
// naming fs.ftp.hostname, and so does run, at start, before it consumes.
func TestFaultFTPWithoutHostname(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, fields := range map[string]string{
		"no ftp section": "    fs: {schema: ftp}\n",
		"no hostname":    "    fs:\n      schema: ftp\n      ftp: {user: backup, spool: " + dir + "/spool}\n",
		"empty hostname": "    fs:\n      schema: ftp\n      ftp: {hostname: \"\"}\n",
		"blank hostname": "    fs:\n      schema: ftp\n      ftp: {hostname: \"  \"}\n",
	} {
		t.Run(name, func(t *testing.T) {
			cfg := "http: {enabled: false}\n" + lintConfig(fields)
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			out, code := kb(t, "lint", path)
			if code == 0 || !strings.Contains(out, "fs.ftp.hostname") {
				t.Errorf("lint: exit %d, want non-zero and fs.ftp.hostname named:\n%s", code, out)
			}
			out, code = kbIn(t, dir, 20*time.Second, "run", path)
			if code == 0 || !strings.Contains(out, "fs.ftp.hostname") {
				t.Errorf("run: exit %d, want non-zero and fs.ftp.hostname named:\n%s", code, out)
			}
		})
	}
	// Local needs no hostname.
	path := filepath.Join(dir, "local.yaml")
	if err := os.WriteFile(path, []byte(lintConfig("    fs: {schema: local}\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := kb(t, "lint", path); code != 0 {
		t.Errorf("lint of a local destination: exit %d:\n%s", code, out)
	}
}

// kbIn runs the kafka-backup binary with args in the folder dir, for at most
// timeout, and returns its combined output and exit code (-1 when it was
// killed at the timeout).
func kbIn(t *testing.T, dir string, timeout time.Duration, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, kbBin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case ctx.Err() != nil:
		return string(out), -1
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	default:
		t.Fatalf("kafka-backup %s: %v\n%s", strings.Join(args, " "), err, out)
		return "", 0
	}
}
