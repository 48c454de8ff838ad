package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-backup/kafka-backup/internal/backuptest"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tests/ftpd"
)

// TestFaultRecreatedTopic is Issue 12 row 3: a backed-up topic is deleted and
// recreated, so its offsets start at 0 again, and records are produced to it
// (the same values as before: only their timestamps differ). A restarted
// backup is delivered the new records at offsets the old files hold. It must
// not acknowledge them as "already backed up": it refuses the partition with
// an error naming the recreation, the group commits nothing of it, and
// verify fails on the folder. Once the operator does what the error says
// (move the old backup away), the new topic is backed up in full and the old
// backup stays readable where it was moved.
func TestFaultRecreatedTopic(t *testing.T) {
	t.Parallel()
	needKcat(t)
	const topic, group = "recreate", "recreate-group"
	b := startBroker(t, 1, topic)
	root := t.TempDir()
	dir := filepath.Join(root, "backup")
	// Short group timeouts (crashInput): each run joins the group right after
	// the last one left it. A refused batch is retried until shutdown_timeout
	// ends the run that refuses it: 5s, not 30s.
	cfg := strings.Replace(backupConfig(crashInput(b, group, topic), dir, "    roll_duration: 300ms\n"), "shutdown_timeout: 30s", "shutdown_timeout: 5s", 1)

	b.produce(topic, 0, kcatRun{Lines: recreateLines(300)})
	old := b.groundTruth(topic, 1)
	first := runBackup(t, "first", cfg)
	waitCommitted(t, b, group, 1, []string{topic}, first)
	first.stop()

	recreateTopic(t, b, topic, 1)
	b.produce(topic, 0, kcatRun{Lines: recreateLines(200)})
	fresh := b.groundTruth(topic, 1)

	second := runBackup(t, "second", cfg)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Today the records are acknowledged as already backed up: the group
	// commits the new topic's end. What must happen is an error naming the
	// recreation, and no commit.
	refused := regexp.MustCompile(`level=error.*recreate/0.*recreated`)
	waitFor(t, "the output to refuse the recreated topic's partition, or the group to commit it", func() (bool, string) {
		got, err := committed(cl, group, topic, 1)
		if err != nil {
			return false, err.Error()
		}
		if off, ok := got[0]; ok && off == 200 {
			t.Fatalf("the group committed offset %d, the end of the recreated topic, and no file holds the new records: they were acknowledged as already backed up", off)
		}
		return refused.MatchString(second.logs()), fmt.Sprintf("no error naming the recreation logged yet; committed %v", got)
	}, second)
	if got, err := committed(cl, group, topic, 1); err != nil {
		t.Fatal(err)
	} else if off, ok := got[0]; ok && off <= 200 {
		t.Errorf("the group committed offset %d of the recreated topic although its records were not backed up", off)
	}
	second.stop()

	r := inspectRun(t, nil, "verify", dir)
	if r.code == 0 {
		t.Errorf("verify exits 0 on a folder whose topic was recreated and not backed up")
	}
	if !strings.Contains(r.stdout+r.stderr, "recreated") {
		t.Errorf("verify does not say the topic was recreated")
	}
	// The committed offset check again, after the second run had all the
	// time it took to stop and verify to run.
	if got, err := committed(cl, group, topic, 1); err == nil && got[0] > 0 && got[0] <= 200 {
		t.Errorf("the group committed offset %d of the recreated topic although its records were not backed up", got[0])
	}

	// The operator moves the old backup out of the location, as the error
	// and the README say, and deletes the note from the moved copy.
	archive := filepath.Join(root, "archive")
	if err := os.MkdirAll(archive, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, topic), filepath.Join(archive, topic)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(archive, topic, "0", recreatedNote)); err != nil {
		t.Errorf("no note %s in the refused partition folder: %v", recreatedNote, err)
	}
	third := runBackup(t, "third", cfg)
	waitCommitted(t, b, group, 1, []string{topic}, third)
	third.stop()
	if strings.Contains(third.logs(), "recreated") {
		t.Errorf("the run after the old backup was moved away still refuses the partition")
	}
	verifyBackup(t, dir, verifyOpts{want: map[string]map[int32][]segment.Record{topic: fresh}})
	verifyBackup(t, archive, verifyOpts{want: map[string]map[int32][]segment.Record{topic: old}})
	for _, loc := range []string{dir, archive} {
		if r := inspectRun(t, nil, "verify", loc); r.code != 0 {
			t.Errorf("verify %s: exit %d", loc, r.code)
		}
	}
}

