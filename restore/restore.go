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
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/metadata"
	"github.com/kafka-backup/kafka-backup/offsets"
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

// Summary is what Run did.
type Summary struct {
	Source     string
	DryRun     bool
	Partitions []*PartitionSummary // by topic, then partition
	Created    []string            // target topics created
	Took       time.Duration
	Metadata   MetadataSummary // snapshots used, config differences, group offsets (restore/groups.go)
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
	// Limit is the largest batch the partition's records are produced in,
	// and LimitFrom where it comes from (--max-batch-bytes, the target
	// topic's max.message.bytes, the broker default).
	Limit     int32
	LimitFrom string
	// TooLarge are records larger than Limit in a batch of their own: they
	// cannot be restored. A dry run lists them all; a restore stops the
	// partition at the first.
	TooLarge []TooLarge
	// Resume is where to go on after the partition failed: the lowest
	// source offset the run was to restore and the target did not
	// acknowledge (gaps skipped), or -1 when nothing of the partition was
	// acknowledged and it is to be restored again as the first time. Only
	// set when Err is.
	Resume int64
	// Twice counts the acknowledged records above Resume: restoring from
	// Resume writes them to the target a second time.
	Twice int64
	// Stopped says why the partition ended before its last file (--until),
	// or is empty.
	Stopped string
	// Leftovers are the hidden files of the folder, not restored.
	Leftovers []tree.Leftover
	// PrunedBelow is where the partition starts after a prune (its
	// layout.PrunedNote): the offsets below were deleted on purpose. 0
	// when never pruned.
	PrunedBelow int64
	// Warnings are oddities that did not stop the partition.
	Warnings []string
	// Err stopped the partition: a torn or corrupt batch (naming the file
	// and byte), a file that could not be read, or a produce error.
	Err error
}

// TooLarge is a record that cannot be produced: Bytes, the size of a batch
// holding it alone as the producer counts it (the 61-byte batch header, the
// encoded record and 4 bytes of framing), is above the partition's Limit.
type TooLarge struct {
	Offset int64
	Bytes  int64
}

// DefaultMaxMessageBytes is Kafka's default max.message.bytes (and broker
// message.max.bytes): the batch limit when the target cannot be asked.
const DefaultMaxMessageBytes = 1048588

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
		t.TooLarge = append(t.TooLarge, p.TooLarge...)
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
		cl, err := kgo.NewClient(r.clientOpts()...)
		if err != nil {
			return nil, fmt.Errorf("target cluster: %w", err)
		}
		defer cl.Close()
		r.cl = cl
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

