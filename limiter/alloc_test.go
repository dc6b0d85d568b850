//go:build !race

package limiter

import "testing"

// The unshaped path must stay free: Shape returns the body itself.
func TestShapeUnlimitedAllocs(t *testing.T) {
	l, _ := newFake(t, Config{RateAfter: 1 << 20})
	le, err := l.Admit("a")
	if err != nil {
		t.Fatal(err)
	}
	defer le.Release()
	body := &zeroReader{}
	if n := testing.AllocsPerRun(1000, func() { _ = l.Shape(body, le, 0) }); n != 0 {
		t.Errorf("Shape on the fast path allocates %.1f times", n)
	}
}

// Admission of a known client allocates only the Lease.
func TestAdmitAllocs(t *testing.T) {
	l, _ := newFake(t, Config{MaxConcurrentPerClient: 4, MaxConcurrent: 100, RequestRate: 1e9, RequestBurst: 1 << 20})
	admitRelease(t, l, "a")
	n := testing.AllocsPerRun(1000, func() {
		le, err := l.Admit("a")
		if err != nil {
			t.Fatal(err)
		}
		le.Release()
	})
	if n != 1 {
		t.Errorf("Admit+Release allocates %.1f times, want 1 (the Lease)", n)
	}
}
