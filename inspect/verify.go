package inspect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kafka-backup/kafka-backup/layout"
	"github.com/kafka-backup/kafka-backup/offsets"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tree"
	"github.com/kafka-backup/kafka-backup/units"
)

// Severity says whether a problem makes a backup fail verification.
type Severity string

const (
	// SeverityError is damage or a broken rule of the format: a corrupt or
	// torn batch, a misnamed or empty file, offsets that do not increase, a
	// file that cannot be read, a file the FTP marker lists that is gone, a
	// location without any partition.
	SeverityError Severity = "error"
	// SeverityWarning is something to look at: overlapping or interleaved
	// files, leftover hidden files, stray names, and gaps (offsets no file
	// holds, which compaction and transactions leave too, but also lost
	// files).
	SeverityWarning Severity = "warning"
)

// Problem kinds.
const (
	KindCorrupt     = "corrupt"       // a batch is invalid: CRC, magic, length, records
	KindTorn        = "torn"          // the file ends inside a batch
	KindMisnamed    = "misnamed"      // the name is not the file's first offset
	KindEmpty       = "empty"         // a final file without any record
	KindOffsetOrder = "offset_order"  // offsets do not strictly increase inside a file
	KindSize        = "size"          // bytes read differ from the size listed
	KindRead        = "read"          // the file or folder could not be read
	KindOverlap     = "overlap"       // the same offsets in two files
	KindInterleaved = "interleaved"   // a file starts below the offsets of files named before it
	KindLeftover    = "leftover"      // a hidden in-progress or upload file
	KindStray       = "stray"         // a name that is neither a final nor a hidden file
	KindMarker      = "marker"        // the FTP marker claims offsets its file does not hold
	KindMissing     = "missing"       // a file the FTP marker lists is not on the server
	KindGap         = "gap"           // offsets inside a partition no file holds
	KindNoData      = "no_partitions" // the location (or the selection) holds no partition folder
	KindRecreated   = "recreated"     // the writer refused the partition: its topic was recreated (layout.RecreatedNote)
	KindPruned      = "pruned"        // a file below the prune point (layout.PrunedNote): an interrupted prune
)

// Problem is one finding of Verify.
type Problem struct {
	Severity  Severity `json:"severity"`
	Kind      string   `json:"kind"`
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	// File is the name in the partition folder, Path the whole location;
	// empty for a problem of the partition as a whole.
	File string `json:"file,omitempty"`
	Path string `json:"path,omitempty"`
	// Position is the byte in the file where the problem is: the start of
	// the batch that cannot be read.
	Position *int64 `json:"position,omitempty"`
	// Offset is the offset concerned: the base offset of a bad batch as its
	// header states it (else the offset after the last good record), the
	// first offset of a misnamed file, the offset that breaks the order.
	Offset  *int64 `json:"offset,omitempty"`
	Message string `json:"message"`
}

// String formats the problem on one line: severity, kind, where, what.
func (p Problem) String() string {
	var b strings.Builder
	if p.Severity == SeverityError {
		b.WriteString("ERROR ")
	} else {
		b.WriteString("warning ")
	}
	b.WriteString(p.Kind)
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path)
	} else {
		fmt.Fprintf(&b, "%s/%d", p.Topic, p.Partition)
	}
	if p.Position != nil {
		fmt.Fprintf(&b, ": byte %d", *p.Position)
	}
	if p.Offset != nil {
		if p.Position != nil {
			b.WriteString(",")
		} else {
			b.WriteString(":")
		}
		fmt.Fprintf(&b, " offset %d", *p.Offset)
	}
	b.WriteString(": ")
	b.WriteString(p.Message)
	return b.String()
}

// Range is an inclusive range of offsets, for JSON.
type Range struct {
	First int64 `json:"first"`
	Last  int64 `json:"last"`
}

func jsonRanges(rs []segment.Range) []Range {
	out := make([]Range, len(rs))
	for i, r := range rs {
		out[i] = Range{First: r.First, Last: r.Last}
	}
	return out
}

