package restore

// The cluster state a restore gives back beside the records, from the
// backup's metadata snapshots (package metadata): topics created with the
// source's partition count and configs (--create-topics, --topic-config),
// existing topics' configs compared, and consumer-group offsets translated
// to the offsets the restored records got (--consumer-groups).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/metadata"
	"github.com/kafka-backup/kafka-backup/tree"
)

// MetadataSummary is what a restore did with the backup's metadata
// snapshots.
type MetadataSummary struct {
	// Snapshots names the snapshot used for each backup topic.
	Snapshots map[string]string
	// ConfigDiffs are the differences between existing target topics and
	// the snapshot (and --topic-config): reported, not changed.
	ConfigDiffs []string
	// Commits are the group offsets committed to the target (planned, in a
	// dry run), by group, topic and partition.
	Commits []GroupCommit
	// Notes say what was not committed, and why.
	Notes []string
}

// GroupCommit is one consumer group offset translated to the target.
type GroupCommit struct {
	Group     string
	Topic     string // in the backup
	Target    string // the target topic
	Partition int32
	// Source is the group's committed offset in the snapshot; TargetOffset
	// the offset committed on the target, found by Rule.
	Source       int64
	TargetOffset int64
	Rule         metadata.Rule
	Snapshot     string
}

// metaState is the run's metadata: the snapshot of each backup topic and
// the group offsets to translate.
type metaState struct {
	snaps   map[string]*metadata.Stored // by backup topic; nil entries for none
	planned []plannedCommit
	bases   bool // dry run: ps.base holds the target's end offsets
}

// plannedCommit is a group offset of the snapshot to translate.
type plannedCommit struct {
	group    string
	tp       *topicPlan
	ps       *partState
	offset   int64
	metadata string
	snapshot string
}

// loadMetadata reads the backup's snapshots when --create-topics or
// --consumer-groups needs them and picks, for each topic, the latest one
// (at or before --until). With --consumer-groups, no snapshot at all is a
// refusal.
func (r *run) loadMetadata(ctx context.Context, plan []*topicPlan, sum *Summary) error {
	if !r.cfg.CreateTopics && len(r.cfg.ConsumerGroups) == 0 {
		return nil
	}
	var at time.Time
	if r.cfg.Until != nil {
		at = *r.cfg.Until
	}
	topics := make([]string, 0, len(plan))
	for _, tp := range plan {
		topics = append(topics, tp.topic)
	}
	latest, bad, err := tree.LatestSnapshots(ctx, r.src, topics, at)
	if err != nil {
		return err
	}
	for _, b := range bad {
		fmt.Fprintf(r.log, "warning: snapshot %s/%s/%s not used: %v\n", r.src, layout.MetadataDir, b.Name, b.Err)
	}
	r.meta.snaps = map[string]*metadata.Stored{}
	sum.Metadata.Snapshots = map[string]string{}
	var until string
	if r.cfg.Until != nil {
		until = " at or before --until"
	}
	var missing []string
	for _, tp := range plan {
		s := latest[tp.topic]
		r.meta.snaps[tp.topic] = s
		if s == nil {
			missing = append(missing, tp.topic)
			continue
		}
		sum.Metadata.Snapshots[tp.topic] = s.Name
		fmt.Fprintf(r.log, "topic %s: metadata snapshot %s (taken %s)\n", tp.topic, s.Name, s.Time.Format("2006-01-02T15:04:05.000Z07:00"))
	}
	if len(missing) == 0 {
		return nil
	}
	why := fmt.Sprintf("no metadata snapshot%s in %s/%s holds topic %s (the kafka_backup output's metadata block takes them)", until, r.src, layout.MetadataDir, strings.Join(missing, ", "))
	if len(r.cfg.ConsumerGroups) > 0 && len(missing) == len(plan) {
		return fmt.Errorf("%w: --consumer-groups: %s: restore without --consumer-groups, then reset the groups by timestamp (README, Disaster recovery)", ErrRefused, why)
	}
	fmt.Fprintf(r.log, "note: %s: such topics are created with the backup's partition count and broker defaults, and get no group offsets\n", why)
	return nil
}

