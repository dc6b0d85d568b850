package cache

import (
	"io"
	"sync"
	"sync/atomic"
)

// The memory arena keeps the memory tier's large chunks in one anonymous
// in-memory file (memfd on Linux) mapped read-only into the process,
// instead of on the Go heap. The bytes are the same, and readers still
// borrow them as slices, but a connection can now send them with sendfile
// (FileWriter): the kernel attaches the file's pages to the socket instead
// of copying 64 KiB from user memory per response. That copy was 19% of
// the proxy's CPU on random 64 KiB ranges from memory (perf, docs/design.md)
// and is what nginx, serving its page cache with sendfile, does not pay.
//
// Lifetime: a slot is reused only after every reference to its chunk is
// gone: the memory tier's own (dropped when ristretto lets the chunk go:
// OnExit, or a Set that did not take) and each reader's while it borrows
// the bytes (acquire/release). Freeing punches a hole in the file, so pages
// the kernel still holds for a socket keep their bytes, and the next chunk
// in the slot gets new pages.

// arenaMin is the smallest chunk kept in the arena. Smaller ones stay on
// the heap: they fit a connection's write buffer, where a copy costs less
// than a sendfile call, and would each take a whole slot of the arena.
const arenaMin = 64 << 10

// arenaSlack is the number of arena slots beyond what the memory tier can
// hold at once, for chunks it evicted that readers still send. When the
// arena is full a chunk stays on the heap: slower to send, never wrong.
const arenaSlack = 64

// FileWriter is a writer that can send bytes straight from a file, as a
// TCP connection does with sendfile. Reader.WriteTo hands it memory-tier
// chunks this way when the writer implements it.
type FileWriter interface {
	io.Writer
	// WriteFile writes p, which holds the same bytes as the len(p) bytes at
	// off of the open file fd. It may send them from the file instead of
	// from p, saving the copy into the kernel. fd and those bytes stay
	// valid and unchanged until WriteFile returns; the kernel keeps its own
	// references to pages it still has to send.
	WriteFile(p []byte, fd uintptr, off int64) (int, error)
}

// memArena is the memory arena: fixed slots of slotSize bytes in one file.
// The file is sparse, so a slot costs memory only for the pages its chunk
// fills. It is safe for concurrent use.
type memArena struct {
	file     arenaFile
	slotSize int64
	mu       sync.Mutex
	free     []int32 // free slots, guarded by mu
	used     atomic.Int64
}

// newMemArena returns an arena of slots slots of slotSize bytes, or nil
// where the system has no memfd (the memory tier then stays on the heap).
func newMemArena(slots int, slotSize int64) (*memArena, error) {
	f, err := openArenaFile(int64(slots) * slotSize)
	if err != nil || f.mem == nil {
		return nil, err
	}
	a := &memArena{file: f, slotSize: slotSize, free: make([]int32, slots)}
	for i := range a.free {
		a.free[i] = int32(slots - 1 - i) // pop from the end: lowest slot first
	}
	return a, nil
}

// chunk returns a copy of ch whose bytes live in the arena, holding one
// reference (the memory tier's), or nil when no slot is free or the copy
// failed.
func (a *memArena) chunk(ch *chunk) *chunk {
	a.mu.Lock()
	if len(a.free) == 0 {
		a.mu.Unlock()
		return nil
	}
	slot := a.free[len(a.free)-1]
	a.free = a.free[:len(a.free)-1]
	a.mu.Unlock()
	a.used.Add(1)
	off := int64(slot) * a.slotSize
	if err := a.file.write(ch.data, off); err != nil {
		a.put(off)
		return nil
	}
	ac := &chunk{id: ch.id, idx: ch.idx, data: a.file.mem[off : off+int64(len(ch.data)) : off+int64(len(ch.data))], arena: a, off: off}
	ac.refs.Store(1)
	return ac
}

// put frees the slot at off: its pages are released (punched out of the
// file) before the slot can be handed out again. A slot whose pages could
// not be released is never reused (writing into pages a socket may still
// be sending would change bytes already promised to a client).
func (a *memArena) put(off int64) {
	if err := a.file.punch(off, a.slotSize); err != nil {
		return
	}
	a.used.Add(-1)
	a.mu.Lock()
	a.free = append(a.free, int32(off/a.slotSize))
	a.mu.Unlock()
}

// close unmaps the arena if no chunk is left in it. A reader still open
// after Cache.Close (a bug of the caller) keeps it mapped instead of
// faulting.
func (a *memArena) close() {
	if a.used.Load() == 0 {
		a.file.close()
	}
}

// acquire takes a reference to ch for a reader that borrows its bytes. It
// reports false when ch left the memory tier and its last reference is
// gone meanwhile (its slot may hold another chunk by now): a miss. Heap
// chunks need no references.
func (ch *chunk) acquire() bool {
	if ch.arena == nil {
		return true
	}
	for {
		n := ch.refs.Load()
		if n <= 0 {
			return false
		}
		if ch.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops a reference taken by acquire or held by the memory tier;
// the last one frees the slot. It accepts nil.
func (ch *chunk) release() {
	if ch == nil || ch.arena == nil {
		return
	}
	switch n := ch.refs.Add(-1); {
	case n == 0:
		ch.arena.put(ch.off)
	case n < 0:
		panic("bug: cache: arena chunk released more often than acquired")
	}
}
