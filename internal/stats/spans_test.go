package stats

import (
	"fmt"
	"testing"
)

func TestSpansInsert(t *testing.T) {
	type iv = [2]int64
	tests := []struct {
		name    string
		inserts []iv
		want    []span
		size    int64
	}{
		// Ignored input first.
		{"empty", []iv{{5, 5}}, nil, 0},
		{"inverted", []iv{{9, 3}}, nil, 0},
		{"negative start clamps", []iv{{-5, 3}}, []span{{0, 3}}, 3},
		// Then sets that grow.
		{"one", []iv{{0, 10}}, []span{{0, 10}}, 10},
		{"disjoint sorted", []iv{{20, 30}, {0, 10}, {40, 50}}, []span{{0, 10}, {20, 30}, {40, 50}}, 30},
		{"adjacent merge", []iv{{0, 10}, {10, 20}}, []span{{0, 20}}, 20},
		{"adjacent before", []iv{{10, 20}, {0, 10}}, []span{{0, 20}}, 20},
		{"overlap", []iv{{0, 10}, {5, 15}}, []span{{0, 15}}, 15},
		{"contained", []iv{{0, 100}, {10, 20}}, []span{{0, 100}}, 100},
		{"duplicate", []iv{{3, 7}, {3, 7}}, []span{{3, 7}}, 4},
		{"bridge two", []iv{{0, 10}, {20, 30}, {10, 20}}, []span{{0, 30}}, 30},
		{"swallow many", []iv{{1, 2}, {4, 5}, {7, 8}, {0, 9}}, []span{{0, 9}}, 9},
		{"partial bridge", []iv{{0, 10}, {20, 30}, {40, 50}, {25, 45}}, []span{{0, 10}, {20, 50}}, 40},
		{"eight ranges", []iv{{7, 8}, {0, 1}, {3, 4}, {1, 2}, {6, 7}, {2, 3}, {5, 6}, {4, 5}}, []span{{0, 8}}, 8},
		{"resume overlap", []iv{{0, 600}, {400, 700}, {700, 1000}, {0, 1000}}, []span{{0, 1000}}, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s spans
			for _, in := range tt.inserts {
				s.insert(in[0], in[1])
			}
			if fmt.Sprint(s.s) != fmt.Sprint(tt.want) || s.total() != tt.size {
				t.Fatalf("got %v size %d, want %v size %d", s.s, s.total(), tt.want, tt.size)
			}
		})
	}
}

func TestSpansInsertReportsChange(t *testing.T) {
	var s spans
	if !s.insert(0, 10) || s.insert(0, 10) || s.insert(2, 5) || !s.insert(5, 11) {
		t.Fatal("insert must report exactly the inserts that add bytes")
	}
}

func TestSpansCovers(t *testing.T) {
	var s spans
	s.insert(10, 20)
	s.insert(30, 40)
	for _, c := range []struct {
		off, end int64
		want     bool
	}{
		{0, 5, false}, {10, 20, true}, {12, 18, true}, {15, 25, false}, {20, 30, false},
		{30, 40, true}, {5, 5, true}, {39, 41, false},
	} {
		if got := s.covers(c.off, c.end); got != c.want {
			t.Errorf("covers(%d, %d) = %v, want %v", c.off, c.end, got, c.want)
		}
	}
}

func TestSpansBounded(t *testing.T) {
	var s spans
	for i := range int64(maxSpans + 100) {
		s.insert(2*i, 2*i+1)
	}
	if len(s.s) != maxSpans || s.total() != maxSpans {
		t.Fatalf("len %d size %d, want both %d", len(s.s), s.total(), maxSpans)
	}
	// Merging into existing spans still works at the bound.
	s.insert(1, 2)
	if len(s.s) != maxSpans-1 || s.total() != maxSpans+1 {
		t.Fatalf("after bridging: len %d size %d", len(s.s), s.total())
	}
}

// FuzzSpans inserts fuzzed intervals into a small space and compares the
// set with a bitmap: the spans must be sorted, disjoint, non-adjacent, and
// hold exactly the bytes inserted.
func FuzzSpans(f *testing.F) {
	f.Add([]byte{0, 10, 5, 15, 20, 30})
	f.Add([]byte{7, 8, 0, 1, 3, 4, 1, 2, 6, 7, 2, 3, 5, 6, 4, 5})
	f.Add([]byte{200, 100, 0, 255, 3, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		var s spans
		var bits [256]bool
		for i := 0; i+1 < len(data); i += 2 {
			off, end := int64(data[i]), int64(data[i+1])
			before := s.total()
			changed := s.insert(off, end)
			for b := off; b < end; b++ {
				bits[b] = true
			}
			if changed != (s.total() != before) {
				t.Fatalf("insert(%d, %d) reported changed=%v, size %d -> %d", off, end, changed, before, s.total())
			}
		}
		var want int64
		for _, b := range bits {
			if b {
				want++
			}
		}
		if s.total() != want {
			t.Fatalf("size %d, bitmap has %d (spans %v)", s.total(), want, s.s)
		}
		for i, sp := range s.s {
			if sp.off >= sp.end {
				t.Fatalf("empty span %v", sp)
			}
			if i > 0 && s.s[i-1].end >= sp.off {
				t.Fatalf("spans %v and %v overlap or touch", s.s[i-1], sp)
			}
			for b := sp.off; b < sp.end; b++ {
				if !bits[b] {
					t.Fatalf("span %v holds byte %d never inserted", sp, b)
				}
			}
			if !s.covers(sp.off, sp.end) {
				t.Fatalf("covers(%v) = false", sp)
			}
		}
	})
}
