//go:build unix

package cache

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"syscall"
	"testing"
)

// arenaConfig has chunks of arena size and a memory tier of a few chunks.
func arenaConfig() Config {
	return Config{ChunkSize: 128 << 10, Readahead: 128 << 10, MemoryBytes: 4 << 20}
}

func needArena(t *testing.T, c *Cache) {
	t.Helper()
	if c.arena == nil {
		if runtime.GOOS == "linux" {
			t.Fatal("no memory arena on Linux")
		}
		t.Skip("the memory arena needs memfd (Linux)")
	}
}

// fileRecorder is a FileWriter that checks every file span against the
// bytes it stands for and keeps what it was given.
type fileRecorder struct {
	t     *testing.T
	buf   bytes.Buffer
	files int // WriteFile calls
}

func (w *fileRecorder) Write(p []byte) (int, error) { return w.buf.Write(p) }

func (w *fileRecorder) WriteFile(p []byte, fd uintptr, off int64) (int, error) {
	w.files++
	got := make([]byte, len(p))
	// syscall, not os.NewFile: an *os.File would close fd when collected.
	if n, err := syscall.Pread(int(fd), got, off); err != nil || n != len(p) {
		w.t.Fatalf("pread arena at %d: %d bytes, %v", off, n, err)
	}
	if !bytes.Equal(got, p) {
		w.t.Fatalf("file span at %d (%d bytes) differs from the bytes it stands for", off, len(p))
	}
	return w.buf.Write(got)
}

// TestArenaWriteFile: memory hits of arena-size chunks reach a FileWriter
// as file spans holding exactly the object's bytes, also for a range that
// straddles two chunks.
func TestArenaWriteFile(t *testing.T) {
	o := newFakeOrigin()
	data := randomBytes(1<<20, 11)
	etag := o.put("b", "k", data)
	c := newTestCache(t, arenaConfig(), o, nil)
	needArena(t, c)
	readAll(t, c, "b", "k")
	settle(t, c)
	for _, r := range [][2]int64{{0, 1 << 20}, {100<<10 + 7, 64 << 10}, {128 << 10, 64 << 10}, {1<<20 - 1, 1}} {
		rc, err := c.Open(context.Background(), "b", "k", etag, r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		if s := rc.(*Reader).CacheStatus(); s != StatusHit {
			t.Fatalf("range %v: status %s, want HIT", r, s)
		}
		w := &fileRecorder{t: t}
		if _, err := rc.(io.WriterTo).WriteTo(w); err != nil {
			t.Fatal(err)
		}
		rc.Close()
		if !bytes.Equal(w.buf.Bytes(), data[r[0]:r[0]+r[1]]) {
			t.Fatalf("range %v: wrong bytes", r)
		}
		if w.files == 0 {
			t.Fatalf("range %v: no file span: the memory hit did not come from the arena", r)
		}
	}
}

// TestArenaEvictedChunkKeptWhileRead: a chunk the memory tier lets go while
// a reader still sends it keeps its slot and bytes until that reader
// closes; only then is the slot free for another chunk.
func TestArenaEvictedChunkKeptWhileRead(t *testing.T) {
	o := newFakeOrigin()
	a, b := randomBytes(128<<10, 1), randomBytes(128<<10, 2)
	etagA := o.put("b", "a", a)
	o.put("b", "b", b)
	c := newTestCache(t, arenaConfig(), o, nil)
	needArena(t, c)
	readAll(t, c, "b", "a")
	settle(t, c)
	if n := c.arena.used.Load(); n != 1 {
		t.Fatalf("%d arena slots used after one chunk, want 1", n)
	}
	rc, err := c.Open(context.Background(), "b", "a", etagA, 0, 128<<10)
	if err != nil {
		t.Fatal(err)
	}
	c.dropVersion(c.meta.get("b", "a").id) // the memory tier lets chunk 0 go
	c.mem.Wait()
	if n := c.arena.used.Load(); n != 1 {
		t.Fatalf("%d arena slots used while a reader holds the dropped chunk, want 1", n)
	}
	// Another chunk takes another slot and cannot touch the held bytes.
	readAll(t, c, "b", "b")
	settle(t, c)
	w := &fileRecorder{t: t}
	if _, err := rc.(io.WriterTo).WriteTo(w); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w.buf.Bytes(), a) {
		t.Fatal("a dropped chunk changed while a reader held it")
	}
	rc.Close()
	if n := c.arena.used.Load(); n != 1 {
		t.Fatalf("%d arena slots used after the reader closed, want 1 (only b's chunk)", n)
	}
	if got, _ := readAll(t, c, "b", "b"); !bytes.Equal(got, b) {
		t.Fatal("b's bytes wrong")
	}
}

// TestArenaFullStaysOnHeap: when every slot is taken (by chunks readers
// still hold), new chunks stay on the heap and are served all the same.
func TestArenaFullStaysOnHeap(t *testing.T) {
	o := newFakeOrigin()
	c := newTestCache(t, arenaConfig(), o, nil)
	needArena(t, c)
	// Take every slot but one, as evicted chunks still being sent would.
	held := make([]*chunk, 0, len(c.arena.free))
	for len(c.arena.free) > 0 {
		ch := c.arena.chunk(&chunk{id: newObjectID("b", "x", `"x"`, 1), data: make([]byte, arenaMin)})
		if ch == nil {
			t.Fatal("arena refused a chunk with free slots")
		}
		held = append(held, ch)
	}
	data := randomBytes(256<<10, 3)
	o.put("b", "k", data)
	if got, _ := readAll(t, c, "b", "k"); !bytes.Equal(got, data) {
		t.Fatal("wrong bytes on the miss")
	}
	settle(t, c)
	got, status := readAll(t, c, "b", "k")
	if status != StatusHit || !bytes.Equal(got, data) {
		t.Fatalf("heap hit with a full arena: status %s, equal %v", status, bytes.Equal(got, data))
	}
	for _, ch := range held {
		ch.release()
	}
	if n := c.arena.used.Load(); n != 0 {
		t.Fatalf("%d arena slots used after every holder released, want 0", n)
	}
}

// TestArenaReleasedOnClose: Close drops the memory tier's references, so
// every slot is free and the arena unmapped.
func TestArenaReleasedOnClose(t *testing.T) {
	o := newFakeOrigin()
	o.put("b", "k", randomBytes(1<<20, 4))
	c, err := New(arenaConfig(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	needArena(t, c)
	readAll(t, c, "b", "k")
	settle(t, c)
	if c.arena.used.Load() == 0 {
		t.Fatal("no chunk in the arena")
	}
	c.Close()
	if n := c.arena.used.Load(); n != 0 {
		t.Fatalf("%d arena slots used after Close, want 0", n)
	}
}
