// Package output is the kafka_backup Benthos output: it takes the batches a
// Kafka input delivers, splits them by partition and hands each partition's
// records to a rolling.Writer. WriteBatch returns nil, and so lets Benthos
// acknowledge the batch to Kafka, only once every record is in a file.
package output

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/rolling"
	"github.com/kafka-backup/kafka-backup/segment"
)

// Output is the kafka_backup output, a service.BatchOutput.
type Output struct {
	cfg    rolling.Config
	dest   Destination
	log    *service.Logger
	writer *rolling.Writer
	mu     sync.Mutex
	// free keeps the partitions of finished batches for the next ones.
	free sync.Pool
	ret  *retention // nil without retention (retention.go)

	// ctx is the context of the sequencers' writes, cancelled once Close
	// has finished; closing is closed when Close begins.
	ctx     context.Context
	cancel  context.CancelFunc
	closing chan struct{}

	// The partitions' sequencers (sequence.go) and what they share.
	maxInFlight int
	seqMu       sync.Mutex
	seqs        map[partKey]*sequencer
	inside      int                     // WriteBatch calls in progress
	fullGen     int64                   // times inside reached maxInFlight
	waiting     map[*sequencer]struct{} // sequencers waiting for lower offsets
}

// Output is a Benthos batch output.
var _ service.BatchOutput = (*Output)(nil)

// Destination is a rolling.Destination that may hold files back (an upload
// queue) and so may need to pause consumption and to finish on close.
type Destination interface {
	rolling.Destination
	// Ready returns an error, saying why, while no more records should be
	// accepted (for example while an upload spool is full).
	Ready() error
	// Close finishes what the destination holds, until ctx ends.
	Close(ctx context.Context) error
}

// New returns an Output that writes through a rolling.Writer made from cfg
// when it connects, handing rolled files to dest. maxInFlight is the
// number of WriteBatch calls Benthos makes at once (the output's
// max_in_flight).
func New(cfg rolling.Config, dest Destination, mgr *service.Resources, maxInFlight int) *Output {
	if cfg.Observer == nil {
		cfg.Observer = NewObserver(mgr)
	}
	cfg.Destination = dest
	o := &Output{
		cfg: cfg, dest: dest, log: mgr.Logger(),
		closing:     make(chan struct{}),
		maxInFlight: max(maxInFlight, 1),
		seqs:        map[partKey]*sequencer{},
		waiting:     map[*sequencer]struct{}{},
	}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	o.free.New = func() any { return &partitions{} }
	return o
}

// Connect starts the rolling writer. While the destination is not ready it
// waits, logging the destination's reason once a minute (Benthos would log
// an error at every attempt, each second): the output is not connected
// meanwhile, so /ready fails and nothing is acknowledged.
func (o *Output) Connect(ctx context.Context) error {
	if err := o.waitReady(ctx); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.writer != nil {
		return nil
	}
	w, err := rolling.New(o.cfg)
	if err != nil {
		return err
	}
	o.writer = w
	o.log.Infof("kafka_backup writing to %s as instance %s", o.cfg.Dir, o.cfg.Instance)
	if o.ret != nil {
		o.log.Infof("kafka_backup retention: %s", o.ret.cfg)
		o.ret.start()
	}
	return nil
}

// notReadyWarnEvery is how often Connect repeats why the destination is
// not ready.
const notReadyWarnEvery = time.Minute