// checkGroups plans the group offsets to translate and refuses groups
// with active members on the target: it runs before the target topics are
// checked or created, when there is a target.
func (r *run) checkGroups(ctx context.Context, plan []*topicPlan, sum *Summary) error {
	if r.meta.snaps == nil || len(r.cfg.ConsumerGroups) == 0 {
		return nil
	}
	r.planCommits(plan, sum)
	if len(r.meta.planned) == 0 {
		return nil
	}
	return r.refuseActive(ctx, kadm.NewClient(r.cl))
}

// prepareMetadata runs once the target topics are checked (and created),
// before anything is produced: it compares existing topics' configs with
// the snapshot and, in a dry run, reads the target's end offsets to
// predict the restored records' offsets. Without a target it plans the
// group offsets (checkGroups did otherwise).
func (r *run) prepareMetadata(ctx context.Context, plan []*topicPlan, sum *Summary, created []string) error {
	if r.meta.snaps == nil {
		return nil
	}
	var adm *kadm.Client
	if r.cl != nil {
		adm = kadm.NewClient(r.cl)
		r.compareConfigs(ctx, adm, plan, sum, created)
	} else if len(r.cfg.ConsumerGroups) > 0 {
		r.planCommits(plan, sum)
	}
	if r.cfg.DryRun && len(r.meta.planned) > 0 {
		r.predictBases(ctx, adm, plan, created)
		if adm == nil {
			fmt.Fprintf(r.log, "note: dry run without --brokers: target offsets are predicted for empty target partitions\n")
		}
	}
	return nil
}

// planCommits lists the group offsets of each topic's snapshot that
// --consumer-groups selects, on the partitions restored.
func (r *run) planCommits(plan []*topicPlan, sum *Summary) {
	matched := map[string]bool{}
	for _, tp := range plan {
		s := r.meta.snaps[tp.topic]
		if s == nil {
			continue
		}
		parts := map[int32]*partState{}
		for _, ps := range tp.parts {
			parts[ps.sum.Partition] = ps
		}
		for _, g := range s.Groups {
			if !metadata.MatchAny(r.cfg.ConsumerGroups, g.Name) {
				continue
			}
			matched[g.Name] = true
			for _, o := range g.Offsets {
				if o.Topic != tp.topic {
					continue
				}
				ps := parts[o.Partition]
				if ps == nil {
					if len(r.cfg.Partitions) == 0 {
						sum.Metadata.Notes = append(sum.Metadata.Notes, fmt.Sprintf("group %s: %s/%d (offset %d): the backup has no folder of that partition: not committed", g.Name, tp.topic, o.Partition, o.Offset))
					}
					continue
				}
				r.meta.planned = append(r.meta.planned, plannedCommit{group: g.Name, tp: tp, ps: ps, offset: o.Offset, metadata: o.Metadata, snapshot: s.Name})
			}
		}
	}
	if len(matched) == 0 {
		var exprs []string
		for _, re := range r.cfg.ConsumerGroups {
			exprs = append(exprs, strings.TrimSuffix(strings.TrimPrefix(re.String(), "^(?:"), ")$"))
		}
		note := fmt.Sprintf("--consumer-groups %s: no group of the snapshots used matches: nothing to commit", strings.Join(exprs, ", "))
		sum.Metadata.Notes = append(sum.Metadata.Notes, note)
		fmt.Fprintf(r.log, "note: %s\n", note)
	}
	sort.SliceStable(r.meta.planned, func(i, j int) bool {
		a, b := r.meta.planned[i], r.meta.planned[j]
		if a.group != b.group {
			return a.group < b.group
		}
		if a.tp.target != b.tp.target {
			return a.tp.target < b.tp.target
		}
		return a.ps.sum.Partition < b.ps.sum.Partition
	})
}

