package main

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSpanSetAdd(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   spanSet
		add  span
		want spanSet
	}{
		{"empty span ignored", spanSet{{0, 5}}, span{7, 7}, spanSet{{0, 5}}},
		{"inverted span ignored", spanSet{{0, 5}}, span{9, 7}, spanSet{{0, 5}}},
		{"into empty", nil, span{3, 9}, spanSet{{3, 9}}},
		{"before, apart", spanSet{{10, 20}}, span{0, 5}, spanSet{{0, 5}, {10, 20}}},
		{"after, apart", spanSet{{10, 20}}, span{25, 30}, spanSet{{10, 20}, {25, 30}}},
		{"touching left", spanSet{{10, 20}}, span{5, 10}, spanSet{{5, 20}}},
		{"touching right", spanSet{{10, 20}}, span{20, 30}, spanSet{{10, 30}}},
		{"inside", spanSet{{10, 20}}, span{12, 15}, spanSet{{10, 20}}},
		{"bridges three", spanSet{{0, 2}, {4, 6}, {8, 10}, {20, 30}}, span{1, 9}, spanSet{{0, 10}, {20, 30}}},
		{"covers all", spanSet{{2, 3}, {5, 6}}, span{0, 100}, spanSet{{0, 100}}},
		{"fills a gap exactly", spanSet{{0, 4}, {8, 10}}, span{4, 8}, spanSet{{0, 10}}},
	} {
		got := slices.Clone(tc.in).add(tc.add)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v add %v = %v, want %v", tc.name, tc.in, tc.add, got, tc.want)
		}
	}
}

func TestSpanSetMissingAndCheck(t *testing.T) {
	s := spanSet{{0, 4}, {6, 8}, {9, 10}}
	if got, want := s.missing(12), []span{{4, 6}, {8, 9}, {10, 12}}; !slices.Equal(got, want) {
		t.Fatalf("missing = %v, want %v", got, want)
	}
	if got := (spanSet{{0, 12}}).missing(12); got != nil {
		t.Fatalf("complete set misses %v", got)
	}
	if got, want := spanSet(nil).missing(5), []span{{0, 5}}; !slices.Equal(got, want) {
		t.Fatalf("empty set misses %v, want %v", got, want)
	}
	if s.total() != 7 {
		t.Fatalf("total %d", s.total())
	}
	for _, bad := range []spanSet{
		{{-1, 3}}, {{0, 13}}, {{3, 3}}, {{4, 2}}, {{0, 4}, {4, 6}}, {{5, 6}, {0, 2}}, {{0, 4}, {3, 6}},
	} {
		if bad.check(12) == nil {
			t.Errorf("check(%v) accepted", bad)
		}
	}
	if err := s.check(10); err != nil {
		t.Fatalf("check(%v): %v", s, err)
	}
}

func TestPieces(t *testing.T) {
	got := pieces([]span{{0, 10}, {20, 23}}, 4)
	want := []span{{0, 4}, {4, 8}, {8, 10}, {20, 23}}
	if !slices.Equal(got, want) {
		t.Fatalf("pieces = %v, want %v", got, want)
	}
}

// Whatever order spans arrive in, the set stays well-formed and covers
// exactly the union: a byte map is the reference.
func FuzzSpanSet(f *testing.F) {
	f.Add(uint64(1), uint8(10))
	f.Add(uint64(99), uint8(200))
	f.Fuzz(func(t *testing.T, seed uint64, n uint8) {
		const size = 300
		r := rand.New(rand.NewPCG(seed, 7))
		var s spanSet
		var have [size]bool
		for range n {
			a := r.Int64N(size)
			b := a + r.Int64N(40)
			b = min(b, size)
			s = s.add(span{a, b})
			for i := a; i < b; i++ {
				have[i] = true
			}
		}
		if err := s.check(size); err != nil {
			t.Fatal(err)
		}
		var covered int64
		for i := range size {
			if have[i] {
				covered++
			}
		}
		if s.total() != covered || s.total()+spanSet(s.missing(size)).total() != size {
			t.Fatalf("set %v: total %d, covered %d", s, s.total(), covered)
		}
		for _, g := range s.missing(size) {
			for i := g.Start; i < g.End; i++ {
				if have[i] {
					t.Fatalf("byte %d present but reported missing", i)
				}
			}
		}
	})
}
