package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/edgeproxy/edgeproxy/origin"
)

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // the key the error must name
	}{
		{"chunk too small", Config{ChunkSize: 100}, "chunk_size"},
		{"chunk too large", Config{ChunkSize: 1 << 30}, "chunk_size"},
		{"memory below chunk", Config{ChunkSize: 1 << 20, MemoryBytes: 1 << 10}, "memory_bytes"},
		{"negative items", Config{MemoryItems: -1}, "memory_items"},
		{"negative disk", Config{DiskBytes: -1}, "disk_bytes"},
		{"negative queue", Config{DiskQueue: -1}, "disk_queue"},
		{"negative readahead", Config{Readahead: -1}, "readahead"},
		{"fill memory below readahead", Config{Readahead: 8 << 20, FillMemory: 1 << 20}, "fill_memory"},
		{"negative ttl", Config{MetaTTL: -time.Second}, "meta_ttl"},
		{"negative fill timeout", Config{FillTimeout: -time.Second}, "fill_timeout"},
		{"negative stale retry", Config{StaleRetry: -time.Second}, "stale_retry"},
		{"negative stat timeout", Config{StatTimeout: -time.Second}, "stat_timeout"},
		{"negative meta entries", Config{MetaEntries: -1}, "meta_entries"},
		{"unknown policy", Config{Policy: "lfu"}, "policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, newFakeOrigin(), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: got %v, want an error naming %s", err, tt.want)
			}
		})
	}
	if _, err := New(Config{}, nil, nil); err == nil {
		t.Fatal("New with nil origin: no error")
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		ChunkSize: 1 << 20, MemoryBytes: 256 << 20, MemoryItems: 16384, DiskBytes: 10 << 30, DiskQueue: 64,
		Readahead: 8 << 20, FillMemory: 64 << 20, FillTimeout: 60 * time.Second, MetaTTL: 30 * time.Second,
		NegativeTTL: 5 * time.Second, MaxStale: time.Hour, StaleRetry: time.Second, StatTimeout: 10 * time.Second,
		MetaEntries: 100000, Policy: "tinylfu",
	}
	if cfg != want {
		t.Fatalf("defaults:\n got %+v\nwant %+v", cfg, want)
	}
	// Readahead is rounded down to whole chunks, at least one; negative
	// durations switch features off where documented.
	cfg, err = Config{ChunkSize: 4 << 10, Readahead: 10 << 10, NegativeTTL: -1, MaxStale: -1}.withDefaults()
	if err != nil || cfg.Readahead != 8<<10 || cfg.NegativeTTL != -1 || cfg.MaxStale != -1 {
		t.Fatalf("got %+v, %v", cfg, err)
	}
	cfg, _ = Config{ChunkSize: 4 << 10, Readahead: 1}.withDefaults()
	if cfg.Readahead != 4<<10 {
		t.Fatalf("readahead below a chunk: got %d", cfg.Readahead)
	}
}

func TestSpan(t *testing.T) {
	s := span{1024}
	tests := []struct {
		objSize, off          int64
		index, count, lastLen int64
	}{
		{1, 0, 0, 1, 1},
		{1024, 1023, 0, 1, 1024},
		{1025, 1024, 1, 2, 1},
		{4096, 2048, 2, 4, 1024},
		{5000, 4999, 4, 5, 904},
	}
	for _, tt := range tests {
		if got := s.index(tt.off); got != tt.index {
			t.Errorf("index(%d) = %d, want %d", tt.off, got, tt.index)
		}
		if got := s.count(tt.objSize); got != tt.count {
			t.Errorf("count(%d) = %d, want %d", tt.objSize, got, tt.count)
		}
		if got := s.length(tt.objSize, tt.count-1); got != tt.lastLen {
			t.Errorf("length(%d, last) = %d, want %d", tt.objSize, got, tt.lastLen)
		}
	}
}

