package stats

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/fakeclock"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

func TestAccessCountsAndHotSet(t *testing.T) {
	rdb := client(t, testenv.Redis(t).Addr)
	cfg := testConfig(t)
	r := newTestRecorder(t, cfg, rdb)
	ctx := context.Background()
	u := uniq(t)
	a, b, c := u+"-a", u+"-b", u+"-c"

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 25 {
				r.Access(a)
			}
			for range 10 {
				r.Access(b)
			}
		})
	}
	wg.Wait()
	r.Access(c)
	if n, _ := r.Count(ctx, a); n != 0 {
		t.Fatalf("count before flush = %d, want 0: Access must not write", n)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]int64{a: 100, b: 40, c: 1, u + "-none": 0} {
		if n, err := r.Count(ctx, id); err != nil || n != want {
			t.Errorf("Count(%s) = %d, %v; want %d", id, n, err, want)
		}
	}
	ttl, err := rdb.TTL(ctx, AccessKeyPrefix+a).Result()
	if err != nil || ttl <= 0 || ttl > DefaultAccessTTL {
		t.Errorf("TTL = %s, %v; want within (0, %s]", ttl, err, DefaultAccessTTL)
	}

	// A second flush adds to the counters and the hot set.
	for range 5 {
		r.Access(c)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	hot, err := r.Hot(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []HotFile{{a, 100}, {b, 40}}
	if len(hot) != 2 || hot[0] != want[0] || hot[1] != want[1] {
		t.Fatalf("Hot(2) = %v, want %v", hot, want)
	}
	if hot, _ := r.Hot(ctx, 10); len(hot) != 3 || hot[2] != (HotFile{c, 6}) {
		t.Fatalf("Hot(10) = %v", hot)
	}
	if hot, err := r.Hot(ctx, 0); err != nil || len(hot) != 0 {
		t.Fatalf("Hot(0) = %v, %v", hot, err)
	}
	// Nothing pending: a flush sends nothing.
	before := r.Stats().Flushes
	if err := r.Flush(ctx); err != nil || r.Stats().Flushes != before {
		t.Fatalf("empty flush: err %v, flushes %d -> %d", err, before, r.Stats().Flushes)
	}
}

func TestAccessFlushLoop(t *testing.T) {
	rdb := client(t, testenv.Redis(t).Addr)
	cfg := testConfig(t)
	cfg.FlushInterval = 20 * time.Millisecond
	r := newTestRecorder(t, cfg, rdb)
	id := uniq(t)
	for range 7 {
		r.Access(id)
	}
	testenv.WaitFor(t, 5*time.Second, "background flush", func() bool {
		n, _ := r.Count(context.Background(), id)
		return n == 7
	})
}

// TestFlushBatching: 10k accesses over a few files cost a handful of
// Redis commands, not one per access.
func TestFlushBatching(t *testing.T) {
	srv := testenv.NewRedis(t) // alone on it, so every command counted is ours
	rdb := client(t, srv.Addr)
	r := newTestRecorder(t, testConfig(t), rdb)
	ctx := context.Background()
	u := uniq(t)
	files := []string{u + "-1", u + "-2", u + "-3", u + "-4", u + "-5"}

	before := commandCalls(t, rdb)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2500 {
				r.Access(files[(g+i)%len(files)])
			}
		})
	}
	wg.Wait()
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	delta := commandCalls(t, rdb) - before
	t.Logf("10000 accesses over %d files: %d Redis commands", len(files), delta)
	if delta >= 50 {
		t.Fatalf("%d Redis commands for 10000 accesses, want < 50", delta)
	}
	var sum int64
	for _, f := range files {
		n, err := r.Count(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		sum += n
	}
	if sum != 10000 {
		t.Fatalf("counted %d accesses, want 10000", sum)
	}
}

