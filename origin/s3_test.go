package origin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/disposition"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/minio/minio-go/v7"
)

// newTestS3 returns an S3 store for the shared MinIO server, with cfg
// adjusted by mod (which may point it elsewhere).
func newTestS3(t *testing.T, mod func(*S3Config)) *S3 {
	t.Helper()
	srv := testenv.MinIO(t)
	cfg := S3Config{
		Endpoint:     srv.Endpoint,
		AccessKey:    srv.AccessKey,
		SecretKey:    srv.SecretKey,
		RetryBackoff: time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewS3(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func randBytes(n int, seed uint64) []byte {
	var key [32]byte
	key[0] = byte(seed)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

func putObject(t *testing.T, c *minio.Client, bucket, key string, data []byte, ctype string) minio.UploadInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ui, err := c.PutObject(ctx, bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{ContentType: ctype})
	if err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
	return ui
}

func readRange(t *testing.T, s Store, bucket, key, etag string, off, n int64) []byte {
	t.Helper()
	rc, err := s.Open(context.Background(), bucket, key, etag, off, n)
	if err != nil {
		t.Fatalf("Open(%s, %d, %d): %v", key, off, n, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s [%d,+%d): %v after %d bytes", key, off, n, err, len(b))
	}
	return b
}

func TestNewS3Config(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("MINIO_ROOT_USER", "")
	t.Setenv("MINIO_ROOT_PASSWORD", "")
	for _, tc := range []struct {
		cfg  S3Config
		want string
	}{
		{S3Config{}, "origin: endpoint: required"},
		{S3Config{Endpoint: "http://127.0.0.1:9000"}, "origin: endpoint: "},
		{S3Config{Endpoint: "127.0.0.1"}, "origin: endpoint: "},
		{S3Config{Endpoint: "127.0.0.1:"}, "origin: endpoint: "},
		{S3Config{Endpoint: ":9000"}, "origin: endpoint: "},
		{S3Config{Endpoint: "127.0.0.1:9000", AccessKey: "a"}, "origin: secret_key: "},
		{S3Config{Endpoint: "127.0.0.1:9000", SecretKey: "s"}, "origin: access_key: "},
		{S3Config{Endpoint: "127.0.0.1:9000", ConnectTimeout: -1}, "origin: connect_timeout: "},
		{S3Config{Endpoint: "127.0.0.1:9000", Timeout: -1}, "origin: timeout: "},
		{S3Config{Endpoint: "127.0.0.1:9000", RetryBackoff: -1}, "origin: retry_backoff: "},
		{S3Config{Endpoint: "127.0.0.1:9000", MaxConns: -1}, "origin: max_conns: "},
	} {
		_, err := NewS3(tc.cfg)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("NewS3(%+v) = %v, want prefix %q", tc.cfg, err, tc.want)
		}
	}

	s, err := NewS3(S3Config{Endpoint: "127.0.0.1:9000"})
	if err != nil {
		t.Fatal(err)
	}
	tr := s.transport
	if s.retry.retries != DefaultRetries || s.retry.base != DefaultRetryBackoff || s.timeout != DefaultTimeout ||
		tr.ResponseHeaderTimeout != DefaultTimeout || tr.MaxConnsPerHost != DefaultMaxConns ||
		tr.MaxIdleConnsPerHost != DefaultMaxConns || !tr.DisableCompression || !s.anonymous {
		t.Errorf("defaults not applied: %+v", s)
	}
	s, _ = NewS3(S3Config{Endpoint: "127.0.0.1:9000", Retries: -1})
	if s.retry.retries != 0 {
		t.Errorf("Retries -1 gave %d retries", s.retry.retries)
	}

	// Credentials from the environment, AWS first.
	t.Setenv("MINIO_ROOT_USER", "minio-user")
	t.Setenv("MINIO_ROOT_PASSWORD", "minio-pass")
	for _, aws := range []bool{false, true} {
		want := "minio-user"
		if aws {
			t.Setenv("AWS_ACCESS_KEY_ID", "aws-user")
			t.Setenv("AWS_SECRET_ACCESS_KEY", "aws-pass")
			want = "aws-user"
		}
		s, err := NewS3(S3Config{Endpoint: "127.0.0.1:9000"})
		if err != nil || s.anonymous {
			t.Fatalf("NewS3 with env credentials: %v, anonymous %v", err, s.anonymous)
		}
		u, err := s.PresignGet(context.Background(), "bucket", "key", time.Minute, "")
		if err != nil || !strings.Contains(u, "X-Amz-Credential="+want) {
			t.Errorf("presigned with env credentials: %s %v, want access key %s", u, err, want)
		}
	}
}

func TestS3StatOpen(t *testing.T) {
	srv := testenv.MinIO(t)
	c := srv.Client(t)
	b := srv.NewBucket(t)
	s := newTestS3(t, nil)
	ctx := context.Background()

	big := randBytes(5<<20, 1)
	objects := []struct {
		key, ctype string
		data       []byte
	}{
		{"small.txt", "text/plain", []byte("hello, edge\n")},
		{"zero", "application/x-empty", nil},
		{"big.bin", "application/octet-stream", big},
		{"报告/naïve file.bin", "application/pdf", randBytes(70_001, 2)},
	}
	for _, o := range objects {
		before := time.Now().Add(-time.Second)
		ui := putObject(t, c, b, o.key, o.data, o.ctype)
		after := time.Now()
		info, err := s.Stat(ctx, b, o.key)
		if err != nil {
			t.Fatalf("Stat(%q): %v", o.key, err)
		}
		if info.Size != int64(len(o.data)) || info.ETag != `"`+ui.ETag+`"` || info.ContentType != o.ctype {
			t.Errorf("Stat(%q) = %+v, want size %d ETag %q type %q", o.key, info, len(o.data), `"`+ui.ETag+`"`, o.ctype)
		}
		lm := info.LastModified
		if lm.Location() != time.UTC || lm.Nanosecond() != 0 || lm.Before(before) || lm.After(after) {
			t.Errorf("Stat(%q).LastModified = %v, want UTC seconds in [%v, %v]", o.key, lm, before, after)
		}
		if len(o.data) > 0 {
			if got := readRange(t, s, b, o.key, info.ETag, 0, info.Size); !bytes.Equal(got, o.data) {
				t.Errorf("Open(%q) whole object differs (%d bytes)", o.key, len(got))
			}
		}
	}

	info, err := s.Stat(ctx, b, "big.bin")
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(big))
	for _, r := range []struct{ off, n int64 }{
		{0, 1}, {size - 1, 1}, {0, size}, {1<<20 + 7, 1_234_567}, {4<<20 - 1, 2}, {size - 100_000, 100_000},
	} {
		for _, etag := range []string{info.ETag, ""} {
			if got := readRange(t, s, b, "big.bin", etag, r.off, r.n); !bytes.Equal(got, big[r.off:r.off+r.n]) {
				t.Errorf("Open(big, %d, %d, etag %q): %d bytes, not the range", r.off, r.n, etag, len(got))
			}
		}
	}
	for _, r := range [][2]int64{{-1, 1}, {0, 0}, {0, -5}} {
		if _, err := s.Open(ctx, b, "big.bin", "", r[0], r[1]); err == nil {
			t.Errorf("Open(off=%d, n=%d) succeeded", r[0], r[1])
		}
	}
}

func TestS3NotFoundAndChanged(t *testing.T) {
	srv := testenv.MinIO(t)
	c := srv.Client(t)
	b := srv.NewBucket(t)
	s := newTestS3(t, nil)
	ctx := context.Background()

	putObject(t, c, b, "obj", []byte("version one"), "")
	old, err := s.Stat(ctx, b, "obj")
	if err != nil {
		t.Fatal(err)
	}
	putObject(t, c, b, "obj", []byte("version two"), "")
	cur, err := s.Stat(ctx, b, "obj")
	if err != nil {
		t.Fatal(err)
	}
	if cur.ETag == old.ETag {
		t.Fatalf("overwrite kept ETag %s", cur.ETag)
	}
	_, err = s.Open(ctx, b, "obj", old.ETag, 0, 4)
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("Open with old ETag = %v, want ErrChanged", err)
	}
	if got := readRange(t, s, b, "obj", cur.ETag, 8, 3); string(got) != "two" {
		t.Fatalf("Open with current ETag read %q", got)
	}
	// The object shrank below the range the caller saw: ErrChanged too.
	putObject(t, c, b, "obj", []byte("v3"), "")
	if _, err := s.Open(ctx, b, "obj", "", 8, 3); !errors.Is(err, ErrChanged) {
		t.Fatalf("Open beyond new size = %v, want ErrChanged", err)
	}

	for _, tc := range []struct{ bucket, key string }{
		{b, "missing"},
		{b, "报告/missing"},
		{"no-such-bucket-" + strconv.FormatInt(time.Now().UnixNano(), 36), "obj"},
		{"ab", "obj"}, {"bad..name", "obj"},
	} {
		if _, err := s.Stat(ctx, tc.bucket, tc.key); !errors.Is(err, ErrNotFound) {
			t.Errorf("Stat(%s/%s) = %v, want ErrNotFound", tc.bucket, tc.key, err)
		}
		if _, err := s.Open(ctx, tc.bucket, tc.key, "", 0, 1); !errors.Is(err, ErrNotFound) {
			t.Errorf("Open(%s/%s) = %v, want ErrNotFound", tc.bucket, tc.key, err)
		}
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silentServer accepts connections and never answers; accepted counts them.
func silentServer(t *testing.T) (addr string, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int32)
	var (
		mu    sync.Mutex
		conns []net.Conn
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String(), accepted
}

func TestS3Unavailable(t *testing.T) {
	ctx := context.Background()
	s := newTestS3(t, func(c *S3Config) { c.Endpoint = closedPort(t) })
	if _, err := s.Stat(ctx, "bkt", "k"); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTimeout) {
		t.Errorf("Stat on closed port = %v, want ErrUnavailable", err)
	}
	if _, err := s.Open(ctx, "bkt", "k", "", 0, 1); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Open on closed port = %v, want ErrUnavailable", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ping on closed port = %v, want ErrUnavailable", err)
	}

	// Wrong secret: the store answers 403; that is the edge's
	// misconfiguration, never "not found".
	srv := testenv.MinIO(t)
	b := srv.NewBucket(t)
	putObject(t, srv.Client(t), b, "k", []byte("x"), "")
	bad := newTestS3(t, func(c *S3Config) { c.SecretKey = "wrong-secret" })
	if _, err := bad.Stat(ctx, b, "k"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Stat with wrong secret = %v, want ErrUnavailable", err)
	}
	if _, err := bad.Open(ctx, b, "k", "", 0, 1); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Open with wrong secret = %v, want ErrUnavailable", err)
	}
	if err := bad.Ping(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ping with wrong secret = %v, want ErrUnavailable", err)
	}
}

