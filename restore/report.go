package restore

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kafka-backup/kafka-backup/offsets"
	"github.com/kafka-backup/kafka-backup/segment"
	"github.com/kafka-backup/kafka-backup/tree"
	"github.com/kafka-backup/kafka-backup/units"
)

// Write prints the summary: a few lines per partition, then the totals.
func (s *Summary) Write(w io.Writer) {
	verb := "restored"
	if s.DryRun {
		verb = "would be restored"
		fmt.Fprintf(w, "Dry run of a restore from %s: nothing was produced.\n", s.Source)
	} else {
		fmt.Fprintf(w, "Restore from %s:\n", s.Source)
	}
	topics := map[string]bool{}
	for _, p := range s.Partitions {
		topics[p.Topic] = true
		target := ""
		if p.Target != p.Topic {
			target = fmt.Sprintf(" -> %s/%d", p.Target, p.Partition)
		}
		if p.Files == 0 {
			fmt.Fprintf(w, "  %s/%d%s: no backup files\n", p.Topic, p.Partition, target)
		} else {
			restored := ""
			if len(p.Restored) > 0 {
				restored = ", offsets " + offsets.Format(p.Restored, 5)
			}
			fmt.Fprintf(w, "  %s/%d%s: %s %s%s (%s of record data); %s, %s read\n",
				p.Topic, p.Partition, target, plural(p.Records, "record"), verb, restored, units.FormatBytes(p.Bytes),
				plural(int64(p.Files), "file"), units.FormatBytes(p.ReadBytes))
		}
		var notes []string
		if p.PrunedBelow > 0 {
			notes = append(notes, fmt.Sprintf("pruned below offset %d: the older records were deleted from the backup on purpose (kafka-backup prune)", p.PrunedBelow))
		}
		if len(p.Gaps) > 0 {
			notes = append(notes, fmt.Sprintf("gaps: %s (%s no file holds)", offsets.Format(p.Gaps, 5), plural(p.GapOffsets(), "offset")))
		}
		if p.Duplicates > 0 {
			notes = append(notes, fmt.Sprintf("%s skipped (overlapping files)", plural(p.Duplicates, "duplicate")))
		}
		if p.OutOfOrder > 0 {
			notes = append(notes, fmt.Sprintf("%s out of offset order (a misnamed file, or batches out of order inside a file): restored as read", plural(p.OutOfOrder, "record")))
		}
		if p.Skipped > 0 {
			notes = append(notes, fmt.Sprintf("%s outside --from-offset/--to-offset/--since", plural(p.Skipped, "record")))
		}
		for i, tl := range p.TooLarge {
			if i == 5 {
				notes = append(notes, fmt.Sprintf("too large: %d more records", len(p.TooLarge)-i))
				break
			}
			notes = append(notes, fmt.Sprintf("too large: offset %d: %s as a batch of its own, above the limit of %s (%s)",
				tl.Offset, plural(tl.Bytes, "byte"), units.FormatCount(int64(p.Limit)), p.LimitFrom))
		}
		if p.Stopped != "" {
			notes = append(notes, "stopped at "+p.Stopped)
		}
		for _, n := range notes {
			fmt.Fprintf(w, "      %s\n", n)
		}
		for _, n := range p.Warnings {
			fmt.Fprintf(w, "      warning: %s\n", n)
		}
		if p.Err != nil {
			fmt.Fprintf(w, "      ERROR: %v\n", p.Err)
		}
	}
	s.writeMetadata(w) // restore/groups.go
	t := s.Totals()
	secs := max(s.Took.Seconds(), 1e-3)
	fmt.Fprintf(w, "Total: %s (%s) %s from %s of %s; %s read from %s in %s (%s records/s, %s/s)",
		plural(t.Records, "record"), units.FormatBytes(t.Bytes), verb, plural(int64(len(s.Partitions)), "partition"),
		plural(int64(len(topics)), "topic"), units.FormatBytes(t.ReadBytes), plural(int64(t.Files), "file"),
		s.Took.Round(time.Millisecond), units.FormatCount(int64(float64(t.Records)/secs)), units.FormatBytes(int64(float64(t.ReadBytes)/secs)))
	fmt.Fprintf(w, "; %s (%s); %s skipped", plural(int64(len(t.Gaps)), "gap"), plural(t.GapOffsets(), "offset"), plural(t.Duplicates, "duplicate"))
	if len(t.TooLarge) > 0 {
		fmt.Fprintf(w, "; %s too large", plural(int64(len(t.TooLarge)), "record"))
	}
	if len(s.Created) > 0 {
		fmt.Fprintf(w, "; created %s", strings.Join(s.Created, ", "))
	}
	failed := 0
	for _, p := range s.Partitions {
		if p.Err != nil {
			failed++
		}
	}
	if failed > 0 {
		fmt.Fprintf(w, "; %d partitions FAILED", failed)
	}
	fmt.Fprintln(w, ".")
}

// plural formats a count of things: "1 file", "2,000 files".
func plural(n int64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return units.FormatCount(n) + " " + what + "s"
}

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
