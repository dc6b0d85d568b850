package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync/atomic"
	"time"
)

// Open chunk files, shared by readers.
//
// A profile of random 64 KiB ranges served from the disk tier (docs/design.md,
// "Disk tier") showed that opening a chunk file for each request (open,
// fcntl, fstat, a header pread, close) cost as much as the data read and
// its checksum together. The disk tier therefore keeps up to maxOpenChunks
// chunk files open, each with its checked header and identity, and readers
// share them: a hit on an open file costs no syscall before the data.
//
// Each open file also remembers which of its blocks were verified against
// the block table, and since when. A block verified less than trustWindow
// ago is trusted: readers send it with sendfile (or pread it without a
// checksum) instead of reading and verifying it again. The bitmap lives
// and dies with the open file, so it is bounded by maxOpenChunks; it is
// cleared when the window expires, when the file is closed, and at restart.
// The integrity argument and its limits are in docs/design.md.
//
// Correctness of sharing: an entry is removed from the table in the same
// critical section that removes its chunk from the index (onEvict: eviction,
// purge, a corrupt block, an I/O error), so no reader acquires a file the
// index no longer holds; readers that hold it already finish their current
// response from it, as they did when each had its own descriptor. The
// descriptor is closed when the last holder lets go (reference count), never
// under a reader, so its number cannot be reused for another file while a
// pread or sendfile is using it. A file whose block failed verification is
// marked bad at once: no holder trusts or reads it again.

// maxOpenChunks bounds the chunk files the disk tier keeps open: 1024
// descriptors and about 1 KiB of header and bitmap each for 1 MiB chunks.
// More than the 352 files of the benchmark's disk scenario (docs/design.md),
// far fewer than the process's descriptor limit.
const maxOpenChunks = 1024

// trustWindow is how long a verified block is served without verifying it
// again (see docs/design.md for the choice).
const trustWindow = time.Minute

// openChunk is a chunk file open for reading, shared by the readers that
// hold a reference.
type openChunk struct {
	k                 diskKey
	fd                chunkFD
	bucket, key, etag string // identity from the header
	idx               int64
	dataLen, dataOff  int64
	sums              []byte // block table, 4 bytes per block
	// mapping is the whole file mapped read-only, made by the first short
	// range sent from it (SendMapped), so files only ever streamed cost no
	// mmap; noMap is set when mapping failed, so it is not tried again.
	// Only the kernel reads the mapping, as the source of a writev to a
	// socket; no Go code ever loads from it.
	mapping atomic.Pointer[fileMapping]
	noMap   atomic.Bool
	st      *counters // the cache's, for the mapped gauge and the sent bytes

	refs atomic.Int32 // holders: readers, plus one while in the table
	bad  atomic.Bool  // a block failed verification or a read failed
	// since is when the current trust window began (Unix nanoseconds, 0
	// when no block is trusted); verified has one bit per block verified
	// within it.
	since    atomic.Int64
	verified []atomic.Uint64

	slot   int  // index in diskTier.ring; guarded by diskTier.mu
	recent bool // CLOCK reference bit; guarded by diskTier.mu
}

// release drops one reference, closing the file after the last.
func (oc *openChunk) release() {
	switch n := oc.refs.Add(-1); {
	case n == 0:
		if m := oc.mapping.Swap(nil); m != nil {
			oc.st.diskMappedNow.Add(-int64(len(m.b)))
			unmapChunk(m.b)
		}
		closeChunkFD(oc.fd)
	case n < 0:
		panic("bug: cache: open chunk file released more often than acquired")
	}
}

// useLocked takes a reference to oc, an entry of the table, for a reader
// and marks it recently used; diskTier.mu is held.
func (oc *openChunk) useLocked() {
	oc.recent = true
	oc.refs.Add(1)
}

// matches reports whether the file holds chunk idx of id: the file name is
// a hash, the header holds the identity.
func (oc *openChunk) matches(id *objectID, idx, dataLen int64) bool {
	return oc.idx == idx && oc.dataLen == dataLen && oc.etag == id.etag && oc.key == id.key && oc.bucket == id.bucket
}

