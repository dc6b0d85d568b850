package limiter

import (
	"runtime"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/fakeclock"
)

// newFake returns a Limiter on a fake clock whose sleeps advance it.
func newFake(t testing.TB, cfg Config) (*Limiter, *fakeclock.Clock) {
	t.Helper()
	clk := fakeclock.New()
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
