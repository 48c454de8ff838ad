package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/kafka-backup/kafka-backup/segment"
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
	lines := func(tag string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s-%d", tag, i)
		}
		return out
	}
	b.produce(topic, 0, kcatRun{Lines: lines("p0-before", 120)})
	b.produce(topic, 1, kcatRun{Lines: lines("p1-before", 80)})
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
	b.produce(topic, 0, kcatRun{Lines: lines("p0-after", 60)})
	removed := regexp.MustCompile(`level=error.*` + regexp.QuoteMeta(filepath.Join(dir, topic, "0")) + `/\.0\.[^ ]*\.inprogress[^\n]*removed`)
	waitFor(t, "an error naming the removed file", func() (bool, string) {
		return removed.MatchString(p.logs()), "not logged yet"
	}, p)
	waitCommitted(t, b, "removed-group", 2, []string{topic}, p)
	p.stop()
	verifyBackup(t, dir, verifyOpts{want: map[string]map[int32][]segment.Record{topic: b.groundTruth(topic, 2)}})
}
