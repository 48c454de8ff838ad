package inspect

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kafka-backup/kafka-backup/internal/backuptest"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/metadata"
	"github.com/kafka-backup/kafka-backup/segment"
)

// TestSnapshots: ls lists a tree's metadata snapshots; verify fails on one
// that does not parse or whose time is not its name's, and warns of a
// hidden leftover, a group offset past what the backup holds and a
// partition folder beyond the snapshot's partition count.
func TestSnapshots(t *testing.T) {
	root := t.TempDir()
	backuptest.WriteSegment(t, root, "a", 0, "0", varied(0, 10, 1714564800000), 5, segment.None)
	backuptest.WriteSegment(t, root, "a", 1, "0", varied(0, 3, 1714564800000), 5, segment.None)
	backuptest.WriteSegment(t, root, "a", 2, "0", varied(0, 3, 1714564800000), 5, segment.None)
	dir := filepath.Join(root, layout.MetadataDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(s *metadata.Snapshot, name string) {
		data, err := s.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if name == "" {
			name = metadata.Name(s.Time, s.Instance)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	at := time.UnixMilli(1714564900000).UTC()
	older := &metadata.Snapshot{Format: 1, Time: at, Reason: "start", Instance: "i", Topics: []metadata.Topic{{Name: "a", Partitions: 2}}}
	write(older, "")
	latest := &metadata.Snapshot{Format: 1, Time: at.Add(time.Minute), Reason: "interval", Instance: "i",
		Topics: []metadata.Topic{{Name: "a", Partitions: 2}},
		Groups: []metadata.Group{{Name: "g", Offsets: []metadata.Offset{{Topic: "a", Partition: 0, Offset: 10}, {Topic: "a", Partition: 1, Offset: 20}}}}}
	write(latest, "")
	write(&metadata.Snapshot{Format: 1, Time: at.Add(time.Hour), Instance: "i"}, metadata.Name(at.Add(2*time.Hour), "i"))
	if err := os.WriteFile(filepath.Join(dir, metadata.Name(at.Add(3*time.Hour), "i")), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, metadata.InProgressName(metadata.Name(at, "j"))), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := backuptest.OpenTree(t, root)
	ctx := context.Background()

	lrep, err := List(ctx, src, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	lrep.WriteText(&out, true)
	if lrep.Metadata == nil || len(lrep.Metadata.Snapshots) != 4 || len(lrep.Stray) != 0 || lrep.Errors != 1 ||
		!strings.Contains(out.String(), "metadata snapshots (@metadata/): 4") {
		t.Errorf("ls: %+v\n%s", lrep.Metadata, out.String())
	}

	vrep, err := Verify(ctx, src, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, p := range vrep.TreeProblems {
		kinds = append(kinds, string(p.Severity)+" "+p.Message)
	}
	all := strings.Join(kinds, "\n")
	for _, want := range []string{
		"error metadata snapshot cannot be used: not a snapshot",
		"error metadata snapshot says it was taken at",
		"warning not a metadata snapshot",
		"warning group g committed offset 20 on a/1, past the backup's last offset 2 there",
		"warning the backup has a folder for partition 2 of a, the latest snapshot says the topic has 2 partitions",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("verify does not report %q; it reports:\n%s", want, all)
		}
	}
	if strings.Contains(all, "on a/0") || vrep.OK || vrep.Errors != 2 {
		t.Errorf("verify: %d errors, ok %v:\n%s", vrep.Errors, vrep.OK, all)
	}
}
