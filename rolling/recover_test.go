package rolling_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/rolling"
	"github.com/kafka-backup/kafka-backup/segment"
)

// crashedFile writes what a crashed writer leaves: an in-progress file with
// complete batches and, when torn, half of one more.
func crashedFile(t *testing.T, dir, instance string, recs []segment.Record, torn bool) string {
	t.Helper()
	e, _ := segment.NewEncoder(segment.None)
	var data []byte
	for r := recs; len(r) > 0; {
		var n int
		data, n = e.AppendBatch(data, r[:min(10, len(r))], 1<<30)
		r = r[n:]
	}
	if torn {
		extra, _ := e.AppendBatch(nil, []segment.Record{{Offset: recs[len(recs)-1].Offset + 1, Value: []byte("never acknowledged")}}, 1<<30)
		data = append(data, extra[:len(extra)/2]...)
	}
	path := filepath.Join(dir, layout.InProgressName(layout.NamePlain.FileName(recs[0].Offset), instance))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRecoverCrashedFiles(t *testing.T) {
	root := t.TempDir()
	pdir := layout.PartitionDir(root, "t", 0)
	recs := makeRecords(0, 45, 100, 3)
	crashedFile(t, pdir, "dead-1", recs[:25], true)
	crashedFile(t, pdir, "dead-2", recs[25:], false)
	// Half a batch and nothing else: nothing in it was acknowledged.
	crashedFile(t, layout.PartitionDir(root, "t", 1), "dead-3", []segment.Record{{Offset: 7}}, true)
	os.Truncate(filepath.Join(layout.PartitionDir(root, "t", 1), layout.InProgressName("7", "dead-3")), 20)
	// A file a live writer holds is not touched.
	live := crashedFile(t, layout.PartitionDir(root, "t", 2), "live-1", recs[:5], false)
	f, err := os.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	rec := newRecorder()
	w := newWriter(t, baseConfig(root, rec))
	// The replay from the last commit adds nothing.
	write(t, w, "t", 0, recs)
	closeWriter(t, w)

	got, finals := checkPartition(t, root, "t", 0, layout.NamePlain, 1<<30)
	checkRecords(t, got, recs)
	if len(finals) != 2 {
		t.Fatalf("files %v, want the two recovered ones", fileNames(finals))
	}
	if n := rec.countReason(rolling.ReasonRecovered); n != 2 {
		t.Fatalf("%d files finalized as recovered, want 2", n)
	}
	if entries, _ := os.ReadDir(layout.PartitionDir(root, "t", 1)); len(entries) != 0 {
		t.Fatalf("an in-progress file with no complete batch was kept: %v", entries)
	}
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("a live writer's file was touched: %v", err)
	}
}
