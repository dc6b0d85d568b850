package byteranges

import (
	"slices"
	"testing"
)

// set builds a Set by adding spans in order.
func set(spans ...Span) Set {
	var s Set
	for _, sp := range spans {
		s.Add(sp)
	}
	return s
}

func TestAdd(t *testing.T) {
	for _, tc := range []struct {
		name  string
		adds  []Span
		want  []Span
		total int64
	}{
		// Ignored input first.
		{"empty span", []Span{{5, 5}}, nil, 0},
		{"inverted span", []Span{{9, 3}}, nil, 0},
		{"wholly negative", []Span{{-9, -3}}, nil, 0},
		{"negative start dropped", []Span{{-5, 3}}, []Span{{0, 3}}, 3},
		// Then sets that grow.
		{"one", []Span{{3, 9}}, []Span{{3, 9}}, 6},
		{"disjoint, out of order", []Span{{20, 30}, {0, 10}, {40, 50}}, []Span{{0, 10}, {20, 30}, {40, 50}}, 30},
		{"touching right", []Span{{10, 20}, {20, 30}}, []Span{{10, 30}}, 20},
		{"touching left", []Span{{10, 20}, {5, 10}}, []Span{{5, 20}}, 15},
		{"overlap", []Span{{0, 10}, {5, 15}}, []Span{{0, 15}}, 15},
		{"inside", []Span{{10, 20}, {12, 15}}, []Span{{10, 20}}, 10},
		{"duplicate", []Span{{3, 7}, {3, 7}}, []Span{{3, 7}}, 4},
		{"fills a gap exactly", []Span{{0, 4}, {8, 10}, {4, 8}}, []Span{{0, 10}}, 10},
		{"bridges three", []Span{{0, 2}, {4, 6}, {8, 10}, {20, 30}, {1, 9}}, []Span{{0, 10}, {20, 30}}, 20},
		{"partial bridge", []Span{{0, 10}, {20, 30}, {40, 50}, {25, 45}}, []Span{{0, 10}, {20, 50}}, 40},
		{"covers all", []Span{{2, 3}, {5, 6}, {0, 100}}, []Span{{0, 100}}, 100},
		{"eight ranges", []Span{{7, 8}, {0, 1}, {3, 4}, {1, 2}, {6, 7}, {2, 3}, {5, 6}, {4, 5}}, []Span{{0, 8}}, 8},
		{"resume overlap", []Span{{0, 600}, {400, 700}, {700, 1000}, {0, 1000}}, []Span{{0, 1000}}, 1000},
	} {
		s := set(tc.adds...)
		if got := s.Spans(); !slices.Equal(got, tc.want) || s.Total() != tc.total || s.Len() != len(tc.want) {
			t.Errorf("%s: got %v total %d, want %v total %d", tc.name, got, s.Total(), tc.want, tc.total)
		}
	}
}

func TestAddReportsGain(t *testing.T) {
	var s Set
	if !s.Add(Span{0, 10}) || s.Add(Span{0, 10}) || s.Add(Span{2, 5}) || s.Add(Span{4, 4}) || !s.Add(Span{5, 11}) {
		t.Fatal("Add must report exactly the adds that gain bytes")
	}
}

func TestAddBounded(t *testing.T) {
	const bound = 3
	var s Set
	for i := range int64(bound + 2) {
		s.AddBounded(Span{2 * i, 2*i + 1}, bound)
	}
	if got, want := s.Spans(), []Span{{0, 1}, {2, 3}, {4, 5}}; !slices.Equal(got, want) || s.Total() != bound {
		t.Fatalf("at the bound: %v total %d, want %v", got, s.Total(), want)
	}
	// Merging still works at the bound; disjoint spans before, between or
	// after are still refused.
	if !s.AddBounded(Span{1, 2}, bound) || s.Len() != bound-1 || s.Total() != bound+1 {
		t.Fatalf("bridging at the bound: %v total %d", s.Spans(), s.Total())
	}
	if !s.AddBounded(Span{10, 11}, bound) || s.AddBounded(Span{20, 21}, bound) {
		t.Fatalf("below the bound a disjoint span is kept, at it refused: %v", s.Spans())
	}
	if s.AddBounded(Span{7, 8}, 0) || !s.AddBounded(Span{5, 6}, 0) {
		t.Fatalf("bound 0 refuses every new span but keeps merges: %v", s.Spans())
	}
}

func TestCovers(t *testing.T) {
	s := set(Span{10, 20}, Span{30, 40})
	for _, c := range []struct {
		sp   Span
		want bool
	}{
		{Span{0, 5}, false}, {Span{15, 25}, false}, {Span{20, 30}, false}, {Span{39, 41}, false}, {Span{5, 35}, false},
		{Span{10, 20}, true}, {Span{12, 18}, true}, {Span{30, 40}, true}, {Span{5, 5}, true}, {Span{9, 3}, true},
	} {
		if got := s.Covers(c.sp); got != c.want {
			t.Errorf("Covers(%v) = %v, want %v", c.sp, got, c.want)
		}
	}
}

