//go:build !race

package cache

import (
	"context"
	"io"
	"testing"
)

// TestHitAllocations guards the memory-hit path: Stat, Open, WriteTo and
// Close of a cached object allocate nothing. (ristretto's lossy access
// buffer allocates one 512-byte batch every 64 Gets; AllocsPerRun's integer
// average over 1000 runs rounds that to zero, which is the honest figure.)
func TestHitAllocations(t *testing.T) {
	for _, size := range []int{4 << 10, 3 << 20} {
		o := newFakeOrigin()
		o.put("bucket", "some/object", randomBytes(size, 50))
		c := newTestCache(t, Config{}, o, nil)
		readAll(t, c, "bucket", "some/object")
		settle(t, c)
		if allocs := hitAllocs(t, c); allocs != 0 {
			t.Fatalf("%d-byte object: %v allocations per hit, want 0", size, allocs)
		}
	}
}

// hitAllocs reads bucket/some/object whole from c (it must be cached) and
// returns the allocations of one Stat, Open, WriteTo, Close.
func hitAllocs(t *testing.T, c *Cache) float64 {
	t.Helper()
	ctx := context.Background()
	return testing.AllocsPerRun(1000, func() {
		info, err := c.Stat(ctx, "bucket", "some/object")
		if err != nil {
			t.Fatal(err)
		}
		rc, err := c.Open(ctx, "bucket", "some/object", info.ETag, 0, info.Size)
		if err != nil {
			t.Fatal(err)
		}
		if rc.(*Reader).CacheStatus() != StatusHit {
			t.Fatal("not a hit")
		}
		if _, err := rc.(io.WriterTo).WriteTo(io.Discard); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	})
}
