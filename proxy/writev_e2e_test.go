package proxy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/cache"
	"github.com/edgeproxy/edgeproxy/proxy"
)

// TestPipelinedLargeResponses: responses whose header is held for one
// writev with the body (writev.go) keep their order and bytes when
// requests are pipelined, so that fasthttp's buffer may still hold the
// previous answer when a header is flushed: large and small ranges, one
// across a chunk boundary, a whole object of several chunks, from the
// origin and then from the memory tier.
func TestPipelinedLargeResponses(t *testing.T) {
	o := newDirOrigin(t, dlBucket)
	data := randBytes(7, 3<<20+12345)
	o.put(t, dlBucket, "big", data)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := cache.New(cache.Config{MemoryBytes: 64 << 20, ChunkSize: 1 << 20}, o.Store, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p := startProxy(t, proxy.Config{DownloadBucket: dlBucket}, proxy.Deps{Origin: o.Store, Objects: c})

	type want struct {
		rng        string // Range value, "" for the whole object
		start, end int64  // inclusive
	}
	wants := []want{
		{"bytes=0-65535", 0, 65535},
		{"bytes=100-199", 100, 199},
		{"bytes=1015808-1081343", 1015808, 1081343}, // across the first chunk boundary
		{"", 0, int64(len(data)) - 1},
		{"bytes=2000000-2020000", 2000000, 2020000},
		{"bytes=70000-", 70000, int64(len(data)) - 1},
		{"bytes=3000000-3065535", 3000000, 3065535},
	}
	for pass := range 2 { // the origin, then the memory tier
		conn, err := net.DialTimeout("tcp", p.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(60 * time.Second))
		var req strings.Builder
		for _, w := range wants {
			req.WriteString("GET /download/big HTTP/1.1\r\nHost: edge.test\r\n")
			if w.rng != "" {
				req.WriteString("Range: " + w.rng + "\r\n")
			}
			req.WriteString("\r\n")
		}
		if _, err := io.WriteString(conn, req.String()); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		for i, w := range wants {
			resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
			if err != nil {
				t.Fatalf("pass %d, response %d: %v", pass, i, err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("pass %d, response %d: body: %v", pass, i, err)
			}
			wantStatus := http.StatusPartialContent
			if w.rng == "" {
				wantStatus = http.StatusOK
			}
			if resp.StatusCode != wantStatus {
				t.Fatalf("pass %d, %q: status %d, want %d", pass, w.rng, resp.StatusCode, wantStatus)
			}
			if !bytes.Equal(body, data[w.start:w.end+1]) {
				t.Fatalf("pass %d, %q: %d bytes, not the object's bytes %d-%d", pass, w.rng, len(body), w.start, w.end)
			}
			if cr := resp.Header.Get("Content-Range"); w.rng != "" && cr != fmt.Sprintf("bytes %d-%d/%d", w.start, w.end, len(data)) {
				t.Fatalf("pass %d: Content-Range %q", pass, cr)
			}
		}
		conn.Close()
		c.Wait()
	}
}
