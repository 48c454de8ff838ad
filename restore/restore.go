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
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-backup/kafka-backup/metadata"
	"github.com/kafka-backup/kafka-backup/offsets"
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
	// TopicConfigs are configs of created topics (--topic-config), over
	// those of the backup's metadata snapshot (restore/groups.go).
	TopicConfigs map[string]string
	// ConsumerGroups select the consumer groups of the backup's metadata
	// snapshots whose committed offsets are translated to the restored
	// records and committed on the target (restore/groups.go).
	ConsumerGroups []*regexp.Regexp
	// OffsetsFile, when set, is where the source→target offsets of the
	// acknowledged records are saved, added to what the file holds, for
	// CommitOffsets (restore/offsets.go).
	OffsetsFile string

	// Parallel is how many partitions are restored at once; 4 when 0.
	Parallel int
	// MaxBatchBytes is the producer's largest batch
	// (kgo.ProducerBatchMaxBytes) for every target topic: a record larger
	// than it, in a batch of its own, cannot be produced. When 0, each
	// target topic's max.message.bytes, asked of the target cluster
	// (DescribeConfigs), or DefaultMaxMessageBytes when there is no target
	// to ask (a dry run without Brokers) or it does not answer.
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

// DefaultMaxMessageBytes is Kafka's default max.message.bytes (and broker
// message.max.bytes): the batch limit when the target cannot be asked.
const DefaultMaxMessageBytes = 1048588

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
	if err := r.loadMetadata(ctx, plan, sum); err != nil {
		return nil, err
	}
	for _, tp := range plan {
		for _, ps := range tp.parts {
			sum.Partitions = append(sum.Partitions, &ps.sum)
		}
	}

	var targetErr error
	if len(cfg.Brokers) > 0 {
		if err := r.connect(); err != nil {
			return nil, err
		}
		defer r.cl.Close()
		if err := r.checkGroups(ctx, plan, sum); err != nil { // restore/groups.go
			if !cfg.DryRun {
				return nil, err // nothing was created or produced
			}
			targetErr = err
			fmt.Fprintf(r.log, "dry run: the restore would be refused: %v\n", err)
		}
		created, err := r.checkTargets(ctx, plan)
		sum.Created = created
		if err != nil {
			if !cfg.DryRun {
				return nil, err // nothing was produced
			}
			// A dry run reads the files all the same and reports both.
			targetErr = errors.Join(targetErr, err)
			fmt.Fprintf(r.log, "dry run: the restore would be refused: %v\n", err)
		}
	}
	if err := r.prepareMetadata(ctx, plan, sum, sum.Created); err != nil {
		if !cfg.DryRun {
			return nil, err // nothing was produced
		}
		targetErr = errors.Join(targetErr, err)
		fmt.Fprintf(r.log, "dry run: the restore would be refused: %v\n", err)
	}
	r.setLimits(ctx, plan)
	if r.cl != nil && !cfg.DryRun {
		if err := r.startProducers(plan); err != nil {
			return nil, err
		}
		defer func() {
			for _, p := range r.producers {
				p.Close()
			}
		}()
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
	if len(r.producers) > 0 {
		// Wait for every acknowledgement, even when interrupted: the summary
		// must say what the target holds.
		// Records not sent yet fail at once when pctx is done (interrupted,
		// stalled); the wait is for those a broker may have written.
		// The watchdog still runs: a stall during the flush cancels pctx,
		// and the flush gives up a little later.
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		stopAfter := context.AfterFunc(pctx, func() { time.AfterFunc(min(10*time.Second, cfg.StallTimeout), cancel) })
		for _, p := range r.producers {
			if err := p.Flush(fctx); err != nil && flushErr == nil {
				flushErr = err
			}
		}
		stopAfter()
		cancel()
	}
	stopWatch()
	prog.stop()
	for _, tp := range plan {
		for _, ps := range tp.parts {
			ps.finish(&cfg)
		}
	}
	var errs []error
	if ctx.Err() == nil && targetErr == nil {
		if err := r.commitGroups(ctx, sum); err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.OffsetsFile != "" && !cfg.DryRun {
		if err := r.saveOffsetMap(cfg.OffsetsFile, plan); err != nil { // restore/offsets.go
			errs = append(errs, err)
		}
	}
	sum.Took = time.Since(start)
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
	if n := len(sum.Totals().TooLarge); n > 0 && cfg.DryRun {
		errs = append(errs, fmt.Errorf("%s too large to restore (listed per partition): raise --max-batch-bytes, and the target topic's max.message.bytes, above their sizes", plural(int64(n), "record")))
	}
	return sum, errors.Join(errs...)
}

// run is one restore.
type run struct {
	cfg       Config
	src       tree.Source
	cl        *kgo.Client           // checks and creates topics
	producers map[int32]*kgo.Client // by batch limit; none in a dry run
	log       io.Writer
	meta      metaState // restore/groups.go

	lastAck   atomic.Int64 // unix nanoseconds of the last acknowledgement
	readBytes atomic.Int64 // from files, all partitions
	records   atomic.Int64 // acknowledged (or planned in a dry run)
	recBytes  atomic.Int64
}

// partState is one partition's restore in progress.
type partState struct {
	sum  PartitionSummary
	part tree.Partition

	cl       *kgo.Client // the producer for the partition's batch limit
	seen     offsets.Set // offsets handed to the producer (or planned)
	started  bool        // --since reached
	cut      error       // what stopped the partition before its end: re-running goes on (interrupted, stalled, a record too large)
	cutCause error       // the run's context's cause, when that stopped it
	nextFile int64       // after a torn or corrupt batch: the first offset of the partition's next file, where to go on
	hasNext  bool        // nextFile is set
	base     int64       // dry run: the target offset the first restored record is predicted to get
	skipTo   int64       // the records below this source offset were skipped (--from-offset, --since): restored by an earlier run, maybe

	mu       sync.Mutex
	prodErr  error // produce error of the lowest offset
	errOff   int64 // that offset
	failed   atomic.Bool
	acked    offsets.Set        // acknowledged offsets, whatever order the acknowledgements come in
	omap     metadata.OffsetMap // source offset → target offset of the acknowledged records
	ackRecs  int64
	ackBytes int64
}

// ErrNothingFinal says the selected partitions hold no final file: there is
// nothing to restore, and an exit status 0 would hide it.
var ErrNothingFinal = errors.New("nothing final to restore")

// errTooLarge stops a partition at a record larger than its batch limit.
var errTooLarge = errors.New("record too large")

// errStalled says the target stopped acknowledging records.
var errStalled = errors.New("the target cluster acknowledged nothing")

// finish fills the summary once every acknowledgement is in. A partition
// cut short (interrupted, stalled, a record too large) or with records not
// acknowledged fails with where to go on: the lowest offset it was to
// restore that the target did not acknowledge, whatever order the
// acknowledgements came in; offsets no file holds (gaps) are not waited
// for.
func (ps *partState) finish(cfg *Config) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.sum.Records = ps.ackRecs
	ps.sum.Bytes = ps.ackBytes
	ps.sum.Restored = slices.Clone(ps.acked.Ranges())
	ps.sum.Gaps = ps.seen.Holes()
	ps.sum.Resume = -1
	if cfg.DryRun {
		return
	}
	// resume: the first offset handed over and not acknowledged, or the
	// record too large, or the next after everything handed over.
	resume := int64(-1)
	unacked := ps.seen.Minus(&ps.acked)
	if len(unacked) > 0 {
		resume = unacked[0].First
	}
	var why []string
	if errors.Is(ps.cut, errTooLarge) {
		tl := ps.sum.TooLarge[len(ps.sum.TooLarge)-1]
		if resume < 0 || tl.Offset < resume {
			resume = tl.Offset
		}
		why = append(why, fmt.Sprintf("the record at offset %d takes %s as a batch of its own, above the limit of %s (%s): raise --max-batch-bytes above it (and the target topic's max.message.bytes, if below)",
			tl.Offset, plural(tl.Bytes, "byte"), plural(int64(ps.sum.Limit), "byte"), ps.sum.LimitFrom))
	} else if ps.cut != nil {
		why = append(why, ps.cut.Error())
	}
	if ps.prodErr != nil && (ps.cutCause == nil || !errors.Is(ps.prodErr, ps.cutCause)) {
		why = append(why, ps.prodErr.Error())
	}
	var unackedN int64
	for _, u := range unacked {
		unackedN += u.Last - u.First + 1
	}
	if unackedN > 0 {
		why = append(why, fmt.Sprintf("%s handed to the producer not acknowledged (the target may or may not hold them)", plural(unackedN, "record")))
	}
	if len(why) == 0 {
		if ps.hasNext {
			ps.sum.Resume = ps.nextFile // past a torn or corrupt batch (readError said so)
		}
		return
	}
	if resume < 0 && ps.seen.Max() >= 0 {
		resume = ps.seen.Max() + 1
	}
	acked := "nothing of this partition was acknowledged"
	if len(ps.acked.Ranges()) > 0 {
		acked = "acknowledged: offsets " + offsets.Format(ps.acked.Ranges(), 5)
	}
	next := fmt.Sprintf("to go on, restore it again with --topic %s --partition %d", ps.sum.Topic, ps.sum.Partition)
	switch {
	case resume >= 0:
		next += fmt.Sprintf(" --from-offset %d", resume)
		ps.sum.Resume = resume
		ps.sum.Twice = ps.acked.CountFrom(resume)
		if ps.sum.Twice > 0 {
			next += fmt.Sprintf(" (%s acknowledged above it will be restored twice)", plural(ps.sum.Twice, "record"))
		}
		if cfg.Since != nil {
			next += " and without --since (every record from that offset on is to be restored)"
		}
		next += ", the other options as before"
	case cfg.FromOffset != nil:
		next += fmt.Sprintf(" --from-offset %d, the other options as before", *cfg.FromOffset)
	default:
		next += ", the other options as before"
	}
	err := fmt.Errorf("%s; %s; %s", strings.Join(why, "; "), acked, next)
	if ps.sum.Err == nil {
		ps.sum.Err = err
	} else {
		ps.sum.Err = errors.Join(ps.sum.Err, err)
	}
}
