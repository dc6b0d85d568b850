package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/origin"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// countingOrigin counts the requests and body bytes that reach a real origin.
type countingOrigin struct {
	Origin
	stats, opens, bytes atomic.Int64
}

func (c *countingOrigin) Stat(ctx context.Context, bucket, key string) (origin.Info, error) {
	c.stats.Add(1)
	return c.Origin.Stat(ctx, bucket, key)
}

func (c *countingOrigin) Open(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error) {
	c.opens.Add(1)
	rc, err := c.Origin.Open(ctx, bucket, key, etag, off, n)
	if err != nil {
		return nil, err
	}
	return &countingBody{rc, &c.bytes}, nil
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func newS3(t testing.TB, s *testenv.MinIOServer) *countingOrigin {
	t.Helper()
	o, err := origin.NewS3(origin.S3Config{
		Endpoint: s.Endpoint, AccessKey: s.AccessKey, SecretKey: s.SecretKey,
		Timeout: 10 * time.Second, ConnectTimeout: 5 * time.Second, Retries: -1, // a loaded machine's MinIO may be slow
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return &countingOrigin{Origin: o}
}

func upload(t testing.TB, s *testenv.MinIOServer, bucket, key string, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := s.Client(t).PutObject(ctx, bucket, key, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true})
	if err != nil {
		t.Fatalf("upload %s/%s: %v", bucket, key, err)
	}
}

// TestMinIOConcurrentColdReaders: 32 readers of the same cold 16 MiB object
// at once make the origin send it about once.
func TestMinIOConcurrentColdReaders(t *testing.T) {
	s := testenv.MinIO(t)
	bucket := s.NewBucket(t)
	const size = 16 << 20
	data := randomBytes(size, 70)
	want := sha256.Sum256(data)
	upload(t, s, bucket, "big.bin", data)
	o := newS3(t, s)
	c := newTestCache(t, Config{Readahead: 4 << 20}, o, nil)

	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			info, err := c.Stat(ctx, bucket, "big.bin")
			if err != nil {
				errs <- err
				return
			}
			rc, err := c.Open(ctx, bucket, "big.bin", info.ETag, 0, info.Size)
			if err != nil {
				errs <- err
				return
			}
			defer rc.Close()
			h := sha256.New()
			if _, err := rc.(io.WriterTo).WriteTo(h); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(h.Sum(nil), want[:]) {
				errs <- errors.New("checksum mismatch")
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := o.bytes.Load(); got > size*105/100 {
		t.Fatalf("origin sent %d bytes for a %d-byte object (%.2fx)", got, size, float64(got)/size)
	}
	if o.stats.Load() != 1 {
		t.Fatalf("origin Stat calls %d, want 1", o.stats.Load())
	}
	t.Logf("origin: %d requests, %d bytes (%.3fx); stats %+v", o.opens.Load(), o.bytes.Load(), float64(o.bytes.Load())/size, c.Stats())
}

// TestMinIOETagChange: an object overwritten at the origin is served in its
// new version once the metadata TTL has passed.
func TestMinIOETagChange(t *testing.T) {
	s := testenv.MinIO(t)
	bucket := s.NewBucket(t)
	v1, v2 := randomBytes(3<<20+5, 71), randomBytes(2<<20+9, 72)
	upload(t, s, bucket, "obj", v1)
	o := newS3(t, s)
	clk := newFakeClock()
	c := newTestCache(t, Config{}, o, clk)
	if got, _ := readAll(t, c, bucket, "obj"); !bytes.Equal(got, v1) {
		t.Fatal("v1")
	}
	upload(t, s, bucket, "obj", v2)
	if got, status := readAll(t, c, bucket, "obj"); !bytes.Equal(got, v1) || status != StatusHit {
		t.Fatalf("within TTL: status %s, want the cached v1", status)
	}
	clk.Advance(31 * time.Second)
	got, status := readAll(t, c, bucket, "obj")
	if !bytes.Equal(got, v2) || status != StatusMiss {
		t.Fatalf("after TTL: status %s, v2 equal %v", status, bytes.Equal(got, v2))
	}
	// The origin itself refuses the old version's ETag, and so does the cache.
	old := `"` + "0123456789abcdef0123456789abcdef" + `"`
	if _, err := c.Open(context.Background(), bucket, "obj", old, 0, 1); !errors.Is(err, origin.ErrChanged) {
		t.Fatalf("old ETag: %v", err)
	}
}

// TestMinIORestartWarm: a new Cache on the same disk directory serves a
// previously read object without reading its bytes from MinIO.
func TestMinIORestartWarm(t *testing.T) {
	s := testenv.MinIO(t)
	bucket := s.NewBucket(t)
	data := randomBytes(5<<20+3, 73)
	upload(t, s, bucket, "warm", data)
	dir := t.TempDir()
	o := newS3(t, s)
	warmDisk(t, Config{DiskDir: dir}, o, bucket, "warm")

	o2 := newS3(t, s)
	c2 := newTestCache(t, Config{DiskDir: dir}, o2, nil)
	got, status := readAll(t, c2, bucket, "warm")
	if !bytes.Equal(got, data) || status != StatusHit {
		t.Fatalf("status %s, equal %v", status, bytes.Equal(got, data))
	}
	if o2.opens.Load() != 0 || o2.bytes.Load() != 0 {
		t.Fatalf("restarted cache read %d bytes in %d requests from the origin", o2.bytes.Load(), o2.opens.Load())
	}
	if st := c2.Stats(); st.DiskHits != 6 {
		t.Fatalf("stats %+v", st)
	}
}

// TestMinIOOutageStale: with MinIO stopped, cached objects are served STALE
// and uncached bytes fail with ErrUnavailable; after a restart the origin is
// used again.
func TestMinIOOutageStale(t *testing.T) {
	s := testenv.NewMinIO(t)
	bucket := s.NewBucket(t)
	cached, cold := randomBytes(2<<20, 74), randomBytes(1<<20, 75)
	upload(t, s, bucket, "cached", cached)
	upload(t, s, bucket, "cold", cold)
	o := newS3(t, s)
	clk := newFakeClock()
	c := newTestCache(t, Config{}, o, clk)
	readAll(t, c, bucket, "cached")
	if _, err := c.Stat(context.Background(), bucket, "cold"); err != nil {
		t.Fatal(err)
	}

	s.Stop(t)
	clk.Advance(31 * time.Second)
	got, status := readAll(t, c, bucket, "cached")
	if !bytes.Equal(got, cached) || status != StatusStale {
		t.Fatalf("during outage: status %s", status)
	}
	if _, err := c.Open(context.Background(), bucket, "cold", "", 0, 1<<20); !errors.Is(err, origin.ErrUnavailable) {
		t.Fatalf("uncached during outage: %v", err)
	}
	if _, err := c.Stat(context.Background(), bucket, "never-seen"); !errors.Is(err, origin.ErrUnavailable) {
		t.Fatalf("unknown object during outage: %v", err)
	}

	s.Start(t)
	clk.Advance(2 * time.Second) // past stale_retry
	got, status = readAll(t, c, bucket, "cold")
	if !bytes.Equal(got, cold) || status != StatusMiss {
		t.Fatalf("after recovery: status %s", status)
	}
	if _, status := readAll(t, c, bucket, "cached"); status != StatusHit {
		t.Fatalf("cached after recovery: status %s", status)
	}
}
