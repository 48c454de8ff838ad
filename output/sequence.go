package output

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/kafka-backup/kafka-backup/rolling"
	"github.com/kafka-backup/kafka-backup/segment"
)

// lingerWait bounds how long records of a partition that are next in offset
// order wait, from their arrival, for more to write with them (see
// sequencer).
const lingerWait = 10 * time.Millisecond

// orderWait bounds how long records of a partition wait, from their
// arrival, for records of lower offsets that may still be on their way (see
// sequencer).
const orderWait = 100 * time.Millisecond

// sequencer writes the records of one partition that arrive in concurrent
// WriteBatch calls: in offset order, and together (group commit).
//
// Every call queues its records (an entry) and waits. One goroutine per
// partition, started when records arrive and ended when none are left, takes
// the entries that are next in offset order, writes them with one
// rolling.Writer.Write (one fsync under fsync: batch) and tells each entry
// the result: an entry is acknowledged only once its own records are in the
// file under the fsync policy. Entries that arrive while a write runs share
// the next one.
//
// The kafka_franz input hands its messages, one by one unless its batching
// is set, to max_in_flight concurrent calls, which may enter in another
// order than they left the input. Records above a gap in the offsets wait
// until the gap fills, at most orderWait; records next in order wait for
// more to come, at most lingerWait, so that a write and its fsync take many
// messages. Neither waits once all max_in_flight calls are inside the output
// with their records queued: nothing that left the input before them can
// still be on its way, and nothing more can come until a call returns (a gap
// left then is a real one: a transaction marker, a compacted record, or a
// batch that failed and will be delivered again). The redpanda input
// delivers each partition in order, one batch at a time until it is
// acknowledged: its records never wait.
type sequencer struct {
	o         *Output
	topic     string
	partition int32

	mu      sync.Mutex
	queue   []*entry // in offset order
	next    int64    // the offset after the last one written; -1 unknown
	running bool     // the goroutine is running
	wake    chan struct{}

	recs []segment.Record // the records of one write, kept for the next
}

// entry is the records of one partition from one WriteBatch call.
type entry struct {
	recs        []segment.Record
	first, last int64
	ordered     bool         // from an input that delivers the partition in order
	gen         atomic.Int64 // Output.fullGen when its WriteBatch call came in (see enter)
	arrived     time.Time    // when its WriteBatch call queued it
	call        *partitions  // the WriteBatch call, told the result (partitions.finish)
}

func newSequencer(o *Output, topic string, partition int32) *sequencer {
	return &sequencer{o: o, topic: topic, partition: partition, next: -1, wake: make(chan struct{}, 1)}
}

// add queues e and makes sure the partition's goroutine runs.
func (s *sequencer) add(e *entry) {
	s.mu.Lock()
	i, _ := slices.BinarySearchFunc(s.queue, e.first, func(q *entry, first int64) int {
		switch {
		case q.first <= first:
			return -1 // equal first offsets keep their arrival order
		default:
			return 1
		}
	})
	s.queue = slices.Insert(s.queue, i, e)
	start := !s.running
	s.running = true
	s.mu.Unlock()
	switch {
	case start:
		go s.run()
	case i == 0:
		// Only a new first entry can make the queue ready (a gap filled);
		// the goroutine looks again after each write anyway.
		s.poke()
	}
}

// poke wakes the goroutine if it waits for a gap to fill.
func (s *sequencer) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// idleExit is how long a partition's goroutine waits for records before it
// ends (the next records start it again).
const idleExit = time.Second

// run writes entries until none came for idleExit.
func (s *sequencer) run() {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		gen := s.o.generation()
		s.mu.Lock()
		batch, head, wait := s.take(time.Now(), gen)
		if len(batch) == 0 && head == nil {
			s.mu.Unlock()
			if timer == nil {
				timer = time.NewTimer(idleExit)
			} else {
				timer.Reset(idleExit)
			}
			select {
			case <-s.wake:
				continue
			case <-timer.C:
			case <-s.o.closing:
			}
			s.mu.Lock()
			if len(s.queue) > 0 {
				s.mu.Unlock()
				continue
			}
			s.running = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if len(batch) > 0 {
			s.write(batch)
			continue
		}
		// head waits for records below it: until they come, orderWait
		// passes, or all max_in_flight calls are inside.
		if !s.o.waitFull(s, head.gen.Load()) {
			continue
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-s.wake:
		case <-timer.C:
		case <-s.o.closing:
		}
		s.o.stopWaiting(s)
	}
}

