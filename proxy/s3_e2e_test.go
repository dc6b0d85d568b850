package proxy_test

// End-to-end tests of the proxy against a real MinIO server (internal/testenv):
// whole and ranged downloads checked by SHA-256, multipart ranges, the
// redirect mode, a client hang-up, and an origin outage.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/origin"
	"github.com/edgeproxy/edgeproxy/proxy"
)

// s3Put uploads data and returns the ETag the store assigned, quoted as on the wire.
func s3Put(t *testing.T, mc *minio.Client, bucket, key string, data []byte, contentType string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ui, err := mc.PutObject(ctx, bucket, key, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: contentType})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return `"` + ui.ETag + `"`
}

func newS3Origin(t *testing.T, m *testenv.MinIOServer) *origin.S3 {
	t.Helper()
	s3, err := origin.NewS3(origin.S3Config{Endpoint: m.Endpoint, AccessKey: m.AccessKey, SecretKey: m.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s3.Close() })
	return s3
}

func TestS3E2E(t *testing.T) {
	m := testenv.MinIO(t)
	mc := m.Client(t)
	bucket := m.NewBucket(t)

	const bigSize = 70 << 20
	big := randBytes(40, bigSize)
	bigTag := s3Put(t, mc, bucket, "big.bin", big, "application/x-edgeproxy-test")
	bigSHA := sha(big)
	small := randBytes(41, 300<<10)
	s3Put(t, mc, bucket, unicodeKey, small, "")

	s3 := newS3Origin(t, m)
	cfg := proxy.Config{
		DownloadBucket: bucket,
		Routes: []proxy.RouteConfig{
			{Hosts: []string{"files.test"}, Bucket: bucket},
			{Hosts: []string{"redirect.test"}, Bucket: bucket, Mode: proxy.ModeRedirect},
		},
	}
	p := startProxy(t, cfg, proxy.Deps{Origin: s3})
	c := newClient(t)
	bigURL := p.URL + "/download/big.bin"

	t.Run("whole", func(t *testing.T) {
		resp, n, sum := doSHA(t, c, http.MethodGet, bigURL)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if sum != bigSHA {
			t.Errorf("body: %d bytes, sha %s; uploaded %d bytes, sha %s", n, sum, len(big), bigSHA)
		}
		for k, v := range map[string]string{
			"Content-Length": strconv.Itoa(bigSize),
			"Etag":           bigTag,
			"Content-Type":   "application/x-edgeproxy-test",
			"Accept-Ranges":  "bytes",
		} {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s %q, want %q", k, got, v)
			}
		}
		resp, body := do(t, c, http.MethodHead, bigURL)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Length") != strconv.Itoa(bigSize) || len(body) != 0 {
			t.Errorf("HEAD: status %d, Content-Length %q, %d body bytes", resp.StatusCode, resp.Header.Get("Content-Length"), len(body))
		}
	})

	t.Run("non-ascii key", func(t *testing.T) {
		for _, u := range []struct{ url, host string }{
			{p.URL + "/download/" + unicodeKeyPath, ""},
			{p.URL + "/" + unicodeKeyPath, "files.test"},
		} {
			hdr := []string{}
			if u.host != "" {
				hdr = []string{"Host", u.host}
			}
			resp, body := do(t, c, http.MethodGet, u.url, hdr...)
			if resp.StatusCode != 200 || sha(body) != sha(small) {
				t.Errorf("%s: status %d, %d bytes (sha %s), want %d bytes (sha %s)", u.url, resp.StatusCode, len(body), sha(body), len(small), sha(small))
			}
			_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
			if err != nil || params["filename"] != "naïve file.bin" {
				t.Errorf("Content-Disposition %q decodes to %q (%v)", resp.Header.Get("Content-Disposition"), params["filename"], err)
			}
		}
	})

	t.Run("random ranges", func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 11))
		for i := range 20 {
			start := r.Int64N(bigSize)
			end := start + r.Int64N(min(bigSize-start, 1<<20))
			if i == 0 {
				start, end = bigSize-1, bigSize-1 // the very last byte
			}
			resp, body := do(t, c, http.MethodGet, bigURL, "Range", fmt.Sprintf("bytes=%d-%d", start, end))
			want := big[start : end+1]
			wantCR := fmt.Sprintf("bytes %d-%d/%d", start, end, bigSize)
			if resp.StatusCode != 206 || resp.Header.Get("Content-Range") != wantCR {
				t.Errorf("range %d-%d: status %d Content-Range %q, want 206 %q", start, end, resp.StatusCode, resp.Header.Get("Content-Range"), wantCR)
			}
			if sha(body) != sha(want) {
				t.Errorf("range %d-%d: %d bytes (sha %s), want %d (sha %s)", start, end, len(body), sha(body), len(want), sha(want))
			}
		}
	})

	t.Run("multi-range", func(t *testing.T) {
		const mid = 35_000_000
		resp, body := do(t, c, http.MethodGet, bigURL, "Range", fmt.Sprintf("bytes=0-99,%d-%d,-1000", mid, mid+999_999))
		if resp.StatusCode != 206 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		parts := readByteranges(t, resp, body)
		want := []part{
			{crange: fmt.Sprintf("bytes 0-99/%d", bigSize), data: big[:100]},
			{crange: fmt.Sprintf("bytes %d-%d/%d", mid, mid+999_999, bigSize), data: big[mid : mid+1_000_000]},
			{crange: fmt.Sprintf("bytes %d-%d/%d", bigSize-1000, bigSize-1, bigSize), data: big[bigSize-1000:]},
		}
		if len(parts) != len(want) {
			t.Fatalf("%d parts, want %d", len(parts), len(want))
		}
		for i, pt := range parts {
			if pt.crange != want[i].crange || sha(pt.data) != sha(want[i].data) || pt.ctype != "application/x-edgeproxy-test" {
				t.Errorf("part %d: %q %q %d bytes, want %q %d bytes", i, pt.ctype, pt.crange, len(pt.data), want[i].crange, len(want[i].data))
			}
		}
		if resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Errorf("Content-Length %q, body %d", resp.Header.Get("Content-Length"), len(body))
		}
	})

	t.Run("preconditions", func(t *testing.T) {
		resp, body := do(t, c, http.MethodGet, bigURL, "If-None-Match", bigTag)
		if resp.StatusCode != 304 || len(body) != 0 || resp.Header.Get("Etag") != bigTag {
			t.Errorf("If-None-Match: status %d, %d bytes, ETag %q", resp.StatusCode, len(body), resp.Header.Get("Etag"))
		}
		resp, n, sum := doSHA(t, c, http.MethodGet, bigURL, "Range", "bytes=100-199", "If-Range", `"stale"`, "If-Match", bigTag)
		if resp.StatusCode != 200 || sum != bigSHA {
			t.Errorf("stale If-Range: status %d, %d bytes", resp.StatusCode, n)
		}
		resp, body = do(t, c, http.MethodGet, bigURL, "Range", "bytes=100-199", "If-Range", bigTag)
		if resp.StatusCode != 206 || !bytes.Equal(body, big[100:200]) {
			t.Errorf("current If-Range: status %d, %d bytes", resp.StatusCode, len(body))
		}
		resp, body = do(t, c, http.MethodGet, bigURL, "If-Match", `"other"`)
		wantError(t, resp, body, 412, "precondition_failed")
	})

	t.Run("not found", func(t *testing.T) {
		resp, body := do(t, c, http.MethodGet, p.URL+"/download/missing.bin")
		wantError(t, resp, body, 404, "not_found")
		resp, body = do(t, c, http.MethodGet, p.URL+"/missing.bin", "Host", "redirect.test")
		wantError(t, resp, body, 404, "not_found")
	})

	t.Run("redirect", func(t *testing.T) {
		for _, tt := range []struct {
			path, filename string
			want           []byte
		}{{unicodeKeyPath, "naïve file.bin", small}, {"big.bin", "big.bin", big}} {
			resp, body := do(t, c, http.MethodGet, p.URL+"/"+tt.path, "Host", "redirect.test")
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("%s: status %d (%q), want 302", tt.path, resp.StatusCode, body)
			}
			loc := resp.Header.Get("Location")
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: Cache-Control %q, want no-store", tt.path, resp.Header.Get("Cache-Control"))
			}
			// The presigned URL, fetched by a plain client, yields the object.
			resp, n, sum := doSHA(t, newClient(t), http.MethodGet, loc)
			if resp.StatusCode != 200 || sum != sha(tt.want) {
				t.Errorf("%s: GET Location %s: status %d, %d bytes (sha %s), want %d bytes (sha %s)",
					tt.path, loc, resp.StatusCode, n, sum, len(tt.want), sha(tt.want))
			}
			// The store names the download like the proxy would.
			if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err != nil || params["filename"] != tt.filename {
				t.Errorf("%s: store's Content-Disposition %q decodes to %q (%v), want %q",
					tt.path, resp.Header.Get("Content-Disposition"), params["filename"], err, tt.filename)
			}
		}
	})

	t.Run("client hang-up", func(t *testing.T) {
		counter := &countingObjects{Objects: s3}
		hp := startProxy(t, proxy.Config{DownloadBucket: bucket}, proxy.Deps{Origin: s3, Objects: counter})
		conn, err := net.Dial("tcp", hp.Addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.WriteString(conn, rawGet("GET", "/download/big.bin", "127.0.0.1")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: "GET"})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("response: %v %+v", err, resp)
		}
		if n, err := io.CopyN(io.Discard, resp.Body, 1<<20); n != 1<<20 {
			t.Fatalf("read %d: %v", n, err)
		}
		conn.Close()
		testenv.WaitFor(t, 10*time.Second, "S3 body closed after the client hung up", func() bool {
			return counter.opens.Load() == 1 && !counter.open()
		})
		if got := counter.read.Load(); got >= bigSize/2 {
			t.Errorf("read %d bytes from MinIO for a client that took 1 MiB", got)
		}
	})

	t.Run("ready", func(t *testing.T) {
		resp, body := do(t, c, http.MethodGet, p.URL+"/readyz")
		if resp.StatusCode != 200 {
			t.Errorf("/readyz: %d %q", resp.StatusCode, body)
		}
	})
}

