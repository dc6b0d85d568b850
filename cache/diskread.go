package cache

import (
	"errors"
	"io/fs"
	"sync"
	"sync/atomic"
)

// Reading the disk tier.
//
// A disk hit takes the chunk file from the table of open files (diskfd.go),
// opening it and checking its header (identity, lengths, block table) if it
// is not there. Bytes of blocks verified within the trust window go to the
// client as a file span (sendfile through the proxy, or pread into the
// caller's buffer) without a buffer of ours. Other blocks are read and
// verified, only those the reader's range touches, as the client drains
// them: they go through a pooled diskReadSize buffer that the reader gives
// back as soon as they are delivered. No chunk-sized buffer is ever
// allocated for a client, so the memory a slow client holds is at most one
// read buffer, and none between writes or while it is sent a span.
//
// A block that fails verification deletes the file and the reader takes the
// rest of that chunk from memory or the origin, so damaged bytes are never
// served; blocks verified before it were correct and stay delivered.
//
// Promotion into the memory tier is the one place a disk hit reads a whole
// chunk, into a buffer that goes to the memory tier and nowhere else (the
// reader keeps serving from the file, so a slow client never pins it). It is
// gated by promoteGate because ristretto's TinyLFU declines most offers when
// the working set exceeds the memory tier, and each declined offer would
// have cost a chunk read and checksum for nothing.

// diskReadSize is the most a reader reads from a chunk file at once, and the
// size of its buffer: 64 KiB and one block, so that any 64 KiB range,
// aligned or not, is one pread and one write to the socket, and a
// whole-chunk read costs few syscalls.
const diskReadSize = 64<<10 + diskBlockSize

// A read must hold whole blocks.
var _ [diskReadSize % diskBlockSize]struct{} = [0]struct{}{}

// blockPool holds diskReadSize buffers for disk reads.
var blockPool = sync.Pool{New: func() any { return new([diskReadSize]byte) }}

// diskRead is a reader's hold on an open chunk file (diskfd.go). The zero
// value holds nothing.
type diskRead struct {
	oc      *openChunk
	idx     int64 // chunk index of oc
	buf     *[diskReadSize]byte
	counted bool // the chunk was counted as a disk hit
}

// acquireBuf makes sure r holds a block buffer.
func (r *diskRead) acquireBuf(c *Cache) {
	if r.buf == nil {
		r.buf = blockPool.Get().(*[diskReadSize]byte)
		c.st.diskBufs.Add(1)
	}
}

// releaseBuf gives the block buffer back; bytes borrowed from it must have
// been delivered.
func (r *diskRead) releaseBuf(c *Cache) {
	if r.buf != nil {
		blockPool.Put(r.buf)
		r.buf = nil
		c.st.diskBufs.Add(-1)
	}
}

// close lets go of the file and gives the buffer back.
func (r *diskRead) close(c *Cache) {
	r.releaseBuf(c)
	if r.oc != nil {
		r.oc.release()
		r.oc = nil
	}
	r.counted = false
}

// headerProbe is how much of a chunk file the first read fetches: enough
// for the header of any realistic identity and block table.
const headerProbe = 4 << 10

// open makes r (which holds nothing) hold chunk idx of id. A missing,
// unreadable or corrupt file is deleted from the index and reported as a
// miss, never served.
func (d *diskTier) open(id *objectID, idx int64, r *diskRead) bool {
	oc := d.acquireOpen(id, idx, &r.buf)
	if oc == nil {
		return false
	}
	r.oc, r.idx = oc, idx
	return true
}

// blocks reads and verifies the blocks of r's chunk that hold data bytes
// [from, to), or as many of them as fit diskReadSize, into r's buffer, and
// returns them with the data offset of their first byte.
func (d *diskTier) blocks(r *diskRead, from, to int64) ([]byte, int64, bool) {
	oc := r.oc
	if oc.bad.Load() {
		// Another reader found it corrupt and deleted it (the name may
		// hold a new, good file by now: leave that alone).
		return nil, 0, false
	}
	r.acquireBuf(d.c)
	start := from &^ (diskBlockSize - 1)
	end := min((to+diskBlockSize-1)&^(diskBlockSize-1), start+diskReadSize, oc.dataLen)
	b := r.buf[:end-start]
	if !d.readVerified(oc, b, start) {
		return nil, 0, false
	}
	return b, start, true
}