// TestFaultRedeliveryIsNotRecreation: records delivered again after a
// restart (here all of them: a second consumer group reads the topic from
// the start) are the same records as those backed up. They must be skipped
// as already backed up, without any error, and the records after them
// written.
func TestFaultRedeliveryIsNotRecreation(t *testing.T) {
	t.Parallel()
	needKcat(t)
	const topic = "redeliver"
	b := startBroker(t, 2, topic)
	dir := filepath.Join(t.TempDir(), "backup")
	b.produceWorkload(topic, 2, workload{perPartition: 200, seed: 41})
	first := runBackup(t, "first", backupConfig(redpandaInput(b, "redeliver-a", topic), dir, "    roll_duration: 300ms\n"))
	waitCommitted(t, b, "redeliver-a", 2, []string{topic}, first)
	first.stop()

	b.produceWorkload(topic, 2, workload{perPartition: 50, seed: 42})
	second := runBackup(t, "second", backupConfig(redpandaInput(b, "redeliver-b", topic), dir, "    roll_duration: 300ms\n"))
	waitCommitted(t, b, "redeliver-b", 2, []string{topic}, second)
	second.stop()
	for _, line := range strings.Split(second.logs(), "\n") {
		if strings.Contains(line, "level=error") || strings.Contains(line, "recreated") {
			t.Errorf("second run: %s", line)
		}
	}
	verifyBackup(t, dir, verifyOpts{want: map[string]map[int32][]segment.Record{topic: b.groundTruth(topic, 2)}})
	if r := inspectRun(t, nil, "verify", dir); r.code != 0 {
		t.Errorf("verify: exit %d", r.code)
	}
}

// recreatedNote is the file the output leaves in a partition folder it
// refuses because the topic was recreated.
const recreatedNote = ".kafka-backup.recreated"

// recreateLines returns n record values, the same for every call.
func recreateLines(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("record-%d", i)
	}
	return out
}

// recreateTopic deletes topic and creates it again with the given number of
// partitions, as an operator would with kafka-topics.sh, and forgets what was
// produced to it.
func recreateTopic(t testing.TB, b *broker, topic string, partitions int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	del := kmsg.NewPtrDeleteTopicsRequest()
	del.TimeoutMillis = 5000
	del.TopicNames = []string{topic}
	dt := kmsg.NewDeleteTopicsRequestTopic()
	dt.Topic = kmsg.StringPtr(topic)
	del.Topics = append(del.Topics, dt)
	dresp, err := del.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("deleting topic %s: %v", topic, err)
	}
	for _, r := range dresp.Topics {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			t.Fatalf("deleting topic %s: %v", topic, err)
		}
	}
	waitFor(t, "topic "+topic+" to be gone", func() (bool, string) {
		_, err := backuptest.EndOffsets([]string{b.addr}, topic, 1)
		return err != nil, "still listed"
	})
	create := kmsg.NewPtrCreateTopicsRequest()
	create.TimeoutMillis = 5000
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic = topic
	ct.NumPartitions = partitions
	ct.ReplicationFactor = 1
	create.Topics = append(create.Topics, ct)
	cresp, err := create.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("creating topic %s: %v", topic, err)
	}
	for _, r := range cresp.Topics {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			t.Fatalf("creating topic %s: %v", topic, err)
		}
	}
	waitFor(t, "topic "+topic+" to be back, empty", func() (bool, string) {
		ends, err := backuptest.EndOffsets([]string{b.addr}, topic, partitions)
		if err != nil {
			return false, err.Error()
		}
		return len(ends) > 0 && ends[0] == 0, fmt.Sprintf("end offsets %v", ends)
	})
	b.mu.Lock()
	delete(b.produced, topic)
	b.mu.Unlock()
}

