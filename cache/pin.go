package cache

// Chunks that readers hold after the memory tier let them go.
//
// A memory hit hands the chunk's bytes to the socket without a copy, so a
// reader keeps the whole chunk alive for as long as its client takes to
// accept them: a 1 MiB chunk at 10 KiB/s, for 100 s. Ristretto may evict
// the chunk meanwhile, and its bytes then live outside the tier's budget.
// With enough slow clients, each reading a chunk the tier has since
// replaced, memory grew with their number: 400 clients at 10 KiB/s over a
// 64 MiB tier kept about 70 MiB of evicted chunks alive (issue 10).
//
// So a reader pins the chunk it serves from (memory tier or fill) until it
// moves on, and a chunk that leaves the tier while pinned (ristretto's
// OnExit: eviction, rejection, replacement, deletion) is charged to the
// tier until its last reader lets go: ristretto's budget is MemoryBytes
// minus those bytes. Chunk bytes reachable from the tier or from readers of
// it therefore stay within MemoryBytes, give or take the victims of one
// admission (the next admission evicts for them). Once pinned bytes reach
// MemoryBytes the tier admits, and so evicts, nothing more. That is the
// price: under many slow clients the tier shrinks to the chunks they are
// reading, instead of the process growing by a chunk per client.
//
// The exception is a fill's chunk that the tier declined while readers were
// waiting for it: each of those readers still needs those bytes, so such a
// chunk is charged too but can take the pinned bytes above MemoryBytes; the
// fills that make them are bounded by FillMemory.
//
// Chunks smaller than minPinned are not pinned: a slow reader holding one
// holds less than its connection's write buffer, and the hottest hits
// (small objects, read on every core) do not pay two atomic operations on
// a shared word.
//
// A chunk's state is one atomic word, so that pinning, unpinning and the
// tier letting go may race without a lock: bit 0 is set once the tier let
// go (pinExited), the rest counts pins in units of pinOne. The chunk is
// charged exactly while the bit is set and the count is not zero; each
// operation sees, from the value it changed, whether it made that start or
// stop.
const (
	pinExited = 1
	pinOne    = 2
)

// minPinned is the smallest chunk a reader pins.
const minPinned = 64 << 10

// pin records that a reader serves from ch until it calls unpin.
func (c *Cache) pin(ch *chunk) {
	if ch.pins.Add(pinOne) == pinOne|pinExited {
		c.chargePinned(int64(len(ch.data)))
	}
}

// unpin ends a pin taken by pin.
func (c *Cache) unpin(ch *chunk) {
	if ch.pins.Add(-pinOne) == pinExited {
		c.chargePinned(-int64(len(ch.data)))
	}
}

// exited is ristretto's OnExit: the tier let go of ch (or never took it).
// Ristretto calls it with a nil chunk when Del finds nothing.
func (c *Cache) exited(ch *chunk) {
	if ch == nil {
		return
	}
	if old := ch.pins.Or(pinExited); old&pinExited == 0 && old >= pinOne {
		c.chargePinned(int64(len(ch.data)))
	}
}

// chargePinned adds n to the bytes of pinned chunks outside the tier and
// gives ristretto what is left of the budget. The lock keeps the budget
// updates in the order of the counts they were computed from.
func (c *Cache) chargePinned(n int64) {
	c.pinMu.Lock()
	defer c.pinMu.Unlock()
	p := c.pinned.Add(n)
	if p < 0 {
		panic("bug: cache: pinned bytes below zero")
	}
	c.mem.UpdateMaxCost(max(c.cfg.MemoryBytes-p, 0))
}
