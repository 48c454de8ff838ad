package restore

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kafka-backup/kafka-backup/offsets"
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
