package catalogdb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/internal/stats"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// served drives downloads through the recorder (as the proxy does, one
// Access per download) and counts them.
type served struct {
	rec *stats.Recorder
	n   atomic.Int64
}

// download serves k downloads spread over files files, then flushes them
// to Redis.
func (s *served) download(t testing.TB, k, files int, seed int) {
	t.Helper()
	for i := range k {
		s.rec.Access(fmt.Sprintf("%d", 1+(i*7+seed)%files))
		s.n.Add(1)
	}
	if err := s.rec.Flush(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
}

// pgTotal is every download committed to PostgreSQL.
func pgTotal(t testing.TB, pool *pgxpool.Pool) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(ctxT(t, 10*time.Second), `SELECT coalesce(sum(downloads), 0)::bigint FROM file_access_counts`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// redisTotal is every download still in Redis: live counters plus a
// pending run's counts.
func redisTotal(t testing.TB, rdb *redis.Client) (live, pending int64) {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	keys, err := rdb.Keys(ctx, stats.AccessKeyPrefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		n, err := rdb.Get(ctx, k).Int64()
		if err != nil {
			t.Fatal(err)
		}
		live += n
	}
	h, err := rdb.HGetAll(ctx, stats.SyncPendingKey).Result()
	if err != nil {
		t.Fatal(err)
	}
	for f, v := range h {
		if strings.HasPrefix(f, "n:") {
			var n int64
			fmt.Sscan(v, &n)
			pending += n
		}
	}
	return live, pending
}

func newSyncer(t testing.TB, pool *pgxpool.Pool, rec *stats.Recorder) *Syncer {
	t.Helper()
	s, err := NewSyncer(SyncConfig{}, pool, rec, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runUntilOK retries Run while PostgreSQL comes back (the pool may hand
// out a connection broken by the restart once).
func runUntilOK(t testing.TB, s *Syncer) {
	t.Helper()
	var err error
	if !testenv.Poll(context.Background(), time.Minute, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = s.Run(ctx)
		return err == nil
	}) {
		t.Fatalf("sync never succeeded within a minute: %v", err)
	}
}

var errCrash = errors.New("simulated crash")

// TestSyncExactlyOnceAcrossFailures interrupts a sync at each stage, by
// killing PostgreSQL or by abandoning the run as a crashed process would,
// while downloads keep being counted; after PostgreSQL is back and a sync
// succeeds, PostgreSQL plus Redis hold exactly the downloads served.
func TestSyncExactlyOnceAcrossFailures(t *testing.T) {
	for _, tc := range []struct {
		stage string
		kill  bool // kill PostgreSQL there; else the run stops (crash)
	}{
		{"moving", true},
		{"sealed", true},
		{"committing", true}, // inside the transaction, after the run id
		{"sealed", false},
		{"committed", false}, // committed, pending hash not yet deleted
	} {
		name := tc.stage + "/crash"
		if tc.kill {
			name = tc.stage + "/kill-postgres"
		}
		t.Run(name, func(t *testing.T) {
			pg, pool := newDB(t)
			rec, rdb := newCounters(t)
			s := &served{rec: rec}
			syncer := newSyncer(t, pool, rec)

			const files = 300
			s.download(t, 3000, files, 0)
			runUntilOK(t, syncer) // a first run, so later ones add to rows
			s.download(t, 2000, files, 1)

			var once sync.Once
			fired := false
			syncer.hook = func(stage string) error {
				if stage != tc.stage {
					return nil
				}
				var err error
				once.Do(func() {
					fired = true
					// Downloads keep arriving during the sync.
					s.download(t, 500, files, 2)
					if tc.kill {
						pg.Kill(t)
					} else {
						err = errCrash
					}
				})
				return err
			}
			if err := syncer.Run(ctxT(t, 30*time.Second)); err == nil {
				t.Fatal("the interrupted sync reported success")
			}
			if !fired {
				t.Fatalf("stage %q never reached", tc.stage)
			}
			if live, pending := redisTotal(t, rdb); pending == 0 {
				t.Fatalf("no pending run after the interrupted sync (live %d)", live)
			}
			s.download(t, 700, files, 3)
			if tc.kill {
				pg.Start(t)
			}
			runUntilOK(t, syncer)
			s.download(t, 400, files, 4) // stays in Redis

			live, pending := redisTotal(t, rdb)
			inPG := pgTotal(t, pool)
			if pending != 0 {
				t.Errorf("pending run left: %d downloads", pending)
			}
			if live != 400 {
				t.Errorf("live counters hold %d, want the 400 served after the last sync", live)
			}
			if got := inPG + live + pending; got != s.n.Load() {
				t.Fatalf("postgres %d + redis %d + pending %d = %d, served %d", inPG, live, pending, got, s.n.Load())
			}
			if st := syncer.Stats(); st.Downloads != inPG || st.Failures < 1 || st.LastOK == 0 {
				t.Errorf("metrics %+v: want downloads %d, failures >= 1, a last success", st, inPG)
			}
		})
	}
}

// TestSyncTwoSyncers runs two nodes' syncers at once, repeatedly, while
// downloads are counted by both nodes: the totals are exact, and a syncer
// that finds the lock taken skips its run.
func TestSyncTwoSyncers(t *testing.T) {
	pg, poolA := newDB(t)
	poolB, err := Open(Config{DSN: pg.DSN})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(poolB.Close)
	recA, rdb := newCounters(t)
	recB, err := stats.New(stats.Config{FlushInterval: time.Hour, NodeID: "b"}, rdb, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { recB.Close(context.Background()) })
	a, b := newSyncer(t, poolA, recA), newSyncer(t, poolB, recB)
	sa, sb := &served{rec: recA}, &served{rec: recB}

	// Forced overlap: while A holds the lock (stopped after sealing), B's
	// run is skipped.
	var busy error
	a.hook = func(stage string) error {
		if stage == "sealed" {
			busy = b.Run(ctxT(t, 30*time.Second))
		}
		return nil
	}
	sa.download(t, 1000, 100, 0)
	if err := a.Run(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(busy, ErrSyncBusy) {
		t.Fatalf("B's run while A synced: %v, want ErrSyncBusy", busy)
	}
	a.hook = nil

	// Free-running: both nodes count and sync at the same time.
	var wg sync.WaitGroup
	for _, n := range []struct {
		s  *served
		sy *Syncer
	}{{sa, a}, {sb, b}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				n.s.download(t, 200, 250, i)
				if err := n.sy.Run(ctxT(t, 30*time.Second)); err != nil && !errors.Is(err, ErrSyncBusy) {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	runUntilOK(t, a)
	live, pending := redisTotal(t, rdb)
	want := sa.n.Load() + sb.n.Load()
	if got := pgTotal(t, poolA); got != want || live != 0 || pending != 0 {
		t.Fatalf("postgres %d, redis live %d pending %d; served %d", got, live, pending, want)
	}
	if b.Stats().Skipped == 0 {
		t.Error("B never recorded a skipped run")
	}
}

// TestSyncStaleRun: a syncer that lost its lock (its run is no longer the
// pending one, or is sealed) cannot move counts into the pending hash.
func TestSyncStaleRun(t *testing.T) {
	rec, rdb := newCounters(t)
	s := &served{rec: rec}
	s.download(t, 10, 3, 0)
	ctx := ctxT(t, 10*time.Second)
	if err := rec.BeginSync(ctx, "run-a", time.Unix(3600, 0)); err != nil {
		t.Fatal(err)
	}
	if err := rec.BeginSync(ctx, "run-b", time.Unix(3600, 0)); !errors.Is(err, stats.ErrSyncStale) {
		t.Fatalf("second BeginSync: %v, want ErrSyncStale", err)
	}
	if _, err := rec.MoveToSync(ctx, "run-b"); !errors.Is(err, stats.ErrSyncStale) {
		t.Fatalf("MoveToSync of another run: %v, want ErrSyncStale", err)
	}
	if _, _, err := rec.SealSync(ctx, "run-a"); err != nil {
		t.Fatal(err)
	}
	s.download(t, 5, 3, 1)
	if _, err := rec.MoveToSync(ctx, "run-a"); !errors.Is(err, stats.ErrSyncStale) {
		t.Fatalf("MoveToSync after seal: %v, want ErrSyncStale", err)
	}
	if live, pending := redisTotal(t, rdb); live != 15 || pending != 0 {
		t.Fatalf("live %d pending %d, want 15 and 0 (nothing moved)", live, pending)
	}
}

// TestSyncLoopFinishesPendingAtStart: a node starting its loop commits a
// run a crashed node left pending at once, not an interval later.
func TestSyncLoopFinishesPendingAtStart(t *testing.T) {
	_, pool := newDB(t)
	rec, rdb := newCounters(t)
	s := &served{rec: rec}
	s.download(t, 500, 50, 0)
	ctx := ctxT(t, time.Minute)
	// The crashed node's run: moved, never committed.
	if err := rec.BeginSync(ctx, "crashed-run", time.Now().Truncate(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.MoveToSync(ctx, "crashed-run"); err != nil {
		t.Fatal(err)
	}
	sy, err := NewSyncer(SyncConfig{Interval: time.Hour}, pool, rec, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); sy.Loop(lctx) }()
	defer func() { cancel(); <-done }()
	if !testenv.Poll(ctx, 30*time.Second, func() bool { return pgTotal(t, pool) == s.n.Load() }) {
		live, pending := redisTotal(t, rdb)
		t.Fatalf("postgres %d, redis live %d pending %d; served %d", pgTotal(t, pool), live, pending, s.n.Load())
	}
}
