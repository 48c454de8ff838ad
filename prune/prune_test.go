package prune_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kafka-backup/kafka-backup/internal/backuptest"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/prune"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tree"
)

var (
	cutoff = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	oldTS  = cutoff.Add(-48 * time.Hour).UnixMilli()
	newTS  = cutoff.Add(time.Hour).UnixMilli()
)

// records returns n records from offset first with timestamp ts.
func records(first int64, n int, ts int64) []segment.Record {
	out := make([]segment.Record, n)
	for i := range out {
		out[i] = segment.Record{Offset: first + int64(i), Timestamp: ts, Value: []byte(fmt.Sprint("v", first+int64(i)))}
	}
	return out
}

// names lists the final files of a partition folder.
func names(t *testing.T, root string, p int32) []string {
	t.Helper()
	part, err := backuptest.OpenTree(t, root).List(context.Background(), "t", p)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range part.Files {
		out = append(out, f.Name)
	}
	return out
}

// TestPrunePartition: files 0, 10 old, 20 new, 30 old (between two kept
// files), 40 old (the newest, kept by KeepFiles): a dry run deletes
// nothing; then 0 and 10 go, the note says 20; a file whose offsets reach
// the next file's (interleaved) stops the run.
func TestPrunePartition(t *testing.T) {
	root := t.TempDir()
	for _, f := range []struct {
		first int64
		ts    int64
	}{{0, oldTS}, {10, oldTS}, {20, newTS}, {30, oldTS}, {40, oldTS}} {
		backuptest.WriteSegment(t, root, "t", 0, fmt.Sprint(f.first), records(f.first, 10, f.ts), 3, segment.None)
	}
	// Partition 1: old 0 holds 0-4 and 15-19, new 5 holds 5-14: 0 cannot go
	// alone.
	backuptest.WriteSegment(t, root, "t", 1, "0", append(records(0, 5, oldTS), records(15, 5, oldTS)...), 5, segment.None)
	backuptest.WriteSegment(t, root, "t", 1, "5", records(5, 10, newTS), 5, segment.None)
	backuptest.WriteSegment(t, root, "t", 1, "20", records(20, 5, newTS), 5, segment.None)
	src := backuptest.OpenTree(t, root)
	ctx := context.Background()
	opts := prune.Options{Cutoff: cutoff, KeepFiles: 1}

	rep, err := prune.Run(ctx, src, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(t, root, 0); len(got) != 5 {
		t.Fatalf("a dry run deleted files: %v left", got)
	}
	p0 := rep.Partitions[0]
	if len(p0.Files) != 2 || p0.Files[0].Name != "0" || p0.Files[1].Name != "10" || p0.NewFirstOffset == nil || *p0.NewFirstOffset != 20 || p0.Files[1].LastOffset != 19 {
		t.Fatalf("dry run of t/0: %+v", p0)
	}
	if p1 := rep.Partitions[1]; len(p1.Files) != 0 || p1.Stop == "" {
		t.Fatalf("t/1: file 0 interleaves with 5 and must stay: %+v", p1)
	}

	opts.Apply = true
	if rep, err = prune.Run(ctx, src, opts); err != nil || rep.Errors != 0 {
		t.Fatalf("prune: %v %+v", err, rep)
	}
	if got := names(t, root, 0); !slices.Equal(got, []string{"20", "30", "40"}) {
		t.Fatalf("t/0 after the prune: %v, want 20 30 40", got)
	}
	note, ok, err := tree.ReadPruned(ctx, src, "t", 0)
	if err != nil || !ok || note.Below != 20 || !note.Cutoff.Equal(cutoff) {
		t.Fatalf("note: %+v %v %v", note, ok, err)
	}
	if _, err := os.Stat(filepath.Join(root, "t", "1", layout.PrunedNote)); !os.IsNotExist(err) {
		t.Fatalf("t/1 pruned nothing but has a note: %v", err)
	}
	// Again: nothing more (30 stays between 20 and 40).
	if rep, err = prune.Run(ctx, src, opts); err != nil || rep.Files != 0 {
		t.Fatalf("second prune: %v %+v", err, rep)
	}
	// With 0 files kept and a later cutoff everything goes; the note says
	// where the next record will be.
	opts.KeepFiles, opts.Cutoff = 0, cutoff.Add(48*time.Hour)
	opts.Filter.Partitions = []int32{0}
	if rep, err = prune.Run(ctx, src, opts); err != nil || rep.Files != 3 {
		t.Fatalf("prune everything: %v %+v", err, rep)
	}
	if note, _, _ = tree.ReadPruned(ctx, src, "t", 0); note.Below != 50 {
		t.Fatalf("note after pruning everything: %+v, want below 50", note)
	}
}

// TestPruneSnapshots: snapshots older than the cutoff go, but the newest,
// and the newest holding each topic, stay; a dry run deletes none.
func TestPruneSnapshots(t *testing.T) {
	root := t.TempDir()
	s1 := backuptest.WriteSnapshot(t, root, cutoff.Add(-72*time.Hour), "a", 1, "x")
	s2 := backuptest.WriteSnapshot(t, root, cutoff.Add(-60*time.Hour), "b", 1, "y") // the newest of y
	s3 := backuptest.WriteSnapshot(t, root, cutoff.Add(-48*time.Hour), "a", 1, "x")
	s4 := backuptest.WriteSnapshot(t, root, cutoff.Add(time.Hour), "a", 1, "x")
	src := backuptest.OpenTree(t, root)
	ctx := context.Background()
	opts := prune.Options{Cutoff: cutoff, Snapshots: true}
	rep, err := prune.Run(ctx, src, opts)
	if err != nil || len(rep.Snapshots) != 2 || rep.Snapshots[0].Name != s1 || rep.Snapshots[1].Name != s3 {
		t.Fatalf("dry run: %v %+v, want %s and %s", err, rep.Snapshots, s1, s3)
	}
	opts.Apply = true
	if rep, err = prune.Run(ctx, src, opts); err != nil || rep.Errors != 0 || len(rep.Snapshots) != 2 {
		t.Fatalf("prune: %v %+v", err, rep)
	}
	got, _, err := tree.SnapshotNames(ctx, src)
	if err != nil || !slices.Equal(got, []string{s2, s4}) {
		t.Fatalf("snapshots left: %v %v, want %s %s", got, err, s2, s4)
	}
	// Everything older than a later cutoff: the newest stays all the same.
	opts.Cutoff = cutoff.Add(48 * time.Hour)
	if _, err = prune.Run(ctx, src, opts); err != nil {
		t.Fatal(err)
	}
	if got, _, _ = tree.SnapshotNames(ctx, src); !slices.Equal(got, []string{s2, s4}) {
		t.Fatalf("snapshots left after a later cutoff: %v, want %s (newest of y) and %s (the newest)", got, s2, s4)
	}
}
