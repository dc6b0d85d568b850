package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/cache"
	"github.com/edgeproxy/edgeproxy/internal/stats"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/origin"
)

// TestPrefetchWarmsHotFilesWithinBudget seeds a hot set in a real Redis
// and checks one prefetch pass reads the hottest files that fit the byte
// budget through the cache (so they are hits afterwards) and skips the
// file that does not fit.
func TestPrefetchWarmsHotFilesWithinBudget(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root := t.TempDir()
	sizes := map[string]int{"a.bin": 1 << 20, "b.bin": 2 << 20, "c.bin": 5 << 20}
	if err := os.MkdirAll(filepath.Join(root, "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, n := range sizes {
		if err := os.WriteFile(filepath.Join(root, "b", name), make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := origin.NewDir(origin.DirConfig{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := cache.New(cache.Config{MemoryBytes: 64 << 20}, dir, log)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	rdb := testenv.Redis(t).Client(t)
	hotKey := "hotset-prefetch-test"
	// c is hottest but does not fit the 3.5 MiB budget; a and b do.
	rdb.ZAdd(ctx, hotKey, redis.Z{Score: 30, Member: "c.bin"}, redis.Z{Score: 20, Member: "b.bin"}, redis.Z{Score: 10, Member: "a.bin"})
	rec, err := stats.New(stats.Config{HotKey: hotKey}, rdb, log)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close(ctx)

	cfg := PrefetchConfig{TopN: 10, Bytes: 3<<20 + 1<<19, Rate: 1 << 30}.withDefaults()
	p := &prefetcher{cfg: cfg, cache: c, hot: rec.Hot, bucket: "b", log: log}
	if n := p.run(ctx); n != 3<<20 {
		t.Fatalf("prefetched %d bytes, want %d (a.bin + b.bin)", n, 3<<20)
	}
	if got := c.Stats().OriginBytes; got != 3<<20 {
		t.Fatalf("origin bytes %d, want %d", got, 3<<20)
	}
	c.Wait() // ristretto applies Set asynchronously
	for name, want := range map[string]string{"a.bin": "HIT", "b.bin": "HIT", "c.bin": "MISS"} {
		info, err := c.Stat(ctx, "b", name)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := c.Open(ctx, "b", name, info.ETag, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		status := rc.(interface{ CacheStatus() string }).CacheStatus()
		rc.Close()
		if status != want {
			t.Errorf("%s after prefetch: %s, want %s", name, status, want)
		}
	}
}

// TestPrefetchStopsBeforeCacheCloses: when the process stops, the prefetch
// goroutine has returned before the app closes anything, the cache
// included, so a prefetch pass never reads from a closed cache.
func TestPrefetchStopsBeforeCacheCloses(t *testing.T) {
	a := buildYAML(t, "redis:\n  addrs: ["+testenv.Redis(t).Addr+"]\n"+
		"prefetch:\n  enabled: true\n"+
		"admin:\n  listen: \"off\"\n")
	// Events in order: the prefetch pass returning, the first close.
	var seq, passReturned, firstClose atomic.Int64
	a.prefetch.hot = func(ctx context.Context, n int) ([]stats.HotFile, error) {
		<-ctx.Done()
		// Widens the window in which a shutdown that does not wait for
		// prefetching would close the app first; the test passes whatever
		// the timing when it does wait.
		time.Sleep(50 * time.Millisecond)
		passReturned.Store(seq.Add(1))
		return nil, ctx.Err()
	}
	// closes run last to first: this one runs before the cache's Close.
	a.closes = append(a.closes, func() error { firstClose.Store(seq.Add(1)); return nil })

	// serve sets the process's memory limit; restore it for later tests.
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := a.serve(ctx, cancelWhenServing(t, cancel))
	a.close()
	if err != nil {
		t.Fatal(err)
	}
	if p, c := passReturned.Load(), firstClose.Load(); p == 0 || c == 0 || p > c {
		t.Fatalf("prefetch pass returned as event %d, app closing began as event %d: want the pass first", p, c)
	}
}
