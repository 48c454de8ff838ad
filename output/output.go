// Package output is the kafka_backup Benthos output: it takes the batches a
// Kafka input delivers, splits them by partition and hands each partition's
// records to a rolling.Writer. WriteBatch returns nil, and so lets Benthos
// acknowledge the batch to Kafka, only once every record is in a file.
package output

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/redpanda-data/benthos/v4/public/service"

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
}

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
// when it connects, handing rolled files to dest.
func New(cfg rolling.Config, dest Destination, mgr *service.Resources) *Output {
	if cfg.Observer == nil {
		cfg.Observer = NewObserver(mgr)
	}
	cfg.Destination = dest
	return &Output{cfg: cfg, dest: dest, log: mgr.Logger()}
}

// Connect starts the rolling writer. While the destination is not ready it
// fails with the destination's reason, and Benthos tries again with backoff.
func (o *Output) Connect(context.Context) error {
	if err := o.dest.Ready(); err != nil {
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
	return nil
}

// partBatch is the records of one partition in a message batch.
type partBatch struct {
	topic     string
	partition int32
	recs      []segment.Record
}

// WriteBatch writes every message of batch to its partition's file and
// returns nil once all of them are there.
func (o *Output) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	o.mu.Lock()
	w := o.writer
	o.mu.Unlock()
	if w == nil || o.dest.Ready() != nil {
		return service.ErrNotConnected
	}
	parts, err := split(batch)
	if err != nil {
		return err
	}
	if len(parts) == 1 {
		return o.write(ctx, w, parts[0])
	}
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i := range parts {
		wg.Go(func() { errs[i] = o.write(ctx, w, parts[i]) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (o *Output) write(ctx context.Context, w *rolling.Writer, p *partBatch) error {
	if err := w.Write(ctx, p.topic, p.partition, p.recs); err != nil {
		if errors.Is(err, rolling.ErrClosed) {
			return service.ErrNotConnected
		}
		return fmt.Errorf("topic %s partition %d: %w", p.topic, p.partition, err)
	}
	return nil
}

// split groups a batch by partition, keeping the order of messages within
// each partition.
func split(batch service.MessageBatch) ([]*partBatch, error) {
	type key struct {
		t string
		p int32
	}
	var parts []*partBatch
	var index map[key]*partBatch
	for i, msg := range batch {
		topic, partition, rec, err := recordOf(msg)
		if err != nil {
			return nil, fmt.Errorf("message %d of the batch: %w; nothing of this batch was written", i, err)
		}
		if err := rolling.ValidTopic(topic); err != nil {
			return nil, fmt.Errorf("message %d of the batch (partition %d, offset %d): %w; nothing of this batch was written", i, partition, rec.Offset, err)
		}
		// Batches usually hold one partition: avoid the map until they don't.
		var pb *partBatch
		if n := len(parts); n > 0 && parts[n-1].topic == topic && parts[n-1].partition == partition {
			pb = parts[n-1]
		} else {
			if index == nil {
				index = map[key]*partBatch{}
				for _, p := range parts {
					index[key{p.topic, p.partition}] = p
				}
			}
			if pb = index[key{topic, partition}]; pb == nil {
				pb = &partBatch{topic: topic, partition: partition, recs: make([]segment.Record, 0, len(batch))}
				parts = append(parts, pb)
				index[key{topic, partition}] = pb
			}
		}
		pb.recs = append(pb.recs, rec)
	}
	return parts, nil
}

// Close finalizes every open file, then closes the destination.
func (o *Output) Close(ctx context.Context) error {
	o.mu.Lock()
	w := o.writer
	o.mu.Unlock()
	var err error
	if w != nil {
		err = w.Close(ctx)
	}
	err = errors.Join(err, o.dest.Close(ctx))
	if err != nil {
		o.log.Warnf("closing kafka_backup: %v", err)
	}
	return err
}
