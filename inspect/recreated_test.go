package inspect

import (
	"context"
	"strings"
	"testing"

	"github.com/kafka-backup/kafka-backup/internal/backuptest"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tree"
)

// TestVerifyRecreatedNote: the note a kafka_backup output leaves in a
// partition it refuses because the topic was recreated is an error, which
// quotes the note; other hidden files stay warnings.
func TestVerifyRecreatedNote(t *testing.T) {
	root := t.TempDir()
	backuptest.WriteSegment(t, root, "t", 0, name(0), varied(0, 50, 1_700_000_000_000), 10, segment.None)
	backuptest.WriteFile(t, root, "t", 0, layout.RecreatedNote, []byte("2026-12-03T06:50:42Z\nt/0: the topic was deleted and recreated: offset 0 ...\n"))
	src, err := tree.Open(context.Background(), root, tree.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	rep, err := Verify(context.Background(), src, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := one(t, rep, KindRecreated)
	if rep.OK || p.Severity != SeverityError || p.File != layout.RecreatedNote {
		t.Fatalf("problem %+v", p)
	}
	for _, s := range []string{"deleted and recreated", "new topic's records are not backed up", "delete this note", "offset 0 ..."} {
		if !strings.Contains(p.String(), s) {
			t.Errorf("%q does not say %q", p.String(), s)
		}
	}
	if len(rep.Partitions[0].Leftovers) != 0 {
		t.Errorf("the note is also listed as a leftover: %+v", rep.Partitions[0].Leftovers)
	}
}
