package origin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/edgeproxy/edgeproxy/internal/fakeclock"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// recorder serves obj and remembers each GET's Range and If-Match; with
// cutAt > 0 it sends a body only up to that object offset and then drops
// the connection (the declared Content-Length is never reached).
type recorder struct {
	obj   *fakeObject
	cutAt int
	mu    sync.Mutex
	gets  []string
	n     atomic.Int64
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.n.Add(1)
	if req.Method == http.MethodGet {
		r.mu.Lock()
		r.gets = append(r.gets, req.Header.Get("Range")+" "+req.Header.Get("If-Match"))
		r.mu.Unlock()
	}
	if req.URL.Path == "/minio/health/live" {
		return
	}
	var off, end int
	if r.cutAt > 0 && req.Method == http.MethodGet {
		fmt.Sscanf(req.Header.Get("Range"), "bytes=%d-%d", &off, &end)
		if off < r.cutAt {
			h := w.Header()
			h.Set("ETag", `"`+r.obj.etag+`"`)
			h.Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
			h.Set("Content-Length", fmt.Sprint(end-off+1))
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, end, len(r.obj.data)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(r.obj.data[off:r.cutAt])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
	}
	r.obj.ServeHTTP(w, req)
}

func (r *recorder) ranges() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.gets...)
}

// deadAddr returns a loopback host:port that refuses connections.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://")
}

// poolS3 builds a store over eps without the health-check loop, on clk.
func poolS3(t *testing.T, clk *fakeclock.Clock, mod func(*S3Config), eps ...string) *S3 {
	t.Helper()
	cfg := S3Config{Endpoints: eps, AccessKey: "k", SecretKey: "s", RetryBackoff: time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	s, err := newS3(cfg, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.transport.CloseIdleConnections() })
	return s
}

func TestPoolConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  S3Config
		want string
	}{
		{S3Config{Endpoint: "a:1", Endpoints: []string{"b:1"}}, "origin: endpoints: set with endpoint"},
		{S3Config{Endpoint: "a:1", Endpoints: []string{"a:1", "b:1"}}, "origin: endpoints: set with endpoint"},
		{S3Config{Endpoints: []string{"a:1", "a:1"}}, "origin: endpoints: \"a:1\" listed twice"},
		{S3Config{Endpoints: []string{"a:1", "http://b:1"}}, "origin: endpoint: \"http://b:1\" has a scheme"},
		{S3Config{Endpoints: make([]string, 65)}, "origin: endpoints: 65 listed"},
		{S3Config{Endpoint: "a:1", EjectAfter: -1}, "origin: eject_after: "},
		{S3Config{Endpoint: "a:1", HealthInterval: -1}, "origin: health_interval: "},
		{S3Config{Endpoint: "a:1", EjectTime: time.Minute, MaxEjectTime: time.Second}, "origin: max_eject_time: "},
		{S3Config{Endpoint: "a:1", STS: STSConfig{Enabled: true, Duration: time.Minute}}, "origin: sts.duration: "},
	} {
		err := tc.cfg.normalize()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("normalize(%+v) = %v, want prefix %q", tc.cfg, err, tc.want)
		}
	}
	for _, cfg := range []S3Config{
		{Endpoint: "a:1"},
		{Endpoint: "a:1", Endpoints: []string{"a:1"}},
		{Endpoints: []string{"a:1"}},
	} {
		if err := cfg.normalize(); err != nil || len(cfg.Endpoints) != 1 || cfg.Endpoints[0] != "a:1" {
			t.Errorf("normalize: %v, endpoints %v", err, cfg.Endpoints)
		}
		if cfg.EjectAfter != DefaultEjectAfter || cfg.HealthInterval != DefaultHealthInterval ||
			cfg.EjectTime != DefaultEjectTime || cfg.MaxEjectTime != DefaultMaxEjectTime || cfg.SlowThreshold != DefaultSlowThreshold {
			t.Errorf("pool defaults not applied: %+v", cfg)
		}
	}
}

