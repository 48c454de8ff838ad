package restore

// The source→target offset map a restore saves (--offsets-file), and
// CommitOffsets, which commits translated group offsets again from it
// without producing (kafka-backup restore-offsets).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-backup/kafka-backup/metadata"
	"github.com/kafka-backup/kafka-backup/tree"
)

// OffsetMapFormat is the version of the offset map file.
const OffsetMapFormat = 1

// OffsetMapFile is the file --offsets-file names: for each partition
// restored, the source offsets of the records the target acknowledged and
// the offsets it gave them, as runs [source, target, count]. Restores into
// the same file add to it (a failed partition resumed with --from-offset).
type OffsetMapFile struct {
	Format     int                  `json:"format"`
	Source     string               `json:"source"` // the backup location, without password
	Updated    time.Time            `json:"updated"`
	Partitions []OffsetMapPartition `json:"partitions"`
}

// OffsetMapPartition is the offset map of one restored partition.
type OffsetMapPartition struct {
	Topic     string     `json:"topic"`  // in the backup
	Target    string     `json:"target"` // produced to
	Partition int32      `json:"partition"`
	Runs      [][3]int64 `json:"runs"`
}

// ReadOffsetMap reads an offset map file; a missing file is an error
// wrapping fs.ErrNotExist.
func ReadOffsetMap(path string) (*OffsetMapFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f OffsetMapFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("offset map %s: not an offset map kafka-backup restore --offsets-file wrote: %w", path, err)
	}
	if f.Format < 1 || f.Format > OffsetMapFormat {
		return nil, fmt.Errorf("offset map %s: format %d: this kafka-backup reads format %d", path, f.Format, OffsetMapFormat)
	}
	return &f, nil
}

// offsetMaps are the offset maps of an offset map file, by backup topic and
// target topic, then partition.
type offsetMaps map[[2]string]map[int32]*metadata.OffsetMap

// get returns the map of a partition, made empty when missing.
func (ms offsetMaps) get(topic, target string, p int32) *metadata.OffsetMap {
	k := [2]string{topic, target}
	if ms[k] == nil {
		ms[k] = map[int32]*metadata.OffsetMap{}
	}
	if ms[k][p] == nil {
		ms[k][p] = &metadata.OffsetMap{}
	}
	return ms[k][p]
}

// readOffsetMaps reads the offset map file at path, an empty one when
// there is none yet.
func readOffsetMaps(path string) (*OffsetMapFile, offsetMaps, error) {
	f, err := ReadOffsetMap(path)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = &OffsetMapFile{Format: OffsetMapFormat}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	maps := offsetMaps{}
	for _, mp := range f.Partitions {
		m := maps.get(mp.Topic, mp.Target, mp.Partition)
		for _, run := range mp.Runs {
			m.AddRun(run[0], run[1], run[2])
		}
	}
	return f, maps, nil
}

// saveOffsetMap adds the acknowledged offsets of the run's partitions to
// the map at path (written to a temporary file and renamed).
func (r *run) saveOffsetMap(path string, plan []*topicPlan) error {
	f, maps, err := readOffsetMaps(path)
	if err != nil {
		return err
	}
	get := maps.get
	for _, tp := range plan {
		for _, ps := range tp.parts {
			ps.mu.Lock()
			runs := ps.omap.Runs()
			ps.mu.Unlock()
			if len(runs) == 0 {
				continue
			}
			m := get(tp.topic, tp.target, ps.sum.Partition)
			for _, run := range runs {
				m.AddRun(run[0], run[1], run[2])
			}
		}
	}
	f.Partitions = nil
	for k, ps := range maps {
		for p, m := range ps {
			f.Partitions = append(f.Partitions, OffsetMapPartition{Topic: k[0], Target: k[1], Partition: p, Runs: m.Runs()})
		}
	}
	sort.Slice(f.Partitions, func(i, j int) bool {
		a, b := f.Partitions[i], f.Partitions[j]
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		if a.Target != b.Target {
			return a.Target < b.Target
		}
		return a.Partition < b.Partition
	})
	f.Source, f.Updated = r.src.String(), time.Now().UTC()
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("saving the offset map: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("saving the offset map: %w", err)
	}
	fmt.Fprintf(r.log, "offset map saved to %s (kafka-backup restore-offsets commits group offsets from it)\n", path)
	return nil
}

