// Package restore produces the records of a kafka-backup tree back to Kafka:
// every partition is read in offset order across its files
// (tree.PartitionReader) and each record is
// produced to the same partition of the same (or a renamed) topic with its
// key, value, headers and timestamp unchanged. Null keys, null values
// (tombstones) and null header values stay null; headers keep their order
// and duplicates.
//
// The records go straight from segment.Reader to a franz-go producer
// (idempotent, acks=all, manual partitioning): no Benthos pipeline is
// involved. Offsets are not preserved — Kafka gives the restored records
// new ones, in the original order — so the summary maps what was restored
// by source offset.
package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-backup/kafka-backup/rolling"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tree"
)

// Config configures Run.
type Config struct {
	// Source is the backup tree; Run does not close it.
	Source tree.Source
	// Brokers are the seed brokers of the target cluster. They may be empty
	// only with DryRun, which then skips the checks of the target.
	Brokers []string
	// Topics are the backup's topics to restore; all of them when empty.
	Topics []string
	// Rename maps a backup topic to the topic its records are produced to.
	Rename map[string]string
	// Partitions are the partitions to restore, in every selected topic;
	// all of them when empty.
	Partitions []int32

	// FromOffset and ToOffset, when set, bound the offsets restored in every
	// partition, both inclusive.
	FromOffset, ToOffset *int64
	// Since, when set, skips each partition's records before the first one
	// whose timestamp is at or after it; from that record on everything is
	// restored (a position in the log, not a filter).
	Since *time.Time
	// Until, when set, is a point in time: each partition is restored up to,
	// and without, its first record with a later timestamp.
	Until *time.Time

	// DryRun reads and checks every file and reports what would be
	// restored, producing nothing.
	DryRun bool
	// CreateTopics creates a missing target topic with as many partitions
	// as the backup has; without it a missing topic is refused.
	CreateTopics bool
	// ReplicationFactor of created topics; -1 (or 0) is the broker's
	// default.
	ReplicationFactor int16

	// Parallel is how many partitions are restored at once; 4 when 0.
	Parallel int
	// MaxBatchBytes is the producer's largest batch
	// (kgo.ProducerBatchMaxBytes): a record larger than it cannot be
	// produced. The franz-go default (about 1 MB) when 0.
	MaxBatchBytes int32
	// StallTimeout fails the records still waiting for the target when no
	// acknowledgement arrived for this long (a broker down or unreachable);
	// 2 minutes when 0. (kgo.RecordDeliveryTimeout cannot be used: franz-go
	// measures it from each record's timestamp, which restored records keep
	// from the past.)
	StallTimeout time.Duration
	// ClientOpts are more franz-go options (TLS, SASL, client id…).
	ClientOpts []kgo.Opt

	// Log gets warnings and progress lines; nothing when nil.
	Log io.Writer
	// Progress says how progress is shown on Log.
	Progress ProgressMode
	// ProgressInterval is the time between progress lines (ProgressLog);
	// 5s when 0.
	ProgressInterval time.Duration
}

// ProgressMode says how Run shows progress.
type ProgressMode int

const (
	ProgressNone ProgressMode = iota // nothing
	ProgressLog                      // a line every ProgressInterval
	ProgressBar                      // a bar redrawn in place, for terminals
)

// Summary is what Run did.
type Summary struct {
	Source     string
	DryRun     bool
	Partitions []*PartitionSummary // by topic, then partition
	Created    []string            // target topics created
	Took       time.Duration
}

// PartitionSummary is what happened to one partition of the backup.
type PartitionSummary struct {
	Topic     string // in the backup
	Target    string // produced to
	Partition int32

	Files     int   // final files
	FileBytes int64 // their size
	ReadBytes int64 // bytes read from them

	// Records and Bytes (keys, values, header names and values) were
	// acknowledged by the target, or would be produced in a dry run.
	Records int64
	Bytes   int64
	// Restored are the source offsets restored (produced, or acknowledged
	// when the run failed), contiguous ones merged.
	Restored []segment.Range
	// Gaps are the offsets between restored ones that no file holds
	// (compacted topics, transactions, offsets never backed up).
	Gaps []segment.Range
	// Duplicates are records skipped because a file read before held the
	// same offset (overlapping files).
	Duplicates int64
	// OutOfOrder are records produced after a record with a higher offset
	// (a file starting below the offset its name says, or batches out of
	// order inside a file; files that interleave are read in offset order):
	// nothing is lost, but their order in the target differs from the
	// source's.
	OutOfOrder int64
	// Skipped are records outside --from-offset/--to-offset or before
	// --since.
	Skipped int64
	// Stopped says why the partition ended before its last file (--until),
	// or is empty.
	Stopped string
	// Leftovers are the hidden files of the folder, not restored.
	Leftovers []tree.Leftover
	// Warnings are oddities that did not stop the partition.
	Warnings []string
	// Err stopped the partition: a torn or corrupt batch (naming the file
	// and byte), a file that could not be read, or a produce error.
	Err error
}