// A request that fails on a dead node succeeds on another without the
// caller seeing it; after EjectAfter failures the dead node is ejected and
// gets no more requests until the ejection ends.
func TestPoolFailoverAndEjection(t *testing.T) {
	clk := fakeclock.At(time.Unix(1e9, 0))
	good := &recorder{obj: &fakeObject{data: randBytes(1000, 1), etag: "abc"}}
	dead := deadAddr(t)
	s := poolS3(t, clk, func(c *S3Config) { c.EjectAfter = 2; c.EjectTime = 10 * time.Second }, dead, serve(t, good))
	ctx := context.Background()
	for i := range 20 {
		if info, err := s.Stat(ctx, "bkt", "k"); err != nil || info.Size != 1000 {
			t.Fatalf("Stat %d = %+v, %v", i, info, err)
		}
	}
	st := s.Endpoints()
	if st[0].Up || st[0].Ejections != 1 || st[0].Failures != 2 || st[0].Requests != 2 || !st[1].Up || st[1].Requests != 20 {
		t.Fatalf("after 20 Stats: %+v", st)
	}
	// The ejection ends after EjectTime; the next failure ejects again for
	// twice as long.
	clk.Advance(10 * time.Second)
	if !s.Endpoints()[0].Up {
		t.Fatal("endpoint still ejected after EjectTime")
	}
	for range 20 {
		if _, err := s.Stat(ctx, "bkt", "k"); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Endpoints()[0]; st.Up || st.Ejections != 2 {
		t.Fatalf("second round: %+v", st)
	}
	clk.Advance(19 * time.Second)
	if s.Endpoints()[0].Up {
		t.Fatal("second ejection did not double")
	}
	clk.Advance(time.Second)
	if !s.Endpoints()[0].Up {
		t.Fatal("second ejection outlasted 2x EjectTime")
	}
}

// A body cut mid-stream resumes on another endpoint from the byte reached,
// with If-Match on the first answer's ETag: the reader sees every byte once.
func TestPoolResumeMidBody(t *testing.T) {
	clk := fakeclock.At(time.Unix(1e9, 0))
	obj := &fakeObject{data: randBytes(1<<20, 2), etag: "abc"}
	cut := &recorder{obj: obj, cutAt: 300_000}
	good := &recorder{obj: obj}
	s := poolS3(t, clk, func(c *S3Config) { c.Retries = -1 }, serve(t, cut), serve(t, good))
	s.pool.eps[1].ejectedUntil = clk.Now().Add(time.Hour) // the first GET goes to cut
	rc, err := s.Open(context.Background(), "bkt", "k", "", 100, 1<<20-200)
	if err != nil {
		t.Fatal(err)
	}
	s.pool.eps[1].ejectedUntil = time.Time{}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, obj.data[100:1<<20-100]) {
		t.Fatalf("read %d bytes, %v; want the range intact", len(got), err)
	}
	if r := good.ranges(); len(r) != 1 || r[0] != fmt.Sprintf("bytes=300000-%d \"abc\"", 1<<20-101) {
		t.Fatalf("resume requests on the second endpoint: %q", r)
	}
	if st := s.Endpoints(); st[0].Failures != 1 || st[0].InFlight != 0 || st[1].InFlight != 0 {
		t.Fatalf("endpoint stats after resume: %+v", st)
	}
}

// A resume that finds another version fails with ErrChanged instead of
// splicing two versions together.
func TestPoolResumeChangedVersion(t *testing.T) {
	clk := fakeclock.At(time.Unix(1e9, 0))
	data := randBytes(100_000, 3)
	cut := &recorder{obj: &fakeObject{data: data, etag: "v1"}, cutAt: 50_000}
	other := &recorder{obj: &fakeObject{data: data, etag: "v2"}}
	s := poolS3(t, clk, nil, serve(t, cut), serve(t, other))
	s.pool.eps[1].ejectedUntil = clk.Now().Add(time.Hour)
	rc, err := s.Open(context.Background(), "bkt", "k", "", 0, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	s.pool.eps[1].ejectedUntil = time.Time{}
	s.pool.eps[0].ejectedUntil = clk.Now().Add(time.Hour)
	got, err := io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, ErrChanged) || len(got) != 50_000 {
		t.Fatalf("read %d bytes, %v; want 50000 and ErrChanged", len(got), err)
	}
}

// Active checks take a dead endpoint out before any request fails on it;
// Ping fails only when no endpoint answers.
func TestPoolHealthChecks(t *testing.T) {
	clk := fakeclock.At(time.Unix(1e9, 0))
	good := &recorder{obj: &fakeObject{data: []byte("x"), etag: "abc"}}
	goodAddr := serve(t, good)
	ping := func(c *S3Config) { c.PingBucket = "bkt" }
	s := poolS3(t, clk, ping, deadAddr(t), goodAddr)
	tick := make(chan time.Time)
	go s.pool.run(tick)
	defer s.pool.close()
	tick <- clk.Now()
	tick <- clk.Now() // the first check has finished when the second is taken
	st := s.Endpoints()
	if st[0].Up || !st[1].Up || st[0].Requests != 0 {
		t.Fatalf("after checks: %+v", st)
	}
	if !s.pool.healthy() {
		t.Fatal("pool unhealthy with one live endpoint")
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping with one live endpoint = %v", err)
	}
	if _, err := s.Stat(context.Background(), "bkt", "k"); err != nil || s.Endpoints()[0].Requests != 0 {
		t.Fatalf("Stat = %v; dead endpoint asked %d times", err, s.Endpoints()[0].Requests)
	}

	all := poolS3(t, clk, ping, deadAddr(t), deadAddr(t))
	all.pool.checkAll(context.Background())
	if all.pool.healthy() {
		t.Fatal("pool healthy with no live endpoint")
	}
	if err := all.Ping(context.Background()); !errors.Is(err, ErrUnavailable) || !errors.Is(err, errNoEndpoint) {
		t.Fatalf("Ping with no live endpoint = %v", err)
	}
}

