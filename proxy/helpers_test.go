package proxy_test

// Helpers shared by the end-to-end tests: a proxy on a real loopback
// listener, a local-directory origin, raw HTTP/1.1 exchanges, and origin
// wrappers that count or hold back body readers.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/origin"
	"github.com/edgeproxy/edgeproxy/proxy"
)

// testProxy is a proxy.Server serving on a loopback listener.
type testProxy struct {
	Addr string // "127.0.0.1:port"
	URL  string // "http://" + Addr
	Log  *testenv.LockedBuffer
	Srv  *proxy.Server

	cancel context.CancelFunc
	done   chan error // receives Serve's result once
	once   sync.Once
	err    error
}

// startProxy runs proxy.New(cfg, deps).Serve on a fresh loopback listener
// and stops it (waiting for Serve to return) when the test ends. Unless the
// test set one, DrainTimeout is short so that a leftover connection cannot
// hold the cleanup for the default 30 s.
func startProxy(t testing.TB, cfg proxy.Config, deps proxy.Deps) *testProxy {
	t.Helper()
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 5 * time.Second
	}
	p := &testProxy{Log: new(testenv.LockedBuffer), done: make(chan error, 1)}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewTextHandler(p.Log, nil))
	}
	srv, err := proxy.New(cfg, deps)
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Srv = srv
	p.Addr = ln.Addr().String()
	p.URL = "http://" + p.Addr
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { p.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		if err := p.stop(20 * time.Second); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return p
}

// stop cancels Serve's context and waits up to timeout for Serve to
// return, returning its error. Later calls return the first result.
func (p *testProxy) stop(timeout time.Duration) error {
	p.once.Do(func() {
		p.cancel()
		select {
		case p.err = <-p.done:
		case <-time.After(timeout):
			p.err = errors.New("did not return after cancel within " + timeout.String())
		}
	})
	return p.err
}

// newClient returns a client of its own that shows responses as sent:
// no transparent gzip, no redirect following.
func newClient(t testing.TB) *http.Client {
	t.Helper()
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 4}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// send sends one request and returns the response, body unread.
// hdr lists header name, value pairs; a "Host" pair sets the Host header.
func send(t testing.TB, c *http.Client, method, url string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if http.CanonicalHeaderKey(hdr[i]) == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

// do sends one request and returns the response with its whole body.
// hdr lists header name, value pairs; a "Host" pair sets the Host header.
func do(t testing.TB, c *http.Client, method, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	resp := send(t, c, method, url, hdr...)
	defer resp.Body.Close()
	body, err := readBody(resp)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, body
}

// doSHA sends one request and returns the response with the length and
// SHA-256 of its body, streamed rather than buffered (large objects).
func doSHA(t testing.TB, c *http.Client, method, url string, hdr ...string) (*http.Response, int64, string) {
	t.Helper()
	resp := send(t, c, method, url, hdr...)
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, n, hex.EncodeToString(h.Sum(nil))
}

// readBody reads a response body into a buffer sized from Content-Length:
// io.ReadAll's repeated growth of a 70 MiB body takes seconds under -race.
func readBody(resp *http.Response) ([]byte, error) {
	n := resp.ContentLength
	if n < 0 || n > 256<<20 {
		n = 0
	}
	buf := bytes.NewBuffer(make([]byte, 0, n+1))
	_, err := buf.ReadFrom(resp.Body)
	return buf.Bytes(), err
}

// rawExchange writes req (a complete HTTP/1.x request, sent byte for byte)
// on a new connection and parses one response. head is the response's
// status line and header fields exactly as received.
func rawExchange(t testing.TB, addr, method, req string) (resp *http.Response, body []byte, head string) {
	t.Helper()
	c := testenv.Dial(t, addr, "")
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("write request: %v", err)
	}
	var raw bytes.Buffer
	br := bufio.NewReader(io.TeeReader(c, &raw))
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response to %q: %v (got %q)", firstLine(req), err, raw.String())
	}
	defer resp.Body.Close()
	if body, err = readBody(resp); err != nil {
		t.Fatalf("read body: %v", err)
	}
	head, _, _ = strings.Cut(raw.String(), "\r\n\r\n")
	return resp, body, head + "\r\n"
}