// TestReadAndResetConcurrent: increments racing with ReadAndReset are
// each returned exactly once. A GET then DEL would lose those in between.
func TestReadAndResetConcurrent(t *testing.T) {
	rdb := client(t, testenv.Redis(t).Addr)
	r := newTestRecorder(t, testConfig(t), rdb)
	ctx := context.Background()
	id := uniq(t)
	key := AccessKeyPrefix + id
	const writers, perWriter = 4, 500

	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range perWriter {
				if err := rdb.IncrBy(ctx, key, 1).Err(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	var got int64
	reads, nonzero := 0, 0
	for stop := false; !stop; {
		select {
		case <-done:
			stop = true
		default:
		}
		n, err := r.ReadAndReset(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		got += n
		reads++
		if n > 0 {
			nonzero++
		}
		if reads > 1_000_000 {
			t.Fatal("writers never finished")
		}
	}
	n, err := r.ReadAndReset(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	got += n
	t.Logf("%d reads, %d nonzero", reads, nonzero)
	if got != writers*perWriter {
		t.Fatalf("ReadAndReset returned %d in total, want %d", got, writers*perWriter)
	}
	if n, _ := r.ReadAndReset(ctx, id); n != 0 {
		t.Fatalf("counter after reset = %d", n)
	}
}

// TestMaxPendingDropsNewFiles: past MaxPending distinct files, accesses
// of new files are dropped and counted while known files keep counting.
func TestMaxPendingDropsNewFiles(t *testing.T) {
	rdb := client(t, testenv.Redis(t).Addr)
	cfg := testConfig(t)
	cfg.MaxPending = 3
	r := newTestRecorder(t, cfg, rdb)
	u := uniq(t)
	for _, id := range []string{"a", "b", "c", "d", "e", "a", "a"} {
		r.Access(u + id)
	}
	s := r.Stats()
	if s.DroppedAccesses != 2 || s.PendingFiles != 3 {
		t.Fatalf("dropped %d pending %d, want 2 and 3", s.DroppedAccesses, s.PendingFiles)
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, _ := r.Count(context.Background(), u+"a"); n != 3 {
		t.Fatalf("count of a = %d, want 3", n)
	}
	if r.Stats().PendingFiles != 0 {
		t.Fatal("a successful flush must leave nothing pending")
	}
}

// TestHotDaily: with HotDaily the hot set ranks today and yesterday only,
// and each day's set expires.
func TestHotDaily(t *testing.T) {
	rdb := client(t, testenv.Redis(t).Addr)
	cfg := testConfig(t)
	cfg.HotDaily = true
	clk := fakeclock.At(time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC))
	r, err := newRecorder(cfg, rdb, testLogger(t), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer closeNow(t, r)
	ctx := context.Background()
	day := func(files map[string]int) {
		t.Helper()
		for f, n := range files {
			for range n {
				r.Access(f)
			}
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		clk.Advance(24 * time.Hour)
	}
	day(map[string]int{"a": 5, "b": 1}) // March 1
	day(map[string]int{"b": 3, "c": 2}) // March 2
	clk.Advance(-24 * time.Hour)        // read on March 2
	hot, err := r.Hot(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := []HotFile{{"a", 5}, {"b", 4}}; !slices.Equal(hot, want) {
		t.Fatalf("Hot on day 2 = %v, want %v", hot, want)
	}
	clk.Advance(24 * time.Hour)
	day(map[string]int{"c": 2}) // March 3: March 1 no longer counts
	clk.Advance(-24 * time.Hour)
	if hot, _ := r.Hot(ctx, 10); !slices.Equal(hot, []HotFile{{"c", 4}, {"b", 3}}) {
		t.Fatalf("Hot on day 3 = %v", hot)
	}
	if ttl := rdb.TTL(ctx, cfg.HotKey+":20260301").Val(); ttl <= 24*time.Hour || ttl > hotDayTTL {
		t.Fatalf("daily key TTL %s", ttl)
	}
	if rdb.Exists(ctx, cfg.HotKey, cfg.HotKey+":scratch").Val() != 0 {
		t.Fatal("HotDaily must not touch the plain key or leave the scratch key")
	}
}