// TestFaultRecreatedTopicFTP is Issue 12 row 3 through an FTP destination:
// the old topic's files are on the server only (the spool is empty), so the
// record delivered again is compared with the one the server holds. The
// refusal note goes to the server too, where verify finds it.
func TestFaultRecreatedTopicFTP(t *testing.T) {
	t.Parallel()
	needKcat(t)
	srv := ftpd.StartVsftpd(t, ftpd.Options{})
	logServerOnFailure(t, srv)
	const topic, group = "recreate", "recreate-ftp"
	const remote = "/backups/recreate"
	b := startBroker(t, 1, topic)
	spool := filepath.Join(t.TempDir(), "spool")
	dir := srv.Path(remote)
	cfg := strings.Replace(backupConfig(crashInput(b, group, topic), remote, "    roll_duration: 300ms\n"+ftpFS(srv, ftpOpts{spool: spool})),
		"shutdown_timeout: 30s", "shutdown_timeout: 5s", 1)

	b.produce(topic, 0, kcatRun{Lines: recreateLines(300)})
	old := b.groundTruth(topic, 1)
	first := runBackupEnv(t, "first", cfg, ftpEnv(srv))
	waitFinalRecords(t, dir, 300, first)
	waitFor(t, "an empty spool", func() (bool, string) {
		left := spoolLeftovers(spool)
		return len(left) == 0, fmt.Sprintf("left in the spool: %v", left)
	}, first)
	waitCommitted(t, b, group, 1, []string{topic}, first)
	first.stop()

	recreateTopic(t, b, topic, 1)
	b.produce(topic, 0, kcatRun{Lines: recreateLines(200)})
	fresh := b.groundTruth(topic, 1)

	second := runBackupEnv(t, "second", cfg, ftpEnv(srv))
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	refused := regexp.MustCompile(`level=error.*recreate/0.*recreated`)
	waitFor(t, "the output to refuse the recreated topic's partition, or the group to commit it", func() (bool, string) {
		got, err := committed(cl, group, topic, 1)
		if err != nil {
			return false, err.Error()
		}
		if off, ok := got[0]; ok && off == 200 {
			t.Fatalf("the group committed offset %d, the end of the recreated topic, and no file holds the new records: they were acknowledged as already backed up", off)
		}
		return refused.MatchString(second.logs()), fmt.Sprintf("no error naming the recreation logged yet; committed %v", got)
	}, second)
	second.stop()
	if _, err := os.Stat(filepath.Join(dir, topic, "0", recreatedNote)); err != nil {
		t.Errorf("no note on the server: %v", err)
	}
	loc := "ftp://" + srv.User + "@" + srv.Addr + remote
	env := []string{"KAFKA_BACKUP_FTP_PASSWORD=" + srv.Password}
	if r := inspectRun(t, env, "verify", loc); r.code == 0 || !strings.Contains(r.stdout, "recreated") {
		t.Errorf("verify of the server: exit %d, want an error saying the topic was recreated", r.code)
	}

	// The operator moves the old backup out of the location on the server
	// and the spool's partition folder out of the spool, and deletes the
	// note from the moved copy.
	archive := srv.Path("/backups/archive")
	if err := os.MkdirAll(archive, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, topic), filepath.Join(archive, topic)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(archive, topic, "0", recreatedNote)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(spool, topic), filepath.Join(t.TempDir(), "old-spool")); err != nil {
		t.Fatal(err)
	}
	third := runBackupEnv(t, "third", cfg, ftpEnv(srv))
	waitFinalRecords(t, dir, 200, third)
	waitCommitted(t, b, group, 1, []string{topic}, third)
	third.stop()
	verifyFTPBackup(t, dir, verifyOpts{want: map[string]map[int32][]segment.Record{topic: fresh}})
	verifyFTPBackup(t, archive, verifyOpts{want: map[string]map[int32][]segment.Record{topic: old}})
	if r := inspectRun(t, env, "verify", loc); r.code != 0 {
		t.Errorf("verify of the new backup on the server: exit %d", r.code)
	}
}
