package cache

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
)

// TestDiskTrustWindow covers the trust path: a block verified by a read is
// served by later reads without a checksum for trustWindow, and no longer.
// Damage written into a chunk file after its blocks were verified (the
// file rewritten in place, as a bad disk or an operator might) is not seen
// while the window lasts; once the clock passes it, the next read verifies
// again, counts the corruption, deletes the file and serves byte-exact data
// from the origin. A restart forgets all trust (TestDiskCorruption, "restart" cases).
func TestDiskTrustWindow(t *testing.T) {
	const chunk = 1 << 20
	dir := t.TempDir()
	o := newFakeOrigin()
	data := randomBytes(2*chunk, 80)
	etag := o.put("b", "k", data)
	clk := newFakeClock()
	c := newTestCache(t, diskOnlyConfig(dir, chunk), o, clk)
	readAll(t, c, "b", "k")
	settle(t, c)
	if got, status := readAll(t, c, "b", "k"); !bytes.Equal(got, data) || status != StatusHit {
		t.Fatalf("read from disk: status %s", status)
	}
	var victim string
	for _, f := range chunkFiles(t, dir) {
		if strings.HasSuffix(f, "-0"+fileSuffix) {
			victim = f
		}
	}
	st, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	middle := st.Size() / 2
	flipByte(t, victim, middle) // same file, rewritten in place
	damaged := middle - (st.Size() - chunk)
	opens := o.opens.Load()
	ctx := context.Background()

	// Inside the window the verified block is trusted: the damage is not
	// detected (see "Disk tier: trust" in docs/design.md for why this is
	// acceptable and what bounds it).
	clk.Advance(trustWindow - clockTick)
	readRange(t, c, ctx, "b", "k", etag, damaged-100, 200)
	if st := c.Stats(); st.DiskCorrupt != 0 || o.opens.Load() != opens {
		t.Fatalf("inside the window: stats %+v", st)
	}

	// Past the window every block is verified again before it is served.
	clk.Advance(clockTick)
	got, status := readAll(t, c, "b", "k")
	if !bytes.Equal(got, data) {
		t.Fatal("served damaged bytes after the trust window")
	}
	if st := c.Stats(); st.DiskCorrupt != 1 || o.opens.Load() != opens+1 || status != StatusHit {
		t.Fatalf("after the window: status %s, stats %+v, origin opens %d", status, st, o.opens.Load()-opens)
	}
	// The file was deleted and written again from the origin's bytes.
	settle(t, c)
	if b, err := os.ReadFile(victim); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	} else if err == nil {
		if _, d, err := parseChunkFile(b); err != nil || !bytes.Equal(d, data[:chunk]) {
			t.Fatalf("chunk 0 on disk after the refetch: %v", err)
		}
	}
	// A trusted range of the other chunk is still served from its file.
	if got, _ := readRange(t, c, ctx, "b", "k", etag, chunk+5, 1000); !bytes.Equal(got, data[chunk+5:chunk+1005]) {
		t.Fatal("chunk 1 bytes")
	}
}

// TestDiskOpenFilesBounded: more chunk files than maxOpenChunks are read
// twice; the table of open files never exceeds its bound, every byte is
// right, and closing the cache closes every descriptor it kept.
func TestDiskOpenFilesBounded(t *testing.T) {
	const chunk, n = 1 << 10, maxOpenChunks + 100
	dir := t.TempDir()
	o := newFakeOrigin()
	data := randomBytes(n*chunk, 81)
	o.put("b", "k", data)
	cfg := Config{ChunkSize: chunk, MemoryBytes: chunk, Readahead: 64 * chunk, DiskDir: dir, Policy: "lru"}
	c, err := New(cfg, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The write queue drops what it cannot take: read until all is on disk.
	for i := 0; c.Stats().DiskChunks < n; i++ {
		if i == 50 {
			t.Fatalf("only %d of %d chunks on disk", c.Stats().DiskChunks, n)
		}
		readAll(t, c, "b", "k")
		settle(t, c)
	}
	for range 2 {
		if got, _ := readAll(t, c, "b", "k"); !bytes.Equal(got, data) {
			t.Fatal("bytes")
		}
		c.disk.mu.Lock()
		open := len(c.disk.files)
		c.disk.mu.Unlock()
		if open > maxOpenChunks || open < maxOpenChunks/2 {
			t.Fatalf("%d chunk files open, want at most %d (and most of them)", open, maxOpenChunks)
		}
	}
	if st := c.Stats(); st.DiskCorrupt != 0 || st.DiskErrors != 0 || st.DiskReadBuffers != 0 {
		t.Fatalf("stats %+v", st)
	}
	held := c.disk.ring[0]
	c.Close()
	if held == nil || held.refs.Load() != 0 {
		t.Fatalf("an open file still has references after Close")
	}
	var b [1]byte
	if _, err := preadChunk(held.fd, b[:], 0); err == nil {
		t.Fatal("descriptor still open after Close")
	}
}
