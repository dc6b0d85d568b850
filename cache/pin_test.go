package cache

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
)

// TestPinCharges walks the pin state through every order of pins, unpins
// and the tier letting go: a chunk is charged exactly while it is out of
// the tier and pinned, and ristretto's budget is what is left.
func TestPinCharges(t *testing.T) {
	const size = 1 << 10
	tests := []struct {
		name string
		ops  string // p pin, u unpin, x exit
		want []int64
	}{
		{"exit unpinned", "x", []int64{0}},
		{"pin then exit", "pxu", []int64{0, size, 0}},
		{"exit then pin", "xpu", []int64{0, size, 0}},
		{"two readers", "ppxuu", []int64{0, 0, size, size, 0}},
		{"pin again after exit", "pxupu", []int64{0, size, 0, size, 0}},
		{"unpinned in tier", "pupu", []int64{0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCache(t, Config{ChunkSize: size, MemoryBytes: 8 * size}, newFakeOrigin(), nil)
			ch := &chunk{data: make([]byte, size)}
			for i, op := range tt.ops {
				switch op {
				case 'p':
					c.pin(ch)
				case 'u':
					c.unpin(ch)
				case 'x':
					c.exited(ch)
				}
				if got := c.Stats().MemoryPinnedBytes; got != tt.want[i] {
					t.Fatalf("after %q: pinned %d, want %d", tt.ops[:i+1], got, tt.want[i])
				}
				if got, want := c.mem.MaxCost(), 8*size-tt.want[i]; got != want {
					t.Fatalf("after %q: tier budget %d, want %d", tt.ops[:i+1], got, want)
				}
			}
		})
	}
	c := newTestCache(t, Config{ChunkSize: size, MemoryBytes: 8 * size}, newFakeOrigin(), nil)
	c.exited(nil) // ristretto's Del of an absent key
	if got := c.Stats().MemoryPinnedBytes; got != 0 {
		t.Fatalf("nil exit charged %d", got)
	}
}

// TestPinRace races pins and unpins of readers against the tier letting
// go: whatever the interleaving, nothing stays charged once the readers
// are gone, and the budget is whole again.
func TestPinRace(t *testing.T) {
	const size = 1 << 10
	c := newTestCache(t, Config{ChunkSize: size, MemoryBytes: 64 * size}, newFakeOrigin(), nil)
	chunks := make([]*chunk, 32)
	for i := range chunks {
		chunks[i] = &chunk{data: make([]byte, size)}
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				ch := chunks[(i+g)%len(chunks)]
				c.pin(ch)
				c.unpin(ch)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, ch := range chunks {
			c.exited(ch)
		}
	}()
	wg.Wait()
	if got := c.Stats().MemoryPinnedBytes; got != 0 {
		t.Fatalf("pinned %d after every reader let go, want 0", got)
	}
	if got := c.mem.MaxCost(); got != 64*size {
		t.Fatalf("tier budget %d, want %d", got, 64*size)
	}
}

