package cache

import (
	"context"
	"fmt"
	"io"
	"sync"
)

// Cache status values reported by Reader.CacheStatus.
const (
	StatusHit     = "HIT"     // every chunk of the range was cached
	StatusMiss    = "MISS"    // every chunk came from the origin
	StatusPartial = "PARTIAL" // some of each
	StatusStale   = "STALE"   // every chunk cached, metadata expired and the origin failing
)

// source says where a reader got a chunk.
type source uint8

const (
	srcMemory source = iota
	srcDisk
	srcOrigin
)

var readerPool = sync.Pool{New: func() any { return new(Reader) }}

// Reader streams one range of one object version out of the cache. It is
// what Cache.Open returns (as an io.ReadCloser).
//
// Readers are pooled so that a memory hit allocates nothing: Close returns
// the Reader to the pool, and using it after Close (including a second
// Close) is a bug that may corrupt another request's stream. A Reader is not
// safe for concurrent use.
type Reader struct {
	c        *Cache
	ctx      context.Context
	id       *objectID
	staleErr error // non-nil: metadata is stale, uncached bytes fail with it

	pos, end int64  // next byte to deliver and end of the range
	last     int64  // index of the range's last chunk
	cur      []byte // undelivered bytes of the current chunk, borrowed from it
	curSrc   source
	status   string
	err      error // sticky read error

	// pinned is the memory or fill chunk cur borrows from, pinned (pin.go)
	// until the reader moves on; nil for the disk.
	pinned *chunk
	disk   diskRead // open chunk file when curSrc is srcDisk
	noDisk int64    // 1 + index of a chunk whose file failed mid-read; 0 none
	// span, when span.n > 0, holds the undelivered bytes of the current
	// chunk instead of cur: trusted bytes of r.disk's file, which WriteTo
	// hands to its writer's ReadFrom (sendfile on a TCP connection).
	span fileSpan
}

// start decides the cache status, then loads the first chunk. The status
// goes out as a header before any byte, so it is decided up front: the
// chunks after the first are probed (a lookup each, not a read) before this
// reader starts any fill, and the first chunk's status is where it actually
// came from. A chunk evicted between the probe and its read is refetched
// without revising the status.
func (r *Reader) start() error {
	cached, missed := 0, 0
	for idx := r.c.span.index(r.pos) + 1; idx <= r.last; idx++ {
		if r.c.present(r.id, idx) {
			cached++
			continue
		}
		if r.staleErr != nil {
			// The origin is known to be failing: fail now, not mid-stream
			// after the headers went out.
			return r.staleErr
		}
		missed++
	}
	if err := r.next(); err != nil {
		return err
	}
	if r.curSrc == srcOrigin {
		missed++
	} else {
		cached++
	}
	switch {
	case missed == 0 && r.staleErr != nil:
		r.status = StatusStale
		r.c.st.staleServes.Add(1)
	case missed == 0:
		r.status = StatusHit
	case cached == 0:
		r.status = StatusMiss
	default:
		r.status = StatusPartial
	}
	return nil
}

// CacheStatus reports where the range's bytes come from: StatusHit,
// StatusMiss, StatusPartial or StatusStale. It is decided when Open
// returns.
func (r *Reader) CacheStatus() string { return r.status }

// Read implements io.Reader, copying from the cached chunks.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.span.n > 0 {
		// Trusted bytes: pread straight into p.
		before := r.span.n
		r.span.Read(p)
		if n := r.spanTaken(before); n > 0 {
			return int(n), nil
		}
		// The file failed: the chunk's rest comes from elsewhere.
	}
	if len(r.cur) == 0 && r.span.n == 0 {
		if r.pos >= r.end {
			return 0, io.EOF
		}
		if err := r.next(); err != nil {
			r.err = err
			return 0, err
		}
	}
	n := copy(p, r.cur)
	r.advance(n)
	return n, nil
}

// WriteTo implements io.WriterTo: each chunk is handed to w straight from
// the cache's immutable slice, without a copy (w must not retain it, as
// io.Writer requires). fasthttp's SetBodyStream copies with WriterTo, and
// a large Write on an empty bufio.Writer goes straight to the socket.
//
// When w is an io.ReaderFrom, disk-tier bytes whose blocks were verified
// recently (diskfd.go) go to w.ReadFrom as a reader of the file span
// instead: on a TCP connection that ends in sendfile(2), so they never
// enter the process and no buffer is held while the client is slow. Other
// writers get them read and verified block by block.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	rf, _ := w.(io.ReaderFrom)
	var total int64
	for {
		if r.err != nil {
			return total, r.err
		}
		if len(r.cur) == 0 && r.span.n == 0 {
			if r.pos >= r.end {
				return total, nil
			}
			if err := r.next(); err != nil {
				r.err = err
				return total, err
			}
		}
		if r.span.n > 0 && rf == nil {
			r.spanToBlocks()
			continue
		}
		if r.span.n > 0 {
			n, err := r.sendSpan(rf)
			total += n
			if err != nil {
				r.err = err
				return total, err
			}
			continue
		}
		n, err := w.Write(r.cur)
		if n < 0 || n > len(r.cur) {
			n = 0 // a broken writer must not make us skip bytes
			if err == nil {
				err = fmt.Errorf("cache: writer returned invalid count")
			}
		}
		r.advance(n)
		total += int64(n)
		if err == nil && len(r.cur) > 0 && n == 0 {
			err = io.ErrShortWrite
		}
		if err != nil {
			r.err = err
			return total, err
		}
	}
}

