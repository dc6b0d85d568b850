package limiter

import (
	"testing"

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

func within(got, want, frac float64) bool {
	return got >= want*(1-frac) && got <= want*(1+frac)
}

const (
	KiB = 1 << 10
	MiB = 1 << 20
)
