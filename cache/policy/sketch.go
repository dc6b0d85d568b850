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
// halved after every Sample additions, so old popularity fades and a new
// hot set can take over.
//
// It is safe for concurrent use without locks: Add is a few atomic
// compare-and-swaps, cheap enough for the cache-hit path, and allocates
// nothing. Under concurrency an addition may occasionally be lost to a
// halving in progress; the estimate is approximate by design.
//
// Memory is fixed at construction: 8 bytes per expected item (16 counters
// in each 64-bit word, four counters per key), whatever traffic it sees.
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
	n := 1 << bits.Len(uint(items-1)) // next power of two
	s := &Sketch{table: make([]atomic.Uint64, n), mask: uint64(n - 1)}
	s.sample.Store(10 * int64(items))
	return s
}

// SetSample sets how many additions pass between two halvings. TinyLFU
// uses ten times the number of items the cache holds: long enough to tell a
// hot key from a lucky one, short enough to forget yesterday's hot set
// within a few cache turnovers.
func (s *Sketch) SetSample(n int64) { s.sample.Store(max(n, 16)) }

// seeds rehash a key into four independent counter positions.
var seeds = [4]uint64{0xc3a5c85c97cb3127, 0xb492b66fbe98f273, 0x9ae16a3b2f90404f, 0xcbf29ce484222325}

// slot returns the word index and bit shift of counter i of key h.
func (s *Sketch) slot(h uint64, i int) (uint64, uint) {
	x := (h + seeds[i]) * seeds[(i+1)&3]
	x ^= x >> 29
	return x & s.mask, uint(x>>60) << 2
}

// Estimate returns how often h was seen, 0 to 15, never less than the true
// count since the last halvings (count-min only overestimates).
func (s *Sketch) Estimate(h uint64) int {
	m := maxCount
	for i := range 4 {
		w, sh := s.slot(h, i)
		m = min(m, int(s.table[w].Load()>>sh&0xf))
	}
	return m
}

// Add records one sighting of h. It raises only the counters that hold the
// minimum (conservative update), which keeps estimates of rare keys low when
// hot keys share their counters.
func (s *Sketch) Add(h uint64) {
	var ws [4]uint64
	var shs [4]uint
	m := maxCount
	for i := range 4 {
		ws[i], shs[i] = s.slot(h, i)
		m = min(m, int(s.table[ws[i]].Load()>>shs[i]&0xf))
	}
	if m < maxCount {
		for i := range 4 {
			s.incrementIf(ws[i], shs[i], uint64(m))
		}
	}
	if n := s.additions.Add(1); n >= s.sample.Load() && s.halving.CompareAndSwap(false, true) {
		s.halve()
		s.additions.Add(-n / 2)
		s.halving.Store(false)
	}
}

// incrementIf raises the counter at (w, sh) by one if it still holds m.
func (s *Sketch) incrementIf(w uint64, sh uint, m uint64) {
	for {
		old := s.table[w].Load()
		if old>>sh&0xf != m {
			return
		}
		if s.table[w].CompareAndSwap(old, old+1<<sh) {
			return
		}
	}
}

// halve divides every counter by two (the TinyLFU reset).
func (s *Sketch) halve() {
	for i := range s.table {
		for {
			old := s.table[i].Load()
			if s.table[i].CompareAndSwap(old, old>>1&0x7777777777777777) {
				break
			}
		}
	}
}

// Clear forgets everything.
func (s *Sketch) Clear() {
	for i := range s.table {
		s.table[i].Store(0)
	}
	s.additions.Store(0)
}
