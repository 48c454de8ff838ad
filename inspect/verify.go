package inspect

import (
	"context"
	"fmt"
	"io"
	"slices"
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