// Requests go to the endpoint with the fewest in flight.
func TestPoolLeastInFlight(t *testing.T) {
	clk := fakeclock.At(time.Unix(1e9, 0))
	obj := &fakeObject{data: randBytes(10_000, 4), etag: "abc"}
	a, b := &recorder{obj: obj}, &recorder{obj: obj}
	s := poolS3(t, clk, nil, serve(t, a), serve(t, b))
	var open []io.ReadCloser
	for range 6 {
		rc, err := s.Open(context.Background(), "bkt", "k", "", 0, 10_000)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, rc)
	}
	st := s.Endpoints()
	if st[0].InFlight != 3 || st[1].InFlight != 3 {
		t.Fatalf("6 open bodies spread %d/%d", st[0].InFlight, st[1].InFlight)
	}
	for _, rc := range open {
		rc.Close()
	}
	if st := s.Endpoints(); st[0].InFlight != 0 || st[1].InFlight != 0 {
		t.Fatalf("in flight after Close: %+v", st)
	}
}

// Answers slower than SlowThreshold count as failures: EjectAfter of them
// in a row eject the endpoint; a fast answer in between resets the count.
func TestPoolSlowEjection(t *testing.T) {
	clk := fakeclock.At(time.Unix(1e9, 0))
	s := poolS3(t, clk, func(c *S3Config) { c.SlowThreshold = time.Second; c.EjectAfter = 2 }, "a:1", "b:1")
	p, e := s.pool, s.pool.eps[0]
	p.report(e, nil, 2*time.Second, p.slow)
	p.report(e, nil, time.Millisecond, p.slow)
	p.report(e, nil, 2*time.Second, p.slow)
	if st := s.Endpoints()[0]; !st.Up || st.Failures != 2 {
		t.Fatalf("after slow, fast, slow: %+v", st)
	}
	p.report(e, nil, 2*time.Second, p.slow)
	if st := s.Endpoints()[0]; st.Up || st.Ejections != 1 {
		t.Fatalf("after two slow answers in a row: %+v", st)
	}
	// Answers about the object (404) are not the endpoint's fault.
	f := s.pool.eps[1]
	for range 5 {
		p.report(f, minio.ErrorResponse{Code: minio.NoSuchKey, StatusCode: http.StatusNotFound}, time.Millisecond, p.slow)
	}
	if st := s.Endpoints()[1]; !st.Up || st.Failures != 0 {
		t.Fatalf("after 404s: %+v", st)
	}
}

// notFoundS3 answers like a MinIO node that does not see the object: 404
// NoSuchKey, in a header for HEAD (which has no body) and in XML for GET.
// Keys in has are served from obj instead. It counts object requests.
type notFoundS3 struct {
	obj *fakeObject
	has map[string]bool
	n   atomic.Int64
}