// Leftover is a hidden file of a partition folder.
type Leftover struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	// Kind is "inprogress" (a file being written, or left by a crashed
	// writer), "upload" (an FTP upload in progress or abandoned),
	// "recreated" (layout.RecreatedNote: the writer refuses the partition)
	// or "other".
	Kind string `json:"kind"`
}

func leftoverKind(name string) string {
	switch k := layout.Classify(name); k {
	case layout.KindInProgress, layout.KindUpload, layout.KindRecreated:
		return string(k)
	}
	return "other"
}

// VerifiedFile is what Verify found in one final file.
type VerifiedFile struct {
	Name      string `json:"name"`
	Size      int64  `json:"size"`       // bytes, as listed
	BytesRead int64  `json:"bytes_read"` // bytes read: the size unless reading stopped at a problem
	Batches   int    `json:"batches"`    // batches read and decoded
	Records   int64  `json:"records"`    // records decoded
	// FirstOffset and LastOffset are the lowest and highest offset of the
	// records decoded; absent when none was.
	FirstOffset  *int64 `json:"first_offset,omitempty"`
	LastOffset   *int64 `json:"last_offset,omitempty"`
	MinTimestamp *int64 `json:"min_timestamp,omitempty"` // ms since the epoch
	MaxTimestamp *int64 `json:"max_timestamp,omitempty"`
	// OK is false when the file has a problem of severity error.
	OK bool `json:"ok"`

	offsets offsets.Set
}

// Overlap is offsets two files both hold.
type Overlap struct {
	Files   [2]string `json:"files"` // in name order
	Offsets []Range   `json:"offsets"`
	Count   int64     `json:"count"` // offsets in both
}

// PartitionReport is what Verify found in one partition folder.
type PartitionReport struct {
	Topic     string         `json:"topic"`
	Partition int32          `json:"partition"`
	Files     []VerifiedFile `json:"files"`
	Records   int64          `json:"records"`
	Bytes     int64          `json:"bytes"` // size of the final files
	// Offsets are the offsets of the records decoded, contiguous ones
	// merged; Gaps the offsets between them no file holds (compacted
	// topics, transaction markers, offset_from, or missing data).
	Offsets    []Range    `json:"offsets"`
	Gaps       []Range    `json:"gaps"`
	GapOffsets int64      `json:"gap_offsets"`
	Overlaps   []Overlap  `json:"overlaps"`
	Leftovers  []Leftover `json:"leftovers"`
	Stray      []string   `json:"stray"`
	// PrunedBelow is the offset below which a prune deleted the files on
	// purpose (layout.PrunedNote): where the partition now starts. Absent
	// when never pruned.
	PrunedBelow *int64    `json:"pruned_below,omitempty"`
	Problems    []Problem `json:"problems"`
	Errors      int       `json:"errors"`
	Warnings    int       `json:"warnings"`
}

func (p *PartitionReport) add(pr Problem) {
	pr.Topic, pr.Partition = p.Topic, p.Partition
	p.Problems = append(p.Problems, pr)
	if pr.Severity == SeverityError {
		p.Errors++
	} else {
		p.Warnings++
	}
}

// VerifyReport is the result of Verify.
type VerifyReport struct {
	Location string `json:"location"`
	// TreeProblems are the problems outside any partition folder: stray
	// names at the root and in topic folders, no partition at all.
	TreeProblems []Problem          `json:"tree_problems"`
	Partitions   []*PartitionReport `json:"partitions"`
	Metadata     *Snapshots         `json:"metadata,omitempty"` // the metadata snapshots (snapshots.go)
	Files        int                `json:"files"`
	Records      int64              `json:"records"`
	Bytes        int64              `json:"bytes"` // bytes read
	Errors       int                `json:"errors"`
	Warnings     int                `json:"warnings"`
	OK           bool               `json:"ok"` // no error
	Took         time.Duration      `json:"-"`
	TookMillis   int64              `json:"took_ms"`
}

// Problems returns every problem of every partition, in report order.
func (r *VerifyReport) Problems() []Problem {
	out := append([]Problem(nil), r.TreeProblems...)
	for _, p := range r.Partitions {
		out = append(out, p.Problems...)
	}
	return out
}

