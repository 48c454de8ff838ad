package inspect

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/metadata"
	"github.com/kafka-backup/kafka-backup/tree"
)

// KindSnapshot is the kind of a problem with a metadata snapshot: a file
// that cannot be read or parsed, a time that does not match its name, a
// group offset past what the backup holds.
const KindSnapshot = "snapshot"

// SnapshotInfo is one metadata snapshot of a tree (docs/FORMAT.md,
// @metadata).
type SnapshotInfo struct {
	Name     string   `json:"name"`
	Time     string   `json:"time,omitempty"` // RFC 3339, UTC
	Reason   string   `json:"reason,omitempty"`
	Instance string   `json:"instance,omitempty"`
	Topics   []string `json:"topics"`
	Groups   []string `json:"groups"`
	// Errors are what the snapshot says it could not read.
	Errors []string `json:"errors,omitempty"`
	// Error says why the file could not be read or parsed.
	Error string `json:"error,omitempty"`
}

// Snapshots is what a tree's metadata folder holds.
type Snapshots struct {
	// Snapshots are sorted by name, so by time.
	Snapshots []SnapshotInfo `json:"snapshots"`
	// Others are the folder's other names: hidden in-progress and upload
	// files, anything else.
	Others []string `json:"others,omitempty"`

	stored []metadata.Stored // parsed, for the checks
}

// readSnapshots reads every snapshot of src; nil when the tree has none.
func readSnapshots(ctx context.Context, src tree.Source) (*Snapshots, error) {
	names, others, err := tree.SnapshotNames(ctx, src)
	if err != nil || len(names)+len(others) == 0 {
		return nil, err
	}
	out := &Snapshots{Snapshots: []SnapshotInfo{}, Others: others}
	for _, n := range names {
		info := SnapshotInfo{Name: n, Topics: []string{}, Groups: []string{}}
		data, err := tree.ReadSnapshot(ctx, src, n)
		var s *metadata.Snapshot
		if err == nil {
			s, err = metadata.Decode(data)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			info.Error = err.Error()
			out.Snapshots = append(out.Snapshots, info)
			continue
		}
		info.Time, info.Reason, info.Instance, info.Errors = s.Time.UTC().Format(time.RFC3339Nano), s.Reason, s.Instance, s.Errors
		for _, t := range s.Topics {
			info.Topics = append(info.Topics, t.Name)
		}
		for _, g := range s.Groups {
			info.Groups = append(info.Groups, g.Name)
		}
		out.Snapshots = append(out.Snapshots, info)
		out.stored = append(out.stored, metadata.Stored{Name: n, Snapshot: s})
	}
	return out, nil
}

// writeText writes the snapshots: a summary line, and one line each when
// all is set.
func (s *Snapshots) writeText(w io.Writer, all bool) {
	if s == nil {
		return
	}
	var good []SnapshotInfo
	for _, i := range s.Snapshots {
		if i.Error == "" {
			good = append(good, i)
		}
	}
	line := fmt.Sprintf("metadata snapshots (%s/): %d", layout.MetadataDir, len(s.Snapshots))
	if len(good) > 0 {
		first, last := good[0], good[len(good)-1]
		line += fmt.Sprintf(", %s to %s; latest: topics %s, groups %s", first.Time, last.Time, listOrNone(last.Topics), listOrNone(last.Groups))
	}
	if bad := len(s.Snapshots) - len(good); bad > 0 {
		line += fmt.Sprintf("; %d unreadable", bad)
	}
	if len(s.Others) > 0 {
		line += fmt.Sprintf("; other names: %s", strings.Join(s.Others, ", "))
	}
	fmt.Fprintln(w, line)
	if !all {
		return
	}
	for _, i := range s.Snapshots {
		if i.Error != "" {
			fmt.Fprintf(w, "    %s: ERROR: %s\n", i.Name, i.Error)
			continue
		}
		fmt.Fprintf(w, "    %s: %s, %s: topics %s; groups %s\n", i.Name, i.Time, i.Reason, listOrNone(i.Topics), listOrNone(i.Groups))
	}
}

