package cache

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/fakeclock"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/origin"
)

// fakeOrigin is an in-memory Origin with counters and fault injection.
type fakeOrigin struct {
	mu      sync.Mutex
	objs    map[string]fakeObject
	statErr error // returned by Stat when set
	openErr error // returned by Open when set
	// gate, when set, makes Open wait (honouring ctx) until it is closed.
	gate chan struct{}
	// bodyGate, when set, makes each body stop after bodyGateAfter bytes
	// until it is closed.
	bodyGate      chan struct{}
	bodyGateAfter int64
	ranges        [][2]int64 // (off, n) of every Open
	truncateAt    int64      // when > 0, bodies end (EOF) at this object offset

	stats, opens, waiting atomic.Int64
	bytesRead             atomic.Int64
}

type fakeObject struct {
	data []byte
	info origin.Info
}

func newFakeOrigin() *fakeOrigin { return &fakeOrigin{objs: map[string]fakeObject{}} }

// put stores an object and returns its quoted ETag (MD5, as S3 does).
func (f *fakeOrigin) put(bucket, key string, data []byte) string {
	sum := md5.Sum(data)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objs[bucket+"/"+key] = fakeObject{data: data, info: origin.Info{
		Size: int64(len(data)), ETag: etag, LastModified: time.Unix(1700000000, 0).UTC(), ContentType: "application/octet-stream",
	}}
	return etag
}

// putETag stores an object under a given ETag (no hashing, for benchmarks).
func (f *fakeOrigin) putETag(bucket, key string, data []byte, etag string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objs[bucket+"/"+key] = fakeObject{data: data, info: origin.Info{Size: int64(len(data)), ETag: etag}}
}

func (f *fakeOrigin) set(fn func(f *fakeOrigin)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeOrigin) Stat(ctx context.Context, bucket, key string) (origin.Info, error) {
	f.stats.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.statErr != nil {
		return origin.Info{}, f.statErr
	}
	o, ok := f.objs[bucket+"/"+key]
	if !ok {
		return origin.Info{}, fmt.Errorf("fake: %s/%s: %w", bucket, key, origin.ErrNotFound)
	}
	return o.info, nil
}

func (f *fakeOrigin) Open(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error) {
	f.opens.Add(1)
	f.mu.Lock()
	gate, openErr := f.gate, f.openErr
	f.ranges = append(f.ranges, [2]int64{off, n})
	f.mu.Unlock()
	if gate != nil {
		f.waiting.Add(1)
		select {
		case <-gate:
			f.waiting.Add(-1)
		case <-ctx.Done():
			f.waiting.Add(-1)
			return nil, fmt.Errorf("fake: open: %w", ctx.Err())
		}
	}
	if openErr != nil {
		return nil, openErr
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.objs[bucket+"/"+key]
	switch {
	case !ok:
		return nil, fmt.Errorf("fake: %s/%s: %w", bucket, key, origin.ErrNotFound)
	case etag != "" && etag != o.info.ETag:
		return nil, fmt.Errorf("fake: %s/%s: %w", bucket, key, origin.ErrChanged)
	case off < 0 || n <= 0 || off+n > o.info.Size:
		return nil, fmt.Errorf("fake: bad range %d+%d of %d", off, n, o.info.Size)
	}
	body := o.data[off : off+n]
	if f.truncateAt > 0 {
		body = body[:max(0, min(n, f.truncateAt-off))]
	}
	return &fakeBody{f: f, ctx: ctx, r: bytes.NewReader(body), gate: f.bodyGate, gateAfter: f.bodyGateAfter}, nil
}

func (f *fakeOrigin) rangesSeen() [][2]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][2]int64(nil), f.ranges...)
}

type fakeBody struct {
	f         *fakeOrigin
	ctx       context.Context
	r         *bytes.Reader
	read      int64
	gate      chan struct{}
	gateAfter int64
}

func (b *fakeBody) Read(p []byte) (int, error) {
	if b.gate != nil {
		if b.read >= b.gateAfter {
			select {
			case <-b.gate:
				b.gate = nil
			case <-b.ctx.Done():
				return 0, b.ctx.Err()
			}
		} else if int64(len(p)) > b.gateAfter-b.read {
			p = p[:b.gateAfter-b.read]
		}
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	b.f.bytesRead.Add(int64(n))
	return n, err
}

func (b *fakeBody) Close() error { return nil }

// newFakeClock is the clock of TTL tests.
func newFakeClock() *fakeclock.Clock { return fakeclock.At(time.Unix(1800000000, 0)) }

// newTestCache builds a cache closed at the end of the test. A non-nil
// clock replaces time.Now.
func newTestCache(t testing.TB, cfg Config, o Origin, clk *fakeclock.Clock) *Cache {
	t.Helper()
	c, err := New(cfg, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if clk != nil {
		c.now = clk.Now
	}
	if c.disk != nil {
		c.disk.waitScan() // tests of a warm restart expect the index rebuilt
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// smallConfig: 1 KiB chunks, 4-chunk windows.
func smallConfig() Config {
	return Config{ChunkSize: 1 << 10, Readahead: 4 << 10, MemoryBytes: 4 << 20}
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// readRange opens and reads a range fully with WriteTo, returning the bytes
// and the cache status.
func readRange(t testing.TB, c *Cache, ctx context.Context, bucket, key, etag string, off, n int64) ([]byte, string) {
	t.Helper()
	rc, err := c.Open(ctx, bucket, key, etag, off, n)
	if err != nil {
		t.Fatalf("open %s/%s [%d,+%d): %v", bucket, key, off, n, err)
	}
	defer rc.Close()
	status := rc.(*Reader).CacheStatus()
	var buf bytes.Buffer
	if _, err := rc.(io.WriterTo).WriteTo(&buf); err != nil {
		t.Fatalf("read %s/%s: %v", bucket, key, err)
	}
	return buf.Bytes(), status
}

// readAll reads a whole object through Stat and Open.
func readAll(t testing.TB, c *Cache, bucket, key string) ([]byte, string) {
	t.Helper()
	info, err := c.Stat(context.Background(), bucket, key)
	if err != nil {
		t.Fatalf("stat %s/%s: %v", bucket, key, err)
	}
	return readRange(t, c, context.Background(), bucket, key, info.ETag, 0, info.Size)
}

// warmDisk reads bucket/key whole through a cache on cfg's disk directory,
// then closes it, so that the next cache built on that directory starts
// with the object's chunks on disk.
func warmDisk(t testing.TB, cfg Config, o Origin, bucket, key string) {
	t.Helper()
	c, err := New(cfg, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, c, bucket, key)
	settle(t, c)
	c.Close()
}

// settle waits until no fill is in flight and the memory tier applied its
// Sets, so tests can assert on the cache's contents.
func settle(t testing.TB, c *Cache) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, "fills to finish", func() bool { return c.Stats().InflightChunks == 0 })
	c.mem.Wait()
	if c.disk != nil {
		c.disk.flush()
	}
}
