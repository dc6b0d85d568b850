package stats

import "github.com/edgeproxy/edgeproxy/internal/byteranges"

// maxSpans bounds the disjoint spans one task keeps. Download managers
// leave a handful; only a client fetching thousands of separated ranges
// reaches it, and then further disjoint spans are not recorded: the task
// under-counts (and may never complete) rather than grow without bound or
// claim bytes it never delivered.
const maxSpans = 4096

// span is the half-open byte interval [Start, End).
type span = byteranges.Span

// spans is the set of distinct bytes of the file a task has delivered,
// however the requests overlapped, bounded at maxSpans spans. The zero
// value is the empty set; the owner locks.
type spans struct{ set byteranges.Set }

// insert adds [off, end) to the set and reports whether the set changed.
// Empty or inverted intervals are ignored, and the part below 0 dropped.
func (x *spans) insert(off, end int64) bool {
	return x.set.AddBounded(span{Start: off, End: end}, maxSpans)
}

// total is the number of distinct bytes in the set.
func (x *spans) total() int64 { return x.set.Total() }
