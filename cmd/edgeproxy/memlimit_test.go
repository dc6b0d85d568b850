package main

import (
	"context"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/cache"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/origin"
)

// fakeConns is a connCounter whose open count the test sets.
type fakeConns struct {
	open atomic.Int64
	per  int64
}

func (f *fakeConns) OpenConns() int64  { return f.open.Load() }
func (f *fakeConns) ConnMemory() int64 { return f.per }

// TestMemoryLimitRule pins the soft limit's formula: the memory tier, the
// fixed overhead (which covers the first 512 connections), and each open
// connection's memory beyond those.
func TestMemoryLimitRule(t *testing.T) {
	for _, tc := range []struct {
		mem, conns, per, want int64
	}{
		{64 << 20, 0, 32 << 10, 64<<20 + 80<<20},
		{64 << 20, 400, 32 << 10, 64<<20 + 80<<20},
		{64 << 20, 512, 32 << 10, 64<<20 + 80<<20},
		{64 << 20, 513, 32 << 10, 64<<20 + 80<<20 + 32<<10},
		{64 << 20, 11000, 32 << 10, 64<<20 + 80<<20 + (11000-512)*32<<10},
		{1 << 30, 8192, 32 << 10, 1<<30 + 80<<20 + (8192-512)*32<<10},
	} {
		if got := memoryLimit(tc.mem, tc.conns, tc.per); got != tc.want {
			t.Errorf("memoryLimit(%d, %d, %d) = %d, want %d", tc.mem, tc.conns, tc.per, got, tc.want)
		}
	}
}

// TestMemoryLimitFollowsConnections: the limit rises with the connections
// open and falls back when they close; GOMEMLIMIT leaves it alone. Runs in
// this process, since the limit is process-wide state.
func TestMemoryLimitFollowsConnections(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	conns := &fakeConns{per: 32 << 10}
	l := newConnLimit(64<<20, conns)
	if l == nil {
		t.Fatal("no limit without GOMEMLIMIT")
	}
	base := int64(64<<20 + memoryOverhead)
	if got := l.update(); got != base || debug.SetMemoryLimit(-1) != base {
		t.Fatalf("limit with no connections = %d (runtime %d), want %d", got, debug.SetMemoryLimit(-1), base)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.follow(ctx, 5*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()

	conns.open.Store(10000)
	want := base + (10000-overheadConns)*32<<10
	testenv.WaitFor(t, 10*time.Second, "the limit to cover 10,000 connections", func() bool { return debug.SetMemoryLimit(-1) == want })
	conns.open.Store(overheadConns + 3)
	testenv.WaitFor(t, 10*time.Second, "the limit to fall back", func() bool { return debug.SetMemoryLimit(-1) == base+3*32<<10 })
	conns.open.Store(0)
	testenv.WaitFor(t, 10*time.Second, "the limit to fall back to the base", func() bool { return debug.SetMemoryLimit(-1) == base })

	t.Setenv("GOMEMLIMIT", "1GiB")
	if l := newConnLimit(64<<20, conns); l != nil {
		t.Error("GOMEMLIMIT set, yet the limit follows connections")
	}
}

// TestConnLimitTakesCacheBudget: the limit is sized from the budget the
// cache runs with, so a config that leaves cache.memory_bytes out gets the
// cache's own default, and a set one is taken as it is.
func TestConnLimitTakesCacheBudget(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	o, err := origin.NewDir(origin.DirConfig{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  cache.Config
		want int64
	}{
		{cache.Config{}, cache.DefaultMemoryBytes},
		{cache.Config{MemoryBytes: 96 << 20}, 96 << 20},
	} {
		c, err := cache.New(tc.cfg, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		l := newConnLimit(c.Stats().MemoryMaxBytes, &fakeConns{per: 32 << 10})
		c.Close()
		if l == nil || l.mem != tc.want {
			t.Errorf("memory_bytes %d: limit %+v, want it sized for a %d-byte tier", tc.cfg.MemoryBytes, l, tc.want)
		}
	}
}
