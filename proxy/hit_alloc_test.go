//go:build !race

package proxy_test

import "testing"

// TestCacheHitAllocations guards the hot path: serving a 4 KiB object
// from the memory tier, response headers included, allocates nothing
// per request in the proxy.
func TestCacheHitAllocations(t *testing.T) {
	h := newHitBench(t, 4<<10, false, false, false)
	if n := testing.AllocsPerRun(1000, func() { h.do(t) }); n != 0 {
		t.Fatalf("a cache hit allocates %.1f times per request, want 0", n)
	}
}