// waitReady returns once the destination is ready, or ctx's error.
func (o *Output) waitReady(ctx context.Context) error {
	var warned time.Time
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		err := o.dest.Ready()
		if err == nil {
			return nil
		}
		if time.Since(warned) >= notReadyWarnEvery {
			o.log.Warnf("kafka_backup is not ready, nothing is acknowledged until it is: %v", err)
			warned = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// partBatch is the records of one partition in a message batch.
type partBatch struct {
	topic     string
	partition int32
	recs      []segment.Record
	ordered   bool // the input delivers the partition in order (redpanda)
}

// WriteBatch writes every message of batch to its partition's file and
// returns nil once all of them are there. Each partition's records are
// queued to the partition's sequencer, which writes them in offset order
// together with those of concurrent calls.
func (o *Output) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	o.mu.Lock()
	w := o.writer
	o.mu.Unlock()
	if w == nil || o.dest.Ready() != nil {
		return service.ErrNotConnected
	}
	ps := o.free.Get().(*partitions)
	parts, err := ps.split(batch)
	if err != nil {
		ps.reset()
		o.free.Put(ps)
		return err
	}
	now := time.Now()
	ps.begin(len(parts))
	for i := range parts {
		p := &parts[i]
		e := &ps.entries[i]
		e.recs, e.first, e.last, e.ordered, e.call = p.recs, p.recs[0].Offset, p.recs[0].Offset, p.ordered, ps
		e.arrived = now
		e.gen.Store(math.MaxInt64) // until enter
		for _, r := range p.recs {
			e.first, e.last = min(e.first, r.Offset), max(e.last, r.Offset)
		}
		o.sequencer(p.topic, p.partition).add(e)
	}
	o.enter(ps.entries)
	defer o.leave()
	select {
	case <-ps.done:
	case <-ctx.Done():
		// The entries may still be written (harmless: a replay skips what
		// is in a file); their records stay theirs, so ps is not reused.
		return ctx.Err()
	}
	err = ps.err
	ps.reset()
	o.free.Put(ps)
	return o.notReady(err)
}

// notReady turns the failure of a write into service.ErrNotConnected when
// the destination is not ready (it refuses, or its spool is full): Benthos
// then waits in Connect and sends the batch again, instead of logging and
// replaying it at once.
func (o *Output) notReady(err error) error {
	if err != nil && o.dest.Ready() != nil {
		return service.ErrNotConnected
	}
	return err
}

// partitions groups the records of a message batch by partition. Its slices
// are kept for the next batch (Output.free), so that splitting a batch
// allocates nothing once they have grown.
type partitions struct {
	parts []partBatch // parts[:n] hold the batch's partitions
	n     int
	index map[partKey]int // into parts, made once a batch has two partitions

	// The call's sequencer entries, one a part, and their results.
	entries []entry
	mu      sync.Mutex
	left    int   // entries not written yet
	err     error // the errors of those written
	done    chan struct{}
}

// begin makes n entries, waiting for their results.
func (ps *partitions) begin(n int) {
	if cap(ps.entries) < n {
		ps.entries = make([]entry, n)
	}
	ps.entries = ps.entries[:n]
	ps.left, ps.err = n, nil
	if ps.done == nil {
		ps.done = make(chan struct{}, 1)
	}
}

// finish records the result of one entry; the last one ends the call.
func (ps *partitions) finish(err error) {
	ps.mu.Lock()
	ps.err = errors.Join(ps.err, err)
	ps.left--
	last := ps.left == 0
	ps.mu.Unlock()
	if last {
		ps.done <- struct{}{}
	}
}

type partKey struct {
	topic     string
	partition int32
}

// split groups batch by partition, keeping the order of messages within each
// partition, and returns the groups. They are valid until reset.
func (ps *partitions) split(batch service.MessageBatch) ([]partBatch, error) {
	for i, msg := range batch {
		topic, partition, rec, err := recordOf(msg)
		ordered := inOrder(msg)
		if err != nil {
			return nil, fmt.Errorf("message %d of the batch: %w; nothing of this batch was written", i, err)
		}
		if err := layout.ValidTopic(topic); err != nil {
			return nil, fmt.Errorf("message %d of the batch (partition %d, offset %d): %w; nothing of this batch was written", i, partition, rec.Offset, err)
		}
		pb := ps.group(topic, partition)
		pb.recs = append(pb.recs, rec)
		pb.ordered = pb.ordered || ordered
	}
	return ps.parts[:ps.n], nil
}

// inOrder reports whether msg comes from an input that delivers each
// partition in offset order, one batch at a time until it is acknowledged:
// the redpanda input, which sets kafka_key as bytes (kafka_franz sets a
// string).
func inOrder(msg *service.Message) bool {
	k, _ := msg.MetaGetMut(MetaKey)
	_, ok := k.([]byte)
	return ok
}

// group returns the group of a partition, adding it if it is new.
func (ps *partitions) group(topic string, partition int32) *partBatch {
	// Batches usually hold one partition: avoid the map until they don't.
	if ps.n > 0 {
		if last := &ps.parts[ps.n-1]; last.topic == topic && last.partition == partition {
			return last
		}
		if ps.index == nil {
			ps.index = map[partKey]int{}
		}
		if len(ps.index) == 0 {
			for i, p := range ps.parts[:ps.n] {
				ps.index[partKey{p.topic, p.partition}] = i
			}
		}
		if i, ok := ps.index[partKey{topic, partition}]; ok {
			return &ps.parts[i]
		}
		ps.index[partKey{topic, partition}] = ps.n
	}
	if ps.n == len(ps.parts) {
		ps.parts = append(ps.parts, partBatch{})
	}
	pb := &ps.parts[ps.n]
	ps.n++
	pb.topic, pb.partition, pb.recs, pb.ordered = topic, partition, pb.recs[:0], false
	return pb
}

// reset empties ps for the next batch. It clears the records, so that kept
// slices do not keep this batch's messages reachable.
func (ps *partitions) reset() {
	for i := range ps.parts[:ps.n] {
		clear(ps.parts[i].recs)
		ps.parts[i].recs = ps.parts[i].recs[:0]
	}
	ps.n = 0
	clear(ps.index)
	clear(ps.entries)
	ps.entries = ps.entries[:0]
	ps.err = nil
}

// Close finalizes every open file, then closes the destination.
func (o *Output) Close(ctx context.Context) error {
	o.mu.Lock()
	w := o.writer
	o.mu.Unlock()
	o.ret.close()
	select {
	case <-o.closing:
	default:
		close(o.closing) // queued records need not wait for lower offsets
	}
	var err error
	if w != nil {
		err = w.Close(ctx)
	}
	o.cancel()
	err = errors.Join(err, o.dest.Close(ctx))
	if err != nil {
		o.log.Warnf("closing kafka_backup: %v", err)
	}
	return err
}
