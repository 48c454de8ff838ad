package tests

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kafka-backup/kafka-backup/segment"
)

// TestE2EScaleOutLocal runs three kafka-backup processes in one consumer
// group writing to the same folder, starting and stopping them while records
// are produced, so partitions move between them several times. Every record
// must be backed up, once, with no name collision and no file left
// unfinished.
func TestE2EScaleOutLocal(t *testing.T) {
	t.Parallel()
	needKcat(t)
	const topic, parts = "scale", 6
	b := startBroker(t, parts, topic)
	dir := filepath.Join(t.TempDir(), "backup")
	// A long idle roll: files are still open when their partition moves.
	cfg := backupConfig(redpandaInput(b, "scale-group", topic), dir, "    size: 32KiB\n    roll_duration: 1m\n")

	b.produceWorkload(topic, parts, workload{perPartition: 150, seed: 21})
	a := runBackup(t, "a", cfg)
	waitRecords(t, dir, b.totalProduced(), a)

	bb := runBackup(t, "b", cfg) // rebalance: a gives partitions to b
	b.produceWorkload(topic, parts, workload{perPartition: 150, seed: 22})
	c := runBackup(t, "c", cfg) // and to c
	b.produceWorkload(topic, parts, workload{perPartition: 150, seed: 23})
	waitCommitted(t, b, "scale-group", parts, []string{topic}, a, bb, c)

	a.stop() // rebalance: a's partitions go to b and c
	b.produceWorkload(topic, parts, workload{perPartition: 150, seed: 24})
	waitCommitted(t, b, "scale-group", parts, []string{topic}, bb, c)
	bb.stop()
	c.stop()

	for name, p := range map[string]*proc{"a": a, "b": bb, "c": c} {
		finalized := 0
		for _, line := range strings.Split(p.logs(), "\n") {
			if strings.Contains(line, "level=error") {
				t.Errorf("%s: %s", name, line)
			}
			if strings.Contains(line, "finalized ") {
				finalized++
			}
		}
		t.Logf("instance %s finalized %d files", name, finalized)
		if finalized == 0 {
			t.Errorf("instance %s finalized no file: the partitions never moved to it", name)
		}
	}
	truth := b.groundTruth(topic, parts)
	verifyBackup(t, dir, verifyOpts{maxSize: 32 << 10, want: map[string]map[int32][]segment.Record{topic: truth}})
}