// TestS3E2EOriginDown: with MinIO stopped, downloads answer 502
// origin_unavailable (JSON) and /readyz 503, in both route modes.
func TestS3E2EOriginDown(t *testing.T) {
	m := testenv.NewMinIO(t)
	mc := m.Client(t)
	bucket := m.NewBucket(t)
	data := randBytes(50, 10<<10)
	s3Put(t, mc, bucket, "obj.bin", data, "")

	s3 := newS3Origin(t, m)
	p := startProxy(t, proxy.Config{
		DownloadBucket: bucket,
		Routes:         []proxy.RouteConfig{{Hosts: []string{"redirect.test"}, Bucket: bucket, Mode: proxy.ModeRedirect}},
	}, proxy.Deps{Origin: s3})
	c := newClient(t)
	resp, body := do(t, c, http.MethodGet, p.URL+"/download/obj.bin")
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("before the outage: status %d, %d bytes", resp.StatusCode, len(body))
	}

	m.Stop(t)
	resp, body = do(t, c, http.MethodGet, p.URL+"/download/obj.bin")
	wantError(t, resp, body, 502, "origin_unavailable")
	resp, body = do(t, c, http.MethodGet, p.URL+"/download/obj.bin", "Range", "bytes=0-9")
	wantError(t, resp, body, 502, "origin_unavailable")
	resp, body = do(t, c, http.MethodHead, p.URL+"/download/obj.bin")
	if resp.StatusCode != 502 || len(body) != 0 {
		t.Errorf("HEAD: status %d, %d body bytes", resp.StatusCode, len(body))
	}
	resp, body = do(t, c, http.MethodGet, p.URL+"/obj.bin", "Host", "redirect.test")
	wantError(t, resp, body, 502, "origin_unavailable")
	resp, body = do(t, c, http.MethodGet, p.URL+"/readyz")
	wantError(t, resp, body, 503, "not_ready")
}