// verifyBlocks checks b, the data bytes from block first on, against the
// block table and marks the blocks verified, now being the clock's time.
func (oc *openChunk) verifyBlocks(first int64, b []byte, now int64) error {
	for off := int64(0); off < int64(len(b)); off += diskBlockSize {
		i := first + off>>diskBlockShift
		want := min(oc.dataLen-i<<diskBlockShift, diskBlockSize)
		blk := b[off:min(off+diskBlockSize, int64(len(b)))]
		if i >= int64(len(oc.sums)/4) || int64(len(blk)) != want ||
			crc32.Checksum(blk, castagnoli) != binary.LittleEndian.Uint32(oc.sums[4*i:]) {
			oc.bad.Store(true)
			return fmt.Errorf("%w: block %d checksum mismatch", errCorrupt, i)
		}
	}
	oc.markVerified(first, blocks(int64(len(b))), now)
	return nil
}

// markVerified marks n blocks from block first verified at now.
func (oc *openChunk) markVerified(first, n, now int64) {
	s := oc.since.Load()
	if s == 0 || now-s >= int64(trustWindow) {
		// A new window: forget what the old one trusted first. A reader
		// racing with this may see a bit of the old window a moment
		// longer; see the design note.
		oc.clearVerified()
		if !oc.since.CompareAndSwap(s, now) {
			return // another reader started the window; stay conservative
		}
	}
	for i := first; i < first+n; i++ {
		oc.verified[i>>6].Or(1 << (i & 63))
	}
}

func (oc *openChunk) clearVerified() {
	for i := range oc.verified {
		oc.verified[i].Store(0)
	}
}

// trusted reports whether every block holding data bytes [from, to) was
// verified within the trust window ending at now.
func (oc *openChunk) trusted(from, to, now int64) bool {
	if to <= from || oc.bad.Load() {
		return false
	}
	if s := oc.since.Load(); s == 0 || now-s >= int64(trustWindow) || now < s {
		return false
	}
	first, last := from>>diskBlockShift, (to-1)>>diskBlockShift
	for w := first >> 6; w <= last>>6; w++ {
		mask := ^uint64(0)
		if w == first>>6 {
			mask &= ^uint64(0) << (first & 63)
		}
		if w == last>>6 {
			mask &= ^uint64(0) >> (63 - last&63)
		}
		if oc.verified[w].Load()&mask != mask {
			return false
		}
	}
	return true
}

// preadFull fills b from fd at off; a file too short for it is errCorrupt
// (the header or the index promised those bytes).
func preadFull(fd chunkFD, b []byte, off int64, name string) error {
	for len(b) > 0 {
		n, err := preadChunk(fd, b, off)
		b, off = b[n:], off+int64(n)
		switch {
		case len(b) == 0:
			return nil
		case n == 0 && (err == nil || errors.Is(err, io.EOF)):
			return fmt.Errorf("%w: %s ends %d bytes short at %d", errCorrupt, name, len(b), off)
		case err != nil && !errors.Is(err, io.EOF):
			return fmt.Errorf("cache: read chunk %s: %w", name, err)
		}
	}
	return nil
}

// openFile opens and checks the chunk file of k, which the index says is
// size bytes long, for chunk idx of id. The caller owns the one reference
// it returns with.
func (d *diskTier) openFile(k diskKey, size int64, id *objectID, idx int64, buf *[diskReadSize]byte) (*openChunk, error) {
	fd, err := openChunkFD(d.path(k))
	if err != nil {
		return nil, err
	}
	oc, err := d.checkFile(fd, k, size, buf)
	if err != nil {
		closeChunkFD(fd)
		return nil, err
	}
	if !oc.matches(id, idx, d.c.span.length(id.size, idx)) {
		oc.release()
		return nil, errIdentity
	}
	return oc, nil
}