func TestS3Timeout(t *testing.T) {
	addr, accepted := silentServer(t)
	const timeout = 300 * time.Millisecond
	s := newTestS3(t, func(c *S3Config) { c.Endpoint = addr; c.Timeout = timeout })
	ctx := context.Background()

	for i, op := range []func() error{
		func() error { _, err := s.Stat(ctx, "bkt", "k"); return err },
		func() error { _, err := s.Open(ctx, "bkt", "k", `"e"`, 0, 10); return err },
		func() error { return s.Ping(ctx) },
	} {
		before := accepted.Load()
		start := time.Now()
		err := op()
		elapsed := time.Since(start)
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("op %d against a silent server = %v, want ErrTimeout", i, err)
		}
		if elapsed < timeout || elapsed > 5*time.Second {
			t.Errorf("op %d took %v, want about %v", i, elapsed, timeout)
		}
		// Timeouts are not retried: one connection per call.
		if got := accepted.Load() - before; got != 1 {
			t.Errorf("op %d opened %d connections, want 1 (no retry after a timeout)", i, got)
		}
	}

	// The caller's deadline, shorter than Timeout, also reads as ErrTimeout.
	slow := newTestS3(t, func(c *S3Config) { c.Endpoint = addr })
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := slow.Stat(dctx, "bkt", "k"); !errors.Is(err, ErrTimeout) || time.Since(start) > 5*time.Second {
		t.Errorf("Stat past ctx deadline = %v after %v, want ErrTimeout", err, time.Since(start))
	}
}

