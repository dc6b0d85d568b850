// Package policy holds the disk tier's replacement policy as plain data
// structures without I/O: a frequency sketch and an index that decides which
// chunks deserve a disk write and which leave first. The cache wires them to
// files; the trace simulator (cache/policysim) runs the very same code over
// generated traces, so the figures in docs/design.md measure what ships.
package policy

import (
	"math/bits"
	"sync/atomic"
)

// Sketch estimates how often each key was seen recently: a count-min sketch
// of 4-bit counters (TinyLFU, Einziger et al. 2017) whose counters are all
// halved after every period of additions (SetSample), so old popularity
// fades and a new hot set can take over.
//
// It is safe for concurrent use without locks: Add is one load and at most
// one compare-and-swap, cheap enough for the cache-hit path, and allocates
// nothing. Under concurrency an addition may occasionally be lost to a
// halving in progress; the estimate is approximate by design.
//
// Memory is fixed at construction: 8 bytes per expected item (16 counters
// in each 64-bit word, the four counters of a key in one word), whatever
// traffic it sees.
type Sketch struct {
	table     []atomic.Uint64
	mask      uint64
	additions atomic.Int64
	sample    atomic.Int64
	halving   atomic.Bool
}

// maxCount is the largest value a 4-bit counter holds; TinyLFU needs no more
// because only the order of small counts matters for admission.
const maxCount = 15

// NewSketch returns a sketch sized for about items distinct keys (at least
// 64, at most 1<<26), halving every 10*items additions until SetSample says
// otherwise.
func NewSketch(items int) *Sketch {
	items = min(max(items, 64), 1<<26)
	n := 1 << bits.Len(uint(items-1)) // next power of two, at least 64
	s := &Sketch{table: make([]atomic.Uint64, n), mask: uint64(n - 1)}
	s.sample.Store(10 * int64(items))
	return s
}

// SetSample sets how many additions pass between two halvings. TinyLFU
// uses ten times the number of items the cache holds: long enough to tell a
// hot key from a lucky one, short enough to forget yesterday's hot set
// within a few cache turnovers. The period is never shorter than a quarter
// of the table's words, so halving (one sequential sweep of the table)
// costs at most four words per addition, however few items the cache
// holds yet.
func (s *Sketch) SetSample(n int64) { s.sample.Store(max(n, int64(len(s.table)/4))) }

// word returns the word that holds all four counters of key h, and their
// bit shifts: counter i is one of the four nibbles 4i..4i+3, so the four
// never share a nibble. Keeping a key's counters in one word (Caffeine
// keeps them in one cache line) makes Add one load and one compare-and-swap,
// which is most of its cost on the cache-hit path; against four independent
// rows the simulator showed no loss of hit ratio.
func (s *Sketch) word(h uint64) (uint64, [4]uint) {
	x := h * 0x9e3779b97f4a7c15
	x ^= x >> 29
	var sh [4]uint
	for i := range 4 {
		sh[i] = uint(4*i+int(x>>(56+2*i)&3)) << 2
	}
	return x & s.mask, sh
}

// Estimate returns how often h was seen, 0 to 15, never less than the true
// count since the last halvings (count-min only overestimates).
func (s *Sketch) Estimate(h uint64) int {
	w, sh := s.word(h)
	return int(minNibble(s.table[w].Load(), sh))
}

func minNibble(v uint64, sh [4]uint) uint64 {
	return min(v>>sh[0]&0xf, v>>sh[1]&0xf, v>>sh[2]&0xf, v>>sh[3]&0xf)
}

// Add records one sighting of h. It raises only the counters that hold the
// minimum (conservative update), which keeps estimates of rare keys low when
// hot keys share their counters. Additions to a saturated key change
// nothing and, as in Caffeine's sketch, do not count towards the halving
// period; that also keeps the hottest keys, the cache-hit path, off the
// shared additions counter.
func (s *Sketch) Add(h uint64) {
	w, sh := s.word(h)
	for {
		old := s.table[w].Load()
		m := minNibble(old, sh)
		if m == maxCount {
			return
		}
		v := old
		for _, b := range sh {
			if old>>b&0xf == m {
				v += 1 << b
			}
		}
		if s.table[w].CompareAndSwap(old, v) {
			break
		}
	}
	if n := s.additions.Add(1); n >= s.sample.Load() {
		s.Halve()
	}
}

// Halve divides every counter by two now, unless another halving is in
// progress. Add calls it once per period; an owner that knows the counts
// are stale (a shift of popularity) calls it sooner.
func (s *Sketch) Halve() {
	if !s.halving.CompareAndSwap(false, true) {
		return
	}
	s.halve()
	s.additions.Add(-s.additions.Load() / 2)
	s.halving.Store(false)
}

// halve divides every counter by two (the TinyLFU reset). It loads and
// stores each word rather than compare-and-swapping it, which keeps the
// sweep as fast as memory; an Add that lands between the load and the
// store of its word is lost, which the estimate tolerates.
func (s *Sketch) halve() {
	for i := range s.table {
		s.table[i].Store(s.table[i].Load() >> 1 & 0x7777777777777777)
	}
}

// Clear forgets everything.
func (s *Sketch) Clear() {
	for i := range s.table {
		s.table[i].Store(0)
	}
	s.additions.Store(0)
}
