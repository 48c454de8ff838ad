package rolling

import (
	"sort"

	"github.com/kafka-backup/kafka-backup/segment"
)

// Range is an inclusive range of offsets held in files.
type Range = segment.Range

// rangeSet is a sorted set of disjoint offset ranges.
type rangeSet struct {
	r   []Range
	max int64 // highest Last, or -1
}

func newRangeSet() rangeSet { return rangeSet{max: -1} }

// add inserts r, merging it with ranges it overlaps or touches.
func (s *rangeSet) add(r Range) {
	i := sort.Search(len(s.r), func(i int) bool { return s.r[i].Last+1 >= r.First })
	j := i
	for j < len(s.r) && s.r[j].First <= r.Last+1 {
		r.First = min(r.First, s.r[j].First)
		r.Last = max(r.Last, s.r[j].Last)
		j++
	}
	s.r = append(s.r[:i], append([]Range{r}, s.r[j:]...)...)
	s.max = max(s.max, r.Last)
}

// contains reports whether off lies in one of the ranges.
func (s *rangeSet) contains(off int64) bool {
	if off > s.max {
		return false
	}
	i := sort.Search(len(s.r), func(i int) bool { return s.r[i].Last >= off })
	return i < len(s.r) && s.r[i].First <= off
}

// minus returns the offsets of s that t does not hold, as ranges.
func (s *rangeSet) minus(t rangeSet) []Range {
	var out []Range
	for _, r := range s.r {
		first := r.First
		for _, x := range t.r {
			if x.Last < first || x.First > r.Last {
				continue
			}
			if x.First > first {
				out = append(out, Range{First: first, Last: x.First - 1})
			}
			first = x.Last + 1
			if first > r.Last {
				break
			}
		}
		if first <= r.Last {
			out = append(out, Range{First: first, Last: r.Last})
		}
	}
	return out
}

// Overlap reports whether any offset is in both a range of a and a range of
// b.
func Overlap(a, b []Range) bool {
	for _, x := range a {
		for _, y := range b {
			if x.First <= y.Last && y.First <= x.Last {
				return true
			}
		}
	}
	return false
}

// Covers reports whether the ranges rs, taken together, hold every offset of
// r.
func Covers(rs []Range, r Range) bool {
	s := newRangeSet()
	for _, x := range rs {
		s.add(x)
	}
	i := sort.Search(len(s.r), func(i int) bool { return s.r[i].Last >= r.First })
	return i < len(s.r) && s.r[i].First <= r.First && s.r[i].Last >= r.Last
}