// rawGet builds a minimal HTTP/1.1 request with the target and Host sent as-is.
func rawGet(method, target, host string, extra ...string) string {
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\n")
	if host != "" {
		b.WriteString("Host: " + host + "\r\n")
	}
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	return b.String()
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\r\n")
	if len(l) > 120 {
		l = l[:120] + "..."
	}
	return l
}

// wantError checks that a response is one of the proxy's JSON errors:
// the status, Content-Type application/json, and a body whose "code" is code.
func wantError(t testing.TB, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d (body %q)", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Errorf("error body %q is not JSON: %v", body, err)
		return
	}
	if e.Code != code {
		t.Errorf("error code %q, want %q (body %q)", e.Code, code, body)
	}
	if e.Message == "" {
		t.Errorf("error body %q has no message", body)
	}
}

// dirOrigin is a local-directory origin under a temporary root.
type dirOrigin struct {
	Root  string
	Store *origin.Dir
}

// newDirOrigin creates a temporary root with the given bucket directories.
func newDirOrigin(t testing.TB, buckets ...string) *dirOrigin {
	t.Helper()
	root := t.TempDir()
	for _, b := range buckets {
		if err := os.Mkdir(filepath.Join(root, b), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	st, err := origin.NewDir(origin.DirConfig{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &dirOrigin{Root: root, Store: st}
}

// put writes an object atomically (a new file renamed into place, so a
// replaced object gets a new inode and therefore a new ETag).
func (d *dirOrigin) put(t testing.TB, bucket, key string, data []byte) {
	t.Helper()
	p := filepath.Join(d.Root, bucket, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.CreateTemp(d.Root, ".put-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		t.Fatal(err)
	}
}

// putSparse writes an object of size zero bytes as a sparse file, which
// costs no time or disk however large.
func (d *dirOrigin) putSparse(t testing.TB, bucket, key string, size int64) {
	t.Helper()
	d.put(t, bucket, key, nil)
	if err := os.Truncate(filepath.Join(d.Root, bucket, filepath.FromSlash(key)), size); err != nil {
		t.Fatal(err)
	}
}

// stat returns the origin's view of an object (the validators the proxy must send).
func (d *dirOrigin) stat(t testing.TB, bucket, key string) origin.Info {
	t.Helper()
	info, err := d.Store.Stat(context.Background(), bucket, key)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// randBytes returns n reproducible pseudo-random bytes: an AES-CTR key
// stream, which (unlike math/rand) is not slowed down by -race.
func randBytes(seed uint64, n int) []byte {
	var key [16]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	blk, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err)
	}
	b := make([]byte, n)
	cipher.NewCTR(blk, make([]byte, aes.BlockSize)).XORKeyStream(b, b)
	return b
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// countingObjects wraps an origin and counts the body readers it opens and
// the ones closed, and the bytes read through them. Readers that have
// io.WriterTo keep it, so the proxy takes the same path as without the wrapper.
type countingObjects struct {
	proxy.Objects
	opens, closes, read atomic.Int64
}

func (c *countingObjects) Open(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error) {
	rc, err := c.Objects.Open(ctx, bucket, key, etag, off, n)
	if err != nil {
		return nil, err
	}
	c.opens.Add(1)
	cr := &countingReader{rc: rc, c: c}
	if wt, ok := rc.(io.WriterTo); ok {
		return &countingWriterTo{countingReader: cr, wt: wt}, nil
	}
	return cr, nil
}

func (c *countingObjects) open() bool { return c.opens.Load() != c.closes.Load() }

type countingReader struct {
	rc     io.ReadCloser
	c      *countingObjects
	closed atomic.Bool
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.c.read.Add(int64(n))
	return n, err
}

func (r *countingReader) Close() error {
	if r.closed.CompareAndSwap(false, true) {
		r.c.closes.Add(1)
	}
	return r.rc.Close()
}

type countingWriterTo struct {
	*countingReader
	wt io.WriterTo
}

func (r *countingWriterTo) WriteTo(w io.Writer) (int64, error) {
	return r.wt.WriteTo(writerFunc(func(p []byte) (int, error) {
		n, err := w.Write(p)
		r.c.read.Add(int64(n))
		return n, err
	}))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// gatedObjects wraps an origin so that every body reader delivers its first
// `first` bytes and then blocks until release is closed (or the test ends).
type gatedObjects struct {
	proxy.Objects
	first   int64
	release chan struct{}
	ended   chan struct{} // closed at test cleanup, so no reader blocks forever
	blocked chan struct{} // closed when a reader first blocks on the gate
	once    sync.Once
}

func newGatedObjects(t testing.TB, inner proxy.Objects, first int64) *gatedObjects {
	g := &gatedObjects{Objects: inner, first: first, release: make(chan struct{}),
		ended: make(chan struct{}), blocked: make(chan struct{})}
	t.Cleanup(func() { close(g.ended) })
	return g
}

func (g *gatedObjects) Open(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error) {
	rc, err := g.Objects.Open(ctx, bucket, key, etag, off, n)
	if err != nil {
		return nil, err
	}
	return &gatedReader{rc: rc, g: g, left: g.first}, nil
}

type gatedReader struct {
	rc   io.ReadCloser
	g    *gatedObjects
	left int64
}

func (r *gatedReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		r.g.once.Do(func() { close(r.g.blocked) })
		select {
		case <-r.g.release:
		case <-r.g.ended:
			return 0, errors.New("test ended")
		}
		r.left = -1
	}
	if r.left > 0 && int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.rc.Read(p)
	if r.left > 0 {
		r.left -= int64(n)
	}
	return n, err
}

func (r *gatedReader) Close() error { return r.rc.Close() }

// Buckets of the fixture: /download/ reads dlBucket; host routes read the others.
const (
	dlBucket   = "b"
	hostBucket = "h"
	wildBucket = "w"

	dataKey    = "data.txt"
	unicodeKey = "报告/naïve file.bin"
	// unicodeKeyPath is unicodeKey percent-encoded as a client sends it.
	unicodeKeyPath = "%E6%8A%A5%E5%91%8A/na%C3%AFve%20file.bin"
	// secret lives in the origin root, outside every bucket.
	secret = "TOP-SECRET-outside-the-bucket"
)

type fixture struct {
	o    *dirOrigin
	p    *testProxy
	c    *http.Client
	data []byte // dlBucket/dataKey, 1000 bytes
}

// newFixture serves a directory origin holding a few objects, with
// /download/ on dlBucket, an exact host route and a wildcard host route.
func newFixture(t *testing.T, cfg proxy.Config, wrap func(proxy.Objects) proxy.Objects) *fixture {
	t.Helper()
	o := newDirOrigin(t, dlBucket, hostBucket, wildBucket)
	f := &fixture{o: o, data: randBytes(1, 1000)}
	o.put(t, dlBucket, dataKey, f.data)
	o.put(t, dlBucket, "noext", randBytes(2, 100))
	o.put(t, dlBucket, unicodeKey, randBytes(3, 5000))
	o.put(t, dlBucket, "obj", []byte("download bucket\n"))
	o.put(t, hostBucket, "obj", []byte("host bucket\n"))
	o.put(t, wildBucket, "obj", []byte("wildcard bucket\n"))
	if err := os.WriteFile(filepath.Join(o.Root, "secret.txt"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	if cfg.DownloadBucket == "" {
		cfg.DownloadBucket = dlBucket
	}
	if cfg.Routes == nil {
		cfg.Routes = []proxy.RouteConfig{
			{Hosts: []string{"files.example.com"}, Bucket: hostBucket},
			{Hosts: []string{"*.cdn.example.com"}, Bucket: wildBucket},
		}
	}
	var objects proxy.Objects = o.Store
	if wrap != nil {
		objects = wrap(objects)
	}
	f.p = startProxy(t, cfg, proxy.Deps{Origin: o.Store, Objects: objects})
	f.c = newClient(t)
	return f
}

func (f *fixture) url(key string) string { return f.p.URL + "/download/" + key }

// wantType is the Content-Type the proxy must send for an object.
func wantType(info origin.Info) string {
	if info.ContentType == "" {
		return "application/octet-stream"
	}
	return info.ContentType
}

type part struct {
	ctype, crange string
	data          []byte
}

// readByteranges parses a multipart/byteranges answer with mime/multipart.
func readByteranges(t *testing.T, resp *http.Response, body []byte) []part {
	t.Helper()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" || params["boundary"] == "" {
		t.Fatalf("Content-Type %q: %v", resp.Header.Get("Content-Type"), err)
	}
	b := params["boundary"]
	// RFC 9110 14.6 example and RFC 2046: the body starts with the first
	// delimiter and ends with the close delimiter.
	if !bytes.HasPrefix(body, []byte("--"+b+"\r\n")) || !bytes.HasSuffix(body, []byte("\r\n--"+b+"--\r\n")) {
		t.Errorf("body does not start with the delimiter or end with the close delimiter: %q ... %q",
			body[:min(len(body), 60)], body[max(0, len(body)-60):])
	}
	mr := multipart.NewReader(bytes.NewReader(body), b)
	var parts []part
	for range 100 {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			return parts
		}
		if err != nil {
			t.Fatalf("part %d: %v", len(parts), err)
		}
		data, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("part %d: %v", len(parts), err)
		}
		parts = append(parts, part{p.Header.Get("Content-Type"), p.Header.Get("Content-Range"), data})
	}
	t.Fatal("more than 100 parts")
	return nil
}

// readOnlyObjects hides io.WriterTo of the readers it returns.
type readOnlyObjects struct{ proxy.Objects }

func (r readOnlyObjects) Open(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error) {
	rc, err := r.Objects.Open(ctx, bucket, key, etag, off, n)
	if err != nil {
		return nil, err
	}
	return struct{ io.ReadCloser }{rc}, nil
}

// slicesContainsAll reports whether some line contains every one of want.
func slicesContainsAll(lines []string, want []string) bool {
	for _, l := range lines {
		ok := true
		for _, w := range want {
			if !strings.Contains(l, " "+w) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// changeAfterStat replaces an object at the origin right after the proxy's
// first Stat of it, so that the Open for the ETag that Stat returned fails
// with origin.ErrChanged and the proxy has to start over with the new version.
type changeAfterStat struct {
	proxy.Objects
	key    string
	once   sync.Once
	change func()
}

func (c *changeAfterStat) Stat(ctx context.Context, bucket, key string) (origin.Info, error) {
	info, err := c.Objects.Stat(ctx, bucket, key)
	if key == c.key {
		c.once.Do(c.change)
	}
	return info, err
}

// captureStderr runs fn with file descriptor 2 redirected to a pipe and
// returns what was written to it: fasthttp's own error log goes there.
func captureStderr(t *testing.T, fn func()) (out string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved, err := syscall.Dup(2)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(r)
		got <- b
	}()
	if err := syscall.Dup3(int(w.Fd()), 2, 0); err != nil {
		t.Fatal(err)
	}
	// Restore fd 2 even when fn fails the test with t.Fatal.
	defer func() {
		syscall.Dup3(saved, 2, 0)
		syscall.Close(saved)
		w.Close()
		b := <-got
		r.Close()
		os.Stderr.Write(b) // keep it visible
		out = string(b)
	}()
	fn()
	return ""
}