// TestSlowReadersStayInMemoryBudget is issue 10's slow clients in small:
// readers that stop in the middle of memory-tier chunks while other chunks
// displace them. The bytes alive (chunks in the tier plus chunks readers
// hold that the tier let go of) must stay within MemoryBytes, give or take
// the victims of one admission; before pins were charged, the tier refilled
// to its budget beside the evicted chunks the readers kept alive.
func TestSlowReadersStayInMemoryBudget(t *testing.T) {
	const (
		size   = minPinned
		chunks = 64
		slow   = 6
	)
	cfg := Config{ChunkSize: size, Readahead: size, MemoryBytes: 8 * size}
	o := newFakeOrigin()
	etag := o.put("b", "k", randomBytes(chunks*size, 9))
	c := newTestCache(t, cfg, o, nil)
	ctx := context.Background()
	for i := range int64(slow) {
		readRange(t, c, ctx, "b", "k", etag, i*size, size)
	}
	settle(t, c)
	var readers []*Reader
	for i := range int64(slow) {
		rc, err := c.Open(ctx, "b", "k", etag, i*size, size)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rc.Close() })
		r := rc.(*Reader)
		if r.CacheStatus() != StatusHit {
			t.Fatalf("chunk %d: %s, want a memory hit", i, r.CacheStatus())
		}
		if _, err := io.ReadFull(r, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		readers = append(readers, r)
	}
	// Other chunks, read often enough that TinyLFU prefers them.
	for range 4 {
		for i := int64(slow); i < chunks; i++ {
			readRange(t, c, ctx, "b", "k", etag, i*size, size)
		}
	}
	settle(t, c)

	id := c.meta.get("b", "k").id
	inTier := map[*byte]bool{}
	var tierBytes int64
	for i := range int64(chunks) {
		if ch := c.memGet(id, i); ch != nil {
			inTier[&ch.data[len(ch.data)-1]] = true
			tierBytes += int64(len(ch.data))
		}
	}
	held := map[*byte]int64{}
	for _, r := range readers {
		all := r.cur[:cap(r.cur)] // runs to the end of the chunk's data
		if end := &all[len(all)-1]; !inTier[end] {
			held[end] = size
		}
	}
	var heldBytes int64
	for _, n := range held {
		heldBytes += n
	}
	if heldBytes == 0 {
		t.Fatal("no slow reader's chunk was evicted: the test displaced nothing")
	}
	if limit := cfg.MemoryBytes + 2*size; tierBytes+heldBytes > limit {
		t.Fatalf("%d bytes in the tier + %d held by slow readers after eviction = %d, want <= %d",
			tierBytes, heldBytes, tierBytes+heldBytes, limit)
	}
	if got := c.Stats().MemoryPinnedBytes; got != heldBytes {
		t.Fatalf("MemoryPinnedBytes %d, want the %d bytes readers hold outside the tier", got, heldBytes)
	}
	for _, r := range readers {
		if _, err := io.Copy(io.Discard, r); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Stats().MemoryPinnedBytes; got != 0 {
		t.Fatalf("MemoryPinnedBytes %d after the readers finished, want 0", got)
	}
	if got := c.mem.MaxCost(); got != cfg.MemoryBytes {
		t.Fatalf("tier budget %d after the readers finished, want %d", got, cfg.MemoryBytes)
	}
}

// TestPromotionBounds: a chunk whose gate opens is not promoted while
// maxPromotions promotions are in flight; while pinned chunks leave the
// memory tier too little budget for it, the gate is not even asked (a
// promotion would be read and declined), so it stays ready; with neither,
// the chunk is promoted.
func TestPromotionBounds(t *testing.T) {
	dir := t.TempDir()
	o := newFakeOrigin()
	data := randomBytes(4<<10, 41)
	o.put("b", "k", data)
	warmDisk(t, diskConfig(dir), o, "b", "k")

	c := newTestCache(t, diskConfig(dir), failingOpens{o, t}, nil)
	chunks := c.span.count(int64(len(data)))
	// Whole reads count a chunk each at every chunk's gate (diskread.go),
	// which opens at two; a last read shows whether they were promoted,
	// and counts one more.
	reads := func(stage string, n int, wantMemory bool) {
		t.Helper()
		for range n {
			if got, _ := readAll(t, c, "b", "k"); !bytes.Equal(got, data) {
				t.Fatalf("%s: wrong bytes", stage)
			}
		}
		settle(t, c)
		before := c.Stats()
		readAll(t, c, "b", "k")
		settle(t, c) // what this read offered is applied under this stage's budget
		after := c.Stats()
		if got := after.MemoryHits - before.MemoryHits; (got == chunks) != wantMemory || (got != 0 && got != chunks) {
			t.Fatalf("%s: %d of %d chunks from memory, want promoted = %v", stage, got, chunks, wantMemory)
		}
	}
	c.promoting.Store(maxPromotions)
	reads("promotions in flight", 2, false) // the gate opened and closed: one counted since
	c.promoting.Store(0)
	squeeze := c.cfg.MemoryBytes - c.cfg.ChunkSize/2
	c.chargePinned(squeeze)
	reads("tier squeezed by pinned chunks", 2, false)
	c.chargePinned(-squeeze)
	reads("room again, gate ready", 1, true)
}