func (h *notFoundS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/minio/health/live" {
		return
	}
	h.n.Add(1)
	if h.has[strings.TrimPrefix(r.URL.Path, "/bkt/")] {
		h.obj.ServeHTTP(w, r)
		return
	}
	w.Header().Set("X-Minio-Error-Code", "NoSuchKey")
	w.Header().Set("X-Minio-Error-Desc", `"The specified key does not exist."`)
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusNotFound)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>%s</Key><BucketName>bkt</BucketName></Error>`,
		strings.TrimPrefix(r.URL.Path, "/bkt/"))
}

// A 404 from one node while the pool has just seen a node fail is
// confirmed on another node: an object that one live node wrongly calls
// missing is served; an object that is really missing is still 404 after
// exactly one more request. With no recent failure a 404 costs one request.
func TestPoolConfirmsNotFound(t *testing.T) {
	clk := fakeclock.At(time.Unix(1e9, 0))
	obj := &fakeObject{data: randBytes(1000, 3), etag: "abc"}
	stale := &notFoundS3{obj: obj}                                 // sees nothing
	good := &notFoundS3{obj: obj, has: map[string]bool{"k": true}} // sees k
	s := poolS3(t, clk, nil, serve(t, stale), serve(t, good), deadAddr(t))
	ctx := context.Background()
	requests := func() int64 { return stale.n.Load() + good.n.Load() }

	// The third node's failed check marks it down; once that is older
	// than the doubt window the pool is healthy again: one request a 404.
	s.pool.checkAll(ctx)
	clk.Advance(s.pool.doubtWindow)
	for i := range 4 {
		before := requests()
		if _, err := s.Stat(ctx, "bkt", "missing"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("healthy pool, Stat of a missing key %d: %v", i, err)
		}
		if n := requests() - before; n != 1 {
			t.Fatalf("healthy pool: a 404 took %d requests, want 1", n)
		}
	}

	// A node fails its check now: 404s are doubted.
	s.pool.checkAll(ctx)
	staleBefore := stale.n.Load()
	for i := range 6 {
		if info, err := s.Stat(ctx, "bkt", "k"); err != nil || info.Size != 1000 {
			t.Fatalf("Stat %d just after a node failed = %+v, %v", i, info, err)
		}
		if got := readRange(t, s, "bkt", "k", "", 100, 200); !bytes.Equal(got, obj.data[100:300]) {
			t.Fatalf("Open %d just after a node failed: wrong bytes", i)
		}
	}
	if stale.n.Load() == staleBefore {
		t.Fatal("the stale node was never asked: the test proves nothing")
	}
	for i := range 4 {
		before := requests()
		if _, err := s.Stat(ctx, "bkt", "missing"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("doubtful pool, Stat of a missing key %d: %v", i, err)
		}
		if n := requests() - before; n != 2 {
			t.Fatalf("doubtful pool: a real 404 took %d requests, want 2 (one confirmation)", n)
		}
	}
}

// With a single endpoint (a load balancer in front of the nodes) the
// confirmation goes to the same endpoint after the back-off.
func TestPoolConfirmsNotFoundOneEndpoint(t *testing.T) {
	clk := fakeclock.At(time.Unix(1e9, 0))
	obj := &fakeObject{data: randBytes(1000, 4), etag: "abc"}
	h := &notFoundS3{obj: obj}
	s := poolS3(t, clk, nil, serve(t, h))
	s.pool.sawTrouble()
	if _, err := s.Stat(context.Background(), "bkt", "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat: %v", err)
	}
	if n := h.n.Load(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

// A node that closes an idle connection and still answers its check is not
// trouble; a node that dies (its connections closed, its port refusing)
// is, before any request has failed on it: the pool doubts 404s from then
// on and takes the node out.
func TestPoolWatchesClosedConnections(t *testing.T) {
	clk := fakeclock.At(time.Unix(1e9, 0))
	obj := &fakeObject{data: randBytes(1000, 5), etag: "abc"}
	rec := &recorder{obj: obj} // answers the health check too
	node := httptest.NewServer(rec)
	t.Cleanup(node.Close)
	other := &notFoundS3{obj: obj}
	s := poolS3(t, clk, nil, strings.TrimPrefix(node.URL, "http://"), serve(t, other))
	ctx := context.Background()
	stat := func(e *endpoint) error {
		_, err := e.core.StatObject(ctx, "bkt", "k", minio.StatObjectOptions{})
		return err
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		if !testenv.Poll(ctx, 10*time.Second, cond) {
			t.Fatalf("still not %s after 10s: %+v", what, s.Endpoints())
		}
	}
	e := s.pool.eps[0]

	// An idle connection closed by a live node: a check runs and passes.
	if err := s.pool.attempt(e, s.pool.slow, stat); err != nil {
		t.Fatal(err)
	}
	node.CloseClientConnections()
	// The stat, then the check the closed connection set off.
	waitFor("checked", func() bool { return rec.n.Load() == 2 && !e.suspect.Load() })
	if s.pool.trouble.Load() != 0 || s.pool.doubtful() || !s.Endpoints()[0].Up {
		t.Fatalf("a live node closing an idle connection counted as trouble: %+v", s.Endpoints())
	}

	// The node dies with a connection open: trouble, and it is taken out.
	if err := s.pool.attempt(e, s.pool.slow, stat); err != nil {
		t.Fatal(err)
	}
	node.Close()
	waitFor("down", func() bool { return !s.Endpoints()[0].Up })
	if !s.pool.doubtful() || s.Endpoints()[0].Failures != 0 {
		t.Fatalf("after the node died: doubtful=%v %+v", s.pool.doubtful(), s.Endpoints())
	}
}
