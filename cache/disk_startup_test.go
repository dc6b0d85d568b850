package cache

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startupFiles lists the numbers of chunk files BenchmarkDiskStartup
// measures. The default is small so that "-bench ." stays cheap; the issue's
// figure is "-disk.startup=100000,1000000" (1M files take about 1M inodes and
// a minute or more to create).
var startupFiles = flag.String("disk.startup", "10000", "comma-separated chunk file counts for BenchmarkDiskStartup")

// makeChunkFiles fills a claimed cache directory with n validly named chunk
// files of size bytes each. The files are sparse (truncated, never written):
// the start-up scan reads names and sizes only, so content is not needed,
// and a 1 TiB tier fits on a small disk. Objects have 64 chunks each, like
// 64 MiB objects of 1 MiB chunks.
func makeChunkFiles(tb testing.TB, dir string, n int, size int64) {
	tb.Helper()
	if err := claimDiskDir(dir); err != nil {
		tb.Fatal(err)
	}
	for i := range 256 {
		if err := os.Mkdir(filepath.Join(dir, diskKey{kh: uint64(i) << 56}.subdir()), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	const perObject = 64
	const workers = 4
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				obj := uint64(i / perObject)
				k := diskKey{
					kh:  rand.New(rand.NewPCG(obj, 1)).Uint64(),
					eh:  rand.New(rand.NewPCG(obj, 2)).Uint64(),
					idx: int64(i % perObject),
				}
				f, err := os.OpenFile(filepath.Join(dir, k.subdir(), k.fileName()), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
				if err == nil {
					err = f.Truncate(size)
					if cerr := f.Close(); err == nil {
						err = cerr
					}
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		tb.Fatal(firstErr)
	}
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkDiskStartup answers: with N chunk files on disk (1 MiB chunks,
// so 1M files is a 1 TiB tier), how soon can the cache serve after New
// starts, how long does the index rebuild take, and how much heap does the
// index hold per chunk? Run it once per size:
//
//	go test -run '^$' -bench DiskStartup -benchtime 1x ./cache -args -disk.startup=100000,1000000
//
// Reported: ms/start (New returns), ms/ttfb (from New's start to the first
// byte of a 4 KiB object fetched from the origin: a miss, as every chunk
// not yet indexed is), ms/scan (until Wait, the index complete), B/chunk
// (heap after the scan minus heap before, after GC, divided by N), create-s
// (making the files, not measured). The files are deleted afterwards.
func BenchmarkDiskStartup(b *testing.B) {
	for _, s := range strings.Split(*startupFiles, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			b.Fatalf("-disk.startup: bad count %q", s)
		}
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) {
			const chunk = 1 << 20
			dir := b.TempDir()
			t0 := time.Now()
			makeChunkFiles(b, dir, n, chunk)
			created := time.Since(t0)
			cfg := diskConfig(dir)
			cfg.ChunkSize = chunk
			cfg.DiskBytes = int64(n) * chunk
			o := newFakeOrigin()
			o.put("b", "first", randomBytes(4<<10, 44))
			ctx := context.Background()
			b.ResetTimer()
			var start, ttfb, scan time.Duration
			var perChunk float64
			for range b.N {
				b.StopTimer()
				before := heapInUse()
				b.StartTimer()
				t0 := time.Now()
				c, err := New(cfg, o, nil)
				if err != nil {
					b.Fatal(err)
				}
				start += time.Since(t0)
				rc, err := c.Open(ctx, "b", "first", "", 0, 4<<10)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(rc, make([]byte, 1)); err != nil {
					b.Fatal(err)
				}
				ttfb += time.Since(t0)
				rc.Close()
				c.Wait()
				scan += time.Since(t0)
				b.StopTimer()
				perChunk = float64(int64(heapInUse())-int64(before)) / float64(n)
				if _, chunks := c.disk.size(); chunks < int64(n) {
					b.Fatalf("indexed %d chunks of %d", chunks, n)
				}
				c.Close()
				b.StartTimer()
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 / float64(b.N) }
			b.ReportMetric(ms(start), "ms/start")
			b.ReportMetric(ms(ttfb), "ms/ttfb")
			b.ReportMetric(ms(scan), "ms/scan")
			b.ReportMetric(perChunk, "B/chunk")
			b.ReportMetric(created.Seconds(), "create-s")
		})
	}
}
