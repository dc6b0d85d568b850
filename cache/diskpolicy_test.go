package cache

import (
	"context"
	"testing"
)

// TestSketchKeyIsMemKey: readers feed the sketch with memKey and the disk
// index looks chunks up with diskKey.sketchKey; they must agree.
func TestSketchKeyIsMemKey(t *testing.T) {
	id := newObjectID("bucket", "some/key", `"etag"`, 10<<20)
	for idx := range int64(10) {
		if got, want := (diskKey{id.kh, id.eh, idx}).sketchKey(), memKey(id, idx); got != want {
			t.Fatalf("chunk %d: sketch key %x, memory key %x", idx, got, want)
		}
	}
}

// BenchmarkHitMemoryDiskPolicy is BenchmarkHitMemory with a disk tier
// under each policy: what feeding the sketch costs a memory hit (compare
// tinylfu with lru, which feeds nothing).
func BenchmarkHitMemoryDiskPolicy(b *testing.B) {
	for _, pol := range []string{"lru", "tinylfu"} {
		b.Run(pol, func(b *testing.B) {
			const size = 4 << 10
			o := newFakeOrigin()
			o.put("bucket", "obj", randomBytes(size, 60))
			c := newTestCache(b, Config{DiskDir: b.TempDir(), Policy: pol}, o, nil)
			readAll(b, c, "bucket", "obj")
			settle(b, c)
			ctx := context.Background()
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					hitOnce(b, c, ctx, "bucket", "obj")
				}
			})
		})
	}
}
