package policy

// shiftWatch notices a wholesale change of popularity by the fall of the
// hit ratio it causes, so the index can age its sketch at once instead of
// waiting for the next periodic halving.
//
// TinyLFU's weakness is the shift: yesterday's hot entries keep their
// counts, and a new entry needs more reads than they had to displace them,
// until halvings wear those counts down (16 reads per entry held each).
// Caffeine answers with its hill climber (Einziger et al., "Adaptive
// Software Cache Management", Middleware 2018), which watches the hit
// ratio per sample and, when it moves by more than 5%, restarts its
// search; here the window it would resize is the memory tier, which
// ristretto does not let us resize, so the same signal drives aging
// instead. The hit ratio is sampled over windows of one cache's worth of
// reads (entries held, at least 64), lengthened until the baseline
// expects shiftHits hits so that a window of bad luck is not taken for a
// shift. A window whose hit ratio falls below half the baseline (an
// exponential average of the windows before) while the hit ratio of
// entries read before (Admit counts the misses on those) falls below 65%
// of its own, or whose hit ratio collapses below a quarter of the
// baseline whatever the second, means the entries held are no longer the
// ones read: a shift, not a scan (a one-off scan interleaved with the
// traffic halves the first but leaves the second), and not noise. The
// collapse alone is needed behind a memory tier, which serves the new hot
// entries' repeated reads and so hides them from the second ratio. Then the sketch forgets its counts and the protected segment
// is demoted to probation, so the stale entries leave first and any
// candidate read since beats them; the new baseline is the fallen ratio.
type shiftWatch struct {
	reads, misses int64   // the counts at the start of the window
	repeats       int64   // misses in the window of entries seen before
	base          float64 // baseline hit ratio; valid once started
	repeatBase    float64 // baseline hit ratio of entries seen before
	started       bool
	shifts        int64
}

// Observe tells the index the owner's cumulative counts of reads (every
// access that reached the tier the index orders: behind a memory tier, the
// reads it missed) and of misses (reads that went to the origin). The owner calls it on every miss, before Admit; a
// shift detected ages the sketch (see shiftWatch). It does nothing under
// LRU.
func (ix *Index[K]) Observe(reads, misses int64) {
	if ix.sketch == nil {
		return
	}
	w := &ix.shift
	n := reads - w.reads
	window := max(int64(len(ix.items)), 64)
	if w.started && w.base > 0 {
		window = max(window, int64(shiftHits/w.base))
	}
	if n < window {
		return
	}
	hits := max(n-(misses-w.misses), 0)
	h := float64(hits) / float64(n)
	r := 1.0 // hit ratio of reads of entries seen before
	if d := hits + w.repeats; d > 0 {
		r = float64(hits) / float64(d)
	}
	w.reads, w.misses, w.repeats = reads, misses, 0
	switch {
	case !w.started:
		w.base, w.repeatBase, w.started = h, r, true
	case h < w.base/shiftFall && r < w.repeatBase*shiftRepeatFall || h < w.base/4:
		for range shiftHalvings {
			ix.sketch.Halve()
		}
		ix.demoteAll()
		w.shifts++
		w.base, w.repeatBase = h, r
	default:
		w.base += (h - w.base) / 8
		w.repeatBase += (r - w.repeatBase) / 8
	}
}

// Shifts reports how many shifts of popularity Observe detected.
func (ix *Index[K]) Shifts() int64 { return ix.shift.shifts }

// shiftFall is the fall of the hit ratio, as a divisor of the baseline,
// that counts as a shift: below half the baseline. A one-off scan read
// every other request (issue 15's scan trace) takes it to about half, and
// lower in some windows when the traffic beside it is not a uniform hot
// set, hence the second condition (shiftRepeatFall).
const shiftFall = 2

// shiftRepeatFall is the second condition of a shift: the hit ratio of
// reads of entries seen before (misses on first reads left out) falls
// below 65% of its baseline. A scan, all first reads, leaves it where it
// was however much it lowers the plain hit ratio; after a shift it falls
// to a third or so, since the new hot entries are read again and again
// before they are admitted.
const shiftRepeatFall = 0.65

// shiftHalvings is how often the sketch is halved on a shift: four clear
// 4-bit counters, the same as forgetting them. Fewer recovered more
// slowly on the simulator (docs/design.md).
const shiftHalvings = 4

// shiftHits is how many hits the baseline must expect in a window before
// its fall is believed: at 32 expected, 16 or fewer seen has a Poisson
// probability of about 2e-3, and the second condition must hold too.
const shiftHits = 32

// demoteAll moves every protected entry to probation, oldest first, so
// that they leave in their recency order: their protection was earned by
// reads of a popularity that no longer holds.
func (ix *Index[K]) demoteAll() {
	for e := ix.protected.back(); e != nil; e = ix.protected.back() {
		ix.protected.remove(e)
		ix.protectedBytes -= e.size
		e.protected = false
		ix.probation.pushFront(e)
	}
}
