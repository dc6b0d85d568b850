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
// shift. A window whose hit ratio falls below 40% of the baseline (an
// exponential average of the windows before) means the entries held are
// no longer the ones read: a shift, not a scan (a one-off scan through the
// cache, interleaved with the hot set, only halves the hit ratio), and
// not noise. Then the sketch forgets its counts and the protected segment
// is demoted to probation, so the stale entries leave first and any
// candidate read since beats them; the new baseline is the fallen ratio.
type shiftWatch struct {
	reads, misses int64   // the counts at the start of the window
	base          float64 // baseline hit ratio; valid once started
	started       bool
	shifts        int64
}

// Observe tells the index the owner's cumulative counts of reads (every
// access, from any tier, as fed to the sketch) and of misses (reads that
// went to the origin). The owner calls it on every miss, before Admit; a
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
	h := min(max(1-float64(misses-w.misses)/float64(n), 0), 1)
	w.reads, w.misses = reads, misses
	switch {
	case !w.started:
		w.base, w.started = h, true
	case h < w.base/shiftFall:
		for range shiftHalvings {
			ix.sketch.Halve()
		}
		ix.demoteAll()
		w.shifts++
		w.base = h
	default:
		w.base += (h - w.base) / 8
	}
}

// Shifts reports how many shifts of popularity Observe detected.
func (ix *Index[K]) Shifts() int64 { return ix.shift.shifts }

// shiftFall is the fall of the hit ratio, as a divisor of the baseline,
// that counts as a shift: below 40% of the baseline. A one-off scan read
// every other request (issue 15's scan trace) takes it to 50%.
const shiftFall = 2.5

// shiftHalvings is how often the sketch is halved on a shift: four clear
// 4-bit counters, the same as forgetting them. Fewer recovered more
// slowly on the simulator (docs/design.md).
const shiftHalvings = 4

// shiftHits is how many hits the baseline must expect in a window before
// its fall is believed: at 32 expected, 12 or fewer seen (the 40% line)
// has a Poisson probability of about 1e-4.
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
