// Package offsets keeps sets of Kafka offsets as sorted ranges: what a file,
// a partition folder, a marker or a restore holds, and what each misses.
// It is a leaf: every layer, write side and read side, uses it.
package offsets

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Range is an inclusive range of offsets, First <= Last.
type Range struct {
	First, Last int64
}

// Len returns the number of offsets in r.
func (r Range) Len() int64 { return r.Last - r.First + 1 }

// Append appends r to rs, merging it into the last range when the two are
// contiguous (r starts right after it).
func Append(rs []Range, r Range) []Range {
	if n := len(rs); n > 0 && rs[n-1].Last+1 == r.First {
		rs[n-1].Last = r.Last
		return rs
	}
	return append(rs, r)
}

// Set is a set of offsets kept as sorted, disjoint, non-adjacent ranges.
// Adding offsets in increasing order is O(1). The zero value is an empty
// set.
type Set struct {
	r []Range
}

// Ranges returns the set's ranges, sorted. The slice must not be changed.
func (s *Set) Ranges() []Range { return s.r }

// Len returns the number of offsets in the set.
func (s *Set) Len() int64 { return Len(s.r) }

// Max returns the highest offset in the set, or -1 when it is empty.
func (s *Set) Max() int64 {
	if len(s.r) == 0 {
		return -1
	}
	return s.r[len(s.r)-1].Last
}

// Add adds an offset.
func (s *Set) Add(off int64) { s.AddRange(Range{First: off, Last: off}) }

// AddRange adds the offsets of r.
func (s *Set) AddRange(r Range) {
	n := len(s.r)
	if n == 0 || r.First > s.r[n-1].Last {
		s.r = Append(s.r, r)
		return
	}
	// i: the first range that ends at or after r.First-1 (touches or
	// overlaps r from below); j: the first range starting after r.Last+1.
	i := sort.Search(n, func(i int) bool { return s.r[i].Last >= r.First-1 })
	j := sort.Search(n, func(i int) bool { return s.r[i].First > r.Last+1 })
	if i == j {
		s.r = slices.Insert(s.r, i, r)
		return
	}
	merged := Range{First: min(r.First, s.r[i].First), Last: max(r.Last, s.r[j-1].Last)}
	s.r = slices.Replace(s.r, i, j, merged)
}

// Contains reports whether off is in the set.
func (s *Set) Contains(off int64) bool { return s.Covers(off, off) }

// Covers reports whether every offset from first to last is in the set.
func (s *Set) Covers(first, last int64) bool {
	i := sort.Search(len(s.r), func(i int) bool { return s.r[i].Last >= first })
	return i < len(s.r) && s.r[i].First <= first && s.r[i].Last >= last
}

// Holes returns the ranges between the set's ranges: offsets between the
// lowest and the highest that the set does not hold.
func (s *Set) Holes() []Range {
	var out []Range
	for i := 1; i < len(s.r); i++ {
		out = append(out, Range{First: s.r[i-1].Last + 1, Last: s.r[i].First - 1})
	}
	return out
}

// Uncovered returns the parts of r that are not in the set, in order.
func (s *Set) Uncovered(r Range) []Range {
	var out []Range
	next := r.First
	i := sort.Search(len(s.r), func(i int) bool { return s.r[i].Last >= r.First })
	for _, have := range s.r[i:] {
		if have.First > r.Last {
			break
		}
		if have.First > next {
			out = append(out, Range{First: next, Last: have.First - 1})
		}
		next = have.Last + 1
		if next > r.Last {
			return out
		}
	}
	return append(out, Range{First: next, Last: r.Last})
}

// Minus returns the offsets of s that t does not hold, as ranges.
func (s *Set) Minus(t *Set) []Range {
	var out []Range
	for _, r := range s.r {
		out = append(out, t.Uncovered(r)...)
	}
	return out
}

// CountFrom returns how many offsets of the set are at or above off.
func (s *Set) CountFrom(off int64) int64 {
	var n int64
	for _, r := range s.r {
		if r.Last >= off {
			n += r.Last - max(r.First, off) + 1
		}
	}
	return n
}

// SetOf returns the set of the offsets of rs, in any order.
func SetOf(rs []Range) *Set {
	s := &Set{}
	for _, r := range rs {
		s.AddRange(r)
	}
	return s
}

// Len returns the number of offsets in rs (disjoint ranges).
func Len(rs []Range) int64 {
	var n int64
	for _, r := range rs {
		n += r.Len()
	}
	return n
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

// Format formats ranges ("0-99, 150, 200-299"), at most max of them (all
// when max <= 0); "none" when there are none.
func Format(rs []Range, max int) string {
	if len(rs) == 0 {
		return "none"
	}
	var parts []string
	for i, r := range rs {
		if max > 0 && i == max {
			parts = append(parts, fmt.Sprintf("… (%d ranges)", len(rs)))
			break
		}
		if r.First == r.Last {
			parts = append(parts, fmt.Sprint(r.First))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", r.First, r.Last))
		}
	}
	return strings.Join(parts, ", ")
}
