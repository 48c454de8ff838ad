package rolling_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kafka-backup/kafka-backup/destination/local"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/rolling"
)

// TestRemovedFolderWhileWriting: the partition's folder is removed with
// acknowledged records in the open file and in final files. The next Write
// fails naming the file and the cause; the open file's records are written
// again from the open file; the final files' records no longer count as
// written, so when they are delivered again they are written again; the
// failed batch delivered again is written once.
func TestRemovedFolderWhileWriting(t *testing.T) {
	dir := t.TempDir()
	obs := newRecorder()
	cfg := baseConfig(dir, obs)
	cfg.MaxSize = 1024
	w := newWriter(t, cfg)
	first := makeRecords(0, 60, 50, 3)
	write(t, w, "t", 0, first)
	finals, open := partitionFiles(t, dir, "t", 0)
	if len(finals) == 0 || len(open) != 1 {
		t.Fatalf("%d final files and in-progress %v before the removal, want some and one", len(finals), open)
	}
	if err := os.RemoveAll(layout.PartitionDir(dir, "t", 0)); err != nil {
		t.Fatal(err)
	}
	next := makeRecords(60, 10, 50, 4)
	err := w.Write(context.Background(), "t", 0, next)
	if err == nil || !strings.Contains(err.Error(), open[0]) || !strings.Contains(err.Error(), "removed") {
		t.Fatalf("Write after the removal: %v, want an error naming %s and the removal", err, open[0])
	}
	// Kafka delivers the failed batch again; a consumer restarting from an
	// older commit delivers everything again.
	write(t, w, "t", 0, next)
	write(t, w, "t", 0, append(first, next...))
	closeWriter(t, w)
	got, _ := checkPartition(t, dir, "t", 0, layout.NamePlain, cfg.MaxSize)
	checkRecords(t, got, append(first, next...))
}

// TestRemovedFolderBeforeRoll: the folder is removed while the file is open
// and nothing more is written: the file is checked when it rolls, written
// again and finalized, and Close says what happened.
func TestRemovedFolderBeforeRoll(t *testing.T) {
	dir := t.TempDir()
	cfg := baseConfig(dir, newRecorder())
	w := newWriter(t, cfg)
	recs := makeRecords(100, 30, 50, 5)
	write(t, w, "t", 2, recs)
	if err := os.RemoveAll(layout.PartitionDir(dir, "t", 2)); err != nil {
		t.Fatal(err)
	}
	err := w.Close(context.Background())
	if err == nil || !strings.Contains(err.Error(), "removed") {
		t.Fatalf("Close: %v, want an error saying the file was removed", err)
	}
	got, finals := checkPartition(t, dir, "t", 2, layout.NamePlain, cfg.MaxSize)
	checkRecords(t, got, recs)
	if len(finals) != 1 || finals[0].name != "100" {
		t.Fatalf("files %v, want one named 100", fileNames(finals))
	}
}

