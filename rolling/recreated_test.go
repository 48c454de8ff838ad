package rolling_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kafka-backup/kafka-backup/destination/local"
	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/rolling"
	"github.com/kafka-backup/kafka-backup/segment"
)

// restarted returns a config for a new Writer on cfg's folder, as after a
// restart, observed by obs.
func restarted(cfg rolling.Config, instance string, obs rolling.Observer) rolling.Config {
	cfg.Instance = instance
	cfg.Observer = obs
	cfg.Destination = local.New(cfg.Dir)
	return cfg
}

// TestRecreatedTopicIsRefused: after a restart, records arrive at offsets the
// files hold but are not the stored records (the topic was deleted and
// recreated, its offsets start at 0 again). The partition is refused: Write
// fails with ErrRecreated, nothing is written, the note is left in the
// folder, and a later Writer refuses it too until the folder is moved away.
func TestRecreatedTopicIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(r *segment.Record)
	}{
		{"timestamp", func(r *segment.Record) { r.Timestamp += 1000 }},
		{"value", func(r *segment.Record) { r.Value = append(slices.Clone(r.Value), 'x') }},
		{"key", func(r *segment.Record) { r.Key = []byte("other") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := baseConfig(dir, newRecorder())
			cfg.MaxSize = 4 << 10
			w := newWriter(t, cfg)
			old := makeRecords(0, 300, 200, 21)
			write(t, w, "r", 0, old)
			closeWriter(t, w)
			before, _ := checkPartition(t, dir, "r", 0, cfg.Naming, cfg.MaxSize)

			// The new topic's records: the same but for one field of each.
			fresh := slices.Clone(old[:100])
			for i := range fresh {
				tc.change(&fresh[i])
			}
			obs := newRecorder()
			w2 := newWriter(t, restarted(cfg, "test-2", obs))
			err := w2.Write(context.Background(), "r", 0, fresh[:40])
			if !errors.Is(err, rolling.ErrRecreated) {
				t.Fatalf("Write of the recreated topic's records: %v, want ErrRecreated", err)
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, "r", "0")) {
				t.Errorf("the error does not name the folder to move away: %v", err)
			}
			if err := w2.Write(context.Background(), "r", 0, makeRecords(300, 10, 50, 22)); !errors.Is(err, rolling.ErrRecreated) {
				t.Fatalf("a later Write to the refused partition: %v, want ErrRecreated", err)
			}
			if len(obs.refused) != 1 {
				t.Errorf("Refused called %d times, want 1", len(obs.refused))
			}
			write(t, w2, "other", 0, makeRecords(0, 10, 50, 23)) // other partitions go on
			closeWriter(t, w2)
			note := filepath.Join(dir, "r", "0", layout.RecreatedNote)
			aside := filepath.Join(t.TempDir(), "note")
			if err := os.Rename(note, aside); err != nil {
				t.Fatalf("no note: %v", err)
			}
			after, _ := checkPartition(t, dir, "r", 0, cfg.Naming, cfg.MaxSize)
			checkRecords(t, after, before)
			if err := os.Rename(aside, note); err != nil {
				t.Fatal(err)
			}

			// A restart with the note there: refused at once, even for
			// offsets the folder does not hold.
			obs3 := newRecorder()
			w3 := newWriter(t, restarted(cfg, "test-3", obs3))
			if err := w3.Write(context.Background(), "r", 0, makeRecords(300, 10, 50, 24)); !errors.Is(err, rolling.ErrRecreated) {
				t.Fatalf("Write after a restart with the note: %v, want ErrRecreated", err)
			}
			closeWriter(t, w3)

			// The operator moves the old backup away: the new topic is
			// backed up from its first offset.
			if err := os.Rename(filepath.Join(dir, "r"), filepath.Join(t.TempDir(), "old")); err != nil {
				t.Fatal(err)
			}
			w4 := newWriter(t, restarted(cfg, "test-4", newRecorder()))
			write(t, w4, "r", 0, fresh)
			closeWriter(t, w4)
			got, _ := checkPartition(t, dir, "r", 0, cfg.Naming, cfg.MaxSize)
			checkRecords(t, got, fresh)
		})
	}
}

// TestRedeliveryIsNotRecreation: the records delivered again after a restart
// or a rebalance are the stored ones; headers made from metadata (kafka_franz)
// may come in another order and a null key or value as an empty one, which
// is still the same record. They are skipped, never refused, and the stored
// record is read once per run of them, not per record.
func TestRedeliveryIsNotRecreation(t *testing.T) {
	dir := t.TempDir()
	cfg := baseConfig(dir, newRecorder())
	cfg.MaxSize = 4 << 10
	w := newWriter(t, cfg)
	recs := makeRecords(0, 400, 200, 31)
	write(t, w, "r", 0, recs[:300])
	// Redelivered while the last file is still open, and from the start.
	write(t, w, "r", 0, recs[250:320])
	writeChunks(t, w, "r", 0, recs[:330], 32)
	closeWriter(t, w)

	again := slices.Clone(recs)
	for i := range again {
		r := &again[i]
		if r.Key == nil {
			r.Key = []byte{}
		}
		r.Headers = slices.Clone(r.Headers)
		slices.Reverse(r.Headers)
	}
	obs := newRecorder()
	w2 := newWriter(t, restarted(cfg, "test-2", obs))
	writeChunks(t, w2, "r", 0, again[100:], 33)
	writeChunks(t, w2, "r", 0, again, 34)
	closeWriter(t, w2)
	if len(obs.refused) != 0 || len(obs.errs) != 0 {
		t.Fatalf("redelivery refused: %v %v", obs.refused, obs.errs)
	}
	// The offsets after the first run's are written as the second delivered
	// them.
	got, _ := checkPartition(t, dir, "r", 0, cfg.Naming, cfg.MaxSize)
	checkRecords(t, got, append(slices.Clone(recs[:330]), again[330:]...))
}
