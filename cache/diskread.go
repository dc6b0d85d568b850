package cache

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
)

// Reading the disk tier.
//
// A disk hit opens the chunk file, checks its header (identity, lengths,
// block table) and then reads and verifies only the blocks the reader's
// range touches, one at a time, as the client drains them: each block goes
// through a pooled diskBlockSize buffer that the reader gives back as soon
// as the block is delivered. No chunk-sized buffer is ever allocated for a
// client, so the memory a slow client holds is at most one block, and none
// between writes; what grows with the number of slow clients is open file
// descriptors, not memory.
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

// diskRead is a reader's open chunk file. The zero value holds nothing.
type diskRead struct {
	f       *os.File
	k       diskKey
	idx     int64 // chunk index of f
	h       fileHeader
	sumBuf  []byte // backing store of h.sums, kept across chunks
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

// close closes the file and gives the buffer back.
func (r *diskRead) close(c *Cache) {
	r.releaseBuf(c)
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
	r.counted = false
}

// headerProbe is how much of a chunk file the first read fetches: enough
// for the header of any realistic identity and block table.
const headerProbe = 4 << 10

// open opens chunk idx of id into r (which holds nothing) and checks its
// header. A missing, unreadable or corrupt file is deleted from the index
// and reported as a miss, never served.
func (d *diskTier) open(id *objectID, idx int64, r *diskRead) bool {
	k := diskKey{id.kh, id.eh, idx}
	d.mu.Lock()
	size, ok := d.lru.Get(k)
	d.mu.Unlock()
	if !ok {
		return false
	}
	f, err := openChunkFile(d.path(k))
	if err != nil {
		d.readFailed(k, err)
		return false
	}
	r.f, r.k, r.idx = f, k, idx
	r.acquireBuf(d.c)
	if err := r.readHeader(size); err != nil {
		r.close(d.c)
		d.readFailed(k, err)
		return false
	}
	h := &r.h
	if h.idx != idx || h.dataLen != d.c.span.length(id.size, idx) || string(h.etag) != id.etag ||
		string(h.key) != id.key || string(h.bucket) != id.bucket {
		r.close(d.c)
		d.readFailed(k, fmt.Errorf("%w: identity does not match its name", errCorrupt))
		return false
	}
	// The identity aliases the buffer that block reads reuse.
	h.bucket, h.key, h.etag = nil, nil, nil
	return true
}

// readHeader reads and checks the header of r.f, whose index entry says it
// is size bytes long, and keeps the block table in r.sumBuf.
func (r *diskRead) readHeader(size int64) error {
	st, err := r.f.Stat()
	if err != nil {
		return fmt.Errorf("cache: stat chunk: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("cache: chunk file %q is not a regular file", st.Name())
	}
	if st.Size() != size {
		return fmt.Errorf("%w: %d bytes, indexed as %d", errCorrupt, st.Size(), size)
	}
	b := r.buf[:min(headerProbe, size)]
	if err := readAtFull(r.f, b, 0); err != nil {
		return err
	}
	n, err := headerLen(b)
	if err != nil {
		return err
	}
	if n > int64(len(b)) && n <= size {
		// A long identity: read the whole header.
		if n <= diskReadSize {
			b = r.buf[:n]
		} else {
			b = make([]byte, n)
		}
		if err := readAtFull(r.f, b, 0); err != nil {
			return err
		}
	}
	h, err := parseHeader(b)
	if err != nil {
		return err
	}
	if h.dataOff+h.dataLen != size {
		return fmt.Errorf("%w: header describes %d bytes, file has %d", errCorrupt, h.dataOff+h.dataLen, size)
	}
	r.sumBuf = append(r.sumBuf[:0], h.sums...)
	h.sums = r.sumBuf
	r.h = h
	return nil
}

// blocks reads and verifies the blocks of r's chunk that hold data bytes
// [from, to), or as many of them as fit diskReadSize, into r's buffer, and
// returns them with the data offset of their first byte.
func (d *diskTier) blocks(r *diskRead, from, to int64) ([]byte, int64, bool) {
	r.acquireBuf(d.c)
	start := from &^ (diskBlockSize - 1)
	end := min((to+diskBlockSize-1)&^(diskBlockSize-1), start+diskReadSize, r.h.dataLen)
	b := r.buf[:end-start]
	err := readAtFull(r.f, b, r.h.dataOff+start)
	for off := int64(0); err == nil && off < int64(len(b)); off += diskBlockSize {
		i := (start + off) >> diskBlockShift
		if !r.h.verifyBlock(i, b[off:min(off+diskBlockSize, int64(len(b)))]) {
			err = fmt.Errorf("%w: block %d checksum mismatch", errCorrupt, i)
		}
	}
	if err != nil {
		d.readFailed(r.k, err)
		return nil, 0, false
	}
	return b, start, true
}

// readAll reads and verifies the whole chunk of r into a new buffer, for
// the memory tier.
func (d *diskTier) readAll(id *objectID, r *diskRead) *chunk {
	data := make([]byte, r.h.dataLen)
	err := readAtFull(r.f, data, r.h.dataOff)
	if err == nil {
		err = r.h.verifyData(data)
	}
	if err != nil {
		d.readFailed(r.k, err)
		return nil
	}
	return &chunk{id: id, idx: r.idx, data: data}
}

// readAtFull fills b from f at off; a file too short for it is errCorrupt
// (the header or the index promised those bytes).
func readAtFull(f *os.File, b []byte, off int64) error {
	n, err := f.ReadAt(b, off)
	switch {
	case n == len(b):
		return nil
	case err == nil || errors.Is(err, io.EOF):
		return fmt.Errorf("%w: %q ends %d bytes short at %d", errCorrupt, f.Name(), len(b)-n, off)
	default:
		return fmt.Errorf("cache: read chunk %q: %w", f.Name(), err)
	}
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
// is at most half the disk bytes served. Counters are halved every time
// 4 * MemoryBytes have been counted, so "recent" scales with the memory
// tier.
type promoteGate struct {
	slots [promoteSlots]atomic.Int64
	added atomic.Int64
}

// add counts n bytes taken from a chunk of length chunkLen and reports
// whether the chunk should be promoted now.
func (g *promoteGate) add(key uint64, n, chunkLen, period int64) bool {
	if a := g.added.Add(n); a >= period && g.added.CompareAndSwap(a, 0) {
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
