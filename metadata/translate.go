package metadata

import "sort"

// OffsetMap maps the source offsets of one partition's restored records to
// the offsets the target gave them, as runs where both grow by one. Records
// of one partition are produced in source order, so the map is a few runs:
// one per gap in the source offsets (compaction, transactions, offset_from).
// The zero value is empty. It is not safe for concurrent use.
type OffsetMap struct {
	runs   []offsetRun
	sorted bool
}

type offsetRun struct {
	Source, Target, N int64
}

// Add records that the record at source offset src got target offset tgt.
// In increasing order it is O(1); out of order, it is sorted once when
// read.
func (m *OffsetMap) Add(src, tgt int64) {
	if n := len(m.runs); n > 0 {
		last := &m.runs[n-1]
		if src == last.Source+last.N && tgt == last.Target+last.N {
			last.N++
			return
		}
		if src < last.Source+last.N {
			m.sorted = false
		}
	} else {
		m.sorted = true
	}
	m.runs = append(m.runs, offsetRun{src, tgt, 1})
}

// Len returns the number of offsets mapped.
func (m *OffsetMap) Len() int64 {
	var n int64
	for _, r := range m.runs {
		n += r.N
	}
	return n
}

func (m *OffsetMap) sort() {
	if m.sorted {
		return
	}
	sort.Slice(m.runs, func(i, j int) bool { return m.runs[i].Source < m.runs[j].Source })
	merged := m.runs[:0]
	for _, r := range m.runs {
		if n := len(merged); n > 0 {
			last := &merged[n-1]
			if r.Source == last.Source+last.N && r.Target == last.Target+last.N {
				last.N += r.N
				continue
			}
		}
		merged = append(merged, r)
	}
	m.runs, m.sorted = merged, true
}

// Rule says which rule Translate applied.
type Rule string

// The rules of Translate.
const (
	RuleExact   Rule = "exact"         // O is a restored record's source offset
	RuleNext    Rule = "next restored" // O is in a gap: the first restored record after it
	RuleBelow   Rule = "below first"   // O is below the first restored record
	RuleEnd     Rule = "partition end" // O is past the last restored record
	RuleNothing Rule = "nothing restored"
)

// Translate maps a committed source offset o (the next record the group
// would read) to the target: the target offset of the first restored
// record whose source offset is at least o; the first restored record's
// when o is below it; the end of the restored records (the last one's
// target offset + 1) when o is past the last. ok is false when nothing was
// restored.
func (m *OffsetMap) Translate(o int64) (tgt int64, rule Rule, ok bool) {
	m.sort()
	if len(m.runs) == 0 {
		return 0, RuleNothing, false
	}
	first, last := m.runs[0], m.runs[len(m.runs)-1]
	switch {
	case o < first.Source:
		return first.Target, RuleBelow, true
	case o >= last.Source+last.N:
		return last.Target + last.N, RuleEnd, true
	}
	i := sort.Search(len(m.runs), func(i int) bool { return m.runs[i].Source+m.runs[i].N > o })
	r := m.runs[i]
	if o >= r.Source {
		return r.Target + (o - r.Source), RuleExact, true
	}
	return r.Target, RuleNext, true
}

// Runs returns the map as [source, target, count] triples, sorted by
// source offset: what restore saves for a later restore-offsets.
func (m *OffsetMap) Runs() [][3]int64 {
	m.sort()
	out := make([][3]int64, len(m.runs))
	for i, r := range m.runs {
		out[i] = [3]int64{r.Source, r.Target, r.N}
	}
	return out
}

// AddRun adds count offsets from source src to target tgt, as Runs
// returned them.
func (m *OffsetMap) AddRun(src, tgt, count int64) {
	if count <= 0 {
		return
	}
	m.Add(src, tgt)
	m.runs[len(m.runs)-1].N += count - 1
}