func TestMissing(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Set
		size int64
		want []Span
	}{
		{"empty set", Set{}, 5, []Span{{0, 5}}},
		{"empty file", Set{}, 0, nil},
		{"complete", set(Span{0, 12}), 12, nil},
		{"gaps", set(Span{0, 4}, Span{6, 8}, Span{9, 10}), 12, []Span{{4, 6}, {8, 9}, {10, 12}}},
		{"gap first", set(Span{3, 12}), 12, []Span{{0, 3}}},
		{"spans past size ignored", set(Span{2, 4}, Span{20, 30}), 10, []Span{{0, 2}, {4, 10}}},
		{"span across size", set(Span{5, 30}), 10, []Span{{0, 5}}},
	} {
		if got := tc.s.Missing(tc.size); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Missing(%d) = %v, want %v", tc.name, tc.size, got, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	for _, bad := range [][]Span{
		{{-1, 3}}, {{0, 13}}, {{3, 3}}, {{4, 2}}, {{0, 4}, {4, 6}}, {{5, 6}, {0, 2}}, {{0, 4}, {3, 6}},
	} {
		if Check(bad, 12) == nil {
			t.Errorf("Check(%v) accepted", bad)
		}
	}
	for _, good := range [][]Span{nil, {{0, 12}}, {{0, 4}, {6, 8}, {9, 10}}} {
		if err := Check(good, 12); err != nil {
			t.Errorf("Check(%v): %v", good, err)
		}
	}
}

func TestCloneIsIndependent(t *testing.T) {
	s := set(Span{0, 4}, Span{10, 14})
	c := s.Clone()
	c.Add(Span{4, 10})
	if !slices.Equal(s.Spans(), []Span{{0, 4}, {10, 14}}) || s.Total() != 8 || c.Total() != 14 {
		t.Fatalf("clone shared its spans: original %v, clone %v", s.Spans(), c.Spans())
	}
}

// FuzzSet adds fuzzed spans, some through a small bound, to a set of a
// 256-byte file and checks it against a bitmap of the bytes it accepted:
// the spans stay well-formed and hold exactly those bytes, Add reports a
// gain exactly when the total grows, and Missing is the complement.
func FuzzSet(f *testing.F) {
	f.Add([]byte{0, 10, 5, 15, 20, 30}, uint8(255))
	f.Add([]byte{7, 8, 0, 1, 3, 4, 1, 2, 6, 7, 2, 3, 5, 6, 4, 5}, uint8(2))
	f.Add([]byte{200, 100, 0, 255, 3, 3}, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, bound uint8) {
		const size = 256
		var s Set
		var have [size]bool
		for i := 0; i+1 < len(data); i += 2 {
			sp := Span{int64(data[i]), int64(data[i+1])}
			before, n := s.Total(), s.Len()
			var gained bool
			if bound == 255 {
				gained = s.Add(sp)
			} else {
				gained = s.AddBounded(sp, int(bound%8))
			}
			if gained != (s.Total() != before) {
				t.Fatalf("add %v reported gain %v, total %d -> %d", sp, gained, before, s.Total())
			}
			if !gained && s.Len() > n {
				t.Fatalf("add %v gained nothing but grew the set to %d spans", sp, s.Len())
			}
			if gained {
				for b := sp.Start; b < sp.End; b++ {
					have[b] = true
				}
			}
			if bound != 255 && s.Len() > max(int(bound%8), n) {
				t.Fatalf("bound %d exceeded: %v", bound%8, s.Spans())
			}
		}
		if err := Check(s.Spans(), size); err != nil {
			t.Fatal(err)
		}
		var want int64
		for _, b := range have {
			if b {
				want++
			}
		}
		if s.Total() != want {
			t.Fatalf("total %d, bitmap has %d (spans %v)", s.Total(), want, s.Spans())
		}
		for _, sp := range s.Spans() {
			for b := sp.Start; b < sp.End; b++ {
				if !have[b] {
					t.Fatalf("span %v holds byte %d never added", sp, b)
				}
			}
			if !s.Covers(sp) {
				t.Fatalf("Covers(%v) = false", sp)
			}
		}
		var missing int64
		for _, g := range s.Missing(size) {
			missing += g.Len()
			for b := g.Start; b < g.End; b++ {
				if have[b] {
					t.Fatalf("byte %d present but reported missing", b)
				}
			}
		}
		if missing+s.Total() != size {
			t.Fatalf("missing %d + total %d != %d", missing, s.Total(), size)
		}
	})
}
