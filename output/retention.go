package output

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/kafka-backup/kafka-backup/prune"
	"github.com/kafka-backup/kafka-backup/tree"
)

// Retention configures the output's pruning of its own partitions, by the
// rules of kafka-backup prune (package prune).
type Retention struct {
	// Age: a final file whose newest record is older than this is
	// prunable. Retention is off when 0.
	Age time.Duration
	// Check is how often the output prunes, at most.
	Check time.Duration
	// KeepFiles is how many of each partition's newest files always stay.
	KeepFiles int
	// Open opens the destination as a tree.Source (a local folder, or the
	// FTP server).
	Open func(ctx context.Context) (tree.Source, error)
	// LockMarker, with an FTP destination, holds its marker updates of a
	// partition (prune.Options.LockMarker).
	LockMarker func(topic string, partition int32) (unlock func())
}

// retention is the running pruner of an Output.
type retention struct {
	cfg      Retention
	instance string
	log      *service.Logger
	files    *service.MetricCounter
	bytes    *service.MetricCounter
	errors   *service.MetricCounter

	mu      sync.Mutex
	touched map[partKey]bool // partitions written since the last check

	stop context.CancelFunc
	done chan struct{}
}

// SetRetention turns on the output's retention; call it before Connect.
// Every r.Check, the output prunes the partitions it wrote records of
// since the previous check: the partitions it currently owns (a partition
// another instance consumes is that instance's to prune). Deletions are
// counted in kafka_backup_retention_files_deleted and
// kafka_backup_retention_bytes_deleted, failures in
// kafka_backup_retention_errors.
func (o *Output) SetRetention(r Retention, mgr *service.Resources) {
	if r.Age <= 0 {
		return
	}
	m := mgr.Metrics()
	o.ret = &retention{
		cfg: r, instance: o.cfg.Instance, log: mgr.Logger(), touched: map[partKey]bool{},
		files:  m.NewCounter("kafka_backup_retention_files_deleted", "topic", "partition"),
		bytes:  m.NewCounter("kafka_backup_retention_bytes_deleted", "topic", "partition"),
		errors: m.NewCounter("kafka_backup_retention_errors"),
	}
	o.ret.errors.Incr(0)
}

// touch records that the output wrote records of a partition.
func (r *retention) touch(topic string, partition int32) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.touched[partKey{topic, partition}] = true
	r.mu.Unlock()
}

// start runs the checks until stopped.
func (r *retention) start() {
	ctx, stop := context.WithCancel(context.Background())
	r.stop, r.done = stop, make(chan struct{})
	go func() {
		defer close(r.done)
		t := time.NewTicker(r.cfg.Check)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				r.check(ctx)
			}
		}
	}()
}

// close stops the checks and waits for the one running.
func (r *retention) close() {
	if r == nil || r.stop == nil {
		return
	}
	r.stop()
	<-r.done
}

// check prunes the partitions written since the last check, and those
// whose prune failed at the last check.
func (r *retention) check(ctx context.Context) {
	r.mu.Lock()
	owned := make([]partKey, 0, len(r.touched))
	for k := range r.touched {
		owned = append(owned, k)
	}
	clear(r.touched)
	r.mu.Unlock()
	if len(owned) == 0 {
		return
	}
	src, err := r.cfg.Open(ctx)
	if err != nil {
		r.errors.Incr(1)
		r.log.Errorf("kafka_backup retention: opening the destination to prune: %v; nothing pruned, tried again in %s", err, r.cfg.Check)
		for _, k := range owned {
			r.touch(k.topic, k.partition)
		}
		return
	}
	defer src.Close()
	sort.Slice(owned, func(i, j int) bool {
		if owned[i].topic != owned[j].topic {
			return owned[i].topic < owned[j].topic
		}
		return owned[i].partition < owned[j].partition
	})
	// Its own temporary names: the FTP destination of the same instance
	// writes the marker under "<marker>.<instance>.tmp" meanwhile.
	opts := prune.Options{Cutoff: time.Now().Add(-r.cfg.Age), KeepFiles: r.cfg.KeepFiles, Apply: true, Instance: r.instance + "-retention",
		LockMarker: r.cfg.LockMarker}
	for _, k := range owned {
		p := prune.PrunePartition(ctx, src, k.topic, k.partition, opts)
		if ctx.Err() != nil {
			return
		}
		part := strconv.Itoa(int(k.partition))
		if n := len(p.Files); n > 0 {
			r.files.Incr(int64(n), k.topic, part)
			r.bytes.Incr(p.Bytes, k.topic, part)
			r.log.Infof("kafka_backup retention: pruned %s/%d: %d files, offsets %d-%d, %d bytes, records older than %s; the partition starts at offset %d",
				k.topic, k.partition, n, p.Files[0].FirstOffset, p.Files[n-1].LastOffset, p.Bytes, opts.Cutoff.UTC().Format(time.RFC3339), *p.NewFirstOffset)
		}
		if p.Error != "" {
			r.errors.Incr(1)
			r.log.Errorf("kafka_backup retention: pruning %s/%d: %s; tried again at the next check", k.topic, k.partition, p.Error)
			r.touch(k.topic, k.partition)
		}
	}
}

// String describes the retention for the start-up log.
func (r Retention) String() string {
	return fmt.Sprintf("files whose records are all older than %s pruned every %s, the newest %d of each partition kept", r.Age, r.Check, r.KeepFiles)
}
