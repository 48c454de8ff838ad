package restore

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-backup/kafka-backup/internal/backuptest"
	"github.com/kafka-backup/kafka-backup/metadata"
)

// writeSnapshot stores a snapshot of topic (one partition) with group at
// offset o in root's metadata folder.
func writeSnapshot(t *testing.T, root, topic, group string, o int64) {
	t.Helper()
	s := &metadata.Snapshot{Format: metadata.Format, Time: time.Date(2024, 5, 1, 13, 0, 0, 0, time.UTC), Reason: "interval", Instance: "test",
		Topics: []metadata.Topic{{Name: topic, Partitions: 1, ReplicationFactor: 1}},
		Groups: []metadata.Group{{Name: group, Offsets: []metadata.Offset{{Topic: topic, Partition: 0, Offset: o}}}}}
	data, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := (metadata.LocalStore{Root: root}).Put(context.Background(), metadata.Name(s.Time, s.Instance), data); err != nil {
		t.Fatal(err)
	}
}

// committed returns group's committed offset of topic/0 on brokers, -1 for none.
func committed(t *testing.T, brokers []string, group, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup(topic, 0); ok {
		return o.At
	}
	return -1
}

// TestGroupsResumedRestore: a partition restored in two runs (the second
// with --from-offset, as a failed partition's error says, the other
// options as before). The group's committed offset lies in the first run's
// records: the second run must not move it to its own first record, which
// would skip, on the target, the records the first run restored after it.
func TestGroupsResumedRestore(t *testing.T) {
	t.Parallel()
	for _, withFile := range []bool{false, true} {
		what := "without offsets file"
		if withFile {
			what = "with offsets file"
		}
		t.Run(what, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			backuptest.WriteSegment(t, root, "orders", 0, name(0), recs(0, 19), 5, 0)
			writeSnapshot(t, root, "orders", "billing", 5)
			brokers := cluster(t, 1, "orders")
			cfg := Config{ConsumerGroups: []*regexp.Regexp{regexp.MustCompile("^(?:billing)$")}, ToOffset: i64(9)}
			if withFile {
				cfg.OffsetsFile = filepath.Join(t.TempDir(), "map.json")
			}
			if _, err := restore(t, root, brokers, cfg); err != nil {
				t.Fatal(err)
			}
			if got := committed(t, brokers, "billing", "orders"); got != 5 {
				t.Fatalf("after the first run: committed %d, want 5", got)
			}
			cfg.ToOffset, cfg.FromOffset = nil, i64(10)
			sum, err := restore(t, root, brokers, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if notes := strings.Join(sum.Metadata.Notes, "\n"); withFile != (len(sum.Metadata.Commits) == 1) || !withFile && !strings.Contains(notes, "from source offset 5 to 9 were left out") {
				t.Errorf("second run: commits %+v, notes %s", sum.Metadata.Commits, notes)
			}
			if got := committed(t, brokers, "billing", "orders"); got != 5 {
				t.Errorf("after the second run: committed %d, want 5 (records 5 to 9 of the first run are skipped otherwise)", got)
			}
		})
	}
}