// checkFile reads and checks the header of fd, whose index entry says it is
// size bytes long, using buf.
func (d *diskTier) checkFile(fd chunkFD, k diskKey, size int64, buf *[diskReadSize]byte) (*openChunk, error) {
	name := k.fileName()
	fsize, regular, err := statChunk(fd)
	if err != nil {
		return nil, fmt.Errorf("cache: stat chunk %s: %w", name, err)
	}
	if !regular {
		return nil, fmt.Errorf("cache: chunk file %s is not a regular file", name)
	}
	if fsize != size {
		return nil, fmt.Errorf("%w: %d bytes, indexed as %d", errCorrupt, fsize, size)
	}
	b := buf[:min(headerProbe, size)]
	if err := preadFull(fd, b, 0, name); err != nil {
		return nil, err
	}
	n, err := headerLen(b)
	if err != nil {
		return nil, err
	}
	if n > int64(len(b)) && n <= size {
		// A long identity: read the whole header.
		if n <= diskReadSize {
			b = buf[:n]
		} else {
			b = make([]byte, n)
		}
		if err := preadFull(fd, b, 0, name); err != nil {
			return nil, err
		}
	}
	h, err := parseHeader(b)
	if err != nil {
		return nil, err
	}
	if h.dataOff+h.dataLen != size {
		return nil, fmt.Errorf("%w: header describes %d bytes, file has %d", errCorrupt, h.dataOff+h.dataLen, size)
	}
	nb := blocks(h.dataLen)
	oc := &openChunk{
		k: k, fd: fd,
		bucket: string(h.bucket), key: string(h.key), etag: string(h.etag),
		idx: h.idx, dataLen: h.dataLen, dataOff: h.dataOff,
		sums:     append([]byte(nil), h.sums...),
		verified: make([]atomic.Uint64, (nb+63)/64),
	}
	oc.st = &d.c.st
	oc.refs.Store(1)
	return oc, nil
}

// acquireOpen returns chunk idx of id as an open file with a reference for
// the caller, opening it (and adding it to the table) if needed, or nil
// for a miss. A file that cannot be opened or fails its checks is dropped
// from the index.
func (d *diskTier) acquireOpen(id *objectID, idx int64, buf **[diskReadSize]byte) *openChunk {
	k := diskKey{id.kh, id.eh, idx}
	dataLen := d.c.span.length(id.size, idx)
	d.mu.Lock()
	size, ok := d.index.Get(k)
	if !ok {
		d.mu.Unlock()
		return nil
	}
	if oc := d.files[k]; oc != nil {
		oc.useLocked()
		d.mu.Unlock()
		if !oc.matches(id, idx, dataLen) {
			oc.release()
			d.corrupt(k, errIdentity)
			return nil
		}
		return oc
	}
	d.mu.Unlock()

	if *buf == nil { // the header is read into the reader's block buffer
		*buf = blockPool.Get().(*[diskReadSize]byte)
		d.c.st.diskBufs.Add(1)
	}
	oc, err := d.openFile(k, size, id, idx, *buf)
	if err != nil {
		d.readFailed(k, err)
		return nil
	}
	d.mu.Lock()
	if !d.index.Contains(k) {
		// Evicted, purged or dropped while we opened it: a miss, as if the
		// open had come after.
		d.mu.Unlock()
		oc.release()
		return nil
	}
	if cur := d.files[k]; cur != nil {
		cur.useLocked()
		d.mu.Unlock()
		oc.release() // another reader opened it meanwhile
		return cur
	}
	old := d.addOpenLocked(oc)
	oc.refs.Add(1) // the table's
	d.mu.Unlock()
	if old != nil {
		old.release() // outside the lock: see removeFiles
	}
	return oc
}

// addOpenLocked puts oc in the table, taking out the least recently used
// entry (CLOCK) when the table is full; the caller drops the table's
// reference to that one, returned, after unlocking.
func (d *diskTier) addOpenLocked(oc *openChunk) *openChunk {
	if d.files == nil {
		d.files = make(map[diskKey]*openChunk)
		d.ring = make([]*openChunk, 0, maxOpenChunks)
	}
	if len(d.ring) < cap(d.ring) {
		oc.slot = len(d.ring)
		d.ring = append(d.ring, oc)
		d.files[oc.k] = oc
		return nil
	}
	// A free slot, or the first entry not used since the hand last passed
	// it: within two sweeps, since the first clears every reference bit.
	for range 2 * len(d.ring) {
		d.hand = (d.hand + 1) % len(d.ring)
		v := d.ring[d.hand]
		if v == nil || !v.recent {
			break
		}
		v.recent = false
	}
	old := d.ring[d.hand]
	if old != nil {
		delete(d.files, old.k)
	}
	oc.slot = d.hand
	d.ring[d.hand] = oc
	d.files[oc.k] = oc
	return old
}

