package restore

import (
	"io"
	"path/filepath"
	"testing"

	"github.com/kafka-backup/kafka-backup/internal/backuptest"
)

// TestOffsetMapFile: a restore's map is saved, and a second restore (a
// partition resumed) adds to it, runs merged.
func TestOffsetMapFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "map.json")
	r := &run{src: backuptest.OpenTree(t, t.TempDir()), log: io.Discard}
	ps := &partState{sum: PartitionSummary{Partition: 0}}
	for i := range int64(5) {
		ps.omap.Add(100+i, i)
	}
	plan := []*topicPlan{{topic: "a", target: "b", parts: []*partState{ps}}}
	if err := r.saveOffsetMap(path, plan); err != nil {
		t.Fatal(err)
	}
	ps2 := &partState{sum: PartitionSummary{Partition: 0}}
	ps2.omap.Add(105, 5)
	ps2.omap.Add(107, 6)
	ps3 := &partState{sum: PartitionSummary{Partition: 1}} // nothing restored: not saved
	if err := r.saveOffsetMap(path, []*topicPlan{{topic: "a", target: "b", parts: []*partState{ps2, ps3}}}); err != nil {
		t.Fatal(err)
	}
	f, err := ReadOffsetMap(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Partitions) != 1 {
		t.Fatalf("partitions %+v", f.Partitions)
	}
	p := f.Partitions[0]
	if p.Topic != "a" || p.Target != "b" || len(p.Runs) != 2 || p.Runs[0] != [3]int64{100, 0, 6} || p.Runs[1] != [3]int64{107, 6, 1} {
		t.Errorf("map %+v", p)
	}
}