// refuseActive refuses groups that have members on the target cluster: a
// commit would race their consumers (and Kafka rejects it).
func (r *run) refuseActive(ctx context.Context, adm *kadm.Client) error {
	var groups []string
	seen := map[string]bool{}
	for _, p := range r.meta.planned {
		if !seen[p.group] {
			seen[p.group] = true
			groups = append(groups, p.group)
		}
	}
	described, err := adm.DescribeGroups(ctx, groups...)
	if err != nil {
		return fmt.Errorf("%w: --consumer-groups: cannot check the groups %s on the target cluster: %v", ErrRefused, strings.Join(groups, ", "), err)
	}
	var problems, classicless []string
	active := func(g string, n int, state string) {
		problems = append(problems, fmt.Sprintf("consumer group %s has %d active members on the target cluster (state %s): its offsets cannot be committed while its consumers run; stop them (and wait for their session timeout), or leave the group out of --consumer-groups, then restore again", g, n, state))
	}
	for _, g := range groups {
		d, ok := described[g]
		switch {
		case !ok || errors.Is(d.Err, kerr.GroupIDNotFound):
			classicless = append(classicless, g)
		case d.Err != nil:
			problems = append(problems, fmt.Sprintf("group %s: cannot be described on the target: %v", g, d.Err))
		case len(d.Members) > 0:
			active(g, len(d.Members), d.State)
		}
	}
	if len(classicless) > 0 {
		// Not a classic group: maybe a KIP-848 consumer group (Kafka 4),
		// which DescribeGroups does not show. A cluster without that API
		// has none.
		if cgs, err := adm.DescribeConsumerGroups(ctx, classicless...); err == nil {
			for _, g := range classicless {
				if d, ok := cgs[g]; ok && d.Err == nil && len(d.Members) > 0 {
					active(g, len(d.Members), d.State)
				}
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrRefused, strings.Join(problems, "; "))
	}
	return nil
}

// predictBases sets, in a dry run, each partition's first target offset:
// the target partition's end offset, or 0 for a topic to be created or
// without a target to ask.
func (r *run) predictBases(ctx context.Context, adm *kadm.Client, plan []*topicPlan, created []string) {
	r.meta.bases = true
	if adm == nil {
		return
	}
	var topics []string
	for _, tp := range plan {
		if tp.exists {
			topics = append(topics, tp.target)
		}
	}
	if len(topics) == 0 {
		return
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		fmt.Fprintf(r.log, "note: cannot read the end offsets of the target topics (%v): target offsets are predicted from 0\n", err)
		return
	}
	for _, tp := range plan {
		for _, ps := range tp.parts {
			if o, ok := ends.Lookup(tp.target, ps.sum.Partition); ok && o.Err == nil && o.Offset > 0 {
				ps.base = o.Offset
			}
		}
	}
}

// commitGroups translates and commits the planned group offsets once every
// partition is restored (in a dry run, reports them). A partition that
// failed, or restored nothing, gets no commit (a note says why).
func (r *run) commitGroups(ctx context.Context, sum *Summary) error {
	if len(r.meta.planned) == 0 {
		return nil
	}
	var earlier offsetMaps // the --offsets-file's, of earlier restores
	if r.cfg.OffsetsFile != "" {
		var err error
		if _, earlier, err = readOffsetMaps(r.cfg.OffsetsFile); err != nil {
			return fmt.Errorf("--consumer-groups: reading the earlier restores' offsets in --offsets-file: %w; no group offset committed", err)
		}
	}
	byGroup := map[string]kadm.Offsets{}
	var order []string
	var commits []GroupCommit
	for _, p := range r.meta.planned {
		where := fmt.Sprintf("group %s: %s/%d (source offset %d)", p.group, p.tp.target, p.ps.sum.Partition, p.offset)
		if p.ps.sum.Err != nil {
			sum.Metadata.Notes = append(sum.Metadata.Notes, where+": not committed, the partition failed; restore it again as its error says, with --consumer-groups")
			continue
		}
		var omap metadata.OffsetMap // this run's, after the earlier restores'
		if earlier != nil {
			for _, run := range earlier.get(p.tp.topic, p.tp.target, p.ps.sum.Partition).Runs() {
				omap.AddRun(run[0], run[1], run[2])
			}
		}
		p.ps.mu.Lock()
		for _, run := range p.ps.omap.Runs() {
			omap.AddRun(run[0], run[1], run[2])
		}
		p.ps.mu.Unlock()
		tgt, rule, ok := omap.Translate(p.offset)
		if !ok {
			sum.Metadata.Notes = append(sum.Metadata.Notes, where+": not committed, no record of the partition was restored")
			continue
		}
		if rule == metadata.RuleBelow && p.offset < p.ps.skipTo && tgt > 0 {
			// The records from p.offset up to this run's first were left
			// out (--from-offset, --since), and the target partition held
			// records before: an earlier run may have restored them, and
			// the group would skip them.
			sum.Metadata.Notes = append(sum.Metadata.Notes, fmt.Sprintf("%s: not committed: the backup's records from source offset %d to %d were left out by this run (--from-offset/--since), "+
				"and committing its first restored record's target offset %d would make the group skip them if an earlier run restored them before it; "+
				"give every run of the restore the same --offsets-file and commit with kafka-backup restore-offsets, or reset the group by timestamp",
				where, p.offset, p.ps.skipTo-1, tgt))
			continue
		}
		gc := GroupCommit{Group: p.group, Topic: p.tp.topic, Target: p.tp.target, Partition: p.ps.sum.Partition,
			Source: p.offset, TargetOffset: tgt, Rule: rule, Snapshot: p.snapshot}
		commits = append(commits, gc)
		if byGroup[p.group] == nil {
			byGroup[p.group] = kadm.Offsets{}
			order = append(order, p.group)
		}
		offs := byGroup[p.group]
		offs.Add(kadm.Offset{Topic: p.tp.target, Partition: p.ps.sum.Partition, At: tgt, LeaderEpoch: -1, Metadata: p.metadata})
	}
	if r.cfg.DryRun {
		for _, c := range commits {
			fmt.Fprintf(r.log, "dry run: would commit group %s %s/%d: source offset %d -> target offset %d (%s)\n",
				c.Group, c.Target, c.Partition, c.Source, c.TargetOffset, c.Rule)
		}
		sum.Metadata.Commits = commits
		return nil
	}
	if r.cl == nil {
		return nil
	}
	adm := kadm.NewClient(r.cl)
	failed := map[string]map[int32]error{}
	var errs []error
	for _, g := range order {
		resp, err := adm.CommitOffsets(ctx, g, byGroup[g])
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("committing the offsets of group %s: %w", g, err))
			resp.Each(func(o kadm.OffsetResponse) {
				if o.Err != nil {
					if failed[g] == nil {
						failed[g] = map[int32]error{}
					}
					failed[g][o.Partition] = o.Err
				}
			})
			if len(failed[g]) == 0 {
				failed[g] = map[int32]error{-1: err}
			}
		}
	}
	for _, c := range commits {
		if f := failed[c.Group]; f != nil && (f[c.Partition] != nil || f[-1] != nil) {
			continue
		}
		sum.Metadata.Commits = append(sum.Metadata.Commits, c)
	}
	return errors.Join(errs...)
}

// writeMetadata writes the metadata part of the summary.
func (s *Summary) writeMetadata(w io.Writer) {
	m := &s.Metadata
	for _, d := range m.ConfigDiffs {
		fmt.Fprintf(w, "  note: %s\n", d)
	}
	if len(m.Commits) > 0 {
		verb := "Committed"
		if s.DryRun {
			verb = "Would commit"
		}
		fmt.Fprintf(w, "%s consumer group offsets (translated to the restored records):\n", verb)
		for _, c := range m.Commits {
			fmt.Fprintf(w, "  group %s %s/%d: source offset %d -> target offset %d (%s; snapshot %s)\n",
				c.Group, c.Target, c.Partition, c.Source, c.TargetOffset, c.Rule, c.Snapshot)
		}
	}
	for _, n := range m.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}