// GapOffsets returns how many offsets the gaps hold.
func (p *PartitionSummary) GapOffsets() int64 {
	var n int64
	for _, g := range p.Gaps {
		n += g.Last - g.First + 1
	}
	return n
}

// Totals adds up the partitions.
func (s *Summary) Totals() (t PartitionSummary) {
	for _, p := range s.Partitions {
		t.Files += p.Files
		t.FileBytes += p.FileBytes
		t.ReadBytes += p.ReadBytes
		t.Records += p.Records
		t.Bytes += p.Bytes
		t.Duplicates += p.Duplicates
		t.OutOfOrder += p.OutOfOrder
		t.Skipped += p.Skipped
		t.Gaps = append(t.Gaps, p.Gaps...)
	}
	return t
}

// Err returns the partitions' errors joined, or nil.
func (s *Summary) Err() error {
	var errs []error
	for _, p := range s.Partitions {
		if p.Err != nil {
			errs = append(errs, fmt.Errorf("%s/%d: %w", p.Topic, p.Partition, p.Err))
		}
	}
	return errors.Join(errs...)
}

// ErrRefused wraps the errors that keep Run from producing anything: a
// target topic that is missing or has too few partitions, a bad selection.
var ErrRefused = errors.New("restore refused")

// Run restores the backup as cfg says. It returns the summary and an error
// when it was interrupted or any partition stopped with an error (the
// summary then says what was done), or no summary and the error when it
// refused to start (ErrRefused: a bad selection, a missing target topic or
// one with too few partitions) or could not reach the target: nothing was
// produced then. A dry run reads everything whatever the target says.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	start := time.Now()
	if cfg.Source == nil {
		return nil, errors.New("restore: no backup source")
	}
	if len(cfg.Brokers) == 0 && !cfg.DryRun {
		return nil, fmt.Errorf("%w: no target brokers given", ErrRefused)
	}
	if cfg.FromOffset != nil && cfg.ToOffset != nil && *cfg.FromOffset > *cfg.ToOffset {
		return nil, fmt.Errorf("%w: --from-offset %d is above --to-offset %d", ErrRefused, *cfg.FromOffset, *cfg.ToOffset)
	}
	if cfg.Since != nil && cfg.Until != nil && cfg.Since.After(*cfg.Until) {
		return nil, fmt.Errorf("%w: --since %s is after --until %s", ErrRefused, cfg.Since.Format(time.RFC3339Nano), cfg.Until.Format(time.RFC3339Nano))
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 4
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = 2 * time.Minute
	}
	if cfg.ReplicationFactor == 0 {
		cfg.ReplicationFactor = -1
	}
	r := &run{cfg: cfg, src: cfg.Source, log: cfg.Log}
	if r.log == nil {
		r.log = io.Discard
	}
	sum := &Summary{Source: cfg.Source.String(), DryRun: cfg.DryRun}

	plan, err := r.plan(ctx)
	if err != nil {
		return nil, err
	}
	for _, tp := range plan {
		for _, ps := range tp.parts {
			sum.Partitions = append(sum.Partitions, &ps.sum)
		}
	}

	var targetErr error
	if len(cfg.Brokers) > 0 {
		opts := []kgo.Opt{
			kgo.SeedBrokers(cfg.Brokers...),
			kgo.ClientID("kafka-backup-restore"),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RequiredAcks(kgo.AllISRAcks()), // the default, with idempotence
			kgo.MaxBufferedBytes(256 << 20),
		}
		if cfg.MaxBatchBytes > 0 {
			opts = append(opts, kgo.ProducerBatchMaxBytes(cfg.MaxBatchBytes))
		}
		cl, err := kgo.NewClient(append(opts, cfg.ClientOpts...)...)
		if err != nil {
			return nil, fmt.Errorf("target cluster: %w", err)
		}
		defer cl.Close()
		r.cl = cl
		created, err := r.checkTargets(ctx, plan)
		sum.Created = created
		if err != nil {
			if !cfg.DryRun {
				return nil, err // nothing was produced
			}
			// A dry run reads the files all the same and reports both.
			targetErr = err
			fmt.Fprintf(r.log, "dry run: the restore would be refused: %v\n", err)
		}
	}

	prog := r.startProgress(plan)
	pctx, stopWatch, cancelProduce := r.watchStalls(ctx)
	defer cancelProduce(nil)
	defer stopWatch()
	var wg sync.WaitGroup
	sem := make(chan struct{}, cfg.Parallel)
	for _, tp := range plan {
		for _, ps := range tp.parts {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				r.partition(pctx, ps)
			}()
		}
	}
	wg.Wait()
	var flushErr error
	if r.cl != nil && !cfg.DryRun {
		// Wait for every acknowledgement, even when interrupted: the summary
		// must say what the target holds.
		// Records not sent yet fail at once when pctx is done (interrupted,
		// stalled); the wait is for those a broker may have written.
		// The watchdog still runs: a stall during the flush cancels pctx,
		// and the flush gives up a little later.
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		stopAfter := context.AfterFunc(pctx, func() { time.AfterFunc(min(10*time.Second, cfg.StallTimeout), cancel) })
		flushErr = r.cl.Flush(fctx)
		stopAfter()
		cancel()
	}
	stopWatch()
	prog.stop()
	for _, tp := range plan {
		for _, ps := range tp.parts {
			ps.finish(cfg.DryRun)
		}
	}
	sum.Took = time.Since(start)
	var errs []error
	if targetErr != nil {
		errs = append(errs, targetErr)
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, fmt.Errorf("interrupted: %w", err))
	} else if pctx.Err() != nil {
		err := context.Cause(pctx)
		errs = append(errs, err)
	} else if flushErr != nil {
		errs = append(errs, fmt.Errorf("waiting for acknowledgements: %w", flushErr))
	}
	if err := sum.Err(); err != nil {
		errs = append(errs, err)
	}
	return sum, errors.Join(errs...)
}