// checkSnapshots adds to rep the problems of the tree's snapshots: a file
// that cannot be read or parsed, or whose time differs from its name's
// (errors); hidden leftovers (warnings); in the latest snapshot of each
// topic verified, a group offset past the offsets the backup holds, or a
// partition folder beyond the snapshot's partition count (warnings: a
// restore commits such an offset as the partition's end).
func checkSnapshots(ctx context.Context, src tree.Source, rep *VerifyReport) {
	root := strings.TrimSuffix(src.String(), "/") + "/" + layout.MetadataDir + "/"
	add := func(sev Severity, topic, name, msg string) {
		rep.TreeProblems = append(rep.TreeProblems, Problem{Severity: sev, Kind: KindSnapshot, Topic: topic, Path: root + name, Message: msg})
		if sev == SeverityError {
			rep.Errors++
		} else {
			rep.Warnings++
		}
	}
	snaps, err := readSnapshots(ctx, src)
	if err != nil {
		add(SeverityError, "", "", "the metadata snapshots cannot be listed: "+err.Error())
		return
	}
	if snaps == nil {
		return
	}
	rep.Metadata = snaps
	for _, i := range snaps.Snapshots {
		if i.Error != "" {
			add(SeverityError, "", i.Name, "metadata snapshot cannot be used: "+i.Error)
		}
	}
	for _, s := range snaps.stored {
		if at, _ := metadata.ParseName(s.Name); !at.Equal(s.Time.Truncate(time.Millisecond)) {
			add(SeverityError, "", s.Name, fmt.Sprintf("metadata snapshot says it was taken at %s, its name %s", s.Time.Format(time.RFC3339Nano), at.Format(time.RFC3339Nano)))
		}
	}
	for _, o := range snaps.Others {
		add(SeverityWarning, "", o, "not a metadata snapshot (a hidden name is one being written or uploaded, or left by a crash): ignored")
	}
	parts := map[string]map[int32]*PartitionReport{}
	for _, p := range rep.Partitions {
		if parts[p.Topic] == nil {
			parts[p.Topic] = map[int32]*PartitionReport{}
		}
		parts[p.Topic][p.Partition] = p
	}
	topics := make([]string, 0, len(parts))
	for t := range parts {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		s := metadata.Latest(snaps.stored, t, time.Time{})
		if s == nil {
			continue
		}
		st := s.Topic(t)
		for p := range parts[t] {
			if p >= st.Partitions {
				add(SeverityWarning, t, s.Name, fmt.Sprintf("the backup has a folder for partition %d of %s, the latest snapshot says the topic has %d partitions (deleted and recreated?)", p, t, st.Partitions))
			}
		}
		for _, g := range s.Groups {
			for _, o := range g.Offsets {
				pr := parts[t][o.Partition]
				if o.Topic != t || pr == nil {
					continue
				}
				last := int64(-1)
				if n := len(pr.Offsets); n > 0 {
					last = pr.Offsets[n-1].Last
				}
				if o.Offset > last+1 {
					add(SeverityWarning, t, s.Name, fmt.Sprintf("group %s committed offset %d on %s/%d, past the backup's last offset %d there: records %d-%d are not (yet) in the backup; a restore commits the partition's end",
						g.Name, o.Offset, t, o.Partition, last, last+1, o.Offset-1))
				}
			}
		}
	}
}

// listSnapshots is the metadata part of ls: nil without snapshots; a
// folder that cannot be listed is counted in rep.Errors.
func listSnapshots(ctx context.Context, src tree.Source, rep *ListReport) {
	snaps, err := readSnapshots(ctx, src)
	if err != nil {
		rep.Errors++
		snaps = &Snapshots{Snapshots: []SnapshotInfo{{Name: layout.MetadataDir, Topics: []string{}, Groups: []string{}, Error: "cannot be listed: " + err.Error()}}}
	}
	if snaps != nil {
		for _, i := range snaps.Snapshots {
			if i.Error != "" && err == nil {
				rep.Errors++
			}
		}
	}
	rep.Metadata = snaps
}