// TestRanges reads many ranges of a multi-chunk object, cold then warm, with
// both Read and WriteTo, and compares every byte.
func TestRanges(t *testing.T) {
	const size = 10<<10 + 123
	data := randomBytes(size, 1)
	ranges := []struct{ off, n int64 }{
		{0, size}, {0, 1}, {size - 1, 1}, {1023, 2}, {1024, 1024}, {1000, 5000},
		{5 << 10, size - 5<<10}, {10 << 10, 123}, {3, 1021},
	}
	for _, rg := range ranges {
		o := newFakeOrigin()
		etag := o.put("b", "k", data)
		c := newTestCache(t, smallConfig(), o, nil)
		want := data[rg.off : rg.off+rg.n]
		got, status := readRange(t, c, context.Background(), "b", "k", etag, rg.off, rg.n)
		if !bytes.Equal(got, want) || status != StatusMiss {
			t.Fatalf("cold [%d,+%d): status %s, bytes equal %v", rg.off, rg.n, status, bytes.Equal(got, want))
		}
		settle(t, c)
		rc, err := c.Open(context.Background(), "b", "k", etag, rg.off, rg.n)
		if err != nil {
			t.Fatal(err)
		}
		if s := rc.(*Reader).CacheStatus(); s != StatusHit {
			t.Fatalf("warm [%d,+%d): status %s", rg.off, rg.n, s)
		}
		got, err = io.ReadAll(iotest.OneByteReader(rc))
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("warm Read [%d,+%d): err %v, bytes equal %v", rg.off, rg.n, err, bytes.Equal(got, want))
		}
		if err := iotest.TestReader(mustOpen(t, c, "b", "k", etag, rg.off, rg.n), want); err != nil {
			t.Fatalf("iotest [%d,+%d): %v", rg.off, rg.n, err)
		}
	}
}

