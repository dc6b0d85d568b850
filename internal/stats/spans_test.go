package stats

import (
	"fmt"
	"testing"
)

// TestSpansInsert: a task counts each byte it delivered once, however
// download managers split, retry and resume their ranges.
func TestSpansInsert(t *testing.T) {
	type iv = [2]int64
	tests := []struct {
		name    string
		inserts []iv
		want    []iv
		size    int64
	}{
		// The set's own cases are byteranges' (TestAdd); these are the
		// shapes of a task's deliveries.
		{"inverted", []iv{{9, 3}}, nil, 0},
		{"negative start clamps", []iv{{-5, 3}}, []iv{{0, 3}}, 3},
		{"parallel ranges out of order", []iv{{20, 30}, {0, 10}, {40, 50}}, []iv{{0, 10}, {20, 30}, {40, 50}}, 30},
		{"retry of a range", []iv{{3, 7}, {3, 7}}, []iv{{3, 7}}, 4},
		{"eight ranges", []iv{{7, 8}, {0, 1}, {3, 4}, {1, 2}, {6, 7}, {2, 3}, {5, 6}, {4, 5}}, []iv{{0, 8}}, 8},
		{"resume overlap", []iv{{0, 600}, {400, 700}, {700, 1000}, {0, 1000}}, []iv{{0, 1000}}, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s spans
			for _, in := range tt.inserts {
				s.insert(in[0], in[1])
			}
			if fmt.Sprint(pairs(&s)) != fmt.Sprint(tt.want) || s.total() != tt.size {
				t.Fatalf("got %v size %d, want %v size %d", pairs(&s), s.total(), tt.want, tt.size)
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

func TestSpansBounded(t *testing.T) {
	var s spans
	for i := range int64(maxSpans + 100) {
		s.insert(2*i, 2*i+1)
	}
	if s.set.Len() != maxSpans || s.total() != maxSpans {
		t.Fatalf("len %d size %d, want both %d", s.set.Len(), s.total(), maxSpans)
	}
	// Merging into existing spans still works at the bound.
	s.insert(1, 2)
	if s.set.Len() != maxSpans-1 || s.total() != maxSpans+1 {
		t.Fatalf("after bridging: len %d size %d", s.set.Len(), s.total())
	}
}

// pairs lists the set's spans as [start, end) pairs.
func pairs(x *spans) [][2]int64 {
	var out [][2]int64
	for _, sp := range x.set.Spans() {
		out = append(out, [2]int64{sp.Start, sp.End})
	}
	return out
}