// VerifyOptions configures Verify.
type VerifyOptions struct {
	Filter
	// Parallel is how many partitions are read at once; 4 when 0.
	Parallel int
	// AllowEmpty accepts a location (or a selection) without any partition
	// folder; otherwise it is an error: a mistyped path must not pass for
	// an empty backup (vsftpd lists a missing folder as an empty one).
	AllowEmpty bool
}

// Verify reads every final file of the selected partitions of src in full
// and reports what it found. It returns an error only when it cannot list
// the tree (or ctx ends); everything wrong inside it is a Problem.
func Verify(ctx context.Context, src tree.Source, opts VerifyOptions) (*VerifyReport, error) {
	start := time.Now()
	refs, err := selectPartitions(ctx, src, opts.Filter)
	if err != nil {
		return nil, err
	}
	rep := &VerifyReport{Location: src.String(), TreeProblems: []Problem{}, Partitions: make([]*PartitionReport, len(refs))}
	strays, err := treeStrays(ctx, src, opts.Filter)
	if err != nil {
		return nil, err
	}
	for _, s := range strays {
		msg := "neither a topic folder (named as a Kafka topic) nor a file of one: not part of the backup, ignored"
		if s.topic != "" {
			msg = "neither a partition folder (named by its number, plain decimal) nor a file of one: not part of the backup, ignored"
		}
		if s.what != "" {
			msg = s.what + ", not a regular file or folder: never opened, not part of the backup"
		}
		rep.TreeProblems = append(rep.TreeProblems, Problem{Severity: SeverityWarning, Kind: KindStray, Topic: s.topic, Path: s.path, Message: msg})
	}
	if len(refs) == 0 && !opts.AllowEmpty {
		what := "no partition folder (<topic>/<partition>/…)"
		if len(opts.Topics) > 0 || len(opts.Partitions) > 0 {
			what = "no partition folder that --topic and --partition select"
		}
		rep.TreeProblems = append(rep.TreeProblems, Problem{Severity: SeverityError, Kind: KindNoData, Path: src.String(),
			Message: fmt.Sprintf("%s: nothing to verify. Is the location right (the output's path)? Some FTP servers (vsftpd) list a missing folder as an empty one. Give --allow-empty when an empty backup is expected", what)})
	}
	if len(refs) > 0 && !opts.AllowEmpty {
		// A selected partition no selected topic has: refs alone would
		// say OK over it, as they would not for a missing topic.
		for _, p := range opts.Partitions {
			if !slices.ContainsFunc(refs, func(r partitionRef) bool { return r.partition == p }) {
				rep.TreeProblems = append(rep.TreeProblems, Problem{Severity: SeverityError, Kind: KindNoData, Path: src.String(),
					Message: fmt.Sprintf("no selected topic has a folder for partition %d: nothing of it to verify. Is the partition number right? Give --allow-empty when its absence is expected", p)})
			}
		}
	}
	for _, pr := range rep.TreeProblems {
		if pr.Severity == SeverityError {
			rep.Errors++
		} else {
			rep.Warnings++
		}
	}
	forEach(ctx, refs, opts.Parallel, func(i int, ref partitionRef) {
		rep.Partitions[i] = verifyPartition(ctx, src, ref)
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, p := range rep.Partitions {
		rep.Files += len(p.Files)
		rep.Records += p.Records
		for _, f := range p.Files {
			rep.Bytes += f.BytesRead
		}
		rep.Errors += p.Errors
		rep.Warnings += p.Warnings
	}
	if len(opts.Topics) == 0 {
		checkSnapshots(ctx, src, rep) // snapshots.go
	}
	rep.OK = rep.Errors == 0
	rep.Took = time.Since(start)
	rep.TookMillis = rep.Took.Milliseconds()
	return rep, nil
}

func verifyPartition(ctx context.Context, src tree.Source, ref partitionRef) *PartitionReport {
	pr := &PartitionReport{Topic: ref.topic, Partition: ref.partition}
	part, err := src.List(ctx, ref.topic, ref.partition)
	if err != nil {
		pr.add(Problem{Severity: SeverityError, Kind: KindRead, Message: fmt.Sprintf("cannot list the partition folder: %v", err)})
		return pr
	}
	for _, l := range part.Leftovers {
		if l.Name == layout.RecreatedNote {
			checkRecreated(ctx, src, ref, pr)
			continue
		}
		kind := leftoverKind(l.Name)
		pr.Leftovers = append(pr.Leftovers, Leftover{Name: l.Name, Size: l.Size, Kind: kind})
		var msg string
		switch kind {
		case "inprogress":
			msg = fmt.Sprintf("in-progress file (%s): a writer is writing it, or crashed; restore and the kafka_backup input skip it. "+
				"If no kafka-backup runs on this folder, start one with the same output: it cuts the file back to its last complete batch and finalizes it", units.FormatBytes(l.Size))
		case "upload":
			msg = fmt.Sprintf("FTP upload in progress or abandoned (%s): the spool that uploads it still holds the file; an abandoned one can be deleted once its final file exists", units.FormatBytes(l.Size))
		default:
			msg = fmt.Sprintf("hidden file (%s), not written by kafka-backup", units.FormatBytes(l.Size))
		}
		pr.add(Problem{Severity: SeverityWarning, Kind: KindLeftover, File: l.Name, Path: location(src, ref.topic, ref.partition, l.Name), Message: msg})
	}
	if part.Pruned {
		checkPruned(ctx, src, ref, pr)
	}
	pr.Stray = append([]string{}, part.Stray...)
	for _, s := range part.Stray {
		msg := "neither a final file (named by its first offset) nor a hidden file: not part of the backup, ignored"
		if what := part.NotRegular[s]; what != "" {
			msg = what + ", not a regular file: never opened, not part of the backup (restore and the kafka_backup input skip it too). " +
				"If it stands where a data file should be, that file's records are not in this backup"
		}
		pr.add(Problem{Severity: SeverityWarning, Kind: KindStray, File: s, Path: location(src, ref.topic, ref.partition, s), Message: msg})
	}
	pr.Files = make([]VerifiedFile, 0, len(part.Files))
	for _, f := range part.Files {
		if ctx.Err() != nil {
			return pr
		}
		vf := verifyFile(ctx, src, ref, f, pr)
		pr.Files = append(pr.Files, vf)
		pr.Records += vf.Records
		pr.Bytes += f.Size
	}
	crossCheck(src, pr)
	checkMarker(ctx, src, ref, pr)
	checkBelowPruned(src, pr)
	if pr.Leftovers == nil {
		pr.Leftovers = []Leftover{}
	}
	if pr.Problems == nil {
		pr.Problems = []Problem{}
	}
	return pr
}

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

// countingReader counts the bytes read.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// verifyFile reads one final file in full and adds its problems to pr.
func verifyFile(ctx context.Context, src tree.Source, ref partitionRef, f tree.File, pr *PartitionReport) VerifiedFile {
	vf := VerifiedFile{Name: f.Name, Size: f.Size, OK: true}
	path := location(src, ref.topic, ref.partition, f.Name)
	problem := func(kind string, pos, off *int64, format string, args ...any) {
		vf.OK = false
		pr.add(Problem{Severity: SeverityError, Kind: kind, File: f.Name, Path: path, Position: pos, Offset: off, Message: fmt.Sprintf(format, args...)})
	}
	rc, err := src.Open(ctx, ref.topic, ref.partition, f.Name)
	if err != nil {
		problem(KindRead, nil, nil, "cannot open: %v", err)
		return vf
	}
	open := true
	closeFile := func() {
		if open {
			open = false
			rc.Close()
		}
	}
	defer closeFile()
	cr := &countingReader{r: rc}
	rd := segment.NewReader(cr)
	last := int64(-1) // highest offset so far
	var orderBad int  // offset order violations after the first reported
	var orderFirst *Problem
	stopped := false
	for {
		if err := ctx.Err(); err != nil {
			return vf
		}
		b, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			stopped = true
			closeFile() // before batchProblem opens it again: FTP connections are bounded
			batchProblem(ctx, src, ref, f, err, last, vf.Records, problem)
			break
		}
		pos := b.Position
		order := func(off int64, format string, args ...any) {
			if orderFirst == nil {
				orderFirst = &Problem{Position: ptr(pos), Offset: ptr(off), Message: fmt.Sprintf(format, args...)}
			} else {
				orderBad++
			}
		}
		flagged := b.BaseOffset <= last
		if flagged {
			order(b.BaseOffset, "the batch starts at offset %d, not after offset %d before it: offsets must strictly increase inside a file", b.BaseOffset, last)
		}
		recs, err := b.Records()
		if err != nil {
			stopped = true
			closeFile() // before batchProblem opens it again: FTP connections are bounded
			batchProblem(ctx, src, ref, f, err, last, vf.Records, problem)
			break
		}
		vf.Batches++
		for i := range recs {
			r := &recs[i]
			switch {
			case r.Offset < b.BaseOffset || r.Offset > b.LastOffset:
				order(r.Offset, "record %d of the batch has offset %d, outside the batch's offsets %d-%d", i, r.Offset, b.BaseOffset, b.LastOffset)
			case r.Offset <= last && !flagged:
				flagged = true
				order(r.Offset, "record %d of the batch has offset %d, not after offset %d before it: offsets must strictly increase inside a file", i, r.Offset, last)
			}
			if vf.Records == 0 {
				vf.FirstOffset = ptr(r.Offset)
				if r.Offset != f.FirstOffset {
					problem(KindMisnamed, ptr(pos), ptr(r.Offset), "named for offset %d, but its first record has offset %d: a file's name must be its first offset (restore and the input read it anyway; rename it to %s)",
						f.FirstOffset, r.Offset, layout.NamePlain.FileName(r.Offset))
				}
			}
			vf.Records++
			if vf.MinTimestamp == nil || r.Timestamp < *vf.MinTimestamp {
				vf.MinTimestamp = ptr(r.Timestamp)
			}
			if vf.MaxTimestamp == nil || r.Timestamp > *vf.MaxTimestamp {
				vf.MaxTimestamp = ptr(r.Timestamp)
			}
			vf.offsets.Add(r.Offset)
			last = max(last, r.Offset)
		}
	}
	vf.BytesRead = cr.n
	if orderFirst != nil {
		msg := orderFirst.Message
		if orderBad > 0 {
			msg += fmt.Sprintf(" (and %d more places in this file)", orderBad)
		}
		problem(KindOffsetOrder, orderFirst.Position, orderFirst.Offset, "%s", msg)
	}
	if len(vf.offsets.Ranges()) > 0 {
		rs := vf.offsets.Ranges()
		vf.FirstOffset, vf.LastOffset = ptr(rs[0].First), ptr(rs[len(rs)-1].Last)
	}
	if !stopped {
		if vf.Records == 0 {
			problem(KindEmpty, nil, ptr(f.FirstOffset), "holds no record (%d bytes): a final file always holds at least one", cr.n)
		}
		if f.Size >= 0 && cr.n != f.Size {
			problem(KindSize, nil, nil, "read %d bytes, but the listing says %d: the file changed while it was read, or the server reports sizes wrongly", cr.n, f.Size)
		}
	}
	return vf
}

// batchProblem reports a batch that cannot be read: torn, corrupt, or a
// read error, with the byte and the offset.
func batchProblem(ctx context.Context, src tree.Source, ref partitionRef, f tree.File, err error, last, records int64, problem func(kind string, pos, off *int64, format string, args ...any)) {
	var be *segment.BatchError
	var pos *int64
	cause := err
	if errors.As(err, &be) {
		pos = ptr(be.Position)
		cause = be.Err
	}
	kind := KindRead
	switch {
	case errors.Is(err, segment.ErrTorn):
		kind = KindTorn
	case errors.Is(err, segment.ErrCorrupt):
		kind = KindCorrupt
	}
	before := "no record before it"
	if records > 0 {
		before = fmt.Sprintf("the %s before it (up to offset %d) are intact", plural(records, "record"), last)
	}
	var off *int64
	stated := ""
	if pos != nil && kind != KindRead {
		if base, ok := peekBaseOffset(ctx, src, ref, f.Name, *pos); ok {
			off = ptr(base)
			stated = fmt.Sprintf("the batch header states base offset %d; ", base)
		}
	}
	if off == nil {
		if records > 0 {
			off = ptr(last + 1)
		} else {
			off = ptr(f.FirstOffset)
		}
	}
	switch kind {
	case KindTorn:
		problem(kind, pos, off, "the file ends inside the batch that starts here (a write that never completed: crash, full disk, cut transfer); %s%s, the rest of the file is lost", stated, before)
	case KindCorrupt:
		problem(kind, pos, off, "%v; %s%s; nothing after it in this file can be read", cause, stated, before)
	default:
		problem(kind, pos, off, "reading stopped: %v; %s", cause, before)
	}
}

// peekBaseOffset reads the base offset of the batch at pos of a file (the
// first 8 bytes of its header, outside the CRC), when the file has them.
func peekBaseOffset(ctx context.Context, src tree.Source, ref partitionRef, name string, pos int64) (int64, bool) {
	rc, err := src.Open(ctx, ref.topic, ref.partition, name)
	if err != nil {
		return 0, false
	}
	defer rc.Close()
	var b [8]byte
	if ra, ok := rc.(io.ReaderAt); ok {
		if n, _ := ra.ReadAt(b[:], pos); n < len(b) {
			return 0, false
		}
	} else {
		if _, err := io.CopyN(io.Discard, rc, pos); err != nil {
			return 0, false
		}
		if _, err := io.ReadFull(rc, b[:]); err != nil {
			return 0, false
		}
	}
	v := int64(uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 | uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7]))
	return v, v >= 0
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

