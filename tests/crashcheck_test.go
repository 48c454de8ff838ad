package tests

// The invariants a crash must not break, shared by the local crash test
// (crashScan.check, e2e_crash_test.go) and the FTP one (ftpCrashState.check,
// e2e_crash_ftp_test.go): no final file torn, empty or misnamed, no offset in
// two final files, no acknowledged record lost.

import (
	"fmt"
	"iter"
	"sort"
	"strings"

	"github.com/kafka-backup/kafka-backup/segment"
)

// rangeOffsets yields every offset of rs, in order.
func rangeOffsets(rs []segment.Range) iter.Seq[int64] {
	return func(yield func(int64) bool) {
		for _, r := range rs {
			for o := r.First; o <= r.Last; o++ {
				if !yield(o) {
					return
				}
			}
		}
	}
}

// offsetSet returns the offsets of the valid batches of files.
func offsetSet(files []crashFile) map[int64]bool {
	set := map[int64]bool{}
	for _, f := range files {
		for o := range rangeOffsets(f.ranges) {
			set[o] = true
		}
	}
	return set
}

// countHeld returns how many of the offsets of f's valid batches held reports
// true for, and how many offsets f has.
func countHeld(f crashFile, held func(o int64) bool) (n, total int) {
	for o := range rangeOffsets(f.ranges) {
		total++
		if held(o) {
			n++
		}
	}
	return n, total
}

// lostOffsets returns the offsets below committed (the group's committed
// offset: acknowledged records) that held reports false for: records a crash
// lost.
func lostOffsets(committed int64, held func(o int64) bool) []int64 {
	var lost []int64
	for o := int64(0); o < committed; o++ {
		if !held(o) {
			lost = append(lost, o)
		}
	}
	return lost
}

// finalFilesCheck is what checkFinalFiles found in the final files of one
// partition folder.
type finalFilesCheck struct {
	holder   map[int64]string // offset -> the first final file that holds it
	dups     []int64          // offsets a later final file holds again
	dupPairs []string         // "a & b" for each pair of final files sharing an offset, sorted
	problems []string         // final files that are torn, empty or misnamed
}

// checkFinalFiles checks the final files of one partition folder: each
// decodes completely, holds records and starts at the offset its name
// states, and no offset is in two of them.
func checkFinalFiles(finals []crashFile) finalFilesCheck {
	c := finalFilesCheck{holder: map[int64]string{}}
	pairs := map[string]bool{}
	for _, f := range finals {
		switch {
		case f.err != nil:
			c.problems = append(c.problems, fmt.Sprintf("torn final file %s: %v", f, f.err))
		case f.records == 0:
			c.problems = append(c.problems, fmt.Sprintf("empty final file %s", f.name))
		case f.ranges[0].First != f.first:
			c.problems = append(c.problems, fmt.Sprintf("final file %s starts at offset %d", f.name, f.ranges[0].First))
		}
		for o := range rangeOffsets(f.ranges) {
			if prev, ok := c.holder[o]; ok {
				c.dups = append(c.dups, o)
				pairs[prev+" & "+f.name] = true
				continue
			}
			c.holder[o] = f.name
		}
	}
	for p := range pairs {
		c.dupPairs = append(c.dupPairs, p)
	}
	sort.Strings(c.dupPairs)
	return c
}

// held reports whether a final file holds offset o.
func (c finalFilesCheck) held(o int64) bool {
	_, ok := c.holder[o]
	return ok
}

// violations returns the problems and, when an offset is in two final files,
// "DUPLICATED <offsets> in two final files (<pairs>)", each prefixed with
// prefix.
func (c finalFilesCheck) violations(prefix string) []string {
	out := make([]string, 0, len(c.problems)+1)
	for _, p := range c.problems {
		out = append(out, prefix+p)
	}
	if len(c.dups) > 0 {
		out = append(out, fmt.Sprintf("%sDUPLICATED %s in two final files (%s)", prefix, crashOffsets(c.dups), strings.Join(c.dupPairs, "; ")))
	}
	return out
}

// allProduced returns, by partition, the number of records produced to
// topic's crashPartitions partitions: the committed offsets once everything
// is consumed.
func allProduced(b *broker, topic string) map[int32]int64 {
	comm := map[int32]int64{}
	for p := range int32(crashPartitions) {
		comm[p] = int64(b.producedCount(topic, p))
	}
	return comm
}
