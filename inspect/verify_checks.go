package inspect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/offsets"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tree"
)

// checkRecreated reports the note a kafka_backup output leaves in a
// partition folder it refuses because the topic was deleted and recreated:
// the new topic's records are not in this backup.
func checkRecreated(ctx context.Context, src tree.Source, ref partitionRef, pr *PartitionReport) {
	note := "(unreadable)"
	if rc, err := src.Open(ctx, ref.topic, ref.partition, layout.RecreatedNote); err == nil {
		data, _ := io.ReadAll(io.LimitReader(rc, 64<<10))
		rc.Close()
		note = strings.Join(strings.Fields(string(data)), " ")
	}
	pr.add(Problem{Severity: SeverityError, Kind: KindRecreated, File: layout.RecreatedNote, Path: location(src, ref.topic, ref.partition, layout.RecreatedNote),
		Message: fmt.Sprintf("the topic was deleted and recreated: kafka_backup refuses this partition and the new topic's records are not backed up. "+
			"If this folder is the old topic's backup moved out of the backup location, delete this note. The note says: %s", note)})
}

// checkPruned reads the partition's layout.PrunedNote: an unreadable one
// is an error (where the partition starts is unknown).
func checkPruned(ctx context.Context, src tree.Source, ref partitionRef, pr *PartitionReport) {
	note, ok, err := tree.ReadPruned(ctx, src, ref.topic, ref.partition)
	switch {
	case err != nil:
		pr.add(Problem{Severity: SeverityError, Kind: KindPruned, File: layout.PrunedNote, Path: location(src, ref.topic, ref.partition, layout.PrunedNote),
			Message: fmt.Sprintf("the prune note cannot be read (%v): where the partition starts is unknown. Its first line must be \"below <offset>\": the first offset a prune kept", err)})
	case ok:
		pr.PrunedBelow = ptr(note.Below)
	}
}

// checkBelowPruned reports the files whose every offset is below the
// partition's prune point: an interrupted prune left them.
func checkBelowPruned(src tree.Source, pr *PartitionReport) {
	if pr.PrunedBelow == nil {
		return
	}
	for _, f := range pr.Files {
		if f.LastOffset != nil && *f.LastOffset < *pr.PrunedBelow {
			pr.add(Problem{Severity: SeverityWarning, Kind: KindPruned, File: f.Name, Path: location(src, pr.Topic, pr.Partition, f.Name), Offset: f.FirstOffset,
				Message: fmt.Sprintf("every offset of this file is below offset %d, where a prune cut the partition (%s): an interrupted prune left it; kafka-backup prune --yes deletes it", *pr.PrunedBelow, layout.PrunedNote)})
		}
	}
}

// checkMarker compares the FTP destination's marker (layout.MarkerName), when
// the folder has one, with what the files hold. A kafka_backup run on the
// partition takes the marker's word for the files it lists and skips the
// offsets it names, so offsets the marker claims and the file does not hold
// would never be backed up.
func checkMarker(ctx context.Context, src tree.Source, ref partitionRef, pr *PartitionReport) {
	path := location(src, ref.topic, ref.partition, layout.MarkerName)
	rc, err := src.Open(ctx, ref.topic, ref.partition, layout.MarkerName)
	if errors.Is(err, fs.ErrNotExist) {
		return // local backups, and FTP folders no upload has finished in
	}
	var data []byte
	if err == nil {
		data, err = io.ReadAll(io.LimitReader(rc, 64<<20))
		rc.Close()
	}
	if err != nil {
		pr.add(Problem{Severity: SeverityError, Kind: KindRead, File: layout.MarkerName, Path: path,
			Message: fmt.Sprintf("cannot read the FTP destination's marker: %v", err)})
		return
	}
	marker := layout.ParseRanges(data)
	present := map[string]bool{}
	for _, f := range pr.Files {
		present[f.Name] = true
	}
	var listed []string
	for name := range marker {
		if !present[name] {
			listed = append(listed, name)
		}
	}
	sort.Strings(listed)
	for _, name := range listed {
		claimed := marker[name]
		pr.add(Problem{Severity: SeverityError, Kind: KindMissing, File: name, Path: location(src, ref.topic, ref.partition, name), Offset: ptr(claimed[0].First),
			Message: fmt.Sprintf("the marker %s says this file was uploaded with offsets %s, but the folder has no such file: it was deleted or lost on the server, "+
				"and its records are not in this backup (the consumer group has committed past them: a running backup does not write them again). "+
				"Put the file back from a copy, or back these offsets up again from Kafka while its retention still holds them; "+
				"if it was deleted on purpose (retention), delete its line from %s",
				layout.MarkerName, offsets.Format(claimed, 5), layout.MarkerName)})
	}
	for i := range pr.Files {
		f := &pr.Files[i]
		claimed, listed := marker[f.Name]
		if !listed || !f.OK {
			continue // unlisted files are read by the writer itself; broken ones are reported already
		}
		var missing []segment.Range
		for _, r := range claimed {
			missing = append(missing, f.offsets.Uncovered(r)...)
		}
		if len(missing) == 0 {
			continue
		}
		pr.add(Problem{Severity: SeverityError, Kind: KindMarker, File: f.Name, Path: path, Offset: ptr(missing[0].First),
			Message: fmt.Sprintf("the marker %s says %s holds offsets %s, but %s of them are not in it (%s): a kafka_backup run on this partition would skip them and never back them up. "+
				"Delete %s from this folder: a run reads the offsets of the files a marker does not list from the files themselves",
				layout.MarkerName, f.Name, offsets.Format(claimed, 5), plural(offsets.Len(missing), "offset"), offsets.Format(missing, 5), layout.MarkerName)})
	}
}

