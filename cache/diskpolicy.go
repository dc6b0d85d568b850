package cache

import (
	"github.com/edgeproxy/edgeproxy/cache/policy"
)

// The disk tier's replacement policy (Config.Policy; docs/design.md has the
// measurements behind it).
//
// Under "tinylfu" the two tiers together form W-TinyLFU: the memory tier
// takes every fill and plays the admission window, and a chunk is written to
// disk only if a frequency sketch says it is requested more often than the
// disk chunks it would evict. On disk, admitted chunks live in a segmented
// LRU (cache/policy.Index). So a one-off scan costs origin bytes but neither
// disk writes nor the hot set, and most chunks requested once are never
// written at all (Stats.DiskRejected counts the writes avoided).
//
// The sketch is fed once per chunk a reader reads, from whichever tier
// serves it: memory hits count too, or the disk would forget chunks whose
// hits the memory tier absorbs. Feeding it is a few atomic operations and
// allocates nothing. The sketch holds 4-bit counters, 8 bytes per expected
// chunk, sized once from DiskBytes, so frequency state is bounded whatever
// the traffic.
//
// A wholesale shift of popularity would leave yesterday's hot chunks on
// disk with counts no new chunk can beat until halvings wear them down.
// On every fill the index is told the reads that reached the disk tier and
// the misses so far (observeLocked); when the hit ratio collapses it forgets the counts and
// the protection of what it holds (policy.Index.Observe, Stats.DiskShifts).
//
// After a restart the sketch is rebuilt from the on-disk index rather than
// persisted: every chunk found by the start-up scan counts as seen once. A
// chunk on disk was admitted because it was popular, so this puts a newly
// requested chunk on a par with the incumbents (ties keep the incumbent):
// a restarted node resists scans from its first request instead of behaving
// like LRU until its counters fill, and needs no state file beside the
// chunks whose consistency after a crash would need its own checks. What
// it loses is the ranking among the chunks on disk, which the traffic
// rebuilds within a halving period (16 reads per chunk held).

// observeLocked tells the index the reads that reached the disk tier (those
// the memory tier missed) and the misses so far, so it can tell a shift of
// popularity from its hit ratio (policy.Index.Observe). Memory hits are
// left out: after a shift the memory tier still serves the new hot chunks'
// repeated reads, and how many depends on ristretto's admission, which
// varies with scheduling (its access buffers are dropped under load); with
// them counted, the collapse the watch looks for fell to 0.156 of reads in
// one run and 0.108 in the next against a threshold of 0.155, so the
// shift was missed in about a third of the runs under the race detector.
// It runs on every fill, not on the hit path: the counters it reads are
// the ones the readers keep anyway.
func (d *diskTier) observeLocked() {
	st := &d.c.st
	misses := st.misses.Load()
	before := d.index.Shifts()
	d.index.Observe(st.diskHits.Load()+misses, misses)
	if d.index.Shifts() != before {
		d.c.st.diskShifts.Add(1)
	}
}

// diskSketchItems sizes the sketch: one counter word per 64 KiB of budget
// (a 10 GiB disk gets 160k, rounded up to 256k words: 2 MiB), between 1k
// and 4M words.
func diskSketchItems(budget int64) int {
	return int(min(max(budget/(64<<10), 1<<10), 1<<22))
}

// newDiskIndex builds the index of the configured policy for d; under
// tinylfu it also creates d.sketch.
func (d *diskTier) newDiskIndex(kind policy.Kind) (*policy.Index[diskKey], error) {
	if kind == policy.TinyLFU {
		d.sketch = policy.NewSketch(diskSketchItems(d.budget))
	}
	return policy.New(kind, max(d.budget, 1), d.sketch, diskKey.sketchKey, d.onEvict)
}

// sketchKey is the chunk's key in the sketch: the memory tier's key of the
// same chunk (memKey), so both are computed the same way.
func (k diskKey) sketchKey() uint64 {
	return fmix64(k.kh ^ fmix64(k.eh+uint64(k.idx)*0x9e3779b97f4a7c15))
}

// seen records that a reader read chunk idx of id. It is safe on a nil
// tier and does nothing under the lru policy.
func (d *diskTier) seen(id *objectID, idx int64) {
	if d == nil || d.sketch == nil {
		return
	}
	d.sketch.Add(memKey(id, idx))
}

// seed counts a chunk found on disk at start-up as seen once (see above).
func (d *diskTier) seed(k diskKey) {
	if d.sketch != nil {
		d.sketch.Add(k.sketchKey())
	}
}

// admit decides whether a freshly filled chunk is worth a disk write.
// ahead marks a chunk fetched ahead of its reader (the rest of a readahead
// window), whose read is not counted yet: it gets that access in advance.
func (d *diskTier) admit(ch *chunk, ahead bool) bool {
	if d.sketch == nil {
		return true
	}
	k := diskKey{ch.id.kh, ch.id.eh, ch.idx}
	// The file size up to the header's exact layout: close enough to tell
	// whether there is room.
	size := int64(fileHeaderLen + len(ch.id.bucket) + len(ch.id.key) + len(ch.id.etag) + len(ch.data))
	bonus := 0
	if ahead {
		bonus = 1
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.observeLocked()
	if d.index.Contains(k) {
		return true // the writer finds it there and skips it
	}
	return d.index.Admit(k, d.used+d.reserved+size-d.budget, bonus)
}