// take removes from the queue the entries to write now: the first one if it
// is next in offset order (or need not wait: see sequencer), and those that
// follow it without a gap. With none to write, it returns the first entry
// and how long it may still wait.
func (s *sequencer) take(now time.Time, gen int64) (batch []*entry, head *entry, wait time.Duration) {
	if len(s.queue) == 0 {
		return nil, nil, 0
	}
	head = s.queue[0]
	closing := false
	select {
	case <-s.o.closing:
		closing = true
	default:
	}
	// free says whether e need not wait for lower offsets any more: they
	// are not on their way (ordered input, a generation after e's), or e
	// came orderWait ago, long after anything that left the input before
	// it. The time counts from its arrival, whatever ran meanwhile.
	free := func(e *entry) bool {
		return e.ordered || closing || gen > e.gen.Load() || now.Sub(e.arrived) >= orderWait
	}
	if !free(head) {
		age := now.Sub(head.arrived)
		if s.next < 0 || head.first > s.next {
			return nil, head, orderWait - age // a gap below it
		}
		if age < lingerWait {
			return nil, head, lingerWait - age // next in order: linger for more
		}
	}
	// The entries that follow without a gap go with it, never one above a
	// gap: the writer takes the offsets from a write's first to its last as
	// written, and would skip a record of the gap that came late.
	n, last := 1, head.last
	for ; n < len(s.queue); n++ {
		e := s.queue[n]
		if e.first > last+1 {
			break
		}
		last = max(last, e.last)
	}
	batch = slices.Clone(s.queue[:n])
	s.queue = slices.Delete(s.queue, 0, n)
	return batch, nil, 0
}

// write writes the records of batch with one Write and tells each entry.
func (s *sequencer) write(batch []*entry) {
	recs := s.recs[:0]
	last := int64(-1)
	for _, e := range batch {
		recs = append(recs, e.recs...)
		last = max(last, e.last)
	}
	err := s.o.writeRecords(s.topic, s.partition, recs)
	clear(recs) // keep no messages reachable
	s.recs = recs[:0]
	s.mu.Lock()
	if err == nil {
		s.next = max(s.next, last+1)
	} else {
		// Some records may be in the file, some not: the next ones wait
		// as at the start.
		s.next = -1
	}
	s.mu.Unlock()
	for _, e := range batch {
		e.call.finish(err)
	}
}

// writeRecords writes recs of one partition, in the order given.
func (o *Output) writeRecords(topic string, partition int32, recs []segment.Record) error {
	o.mu.Lock()
	w := o.writer
	o.mu.Unlock()
	if w == nil {
		return service.ErrNotConnected
	}
	o.ret.touch(topic, partition)
	if err := w.Write(o.ctx, topic, partition, recs); err != nil {
		if errors.Is(err, rolling.ErrClosed) {
			return service.ErrNotConnected
		}
		return fmt.Errorf("topic %s partition %d: %w", topic, partition, err)
	}
	return nil
}

// sequencer returns the sequencer of a partition.
func (o *Output) sequencer(topic string, partition int32) *sequencer {
	o.seqMu.Lock()
	defer o.seqMu.Unlock()
	k := partKey{topic, partition}
	s := o.seqs[k]
	if s == nil {
		s = newSequencer(o, topic, partition)
		o.seqs[k] = s
	}
	return s
}

// enter counts a WriteBatch call in, once its entries are queued, and gives
// them their generation. When the call makes max_in_flight, every call is
// inside with its entries queued: nothing that left the input before any of
// them is still on its way, so the entries queued need not wait for lower
// offsets any more (a new generation begins), and the partitions that wait
// are woken.
func (o *Output) enter(entries []entry) {
	o.seqMu.Lock()
	for i := range entries {
		entries[i].gen.Store(o.fullGen)
	}
	o.inside++
	var wake []*sequencer
	if o.inside >= o.maxInFlight {
		o.fullGen++
		for s := range o.waiting {
			wake = append(wake, s)
		}
	}
	o.seqMu.Unlock()
	for _, s := range wake {
		s.poke()
	}
}

// leave counts a WriteBatch call out.
func (o *Output) leave() {
	o.seqMu.Lock()
	o.inside--
	o.seqMu.Unlock()
}

// generation returns the current generation (see enter).
func (o *Output) generation() int64 {
	o.seqMu.Lock()
	defer o.seqMu.Unlock()
	return o.fullGen
}

// waitFull registers s as waiting for the next generation and returns true,
// or returns false if a generation after gen has begun already.
func (o *Output) waitFull(s *sequencer, gen int64) bool {
	o.seqMu.Lock()
	defer o.seqMu.Unlock()
	if o.fullGen > gen {
		return false
	}
	o.waiting[s] = struct{}{}
	return true
}

// stopWaiting undoes waitFull.
func (o *Output) stopWaiting(s *sequencer) {
	o.seqMu.Lock()
	delete(o.waiting, s)
	o.seqMu.Unlock()
}
