package rolling_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/kafka-backup/kafka-backup/destination/local"
	"github.com/kafka-backup/kafka-backup/internal/backuptest"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/offsets"
	"github.com/kafka-backup/kafka-backup/rolling"
	"github.com/kafka-backup/kafka-backup/segment"
)

// remoteDest publishes rolled files into another folder (as the FTP
// destination uploads them and removes them from the spool) and reads
// stored records back from there as a rolling.RecordSource, counting the
// reads.
type remoteDest struct {
	root  string
	reads atomic.Int32
}

func (d *remoteDest) Publish(_ context.Context, f rolling.File) error {
	dir := layout.PartitionDir(d.root, f.Topic, f.Partition)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.Rename(f.Path, filepath.Join(dir, f.Name))
}

func (d *remoteDest) Persisted(_ context.Context, topic string, partition int32) ([]offsets.Range, error) {
	return local.FinalRanges(layout.PartitionDir(d.root, topic, partition))
}

func (d *remoteDest) StoredRecord(_ context.Context, topic string, partition int32, off int64) (segment.Record, bool, error) {
	d.reads.Add(1)
	dir := layout.PartitionDir(d.root, topic, partition)
	es, err := os.ReadDir(dir)
	if err != nil {
		return segment.Record{}, false, nil
	}
	for _, e := range es {
		if _, ok := layout.ParseFileName(e.Name()); !ok {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return segment.Record{}, false, err
		}
		st, _ := f.Stat()
		rec, ok, err := segment.RecordAt(f, st.Size(), off)
		f.Close()
		if err != nil || ok {
			return rec, ok, err
		}
	}
	return segment.Record{}, false, nil
}

// compacted returns records at every other offset from first on, as a
// compacted topic (or a transactional one, with its control records) is
// delivered: offsets with gaps.
func compacted(first int64, n int, seed uint64) []segment.Record {
	all := makeRecords(first, 2*n, 100, seed)
	out := make([]segment.Record, 0, n)
	for i := 0; i < len(all); i += 2 {
		out = append(out, all[i])
	}
	return out
}

// TestRedeliveryWithGapsReadsStoredOnce: a compacted topic's records
// (offsets with gaps) delivered again after a restart are one run: the
// stored record is read once, not once per record (each read is a
// connection, a listing and a download on FTP).
func TestRedeliveryWithGapsReadsStoredOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		recs []segment.Record
	}{
		{"dense", makeRecords(0, 400, 100, 41)},
		{"gaps", compacted(0, 400, 42)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spool, remote := t.TempDir(), t.TempDir()
			dest := &remoteDest{root: remote}
			cfg := baseConfig(spool, newRecorder())
			cfg.Destination = dest
			cfg.MaxSize = 4 << 10
			w := newWriter(t, cfg)
			write(t, w, "r", 0, tc.recs)
			closeWriter(t, w)

			obs := newRecorder()
			cfg2 := cfg
			cfg2.Instance, cfg2.Observer = "test-2", obs
			w2 := newWriter(t, cfg2)
			writeChunks(t, w2, "r", 0, tc.recs, 43)
			closeWriter(t, w2)
			if len(obs.refused) != 0 {
				t.Fatalf("refused: %v", obs.refused)
			}
			if n := dest.reads.Load(); n != 1 {
				t.Errorf("the stored records were read %d times for one run delivered again, want 1", n)
			}
		})
	}
}

// TestRecreatedTopicOverCompactedBackup: the old topic's backup holds a
// compacted topic's batches (offsets with gaps inside a batch); the new
// topic delivers dense offsets from one the old batch does not hold. The
// partition must be refused, not its records acknowledged as persisted.
func TestRecreatedTopicOverCompactedBackup(t *testing.T) {
	dir := t.TempDir()
	cfg := baseConfig(dir, newRecorder())
	w := newWriter(t, cfg)
	write(t, w, "r", 0, compacted(0, 200, 51)) // offsets 0, 2, ..., 398 in one file
	closeWriter(t, w)

	fresh := makeRecords(1, 100, 100, 52) // offsets 1-100, other contents
	obs := newRecorder()
	w2 := newWriter(t, restarted(cfg, "test-2", obs))
	err := w2.Write(context.Background(), "r", 0, fresh)
	closeWriter(t, w2)
	if !errors.Is(err, rolling.ErrRecreated) {
		t.Fatalf("Write of the recreated topic's offsets 1-100: %v, want ErrRecreated (skipped as persisted: %d records)", err, obs.skippedFor("r", 0, rolling.SkipPersisted))
	}
}

// TestRecreatedTopicOverInterleavedBackup: the old backup's files
// interleave (kafka_franz with max_in_flight > 1): file 0 holds 0-9 and
// 50-59, files 10 to 40 the offsets between. The new topic's records at
// 50-59 differ from file 0's: the partition must be refused, however many
// files are named between the one holding the offset and the offset.
func TestRecreatedTopicOverInterleavedBackup(t *testing.T) {
	dir := t.TempDir()
	old := makeRecords(0, 60, 50, 61)
	backuptest.WriteSegment(t, dir, "r", 0, "0", append(append([]segment.Record(nil), old[:10]...), old[50:]...), 10, segment.None)
	for f := 10; f < 50; f += 10 {
		backuptest.WriteSegment(t, dir, "r", 0, fmt.Sprint(f), old[f:f+10], 10, segment.None)
	}
	cfg := baseConfig(dir, newRecorder())
	obs := newRecorder()
	w := newWriter(t, restarted(cfg, "test-2", obs))
	fresh := makeRecords(50, 10, 50, 62)
	err := w.Write(context.Background(), "r", 0, fresh)
	closeWriter(t, w)
	if !errors.Is(err, rolling.ErrRecreated) {
		t.Fatalf("Write of the recreated topic's offsets 50-59: %v, want ErrRecreated (skipped as persisted: %d records)", err, obs.skippedFor("r", 0, rolling.SkipPersisted))
	}
}

// claimingDest says it holds offsets 0-999 but finds none of their records
// (a spool journal or a marker naming files the server no longer has).
type claimingDest struct{ remoteDest }

func (d *claimingDest) Persisted(context.Context, string, int32) ([]offsets.Range, error) {
	return []offsets.Range{{First: 0, Last: 999}}, nil
}

// TestRedeliveryNotFoundIsBounded: records delivered again at offsets the
// destination claims but whose stored copies it cannot find are compared a
// bounded number of times per run, not once per record (a connection, a
// listing and a download each over FTP).
func TestRedeliveryNotFoundIsBounded(t *testing.T) {
	dest := &claimingDest{remoteDest{root: t.TempDir()}}
	cfg := baseConfig(t.TempDir(), newRecorder())
	cfg.Destination = dest
	w := newWriter(t, cfg)
	writeChunks(t, w, "r", 0, makeRecords(0, 400, 100, 71), 72)
	closeWriter(t, w)
	if n := dest.reads.Load(); n > 20 {
		t.Errorf("the stored records were looked for %d times for one run of 400 records, want a few", n)
	}
}
