package restore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kgo"
)

// clientOpts are the options of every client of the target cluster.
func (r *run) clientOpts() []kgo.Opt {
	return append([]kgo.Opt{
		kgo.SeedBrokers(r.cfg.Brokers...),
		kgo.ClientID("kafka-backup-restore"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()), // the default, with idempotence
		kgo.MaxBufferedBytes(256 << 20),
	}, r.cfg.ClientOpts...)
}

// startProducers starts one producer per batch limit of the plan's
// partitions (franz-go's batch limit is per client): one in all unless
// target topics differ in max.message.bytes.
func (r *run) startProducers(plan []*topicPlan) error {
	r.producers = map[int32]*kgo.Client{}
	for _, tp := range plan {
		for _, ps := range tp.parts {
			limit := ps.sum.Limit
			if r.producers[limit] == nil {
				opts := append(r.clientOpts(), kgo.ProducerBatchMaxBytes(limit))
				if limit > 100<<20 { // franz-go's default largest request
					opts = append(opts, kgo.BrokerMaxWriteBytes(min(1<<30, limit+1<<20)))
				}
				cl, err := kgo.NewClient(opts...)
				if err != nil {
					return fmt.Errorf("target cluster: %w", err)
				}
				r.producers[limit] = cl
			}
			ps.cl = r.producers[limit]
		}
	}
	return nil
}

// buffered returns how many records the producers hold, not yet
// acknowledged.
func (r *run) buffered() int64 {
	var n int64
	for _, p := range r.producers {
		n += p.BufferedProduceRecords()
	}
	return n
}

// recordBytes is the size of a record's data.
func recordBytes(rec *segment.Record) int64 {
	n := len(rec.Key) + len(rec.Value)
	for _, h := range rec.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return int64(n)
}

// batchBytes is the size franz-go gives a batch holding rec alone, which
// it compares with its batch limit (kgo.ProducerBatchMaxBytes): 4 bytes of
// framing, the 61-byte batch header and the record, encoded with zero
// deltas. The broker checks the batch without the framing against
// max.message.bytes.
func batchBytes(rec *segment.Record) int64 {
	n := 1 + kbin.VarlongLen(0) + kbin.VarintLen(0) + // attributes, timestamp and offset deltas
		kbin.VarintLen(int32(len(rec.Key))) + len(rec.Key) +
		kbin.VarintLen(int32(len(rec.Value))) + len(rec.Value) +
		kbin.VarintLen(int32(len(rec.Headers)))
	for _, h := range rec.Headers {
		n += kbin.VarintLen(int32(len(h.Key))) + len(h.Key) + kbin.VarintLen(int32(len(h.Value))) + len(h.Value)
	}
	return 4 + 61 + int64(kbin.VarintLen(int32(n))+n)
}

// produce hands one record to the producer, or counts it in a dry run. A
// record larger than the partition's batch limit is not handed over: the
// partition stops at it (errTooLarge), or in a dry run it is listed.
func (r *run) produce(ctx context.Context, ps *partState, rec *segment.Record) error {
	size := recordBytes(rec)
	if bb := batchBytes(rec); ps.sum.Limit > 0 && bb > int64(ps.sum.Limit) {
		ps.sum.TooLarge = append(ps.sum.TooLarge, TooLarge{Offset: rec.Offset, Bytes: bb})
		if !r.cfg.DryRun {
			return errTooLarge
		}
		ps.seen.Add(rec.Offset) // read, not a gap; not counted as restored
		return nil
	}
	ps.seen.Add(rec.Offset)
	if r.cfg.DryRun {
		ps.omap.Add(rec.Offset, ps.base+ps.ackRecs)
		ps.ackRecs++
		ps.ackBytes += size
		ps.acked.Add(rec.Offset)
		r.records.Add(1)
		r.recBytes.Add(size)
		return nil
	}
	kr := &kgo.Record{
		Topic:     ps.sum.Target,
		Partition: ps.sum.Partition,
		Key:       rec.Key,
		Value:     rec.Value,
		Timestamp: time.UnixMilli(rec.Timestamp),
	}
	if len(rec.Headers) > 0 {
		kr.Headers = make([]kgo.RecordHeader, len(rec.Headers))
		for i, h := range rec.Headers {
			kr.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
		}
	}
	off := rec.Offset
	ps.cl.Produce(ctx, kr, func(kr *kgo.Record, err error) {
		ps.mu.Lock()
		defer ps.mu.Unlock()
		// No assumption on the order of the promises: the record blocked
		// in Produce when the run is interrupted fails before the older
		// ones buffered.
		if err != nil {
			if ps.prodErr == nil || off < ps.errOff {
				if cause := context.Cause(ctx); cause != nil && errors.Is(err, context.Canceled) {
					err = cause
				}
				ps.prodErr = fmt.Errorf("producing the record of offset %d to %s/%d: %w", off, ps.sum.Target, ps.sum.Partition, err)
				ps.errOff = off
			}
			ps.failed.Store(true)
			return
		}
		r.lastAck.Store(time.Now().UnixNano())
		ps.omap.Add(off, kr.Offset)
		ps.ackRecs++
		ps.ackBytes += size
		ps.acked.Add(off)
		r.records.Add(1)
		r.recBytes.Add(size)
	})
	return nil
}

// watchStalls returns the context records are produced with: cancelled with
// a cause when records wait for acknowledgement and none came for
// StallTimeout. franz-go then fails them (when it is safe with
// idempotence), which stops their partitions with an error.
func (r *run) watchStalls(ctx context.Context) (context.Context, func(), context.CancelCauseFunc) {
	pctx, cancel := context.WithCancelCause(ctx)
	if len(r.producers) == 0 {
		return pctx, func() {}, cancel
	}
	r.lastAck.Store(time.Now().UnixNano())
	done := make(chan struct{})
	var once sync.Once
	go func() {
		tick := time.NewTicker(min(time.Second, r.cfg.StallTimeout/4))
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-pctx.Done():
				return
			case <-tick.C:
			}
			idle := time.Since(time.Unix(0, r.lastAck.Load()))
			if r.buffered() == 0 {
				r.lastAck.Store(time.Now().UnixNano())
			} else if idle > r.cfg.StallTimeout {
				cancel(fmt.Errorf("%w for %v with %d records waiting: is it up and reachable?", errStalled, r.cfg.StallTimeout, r.buffered()))
				return
			}
		}
	}()
	return pctx, func() { once.Do(func() { close(done) }) }, cancel
}

// connect makes the client of the target cluster (r.cl); the caller closes
// it.
func (r *run) connect() error {
	cl, err := kgo.NewClient(r.clientOpts()...)
	if err != nil {
		return fmt.Errorf("target cluster: %w", err)
	}
	r.cl = cl
	return nil
}
