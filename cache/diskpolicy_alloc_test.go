//go:build !race

package cache

import "testing"

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
		if allocs := hitAllocs(t, c); allocs != 0 {
			t.Fatalf("%s: %v allocations per hit, want 0", pol, allocs)
		}
	}
}
