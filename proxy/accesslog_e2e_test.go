package proxy_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/proxy"
)

// TestAccessLogOneLinePerResponse: every response but the health probes
// gets exactly one access log line, whichever way it was answered
// (streamed, HEAD, 304, 416, 405, 404, 400), and a streamed one is logged
// with the bytes it sent.
func TestAccessLogOneLinePerResponse(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	resp, body := do(t, f.c, http.MethodGet, f.url(dataKey))
	if resp.StatusCode != 200 || len(body) != len(f.data) {
		t.Fatalf("GET: %d, %d bytes", resp.StatusCode, len(body))
	}
	etag := resp.Header.Get("ETag")
	for _, r := range []struct {
		method, url string
		hdr         []string
		status      int
	}{
		{http.MethodHead, f.url(dataKey), nil, 200},
		{http.MethodGet, f.url(dataKey), []string{"If-None-Match", etag}, 304},
		{http.MethodGet, f.url(dataKey), []string{"Range", "bytes=5000-"}, 416},
		{http.MethodPost, f.url(dataKey), nil, 405},
		{http.MethodGet, f.url("missing.bin"), nil, 404},
		{http.MethodGet, f.url("a/../b"), nil, 400},
		{http.MethodGet, f.p.URL + "/healthz", nil, 200},
	} {
		if resp, _ := do(t, f.c, r.method, r.url, r.hdr...); resp.StatusCode != r.status {
			t.Fatalf("%s %s: status %d, want %d", r.method, r.url, resp.StatusCode, r.status)
		}
	}

	want := []string{
		"GET /download/data.txt 200 1000",
		"HEAD /download/data.txt 200 0",
		"GET /download/data.txt 304 0",
		"GET /download/data.txt 416",
		"POST /download/data.txt 405",
		"GET /download/missing.bin 404",
		"GET /download/a/../b 400",
	}
	line := regexp.MustCompile(`msg=request .*method=(\S+) .*path=(\S+) .*status=(\d+) bytes=(\d+)`)
	var got []string
	testenv.WaitFor(t, 20*time.Second, "an access log line per response", func() bool {
		got = got[:0]
		for _, l := range strings.Split(f.p.Log.String(), "\n") {
			if m := line.FindStringSubmatch(l); m != nil {
				got = append(got, fmt.Sprintf("%s %s %s %s", m[1], m[2], m[3], m[4]))
			}
		}
		return len(got) >= len(want)
	})
	if len(got) != len(want) {
		t.Fatalf("access log lines:\n%s\nwant one per response:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A streamed body is logged when it closes, so lines of different
	// connections may come in any order: count each response's lines.
	for _, w := range want {
		n := 0
		for _, g := range got {
			if g == w || strings.HasPrefix(g, w+" ") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d lines for %q, want 1; lines:\n%s", n, w, strings.Join(got, "\n"))
		}
	}
}
