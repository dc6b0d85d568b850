package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/internal/fakeclock"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

func TestCatalog(t *testing.T) {
	ctx := context.Background()
	c := newTestClient(t, testenv.Redis(t).Addr)
	prefix := testConfig(t).KeyPrefix + "file:meta:"
	cat, err := NewCatalog(CatalogConfig{KeyPrefix: prefix, CacheTTL: time.Hour}, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cat.Lookup(ctx, "10086"); !errors.Is(err, ErrFileNotFound) {
		t.Fatalf("absent file: %v", err)
	}
	m := FileMeta{ID: "10086", Bucket: "dl", Key: "iso/a.iso", Filename: "a.iso", SHA256: "ab12", Size: 1 << 30,
		ContentType: "application/octet-stream", CreatedAt: time.Unix(1700000000, 0).UTC(), UpdatedAt: time.Unix(1700000100, 0).UTC()}
	if err := cat.Put(ctx, m); err != nil {
		t.Fatal(err)
	}
	got, err := cat.Lookup(ctx, "10086")
	if err != nil || got != m {
		t.Fatalf("Lookup = %+v, %v; want %+v", got, err, m)
	}
	// Served from the cache: a change behind the catalog's back is not seen...
	c.HSet(ctx, prefix+"10086", "size", "1")
	if got, _ := cat.Lookup(ctx, "10086"); got.Size != 1<<30 {
		t.Fatalf("cached size %d", got.Size)
	}
	// ...but Put drops the cached copy.
	m.Size = 2
	if err := cat.Put(ctx, m); err != nil {
		t.Fatal(err)
	}
	if got, _ := cat.Lookup(ctx, "10086"); got.Size != 2 {
		t.Fatalf("size after Put %d", got.Size)
	}
	c.HSet(ctx, prefix+"bad", "bucket", "b")
	if _, err := cat.Lookup(ctx, "bad"); !errors.Is(err, ErrMalformedRecord) {
		t.Fatalf("malformed: %v", err)
	}
	if err := cat.Put(ctx, FileMeta{ID: "x"}); err == nil {
		t.Fatal("Put without bucket and key succeeded")
	}
}

func TestCatalogSlowRedis(t *testing.T) {
	// The client's own timeout is 30 s: a Lookup that ignored its 50 ms
	// one would take that long. 10 s is room for a loaded machine.
	c := testenv.RedisClient(t, testenv.Blackhole(t), testenv.NoRetries, func(o *redis.Options) { o.ReadTimeout = 30 * time.Second })
	cat, err := NewCatalog(CatalogConfig{Timeout: 50 * time.Millisecond}, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = cat.Lookup(context.Background(), "1")
	if err == nil || errors.Is(err, ErrFileNotFound) || time.Since(start) > 10*time.Second {
		t.Fatalf("Lookup against a hung server: %v after %v", err, time.Since(start))
	}
}

// TestCatalogNegativeCache: an id found missing is answered from memory for
// NegativeTTL (one HGETALL, not one per lookup), asked again after it, and
// forgotten at once by Put; the table is bounded by NegativeSize.
func TestCatalogNegativeCache(t *testing.T) {
	ctx := context.Background()
	c := newTestClient(t, testenv.Redis(t).Addr)
	hgetall := testenv.Count(c)
	prefix := testConfig(t).KeyPrefix + "file:meta:"
	cat, err := NewCatalog(CatalogConfig{KeyPrefix: prefix, NegativeTTL: 3 * time.Second, NegativeSize: 2}, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := fakeclock.At(time.Unix(1_700_000_000, 0))
	cat.now = clk.Now
	lookups := func(want int) {
		t.Helper()
		if got := hgetall.N("hgetall"); got != want {
			t.Fatalf("%d HGETALLs, want %d", got, want)
		}
	}
	missing := func(id string) {
		t.Helper()
		if _, err := cat.Lookup(ctx, id); !errors.Is(err, ErrFileNotFound) {
			t.Fatalf("Lookup(%q): %v, want ErrFileNotFound", id, err)
		}
	}

	missing("a")
	lookups(1)
	for range 5 {
		missing("a")
	}
	lookups(1)
	clk.Advance(3*time.Second - time.Nanosecond)
	missing("a")
	lookups(1)
	clk.Advance(time.Nanosecond) // NegativeTTL has passed
	missing("a")
	lookups(2)

	// Put forgets the negative answer on this process at once.
	if err := cat.Put(ctx, FileMeta{ID: "a", Bucket: "b", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if m, err := cat.Lookup(ctx, "a"); err != nil || m.Key != "k" {
		t.Fatalf("after Put: %+v, %v", m, err)
	}
	lookups(3)

	// Bounded: a third missing id evicts the least recently used.
	missing("x")
	missing("y")
	missing("z")
	lookups(6)
	missing("y")
	missing("z")
	lookups(6)
	missing("x")
	lookups(7)
}

// TestCatalogNegativeCacheOff: a negative NegativeTTL asks Redis every time.
func TestCatalogNegativeCacheOff(t *testing.T) {
	c := newTestClient(t, testenv.Redis(t).Addr)
	hgetall := testenv.Count(c)
	cat, err := NewCatalog(CatalogConfig{KeyPrefix: testConfig(t).KeyPrefix + "file:meta:", NegativeTTL: -1}, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := cat.Lookup(context.Background(), "a"); !errors.Is(err, ErrFileNotFound) {
			t.Fatal(err)
		}
	}
	if n := hgetall.N("hgetall"); n != 3 {
		t.Fatalf("%d HGETALLs, want 3", n)
	}
}