// closeOpenLocked removes k's open file from the table, if any, and puts
// it with the evicted chunks, whose taker drops the table's reference after
// unlocking (removeFiles); holders keep it until they let go.
func (d *diskTier) closeOpenLocked(k diskKey) {
	oc := d.files[k]
	if oc == nil {
		return
	}
	delete(d.files, k)
	d.ring[oc.slot] = nil
	d.closing = append(d.closing, oc)
}

// closeAllOpen empties the table (Cache.Close).
func (d *diskTier) closeAllOpen() {
	d.mu.Lock()
	for k := range d.files {
		d.closeOpenLocked(k)
	}
	closing := d.closing
	d.closing = nil
	d.mu.Unlock()
	for _, oc := range closing {
		oc.release()
	}
}

// fileSpan is a run of trusted bytes of an open chunk file that a reader
// hands to its writer's io.ReaderFrom: Read preads it, and SendFile lets a
// TCP connection send it with sendfile(2), so the bytes never enter the
// process. A failure of the file (short, unreadable) is not an error of
// the copy: the span reports EOF and records it in ferr, so that the
// writer stays usable and the reader takes the rest of the chunk from
// elsewhere.
type fileSpan struct {
	oc     *openChunk
	off, n int64 // file offset and length of what is left
	ferr   error
	sendState
}

// Read implements io.Reader with pread at the span's own offset (the file
// is shared, so its offset is never used).
func (s *fileSpan) Read(p []byte) (int, error) {
	if !s.usable() {
		return 0, io.EOF
	}
	if int64(len(p)) > s.n {
		p = p[:s.n]
	}
	n, err := preadChunk(s.oc.fd, p, s.off)
	s.off += int64(n)
	s.n -= int64(n)
	switch {
	case n > 0:
		return n, nil
	case err == nil || errors.Is(err, io.EOF):
		s.ferr = fmt.Errorf("%w: %s ends short at %d", errCorrupt, s.oc.k.fileName(), s.off)
	default:
		s.ferr = fmt.Errorf("cache: read chunk %s: %w", s.oc.k.fileName(), err)
	}
	return 0, io.EOF
}

// fileMapping is an open chunk file's mapping (openChunk.mapping).
type fileMapping struct{ b []byte }

// mapped returns oc's mapping, making it if it is not made yet, or nil if
// the file cannot be mapped. The caller holds a reference, so the file is
// open; a mapping made by two readers at once is kept once.
func (oc *openChunk) mapped() []byte {
	if m := oc.mapping.Load(); m != nil {
		return m.b
	}
	if oc.noMap.Load() {
		return nil
	}
	b := mapChunk(oc.fd, oc.dataOff+oc.dataLen)
	if b == nil {
		oc.noMap.Store(true)
		return nil
	}
	m := &fileMapping{b}
	if !oc.mapping.CompareAndSwap(nil, m) {
		unmapChunk(b)
		return oc.mapping.Load().b
	}
	oc.st.diskMappedNow.Add(int64(len(b)))
	return b
}

// usable reports whether the span has bytes left from a file still good;
// a file another reader found corrupt ends it (ferr).
func (s *fileSpan) usable() bool {
	if s.n <= 0 || s.ferr != nil {
		return false
	}
	if s.oc.bad.Load() {
		s.ferr = errBadOpenFile
		return false
	}
	return true
}

// errIdentity is a chunk file whose header names another chunk than its
// file name does.
var errIdentity = fmt.Errorf("%w: identity does not match its name", errCorrupt)

// errBadOpenFile ends a span whose file another reader found corrupt.
var errBadOpenFile = errors.New("cache: chunk file failed verification")
