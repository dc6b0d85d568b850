package limiter

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
)

// fakeClock is a manual clock. Its Sleep advances the clock instead of
// waiting, which is exact for a single goroutine; concurrent tests use
// testing/synctest instead.
type fakeClock struct {
	mu       sync.Mutex
	t        time.Time
	sleeps   int
	slept    time.Duration
	maxSleep time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.sleeps++
	c.slept += d
	c.maxSleep = max(c.maxSleep, d)
	c.mu.Unlock()
	return nil
}

func (c *fakeClock) Sleeps() (int, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sleeps, c.slept
}

// newFake returns a Limiter on a fake clock whose sleeps advance it.
func newFake(t testing.TB, cfg Config) (*Limiter, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	l, err := New(cfg, clk.Now, WithSleep(clk.Sleep))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l, clk
}

// zeroReader is an endless body that costs nothing to read.
type zeroReader struct{ closed bool }

func (z *zeroReader) Read(p []byte) (int, error) { return len(p), nil }
func (z *zeroReader) Close() error               { z.closed = true; return nil }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
	}
}

func within(got, want, frac float64) bool {
	return got >= want*(1-frac) && got <= want*(1+frac)
}

const (
	KiB = 1 << 10
	MiB = 1 << 20
)
