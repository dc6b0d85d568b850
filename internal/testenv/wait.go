package testenv

import (
	"context"
	"testing"
	"time"
)

// Poll calls cond until it returns true, ctx ends or within passes, and
// reports whether cond held. It checks at once, then every 10 ms: often
// enough that waiting costs a test nothing, rarely enough that a
// condition that sends a request (a probe) does not crowd the code under
// test on a loaded machine.
func Poll(ctx context.Context, within time.Duration, cond func() bool) bool {
	return poll(ctx, within, 10*time.Millisecond, 10*time.Millisecond, cond)
}

// poll is Poll with the first delay doubling up to maxDelay.
func poll(ctx context.Context, within, delay, maxDelay time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for ; ; delay = min(2*delay, maxDelay) {
		if cond() {
			return true
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-deadline.C:
			t.Stop()
			return cond()
		case <-t.C:
		}
	}
}

// WaitFor waits until cond holds and fails the test if it does not within
// the given time. Tests wait on a condition the code exposes with a
// generous bound rather than sleeping for a guessed time.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(context.Background(), within, cond) {
		t.Fatalf("timed out after %v waiting for %s", within, what)
	}
}
