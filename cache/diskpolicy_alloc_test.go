//go:build !race

package cache

import (
	"context"
	"io"
	"testing"
)

// TestHitAllocationsDiskPolicy: with a disk tier under either policy, a
// memory hit still allocates nothing; feeding the frequency sketch is
// atomic operations on a fixed table.
func TestHitAllocationsDiskPolicy(t *testing.T) {
	for _, pol := range []string{"tinylfu", "lru"} {
		o := newFakeOrigin()
		o.put("bucket", "some/object", randomBytes(3<<20, 51))
		c := newTestCache(t, Config{DiskDir: t.TempDir(), Policy: pol}, o, nil)
		readAll(t, c, "bucket", "some/object")
		settle(t, c)
		ctx := context.Background()
		hit := func() {
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
		}
		if allocs := testing.AllocsPerRun(1000, hit); allocs != 0 {
			t.Fatalf("%s: %v allocations per hit, want 0", pol, allocs)
		}
	}
}
