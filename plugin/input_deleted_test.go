package plugin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/kafka-backup/kafka-backup/internal/backuptest"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/segment"
)

// TestInputFileDeletedMidRead: of interleaved files, file 0 is read up to
// its batch at 200, then file 100; file 0 is deleted meanwhile, so its
// offsets 200-299 can no longer be read when its turn comes again. The
// input must not end as if the replay were complete: that file was listed
// and partly read, and 100 of its records are lost.
func TestInputFileDeletedMidRead(t *testing.T) {
	root := t.TempDir()
	recs := inRecords(0, 300, 1_700_000_000_000)
	backuptest.WriteSegment(t, root, "d", 0, "0", append(append([]segment.Record(nil), recs[:100]...), recs[200:]...), 10, segment.None)
	backuptest.WriteSegment(t, root, "d", 0, "100", recs[100:200], 10, segment.None)
	file0 := filepath.Join(layout.PartitionDir(root, "d", 0), "0")

	env := service.NewEnvironment()
	if err := Register(env); err != nil {
		t.Fatal(err)
	}
	sb := env.NewStreamBuilder()
	_ = sb.SetLoggerYAML("level: off")
	if err := sb.SetYAML(fmt.Sprintf("input:\n  kafka_backup:\n    path: %q\noutput:\n  drop: {}\n", root)); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	_ = sb.AddBatchConsumerFunc(func(_ context.Context, b service.MessageBatch) error {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range b {
			if o, _ := m.MetaGetMut("kafka_offset"); o.(int) == 100 {
				if err := os.Remove(file0); err != nil {
					t.Error(err)
				}
			}
			n++
		}
		return nil
	})
	stream, err := sb.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err = stream.Run(ctx)
	mu.Lock()
	defer mu.Unlock()
	if err == nil && n < len(recs) {
		t.Fatalf("the input ended normally having emitted %d of %d records: the rest of file 0, deleted while it was being read, was skipped", n, len(recs))
	}
}