func mustOpen(t testing.TB, c *Cache, bucket, key, etag string, off, n int64) io.Reader {
	t.Helper()
	rc, err := c.Open(context.Background(), bucket, key, etag, off, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	return rc
}

func TestOpenRejectsBadRanges(t *testing.T) {
	o := newFakeOrigin()
	etag := o.put("b", "k", randomBytes(100, 2))
	c := newTestCache(t, smallConfig(), o, nil)
	for _, rg := range [][2]int64{{-1, 10}, {0, 0}, {0, 101}, {100, 1}, {50, -1}} {
		if _, err := c.Open(context.Background(), "b", "k", etag, rg[0], rg[1]); err == nil {
			t.Errorf("Open(%d, %d): no error", rg[0], rg[1])
		}
	}
	if got := o.opens.Load(); got != 0 {
		t.Fatalf("bad ranges reached the origin %d times", got)
	}
}

// TestRangeFetchesOnlyMissingChunks: a range touches only its chunks, and a
// later wider range fetches only the chunks still missing.
func TestRangeFetchesOnlyMissingChunks(t *testing.T) {
	o := newFakeOrigin()
	data := randomBytes(20<<10, 3)
	etag := o.put("b", "k", data)
	c := newTestCache(t, smallConfig(), o, nil)

	got, status := readRange(t, c, context.Background(), "b", "k", etag, 5<<10+10, 1<<10) // chunks 5 and 6
	if !bytes.Equal(got, data[5<<10+10:6<<10+10]) || status != StatusMiss {
		t.Fatalf("status %s", status)
	}
	settle(t, c)
	if r := o.rangesSeen(); len(r) != 1 || r[0] != [2]int64{5 << 10, 2 << 10} {
		t.Fatalf("origin ranges %v, want one request for chunks 5-6", r)
	}
	got, status = readRange(t, c, context.Background(), "b", "k", etag, 4<<10, 4<<10) // chunks 4-7
	if !bytes.Equal(got, data[4<<10:8<<10]) || status != StatusPartial {
		t.Fatalf("status %s", status)
	}
	settle(t, c)
	r := o.rangesSeen()
	if len(r) != 3 || r[1] != [2]int64{4 << 10, 1 << 10} || r[2] != [2]int64{7 << 10, 1 << 10} {
		t.Fatalf("origin ranges %v, want chunks 4 and 7 only", r)
	}
	if got := o.bytesRead.Load(); got != 4<<10 {
		t.Fatalf("origin bytes %d, want %d", got, 4<<10)
	}
}

// TestSequentialReadahead: a cold sequential read makes one origin request
// per window, not one per chunk, and fetches each byte once.
func TestSequentialReadahead(t *testing.T) {
	o := newFakeOrigin()
	data := randomBytes(20<<10, 4)
	o.put("b", "k", data)
	c := newTestCache(t, smallConfig(), o, nil) // 1 KiB chunks, 4 KiB windows
	got, status := readAll(t, c, "b", "k")
	if !bytes.Equal(got, data) || status != StatusMiss {
		t.Fatalf("status %s, equal %v", status, bytes.Equal(got, data))
	}
	settle(t, c)
	if got := o.opens.Load(); got != 5 {
		t.Fatalf("origin requests %d, want 5 (%v)", got, o.rangesSeen())
	}
	for _, r := range o.rangesSeen() {
		if r[1] != 4<<10 || r[0]%(4<<10) != 0 {
			t.Fatalf("origin ranges %v, want 4 KiB windows", o.rangesSeen())
		}
	}
	st := c.Stats()
	// Chunks of the prefetched window may land before the reader gets
	// there (memory hits); every byte still came from the origin once.
	if st.OriginBytes != int64(len(data)) || st.BytesFromOrigin+st.BytesFromMemory != int64(len(data)) || st.Hits+st.Misses != 20 {
		t.Fatalf("stats %+v", st)
	}
	got, status = readAll(t, c, "b", "k")
	if !bytes.Equal(got, data) || status != StatusHit {
		t.Fatalf("second read: status %s", status)
	}
	if st2 := c.Stats(); st2.MemoryHits-st.MemoryHits != 20 || st2.BytesFromMemory-st.BytesFromMemory != int64(len(data)) || st2.MetaHits < 1 {
		t.Fatalf("stats after hit %+v", st2)
	}
}

// TestWriteToDoesNotCopy checks that WriteTo hands the writer the cached
// slice itself.
func TestWriteToDoesNotCopy(t *testing.T) {
	o := newFakeOrigin()
	etag := o.put("b", "k", randomBytes(4<<10, 5))
	c := newTestCache(t, Config{}, o, nil)
	readAll(t, c, "b", "k")
	settle(t, c)
	e := c.meta.get("b", "k")
	ch := c.memGet(e.id, 0)
	if ch == nil {
		t.Fatal("chunk not in memory")
	}
	rc, err := c.Open(context.Background(), "b", "k", etag, 0, 4<<10)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var w sliceRecorder
	if _, err := rc.(io.WriterTo).WriteTo(&w); err != nil {
		t.Fatal(err)
	}
	if len(w.got) != 1 || &w.got[0][0] != &ch.data[0] {
		t.Fatal("WriteTo did not pass the cached slice")
	}
}

type sliceRecorder struct{ got [][]byte }

func (w *sliceRecorder) Write(p []byte) (int, error) {
	w.got = append(w.got, p)
	return len(p), nil
}

// TestMemoryCollisionIsMiss plants a chunk of one object under another's
// memory key: the identity check must reject it.
func TestMemoryCollisionIsMiss(t *testing.T) {
	c := newTestCache(t, smallConfig(), newFakeOrigin(), nil)
	a := newObjectID("b", "a", `"1"`, 10)
	b := newObjectID("b", "b", `"1"`, 10)
	c.mem.Set(memKey(b, 0), &chunk{id: a, idx: 0, data: make([]byte, 10)}, 10)
	c.mem.Set(memKey(a, 1), &chunk{id: a, idx: 0, data: make([]byte, 10)}, 10)
	c.mem.Wait()
	if c.memGet(b, 0) != nil {
		t.Fatal("chunk of another object served")
	}
	if c.memGet(a, 1) != nil {
		t.Fatal("chunk with another index served")
	}
	c.mem.Set(memKey(a, 0), &chunk{id: newObjectID("b", "a", `"1"`, 10), idx: 0, data: make([]byte, 10)}, 10)
	c.mem.Wait()
	if c.memGet(a, 0) == nil {
		t.Fatal("equal identity in another objectID not recognised")
	}
}

func TestNegativeCaching(t *testing.T) {
	for _, tt := range []struct {
		name      string
		ttl       time.Duration
		wantStats int64 // origin Stat calls after three lookups within 5s
	}{
		{"default", 0, 1},
		{"disabled", -1, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := newFakeOrigin()
			clk := newFakeClock()
			c := newTestCache(t, Config{NegativeTTL: tt.ttl}, o, clk)
			for range 3 {
				if _, err := c.Stat(context.Background(), "b", "missing"); !errors.Is(err, origin.ErrNotFound) {
					t.Fatalf("Stat: %v", err)
				}
				clk.Advance(time.Second)
			}
			if got := o.stats.Load(); got != tt.wantStats {
				t.Fatalf("origin Stat calls %d, want %d", got, tt.wantStats)
			}
			if _, err := c.Open(context.Background(), "b", "missing", "", 0, 1); !errors.Is(err, origin.ErrNotFound) {
				t.Fatalf("Open: %v", err)
			}
			o.put("b", "missing", []byte("now here"))
			clk.Advance(5 * time.Second)
			if info, err := c.Stat(context.Background(), "b", "missing"); err != nil || info.Size != 8 {
				t.Fatalf("after TTL: %+v, %v", info, err)
			}
		})
	}
}

