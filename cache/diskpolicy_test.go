package cache

import (
	"context"
	"strconv"
	"testing"

	"github.com/edgeproxy/edgeproxy/cache/policysim"
)

// TestSketchKeyIsMemKey: readers feed the sketch with memKey and the disk
// index looks chunks up with diskKey.sketchKey; they must agree.
func TestSketchKeyIsMemKey(t *testing.T) {
	id := newObjectID("bucket", "some/key", `"etag"`, 10<<20)
	for idx := range int64(10) {
		if got, want := (diskKey{id.kh, id.eh, idx}).sketchKey(), memKey(id, idx); got != want {
			t.Fatalf("chunk %d: sketch key %x, memory key %x", idx, got, want)
		}
	}
}

// BenchmarkHitMemoryDiskPolicy is BenchmarkHitMemory with a disk tier
// under each policy: what feeding the sketch costs a memory hit (compare
// tinylfu with lru, which feeds nothing).
func BenchmarkHitMemoryDiskPolicy(b *testing.B) {
	for _, pol := range []string{"lru", "tinylfu"} {
		b.Run(pol, func(b *testing.B) {
			const size = 4 << 10
			o := newFakeOrigin()
			o.put("bucket", "obj", randomBytes(size, 60))
			c := newTestCache(b, Config{DiskDir: b.TempDir(), Policy: pol}, o, nil)
			readAll(b, c, "bucket", "obj")
			settle(b, c)
			ctx := context.Background()
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					hitOnce(b, c, ctx, "bucket", "obj")
				}
			})
		})
	}
}

// TestIssueTraceThroughCache replays issue 15's trace through the real
// cache: Zipf(0.9) over 400 objects, 4000 requests, memory for 16 objects
// and disk for 64, a warm-up pass then the same requests measured, with a
// byte-counting origin. tinylfu must serve at least 0.08 more of the bytes
// from cache than lru and write at most half as many chunk files.
//
// It runs at 1/16 of the issue's scale (64 KiB objects and chunks, 1 MiB of
// memory with the ristretto counters of 16 MiB, 4 MiB of disk): the ratios
// depend on how many objects each tier holds, and at 1 MiB the run takes
// two minutes under the race detector. (At 1 MiB, measured once: lru 0.518
// with 1927 writes, tinylfu 0.649 with 95.) Each request settles (fills
// done, disk queue drained) before the next, so no write is dropped for a
// full queue; the memory tier's sampled eviction still varies a little
// between runs, which the margin absorbs (measured: 0.12 to 0.13 above lru).
func TestIssueTraceThroughCache(t *testing.T) {
	trace := policysim.Zipf(1, 400, 0.9, 4000)
	type result struct {
		ratio  float64
		writes int64
	}
	run := func(pol string) result {
		c, o := traceCache(t, pol, 400)
		replayTrace(t, c, trace)
		st0, origin0 := c.Stats(), o.bytesRead.Load()
		replayTrace(t, c, trace)
		st1, origin1 := c.Stats(), o.bytesRead.Load()
		if st1.DiskDropped != 0 || st1.DiskErrors != 0 {
			t.Fatalf("%s: disk writes dropped or failed: %+v", pol, st1)
		}
		served := int64(len(trace)) * traceObjectSize
		return result{1 - float64(origin1-origin0)/float64(served), st1.DiskWrites - st0.DiskWrites}
	}
	lru, ours := run("lru"), run("tinylfu")
	sim := policysim.Repeat(trace)
	t.Logf("byte hit ratio: lru %.3f (%d disk writes), tinylfu %.3f (%d disk writes); simulated LRU %.3f, Belady %.3f",
		lru.ratio, lru.writes, ours.ratio, ours.writes, policysim.LRU(sim, 64, 4000).Ratio(), policysim.Belady(sim, 64, 4000).Ratio())
	if ours.ratio < lru.ratio+0.08 {
		t.Errorf("tinylfu byte hit ratio %.3f, want at least lru's %.3f + 0.08", ours.ratio, lru.ratio)
	}
	if 2*ours.writes > lru.writes {
		t.Errorf("tinylfu wrote %d chunk files, lru %d: want at most half", ours.writes, lru.writes)
	}
}