// countingProxy forwards to MinIO, answering the first fail requests with
// 503 SlowDown instead. It counts every request it receives.
func countingProxy(t *testing.T, fail int32) (endpoint string, requests *atomic.Int32) {
	t.Helper()
	target, err := url.Parse("http://" + testenv.MinIO(t).Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	requests = new(atomic.Int32)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) <= fail {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://"), requests
}

func TestS3Retries(t *testing.T) {
	srv := testenv.MinIO(t)
	b := srv.NewBucket(t)
	data := randBytes(10_000, 3)
	putObject(t, srv.Client(t), b, "obj", data, "")
	ctx := context.Background()

	for _, tc := range []struct {
		retries, fail int
		wantReqs      int32
		ok            bool
	}{
		{0, 2, 3, true}, // default: 2 retries
		{2, 2, 3, true},
		{1, 2, 2, false},
		{-1, 2, 1, false},
		{5, 0, 1, true},
	} {
		for _, op := range []string{"stat", "open"} {
			ep, reqs := countingProxy(t, int32(tc.fail))
			s := newTestS3(t, func(c *S3Config) { c.Endpoint = ep; c.Retries = tc.retries })
			var err error
			if op == "stat" {
				var info Info
				info, err = s.Stat(ctx, b, "obj")
				if err == nil && info.Size != int64(len(data)) {
					t.Errorf("%s via proxy: size %d", op, info.Size)
				}
			} else {
				var rc io.ReadCloser
				rc, err = s.Open(ctx, b, "obj", "", 100, 5000)
				if err == nil {
					got, rerr := io.ReadAll(rc)
					rc.Close()
					if rerr != nil || !bytes.Equal(got, data[100:5100]) {
						t.Errorf("%s via proxy read %d bytes, %v", op, len(got), rerr)
					}
				}
			}
			if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, ErrUnavailable)) {
				t.Errorf("retries %d, %d failures: %s = %v, want ok=%v", tc.retries, tc.fail, op, err, tc.ok)
			}
			if got := reqs.Load(); got != tc.wantReqs {
				t.Errorf("retries %d, %d failures: %s made %d requests, want %d", tc.retries, tc.fail, op, got, tc.wantReqs)
			}
		}
	}

	// Answers about the object are final: one request each.
	ep, reqs := countingProxy(t, 0)
	s := newTestS3(t, func(c *S3Config) { c.Endpoint = ep; c.Retries = 5 })
	info, err := s.Stat(ctx, b, "obj")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		op   func() error
		want error
	}{
		{"stat 404", func() error { _, err := s.Stat(ctx, b, "missing"); return err }, ErrNotFound},
		{"open 404", func() error { _, err := s.Open(ctx, b, "missing", "", 0, 1); return err }, ErrNotFound},
		{"open 412", func() error { _, err := s.Open(ctx, b, "obj", `"0123"`, 0, 1); return err }, ErrChanged},
		{"open 416", func() error { _, err := s.Open(ctx, b, "obj", "", info.Size, 1); return err }, ErrChanged},
	} {
		before := reqs.Load()
		if err := tc.op(); !errors.Is(err, tc.want) {
			t.Errorf("%s = %v, want %v", tc.name, err, tc.want)
		}
		if got := reqs.Load() - before; got != 1 {
			t.Errorf("%s made %d requests, want 1", tc.name, got)
		}
	}
	bad := newTestS3(t, func(c *S3Config) { c.Endpoint = ep; c.Retries = 5; c.SecretKey = "wrong" })
	before := reqs.Load()
	if _, err := bad.Stat(ctx, b, "obj"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("stat 403 = %v", err)
	}
	if got := reqs.Load() - before; got != 1 {
		t.Errorf("stat 403 made %d requests, want 1", got)
	}
}