// TestETagChange: after the TTL the cache notices a new version, serves it,
// drops the old chunks, and refuses to mix versions.
func TestETagChange(t *testing.T) {
	o := newFakeOrigin()
	clk := newFakeClock()
	c := newTestCache(t, smallConfig(), o, clk)
	v1 := randomBytes(3<<10, 6)
	etag1 := o.put("b", "k", v1)
	if got, _ := readAll(t, c, "b", "k"); !bytes.Equal(got, v1) {
		t.Fatal("v1 bytes")
	}
	settle(t, c)
	oldID := c.meta.get("b", "k").id

	v2 := randomBytes(5<<10, 7)
	etag2 := o.put("b", "k", v2)
	clk.Advance(10 * time.Second)
	if info, _ := c.Stat(context.Background(), "b", "k"); info.ETag != etag1 || o.stats.Load() != 1 {
		t.Fatalf("within TTL: got %s after %d origin Stats", info.ETag, o.stats.Load())
	}
	clk.Advance(21 * time.Second)
	info, err := c.Stat(context.Background(), "b", "k")
	if err != nil || info.ETag != etag2 || info.Size != int64(len(v2)) || o.stats.Load() != 2 {
		t.Fatalf("after TTL: %+v, %v", info, err)
	}
	for idx := range int64(3) {
		if c.memGet(oldID, idx) != nil {
			t.Fatalf("old chunk %d still in memory", idx)
		}
	}
	got, status := readAll(t, c, "b", "k")
	if !bytes.Equal(got, v2) || status != StatusMiss {
		t.Fatalf("v2: status %s, equal %v", status, bytes.Equal(got, v2))
	}
	if _, err := c.Open(context.Background(), "b", "k", etag1, 0, 10); !errors.Is(err, origin.ErrChanged) {
		t.Fatalf("Open with old ETag: %v", err)
	}
}