// TestScanThroughCache: a hot set of 48 objects, then every other request
// reads one of 640 objects never requested again (ten times the disk).
// Under tinylfu the hot set keeps a hit ratio of at least 0.9 during and
// after the scan, and the scan costs few disk writes; under lru the scan
// flushes it.
func TestScanThroughCache(t *testing.T) {
	trace, end := policysim.Scan(3, 48, 2000, 640, 2000)
	hot := func(k int) bool { return k < 48 }
	ratio := func(hit []bool, from, to int) float64 {
		return policysim.Result{Hit: hit}.RatioOver(trace, from, to, hot)
	}
	cl, _ := traceCache(t, "lru", 48+640)
	lru := replayTrace(t, cl, trace)
	c, _ := traceCache(t, "tinylfu", 48+640)
	st0 := c.Stats()
	ours := replayTrace(t, c, trace)
	during, after := ratio(ours, 2000, end), ratio(ours, end, len(trace))
	st := c.Stats()
	t.Logf("hot set hit ratio during/after the scan: tinylfu %.3f/%.3f (%d disk writes), lru %.3f/%.3f (%d)",
		during, after, st.DiskWrites-st0.DiskWrites, ratio(lru, 2000, end), ratio(lru, end, len(trace)), cl.Stats().DiskWrites)
	if during < 0.9 || after < 0.9 {
		t.Errorf("tinylfu: hot set hit ratio %.3f during and %.3f after the scan, want at least 0.9", during, after)
	}
	if l := ratio(lru, 2000, end); l >= 0.9 {
		t.Errorf("lru kept the hot set during the scan (%.3f): the trace does not test scans", l)
	}
	if st.DiskShifts != 0 {
		t.Errorf("the scan was taken for %d shifts of popularity", st.DiskShifts)
	}
	if w := st.DiskWrites - st0.DiskWrites; w > 200 {
		t.Errorf("tinylfu wrote %d chunk files for 48 hot objects and a scan of 640", w)
	}
}

// TestShiftThroughCache: yesterday's hot set goes cold at once (Zipf(0.9)
// over 400 objects, then over 400 new ones). Through the real cache, with
// the memory tier in front, the disk policy notices the shift and adapts
// within one cache turnover as policysim.Adapted defines it: from 2 x 64
// requests after the shift the byte hit ratio is at least 75% of its
// steady state. Without the shift watch it reached about 58%.
func TestShiftThroughCache(t *testing.T) {
	trace := policysim.Shift(4, 400, 0.9, 8000)
	c, _ := traceCache(t, "tinylfu", 800)
	hit := replayTrace(t, c, trace)
	r := policysim.Result{Hit: hit}
	early, steady, ok := policysim.Adapted(r, trace, 4000, 64)
	st := c.Stats()
	t.Logf("before the shift %.3f; from %d requests after it %.3f, steady %.3f; %d shifts detected, %d disk writes",
		r.RatioOver(trace, 2000, 4000, nil), policysim.ShiftTurnovers*64, early, steady, st.DiskShifts, st.DiskWrites)
	if !ok {
		t.Errorf("tinylfu reads %.3f from one turnover after the shift, want at least %.0f%% of its steady %.3f",
			early, 100*policysim.ShiftAdapted, steady)
	}
	if st.DiskShifts != 1 {
		t.Errorf("%d shifts detected, want 1", st.DiskShifts)
	}
}

// traceObjectSize is the size of the objects of the trace tests: 1/16 of
// issue 15's 1 MiB, with budgets scaled alike (see TestIssueTraceThroughCache).
const traceObjectSize = 64 << 10

// traceCache returns a cache under policy with memory for 16 objects and
// disk for 64, in front of an origin holding objects obj0..obj(n-1).
func traceCache(t *testing.T, policy string, n int) (*Cache, *fakeOrigin) {
	t.Helper()
	data := randomBytes(traceObjectSize, 70)
	o := newFakeOrigin()
	for i := range n {
		o.putETag("b", "obj"+strconv.Itoa(i), data, `"v`+strconv.Itoa(i)+`"`)
	}
	cfg := Config{ChunkSize: traceObjectSize, MemoryBytes: 16 * traceObjectSize, MemoryItems: 1024,
		DiskDir: t.TempDir(), DiskBytes: 64 * traceObjectSize, Policy: policy}
	return newTestCache(t, cfg, o, nil), o
}