// sendSpan hands the current span to rf and accounts for what it took. A
// failure of the file is not the writer's: the file is dropped and the
// rest of the chunk comes from memory or the origin.
func (r *Reader) sendSpan(rf io.ReaderFrom) (int64, error) {
	before := r.span.n
	_, err := rf.ReadFrom(&r.span)
	failed := r.span.ferr != nil
	sent := r.spanTaken(before)
	if err == nil && !failed && r.span.n > 0 && sent == 0 {
		err = io.ErrShortWrite
	}
	return sent, err
}

// spanTaken marks delivered what the span's consumer took since the span
// held before bytes, and returns it. If the file failed meanwhile it is
// dropped (its finder deletes it) and the reader forgets it, so the rest
// of the chunk is loaded from memory or the origin.
func (r *Reader) spanTaken(before int64) int64 {
	c := r.c
	sent := before - r.span.n
	r.pos += sent
	c.st.bytesDisk.Add(sent)
	switch ferr := r.span.ferr; {
	case ferr != nil:
		oc := r.disk.oc
		oc.bad.Store(true)
		if ferr != errBadOpenFile { // that one was dropped by its finder
			c.disk.readFailed(oc.k, ferr)
		}
		r.endSpan()
		r.dropDisk()
	case r.span.n == 0:
		r.endSpan()
	}
	return sent
}

// spanToBlocks replaces the current span by the blocks it covers, read and
// verified, for a writer that cannot take a span.
func (r *Reader) spanToBlocks() {
	idx := r.c.span.index(r.pos)
	r.endSpan()
	if !r.nextBlock(idx) {
		r.dropDisk()
	}
}

// dropDisk lets go of the chunk file r.disk holds, which failed, and keeps
// load from opening it again for this chunk: its rest comes from memory or
// the origin.
func (r *Reader) dropDisk() {
	r.noDisk = r.disk.idx + 1
	r.disk.close(r.c)
}

// endSpan forgets the span, keeping its bound callback.
func (r *Reader) endSpan() {
	r.span.oc, r.span.off, r.span.n, r.span.ferr = nil, 0, 0, nil
}

// Close returns the reader to the pool. It never fails.
func (r *Reader) Close() error {
	if r.c == nil {
		return nil
	}
	r.unpin()
	r.disk.close(r.c)
	send, writev := r.span.send, r.span.writev // bound to r: kept, so sending allocates nothing
	*r = Reader{}
	r.span.send, r.span.writev = send, writev
	readerPool.Put(r)
	return nil
}

// advance marks n bytes of the current chunk delivered.
func (r *Reader) advance(n int) {
	r.cur = r.cur[n:]
	r.pos += int64(n)
	switch r.curSrc {
	case srcMemory:
		r.c.st.bytesMem.Add(int64(n))
	case srcDisk:
		r.c.st.bytesDisk.Add(int64(n))
		if len(r.cur) == 0 {
			r.disk.releaseBuf(r.c) // a slow client holds no buffer between writes
		}
	default:
		r.c.st.bytesOrigin.Add(int64(n))
	}
	if len(r.cur) == 0 && r.pinned != nil {
		// Delivered: let go of the chunk now, not at the next one, which a
		// keep-alive client may never ask for. An empty slice still points
		// into the chunk, so it goes too.
		r.cur = nil
		r.unpin()
	}
}

// unpin lets go of the chunk cur borrowed from, if any.
func (r *Reader) unpin() {
	if r.pinned != nil {
		r.c.unpin(r.pinned)
		r.pinned = nil
	}
}

// next makes the chunk holding r.pos current: a slice of a memory or
// origin chunk, or from the chunk file r.disk holds the rest of the
// chunk's range as a span if it is trusted, else its next blocks.
func (r *Reader) next() error {
	c := r.c
	r.unpin() // cur is used up
	idx := c.span.index(r.pos)
	if r.disk.oc != nil && r.disk.idx != idx {
		r.disk.close(c)
	}
	for {
		if r.disk.oc != nil {
			if r.nextSpan(idx) {
				return nil
			}
			if r.nextBlock(idx) {
				return nil
			}
			// The file is deleted; take this chunk from memory or origin.
			r.dropDisk()
		}
		ch, src, err := r.load(idx)
		if err != nil {
			return err
		}
		if src == srcDisk {
			continue // r.disk holds the chunk file
		}
		data := ch.data
		if len(data) >= minPinned {
			c.pin(ch)
			r.pinned = ch
		}
		if want := c.span.length(r.id.size, idx); int64(len(data)) != want {
			return fmt.Errorf("cache: bug: chunk %d of %s/%s has %d bytes, want %d", idx, r.id.bucket, r.id.key, len(data), want)
		}
		base := idx * c.span.size
		r.cur = data[r.pos-base : min(r.end-base, int64(len(data)))]
		r.curSrc = src
		return nil
	}
}

