package rolling

import (
	"reflect"
	"testing"
)

func TestRangeSet(t *testing.T) {
	s := newRangeSet()
	if s.contains(0) || s.contains(-1) {
		t.Fatal("an empty set contains something")
	}
	add := func(first, last int64, want ...Range) {
		t.Helper()
		s.add(Range{First: first, Last: last})
		if !reflect.DeepEqual(s.r, want) {
			t.Fatalf("after adding %d-%d: %v, want %v", first, last, s.r, want)
		}
	}
	add(10, 19, Range{First: 10, Last: 19})
	add(30, 39, Range{First: 10, Last: 19}, Range{First: 30, Last: 39})
	add(0, 4, Range{First: 0, Last: 4}, Range{First: 10, Last: 19}, Range{First: 30, Last: 39})
	add(20, 20, Range{First: 0, Last: 4}, Range{First: 10, Last: 20}, Range{First: 30, Last: 39}) // touches the one before
	add(29, 29, Range{First: 0, Last: 4}, Range{First: 10, Last: 20}, Range{First: 29, Last: 39}) // touches the one after
	add(50, 60, Range{First: 0, Last: 4}, Range{First: 10, Last: 20}, Range{First: 29, Last: 39}, Range{First: 50, Last: 60})
	add(15, 52, Range{First: 0, Last: 4}, Range{First: 10, Last: 60}) // swallows several
	add(5, 9, Range{First: 0, Last: 60})                              // fills the gap exactly
	add(100, 100, Range{First: 0, Last: 60}, Range{First: 100, Last: 100})
	add(1, 2, Range{First: 0, Last: 60}, Range{First: 100, Last: 100}) // inside
	add(-5, -1, Range{First: -5, Last: 60}, Range{First: 100, Last: 100})
	if s.max != 100 {
		t.Fatalf("max = %d, want 100", s.max)
	}
	for off, want := range map[int64]bool{-6: false, -5: true, 0: true, 60: true, 61: false, 99: false, 100: true, 101: false} {
		if got := s.contains(off); got != want {
			t.Errorf("contains(%d) = %v, want %v", off, got, want)
		}
	}
}

func TestRangeSetManyDisjoint(t *testing.T) {
	s := newRangeSet()
	// Every other offset, added in a scrambled order.
	for i := int64(0); i < 100; i++ {
		off := (i * 37 % 100) * 2
		s.add(Range{First: off, Last: off})
	}
	if len(s.r) != 100 {
		t.Fatalf("%d ranges, want 100", len(s.r))
	}
	for off := int64(-1); off <= 200; off++ {
		want := off >= 0 && off < 200 && off%2 == 0
		if s.contains(off) != want {
			t.Fatalf("contains(%d) = %v", off, !want)
		}
	}
	// Filling the odd offsets merges everything into one range.
	for off := int64(1); off < 200; off += 2 {
		s.add(Range{First: off, Last: off})
	}
	if !reflect.DeepEqual(s.r, []Range{{First: 0, Last: 199}}) {
		t.Fatalf("ranges %v, want one", s.r)
	}
}

func TestRangeSetMinus(t *testing.T) {
	set := func(rs ...Range) rangeSet {
		s := newRangeSet()
		for _, r := range rs {
			s.add(r)
		}
		return s
	}
	a := set(Range{First: 0, Last: 99}, Range{First: 200, Last: 299})
	for _, c := range []struct {
		t    rangeSet
		want []Range
	}{
		{set(), []Range{{First: 0, Last: 99}, {First: 200, Last: 299}}},
		{set(Range{First: 0, Last: 299}), nil},
		{set(Range{First: 10, Last: 19}, Range{First: 250, Last: 400}), []Range{{First: 0, Last: 9}, {First: 20, Last: 99}, {First: 200, Last: 249}}},
		{set(Range{First: 0, Last: 0}, Range{First: 99, Last: 200}), []Range{{First: 1, Last: 98}, {First: 201, Last: 299}}},
	} {
		if got := a.minus(c.t); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%v minus %v = %v, want %v", a.r, c.t.r, got, c.want)
		}
	}
}