// TestS3ConnectionReuse: a fully read range gives its connection back; an
// early Close frees the connection slot at once.
func TestS3ConnectionReuse(t *testing.T) {
	srv := testenv.MinIO(t)
	b := srv.NewBucket(t)
	big := randBytes(5<<20, 4)
	putObject(t, srv.Client(t), b, "big", big, "")
	s := newTestS3(t, func(c *S3Config) { c.MaxConns = 1 })
	ctx := context.Background()

	var reused []bool
	var mu sync.Mutex
	tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		mu.Lock()
		reused = append(reused, i.Reused)
		mu.Unlock()
	}})
	if got := readRange(t, s, b, "big", "", 1000, 64<<10); !bytes.Equal(got, big[1000:1000+64<<10]) {
		t.Fatal("range differs")
	}
	if _, err := s.Stat(tctx, b, "big"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(reused) != 1 || !reused[0] {
		t.Errorf("Stat after a fully read range: reused %v, want [true]", reused)
	}
	mu.Unlock()

	rc, err := s.Open(ctx, b, "big", "", 0, int64(len(big)))
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 1)
	if _, err := io.ReadFull(rc, p); err != nil || p[0] != big[0] {
		t.Fatalf("first byte: %v", err)
	}
	start := time.Now()
	rc.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("early Close took %v", d)
	}
	// With MaxConns 1, this waits forever unless Close freed the slot.
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := s.Stat(sctx, b, "big"); err != nil {
		t.Fatalf("Stat after early Close: %v", err)
	}
}