// run is one restore.
type run struct {
	cfg Config
	src tree.Source
	cl  *kgo.Client
	log io.Writer

	lastAck   atomic.Int64 // unix nanoseconds of the last acknowledgement
	readBytes atomic.Int64 // from files, all partitions
	records   atomic.Int64 // acknowledged (or planned in a dry run)
	recBytes  atomic.Int64
}

// topicPlan is one backup topic to restore.
type topicPlan struct {
	topic, target string
	folders       int32 // highest partition folder + 1
	needed        int32 // highest partition with files + 1
	parts         []*partState
}

// partState is one partition's restore in progress.
type partState struct {
	sum  PartitionSummary
	part tree.Partition

	seen    offsetSet // offsets produced (or planned)
	sent    int64     // records handed to the producer
	started bool      // --since reached

	mu          sync.Mutex
	prodErr     error   // first produce error
	firstFailed int64   // source offset of the record it failed
	inFlight    []int64 // source offsets produced and not answered, in order
	failed      atomic.Bool
	acked       offsetSet // acknowledged offsets
	ackRecs     int64
	ackBytes    int64
}

// plan lists the backup and checks the selection.
func (r *run) plan(ctx context.Context) ([]*topicPlan, error) {
	all, err := r.src.Topics(ctx)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, t := range all {
		have[t] = true
	}
	topics := all
	if len(r.cfg.Topics) > 0 {
		topics = nil
		seen := map[string]bool{}
		var missing []string
		for _, t := range r.cfg.Topics {
			if seen[t] {
				continue
			}
			seen[t] = true
			if !have[t] {
				missing = append(missing, t)
				continue
			}
			topics = append(topics, t)
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("%w: topic %s not in the backup at %s (it has: %s)", ErrRefused,
				strings.Join(missing, ", "), r.src, listOrNone(all))
		}
		sort.Strings(topics)
	}
	selected := map[string]bool{}
	for _, t := range topics {
		selected[t] = true
	}
	for from, to := range r.cfg.Rename {
		if !selected[from] {
			why := "not in the backup"
			if have[from] {
				why = "not selected by --topic"
			}
			return nil, fmt.Errorf("%w: --rename %s=%s: topic %s is %s", ErrRefused, from, to, from, why)
		}
		if err := rolling.ValidTopic(to); err != nil {
			return nil, fmt.Errorf("%w: --rename %s=%s: %v", ErrRefused, from, to, err)
		}
	}
	targets := map[string]string{}
	wantParts, foundParts := map[int32]bool{}, map[int32]bool{}
	for _, p := range r.cfg.Partitions {
		wantParts[p] = true
	}
	var plan []*topicPlan
	for _, t := range topics {
		target := t
		if to, ok := r.cfg.Rename[t]; ok {
			target = to
		}
		if prev, dup := targets[target]; dup {
			return nil, fmt.Errorf("%w: topics %s and %s would both be restored into %s: rename one of them", ErrRefused, prev, t, target)
		}
		targets[target] = t
		tp := &topicPlan{topic: t, target: target}
		parts, err := r.src.Partitions(ctx, t)
		if err != nil {
			return nil, err
		}
		for _, p := range parts {
			tp.folders = max(tp.folders, p+1)
			if len(wantParts) > 0 && !wantParts[p] {
				continue
			}
			foundParts[p] = true
			listing, err := r.src.List(ctx, t, p)
			if err != nil {
				return nil, err
			}
			ps := &partState{part: listing, sum: PartitionSummary{
				Topic: t, Target: target, Partition: p,
				Files: len(listing.Files), FileBytes: listing.Bytes(), Leftovers: listing.Leftovers,
			}}
			if len(listing.Leftovers) > 0 {
				var names []string
				for _, l := range listing.Leftovers {
					names = append(names, fmt.Sprintf("%s (%d bytes)", l.Name, l.Size))
				}
				ps.sum.Warnings = append(ps.sum.Warnings, "not restored, in-progress or upload files: "+strings.Join(names, ", "))
			}
			if len(listing.Stray) > 0 {
				ps.sum.Warnings = append(ps.sum.Warnings, "ignored, not backup files: "+strings.Join(listing.Stray, ", "))
			}
			if len(listing.Files) > 0 {
				tp.needed = max(tp.needed, p+1)
			}
			tp.parts = append(tp.parts, ps)
		}
		plan = append(plan, tp)
	}
	var missing []string
	for p := range wantParts {
		if !foundParts[p] {
			missing = append(missing, strconv.Itoa(int(p)))
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("%w: --partition %s: no such partition folder in the selected topics", ErrRefused, strings.Join(missing, ", "))
	}
	return plan, nil
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "no topic"
	}
	return strings.Join(s, ", ")
}

