package output

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-backup/kafka-backup/destination/local"
	"github.com/kafka-backup/kafka-backup/rolling"
	"github.com/kafka-backup/kafka-backup/segment"
)

// countingObserver counts the rolling writer's writes and the batches it
// saw out of order.
type countingObserver struct{ writes, outOfOrder atomic.Int64 }

func (o *countingObserver) Written(string, int32, int, int)              { o.writes.Add(1) }
func (*countingObserver) Finalized(rolling.File)                         {}
func (*countingObserver) Skipped(string, int32, rolling.SkipReason, int) {}
func (o *countingObserver) OutOfOrder(string, int32, int64, int64, bool) {
	o.outOfOrder.Add(1)
}
func (*countingObserver) OpenFiles(int)                {}
func (*countingObserver) Error(error)                  {}
func (*countingObserver) Refused(string, int32, error) {}

// newTestOutput returns a connected Output writing below a temporary folder,
// as if Benthos made maxInFlight calls at once.
func newTestOutput(t *testing.T, maxInFlight int) (*Output, *countingObserver, string) {
	t.Helper()
	dir := t.TempDir()
	obs := &countingObserver{}
	cfg := rolling.Config{Dir: dir, Instance: "test", MaxSize: 1 << 20, IdleTimeout: time.Hour, Observer: obs}
	o := New(cfg, local.New(dir), service.MockResources(), maxInFlight)
	if err := o.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	return o, obs, dir
}

// franzBatch is one kafka_franz message of topic t, partition 0.
func franzBatch(offset int64) service.MessageBatch {
	return service.MessageBatch{franzMessage(&kgo.Record{Topic: "t", Offset: offset, Value: []byte("v"), Timestamp: time.UnixMilli(1000 + offset)})}
}

// files returns the final files of t/0 after Close: the first and last
// offset and the records of each.
func files(t *testing.T, o *Output, dir string) [][3]int64 {
	t.Helper()
	if err := o.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "t", "0"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][3]int64
	for _, e := range entries {
		f, err := os.Open(filepath.Join(dir, "t", "0", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		span, err := segment.ReadSpan(f, st.Size())
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, [3]int64{span.FirstOffset, span.LastOffset, span.Records})
	}
	return out
}

// queued reports how many records of t/0 wait in the output.
func queued(o *Output) int {
	s := o.sequencer("t", 0)
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// A record that enters before a lower one still on its way waits for it,
// and both go to one file in offset order: the lower one's call makes every
// call inside, so nothing else can be on its way.
func TestSequencerReorders(t *testing.T) {
	o, obs, dir := newTestOutput(t, 2)
	ctx := context.Background()
	var wg sync.WaitGroup
	var err1 error
	wg.Go(func() { err1 = o.WriteBatch(ctx, franzBatch(1)) })
	deadline := time.Now().Add(10 * time.Second)
	for queued(o) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("offset 1 never queued")
		}
		time.Sleep(time.Millisecond)
	}
	if err := o.WriteBatch(ctx, franzBatch(0)); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err1 != nil {
		t.Fatal(err1)
	}
	got := files(t, o, dir)
	if len(got) != 1 || got[0] != [3]int64{0, 1, 2} || obs.outOfOrder.Load() != 0 {
		t.Fatalf("files %v, %d out of order: want one file of offsets 0..1 in order", got, obs.outOfOrder.Load())
	}
}

// A lower record that never comes (a failed batch, a gap in the offsets)
// holds the records above it at most orderWait: no deadlock.
func TestSequencerGapNeverFilled(t *testing.T) {
	o, obs, dir := newTestOutput(t, 8)
	ctx := context.Background()
	if err := o.WriteBatch(ctx, franzBatch(0)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := o.WriteBatch(ctx, franzBatch(5)); err != nil { // 1-4 never come
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*orderWait {
		t.Errorf("offset 5 took %v with 1-4 missing, want about orderWait (%v)", took, orderWait)
	}
	got := files(t, o, dir)
	if len(got) != 1 || got[0] != [3]int64{0, 5, 2} || obs.outOfOrder.Load() != 0 {
		t.Fatalf("files %v, %d out of order: want one file of offsets 0 and 5", got, obs.outOfOrder.Load())
	}
}

// A call whose context ends while its records wait returns the context's
// error (Benthos then delivers them again); it is not acknowledged.
func TestSequencerCallCancelled(t *testing.T) {
	o, _, _ := newTestOutput(t, 8)
	if err := o.WriteBatch(context.Background(), franzBatch(0)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), orderWait/10)
	defer cancel()
	if err := o.WriteBatch(ctx, franzBatch(7)); err == nil {
		t.Fatal("WriteBatch returned nil although its context ended while offset 7 waited for 1-6")
	}
	_ = o.Close(context.Background())
}

// Records above several gaps wait orderWait from their arrival, side by
// side, not one orderWait per gap in turn (a transactional topic has a gap,
// its commit marker, after every transaction); each run without a gap is a
// write of its own, so a record of a gap that comes late is still written
// (to a new file, counted out of order), never taken as written already.
func TestSequencerGapsAndLateRecord(t *testing.T) {
	o, obs, dir := newTestOutput(t, 8)
	ctx := context.Background()
	if err := o.WriteBatch(ctx, franzBatch(0)); err != nil {
		t.Fatal(err)
	}
	before := obs.writes.Load()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	start := time.Now()
	for i, off := range []int64{2, 4, 6} { // 1, 3, 5 are late
		wg.Go(func() { errs[i] = o.WriteBatch(ctx, franzBatch(off)) })
	}
	wg.Wait()
	took := time.Since(start)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := obs.writes.Load() - before; n != 3 {
		t.Errorf("offsets 2, 4, 6 took %d writes, want 3: one a run without a gap", n)
	}
	if took >= 3*orderWait {
		t.Logf("offsets 2, 4, 6 took %v: each gap waited in turn? (orderWait %v; loaded machine?)", took, orderWait)
	}
	if err := o.WriteBatch(ctx, franzBatch(3)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files(t, o, dir) {
		n += int(f[2])
	}
	if n != 5 {
		t.Fatalf("%d records in the files, want 5 (0, 2, 3, 4, 6): the late offset 3 was lost", n)
	}
	if obs.outOfOrder.Load() != 1 {
		t.Errorf("%d batches counted out of order, want 1 (offset 3)", obs.outOfOrder.Load())
	}
}
