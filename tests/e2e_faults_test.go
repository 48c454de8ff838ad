package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-backup/kafka-backup/segment"
)

// TestE2EHostileHeader: a record carrying a header named kafka_topic would,
// through the redpanda input, overwrite the topic the output writes to. The
// output refuses it with an error saying so, writes nothing of that batch,
// never creates the folder the header names, and the other partitions go on.
func TestE2EHostileHeader(t *testing.T) {
	t.Parallel()
	needKcat(t)
	const topic = "hostile"
	b := startBroker(t, 2, topic)
	dir := filepath.Join(t.TempDir(), "backup")
	b.produce(topic, 0, kcatRun{Lines: []string{"evil"}, Headers: []string{"kafka_topic=..", "kafka_partition=7"}})
	b.produce(topic, 1, kcatRun{Lines: []string{"a", "b", "c"}})
	p := runBackup(t, "hostile", backupConfig(redpandaInput(b, "hostile-group", topic), dir, "    roll_duration: 500ms\n"))
	refused := regexp.MustCompile(`level=error.*header named \\?"kafka_topic\\?"`)
	waitFor(t, "the hostile record to be refused", func() (bool, string) {
		return refused.MatchString(p.logs()), "not logged yet"
	}, p)
	waitRecords(t, filepath.Join(dir, topic, "1"), 3, p)
	p.stop()
	if _, err := os.Stat(filepath.Join(dir, topic, "0")); err == nil {
		if n, _ := countRecords(filepath.Join(dir, topic, "0")); n != 0 {
			t.Errorf("%d records of the hostile partition were written", n)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != topic {
			t.Errorf("unexpected folder %s below the backup path", e.Name())
		}
	}
}

// TestE2EDiskFull backs up into a small tmpfs that fills up: errors name the
// file and the cause, nothing more is acknowledged, and once the file system
// grows the backup resumes with nothing lost or written twice.
func TestE2EDiskFull(t *testing.T) {
	t.Parallel()
	needKcat(t)
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })

	const topic = "full"
	b := startBroker(t, 2, topic)
	b.produceWorkload(topic, 2, workload{perPartition: 600, seed: 31}) // about 1 MB: four times the space
	p := runBackup(t, "full", backupConfig(redpandaInput(b, "full-group", topic), dir, "    size: 64KiB\n"))
	noSpace := regexp.MustCompile(`level=error.*` + regexp.QuoteMeta(dir) + `/` + topic + `/[01]/\.[0-9]+\.[^ ]*\.inprogress.*no space left on device`)
	waitFor(t, "an error naming the file and the full disk", func() (bool, string) {
		return noSpace.MatchString(p.logs()), "not logged yet"
	}, p)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got, err := committed(cl, "full-group", topic, 2)
	if err != nil {
		t.Fatal(err)
	}
	for part, off := range got {
		if off >= int64(b.producedCount(topic, part)) {
			t.Fatalf("partition %d: offset %d committed although the disk is full", part, off)
		}
	}
	if out, err := exec.Command("mount", "-o", "remount,size=64m", dir).CombinedOutput(); err != nil {
		t.Fatalf("growing the tmpfs: %v: %s", err, out)
	}
	waitCommitted(t, b, "full-group", 2, []string{topic}, p)
	p.stop()
	truth := b.groundTruth(topic, 2)
	verifyBackup(t, dir, verifyOpts{maxSize: 64 << 10, want: map[string]map[int32][]segment.Record{topic: truth}})
	if strings.Count(p.logs(), "no space left on device") == 0 {
		t.Error("no error said the disk was full")
	}
}
