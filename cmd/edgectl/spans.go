package main

import (
	"errors"
	"fmt"
	"slices"
)

// span is the half-open byte range [Start, End) of a file.
type span struct{ Start, End int64 }

func (s span) len() int64 { return s.End - s.Start }

// spanSet is the bookkeeping of which bytes of a download are on disk:
// sorted, merged, non-overlapping, non-empty spans. It is a plain value with
// no I/O, so the resume logic can be tested without files or servers.
type spanSet []span

// add returns the set with sp added, merging touching and overlapping spans.
func (s spanSet) add(sp span) spanSet {
	if sp.len() <= 0 {
		return s
	}
	// First span that ends at or after sp.Start (touching merges).
	i, _ := slices.BinarySearchFunc(s, sp.Start, func(e span, start int64) int {
		if e.End < start {
			return -1
		}
		return 1
	})
	j := i
	for j < len(s) && s[j].Start <= sp.End {
		sp.Start = min(sp.Start, s[j].Start)
		sp.End = max(sp.End, s[j].End)
		j++
	}
	return slices.Replace(s, i, j, sp)
}

// total is the number of bytes the set covers.
func (s spanSet) total() int64 {
	var n int64
	for _, sp := range s {
		n += sp.len()
	}
	return n
}

// missing returns the gaps of the set in [0, size), in order.
func (s spanSet) missing(size int64) []span {
	var out []span
	var at int64
	for _, sp := range s {
		if sp.Start >= size {
			break
		}
		if sp.Start > at {
			out = append(out, span{at, sp.Start})
		}
		at = max(at, sp.End)
	}
	if at < size {
		out = append(out, span{at, size})
	}
	return out
}

var errBadSpans = errors.New("spans not sorted, merged and inside the file")

// check reports whether s is a well-formed set inside [0, size): a state
// file read from disk is not trusted to be.
func (s spanSet) check(size int64) error {
	var prevEnd int64 = -1
	for _, sp := range s {
		if sp.Start < 0 || sp.End > size || sp.len() <= 0 || sp.Start <= prevEnd {
			return fmt.Errorf("%w: [%d,%d)", errBadSpans, sp.Start, sp.End)
		}
		prevEnd = sp.End
	}
	return nil
}

// pieces splits the gaps into pieces of at most n bytes, in file order: the
// unit of work a connection takes from the queue.
func pieces(gaps []span, n int64) []span {
	var out []span
	for _, g := range gaps {
		for at := g.Start; at < g.End; at += n {
			out = append(out, span{at, min(at+n, g.End)})
		}
	}
	return out
}
