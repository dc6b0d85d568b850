package cache

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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
	got, status := readAll(t, c2, "b", "k")
	if !bytes.Equal(got, data) || status != StatusHit {
		t.Fatalf("status %s, equal %v", status, bytes.Equal(got, data))
	}
	if st := c2.Stats(); st.DiskHits != 6 || st.BytesFromDisk != int64(len(data)) {
		t.Fatalf("stats %+v", st)
	}
	// Promoted to memory: the second read does not touch the disk.
	settle(t, c2)
	readAll(t, c2, "b", "k")
	if st := c2.Stats(); st.DiskHits != 6 || st.MemoryHits != 6 {
		t.Fatalf("after promotion %+v", st)
	}
}

// TestDiskCorruption damages a chunk file in several ways, with the index
// built before (same process) or after (restart) the damage: the chunk is
// deleted, refetched and served correctly, never served damaged.
func TestDiskCorruption(t *testing.T) {
	damages := []struct {
		name string
		fn   func(t *testing.T, path string)
	}{
		{"flip data byte", func(t *testing.T, path string) { flipByte(t, path, -1) }},
		{"flip identity byte", func(t *testing.T, path string) { flipByte(t, path, fileHeaderLen+1) }},
		{"flip checksum", func(t *testing.T, path string) { flipByte(t, path, 5) }},
		{"truncate", func(t *testing.T, path string) { truncate(t, path, -100) }},
		{"truncate header", func(t *testing.T, path string) { truncate(t, path, 10) }},
		{"empty", func(t *testing.T, path string) { truncate(t, path, 0) }},
		{"append", func(t *testing.T, path string) { appendBytes(t, path, []byte("junk")) }},
		{"bad data length", func(t *testing.T, path string) { patchUint64(t, path, 16, 5) }},
	}
	for _, restart := range []bool{false, true} {
		for _, dmg := range damages {
			name := dmg.name
			if restart {
				name += "/restart"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				o := newFakeOrigin()
				data := randomBytes(2<<10, 41)
				o.put("b", "k", data)
				cfg := diskConfig(dir)
				c, err := New(cfg, o, nil)
				if err != nil {
					t.Fatal(err)
				}
				readAll(t, c, "b", "k")
				settle(t, c)
				var victim string
				for _, f := range chunkFiles(t, dir) {
					if strings.HasSuffix(f, "-0") {
						victim = f
					}
				}
				if victim == "" {
					t.Fatal("no file for chunk 0")
				}
				c.Close()
				if restart {
					dmg.fn(t, victim)
					c = newTestCache(t, cfg, o, nil)
				} else {
					// Index built from the healthy file, damage afterwards.
					c = newTestCache(t, cfg, o, nil)
					dmg.fn(t, victim)
				}
				opens := o.opens.Load()
				got, status := readAll(t, c, "b", "k")
				if !bytes.Equal(got, data) {
					t.Fatal("served damaged bytes")
				}
				if status != StatusPartial {
					t.Fatalf("status %s, want PARTIAL (chunk 0 refetched)", status)
				}
				if st := c.Stats(); st.DiskCorrupt != 1 || st.DiskHits != 1 || o.opens.Load() != opens+1 {
					t.Fatalf("stats %+v, origin opens %d", st, o.opens.Load()-opens)
				}
				settle(t, c)
				if n := len(chunkFiles(t, dir)); n != 2 {
					t.Fatalf("after refetch %d files, want 2", n)
				}
			})
		}
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
// least recently used chunks, and a budget below one chunk stores nothing
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
		fileSize := int64(fileHeaderLen + 1 + 1 + 34 + 1<<10) // bucket "b", key "x", quoted MD5 ETag
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
		c1, err := New(diskConfig(dir), o, nil)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, c1, "b", "k")
		settle(t, c1)
		c1.Close()
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
	f.Add([]byte("EPC1"))
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
