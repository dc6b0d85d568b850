// Package byteranges keeps a set of byte offsets of one file as sorted,
// merged half-open spans: which bytes of a download are on disk, which
// distinct bytes a transfer delivered. It is a plain value with no I/O and
// no locking (the owner locks), like rclone's lib/ranges, so the logic that
// depends on it (resume, progress) is tested without files or servers.
package byteranges

import (
	"errors"
	"fmt"
	"slices"
	"sort"
)

// Span is the half-open byte range [Start, End) of a file.
type Span struct{ Start, End int64 }

// Len is the number of bytes in the span; zero or negative means empty.
func (s Span) Len() int64 { return s.End - s.Start }

// Set is a set of file offsets kept as sorted, disjoint, non-adjacent,
// non-empty spans, with the number of bytes they hold. Keeping spans merged
// means overlapping retries and resumes never count a byte twice. The zero
// value is the empty set; a Set must not be copied after use (Clone it), as
// copies share their spans.
type Set struct {
	spans []Span
	total int64
}

// Add adds sp to the set, merging it with every span it overlaps or
// touches, and reports whether the set gained bytes. Empty or inverted
// spans are ignored; offsets below zero are not file offsets and are
// dropped.
func (s *Set) Add(sp Span) bool { return s.AddBounded(sp, -1) }

// AddBounded is Add, except that a span disjoint from all others is not
// recorded when the set already holds maxSpans spans (negative: no bound).
// It bounds the memory of a set fed by a client: the set then under-counts
// rather than grows without bound or claims bytes never added. A span that
// merges with existing ones is always recorded, as it never adds a span.
func (s *Set) AddBounded(sp Span, maxSpans int) bool {
	sp.Start = max(sp.Start, 0)
	if sp.Len() <= 0 {
		return false
	}
	// i: first span that ends at or after sp.Start (touches or overlaps).
	i := sort.Search(len(s.spans), func(k int) bool { return s.spans[k].End >= sp.Start })
	// j: first span from i that starts after sp.End (cannot touch).
	j := i + sort.Search(len(s.spans)-i, func(k int) bool { return s.spans[i+k].Start > sp.End })
	if i == j {
		if maxSpans >= 0 && len(s.spans) >= maxSpans {
			return false
		}
		s.spans = slices.Insert(s.spans, i, sp)
		s.total += sp.Len()
		return true
	}
	merged := Span{min(sp.Start, s.spans[i].Start), max(sp.End, s.spans[j-1].End)}
	if j-i == 1 && merged == s.spans[i] {
		return false // already covered
	}
	var removed int64
	for _, old := range s.spans[i:j] {
		removed += old.Len()
	}
	s.spans = slices.Replace(s.spans, i, j, merged)
	s.total += merged.Len() - removed
	return true
}

// Total is the number of distinct bytes in the set.
func (s *Set) Total() int64 { return s.total }

// Len is the number of spans the set is kept as: its memory cost.
func (s *Set) Len() int { return len(s.spans) }

// Covers reports whether every byte of sp is in the set; an empty span is.
func (s *Set) Covers(sp Span) bool {
	if sp.Len() <= 0 {
		return true
	}
	i := sort.Search(len(s.spans), func(k int) bool { return s.spans[k].End > sp.Start })
	return i < len(s.spans) && s.spans[i].Start <= sp.Start && s.spans[i].End >= sp.End
}

// Spans returns a copy of the set's spans, in order.
func (s *Set) Spans() []Span { return slices.Clone(s.spans) }

// Clone returns an independent copy of the set.
func (s *Set) Clone() Set { return Set{spans: slices.Clone(s.spans), total: s.total} }

// Missing returns the gaps of the set in [0, size), in order: the bytes
// still to fetch of a file of that size.
func (s *Set) Missing(size int64) []Span {
	var out []Span
	var at int64
	for _, sp := range s.spans {
		if sp.Start >= size {
			break
		}
		if sp.Start > at {
			out = append(out, Span{at, sp.Start})
		}
		at = max(at, sp.End)
	}
	if at < size {
		out = append(out, Span{at, size})
	}
	return out
}

// ErrMalformed is the error Check wraps.
var ErrMalformed = errors.New("byteranges: spans not sorted, merged and inside the file")

// Check reports whether spans is what a Set of a file of size bytes holds:
// sorted, disjoint, non-adjacent, non-empty and inside [0, size). Spans read
// from outside (a state file) are not trusted to be: resuming from a wrong
// claim would splice garbage into the output.
func Check(spans []Span, size int64) error {
	var prevEnd int64 = -1
	for _, sp := range spans {
		if sp.Start < 0 || sp.End > size || sp.Len() <= 0 || sp.Start <= prevEnd {
			return fmt.Errorf("%w: [%d,%d)", ErrMalformed, sp.Start, sp.End)
		}
		prevEnd = sp.End
	}
	return nil
}
