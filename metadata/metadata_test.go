package metadata

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestTranslate(t *testing.T) {
	var m OffsetMap
	if _, rule, ok := m.Translate(5); ok || rule != RuleNothing {
		t.Fatalf("empty map: %v %v", rule, ok)
	}
	// Source offsets 100-104, a gap, 110-111; target offsets 0-6.
	for i, src := range []int64{100, 101, 102, 103, 104, 110, 111} {
		m.Add(src, int64(i))
	}
	if got := m.Runs(); len(got) != 2 || got[0] != [3]int64{100, 0, 5} || got[1] != [3]int64{110, 5, 2} {
		t.Fatalf("runs %v", got)
	}
	for _, c := range []struct {
		o    int64
		want int64
		rule Rule
	}{
		{0, 0, RuleBelow}, {99, 0, RuleBelow}, {100, 0, RuleExact}, {103, 3, RuleExact},
		{105, 5, RuleNext}, {109, 5, RuleNext}, {110, 5, RuleExact}, {111, 6, RuleExact},
		{112, 7, RuleEnd}, {1000, 7, RuleEnd},
	} {
		got, rule, ok := m.Translate(c.o)
		if !ok || got != c.want || rule != c.rule {
			t.Errorf("Translate(%d) = %d %q %v, want %d %q", c.o, got, rule, ok, c.want, c.rule)
		}
	}
	// Out of order additions sort once.
	var o OffsetMap
	for _, p := range [][2]int64{{3, 13}, {1, 11}, {2, 12}, {7, 14}} {
		o.Add(p[0], p[1])
	}
	if got := o.Runs(); len(got) != 2 || got[0] != [3]int64{1, 11, 3} || got[1] != [3]int64{7, 14, 1} {
		t.Fatalf("out of order runs %v", got)
	}
	var r OffsetMap
	r.AddRun(10, 0, 3)
	r.AddRun(13, 3, 2)
	if got := r.Runs(); len(got) != 1 || got[0] != [3]int64{10, 0, 5} || r.Len() != 5 {
		t.Fatalf("AddRun runs %v", got)
	}
}

func TestNames(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 0, 0, 123e6, time.FixedZone("x", 7200))
	n := Name(at, "backup-0-1a2b3c4d")
	if n != "20240501T100000.123Z.backup-0-1a2b3c4d.json" {
		t.Fatalf("name %s", n)
	}
	got, ok := ParseName(n)
	if !ok || !got.Equal(at) {
		t.Fatalf("ParseName(%s) = %v %v", n, got, ok)
	}
	for _, bad := range []string{InProgressName(n), "x.json", "20240501T100000.123Z.json.bak", "20240501T100000.123Zxjson"} {
		if _, ok := ParseName(bad); ok {
			t.Errorf("ParseName(%q) accepted", bad)
		}
	}
}

func TestEncodeDecode(t *testing.T) {
	s := &Snapshot{Format: Format, Time: time.UnixMilli(1714564800123).UTC(), TookMillis: 3, Reason: "interval", Instance: "i",
		Topics: []Topic{{Name: "b", Partitions: 2, ReplicationFactor: 1, ConfigsRead: true, Configs: map[string]string{}},
			{Name: "a", Partitions: 3, ReplicationFactor: 3, ConfigsRead: true, Configs: map[string]string{"retention.ms": "-1"}}},
		Groups: []Group{{Name: "g", Offsets: []Offset{{Topic: "a", Partition: 1, Offset: 5}, {Topic: "a", Partition: 0, Offset: 7}}}},
	}
	data, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if d.Topics[0].Name != "a" || d.Topics[0].Configs["retention.ms"] != "-1" || d.Groups[0].Offsets[0].Partition != 0 || !d.Time.Equal(s.Time) {
		t.Fatalf("decoded %+v from\n%s", d, data)
	}
	if _, err := Decode([]byte(`{"format": 99, "time": "2024-05-01T00:00:00Z"}`)); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("format 99: %v", err)
	}
	if _, err := Decode([]byte(`{]`)); err == nil {
		t.Error("garbage decoded")
	}
	old := Stored{Name: "1", Snapshot: &Snapshot{Time: time.Unix(100, 0), Topics: []Topic{{Name: "a"}}}}
	newer := Stored{Name: "2", Snapshot: &Snapshot{Time: time.Unix(200, 0), Topics: []Topic{{Name: "a"}}}}
	other := Stored{Name: "3", Snapshot: &Snapshot{Time: time.Unix(300, 0), Topics: []Topic{{Name: "b"}}}}
	all := []Stored{old, newer, other}
	if l := Latest(all, "a", time.Time{}); l == nil || l.Name != "2" {
		t.Errorf("latest a: %v", l)
	}
	if l := Latest(all, "a", time.Unix(150, 0)); l == nil || l.Name != "1" {
		t.Errorf("latest a until 150: %v", l)
	}
	if l := Latest(all, "a", time.Unix(50, 0)); l != nil {
		t.Errorf("latest a until 50: %v", l)
	}
}