// fakeObject serves one object the way S3 does, with faults: stall after
// the first bytes, a chunked body that ends early, a full body for a range,
// a different ETag than asked for.
type fakeObject struct {
	data  []byte
	etag  string // unquoted
	fault string // "stall", "short", "full", "etag", ""
}

func (f *fakeObject) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
	h.Set("Content-Type", "application/octet-stream")
	etag := f.etag
	if f.fault == "etag" {
		etag = "other"
	}
	h.Set("ETag", `"`+etag+`"`)
	if r.Method == http.MethodHead {
		h.Set("Content-Length", strconv.Itoa(len(f.data)))
		return
	}
	var off, end int
	if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &off, &end); err != nil {
		http.Error(w, "want a range", http.StatusBadRequest)
		return
	}
	body := f.data[off : end+1]
	switch f.fault {
	case "full":
		h.Set("Content-Length", strconv.Itoa(len(f.data)))
		w.WriteHeader(http.StatusOK)
		w.Write(f.data)
		return
	case "short":
		// No Content-Length: chunked, so only our own count catches it.
		w.WriteHeader(http.StatusPartialContent)
		w.(http.Flusher).Flush()
		w.Write(body[:len(body)/2])
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, end, len(f.data)))
	w.WriteHeader(http.StatusPartialContent)
	if f.fault == "stall" {
		w.Write(body[:10])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return
	}
	w.Write(body)
}

func fakeS3(t *testing.T, obj *fakeObject, mod func(*S3Config)) *S3 {
	t.Helper()
	ts := httptest.NewServer(obj)
	t.Cleanup(ts.Close)
	return newTestS3(t, func(c *S3Config) {
		c.Endpoint = strings.TrimPrefix(ts.URL, "http://")
		if mod != nil {
			mod(c)
		}
	})
}

