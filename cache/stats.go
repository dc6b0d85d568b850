package cache

import "sync/atomic"

// Stats is a snapshot of the cache's counters (monotonic since New) and
// sizes (current). Chunk counts are per chunk looked up by a reader, so one
// request for a 10-chunk range counts ten.
type Stats struct {
	// Hits counts chunks served from memory or disk; Misses counts chunks
	// that had to come from the origin (own fill or a joined one).
	Hits, Misses int64
	// MemoryHits and DiskHits split Hits by tier.
	MemoryHits, DiskHits int64
	// BytesFromMemory, BytesFromDisk and BytesFromOrigin count bytes
	// delivered to readers by where their chunk came from.
	BytesFromMemory, BytesFromDisk, BytesFromOrigin int64
	// OriginBytes counts bytes fetched from the origin by fills; with
	// coalescing it is less than BytesFromOrigin.
	OriginBytes int64
	// Fills counts origin requests for chunks (one per window); FillErrors
	// counts those that failed.
	Fills, FillErrors int64
	// CoalescedWaits counts chunk reads that waited for a fill already in
	// flight instead of starting one.
	CoalescedWaits int64
	// MetaHits counts Stat/Open lookups answered by the metadata tier;
	// MetaMisses those that asked (or waited for) the origin.
	MetaHits, MetaMisses int64
	// StaleServes counts readers opened with status STALE.
	StaleServes int64
	// DiskWrites counts chunk files written; DiskDropped chunks not written
	// because the write queue was full; DiskCorrupt chunk files that failed
	// verification and were deleted; DiskErrors other disk I/O failures.
	DiskWrites, DiskDropped, DiskCorrupt, DiskErrors int64
	// DiskRejected counts filled chunks the disk policy declined to write
	// (seen less often than what they would displace): the writes avoided.
	DiskRejected int64
	// DiskShifts counts shifts of popularity the disk policy detected (the
	// hit ratio collapsed), each of which made it forget its frequencies.
	DiskShifts int64
	// DiskOldFormat counts chunk files of an older format deleted at start
	// without being read.
	DiskOldFormat int64
	// Purged counts objects removed by Purge and PurgePrefix.
	Purged int64

	// MemoryBytes is the memory tier's current cost (chunk bytes plus
	// ristretto's per-item overhead); MemoryMaxBytes its budget.
	MemoryBytes, MemoryMaxBytes int64
	// MemoryPinnedBytes is the bytes of chunks that readers are still
	// sending after the memory tier let them go; they count against
	// MemoryMaxBytes, so the tier holds that much less (pin.go).
	MemoryPinnedBytes int64
	// DiskBytes and DiskChunks describe the disk tier's current contents.
	DiskBytes, DiskChunks int64
	// MetaEntries is the number of objects in the metadata tier.
	MetaEntries int64
	// InflightChunks is the number of chunks being fetched right now.
	InflightChunks int64
	// DiskReadBuffers is the number of read buffers (80 KiB each) readers
	// of the disk tier hold right now: at most one per reader in the middle
	// of delivering what it read, whatever the chunk size.
	DiskReadBuffers int64
	// DiskSendfileBytes and DiskMappedBytes count the bytes of
	// BytesFromDisk that left without entering a buffer of ours: by
	// sendfile(2), and by writev from the chunk file's mapping (diskfd.go).
	DiskSendfileBytes, DiskMappedBytes int64
	// DiskMappedNow is the bytes of chunk files mapped right now: files of
	// the open-file table (at most maxOpenChunks) that short ranges were
	// sent from, and files evicted from it that a reader still holds.
	// Their pages are page cache, counted in the process's RSS (RssFile)
	// once touched, clean and reclaimable.
	DiskMappedNow int64
	// DiskPromotions counts chunks read whole from the disk tier to be
	// offered to the memory tier (which may decline them).
	DiskPromotions int64
}

// counters are the cache's shared counters, all atomic.
type counters struct {
	memHits, diskHits, misses                        atomic.Int64
	bytesMem, bytesDisk, bytesOrigin                 atomic.Int64
	originBytes, fills, fillErrors, coalesced        atomic.Int64
	metaHits, metaMisses, staleServes                atomic.Int64
	diskWrites, diskDropped, diskCorrupt, diskErrors atomic.Int64
	diskRejected, diskShifts                         atomic.Int64
	diskOldFormat                                    atomic.Int64
	purged                                           atomic.Int64
	diskBufs                                         atomic.Int64 // gauge
	diskSendfile, diskMapped                         atomic.Int64
	diskMappedNow                                    atomic.Int64 // gauge
	diskPromotions                                   atomic.Int64
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	s := Stats{
		MemoryHits:        c.st.memHits.Load(),
		DiskHits:          c.st.diskHits.Load(),
		Misses:            c.st.misses.Load(),
		BytesFromMemory:   c.st.bytesMem.Load(),
		BytesFromDisk:     c.st.bytesDisk.Load(),
		BytesFromOrigin:   c.st.bytesOrigin.Load(),
		OriginBytes:       c.st.originBytes.Load(),
		Fills:             c.st.fills.Load(),
		FillErrors:        c.st.fillErrors.Load(),
		CoalescedWaits:    c.st.coalesced.Load(),
		MetaHits:          c.st.metaHits.Load(),
		MetaMisses:        c.st.metaMisses.Load(),
		StaleServes:       c.st.staleServes.Load(),
		DiskWrites:        c.st.diskWrites.Load(),
		DiskDropped:       c.st.diskDropped.Load(),
		DiskCorrupt:       c.st.diskCorrupt.Load(),
		DiskErrors:        c.st.diskErrors.Load(),
		DiskRejected:      c.st.diskRejected.Load(),
		DiskShifts:        c.st.diskShifts.Load(),
		DiskOldFormat:     c.st.diskOldFormat.Load(),
		DiskReadBuffers:   c.st.diskBufs.Load(),
		DiskSendfileBytes: c.st.diskSendfile.Load(),
		DiskMappedBytes:   c.st.diskMapped.Load(),
		DiskMappedNow:     c.st.diskMappedNow.Load(),
		DiskPromotions:    c.st.diskPromotions.Load(),
		Purged:            c.st.purged.Load(),
		MemoryMaxBytes:    c.cfg.MemoryBytes,
		MetaEntries:       int64(c.meta.len()),
		MemoryPinnedBytes: c.pinned.Load(),
	}
	s.Hits = s.MemoryHits + s.DiskHits
	s.MemoryBytes = c.mem.MaxCost() - c.mem.RemainingCost()
	if c.disk != nil {
		s.DiskBytes, s.DiskChunks = c.disk.size()
	}
	c.fmu.Lock()
	s.InflightChunks = int64(len(c.inflight))
	c.fmu.Unlock()
	return s
}