// TestCaptureAndSnapshotter captures a kfake cluster: a topic with configs
// set, one at its default, a matching group with offsets and one that does
// not match; then runs a Snapshotter into a local store and checks its
// files, and that an unreachable cluster is counted, not fatal.
func TestCaptureAndSnapshotter(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "plain"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ret := "315360000000"
	if _, err := adm.CreateTopic(ctx, 2, 1, map[string]*string{"retention.ms": &ret}, "conf"); err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"app", "other"} {
		offs := kadm.Offsets{}
		offs.AddOffset("conf", 0, 5, -1)
		offs.AddOffset("conf", 1, 9, -1)
		offs.AddOffset("plain", 2, 1, -1)
		if _, err := adm.CommitOffsets(ctx, g, offs); err != nil {
			t.Fatal(err)
		}
	}
	groups, err := CompileGroups("consumer_groups", []string{"ap+"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Capture(ctx, adm, CaptureOptions{Topics: []string{"conf", "plain"}, Groups: groups, TopicConfigs: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Errors) > 0 || len(s.Topics) != 2 || s.ClusterID == "" {
		t.Fatalf("snapshot %+v", s)
	}
	conf, plain := s.Topic("conf"), s.Topic("plain")
	if conf.Partitions != 2 || conf.ReplicationFactor != 1 || conf.Configs["retention.ms"] != ret || len(conf.Configs) != 1 {
		t.Errorf("conf %+v", conf)
	}
	if plain.Partitions != 3 || !plain.ConfigsRead || len(plain.Configs) != 0 {
		t.Errorf("plain %+v", plain)
	}
	if len(s.Groups) != 1 || s.Groups[0].Name != "app" || len(s.Groups[0].Offsets) != 3 {
		t.Fatalf("groups %+v", s.Groups)
	}
	if _, err := CompileGroups("consumer_groups", []string{"("}); err == nil || !strings.Contains(err.Error(), "consumer_groups") {
		t.Errorf("bad expression: %v", err)
	}

	root := t.TempDir()
	var taken, failed atomic.Int32
	sn, err := New(Config{ClientOpts: []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, Interval: 300 * time.Millisecond, Groups: groups,
		TopicConfigs: true, Instance: "inst", Store: LocalStore{Root: root},
		Taken: func() { taken.Add(1) }, Failed: func() { failed.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	sn.Start()
	time.Sleep(400 * time.Millisecond) // no topic yet: nothing taken
	if taken.Load() != 0 {
		t.Fatalf("%d snapshots before any topic", taken.Load())
	}
	sn.Seen("conf")
	for deadline := time.Now().Add(10 * time.Second); taken.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	sn.Close(ctx)
	if failed.Load() != 0 || taken.Load() < 3 {
		t.Fatalf("taken %d failed %d", taken.Load(), failed.Load())
	}
	es, err := os.ReadDir(filepath.Join(root, layout.MetadataDir))
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	for _, e := range es {
		if _, ok := ParseName(e.Name()); !ok {
			t.Errorf("%s is not a snapshot name", e.Name())
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, layout.MetadataDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		d, err := Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		reasons[d.Reason]++
		if len(d.Topics) != 1 || d.Topics[0].Name != "conf" || d.Instance != "inst" || len(d.Groups) != 1 {
			t.Errorf("%s: %s", e.Name(), data)
		}
	}
	if reasons["start"] != 1 || reasons["shutdown"] != 1 || reasons["interval"] < 1 || len(es) != int(taken.Load()) {
		t.Errorf("reasons %v, %d files, %d taken", reasons, len(es), taken.Load())
	}

	// An unreachable cluster: counted and logged, nothing stored, Close
	// returns.
	bad, err := New(Config{ClientOpts: []kgo.Opt{kgo.SeedBrokers("127.0.0.1:1")}, Interval: time.Hour, Timeout: 500 * time.Millisecond,
		Instance: "down", Store: LocalStore{Root: root}, Failed: func() { failed.Add(1) }, Log: &testLog{t: t}})
	if err != nil {
		t.Fatal(err)
	}
	bad.Start()
	bad.Seen("conf")
	for deadline := time.Now().Add(10 * time.Second); failed.Load() < 1 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	bad.Close(ctx)
	if failed.Load() != 2 {
		t.Errorf("failed %d, want 2 (start and shutdown)", failed.Load())
	}
	if matches, _ := filepath.Glob(filepath.Join(root, layout.MetadataDir, "*.down.json")); len(matches) != 0 {
		t.Errorf("stored %v", matches)
	}
}

type testLog struct{ t *testing.T }

func (l *testLog) Infof(f string, a ...any) { l.t.Logf("INFO "+f, a...) }
func (l *testLog) Warnf(f string, a ...any) { l.t.Logf("WARN "+f, a...) }