// partition restores one partition: its records in offset order across its
// files, whatever their layout (tree.PartitionReader), so that --to-offset,
// --since and --until cut the same log the source partition was.
func (r *run) partition(ctx context.Context, ps *partState) {
	rd := tree.NewPartitionReader(ctx, r.src, ps.part, tree.ReadOptions{
		OnRead: func(n int) {
			ps.sum.ReadBytes += int64(n)
			r.readBytes.Add(int64(n))
		},
		Warn: func(msg string) { ps.sum.Warnings = append(ps.sum.Warnings, msg) },
	})
	defer rd.Close()
	err := r.read(ctx, ps, rd)
	ps.sum.Duplicates += rd.Duplicates()
	if err != nil {
		ps.sum.Err = err
	}
}

// read restores the records rd returns, within the offsets and the time
// window asked for. It returns at the end of the partition, at --until or
// --to-offset, or with the error that stops the partition.
func (r *run) read(ctx context.Context, ps *partState, rd *tree.PartitionReader) error {
	from, to := int64(math.MinInt64), int64(math.MaxInt64)
	if r.cfg.FromOffset != nil {
		from = *r.cfg.FromOffset
	}
	if r.cfg.ToOffset != nil {
		to = *r.cfg.ToOffset
	}
	var since, until int64 = math.MinInt64, math.MaxInt64
	if r.cfg.Since != nil {
		since = r.cfg.Since.UnixMilli()
	}
	if r.cfg.Until != nil {
		until = r.cfg.Until.UnixMilli()
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if ps.failed.Load() {
			return nil // the produce error is the partition's error
		}
		b, err := rd.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return r.readError(ps, err)
		}
		n := int64(b.NumRecords)
		switch {
		case b.LastOffset < from:
			ps.sum.Skipped += n
			continue
		case b.BaseOffset > to:
			return nil // offsets only grow in the reader's order
		case !ps.started && b.MaxTimestamp < since:
			ps.sum.Skipped += n
			continue
		}
		recs, err := b.Records()
		if err != nil {
			return r.readError(ps, err)
		}
		for i := range recs {
			rec := &recs[i]
			switch {
			case rec.Offset < from:
				ps.sum.Skipped++
				continue
			case rec.Offset > to:
				return nil
			}
			if !ps.started {
				if rec.Timestamp < since {
					ps.sum.Skipped++
					continue
				}
				ps.started = true
			}
			if rec.Timestamp > until {
				ps.sum.Stopped = fmt.Sprintf("--until: the record at offset %d has timestamp %s, after %s",
					rec.Offset, fmtMillis(rec.Timestamp), fmtMillis(until))
				return nil
			}
			if rec.Offset < ps.seen.max() {
				ps.sum.OutOfOrder++
			}
			ps.seen.add(rec.Offset)
			if err := r.produce(ctx, ps, rec); err != nil {
				return err
			}
		}
	}
}

