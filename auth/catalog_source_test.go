package auth

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// fakeSource is a CatalogSource with one file, failing or hanging on
// demand.
type fakeSource struct {
	m     FileMeta
	err   error
	hang  bool // ignore ctx and never answer (until the test ends)
	calls atomic.Int64
	stop  chan struct{}
}

func (f *fakeSource) Lookup(ctx context.Context, id string) (FileMeta, error) {
	f.calls.Add(1)
	if f.hang {
		<-f.stop
	}
	if f.err != nil {
		return FileMeta{}, f.err
	}
	if id != f.m.ID {
		return FileMeta{}, ErrFileNotFound
	}
	return f.m, nil
}

func TestCatalogSourceReadThrough(t *testing.T) {
	ctx := context.Background()
	c := newTestClient(t, testenv.Redis(t).Addr)
	prefix := testConfig(t).KeyPrefix + "file:meta:"
	m := FileMeta{ID: "42", Bucket: "dl", Key: "a/b.bin", Filename: "b.bin", Size: 7, ContentType: "text/plain",
		CreatedAt: time.Unix(1700000000, 0).UTC(), UpdatedAt: time.Unix(1700000001, 0).UTC()}
	src := &fakeSource{m: m}
	cat, err := NewCatalog(CatalogConfig{KeyPrefix: prefix, CacheTTL: -1, NegativeTTL: -1, RedisTTL: time.Minute}, c, nil, WithSource(src))
	if err != nil {
		t.Fatal(err)
	}
	got, err := cat.Lookup(ctx, "42")
	if err != nil || got != m {
		t.Fatalf("Lookup = %+v, %v; want %+v", got, err, m)
	}
	// Written back to Redis in today's format, with the TTL: the next
	// lookup does not reach the source.
	if ttl := c.TTL(ctx, prefix+"42").Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("redis TTL %v", ttl)
	}
	h := c.HGetAll(ctx, prefix+"42").Val()
	if back, err := ParseFileMeta("42", h); err != nil || back != m {
		t.Fatalf("redis entry %v parses to %+v, %v", h, back, err)
	}
	if _, err := cat.Lookup(ctx, "42"); err != nil || src.calls.Load() != 1 {
		t.Fatalf("second lookup: %v; source calls %d, want 1", err, src.calls.Load())
	}
	if _, err := cat.Lookup(ctx, "43"); !errors.Is(err, ErrFileNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	// Invalidate drops the Redis entry: the source is read again.
	if err := cat.Invalidate(ctx, "42"); err != nil {
		t.Fatal(err)
	}
	if c.Exists(ctx, prefix+"42").Val() != 0 {
		t.Fatal("redis entry kept after Invalidate")
	}
	// Source down: an uncached id is an error (503), not "not found".
	src.err = errors.New("connection refused")
	if _, err := cat.Lookup(ctx, "42"); err == nil || errors.Is(err, ErrFileNotFound) {
		t.Fatalf("source down: %v, want a store error", err)
	}
}

// A source that never answers (and ignores its context) costs a lookup at
// most the budget: Timeout for Redis, SourceTimeout, Timeout for the
// write-back.
func TestCatalogSourceHangs(t *testing.T) {
	c := newTestClient(t, testenv.Redis(t).Addr)
	src := &fakeSource{hang: true, stop: make(chan struct{})}
	t.Cleanup(func() { close(src.stop) })
	cfg := CatalogConfig{KeyPrefix: testConfig(t).KeyPrefix + "file:meta:", Timeout: 50 * time.Millisecond, SourceTimeout: 100 * time.Millisecond}
	cat, err := NewCatalog(cfg, c, nil, WithSource(src))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = cat.Lookup(context.Background(), "1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline", err)
	}
	// The budget is 200ms; the bound is generous for a loaded machine but
	// far below a hang.
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("lookup took %v", d)
	}
}

// Listen applies another node's Invalidate: an id this node found missing
// (negative cache) is served as soon as the message arrives.
func TestCatalogInvalidateOtherNode(t *testing.T) {
	ctx := context.Background()
	c := newTestClient(t, testenv.Redis(t).Addr)
	ns := testConfig(t).KeyPrefix
	cfg := CatalogConfig{KeyPrefix: ns + "file:meta:", InvalidateChannel: ns + "inval", NegativeTTL: time.Hour, CacheTTL: time.Hour}
	src := &fakeSource{m: FileMeta{ID: "9", Bucket: "b", Key: "k"}, err: nil}
	src.m.ID = "none yet"
	a, _ := NewCatalog(cfg, c, nil, WithSource(src))
	b, _ := NewCatalog(cfg, c, nil, WithSource(src))
	lctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	ready := make(chan struct{})
	go b.Listen(lctx, ready)
	<-ready
	if _, err := b.Lookup(ctx, "9"); !errors.Is(err, ErrFileNotFound) {
		t.Fatalf("before: %v", err)
	}
	src.m.ID = "9"                                 // the record is written to the system of record...
	if err := a.Invalidate(ctx, "9"); err != nil { // ...then invalidated
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "node B to serve the new record", func() bool {
		_, err := b.Lookup(ctx, "9")
		return err == nil
	})
}