// WriteText prints the report for people: a line per partition, its
// problems, then the totals.
func (r *VerifyReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "Verify of %s: every final file read in full (CRC of every batch, every record decoded, names, offset order).\n", r.Location)
	for _, pr := range r.TreeProblems {
		fmt.Fprintf(w, "  %s\n", pr)
	}
	if r.Metadata != nil {
		fmt.Fprint(w, "  ")
		r.Metadata.writeText(w, false)
	}
	for _, p := range r.Partitions {
		status := "OK"
		if p.Errors > 0 || p.Warnings > 0 {
			var parts []string
			if p.Errors > 0 {
				parts = append(parts, strings.ToUpper(plural(int64(p.Errors), "error")))
			}
			if p.Warnings > 0 {
				parts = append(parts, plural(int64(p.Warnings), "warning"))
			}
			status = strings.Join(parts, ", ")
		}
		offsets := "no records"
		if len(p.Offsets) > 0 {
			offsets = "offsets " + formatJSONRanges(p.Offsets, 5)
		}
		if p.PrunedBelow != nil {
			offsets += fmt.Sprintf(" (pruned below offset %d)", *p.PrunedBelow)
		}
		fmt.Fprintf(w, "  %s/%d: %s: %s, %s, %s, %s\n", p.Topic, p.Partition, status,
			plural(int64(len(p.Files)), "file"), plural(p.Records, "record"), offsets, units.FormatBytes(p.Bytes))
		for _, pr := range p.Problems {
			fmt.Fprintf(w, "      %s\n", pr)
		}
	}
	verdict := "OK"
	if r.Errors > 0 {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "Total: %s, %s, %s, %s read in %s: %s, %s: %s.\n",
		plural(int64(len(r.Partitions)), "partition"), plural(int64(r.Files), "file"), plural(r.Records, "record"),
		units.FormatBytes(r.Bytes), r.Took.Round(time.Millisecond), plural(int64(r.Errors), "error"), plural(int64(r.Warnings), "warning"), verdict)
}

func formatJSONRanges(rs []Range, max int) string {
	sr := make([]segment.Range, len(rs))
	for i, r := range rs {
		sr[i] = segment.Range{First: r.First, Last: r.Last}
	}
	return offsets.Format(sr, max)
}
