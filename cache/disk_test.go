package cache

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/origin"
)

func diskConfig(dir string) Config {
	cfg := smallConfig()
	cfg.DiskDir = dir
	return cfg
}

// chunkFiles lists the chunk files under dir.
func chunkFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if _, ok := parseFileName(d.Name()); ok {
				out = append(out, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// failingOpens wraps an origin and fails the test on any Open.
type failingOpens struct {
	Origin
	t testing.TB
}

func (f failingOpens) Open(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error) {
	f.t.Errorf("unexpected origin Open %s/%s [%d,+%d)", bucket, key, off, n)
	return nil, origin.ErrUnavailable
}

// TestDiskRestartWarm: chunks written by one Cache are served by the next
// one on the same directory without reading the origin.
func TestDiskRestartWarm(t *testing.T) {
	dir := t.TempDir()
	o := newFakeOrigin()
	data := randomBytes(5<<10+7, 40)
	o.put("b", "k", data)
	c1, err := New(diskConfig(dir), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, c1, "b", "k")
	settle(t, c1)
	if st := c1.Stats(); st.DiskChunks != 6 || st.DiskWrites != 6 {
		t.Fatalf("stats %+v", st)
	}
	c1.Close()
	if n := len(chunkFiles(t, dir)); n != 6 {
		t.Fatalf("%d chunk files, want 6", n)
	}
	if b, err := os.ReadFile(filepath.Join(dir, markerName)); err != nil || !bytes.Equal(b, markerContent) {
		t.Fatalf("marker %q, %v", b, err)
	}

	c2 := newTestCache(t, diskConfig(dir), failingOpens{o, t}, nil)
	if st := c2.Stats(); st.DiskChunks != 6 {
		t.Fatalf("rebuilt index has %d chunks", st.DiskChunks)
	}
	// Two whole reads from disk pass the promotion gate (diskread.go).
	for i := 1; i <= 2; i++ {
		got, status := readAll(t, c2, "b", "k")
		if !bytes.Equal(got, data) || status != StatusHit {
			t.Fatalf("read %d: status %s, equal %v", i, status, bytes.Equal(got, data))
		}
		if st := c2.Stats(); st.DiskHits != 6*int64(i) || st.BytesFromDisk != int64(i*len(data)) || st.DiskReadBuffers != 0 {
			t.Fatalf("read %d: stats %+v", i, st)
		}
	}
	// Promoted to memory: the third read does not touch the disk.
	settle(t, c2)
	readAll(t, c2, "b", "k")
	if st := c2.Stats(); st.DiskHits != 12 || st.MemoryHits != 6 {
		t.Fatalf("after promotion %+v", st)
	}
}

// TestDiskCorruption damages the file of chunk 0 in several ways, with the
// index built before (same process) or after (restart) the damage: the
// damage is never served. Small chunks (one checked block) are deleted
// and refetched whole; in a multi-block chunk a range that does not touch
// the damaged block is served from disk without noticing, and a read that
// touches it gets the blocks before from disk, the rest of the chunk from
// the origin, the corruption counted and the file deleted, then rewritten.
func TestDiskCorruption(t *testing.T) {
	small := func(dir string) Config { return diskConfig(dir) }
	blocks := func(dir string) Config { return diskOnlyConfig(dir, 1<<20) }
	for _, tc := range []struct {
		name   string
		config func(dir string) Config
		size   int
		// damage gets the file's healthy size.
		damage func(t *testing.T, path string, size int64)
		check  func(t *testing.T, d *damagedChunk)
	}{
		{"flip data byte", small, 2 << 10, func(t *testing.T, path string, _ int64) { flipByte(t, path, -1) }, chunkRefetched},
		{"flip identity byte", small, 2 << 10, func(t *testing.T, path string, _ int64) { flipByte(t, path, fileHeaderLen+1) }, chunkRefetched},
		{"flip checksum", small, 2 << 10, func(t *testing.T, path string, _ int64) { flipByte(t, path, 5) }, chunkRefetched},
		{"truncate", small, 2 << 10, func(t *testing.T, path string, _ int64) { truncate(t, path, -100) }, chunkRefetched},
		{"truncate header", small, 2 << 10, func(t *testing.T, path string, _ int64) { truncate(t, path, 10) }, chunkRefetched},
		{"empty", small, 2 << 10, func(t *testing.T, path string, _ int64) { truncate(t, path, 0) }, chunkRefetched},
		{"append", small, 2 << 10, func(t *testing.T, path string, _ int64) { appendBytes(t, path, []byte("junk")) }, chunkRefetched},
		{"bad data length", small, 2 << 10, func(t *testing.T, path string, _ int64) { patchUint64(t, path, 16, 5) }, chunkRefetched},
		// In block 31 of 64.
		{"flip middle block", blocks, 2<<20 + 100, func(t *testing.T, path string, size int64) { flipByte(t, path, size/2) }, blockRefetched},
	} {
		for _, restart := range []bool{false, true} {
			name := tc.name
			if restart {
				name += "/restart"
			}
			t.Run(name, func(t *testing.T) {
				d := &damagedChunk{dir: t.TempDir(), o: newFakeOrigin(), data: randomBytes(tc.size, 41)}
				d.etag = d.o.put("b", "k", d.data)
				cfg := tc.config(d.dir)
				c, err := New(cfg, d.o, nil)
				if err != nil {
					t.Fatal(err)
				}
				readAll(t, c, "b", "k")
				settle(t, c)
				for _, f := range chunkFiles(t, d.dir) {
					if strings.HasSuffix(f, "-0"+fileSuffix) {
						d.victim = f
					}
				}
				if d.victim == "" {
					t.Fatal("no file for chunk 0")
				}
				c.Close()
				st, err := os.Stat(d.victim)
				if err != nil {
					t.Fatal(err)
				}
				d.size = st.Size()
				if restart {
					tc.damage(t, d.victim, d.size)
					d.c = newTestCache(t, cfg, d.o, nil)
				} else {
					// Index built from the healthy file, damage afterwards.
					d.c = newTestCache(t, cfg, d.o, nil)
					tc.damage(t, d.victim, d.size)
				}
				d.opens = d.o.opens.Load()
				tc.check(t, d)
			})
		}
	}
}

// damagedChunk is a cache whose file of chunk 0 TestDiskCorruption damaged.
type damagedChunk struct {
	c      *Cache
	o      *fakeOrigin
	dir    string
	data   []byte
	etag   string
	victim string // the file of chunk 0
	size   int64  // its size before the damage
	opens  int64  // origin opens before the checks
}

// chunkRefetched: a damaged small chunk is deleted, refetched and served
// correctly.
func chunkRefetched(t *testing.T, d *damagedChunk) {
	c, o := d.c, d.o
	got, status := readAll(t, c, "b", "k")
	if !bytes.Equal(got, d.data) {
		t.Fatal("served damaged bytes")
	}
	if status != StatusPartial {
		t.Fatalf("status %s, want PARTIAL (chunk 0 refetched)", status)
	}
	if st := c.Stats(); st.DiskCorrupt != 1 || st.DiskHits != 1 || o.opens.Load() != d.opens+1 {
		t.Fatalf("stats %+v, origin opens %d", st, o.opens.Load()-d.opens)
	}
	settle(t, c)
	if n := len(chunkFiles(t, d.dir)); n != 2 {
		t.Fatalf("after refetch %d files, want 2", n)
	}
}

// blockRefetched: in a multi-block chunk damaged in its middle block, a
// range before the damage is a disk hit; a whole read serves the blocks
// before the damage from disk and the rest from the origin, and the file
// is rewritten.
func blockRefetched(t *testing.T, d *damagedChunk) {
	const chunk = 1 << 20
	c, o, data, opens := d.c, d.o, d.data, d.opens
	middle := d.size / 2
	ctx := context.Background()

	// Blocks 6 to 10 only: the damage is not read, nor served.
	got, status := readRange(t, c, ctx, "b", "k", d.etag, 100_000, 64<<10)
	if !bytes.Equal(got, data[100_000:100_000+64<<10]) || status != StatusHit {
		t.Fatalf("range before the damage: status %s, equal %v", status, bytes.Equal(got, data[100_000:100_000+64<<10]))
	}
	if st := c.Stats(); st.DiskCorrupt != 0 || st.DiskHits != 1 || o.opens.Load() != opens {
		t.Fatalf("after the range: stats %+v", st)
	}

	got, _ = readAll(t, c, "b", "k")
	if !bytes.Equal(got, data) {
		t.Fatal("served damaged bytes")
	}
	st2 := c.Stats()
	if st2.DiskCorrupt != 1 || o.opens.Load() != opens+1 || st2.MemoryHits != 0 {
		t.Fatalf("after the whole read: stats %+v, origin opens %d", st2, o.opens.Load()-opens)
	}
	// The read holding the flipped byte fails whole; what was read
	// before it was served.
	damaged := middle - (d.size - chunk) // offset in the chunk's data
	if want := 64<<10 + damaged/diskReadSize*diskReadSize + (chunk + 100); st2.BytesFromDisk != want {
		t.Fatalf("%d bytes from disk, want %d (the range, the reads before the damage, chunks 1 and 2)", st2.BytesFromDisk, want)
	}
	if _, err := os.Stat(d.victim); !errors.Is(err, fs.ErrNotExist) {
		// Deleted, then rewritten by the refetch: it must verify now.
		settle(t, c)
		b, err := os.ReadFile(d.victim)
		if err != nil {
			t.Fatal(err)
		}
		if _, dd, err := parseChunkFile(b); err != nil || !bytes.Equal(dd, data[:chunk]) {
			t.Fatalf("rewritten file: %v", err)
		}
	}
	settle(t, c)
	if n := len(chunkFiles(t, d.dir)); n != 3 {
		t.Fatalf("after refetch %d files, want 3", n)
	}
}

func flipByte(t *testing.T, path string, at int64) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if at < 0 {
		at += int64(len(b))
	}
	if at < int64(len(b)) {
		b[at] ^= 0x40
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, path string, size int64) {
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if size < 0 {
		size += st.Size()
	}
	if size > st.Size() {
		return
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func appendBytes(t *testing.T, path string, extra []byte) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.HasSuffix(b, extra) {
		return
	}
	if err := os.WriteFile(path, append(b, extra...), 0o644); err != nil {
		t.Fatal(err)
	}
}

func patchUint64(t *testing.T, path string, at int, v uint64) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) >= at+8 {
		binary.LittleEndian.PutUint64(b[at:], v)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDiskBudget: the disk tier stays within its byte budget, evicting
// least recently used chunks under the lru policy and admitting by
// frequency under tinylfu, and a budget below one chunk stores nothing
// without failing requests.
func TestDiskBudget(t *testing.T) {
	t.Run("tiny", func(t *testing.T) {
		dir := t.TempDir()
		cfg := diskConfig(dir)
		cfg.DiskBytes = 100
		o := newFakeOrigin()
		data := randomBytes(3<<10, 42)
		o.put("b", "k", data)
		c := newTestCache(t, cfg, o, nil)
		if got, _ := readAll(t, c, "b", "k"); !bytes.Equal(got, data) {
			t.Fatal("bytes")
		}
		settle(t, c)
		if st := c.Stats(); st.DiskChunks != 0 || st.DiskErrors != 0 || len(chunkFiles(t, dir)) != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("lru", func(t *testing.T) {
		dir := t.TempDir()
		cfg := diskConfig(dir)
		cfg.Policy = "lru"
		fileSize := int64(fileHeaderLen + 1 + 1 + 34 + 4 + 1<<10) // bucket "b", key "x", quoted MD5 ETag, one block sum
		cfg.DiskBytes = 3*fileSize + fileSize/2
		o := newFakeOrigin()
		c := newTestCache(t, cfg, o, nil)
		for _, k := range []string{"1", "2", "3", "4", "5"} {
			o.put("b", k, randomBytes(1<<10, 43))
			readAll(t, c, "b", k)
			settle(t, c)
		}
		st := c.Stats()
		if st.DiskChunks != 3 || st.DiskBytes != 3*fileSize || len(chunkFiles(t, dir)) != 3 {
			t.Fatalf("stats %+v, files %d", st, len(chunkFiles(t, dir)))
		}
		// The newest three survive.
		for _, k := range []string{"3", "4", "5"} {
			id := c.meta.get("b", k).id
			if !c.disk.has(id, 0) {
				t.Fatalf("chunk of %s evicted, want the oldest gone", k)
			}
		}
		// A restart with a smaller budget trims to it.
		c.Close()
		cfg.DiskBytes = fileSize
		c2 := newTestCache(t, cfg, o, nil)
		if st := c2.Stats(); st.DiskChunks != 1 || len(chunkFiles(t, dir)) != 1 {
			t.Fatalf("after restart %+v", st)
		}
	})
}

// TestDiskAdmission: under tinylfu a full disk tier writes a new chunk
// only once it has been read more often than the chunk it would displace;
// reads served by the memory tier count, and the writes skipped are
// counted.
func TestDiskAdmission(t *testing.T) {
	dir := t.TempDir()
	cfg := diskConfig(dir)
	fileSize := int64(fileHeaderLen + 1 + 1 + 34 + 4 + 1<<10) // bucket "b", key "x", quoted MD5 ETag, one block sum
	cfg.DiskBytes = 3*fileSize + fileSize/2
	o := newFakeOrigin()
	c := newTestCache(t, cfg, o, nil)
	for i, k := range []string{"1", "2", "3", "4", "5"} {
		o.put("b", k, randomBytes(1<<10, uint64(44+i)))
		readAll(t, c, "b", k)
		settle(t, c)
	}
	// 1-3 filled the room; 4 and 5, read once like each of them, lose the
	// tie to the incumbents.
	if st := c.Stats(); st.DiskWrites != 3 || st.DiskRejected != 2 || st.DiskChunks != 3 {
		t.Fatalf("stats %+v", st)
	}
	for _, k := range []string{"1", "2", "3"} {
		if !c.disk.has(c.meta.get("b", k).id, 0) {
			t.Fatalf("chunk of %s not on disk", k)
		}
	}
	// Two more reads of 4, served from memory, then it leaves memory: its
	// next fill beats the least recent of 1-3.
	readAll(t, c, "b", "4")
	if _, status := readAll(t, c, "b", "4"); status != StatusHit {
		t.Fatalf("read of 4 from memory: %s", status)
	}
	id4 := c.meta.get("b", "4").id
	c.mem.Del(memKey(id4, 0))
	c.mem.Wait()
	if _, status := readAll(t, c, "b", "4"); status != StatusMiss {
		t.Fatalf("read of 4 after leaving memory: %s", status)
	}
	settle(t, c)
	if st := c.Stats(); st.DiskWrites != 4 || st.DiskRejected != 2 || st.DiskChunks != 3 || !c.disk.has(id4, 0) {
		t.Fatalf("after 4 became popular: stats %+v, on disk %v", st, c.disk.has(id4, 0))
	}
}

// TestDiskIOErrors: when the disk cannot be written or read, requests are
// still served (from memory and origin) and the failures are counted.
func TestDiskIOErrors(t *testing.T) {
	t.Run("write", func(t *testing.T) {
		dir := t.TempDir()
		o := newFakeOrigin()
		data := randomBytes(2<<10, 44)
		o.put("b", "k", data)
		c := newTestCache(t, diskConfig(dir), o, nil)
		// Make the temp directory unusable (tests run as root, so
		// permission bits would not stop us).
		if err := os.RemoveAll(filepath.Join(dir, "tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "tmp"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if got, _ := readAll(t, c, "b", "k"); !bytes.Equal(got, data) {
			t.Fatal("bytes")
		}
		settle(t, c)
		if st := c.Stats(); st.DiskErrors != 2 || st.DiskChunks != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("read", func(t *testing.T) {
		dir := t.TempDir()
		o := newFakeOrigin()
		data := randomBytes(1<<10, 45)
		o.put("b", "k", data)
		warmDisk(t, diskConfig(dir), o, "b", "k")
		c := newTestCache(t, diskConfig(dir), o, nil)
		// Replace the chunk file by a directory: open works, read fails.
		f := chunkFiles(t, dir)[0]
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(f, 0o755); err != nil {
			t.Fatal(err)
		}
		got, status := readAll(t, c, "b", "k")
		if !bytes.Equal(got, data) || status != StatusMiss {
			t.Fatalf("status %s", status)
		}
		if st := c.Stats(); st.DiskErrors+st.DiskCorrupt != 1 || st.DiskHits != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// TestDiskQueueFull: with the writer stuck, fills drop chunks instead of
// waiting, so serving is not slowed by the disk.
func TestDiskQueueFull(t *testing.T) {
	dir := t.TempDir()
	cfg := diskConfig(dir)
	cfg.DiskQueue = 1
	o := newFakeOrigin()
	data := randomBytes(8<<10, 46)
	o.put("b", "k", data)
	c := newTestCache(t, cfg, o, nil)
	stuck := make(chan struct{})
	entered := make(chan struct{}, 16)
	c.disk.beforeWrite = func() {
		entered <- struct{}{}
		<-stuck
	}
	// The whole read completes while the writer is blocked.
	if got, _ := readAll(t, c, "b", "k"); !bytes.Equal(got, data) {
		t.Fatal("bytes")
	}
	testenv.WaitFor(t, 10*time.Second, "fills to finish", func() bool { return c.Stats().InflightChunks == 0 })
	if st := c.Stats(); st.DiskDropped < 8-2 {
		t.Fatalf("dropped %d chunks, want at least 6 of 8", st.DiskDropped)
	}
	close(stuck)
	settle(t, c)
	if st := c.Stats(); st.DiskWrites+st.DiskDropped != 8 {
		t.Fatalf("stats %+v", st)
	}
}

// TestDiskScanRemovesForeignFiles: in a directory the cache has claimed
// (it carries the marker), files that are not chunk files of ours are
// deleted at start; leftovers in tmp too.
func TestDiskScanRemovesForeignFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, markerName), markerContent, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"00/junk", "ab/0000000000000000-0000000000000000-1", "tmp/chunk-123"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := newTestCache(t, diskConfig(dir), newFakeOrigin(), nil)
	if st := c.Stats(); st.DiskChunks != 0 {
		t.Fatalf("stats %+v", st)
	}
	for _, p := range []string{"00/junk", "ab/0000000000000000-0000000000000000-1", "tmp/chunk-123"} {
		if _, err := os.Stat(filepath.Join(dir, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s survived the scan: %v", p, err)
		}
	}
}

// TestDiskPurge: purges remove disk chunks too, including after a restart
// when the keys must be read from the file headers.
func TestDiskPurge(t *testing.T) {
	dir := t.TempDir()
	o := newFakeOrigin()
	c1, err := New(diskConfig(dir), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"p/1", "p/2", "q"} {
		o.put("b", k, randomBytes(2<<10, 47))
		readAll(t, c1, "b", k)
	}
	settle(t, c1)
	if n := c1.Purge("b", "q"); n != 1 || len(chunkFiles(t, dir)) != 4 {
		t.Fatalf("Purge = %d, files %d", n, len(chunkFiles(t, dir)))
	}
	c1.Close()
	c := newTestCache(t, diskConfig(dir), o, nil)
	if n := c.PurgePrefix("b", "p/"); n != 2 {
		t.Fatalf("PurgePrefix after restart = %d", n)
	}
	if st := c.Stats(); st.DiskChunks != 0 || len(chunkFiles(t, dir)) != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestDiskETagChangeDropsOldVersion: the old version's disk chunks are
// deleted when the metadata tier sees a new ETag.
func TestDiskETagChangeDropsOldVersion(t *testing.T) {
	dir := t.TempDir()
	o := newFakeOrigin()
	clk := newFakeClock()
	c := newTestCache(t, diskConfig(dir), o, clk)
	o.put("b", "k", randomBytes(2<<10, 48))
	readAll(t, c, "b", "k")
	settle(t, c)
	o.put("b", "k", randomBytes(3<<10, 49))
	clk.Advance(31 * time.Second)
	readAll(t, c, "b", "k")
	settle(t, c)
	if st := c.Stats(); st.DiskChunks != 3 || len(chunkFiles(t, dir)) != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFileNameRoundTrip(t *testing.T) {
	for _, k := range []diskKey{{0, 0, 0}, {1<<64 - 1, 1<<64 - 1, 1 << 62}, {0xab00000000000001, 42, 255}} {
		name := k.fileName()
		got, ok := parseFileName(name)
		if !ok || got != k {
			t.Fatalf("%+v -> %q -> %+v, %v", k, name, got, ok)
		}
	}
	for _, bad := range []string{"", "x", "0000000000000000-0000000000000000-", "0000000000000000-0000000000000000-01",
		"0000000000000000-0000000000000000-A", "000000000000000g-0000000000000000-1", "0000000000000000_0000000000000000-1",
		"0000000000000000-0000000000000000-10000000000000000"} {
		if _, ok := parseFileName(bad); ok {
			t.Errorf("parseFileName(%q) accepted", bad)
		}
	}
}

func FuzzParseFileName(f *testing.F) {
	f.Add("0000000000000000-0000000000000000-0")
	f.Add("ab00000000000001-000000000000002a-ff")
	f.Add("0000000000000000-0000000000000000-01")
	f.Fuzz(func(t *testing.T, name string) {
		k, ok := parseFileName(name)
		if !ok {
			return
		}
		if k.fileName() != name {
			t.Fatalf("%q parsed to %+v which names %q", name, k, k.fileName())
		}
	})
}

func FuzzParseChunkFile(f *testing.F) {
	ch := &chunk{id: newObjectID("bucket", "some/key", `"etag"`, 100), idx: 3, data: []byte("hello chunk")}
	hdr, _ := encodeHeader(ch)
	f.Add(append(hdr, ch.data...))
	big := &chunk{id: ch.id, idx: 0, data: randomBytes(2*diskBlockSize+10, 74)}
	hdr, _ = encodeHeader(big)
	f.Add(append(hdr, big.data...))
	f.Add(encodeV1(ch))
	f.Add([]byte("EPC2"))
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, data, err := parseChunkFile(b)
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("error %v is not errCorrupt", err)
			}
			return
		}
		// Whatever parses must re-encode to the same bytes.
		id := newObjectID(string(h.bucket), string(h.key), string(h.etag), 0)
		hdr, err := encodeHeader(&chunk{id: id, idx: h.idx, data: data})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(append(hdr, data...), b) {
			t.Fatal("parsed file does not re-encode to itself")
		}
	})
}

// diskOnlyConfig has a memory tier of one chunk, which ristretto never
// admits a chunk into (the cost includes its bookkeeping): every hit comes
// from the disk tier.
func diskOnlyConfig(dir string, chunk int64) Config {
	return Config{ChunkSize: chunk, MemoryBytes: chunk, Readahead: 4 * chunk, DiskDir: dir}
}

// encodeV1 writes a chunk file of format version 1 (one checksum over the
// whole file, names without a suffix), as the previous release did.
func encodeV1(ch *chunk) []byte {
	id := ch.id
	h := make([]byte, 32)
	copy(h, "EPC1")
	binary.LittleEndian.PutUint64(h[8:], uint64(ch.idx))
	binary.LittleEndian.PutUint64(h[16:], uint64(len(ch.data)))
	binary.LittleEndian.PutUint16(h[24:], uint16(len(id.bucket)))
	binary.LittleEndian.PutUint16(h[26:], uint16(len(id.key)))
	binary.LittleEndian.PutUint16(h[28:], uint16(len(id.etag)))
	h = append(h, id.bucket...)
	h = append(h, id.key...)
	h = append(h, id.etag...)
	sum := crc32.Update(0, castagnoli, h[8:])
	sum = crc32.Update(sum, castagnoli, ch.data)
	binary.LittleEndian.PutUint32(h[4:], sum)
	return append(h, ch.data...)
}

// TestDiskOldFormatDiscarded: valid version 1 files are deleted at start
// and counted, never read; a version 1 file under a version 2 name is
// corrupt, never served.
func TestDiskOldFormatDiscarded(t *testing.T) {
	dir := t.TempDir()
	// A directory an earlier build claimed: its marker is there.
	if err := os.WriteFile(filepath.Join(dir, markerName), markerContent, 0o644); err != nil {
		t.Fatal(err)
	}
	o := newFakeOrigin()
	data := randomBytes(2<<10, 71)
	etag := o.put("b", "k", data)
	id := newObjectID("b", "k", etag, int64(len(data)))
	write := func(name string, b []byte) string {
		k := diskKey{id.kh, id.eh, 0}
		path := filepath.Join(dir, k.subdir(), name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// Old files of both chunks, with stale bytes so serving them would show.
	stale := randomBytes(2<<10, 72)
	var v1 []string
	for idx := range int64(2) {
		k := diskKey{id.kh, id.eh, idx}
		v1 = append(v1, write(strings.TrimSuffix(k.fileName(), fileSuffix), encodeV1(&chunk{id: id, idx: idx, data: stale[idx<<10 : (idx+1)<<10]})))
	}
	impostor := write(diskKey{id.kh, id.eh, 0}.fileName(), encodeV1(&chunk{id: id, idx: 0, data: stale[:1<<10]}))

	c := newTestCache(t, diskConfig(dir), o, nil)
	if st := c.Stats(); st.DiskOldFormat != 2 || st.DiskChunks != 1 {
		t.Fatalf("stats after start %+v", st)
	}
	for _, p := range v1 {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("version 1 file %s survived: %v", p, err)
		}
	}
	got, status := readAll(t, c, "b", "k")
	if !bytes.Equal(got, data) || status != StatusMiss {
		t.Fatalf("status %s, equal %v", status, bytes.Equal(got, data))
	}
	if st := c.Stats(); st.DiskCorrupt != 1 || st.DiskHits != 0 {
		t.Fatalf("stats %+v", st)
	}
	settle(t, c)
	b, err := os.ReadFile(impostor)
	if err != nil {
		t.Fatal(err)
	}
	if _, d, err := parseChunkFile(b); err != nil || !bytes.Equal(d, data[:1<<10]) {
		t.Fatalf("rewritten chunk 0: %v", err)
	}
}

// TestDiskSlowReadersBoundedMemory: readers that each started on a
// different disk-tier chunk and then stalled (slow clients) hold one pooled
// block buffer each, not a chunk: the bytes allocated while they open and
// start reading stay far below one chunk per reader, and a reader between
// writes holds no buffer at all. Once those blocks are verified (trusted,
// diskfd.go), stalled readers of them hold no buffer even mid-read.
func TestDiskSlowReadersBoundedMemory(t *testing.T) {
	const chunk, readers = 1 << 20, 16
	dir := t.TempDir()
	o := newFakeOrigin()
	data := randomBytes(readers*chunk, 73)
	etag := o.put("b", "k", data)
	warmDisk(t, diskOnlyConfig(dir, chunk), o, "b", "k")
	// A restarted cache: nothing verified yet, every reader reads blocks.
	c := newTestCache(t, diskOnlyConfig(dir, chunk), o, nil)
	c.Wait()
	if st := c.Stats(); st.DiskChunks != readers {
		t.Fatalf("stats %+v", st)
	}
	hits0 := c.Stats().DiskHits
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rs := make([]io.ReadCloser, readers)
	for i := range rs {
		off := int64(i)*chunk + 1000
		rc, err := c.Open(ctx, "b", "k", etag, off, chunk-1000)
		if err != nil {
			t.Fatal(err)
		}
		rs[i] = rc
		var one [1]byte
		if _, err := io.ReadFull(rc, one[:]); err != nil || one[0] != data[off] {
			t.Fatalf("reader %d: %v", i, err)
		}
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > readers*chunk/4 {
		t.Fatalf("%d stalled readers allocated %d bytes, want well under a chunk (%d) each", readers, alloc, chunk)
	}
	if st := c.Stats(); st.DiskReadBuffers != readers || st.DiskHits-hits0 != readers || st.MemoryHits != 0 {
		t.Fatalf("stats with stalled readers %+v", st)
	}
	// Drain the rest of each reader's first read: between reads a reader
	// holds nothing.
	for i, rc := range rs {
		rest := make([]byte, diskReadSize-1000-1)
		if _, err := io.ReadFull(rc, rest); err != nil {
			t.Fatal(err)
		}
		off := int64(i)*chunk + 1001
		if !bytes.Equal(rest, data[off:off+int64(len(rest))]) {
			t.Fatalf("reader %d: wrong bytes", i)
		}
	}
	if st := c.Stats(); st.DiskReadBuffers != 0 {
		t.Fatalf("%d buffers held between reads", st.DiskReadBuffers)
	}
	for _, rc := range rs {
		rc.Close()
	}

	// The same ranges again: their first blocks are trusted now, so a
	// stalled reader is a file span and holds no buffer.
	for i := range rs {
		off := int64(i)*chunk + 1000
		rc, err := c.Open(ctx, "b", "k", etag, off, 2000)
		if err != nil {
			t.Fatal(err)
		}
		rs[i] = rc
		var one [1]byte
		if _, err := io.ReadFull(rc, one[:]); err != nil || one[0] != data[off] {
			t.Fatalf("trusted reader %d: %v", i, err)
		}
	}
	if st := c.Stats(); st.DiskReadBuffers != 0 || st.DiskCorrupt != 0 {
		t.Fatalf("stalled readers of trusted blocks hold %d buffers (stats %+v)", st.DiskReadBuffers, st)
	}
	for i, rc := range rs {
		rest, err := io.ReadAll(rc)
		off := int64(i)*chunk + 1001
		if err != nil || !bytes.Equal(rest, data[off:off+1999]) {
			t.Fatalf("trusted reader %d: wrong bytes (%v)", i, err)
		}
		rc.Close()
	}
}

// stallWriter is a slow client: its first Write blocks until release is
// closed, then it keeps what it is given.
type stallWriter struct {
	blocked chan<- struct{}
	release <-chan struct{}
	got     bytes.Buffer
}

func (w *stallWriter) Write(p []byte) (int, error) {
	if w.got.Len() == 0 {
		w.blocked <- struct{}{}
		<-w.release
	}
	return w.got.Write(p)
}

// TestDiskSlowWritersBoundedMemory: concurrent readers served through
// WriteTo (as fasthttp serves bodies) whose clients all stall in their
// first write hold one pooled read buffer each, never a chunk; once the
// clients drain, every byte is right and no buffer is held.
func TestDiskSlowWritersBoundedMemory(t *testing.T) {
	const chunk, readers = 1 << 20, 16
	dir := t.TempDir()
	o := newFakeOrigin()
	data := randomBytes(readers*chunk, 76)
	etag := o.put("b", "k", data)
	c := newTestCache(t, diskOnlyConfig(dir, chunk), o, nil)
	readAll(t, c, "b", "k")
	settle(t, c)
	ctx := context.Background()
	blocked, release := make(chan struct{}), make(chan struct{})
	errs := make(chan error, readers)
	ws := make([]*stallWriter, readers)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range ws {
		ws[i] = &stallWriter{blocked: blocked, release: release}
		go func(w *stallWriter, off int64) {
			rc, err := c.Open(ctx, "b", "k", etag, off, min(chunk, int64(len(data))-off))
			if err != nil {
				errs <- err
				return
			}
			defer rc.Close()
			_, err = rc.(io.WriterTo).WriteTo(w)
			errs <- err
		}(ws[i], int64(i)*chunk+777) // each straddles two chunks
	}
	deadline := time.After(10 * time.Second)
	for range readers {
		select {
		case <-blocked:
		case err := <-errs:
			t.Fatalf("reader ended before its client drained: %v", err)
		case <-deadline:
			t.Fatal("timed out waiting for the clients to stall")
		}
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > readers*chunk/4 {
		t.Fatalf("%d stalled clients cost %d bytes of allocation, want well under a chunk (%d) each", readers, alloc, chunk)
	}
	if st := c.Stats(); st.DiskReadBuffers != readers || st.MemoryHits != 0 {
		t.Fatalf("stats with stalled clients %+v", st)
	}
	close(release)
	for range readers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i, w := range ws {
		off := int64(i)*chunk + 777
		if end := min(off+chunk, int64(len(data))); !bytes.Equal(w.got.Bytes(), data[off:end]) {
			t.Fatalf("client %d: %d bytes, wrong content", i, w.got.Len())
		}
	}
	if st := c.Stats(); st.DiskReadBuffers != 0 {
		t.Fatalf("%d buffers held after every reader closed", st.DiskReadBuffers)
	}
}

// killObjects puts the objects TestDiskKillDuringWrite fills, 8 of 2 MiB,
// and returns their keys and contents.
func killObjects(o *fakeOrigin) ([]string, [][]byte) {
	keys, data := make([]string, 8), make([][]byte, 8)
	for i := range keys {
		var seed [32]byte
		seed[0] = byte(i)
		data[i] = make([]byte, 2<<20)
		rand.NewChaCha8(seed).Read(data[i])
		keys[i] = "obj" + strconv.Itoa(i)
		o.put("b", keys[i], data[i])
	}
	return keys, data
}

// TestDiskKillHelper is the process TestDiskKillDuringWrite kills: with
// EDGEPROXY_KILL_DIR set it fills the disk tier there and, in the middle of
// writing its fifth chunk file (header written, data not), creates the file
// EDGEPROXY_KILL_READY and waits to be killed (at most a minute); without
// it, it returns at once.
func TestDiskKillHelper(t *testing.T) {
	dir := os.Getenv("EDGEPROXY_KILL_DIR")
	if dir == "" {
		return
	}
	o := newFakeOrigin()
	keys, _ := killObjects(o)
	c, err := New(diskOnlyConfig(dir, 1<<20), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	written := 0
	c.disk.midWrite = func() {
		if written++; written == 5 {
			if err := os.WriteFile(os.Getenv("EDGEPROXY_KILL_READY"), nil, 0o644); err != nil {
				t.Error(err)
			}
			time.Sleep(time.Minute)
		}
	}
	for _, k := range keys {
		readAll(t, c, "b", k)
	}
	time.Sleep(time.Minute)
}

// TestDiskKillDuringWrite kills (SIGKILL) a process in the middle of
// writing a chunk file, then starts a cache on the directory: the torn file
// is not visible under a chunk name (only in tmp/, which start-up clears),
// the four files written before it are complete and served, and every
// object reads back byte-exact.
func TestDiskKillDuringWrite(t *testing.T) {
	dir := t.TempDir()
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(os.Args[0], "-test.run=^TestDiskKillHelper$")
	cmd.Env = append(os.Environ(), "EDGEPROXY_KILL_DIR="+dir, "EDGEPROXY_KILL_READY="+ready)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() }) // if the test fails before the kill
	var early error
	ended := false
	// A minute: a fresh process, maybe built with -race.
	if !testenv.Poll(context.Background(), time.Minute, func() bool {
		if _, err := os.Stat(ready); err == nil {
			return true
		}
		select {
		case early = <-exited:
			ended = true
			return true
		default:
			return false
		}
	}) {
		t.Fatal("timed out waiting for the helper to start its fifth chunk file")
	}
	if ended {
		t.Fatalf("helper exited before it was killed: %v", early)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err == nil {
		t.Fatal("helper exited cleanly before it was killed")
	}
	torn, err := os.ReadDir(filepath.Join(dir, "tmp"))
	if err != nil || len(torn) != 1 {
		t.Fatalf("tmp/ holds %d files (%v), want the one torn write", len(torn), err)
	}
	if files := len(chunkFiles(t, dir)); files != 4 {
		t.Fatalf("%d chunk files visible after the kill, want the 4 complete ones", files)
	}

	o := newFakeOrigin()
	keys, data := killObjects(o)
	c := newTestCache(t, diskOnlyConfig(dir, 1<<20), o, nil)
	if st := c.Stats(); st.DiskChunks != 4 {
		t.Fatalf("indexed %d chunk files, want 4", st.DiskChunks)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) != 0 {
		t.Fatalf("start-up left %d files in tmp/", len(left))
	}
	for i, k := range keys {
		if got, _ := readAll(t, c, "b", k); !bytes.Equal(got, data[i]) {
			t.Fatalf("%s: wrong bytes", k)
		}
	}
	if st := c.Stats(); st.DiskCorrupt != 0 || st.DiskErrors != 0 || st.DiskHits < 4 {
		t.Fatalf("after the kill: stats %+v", st)
	}
}

// TestPromoteGate: a chunk is promoted once readers took twice its length
// from disk, and counts halve every period of memory-tier bytes served, so
// old reads fade while the tier serves, and not while it serves nothing.
func TestPromoteGate(t *testing.T) {
	const chunk, period = 1 << 20, 2 << 20
	var g promoteGate
	if g.add(1, chunk, chunk, 0, period) || !g.add(1, chunk, chunk, 0, period) {
		t.Fatal("whole-chunk reads: want promotion on the second")
	}
	if g.add(1, chunk, chunk, 0, period) {
		t.Fatal("promotion did not reset the count")
	}
	var h promoteGate
	for i := 1; i <= 32; i++ {
		if got := h.add(2, 64<<10, chunk, 0, period); got != (i == 32) {
			t.Fatalf("64 KiB range %d: promote = %v", i, got)
		}
	}
	// The memory tier served a period between the two whole reads: the
	// second halves the first one's count before adding its own.
	var k promoteGate
	if k.add(3, chunk, chunk, 0, period) || k.add(3, chunk, chunk, period, period) {
		t.Fatal("count not halved at the end of the period")
	}
	if !k.add(3, chunk/2, chunk, period+1, period) {
		t.Fatal("half + whole + half read within the next period: want promotion")
	}
	// Without the memory tier serving, a period ends after diskPeriods
	// periods' worth of disk reads.
	var d promoteGate
	d.add(4, chunk, chunk, 5*period, period) // the first period ends here
	for range diskPeriods*period/chunk - 2 {
		d.add(5, chunk, 1<<40, 5*period, period)
	}
	if !d.add(4, chunk, chunk, 5*period, period) {
		t.Fatal("a period ended early without the memory tier serving anything")
	}
	d.add(4, chunk, chunk, 5*period, period)
	for range diskPeriods * period / chunk {
		d.add(5, chunk, 1<<40, 5*period, period)
	}
	if d.add(4, chunk, chunk, 5*period, period) {
		t.Fatal("no period ended after diskPeriods periods of disk reads")
	}
}

// TestPromotionFollowsShare: the memory tier follows the working set, and
// does not churn among chunks as hot as its own.
//   - A tier full of another object's chunks that nobody reads any more
//     serves nothing, so the chunks read now fill it: with uniform random
//     ranges over a working set four times the tier, a fair part of the
//     reads soon come from memory (a gate period of MemoryBytes of disk
//     reads left the old object there for good: no memory hits at all).
//   - Once it holds them, uniform ranges promote (almost) nothing more:
//     no chunk is hotter than the tier's own (a period of 4 x MemoryBytes
//     of disk reads promoted hundreds).
//   - A chunk that gets a fifth of the reads is promoted and then served
//     from memory.
func TestPromotionFollowsShare(t *testing.T) {
	dir := t.TempDir()
	cfg := diskConfig(dir)
	cfg.MemoryBytes = 64 * cfg.ChunkSize
	cfg.DiskQueue, cfg.Policy = 1024, "lru" // write every chunk
	o := newFakeOrigin()
	data := randomBytes(int(4*cfg.MemoryBytes), 43)
	old := randomBytes(int(cfg.MemoryBytes), 44)
	o.put("b", "k", data)
	o.put("b", "old", old)
	warmDisk(t, cfg, o, "b", "k")
	warmDisk(t, cfg, o, "b", "old")
	if n := len(chunkFiles(t, dir)); n != 320 {
		t.Fatalf("%d chunk files after the warm-up, want 320", n)
	}
	c := newTestCache(t, cfg, failingOpens{o, t}, nil)
	for range 4 { // the old object fills the tier
		if got, _ := readAll(t, c, "b", "old"); !bytes.Equal(got, old) {
			t.Fatal("old object: wrong bytes")
		}
	}
	settle(t, c)

	rng := rand.New(rand.NewPCG(7, 11))
	const rangeLen = 64 // a sixteenth of a chunk
	read := func(off int64) {
		t.Helper()
		got, _ := readRange(t, c, context.Background(), "b", "k", "", off, rangeLen)
		if !bytes.Equal(got, data[off:off+rangeLen]) {
			t.Fatalf("range at %d: wrong bytes", off)
		}
	}
	randomOff := func() int64 { return rng.Int64N(int64(len(data))/rangeLen) * rangeLen }
	uniform := func(n int) (memoryShare float64, promotions int64) {
		before := c.Stats()
		for range n {
			read(randomOff())
		}
		settle(t, c)
		st := c.Stats()
		return float64(st.MemoryHits-before.MemoryHits) / float64(n), st.DiskPromotions - before.DiskPromotions
	}
	uniform(16384) // the tier takes the new working set
	share, _ := uniform(8192)
	if share < 0.1 {
		t.Fatalf("after the working set moved: %.3f of the reads from memory, want >= 0.1 (the tier holds a quarter of it)", share)
	}
	// 0 to 6 promotions in most runs, 17 once in the whole suite under
	// -race (ristretto applies its offers asynchronously); a period of 4 x
	// MemoryBytes of disk reads made about 475.
	if _, n := uniform(32768); n > 48 {
		t.Fatalf("uniform ranges over four times the tier, which holds its share: %d promotions, want at most 48", n)
	}

	hot := int64(100) * cfg.ChunkSize
	for i := range 2048 {
		if i%5 == 0 {
			read(hot + rng.Int64N(cfg.ChunkSize/rangeLen)*rangeLen)
		} else {
			read(randomOff())
		}
	}
	settle(t, c)
	before := c.Stats()
	read(hot)
	if st := c.Stats(); st.MemoryHits != before.MemoryHits+1 {
		t.Fatalf("the hot chunk is not served from memory (%d promotions in all)", st.DiskPromotions)
	}
}

// TestParseHeader: bad headers first, each errCorrupt, then a good one
// whose blocks verify and whose neighbours do not.
func TestParseHeader(t *testing.T) {
	id := newObjectID("bucket", "some/key", `"etag"`, 3*diskBlockSize)
	ch := &chunk{id: id, idx: 2, data: randomBytes(2*diskBlockSize+10, 75)}
	good, err := encodeHeader(ch)
	if err != nil {
		t.Fatal(err)
	}
	if len(good) != fileHeaderLen+6+8+6+3*4 {
		t.Fatalf("header of %d bytes", len(good))
	}
	patch := func(fn func(b []byte) []byte) []byte { return fn(bytes.Clone(good)) }
	bad := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short fixed part", good[:fileHeaderLen-1]},
		{"cut in the block table", good[:len(good)-1]},
		{"version 1 magic", patch(func(b []byte) []byte { copy(b, "EPC1"); return b })},
		{"block shift", patch(func(b []byte) []byte { b[30] = 17; return b })},
		{"reserved byte", patch(func(b []byte) []byte { b[31] = 1; return b })},
		{"index too large", patch(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[8:], 1<<62+1); return b })},
		{"data longer than a chunk can be", patch(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[16:], maxChunkSize+1); return b })},
		{"identity byte", patch(func(b []byte) []byte { b[fileHeaderLen+2] ^= 1; return b })},
		{"block sum", patch(func(b []byte) []byte { b[len(b)-1] ^= 1; return b })},
		{"header sum", patch(func(b []byte) []byte { b[4] ^= 1; return b })},
		{"data length", patch(func(b []byte) []byte { b[16]++; return b })},
	}
	for _, tc := range bad {
		if _, err := parseHeader(tc.b); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: err %v, want errCorrupt", tc.name, err)
		}
	}

	h, err := parseHeader(append(bytes.Clone(good), ch.data...))
	if err != nil {
		t.Fatal(err)
	}
	if h.idx != 2 || h.dataLen != int64(len(ch.data)) || h.dataOff != int64(len(good)) ||
		string(h.bucket) != "bucket" || string(h.key) != "some/key" || string(h.etag) != `"etag"` {
		t.Fatalf("parsed %+v", h)
	}
	for i := range int64(3) {
		blk := ch.data[i*diskBlockSize : min((i+1)*diskBlockSize, int64(len(ch.data)))]
		if !h.verifyBlock(i, blk) {
			t.Errorf("block %d does not verify", i)
		}
		if h.verifyBlock(i, blk[:len(blk)-1]) || h.verifyBlock((i+1)%3, blk) {
			t.Errorf("block %d verifies cut or at another index", i)
		}
	}
	if h.verifyBlock(3, nil) || h.verifyBlock(-1, nil) {
		t.Error("a block outside the table verifies")
	}
}

// TestDiskScanInBackground: New returns before the start-up scan has
// indexed anything; meanwhile a chunk not yet indexed is a miss served from
// the origin, and the merge neither counts a rewritten chunk twice nor brings
// back one removed from the index while the scan ran.
func TestDiskScanInBackground(t *testing.T) {
	data := randomBytes(3<<10, 42)
	dir, c2, release := startHeldScan(t, data)
	if st := c2.Stats(); st.DiskChunks != 0 {
		t.Fatalf("indexed before the merge: %+v", st)
	}
	got, status := readAll(t, c2, "b", "k")
	if !bytes.Equal(got, data) || status == StatusHit {
		t.Fatalf("during scan: status %s, equal %v", status, bytes.Equal(got, data))
	}
	settle(t, c2)
	if st := c2.Stats(); st.DiskChunks != 3 || st.DiskWrites != 3 {
		t.Fatalf("rewritten during scan: %+v", st)
	}
	// A chunk found corrupt while the scan runs: the scan listed its old
	// file, which must not come back.
	d := c2.disk
	d.mu.Lock()
	var first diskKey
	for k := range d.objs[keyHash("b", "k")].chunks {
		if k.idx == 0 {
			first = k
		}
	}
	d.mu.Unlock()
	d.corrupt(first, errCorrupt)
	close(release)
	c2.Wait()
	files := chunkFiles(t, dir)
	var onDisk int64
	for _, f := range files {
		info, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		onDisk += info.Size()
	}
	if st := c2.Stats(); st.DiskChunks != 2 || len(files) != 2 || st.DiskBytes != onDisk {
		t.Fatalf("after the merge: %d files of %d bytes, stats %+v", len(files), onDisk, st)
	}
	if d.has(&objectID{kh: first.kh, eh: first.eh}, 0) {
		t.Fatal("the dropped chunk came back with the scan")
	}
}

// startHeldScan writes the chunks of b/k (data) to a new directory with
// one cache, then starts a second on it whose start-up scan stops after
// listing the directory, before it merges what it found into the index,
// until release is closed.
func startHeldScan(t *testing.T, data []byte) (dir string, c2 *Cache, release chan struct{}) {
	t.Helper()
	dir = t.TempDir()
	o := newFakeOrigin()
	o.put("b", "k", data)
	warmDisk(t, diskConfig(dir), o, "b", "k")

	listed, release := make(chan struct{}), make(chan struct{})
	scanHook = func() {
		close(listed)
		<-release
	}
	t.Cleanup(func() { scanHook = nil })
	c2, err := New(diskConfig(dir), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c2.Close() })
	select {
	case <-listed:
	case <-time.After(30 * time.Second):
		t.Fatal("scan did not list the directory")
	}
	return dir, c2, release
}

// TestDiskPurgeDuringScan: a purge while the start-up scan runs waits for
// it, so files not yet indexed are deleted too.
func TestDiskPurgeDuringScan(t *testing.T) {
	dir, c2, release := startHeldScan(t, randomBytes(3<<10, 43))
	purged := make(chan int, 1)
	go func() { purged <- c2.Purge("b", "k") }()
	// Give a purge that does not wait time to finish before the merge (the
	// test holds whatever the timing; the pause only makes a purge that
	// skips waiting fail).
	n := -1
	select {
	case n = <-purged:
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if n < 0 {
		select {
		case n = <-purged:
		case <-time.After(30 * time.Second):
			t.Fatal("Purge did not return")
		}
	}
	if n != 1 {
		t.Fatalf("Purge = %d, want 1", n)
	}
	if files := chunkFiles(t, dir); len(files) != 0 {

		t.Fatalf("files left after purge: %v", files)
	}
	if st := c2.Stats(); st.DiskChunks != 0 {
		t.Fatalf("stats %+v", st)
	}
}