// nextSpan makes the rest of the range within r.disk's chunk the current
// span if all its blocks are trusted.
func (r *Reader) nextSpan(idx int64) bool {
	c := r.c
	oc := r.disk.oc
	base := idx * c.span.size
	from, to := r.pos-base, min(r.end-base, oc.dataLen)
	if !oc.trusted(from, to, c.now().UnixNano()) {
		return false
	}
	r.countDiskHit()
	r.disk.releaseBuf(c) // the header may have been read into it
	r.span.oc, r.span.off, r.span.n, r.span.ferr = oc, oc.dataOff+from, to-from, nil
	r.cur = nil
	r.curSrc = srcDisk
	return true
}

// nextBlock makes the next blocks of r.disk's chunk, from the one holding
// r.pos, current, or reports false if they failed verification (the file
// is then deleted).
func (r *Reader) nextBlock(idx int64) bool {
	c := r.c
	base := idx * c.span.size
	b, start, ok := c.disk.blocks(&r.disk, r.pos-base, r.end-base)
	if !ok {
		return false
	}
	r.countDiskHit()
	r.cur = b[r.pos-base-start : min(r.end-base-start, int64(len(b)))]
	r.curSrc = srcDisk
	return true
}

// countDiskHit counts the chunk r.disk holds as a disk hit, once.
func (r *Reader) countDiskHit() {
	if !r.disk.counted {
		r.disk.counted = true
		r.c.st.diskHits.Add(1)
	}
}

// load returns chunk idx from memory, disk or origin, in that order. For
// the disk it opens the chunk file into r.disk and returns srcDisk without
// a chunk: blocks are read as they are delivered.
func (r *Reader) load(idx int64) (*chunk, source, error) {
	c := r.c
	c.disk.seen(r.id, idx) // the disk policy counts reads served by any tier
	for attempt := range 3 {
		if ch := c.memGet(r.id, idx); ch != nil {
			c.st.memHits.Add(1)
			return ch, srcMemory, nil
		}
		if c.disk != nil && r.noDisk != idx+1 && c.disk.open(r.id, idx, &r.disk) && r.maybePromote(idx) {
			return nil, srcDisk, nil
		}
		if r.staleErr != nil {
			return nil, 0, r.staleErr
		}
		s, joined, err := c.acquire(r.ctx, r.id, idx, r.last, attempt == 2)
		if err != nil {
			return nil, 0, err
		}
		if s == nil {
			continue // cached meanwhile: look again
		}
		if joined {
			c.st.coalesced.Add(1)
		}
		ch, err := s.wait(r.ctx)
		if err != nil {
			return nil, 0, err
		}
		c.st.misses.Add(1)
		// Keep the next window in flight while this one is consumed. It
		// starts where this chunk's fill ends, not at idx+window: a reader
		// that found the first chunks of a prefetched window in memory and
		// waits only at its third would otherwise start the next fill two
		// chunks late, and split the window after it in two.
		c.prefetch(r.ctx, r.id, s.next, r.last)
		return ch, srcOrigin, nil
	}
	panic("bug: cache: load: forced fill returned no slot")
}

// maxPromotions bounds the promotions in flight at once, each of which
// holds a chunk-sized buffer until ristretto takes or declines it. 400 slow
// clients starting together promoted about 300 chunks at once, a spike of
// 95 MiB of heap (issue 10); a pread and checksum of 1 MiB take well under
// a millisecond, so two at a time still promote thousands a second.
const maxPromotions = 2

// maybePromote copies the chunk r.disk holds into the memory tier if the
// promotion gate says it has been read enough (see diskread.go). The copy
// goes to the memory tier only: r keeps reading blocks from the file, so a
// slow client never pins a chunk-sized buffer. It reports false if the
// file failed verification (it is then deleted and closed).
func (r *Reader) maybePromote(idx int64) bool {
	c := r.c
	chunkLen := r.disk.oc.dataLen
	if chunkLen >= c.mem.MaxCost() {
		// Ristretto would decline it: its cost includes bookkeeping, and
		// the budget is what pinned chunks leave of MemoryBytes (pin.go).
		return true
	}
	take := min(r.end, idx*c.span.size+chunkLen) - r.pos
	if !c.disk.gate.add(memKey(r.id, idx), take, chunkLen, c.st.bytesMem.Load(), c.cfg.MemoryBytes/2) {
		return true
	}
	if c.promoting.Add(1) > maxPromotions {
		// Enough chunk buffers in flight; the gate opens again once
		// readers have taken another two chunks' worth.
		c.promoting.Add(-1)
		return true
	}
	defer c.promoting.Add(-1)
	c.st.diskPromotions.Add(1)
	ch := c.disk.readAll(r.id, &r.disk)
	if ch == nil {
		r.dropDisk()
		return false
	}
	c.memSet(ch) // TinyLFU decides
	return true
}
