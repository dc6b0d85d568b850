// Package fakeclock is the manual clock tests pass where production code
// takes a clock (a now func, a sleep func): time moves only when the test
// says so, which makes TTLs, token buckets and idle eviction exact on a
// loaded machine. Production packages never import it.
package fakeclock

import (
	"context"
	"sync"
	"time"
)

// Clock is a manually advanced clock, safe for concurrent use. Its Sleep
// advances the clock instead of waiting, which is exact while one
// goroutine sleeps on it; tests with concurrent sleepers use
// testing/synctest instead.
type Clock struct {
	mu       sync.Mutex
	t        time.Time
	sleeps   int
	slept    time.Duration
	maxSleep time.Duration
}

// Start is where New clocks begin: a fixed instant, so that logs and
// failures read the same on every run.
var Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// New returns a clock at Start.
func New() *Clock { return At(Start) }

// At returns a clock at t.
func At(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time; pass c.Now where code takes a now func.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock by d (backwards when d is negative, as a wall
// clock stepped by NTP can).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Sleep advances the clock by d and returns at once, or returns ctx's error
// without advancing if ctx has ended. It records the sleep for Sleeps and
// MaxSleep.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
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

// Sleeps returns how many Sleep calls advanced the clock and by how much in
// total.
func (c *Clock) Sleeps() (int, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sleeps, c.slept
}

// MaxSleep returns the longest single Sleep so far.
func (c *Clock) MaxSleep() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxSleep
}