func TestS3CancelStalledRead(t *testing.T) {
	obj := &fakeObject{data: randBytes(1000, 5), etag: "abc", fault: "stall"}
	s := fakeS3(t, obj, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rc, err := s.Open(ctx, "bkt", "k", `"abc"`, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	first := make([]byte, 10)
	if _, err := io.ReadFull(rc, first); err != nil || !bytes.Equal(first, obj.data[:10]) {
		t.Fatalf("first bytes: %v", err)
	}
	res := make(chan error, 1)
	go func() {
		_, err := rc.Read(make([]byte, 100))
		res <- err
	}()
	cancel()
	select {
	case err := <-res:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Read after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return after ctx was cancelled")
	}
}

func TestS3EarlyCloseStalled(t *testing.T) {
	obj := &fakeObject{data: randBytes(1000, 6), etag: "abc", fault: "stall"}
	s := fakeS3(t, obj, func(c *S3Config) { c.MaxConns = 1 })
	ctx := context.Background()
	rc, err := s.Open(ctx, "bkt", "k", "", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rc.Close()
	if d := time.Since(start); d > 5*time.Second { // the body never ends: only an abort returns
		t.Errorf("Close of a stalled body took %v", d)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := s.Stat(sctx, "bkt", "k"); err != nil {
		t.Fatalf("Stat after early Close (MaxConns 1): %v", err)
	}
}

func TestS3BadAnswers(t *testing.T) {
	data := randBytes(1000, 7)
	ctx := context.Background()
	for _, tc := range []struct {
		fault   string
		openErr error
		readErr error
	}{
		{"short", nil, io.ErrUnexpectedEOF},
		{"full", ErrUnavailable, nil},
		{"etag", ErrChanged, nil},
	} {
		s := fakeS3(t, &fakeObject{data: data, etag: "abc", fault: tc.fault}, nil)
		rc, err := s.Open(ctx, "bkt", "k", `"abc"`, 100, 200)
		if !errors.Is(err, tc.openErr) || (tc.openErr == nil) != (err == nil) {
			t.Errorf("%s: Open = %v, want %v", tc.fault, err, tc.openErr)
			continue
		}
		if err != nil {
			continue
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		// A body that keeps ending early is resumed (maxResumes times),
		// each time with the bytes reached so far, and then fails.
		if !errors.Is(err, tc.readErr) || len(got) <= 100 || len(got) >= 200 || !bytes.Equal(got, data[100:100+len(got)]) {
			t.Errorf("%s: read %d bytes, %v; want a resumed prefix of 200 and %v", tc.fault, len(got), err, tc.readErr)
		}
	}
}

func TestS3Ping(t *testing.T) {
	srv := testenv.MinIO(t)
	b := srv.NewBucket(t)
	ctx := context.Background()
	if err := newTestS3(t, nil).Ping(ctx); err != nil {
		t.Errorf("Ping (list buckets) = %v", err)
	}
	if err := newTestS3(t, func(c *S3Config) { c.PingBucket = b }).Ping(ctx); err != nil {
		t.Errorf("Ping(%s) = %v", b, err)
	}
	if err := newTestS3(t, func(c *S3Config) { c.PingBucket = "no-such-bucket-x" }).Ping(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ping of a missing bucket = %v, want ErrUnavailable", err)
	}
}

func TestS3PresignGet(t *testing.T) {
	srv := testenv.MinIO(t)
	b := srv.NewBucket(t)
	key := "报告/naïve file.bin"
	data := randBytes(30_000, 8)
	putObject(t, srv.Client(t), b, key, data, "application/octet-stream")
	s := newTestS3(t, nil)
	ctx := context.Background()
	hc := &http.Client{Timeout: 10 * time.Second}

	long := strings.Repeat("a", 300) + ".bin"
	for _, filename := range []string{"", "报告 naïve.bin", "plain.bin", "invoice\u202Efdp.exe", "dir/é\r\nX: 1.bin", long} {
		u, err := s.PresignGet(ctx, b, key, time.Minute, filename)
		if err != nil {
			t.Fatal(err)
		}
		if pu, err := url.Parse(u); err != nil || pu.Hostname() != "127.0.0.1" {
			t.Fatalf("presigned URL %q is not on loopback", u)
		}
		resp, err := hc.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil || !bytes.Equal(got, data) {
			t.Fatalf("GET presigned (filename %q): %s, %d bytes, %v", filename, resp.Status, len(got), err)
		}
		// One sanitiser for redirect and proxy mode: no bidi control
		// (U+202E would show "invoice\u202Efdp.exe" as "invoiceexe.pdf"),
		// no control, no directory, the name capped at 255 bytes.
		cd := resp.Header.Get("Content-Disposition")
		if want := string(disposition.Append(nil, filename)); filename != "" && cd != want {
			t.Errorf("Content-Disposition = %q, want %q", cd, want)
		}
		if strings.Contains(cd, "%E2%80%AE") || strings.Contains(cd, "%0D") || strings.Contains(cd, "dir") || len(cd) > 300 {
			t.Errorf("Content-Disposition %q (%d bytes) is not sanitised", cd, len(cd))
		}
		if filename == "" && cd != "" {
			t.Errorf("Content-Disposition = %q without a filename", cd)
		}
	}

	// A tampered URL is refused by the store.
	u, _ := s.PresignGet(ctx, b, key, time.Minute, "")
	tampered := strings.Replace(u, "X-Amz-Expires=60", "X-Amz-Expires=61", 1)
	if tampered == u {
		t.Fatalf("no X-Amz-Expires=60 in %s", u)
	}
	resp, err := hc.Get(tampered)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("tampered presigned URL: %s, want 403", resp.Status)
	}

	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"} {
		t.Setenv(v, "")
	}
	anon, err := NewS3(S3Config{Endpoint: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anon.PresignGet(ctx, b, key, time.Minute, ""); err == nil {
		t.Error("anonymous PresignGet succeeded")
	}
}
