package offsets

import (
	"math/rand"
	"reflect"
	"testing"
)

func TestSetAddRange(t *testing.T) {
	s := &Set{}
	if s.Contains(0) || s.Contains(-1) {
		t.Fatal("an empty set contains something")
	}
	add := func(first, last int64, want ...Range) {
		t.Helper()
		s.AddRange(Range{First: first, Last: last})
		if !reflect.DeepEqual(s.Ranges(), want) {
			t.Fatalf("after adding %d-%d: %v, want %v", first, last, s.Ranges(), want)
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
	if s.Max() != 100 {
		t.Fatalf("Max = %d, want 100", s.Max())
	}
	for off, want := range map[int64]bool{-6: false, -5: true, 0: true, 60: true, 61: false, 99: false, 100: true, 101: false} {
		if got := s.Contains(off); got != want {
			t.Errorf("contains(%d) = %v, want %v", off, got, want)
		}
	}
}

func TestSetManyDisjoint(t *testing.T) {
	s := &Set{}
	// Every other offset, added in a scrambled order.
	for i := int64(0); i < 100; i++ {
		off := (i * 37 % 100) * 2
		s.AddRange(Range{First: off, Last: off})
	}
	if len(s.Ranges()) != 100 {
		t.Fatalf("%d ranges, want 100", len(s.Ranges()))
	}
	for off := int64(-1); off <= 200; off++ {
		want := off >= 0 && off < 200 && off%2 == 0
		if s.Contains(off) != want {
			t.Fatalf("contains(%d) = %v", off, !want)
		}
	}
	// Filling the odd offsets merges everything into one range.
	for off := int64(1); off < 200; off += 2 {
		s.AddRange(Range{First: off, Last: off})
	}
	if !reflect.DeepEqual(s.Ranges(), []Range{{First: 0, Last: 199}}) {
		t.Fatalf("ranges %v, want one", s.Ranges())
	}
}

func TestSetMinus(t *testing.T) {
	set := func(rs ...Range) *Set {
		s := &Set{}
		for _, r := range rs {
			s.AddRange(r)
		}
		return s
	}
	a := set(Range{First: 0, Last: 99}, Range{First: 200, Last: 299})
	for _, c := range []struct {
		t    *Set
		want []Range
	}{
		{set(), []Range{{First: 0, Last: 99}, {First: 200, Last: 299}}},
		{set(Range{First: 0, Last: 299}), nil},
		{set(Range{First: 10, Last: 19}, Range{First: 250, Last: 400}), []Range{{First: 0, Last: 9}, {First: 20, Last: 99}, {First: 200, Last: 249}}},
		{set(Range{First: 0, Last: 0}, Range{First: 99, Last: 200}), []Range{{First: 1, Last: 98}, {First: 201, Last: 299}}},
	} {
		if got := a.Minus(c.t); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%v minus %v = %v, want %v", a.Ranges(), c.t.Ranges(), got, c.want)
		}
	}
}

func TestSetByOffset(t *testing.T) {
	var s Set
	for _, off := range []int64{5, 6, 7, 1, 3, 2, 10, 9, 8, 20, 0, 4, 15} {
		s.Add(off)
		s.Add(off) // twice: no change
	}
	want := []Range{{First: 0, Last: 10}, {First: 15, Last: 15}, {First: 20, Last: 20}}
	if !reflect.DeepEqual(s.Ranges(), want) {
		t.Fatalf("set %v, want %v", s.Ranges(), want)
	}
	if !s.Covers(3, 9) || s.Covers(9, 15) || !s.Contains(15) || s.Contains(16) || s.Contains(-1) || s.Max() != 20 {
		t.Error("covers/contains/max wrong")
	}
	if h := s.Holes(); !reflect.DeepEqual(h, []Range{{First: 11, Last: 14}, {First: 16, Last: 19}}) {
		t.Errorf("holes %v", h)
	}
	var o Set
	for _, off := range []int64{0, 1, 2, 5, 9, 10, 20} {
		o.Add(off)
	}
	if m := s.Minus(&o); !reflect.DeepEqual(m, []Range{{First: 3, Last: 4}, {First: 6, Last: 8}, {First: 15, Last: 15}}) {
		t.Errorf("minus %v", m)
	}
	if n := s.CountFrom(9); n != 4 {
		t.Errorf("countFrom(9) = %d, want 4", n)
	}
}

func TestSetRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for round := range 200 {
		var s Set
		in := map[int64]bool{}
		for range rng.Intn(60) {
			a := rng.Int63n(100)
			b := a + rng.Int63n(5)
			if rng.Intn(3) == 0 {
				s.Add(a)
				in[a] = true
			} else {
				s.AddRange(Range{First: a, Last: b})
				for o := a; o <= b; o++ {
					in[o] = true
				}
			}
		}
		rs := s.Ranges()
		for i := range rs {
			if rs[i].First > rs[i].Last || i > 0 && rs[i].First <= rs[i-1].Last+1 {
				t.Fatalf("round %d: ranges not sorted, disjoint and apart: %v", round, rs)
			}
		}
		for o := int64(-1); o < 110; o++ {
			if s.Contains(o) != in[o] {
				t.Fatalf("round %d: Contains(%d) = %v; ranges %v", round, o, s.Contains(o), rs)
			}
		}
		if s.Len() != int64(len(in)) {
			t.Fatalf("round %d: Len %d, want %d", round, s.Len(), len(in))
		}
		r := Range{First: rng.Int63n(110) - 5}
		r.Last = r.First + rng.Int63n(30)
		var out Set
		for _, u := range s.Uncovered(r) {
			if u.First > u.Last || u.First < r.First || u.Last > r.Last || out.Covers(u.First, u.Last) {
				t.Fatalf("round %d: Uncovered(%v) = %v; ranges %v", round, r, s.Uncovered(r), rs)
			}
			out.AddRange(u)
		}
		for o := r.First; o <= r.Last; o++ {
			if out.Contains(o) == in[o] {
				t.Fatalf("round %d: Uncovered(%v) = %v, offset %d wrong; ranges %v", round, r, s.Uncovered(r), o, rs)
			}
		}
	}
}

func TestFormat(t *testing.T) {
	rs := []Range{{First: 0, Last: 99}, {First: 150, Last: 150}, {First: 200, Last: 299}}
	for max, want := range map[int]string{0: "0-99, 150, 200-299", 2: "0-99, 150, … (3 ranges)"} {
		if got := Format(rs, max); got != want {
			t.Errorf("Format(%v, %d) = %q, want %q", rs, max, got, want)
		}
	}
	if got := Format(nil, 0); got != "none" {
		t.Errorf("Format(nil) = %q", got)
	}
}