// TestRemovedFileReplaced: the in-progress file alone is removed and another
// file put at its path. The open file's records cannot be put back there:
// the error names their offsets and says they are lost if kafka-backup stops
// before they are saved; the file stays open, and once the path is free they
// are saved, none lost.
func TestRemovedFileReplaced(t *testing.T) {
	dir := t.TempDir()
	cfg := baseConfig(dir, newRecorder())
	w := newWriter(t, cfg)
	write(t, w, "t", 0, makeRecords(0, 10, 50, 6))
	_, open := partitionFiles(t, dir, "t", 0)
	if len(open) != 1 {
		t.Fatalf("in-progress %v, want one", open)
	}
	path := layout.PartitionDir(dir, "t", 0) + "/" + open[0]
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("someone else's"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := w.Write(context.Background(), "t", 0, makeRecords(10, 5, 50, 7))
	if err == nil || !strings.Contains(err.Error(), "offsets 0-14") || !strings.Contains(err.Error(), "LOST") {
		t.Fatalf("Write: %v, want an error saying offsets 0-14 are lost", err)
	}
	os.Remove(path)
	// Delivered again, the batch fails once more while the records are
	// written again, then succeeds.
	err = w.Write(context.Background(), "t", 0, makeRecords(10, 5, 50, 7))
	if err == nil || !strings.Contains(err.Error(), "written again") {
		t.Fatalf("Write once the path is free: %v, want an error saying the records were written again", err)
	}
	write(t, w, "t", 0, makeRecords(10, 5, 50, 7))
	closeWriter(t, w)
	got, _ := checkPartition(t, dir, "t", 0, layout.NamePlain, cfg.MaxSize)
	checkRecords(t, got, append(makeRecords(0, 10, 50, 6), makeRecords(10, 5, 50, 7)...))
}

// TestRemovedFolderFinalFilesReported: the partition's folder is removed
// while no file is open, with acknowledged records in its final files only.
// Those records are gone from the backup for good (Kafka will not deliver
// them again): the next Write must say so, naming their offsets, instead of
// making the folder again in silence.
func TestRemovedFolderFinalFilesReported(t *testing.T) {
	dir := t.TempDir()
	obs := newRecorder()
	cfg := baseConfig(dir, obs)
	cfg.MaxSize = 1024
	cfg.IdleTimeout = 20 * time.Millisecond
	w := newWriter(t, cfg)
	write(t, w, "t", 0, makeRecords(0, 60, 50, 3))
	eventually(t, "the open file to roll", func() bool {
		_, open := partitionFiles(t, dir, "t", 0)
		return len(open) == 0
	})
	if err := os.RemoveAll(layout.PartitionDir(dir, "t", 0)); err != nil {
		t.Fatal(err)
	}
	err := w.Write(context.Background(), "t", 0, makeRecords(60, 10, 50, 4))
	all := errors.Join(append(obs.errors(), err)...)
	if all == nil || !strings.Contains(all.Error(), "LOST") || !strings.Contains(all.Error(), "0-") {
		t.Fatalf("Write after the removal of the folder holding final files of offsets 0-59: errors %v, want one saying those offsets are lost", all)
	}
}

// TestRemovedFolderOpenAndFinalReported: as TestRemovedFolderWhileWriting,
// the folder is removed with records in final files and in the open file:
// the error must also name the final files' offsets as lost, not only say the
// open file's records were saved.
func TestRemovedFolderOpenAndFinalReported(t *testing.T) {
	dir := t.TempDir()
	obs := newRecorder()
	cfg := baseConfig(dir, obs)
	cfg.MaxSize = 1024
	w := newWriter(t, cfg)
	write(t, w, "t", 0, makeRecords(0, 60, 50, 3))
	finals, open := partitionFiles(t, dir, "t", 0)
	if len(finals) == 0 || len(open) != 1 {
		t.Fatalf("%d final files and in-progress %v, want some and one", len(finals), open)
	}
	if err := os.RemoveAll(layout.PartitionDir(dir, "t", 0)); err != nil {
		t.Fatal(err)
	}
	err := w.Write(context.Background(), "t", 0, makeRecords(60, 10, 50, 4))
	if err == nil || !strings.Contains(err.Error(), "LOST") || !strings.Contains(err.Error(), "offsets 0-") {
		t.Fatalf("Write: %v, want an error saying the final files' offsets from 0 on are lost", err)
	}
	if testing.Verbose() {
		t.Log(err)
	}
}

// removingDest is local.New with a Publish that first removes the partition
// folder, once: a cleanup job running between the check before a roll and
// the rename.
type removingDest struct {
	*local.Destination
	dir  string
	done bool
}

func (d *removingDest) Publish(ctx context.Context, f rolling.File) error {
	if !d.done {
		d.done = true
		os.RemoveAll(d.dir)
	}
	return d.Destination.Publish(ctx, f)
}

// TestRemovedFolderDuringRoll: the folder is removed after the file was
// checked and before it is renamed. The rename fails; the file is gone, so
// retrying cannot succeed: the Writer must say its records are lost instead
// of retrying for ever with a bare "no such file".
func TestRemovedFolderDuringRoll(t *testing.T) {
	dir := t.TempDir()
	cfg := baseConfig(dir, newRecorder())
	cfg.Destination = &removingDest{Destination: local.New(dir), dir: layout.PartitionDir(dir, "t", 0)}
	w := newWriter(t, cfg)
	write(t, w, "t", 0, makeRecords(0, 30, 50, 5))
	err := w.Close(context.Background())
	if err == nil || !strings.Contains(err.Error(), "LOST") || !strings.Contains(err.Error(), "0-29") {
		t.Fatalf("Close: %v, want an error saying offsets 0-29 are lost", err)
	}
}

// TestRemovedFolderSaveFailsThenPasses: the partition's folder is removed
// and a plain file put at its path, so the open file cannot be written again
// there. Its acknowledged records are still in the file kafka-backup holds
// open: they must not be thrown away, but written again once the path is
// free, with nothing lost.
func TestRemovedFolderSaveFailsThenPasses(t *testing.T) {
	dir := t.TempDir()
	cfg := baseConfig(dir, newRecorder())
	cfg.MaxSize = 1024
	w := newWriter(t, cfg)
	first := makeRecords(0, 10, 50, 8)
	write(t, w, "t", 0, first)
	pdir := layout.PartitionDir(dir, "t", 0)
	if err := os.RemoveAll(pdir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pdir, []byte("not a folder"), 0o644); err != nil {
		t.Fatal(err)
	}
	next := makeRecords(10, 40, 50, 9)
	if err := w.Write(context.Background(), "t", 0, next); err == nil {
		t.Fatal("Write succeeded with a file at the partition folder's path")
	}
	if err := os.Remove(pdir); err != nil {
		t.Fatal(err)
	}
	// Kafka delivers the failed batch again until it succeeds.
	var err error
	for range 3 {
		if err = w.Write(context.Background(), "t", 0, next); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("Write once the path is free: %v", err)
	}
	closeWriter(t, w)
	got, _ := checkPartition(t, dir, "t", 0, layout.NamePlain, cfg.MaxSize)
	checkRecords(t, got, append(first, next...))
}
