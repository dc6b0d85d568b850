package cache

import (
	"bytes"
	"testing"
	"time"
)

// TestExpireAll checks that ExpireAll makes the next Stat of every object
// of the bucket (and only of it) ask the origin, that an overwritten
// object is then served with its new bytes, and that an unchanged one
// keeps its cached chunks.
func TestExpireAll(t *testing.T) {
	o := newFakeOrigin()
	cfg := smallConfig()
	cfg.MetaTTL = time.Hour
	c := newTestCache(t, cfg, o, nil)
	o.put("a", "same", randomBytes(2<<10, 1))
	o.put("a", "changed", randomBytes(2<<10, 2))
	o.put("b", "other", randomBytes(2<<10, 3))
	for _, bk := range [][2]string{{"a", "same"}, {"a", "changed"}, {"b", "other"}} {
		readAll(t, c, bk[0], bk[1])
	}
	settle(t, c)
	fresh := randomBytes(2<<10, 4)
	o.put("a", "changed", fresh)

	if got, status := readAll(t, c, "a", "changed"); bytes.Equal(got, fresh) || status != StatusHit {
		t.Fatalf("before ExpireAll: status %s, new bytes %v; want the cached old version within meta_ttl", status, bytes.Equal(got, fresh))
	}
	if n := c.ExpireAll("a"); n != 2 {
		t.Fatalf("ExpireAll(a) = %d, want 2", n)
	}
	stats := o.stats.Load()
	if got, _ := readAll(t, c, "a", "changed"); !bytes.Equal(got, fresh) {
		t.Fatal("after ExpireAll: old bytes served")
	}
	if _, status := readAll(t, c, "a", "same"); status != StatusHit {
		t.Fatalf("unchanged object after ExpireAll: status %s, want its chunks kept", status)
	}
	if n := o.stats.Load() - stats; n != 2 {
		t.Fatalf("%d origin Stats after ExpireAll(a), want 2 (one per object of a)", n)
	}
	stats = o.stats.Load()
	readAll(t, c, "b", "other")
	if o.stats.Load() != stats {
		t.Fatal("ExpireAll(a) expired bucket b")
	}
	if n := c.ExpireAll(""); n != 3 {
		t.Fatalf("ExpireAll(\"\") = %d, want 3", n)
	}
}