// crossCheck computes the partition's offsets, gaps and overlaps from its
// files, and reports overlaps and interleaved files.
func crossCheck(src tree.Source, pr *PartitionReport) {
	var all offsets.Set
	type span struct {
		r    segment.Range
		file int
	}
	var spans []span
	for i := range pr.Files {
		for _, r := range pr.Files[i].offsets.Ranges() {
			all.AddRange(r)
			spans = append(spans, span{r, i})
		}
	}
	pr.Offsets = jsonRanges(all.Ranges())
	gaps := all.Holes()
	pr.Gaps = jsonRanges(gaps)
	pr.GapOffsets = offsets.Len(gaps)
	if len(gaps) > 0 {
		damaged := ""
		for _, f := range pr.Files {
			if !f.OK {
				damaged = " The unreadable part of a file with an error above may hold some of them."
				break
			}
		}
		pr.add(Problem{Severity: SeverityWarning, Kind: KindGap, Offset: ptr(gaps[0].First),
			Message: fmt.Sprintf("%s no file holds (%s): a compacted topic, transactions (a commit or abort marker takes an offset; aborted records are not read) "+
				"and a backup started at offset_from leave such gaps, and so do lost files (deleted, or never written). "+
				"If the topic is neither compacted nor transactional, look for the files that held them.%s",
				plural(pr.GapOffsets, "offset"), offsets.Format(gaps, 5), damaged)})
	}

	// Overlaps: sweep the ranges by first offset, keeping those still open.
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].r.First < spans[j].r.First })
	type pair struct{ a, b int }
	shared := map[pair]*offsets.Set{}
	var active []span
	for _, s := range spans {
		keep := active[:0]
		for _, a := range active {
			if a.r.Last >= s.r.First {
				keep = append(keep, a)
			}
		}
		active = keep
		for _, a := range active {
			if a.file == s.file {
				continue
			}
			k := pair{min(a.file, s.file), max(a.file, s.file)}
			if shared[k] == nil {
				shared[k] = &offsets.Set{}
			}
			shared[k].AddRange(segment.Range{First: s.r.First, Last: min(a.r.Last, s.r.Last)})
		}
		active = append(active, s)
	}
	pairs := make([]pair, 0, len(shared))
	for k := range shared {
		pairs = append(pairs, k)
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].a != pairs[j].a {
			return pairs[i].a < pairs[j].a
		}
		return pairs[i].b < pairs[j].b
	})
	overlapping := map[int]bool{}
	for _, k := range pairs {
		set := shared[k]
		a, b := pr.Files[k.a].Name, pr.Files[k.b].Name
		ov := Overlap{Files: [2]string{a, b}, Offsets: jsonRanges(set.Ranges()), Count: set.Len()}
		pr.Overlaps = append(pr.Overlaps, ov)
		overlapping[k.b] = true
		pr.add(Problem{Severity: SeverityWarning, Kind: KindOverlap, File: b, Path: location(src, pr.Topic, pr.Partition, b), Offset: ptr(set.Ranges()[0].First),
			Message: fmt.Sprintf("%s also in %s (offsets %s): restore and the kafka_backup input use the file read first (after a rebalance a batch may be in two files)",
				plural(ov.Count, "offset"), a, offsets.Format(set.Ranges(), 5))})
	}
	// Interleaved: a file starting at or below offsets of a file named
	// before it, without sharing offsets with it.
	maxLast := int64(-1)
	for i, f := range pr.Files {
		if f.FirstOffset == nil {
			continue
		}
		if *f.FirstOffset <= maxLast && !overlapping[i] {
			pr.add(Problem{Severity: SeverityWarning, Kind: KindInterleaved, File: f.Name, Path: location(src, pr.Topic, pr.Partition, f.Name), Offset: f.FirstOffset,
				Message: fmt.Sprintf("starts at offset %d, below offset %d of a file named before it: files interleave (a kafka_franz backup with max_in_flight > 1); nothing is lost, records are read in file order", *f.FirstOffset, maxLast)})
		}
		maxLast = max(maxLast, *f.LastOffset)
	}
	if pr.Overlaps == nil {
		pr.Overlaps = []Overlap{}
	}
}