// topicPlan is one backup topic to restore.
type topicPlan struct {
	topic, target string
	folders       int32 // highest partition folder + 1
	needed        int32 // highest partition with files + 1
	exists        bool  // the target topic exists (or was created)
	parts         []*partState
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
		if err := layout.ValidTopic(to); err != nil {
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
			if listing.Pruned {
				note, ok, err := tree.ReadPruned(ctx, r.src, t, p)
				switch {
				case err != nil:
					ps.sum.Warnings = append(ps.sum.Warnings, fmt.Sprintf("where a prune cut the partition is unknown: %v", err))
				case ok:
					ps.sum.PrunedBelow = note.Below
				}
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
	if err := nothingFinal(r.src, plan); err != nil {
		return nil, err
	}
	return plan, nil
}

// ErrNothingFinal says the selected partitions hold no final file: there is
// nothing to restore, and an exit status 0 would hide it.
var ErrNothingFinal = errors.New("nothing final to restore")

// nothingFinal refuses a plan without a single final file, saying what the
// partitions hold instead. Final files that the offsets or times asked for
// leave out are the user's choice, not this.
func nothingFinal(src tree.Source, plan []*topicPlan) error {
	var parts int
	var left []string
	for _, tp := range plan {
		for _, ps := range tp.parts {
			if len(ps.part.Files) > 0 {
				return nil
			}
			parts++
			for _, l := range ps.part.Leftovers {
				left = append(left, fmt.Sprintf("%s/%d/%s", tp.topic, ps.sum.Partition, l.Name))
			}
		}
	}
	var what string
	switch {
	case len(plan) == 0:
		what = "no topic folder"
	case len(left) > 0:
		if len(left) > 3 {
			left = append(left[:3], fmt.Sprintf("… (%d in all)", len(left)))
		}
		return fmt.Errorf("%w: %s holds in %s only in-progress or upload files (%s), no final file: "+
			"files become final when the backup rolls them (size, roll_duration) or stops cleanly; "+
			"if no backup runs, start the backup once (kafka-backup run with its config): at start it finalizes the in-progress files its last run left; "+
			"then restore again", ErrNothingFinal, src, plural(int64(parts), "selected partition"), strings.Join(left, ", "))
	default:
		what = fmt.Sprintf("%s and no backup file", plural(int64(parts), "selected partition"))
	}
	return fmt.Errorf("%w: %s holds %s: check the location (and --topic, --partition)", ErrNothingFinal, src, what)
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
		ps.stop(ctx, err)
	}
}

// errTooLarge stops a partition at a record larger than its batch limit.
var errTooLarge = errors.New("record too large")

// stop records why the partition's reading stopped before its end: the
// run's interruption or stall and a record too large are cut short (finish
// says where to go on); anything else (a file that cannot be read, a
// corrupt batch) is the partition's error.
func (ps *partState) stop(ctx context.Context, err error) {
	switch {
	case errors.Is(err, errTooLarge):
		ps.cut = err
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		ps.cutCause = context.Cause(ctx)
		ps.cut = ps.cutCause
		if !errors.Is(ps.cut, errStalled) {
			ps.cut = fmt.Errorf("interrupted (%w) before the partition was restored to its end", ps.cutCause)
		}
	default:
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
			ps.skipTo = max(ps.skipTo, b.LastOffset+1)
			continue
		case b.BaseOffset > to:
			return nil // offsets only grow in the reader's order
		case !ps.started && b.MaxTimestamp < since:
			ps.sum.Skipped += n
			ps.skipTo = max(ps.skipTo, b.LastOffset+1)
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
				ps.skipTo = max(ps.skipTo, rec.Offset+1)
				continue
			case rec.Offset > to:
				return nil
			}
			if !ps.started {
				if rec.Timestamp < since {
					ps.sum.Skipped++
					ps.skipTo = max(ps.skipTo, rec.Offset+1)
					continue
				}
				ps.started = true
			}
			if rec.Timestamp > until {
				ps.sum.Stopped = fmt.Sprintf("--until: the record at offset %d has timestamp %s, after %s",
					rec.Offset, fmtMillis(rec.Timestamp), fmtMillis(until))
				return nil
			}
			if rec.Offset < ps.seen.Max() {
				ps.sum.OutOfOrder++
			}
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
	if m := ps.seen.Max(); m >= 0 {
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
	return fmt.Errorf("%s: %w; %s; %s", where, re.Err, after, r.pastDamage(ps, re))
}

// pastDamage says where a partition stopped by a batch that cannot be read
// goes on: nothing after that batch in its file can be read, so at the
// partition's next file, the offsets between them lost unless another copy
// (an overlapping file, another backup) holds them. It keeps that offset
// for the summary's Resume.
func (r *run) pastDamage(ps *partState, re *tree.ReadError) string {
	last := max(ps.seen.Max(), re.After)
	next := int64(-1)
	for _, f := range ps.part.Files {
		if f.Name != re.File && f.FirstOffset > last && (next < 0 || f.FirstOffset < next) {
			next = f.FirstOffset
		}
	}
	if next < 0 {
		return "the rest of that file cannot be read, and no later file of this partition holds more"
	}
	ps.nextFile, ps.hasNext = next, true
	lost := fmt.Sprintf("offset %d is", last+1)
	if next-1 > last+1 {
		lost = fmt.Sprintf("offsets %d-%d are", last+1, next-1)
	}
	return fmt.Sprintf("the rest of that file cannot be read: %s lost unless another copy holds them; to go on with the partition's next file, restore it again with --topic %s --partition %d --from-offset %d, the other options as before",
		lost, ps.sum.Topic, ps.sum.Partition, next)
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

// errStalled says the target stopped acknowledging records.
var errStalled = errors.New("the target cluster acknowledged nothing")

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
