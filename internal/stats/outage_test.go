package stats

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// requestPath is what the proxy does per download: one Access and one
// transfer fed in chunks.
func requestPath(r *Recorder, prefix string, files, downloads int) {
	for i := range downloads {
		f := fmt.Sprint(prefix, i%files)
		r.Access(f)
		info := TransferInfo{Token: fmt.Sprint("tok-", prefix, i), FileID: f, Total: 1 << 20}
		if i%3 == 0 {
			cut(r, info, 0, 1<<20, 512<<10, 128<<10, errCut)
		} else {
			download(r, info, 0, 1<<20, 256<<10, nil)
		}
	}
}

// TestRedisDown: with Redis stopped the request path returns at once,
// access counts are kept up to MaxPending and delivered after the restart,
// and drops past the bound are counted.
func TestRedisDown(t *testing.T) {
	srv := testenv.NewRedis(t)
	rdb := srv.Client(t, testenv.NoRetries, func(o *redis.Options) { o.DialTimeout = 200 * time.Millisecond })
	cfg := testConfig(t)
	cfg.MaxPending = 10
	cfg.ProgressInterval = 20 * time.Millisecond
	cfg.Timeout = 500 * time.Millisecond
	r := newTestRecorder(t, cfg, rdb)
	ctx := context.Background()
	u := uniq(t)

	srv.Stop(t)
	within(t, 2*time.Second, "request path with Redis down", func() {
		for range 100 {
			for _, f := range []string{"a", "b", "c", "d", "e"} {
				r.Access(u + f)
			}
		}
		requestPath(r, u+"dl-", 5, 30)
	})
	if err := r.Flush(ctx); err == nil {
		t.Fatal("flush with Redis down succeeded")
	}
	// 5 known files + 5 dl- files are held; every new file is dropped.
	if s := r.Stats(); s.FlushFailures < 1 || s.PendingFiles != 10 || s.DroppedAccesses != 0 {
		t.Fatalf("after failed flush: %+v", s)
	}
	within(t, 2*time.Second, "access past the bound", func() {
		for i := range 20 {
			r.Access(fmt.Sprint(u, "new-", i))
		}
		r.Access(u + "a") // known files still count
	})
	if s := r.Stats(); s.DroppedAccesses != 20 || s.PendingFiles != 10 {
		t.Fatalf("past the bound: %+v", s)
	}

	srv.Start(t)
	testenv.WaitFor(t, 10*time.Second, "a flush after restart", func() bool { return r.Flush(ctx) == nil })
	for f, want := range map[string]int64{"a": 101, "b": 100, "e": 100, "new-0": 0} {
		if n, err := r.Count(ctx, u+f); err != nil || n != want {
			t.Errorf("Count(%s) = %d, %v; want %d", f, n, err, want)
		}
	}
	var dl int64
	for i := range 5 {
		n, _ := r.Count(ctx, fmt.Sprint(u, "dl-", i))
		dl += n
	}
	if dl != 30 {
		t.Errorf("download accesses counted %d, want 30", dl)
	}
	// Progress written during the outage is retried: the last task ends
	// COMPLETED (29 % 3 != 0), the first ABORTED.
	check := client(t, srv.Addr)
	lastID := TaskID(fmt.Sprint("tok-", u, "dl-", 29), u+"dl-4")
	firstID := TaskID(fmt.Sprint("tok-", u, "dl-", 0), u+"dl-0")
	var last, first map[string]string
	testenv.WaitFor(t, 10*time.Second, "progress after restart (last COMPLETED, first ABORTED at 524288 bytes)", func() bool {
		last, first = hget(t, check, lastID), hget(t, check, firstID)
		return last["status"] == "COMPLETED" && first["status"] == "ABORTED" && first["bytes_delivered"] == "524288"
	})
}

// TestRedisHangs: with a Redis that accepts and never replies, every
// background write is stuck for its timeout, and still the request path
// returns at once; the bounded queues drop and count instead of growing.
func TestRedisHangs(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Blackhole(t), testenv.NoRetries, func(o *redis.Options) {
		o.ReadTimeout, o.WriteTimeout, o.PoolSize = 5*time.Second, 5*time.Second, 4
		o.ContextTimeoutEnabled = false // stuck for the socket timeouts, whatever the contexts say
	})
	cfg := testConfig(t)
	cfg.FlushInterval = 10 * time.Millisecond
	cfg.ProgressInterval = 10 * time.Millisecond
	cfg.Timeout = 5 * time.Second
	cfg.ProgressQueue = 8
	cfg.LogQueue = 8
	cfg.MaxPending = 50
	r, err := New(cfg, rdb, nil)
	if err != nil {
		t.Fatal(err)
	}
	u := uniq(t)
	// Let the background writers get stuck first.
	requestPath(r, u, 10, 5)
	testenv.WaitFor(t, 5*time.Second, "writers busy", func() bool { return r.Stats().Flushes > 0 })

	within(t, 2*time.Second, "request path with Redis hanging", func() {
		for i := range 10_000 {
			r.Access(fmt.Sprint(u, i%100))
		}
		requestPath(r, u, 10, 200)
	})
	s := r.Stats()
	t.Logf("%+v", s)
	if s.DroppedLogEntries == 0 || s.ProgressDropped == 0 || s.DroppedAccesses == 0 {
		t.Fatalf("bounded queues did not drop: %+v", s)
	}
	if s.LogQueue > 8 || s.ProgressQueue > 8 || s.PendingFiles > 50 {
		t.Fatalf("queues past their bounds: %+v", s)
	}
	// Close is bounded by its context even though a batch is stuck.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	within(t, 10*time.Second, "Close", func() {
		if err := r.Close(ctx); err == nil {
			t.Error("Close with Redis hanging reported success")
		}
	})
}