// readError describes a file or batch that cannot be read, with the file,
// the byte and the last offset restored before it.
func (r *run) readError(ps *partState, err error) error {
	after := "nothing of this partition was restored before it"
	if m := ps.seen.max(); m >= 0 {
		after = fmt.Sprintf("the partition is restored up to offset %d", m)
	}
	var re *tree.ReadError
	if !errors.As(err, &re) {
		return fmt.Errorf("%w; %s", err, after)
	}
	where := fmt.Sprintf("file %s/%s/%d/%s", r.src, ps.sum.Topic, ps.sum.Partition, re.File)
	if re.Position >= 0 {
		where += fmt.Sprintf(": byte %d", re.Position)
	}
	if re.After >= 0 {
		where += fmt.Sprintf(" (after offset %d of the file)", re.After)
	}
	return fmt.Errorf("%s: %w; %s", where, re.Err, after)
}

func fmtMillis(ms int64) string {
	return fmt.Sprintf("%s (%d)", time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00"), ms)
}

// recordBytes is the size of a record's data.
func recordBytes(rec *segment.Record) int64 {
	n := len(rec.Key) + len(rec.Value)
	for _, h := range rec.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return int64(n)
}

// produce hands one record to the producer, or counts it in a dry run.
func (r *run) produce(ctx context.Context, ps *partState, rec *segment.Record) error {
	size := recordBytes(rec)
	if r.cfg.DryRun {
		ps.ackRecs++
		ps.ackBytes += size
		ps.acked.add(rec.Offset)
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
	ps.sent++
	ps.mu.Lock()
	ps.inFlight = append(ps.inFlight, off)
	ps.mu.Unlock()
	r.cl.Produce(ctx, kr, func(_ *kgo.Record, err error) {
		ps.mu.Lock()
		defer ps.mu.Unlock()
		// Promises come in the order the records were produced.
		ps.inFlight = ps.inFlight[1:]
		if len(ps.inFlight) == 0 {
			ps.inFlight = nil // let the backing array go
		}
		if err != nil {
			if ps.prodErr == nil {
				if cause := context.Cause(ctx); cause != nil && errors.Is(err, context.Canceled) {
					err = cause
				}
				ps.prodErr = fmt.Errorf("producing the record of offset %d to %s/%d: %w", off, ps.sum.Target, ps.sum.Partition, err)
				ps.firstFailed = off
				ps.failed.Store(true)
			}
			return
		}
		r.lastAck.Store(time.Now().UnixNano())
		ps.ackRecs++
		ps.ackBytes += size
		ps.acked.add(off)
		r.records.Add(1)
		r.recBytes.Add(size)
	})
	return nil
}

// errStalled says the target stopped acknowledging records.
var errStalled = errors.New("the target cluster acknowledged nothing")

// watchStalls returns the context records are produced with: cancelled with
// a cause when records wait for acknowledgement and none came for
// StallTimeout. franz-go then fails them (when it is safe with
// idempotence), which stops their partitions with an error.
func (r *run) watchStalls(ctx context.Context) (context.Context, func(), context.CancelCauseFunc) {
	pctx, cancel := context.WithCancelCause(ctx)
	if r.cl == nil || r.cfg.DryRun {
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
			if r.cl.BufferedProduceRecords() == 0 {
				r.lastAck.Store(time.Now().UnixNano())
			} else if idle > r.cfg.StallTimeout {
				cancel(fmt.Errorf("%w for %v with %d records waiting: is it up and reachable?", errStalled, r.cfg.StallTimeout, r.cl.BufferedProduceRecords()))
				return
			}
		}
	}()
	return pctx, func() { once.Do(func() { close(done) }) }, cancel
}

// finish fills the summary once every acknowledgement is in.
func (ps *partState) finish(dryRun bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.sum.Records = ps.ackRecs
	ps.sum.Bytes = ps.ackBytes
	ps.sum.Restored = append([]segment.Range(nil), ps.acked.r...)
	ps.sum.Gaps = ps.seen.holes()
	if lost := ps.sent - ps.ackRecs; ps.prodErr == nil && !dryRun && lost > 0 {
		ps.prodErr = fmt.Errorf("%d records were handed to the producer and not acknowledged: the target may or may not hold them", lost)
		ps.firstFailed = ps.inFlight[0]
	}
	if ps.prodErr != nil {
		acked := "nothing of this partition was acknowledged"
		if len(ps.acked.r) > 0 {
			acked = "acknowledged: offsets " + ranges(ps.acked.r, 5)
		}
		next := fmt.Sprintf("to go on, restore it again with --topic %s --partition %d --from-offset %d", ps.sum.Topic, ps.sum.Partition, ps.firstFailed)
		if ps.acked.max() > ps.firstFailed {
			next += " (offsets acknowledged above it will then be in the target twice)"
		}
		err := fmt.Errorf("%w; %s; %s", ps.prodErr, acked, next)
		if ps.sum.Err == nil {
			ps.sum.Err = err
		} else {
			ps.sum.Err = errors.Join(ps.sum.Err, err)
		}
	}
}

// offsetSet is a set of offsets as sorted, disjoint, non-adjacent ranges.
// Adding offsets in increasing order is O(1).
type offsetSet struct {
	r []segment.Range
}

// max returns the highest offset in the set, or -1.
func (s *offsetSet) max() int64 {
	if len(s.r) == 0 {
		return -1
	}
	return s.r[len(s.r)-1].Last
}

func (s *offsetSet) add(off int64) {
	n := len(s.r)
	if n == 0 || off > s.r[n-1].Last {
		s.r = segment.AppendRange(s.r, segment.Range{First: off, Last: off})
		return
	}
	// i: the first range ending at or after off-1.
	i := sort.Search(n, func(i int) bool { return s.r[i].Last >= off-1 })
	if s.r[i].First <= off && off <= s.r[i].Last {
		return
	}
	switch {
	case s.r[i].Last == off-1:
		s.r[i].Last = off
		if i+1 < n && s.r[i+1].First == off+1 {
			s.r[i].Last = s.r[i+1].Last
			s.r = append(s.r[:i+1], s.r[i+2:]...)
		}
	case s.r[i].First == off+1:
		s.r[i].First = off
	default:
		s.r = append(s.r, segment.Range{})
		copy(s.r[i+1:], s.r[i:])
		s.r[i] = segment.Range{First: off, Last: off}
	}
}

func (s *offsetSet) contains(off int64) bool {
	return s.covers(off, off)
}

// covers reports whether every offset from first to last is in the set.
func (s *offsetSet) covers(first, last int64) bool {
	i := sort.Search(len(s.r), func(i int) bool { return s.r[i].Last >= first })
	return i < len(s.r) && s.r[i].First <= first && s.r[i].Last >= last
}

// holes returns the ranges between the set's ranges.
func (s *offsetSet) holes() []segment.Range {
	var out []segment.Range
	for i := 1; i < len(s.r); i++ {
		out = append(out, segment.Range{First: s.r[i-1].Last + 1, Last: s.r[i].First - 1})
	}
	return out
}