// replayTrace reads the objects of trace in order, each settling before
// the next, and reports which were hits.
func replayTrace(t *testing.T, c *Cache, trace policysim.Trace) []bool {
	t.Helper()
	hit := make([]bool, len(trace))
	for i, k := range trace {
		_, status := readAll(t, c, "b", "obj"+strconv.Itoa(k))
		hit[i] = status == StatusHit
		settle(t, c)
	}
	return hit
}

// TestDiskRestartKeepsAdmission: after a restart the chunks found on disk
// count as seen once, so a chunk read once does not displace them (the
// tier does not fall back to LRU while its counters refill), and one read
// twice does.
func TestDiskRestartKeepsAdmission(t *testing.T) {
	dir := t.TempDir()
	cfg := diskConfig(dir)
	fileSize := int64(fileHeaderLen + 1 + 1 + 34 + 4 + 1<<10) // bucket "b", key "x", quoted MD5 ETag, one block sum
	cfg.DiskBytes = 3*fileSize + fileSize/2
	o := newFakeOrigin()
	for i, k := range []string{"1", "2", "3", "4", "5"} {
		o.put("b", k, randomBytes(1<<10, uint64(80+i)))
	}
	c1 := newTestCache(t, cfg, o, nil)
	for _, k := range []string{"1", "2", "3"} {
		readAll(t, c1, "b", k)
		settle(t, c1)
	}
	c1.Close()

	c2 := newTestCache(t, cfg, o, nil)
	if _, status := readAll(t, c2, "b", "4"); status != StatusMiss {
		t.Fatalf("first read of 4: %s", status)
	}
	settle(t, c2)
	if st := c2.Stats(); st.DiskWrites != 0 || st.DiskRejected != 1 || st.DiskChunks != 3 {
		t.Fatalf("a chunk read once displaced one found at start: %+v", st)
	}
	// Read twice (the second time from memory), then missed again: admitted.
	readAll(t, c2, "b", "4")
	c2.mem.Del(memKey(c2.meta.get("b", "4").id, 0))
	c2.mem.Wait()
	readAll(t, c2, "b", "4")
	settle(t, c2)
	if st := c2.Stats(); st.DiskWrites != 1 || st.DiskChunks != 3 {
		t.Fatalf("a chunk read three times was not admitted: %+v", st)
	}
}

// BenchmarkDiskSeen is what tinylfu adds to every chunk a reader reads,
// memory hits included: one sketch update. "hot" reads one chunk whose
// counters are saturated (a popular object's hits: a load and no write);
// "spread" reads 64k chunks in turn (a compare-and-swap each).
func BenchmarkDiskSeen(b *testing.B) {
	c := newTestCache(b, Config{DiskDir: b.TempDir()}, newFakeOrigin(), nil)
	id := newObjectID("bucket", "obj", `"etag"`, 1<<40)
	for _, bc := range []struct {
		name string
		mask int64
	}{{"hot", 0}, {"spread", 1<<16 - 1}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var i int64
				for pb.Next() {
					c.disk.seen(id, i&bc.mask)
					i++
				}
			})
		})
	}
}

// TestDiskAdmissionReadahead: the chunks of a window fetched ahead of the
// reader are judged with the read they are about to get, so a multi-chunk
// object read twice gets all its chunks in, not only the first.
func TestDiskAdmissionReadahead(t *testing.T) {
	dir := t.TempDir()
	cfg := diskConfig(dir) // 1 KiB chunks, 4-chunk windows
	fileSize := int64(fileHeaderLen + 1 + 1 + 34 + 4 + 1<<10)
	cfg.DiskBytes = 3*fileSize + fileSize/2
	o := newFakeOrigin()
	c := newTestCache(t, cfg, o, nil)
	for i, k := range []string{"1", "2", "3"} {
		o.put("b", k, randomBytes(1<<10, uint64(90+i)))
		readAll(t, c, "b", k)
		settle(t, c)
	}
	o.put("b", "x", randomBytes(3<<10, 95))
	// Each read misses: the chunks leave memory after it.
	for range 2 {
		readAll(t, c, "b", "x")
		settle(t, c)
		id := c.meta.get("b", "x").id
		for idx := range int64(3) {
			c.mem.Del(memKey(id, idx))
		}
		c.mem.Wait()
	}
	id := c.meta.get("b", "x").id
	for idx := range int64(3) {
		if !c.disk.has(id, idx) {
			t.Fatalf("chunk %d of an object read twice is not on disk: %+v", idx, c.Stats())
		}
	}
}