// readAll reads and verifies the whole chunk of r into a new buffer, for
// the memory tier.
func (d *diskTier) readAll(id *objectID, r *diskRead) *chunk {
	oc := r.oc
	data := make([]byte, oc.dataLen)
	if !d.readVerified(oc, data, 0) {
		return nil
	}
	return &chunk{id: id, idx: r.idx, data: data}
}

// readVerified fills b with oc's data bytes from start (a block boundary)
// and verifies them. A file that fails either is marked bad and deleted.
func (d *diskTier) readVerified(oc *openChunk, b []byte, start int64) bool {
	err := preadFull(oc.fd, b, oc.dataOff+start, oc.k.fileName())
	if err == nil {
		err = oc.verifyBlocks(start>>diskBlockShift, b, d.c.now().UnixNano())
	}
	if err != nil {
		oc.bad.Store(true)
		d.readFailed(oc.k, err)
		return false
	}
	return true
}

// readFailed deletes a chunk that could not be served, counting why.
func (d *diskTier) readFailed(k diskKey, err error) {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.drop(k) // deleted under us (eviction or by hand)
	case errors.Is(err, errCorrupt):
		d.corrupt(k, err)
	default:
		d.ioError("read", err)
		d.drop(k)
	}
}

// promoteSlots is the number of counters of promoteGate: chunks share them
// by hash, which only makes a cold chunk that shares a hot one's slot
// promoted early (TinyLFU still decides).
const promoteSlots = 1 << 12

// promoteGate lets a disk-tier chunk be copied into the memory tier once
// readers have taken twice its length from disk (in any ranges) within a
// recent window. Whole-chunk reads promote on the second read, 64 KiB ranges
// of a 1 MiB chunk on the 32nd, so the whole-chunk read a promotion costs
// is at most half the disk bytes served.
//
// "Recent" is measured against the memory tier: counters are halved every
// time the tier has served half its size (maybePromote), so a chunk's count
// settles near twice what it gets per period, and the gate opens for a
// chunk read from disk at least twice as often as the tier's average chunk
// is read from memory: one that would displace a colder one. Chunks as hot
// as the tier's own churn nothing. A tier that serves little (cold contents
// after the working set moved, or empty) ends a period only after
// diskPeriods periods' worth of disk reads (4 x MemoryBytes), so the chunks
// read now fill it at the pace the gate had before, and a crowd of slow
// clients each reading its own part of an object does not promote every
// chunk it touches. Two periods came before (docs/design.md, "Promotion by
// fair share"): 4 x MemoryBytes of disk reads alone, at which random ranges
// over a working set four times the tier were promoted again and again (8%
// of the CPU of a disk hit); then MemoryBytes of disk reads, which stopped
// that but left a tier full of chunks nobody read any more holding them for
// good when the new working set was as flat.
type promoteGate struct {
	slots [promoteSlots]atomic.Int64
	mark  atomic.Int64 // memory-tier bytes served at the last halving
	added atomic.Int64 // disk bytes counted since the last halving
}

// diskPeriods is how many periods' worth of disk bytes end a period when
// the memory tier serves less (see promoteGate).
const diskPeriods = 8

// add counts n bytes taken from disk from a chunk of length chunkLen and
// reports whether the chunk should be promoted now; served is the memory
// tier's bytes served so far. The counters halve each period of those, or
// each diskPeriods periods of disk bytes if that comes first.
func (g *promoteGate) add(key uint64, n, chunkLen, served, period int64) bool {
	a := g.added.Add(n)
	if m := g.mark.Load(); (served-m >= period || a >= diskPeriods*period) && g.mark.CompareAndSwap(m, served) {
		g.added.Store(0)
		for i := range g.slots {
			s := &g.slots[i]
			s.Store(s.Load() / 2) // racing adds may be lost: it is an estimate
		}
	}
	s := &g.slots[key&(promoteSlots-1)]
	if s.Add(n) >= 2*chunkLen {
		s.Store(0)
		return true
	}
	return false
}