// TestChangedDuringFill: the origin changes between Stat and the fill; the
// fill fails with ErrChanged and the next Stat asks the origin at once.
func TestChangedDuringFill(t *testing.T) {
	o := newFakeOrigin()
	clk := newFakeClock()
	c := newTestCache(t, smallConfig(), o, clk)
	etag1 := o.put("b", "k", randomBytes(2<<10, 8))
	if _, err := c.Stat(context.Background(), "b", "k"); err != nil {
		t.Fatal(err)
	}
	etag2 := o.put("b", "k", randomBytes(2<<10, 9))
	if _, err := c.Open(context.Background(), "b", "k", etag1, 0, 2<<10); !errors.Is(err, origin.ErrChanged) {
		t.Fatalf("Open: %v", err)
	}
	info, err := c.Stat(context.Background(), "b", "k")
	if err != nil || info.ETag != etag2 || o.stats.Load() != 2 {
		t.Fatalf("Stat after ErrChanged: %+v, %v, %d origin Stats", info, err, o.stats.Load())
	}
	if st := c.Stats(); st.FillErrors != 1 || st.InflightChunks != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestStaleIfError: with the origin down and the TTL expired, Stat returns
// the last Info, cached bytes are served as STALE, uncached bytes fail with
// the origin's error, and staleness ends after MaxStale.
func TestStaleIfError(t *testing.T) {
	o := newFakeOrigin()
	clk := newFakeClock()
	c := newTestCache(t, smallConfig(), o, clk)
	full := randomBytes(3<<10, 10)
	o.put("b", "full", full)
	part := randomBytes(3<<10, 11)
	etagPart := o.put("b", "part", part)
	readAll(t, c, "b", "full")
	readRange(t, c, context.Background(), "b", "part", etagPart, 0, 100) // chunk 0 only
	settle(t, c)

	down := errors.Join(errors.New("connection refused"), origin.ErrUnavailable)
	o.set(func(f *fakeOrigin) { f.statErr, f.openErr = down, down })
	clk.Advance(31 * time.Second)

	info, err := c.Stat(context.Background(), "b", "full")
	if err != nil || info.Size != int64(len(full)) {
		t.Fatalf("stale Stat: %+v, %v", info, err)
	}
	got, status := readAll(t, c, "b", "full")
	if !bytes.Equal(got, full) || status != StatusStale {
		t.Fatalf("stale read: status %s, equal %v", status, bytes.Equal(got, full))
	}
	if _, err := c.Stat(context.Background(), "b", "part"); err != nil {
		t.Fatalf("stale Stat: %v", err)
	}
	got, status = readRange(t, c, context.Background(), "b", "part", etagPart, 0, 1<<10)
	if !bytes.Equal(got, part[:1<<10]) || status != StatusStale {
		t.Fatalf("stale cached chunk of partial object: status %s", status)
	}
	opens := o.opens.Load()
	if _, err := c.Open(context.Background(), "b", "part", "", 0, int64(len(part))); !errors.Is(err, origin.ErrUnavailable) {
		t.Fatalf("uncached bytes while stale: %v", err)
	}
	if o.opens.Load() != opens {
		t.Fatal("stale open of uncached bytes went to the origin")
	}
	if st := c.Stats(); st.StaleServes != 2 {
		t.Fatalf("StaleServes %d, want 2", st.StaleServes)
	}

	// Within StaleRetry the origin is not asked again; after it, it is.
	stats := o.stats.Load()
	c.Stat(context.Background(), "b", "full")
	if o.stats.Load() != stats {
		t.Fatal("stale answer not reused within stale_retry")
	}
	clk.Advance(2 * time.Second)
	c.Stat(context.Background(), "b", "full")
	if o.stats.Load() != stats+1 {
		t.Fatal("origin not retried after stale_retry")
	}

	// Past MaxStale the error shows.
	clk.Advance(time.Hour)
	if _, err := c.Stat(context.Background(), "b", "full"); !errors.Is(err, origin.ErrUnavailable) {
		t.Fatalf("past max_stale: %v", err)
	}

	// The origin recovers: fresh metadata, cached chunks are hits again.
	o.set(func(f *fakeOrigin) { f.statErr, f.openErr = nil, nil })
	got, status = readAll(t, c, "b", "full")
	if !bytes.Equal(got, full) || status != StatusHit {
		t.Fatalf("after recovery: status %s", status)
	}
}

func TestStaleDisabled(t *testing.T) {
	o := newFakeOrigin()
	clk := newFakeClock()
	c := newTestCache(t, Config{MaxStale: -1}, o, clk)
	o.put("b", "k", []byte("hello"))
	readAll(t, c, "b", "k")
	o.set(func(f *fakeOrigin) { f.statErr = origin.ErrTimeout })
	clk.Advance(31 * time.Second)
	if _, err := c.Stat(context.Background(), "b", "k"); !errors.Is(err, origin.ErrTimeout) {
		t.Fatalf("Stat with stale serving off: %v", err)
	}
}

// TestMetaOtherErrorsNotCached: an error that is neither "not found" nor an
// outage is returned and not remembered.
func TestMetaOtherErrorsNotCached(t *testing.T) {
	o := newFakeOrigin()
	c := newTestCache(t, Config{}, o, nil)
	boom := errors.New("access denied")
	o.set(func(f *fakeOrigin) { f.statErr = boom })
	for range 2 {
		if _, err := c.Stat(context.Background(), "b", "k"); !errors.Is(err, boom) {
			t.Fatalf("Stat: %v", err)
		}
	}
	if o.stats.Load() != 2 {
		t.Fatalf("origin Stat calls %d, want 2", o.stats.Load())
	}
}

func TestPurge(t *testing.T) {
	o := newFakeOrigin()
	c := newTestCache(t, smallConfig(), o, nil)
	for _, k := range []string{"x", "y", "dir/1", "dir/2"} {
		o.put("a", k, randomBytes(2<<10, 12))
		readAll(t, c, "a", k)
	}
	o.put("b", "x", randomBytes(2<<10, 13))
	readAll(t, c, "b", "x")
	settle(t, c)

	if n := c.Purge("a", "x"); n != 1 {
		t.Fatalf("Purge(a, x) = %d", n)
	}
	if n := c.Purge("a", "nope"); n != 0 {
		t.Fatalf("Purge(a, nope) = %d", n)
	}
	opens := o.opens.Load()
	if _, status := readAll(t, c, "a", "x"); status != StatusMiss || o.opens.Load() == opens {
		t.Fatalf("after purge: status %s", status)
	}
	if _, status := readAll(t, c, "b", "x"); status != StatusHit {
		t.Fatalf("other bucket purged: status %s", status)
	}
	if n := c.PurgePrefix("a", "dir/"); n != 2 {
		t.Fatalf("PurgePrefix(a, dir/) = %d", n)
	}
	if _, status := readAll(t, c, "a", "dir/1"); status != StatusMiss {
		t.Fatalf("after prefix purge: status %s", status)
	}
	if _, status := readAll(t, c, "a", "y"); status != StatusHit {
		t.Fatalf("unrelated key purged: status %s", status)
	}
	if n := c.PurgePrefix("a", ""); n != 3 {
		t.Fatalf("PurgePrefix(a, \"\") = %d, want 3", n)
	}
}

func TestClosed(t *testing.T) {
	o := newFakeOrigin()
	o.put("b", "k", []byte("x"))
	c, err := New(Config{}, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Open(context.Background(), "b", "k", "", 0, 1); err == nil {
		t.Fatal("Open after Close succeeded")
	}
}