// OffsetsConfig configures CommitOffsets.
type OffsetsConfig struct {
	// Source is the backup tree whose metadata snapshots hold the groups'
	// offsets.
	Source tree.Source
	// MapFile is the offset map a restore saved (--offsets-file).
	MapFile string
	// Brokers and ClientOpts reach the target cluster; Brokers may be
	// empty only with DryRun.
	Brokers    []string
	ClientOpts []kgo.Opt
	// ConsumerGroups select the snapshot's groups; required.
	ConsumerGroups []*regexp.Regexp
	// Topics limit the backup topics; all those in the map when empty.
	Topics []string
	// Until picks the latest snapshot at or before it.
	Until *time.Time
	// DryRun prints the commits instead of making them.
	DryRun bool
	// Log gets notes and, in a dry run, the commits.
	Log io.Writer
}

// CommitOffsets translates the committed offsets of the selected groups
// in the backup's snapshots with the offset map a restore saved, and
// commits them on the target, as restore --consumer-groups does after
// producing: nothing is produced. The summary's Metadata says what was
// committed.
func CommitOffsets(ctx context.Context, cfg OffsetsConfig) (*Summary, error) {
	if len(cfg.ConsumerGroups) == 0 {
		return nil, fmt.Errorf("%w: no --consumer-groups: give the groups to commit", ErrRefused)
	}
	if len(cfg.Brokers) == 0 && !cfg.DryRun {
		return nil, fmt.Errorf("%w: no target brokers given", ErrRefused)
	}
	f, err := ReadOffsetMap(cfg.MapFile)
	if err != nil {
		return nil, fmt.Errorf("%w: --offsets-file: %w", ErrRefused, err)
	}
	r := &run{cfg: Config{Source: cfg.Source, Brokers: cfg.Brokers, ClientOpts: cfg.ClientOpts, ConsumerGroups: cfg.ConsumerGroups,
		Until: cfg.Until, DryRun: cfg.DryRun, Topics: cfg.Topics}, src: cfg.Source, log: cfg.Log}
	if r.log == nil {
		r.log = io.Discard
	}
	sum := &Summary{Source: cfg.Source.String(), DryRun: cfg.DryRun}
	want := map[string]bool{}
	for _, t := range cfg.Topics {
		want[t] = true
	}
	byTopic := map[[2]string]*topicPlan{}
	var plan []*topicPlan
	for _, mp := range f.Partitions {
		if len(want) > 0 && !want[mp.Topic] {
			continue
		}
		k := [2]string{mp.Topic, mp.Target}
		tp := byTopic[k]
		if tp == nil {
			tp = &topicPlan{topic: mp.Topic, target: mp.Target, exists: true}
			byTopic[k] = tp
			plan = append(plan, tp)
		}
		ps := &partState{sum: PartitionSummary{Topic: mp.Topic, Target: mp.Target, Partition: mp.Partition}}
		for _, run := range mp.Runs {
			ps.omap.AddRun(run[0], run[1], run[2])
		}
		tp.parts = append(tp.parts, ps)
	}
	if len(plan) == 0 {
		return nil, fmt.Errorf("%w: the offset map %s holds no partition of the topics asked for", ErrRefused, cfg.MapFile)
	}
	if err := r.loadMetadata(ctx, plan, sum); err != nil {
		return nil, err
	}
	if len(cfg.Brokers) > 0 {
		if err := r.connect(); err != nil {
			return nil, err
		}
		defer r.cl.Close()
		if err := r.checkGroups(ctx, plan, sum); err != nil {
			return nil, err
		}
	} else {
		r.planCommits(plan, sum)
	}
	err = r.commitGroups(ctx, sum)
	return sum, err
}

// WriteOffsets writes what CommitOffsets did.
func (s *Summary) WriteOffsets(w io.Writer) {
	if len(s.Metadata.Commits) == 0 {
		fmt.Fprintln(w, "No consumer group offset committed.")
	}
	s.writeMetadata(w)
}
