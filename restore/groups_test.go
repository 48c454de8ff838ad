package restore

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-backup/kafka-backup/internal/backuptest"
	"github.com/kafka-backup/kafka-backup/metadata"
	"github.com/kafka-backup/kafka-backup/tests/ftptest"
	"github.com/kafka-backup/kafka-backup/tree"
)

// writeSnapshot stores a snapshot of topic (one partition) with group at
// offset o in root's metadata folder.
func writeSnapshot(t *testing.T, root, topic, group string, o int64) {
	t.Helper()
	storeSnapshot(t, root, &metadata.Snapshot{Topics: []metadata.Topic{{Name: topic, Partitions: 1, ReplicationFactor: 1}},
		Groups: []metadata.Group{{Name: group, Offsets: []metadata.Offset{{Topic: topic, Partition: 0, Offset: o}}}}})
}

// storeSnapshot stores s, its time and instance set, in root's metadata
// folder.
func storeSnapshot(t *testing.T, root string, s *metadata.Snapshot) {
	t.Helper()
	if s.Time.IsZero() {
		s.Time = time.Date(2024, 5, 1, 13, 0, 0, 0, time.UTC)
	}
	s.Format, s.Reason, s.Instance = metadata.Format, "interval", "test"
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

// TestGroupsFromOffsetIntoEmptyTopic: --from-offset above the group's
// offset into an empty target partition: no earlier run restored anything
// there, so the group gets the first restored record, as the rule below the
// first says.
func TestGroupsFromOffsetIntoEmptyTopic(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	backuptest.WriteSegment(t, root, "orders", 0, name(0), recs(0, 19), 5, 0)
	writeSnapshot(t, root, "orders", "billing", 5)
	brokers := cluster(t, 1, "orders")
	sum, err := restore(t, root, brokers, Config{ConsumerGroups: []*regexp.Regexp{regexp.MustCompile("^(?:billing)$")}, FromOffset: i64(10)})
	if err != nil {
		t.Fatal(err)
	}
	if c := sum.Metadata.Commits; len(c) != 1 || c[0].TargetOffset != 0 || c[0].Rule != metadata.RuleBelow {
		t.Errorf("commits %+v, want billing at 0 (below first)", c)
	}
	if got := committed(t, brokers, "billing", "orders"); got != 0 {
		t.Errorf("committed %d, want 0", got)
	}
}

// TestCreateTopicsRefusedConfig: the target refuses a config of the
// backup's snapshot (another vendor's or version's, e.g. Redpanda's
// redpanda.* into Kafka). The error names the config and the fix, and
// --topic-config KEY= leaves it to the target's default, the snapshot's
// other configs kept.
func TestCreateTopicsRefusedConfig(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	backuptest.WriteSegment(t, root, "orders", 0, name(0), recs(0, 9), 5, 0)
	storeSnapshot(t, root, &metadata.Snapshot{Topics: []metadata.Topic{{Name: "orders", Partitions: 2, ReplicationFactor: 1, ConfigsRead: true,
		Configs: map[string]string{"retention.ms": "3600000", "redpanda.remote.read": "true"}}}})
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.ControlKey(int16(kmsg.CreateTopics), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kr.(*kmsg.CreateTopicsRequest)
		for _, rt := range req.Topics {
			for _, rc := range rt.Configs {
				if strings.HasPrefix(rc.Name, "redpanda.") {
					resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
					st := kmsg.NewCreateTopicsResponseTopic()
					st.Topic, st.ErrorCode, st.ErrorMessage = rt.Topic, kerr.InvalidConfig.Code, kmsg.StringPtr("Unknown topic config name: "+rc.Name)
					resp.Topics = append(resp.Topics, st)
					return resp, nil, true
				}
			}
		}
		return nil, nil, false
	})
	brokers := c.ListenAddrs()
	_, err = restore(t, root, brokers, Config{CreateTopics: true})
	if err == nil || !strings.Contains(err.Error(), "--topic-config redpanda.remote.read=") {
		t.Fatalf("error %v, want one naming the fix --topic-config redpanda.remote.read=", err)
	}
	if _, err := restore(t, root, brokers, Config{CreateTopics: true, TopicConfigs: map[string]string{"redpanda.remote.read": ""}}); err != nil {
		t.Fatalf("with --topic-config redpanda.remote.read=: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rcs, err := kadm.NewClient(cl).DescribeTopicConfigs(context.Background(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On("orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]string{}
	for _, cf := range rc.Configs {
		if cf.Source == kmsg.ConfigSourceDynamicTopicConfig {
			set[cf.Key] = cf.MaybeValue()
		}
	}
	if len(set) != 1 || set["retention.ms"] != "3600000" {
		t.Errorf("configs set on the created topic: %v, want retention.ms=3600000 only", set)
	}
}

// TestSnapshotsReadNewestFirst: a backup taken for weeks holds a snapshot a
// minute. restore --consumer-groups needs the latest of each topic (at or
// before --until): it must not download every snapshot from the FTP
// server first, which takes longer than the restore itself.
func TestSnapshotsReadNewestFirst(t *testing.T) {
	t.Parallel()
	srv := ftptest.Start(t)
	root := srv.LocalPath("/backups")
	backuptest.WriteSegment(t, root, "orders", 0, name(0), recs(0, 19), 5, 0)
	const n = 200
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for i := range n {
		storeSnapshot(t, root, &metadata.Snapshot{Time: at.Add(time.Duration(i) * time.Minute),
			Topics: []metadata.Topic{{Name: "orders", Partitions: 1, ReplicationFactor: 1}},
			Groups: []metadata.Group{{Name: "billing", Offsets: []metadata.Offset{{Topic: "orders", Partition: 0, Offset: int64(i % 20)}}}}})
	}
	ctx := context.Background()
	src, err := tree.Open(ctx, fmt.Sprintf("ftp://%s@%s/backups", srv.User, srv.Addr), tree.Options{Password: srv.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	until := at.Add(150 * time.Minute) // the snapshot of i = 150: offset 10
	before := srv.Counts().Downloads
	sum, err := Run(ctx, Config{Source: src, DryRun: true, Until: &until, Log: io.Discard,
		ConsumerGroups: []*regexp.Regexp{regexp.MustCompile("^(?:billing)$")}})
	if err != nil {
		t.Fatal(err)
	}
	if c := sum.Metadata.Commits; len(c) != 1 || c[0].Source != 10 || c[0].TargetOffset != 10 {
		t.Errorf("commits %+v, want billing at 10", c)
	}
	if got := srv.Counts().Downloads - before; got > 10 {
		t.Errorf("%d files downloaded for a restore of one file: the snapshots are all read", got)
	}
}
