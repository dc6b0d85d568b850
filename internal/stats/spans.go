package stats

import "sort"

// span is the half-open byte interval [off, end).
type span struct{ off, end int64 }

// maxSpans bounds the disjoint spans one task keeps. Download managers
// leave a handful; only a client fetching thousands of separated ranges
// reaches it, and then further disjoint spans are not recorded: the task
// under-counts (and may never complete) rather than grow without bound or
// claim bytes it never delivered.
const maxSpans = 4096

// spans is a set of bytes kept as sorted, disjoint, non-adjacent
// intervals, with their total size. It answers "how many distinct bytes of
// the file has this task delivered" however the requests overlapped. It is
// a plain value with no I/O or locking (the owner locks), like rclone's
// lib/ranges. The zero value is the empty set.
type spans struct {
	s    []span
	size int64
}

// insert adds [off, end) to the set, merging it with every span it
// overlaps or touches, and reports whether the set changed. Empty or
// inverted intervals are ignored.
func (x *spans) insert(off, end int64) bool {
	if off < 0 {
		off = 0
	}
	if end <= off {
		return false
	}
	// i: first span that ends at or after off (could touch or overlap).
	i := sort.Search(len(x.s), func(k int) bool { return x.s[k].end >= off })
	// j: first span that starts after end (cannot touch).
	j := i + sort.Search(len(x.s)-i, func(k int) bool { return x.s[i+k].off > end })
	if i == j { // disjoint from all: insert at i
		if len(x.s) >= maxSpans {
			return false
		}
		x.s = append(x.s, span{})
		copy(x.s[i+1:], x.s[i:])
		x.s[i] = span{off, end}
		x.size += end - off
		return true
	}
	merged := span{min(off, x.s[i].off), max(end, x.s[j-1].end)}
	var removed int64
	for _, sp := range x.s[i:j] {
		removed += sp.end - sp.off
	}
	if j-i == 1 && merged == x.s[i] {
		return false // already covered
	}
	x.s[i] = merged
	x.s = append(x.s[:i+1], x.s[j:]...)
	x.size += (merged.end - merged.off) - removed
	return true
}

// total is the number of distinct bytes in the set.
func (x *spans) total() int64 { return x.size }

// covers reports whether [off, end) lies entirely inside the set.
func (x *spans) covers(off, end int64) bool {
	if end <= off {
		return true
	}
	i := sort.Search(len(x.s), func(k int) bool { return x.s[k].end > off })
	return i < len(x.s) && x.s[i].off <= off && x.s[i].end >= end
}
