package proxy_test

// End-to-end tests of the proxy through a real loopback listener against
// the local-directory origin: RFC 9110 semantics (ranges, preconditions,
// HEAD, errors) checked byte for byte, routing and path safety, client
// hang-up, graceful drain and the access log.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/objectkey"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/origin"
	"github.com/edgeproxy/edgeproxy/proxy"
)

func TestE2EFullGetAndHead(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	tests := []struct {
		name, key, path string
		wantDisp        string // exact Content-Disposition
		wantFilename    string // as a client decodes it
	}{
		{"ascii", dataKey, dataKey, `attachment; filename="data.txt"`, "data.txt"},
		{"no extension", "noext", "noext", `attachment; filename="noext"`, "noext"},
		{"non-ascii", unicodeKey, unicodeKeyPath,
			`attachment; filename="na_ve file.bin"; filename*=UTF-8''na%C3%AFve%20file.bin`, "naïve file.bin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := f.o.stat(t, dlBucket, tt.key)
			file, err := os.ReadFile(filepath.Join(f.o.Root, dlBucket, filepath.FromSlash(tt.key)))
			if err != nil {
				t.Fatal(err)
			}
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				resp, body := do(t, f.c, method, f.url(tt.path))
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: status %d, want 200 (%q)", method, resp.StatusCode, body)
				}
				want := map[string]string{
					"Content-Length":      strconv.Itoa(len(file)),
					"Etag":                info.ETag,
					"Last-Modified":       info.LastModified.Format(http.TimeFormat),
					"Accept-Ranges":       "bytes",
					"Content-Type":        wantType(info),
					"Content-Disposition": tt.wantDisp,
				}
				for k, v := range want {
					if got := resp.Header.Values(k); len(got) != 1 || got[0] != v {
						t.Errorf("%s: %s = %q, want exactly [%q]", method, k, got, v)
					}
				}
				if resp.Header.Get("Content-Range") != "" {
					t.Errorf("%s: 200 carries Content-Range %q", method, resp.Header.Get("Content-Range"))
				}
				_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
				if err != nil || params["filename"] != tt.wantFilename {
					t.Errorf("%s: Content-Disposition decodes to %q (err %v), want %q", method, params["filename"], err, tt.wantFilename)
				}
				wantBody := file
				if method == http.MethodHead {
					wantBody = nil
				}
				if !bytes.Equal(body, wantBody) {
					t.Errorf("%s: body of %d bytes (sha %s), want %d bytes (sha %s)", method, len(body), sha(body), len(wantBody), sha(wantBody))
				}
			}
		})
	}
}

func TestE2EContentDispositionNone(t *testing.T) {
	f := newFixture(t, proxy.Config{ContentDisposition: "none"}, nil)
	resp, body := do(t, f.c, http.MethodGet, f.url(dataKey))
	if resp.StatusCode != 200 || !bytes.Equal(body, f.data) {
		t.Fatalf("status %d, %d bytes", resp.StatusCode, len(body))
	}
	if v := resp.Header.Values("Content-Disposition"); len(v) != 0 {
		t.Errorf("Content-Disposition %q with content_disposition none", v)
	}
}

func TestE2EEmptyObject(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	f.o.put(t, dlBucket, "empty", nil)
	resp, body := do(t, f.c, http.MethodGet, f.url("empty"))
	if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("Content-Length") != "0" {
		t.Errorf("GET: status %d, %d bytes, Content-Length %q", resp.StatusCode, len(body), resp.Header.Get("Content-Length"))
	}
	resp, body = do(t, f.c, http.MethodGet, f.url("empty"), "Range", "bytes=0-")
	wantError(t, resp, body, 416, "range_not_satisfiable")
	if cr := resp.Header.Get("Content-Range"); cr != "bytes */0" {
		t.Errorf("Content-Range %q, want bytes */0", cr)
	}
}

func TestE2ESingleRange(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	d := f.data
	info := f.o.stat(t, dlBucket, dataKey)
	var forty []string
	for i := range 40 {
		forty = append(forty, fmt.Sprintf("%d-%d", 10*i, 10*i+1))
	}
	tests := []struct {
		name, rng  string
		wantStatus int
		wantRange  string // Content-Range; "" means absent
		want       []byte
	}{
		{"first byte", "bytes=0-0", 206, "bytes 0-0/1000", d[:1]},
		{"middle", "bytes=10-19", 206, "bytes 10-19/1000", d[10:20]},
		{"suffix", "bytes=-5", 206, "bytes 995-999/1000", d[995:]},
		{"suffix longer than file", "bytes=-99999", 206, "bytes 0-999/1000", d},
		{"open end", "bytes=5-", 206, "bytes 5-999/1000", d[5:]},
		{"end clamped", "bytes=990-5000", 206, "bytes 990-999/1000", d[990:]},
		{"last byte", "bytes=999-999", 206, "bytes 999-999/1000", d[999:]},
		{"unit case-insensitive", "Bytes=10-19", 206, "bytes 10-19/1000", d[10:20]},
		{"overlap coalesced", "bytes=0-9,5-14", 206, "bytes 0-14/1000", d[:15]},
		{"adjacent coalesced", "bytes=0-9,10-19", 206, "bytes 0-19/1000", d[:20]},
		{"unsatisfiable dropped", "bytes=10-19,5000-6000", 206, "bytes 10-19/1000", d[10:20]},
		{"first >= size", "bytes=999999-", 416, "bytes */1000", nil},
		{"start at size", "bytes=1000-1000", 416, "bytes */1000", nil},
		{"all of several unsatisfiable", "bytes=2000-3000,5000-", 416, "bytes */1000", nil},
		{"zero suffix", "bytes=-0", 416, "bytes */1000", nil},
		{"last < first", "bytes=5-1", 200, "", d},
		{"other unit", "pages=1-2", 200, "", d},
		{"no equals", "bytes 1-2", 200, "", d},
		{"garbage", "bytes=a-b", 200, "", d},
		{"forty ranges", "bytes=" + strings.Join(forty, ","), 200, "", d},
		{"overlap abuse", "bytes=0-,0-,0-,0-", 200, "", d},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, f.c, http.MethodGet, f.url(dataKey), "Range", tt.rng)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d (%q)", resp.StatusCode, tt.wantStatus, body)
			}
			if got := resp.Header.Values("Content-Range"); tt.wantRange == "" && len(got) != 0 ||
				tt.wantRange != "" && (len(got) != 1 || got[0] != tt.wantRange) {
				t.Errorf("Content-Range %q, want %q", got, tt.wantRange)
			}
			if resp.StatusCode == 416 {
				wantError(t, resp, body, 416, "range_not_satisfiable")
				return
			}
			if !bytes.Equal(body, tt.want) {
				t.Errorf("body %d bytes (sha %s), want %d bytes (sha %s)", len(body), sha(body), len(tt.want), sha(tt.want))
			}
			if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(tt.want)) {
				t.Errorf("Content-Length %q, want %d", cl, len(tt.want))
			}
			if ct := resp.Header.Get("Content-Type"); ct != wantType(info) {
				t.Errorf("Content-Type %q, want %q", ct, wantType(info))
			}
			if resp.Header.Get("Etag") != info.ETag || resp.Header.Get("Accept-Ranges") != "bytes" {
				t.Errorf("ETag %q Accept-Ranges %q, want %q bytes", resp.Header.Get("Etag"), resp.Header.Get("Accept-Ranges"), info.ETag)
			}
		})
	}
	// HEAD with a Range answers like the GET, without the bytes.
	resp, body := do(t, f.c, http.MethodHead, f.url(dataKey), "Range", "bytes=10-19")
	if resp.StatusCode != 206 || resp.Header.Get("Content-Range") != "bytes 10-19/1000" ||
		resp.Header.Get("Content-Length") != "10" || len(body) != 0 {
		t.Errorf("HEAD Range: status %d, Content-Range %q, Content-Length %q, %d body bytes",
			resp.StatusCode, resp.Header.Get("Content-Range"), resp.Header.Get("Content-Length"), len(body))
	}
}

// TestE2ESingleRangeRawBytes checks the 206 and 416 heads as sent: one
// Content-Range line, one Content-Length matching the bytes that follow.
func TestE2ESingleRangeRawBytes(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	resp, body, head := rawExchange(t, f.p.Addr, "GET", rawGet("GET", "/download/"+dataKey, "127.0.0.1", "Range: bytes=10-19"))
	if !strings.HasPrefix(head, "HTTP/1.1 206 ") {
		t.Fatalf("status line of %q", head)
	}
	for _, line := range []string{"\r\nContent-Range: bytes 10-19/1000\r\n", "\r\nContent-Length: 10\r\n", "\r\nAccept-Ranges: bytes\r\n"} {
		if strings.Count(head, line) != 1 {
			t.Errorf("head lacks exactly one %q:\n%s", strings.TrimSpace(line), head)
		}
	}
	if !bytes.Equal(body, f.data[10:20]) || resp.ContentLength != 10 {
		t.Errorf("body %x (length %d), want %x", body, resp.ContentLength, f.data[10:20])
	}

	resp, body, head = rawExchange(t, f.p.Addr, "GET", rawGet("GET", "/download/"+dataKey, "127.0.0.1", "Range: bytes=999999-"))
	if !strings.HasPrefix(head, "HTTP/1.1 416 ") || strings.Count(head, "\r\nContent-Range: bytes */1000\r\n") != 1 {
		t.Errorf("416 head:\n%s", head)
	}
	wantError(t, resp, body, 416, "range_not_satisfiable")
	if strings.Contains(head, "\r\nETag:") || strings.Contains(head, "\r\nContent-Disposition:") {
		t.Errorf("416 carries headers of the representation:\n%s", head)
	}
}

func TestE2EMultiRange(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	d := f.data
	info := f.o.stat(t, dlBucket, dataKey)
	tests := []struct {
		name, rng string
		want      []part
	}{
		{"three", "bytes=0-9,20-29,995-", []part{
			{crange: "bytes 0-9/1000", data: d[0:10]},
			{crange: "bytes 20-29/1000", data: d[20:30]},
			{crange: "bytes 995-999/1000", data: d[995:]},
		}},
		{"sorted and coalesced", "bytes=30-39, 5-19,0-9,-1", []part{
			{crange: "bytes 0-19/1000", data: d[0:20]},
			{crange: "bytes 30-39/1000", data: d[30:40]},
			{crange: "bytes 999-999/1000", data: d[999:]},
		}},
		{"suffix and clamp", "bytes=-3,0-0,998-100000", []part{
			{crange: "bytes 0-0/1000", data: d[0:1]},
			{crange: "bytes 997-999/1000", data: d[997:]},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, f.c, http.MethodGet, f.url(dataKey), "Range", tt.rng)
			if resp.StatusCode != 206 {
				t.Fatalf("status %d, want 206", resp.StatusCode)
			}
			if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
				t.Errorf("Content-Length %q, body %d bytes", cl, len(body))
			}
			if v := resp.Header.Values("Content-Range"); len(v) != 0 {
				t.Errorf("multipart 206 carries a top-level Content-Range %q", v)
			}
			parts := readByteranges(t, resp, body)
			if len(parts) != len(tt.want) {
				t.Fatalf("%d parts, want %d", len(parts), len(tt.want))
			}
			for i, p := range parts {
				if p.crange != tt.want[i].crange || !bytes.Equal(p.data, tt.want[i].data) {
					t.Errorf("part %d: Content-Range %q with %d bytes, want %q with %d bytes",
						i, p.crange, len(p.data), tt.want[i].crange, len(tt.want[i].data))
				}
				if p.ctype != wantType(info) && !(info.ContentType == "" && p.ctype == "") {
					t.Errorf("part %d: Content-Type %q, want %q", i, p.ctype, info.ContentType)
				}
			}
			// HEAD announces exactly the GET's length.
			hresp, hbody := do(t, f.c, http.MethodHead, f.url(dataKey), "Range", tt.rng)
			if hresp.StatusCode != 206 || hresp.Header.Get("Content-Length") != strconv.Itoa(len(body)) || len(hbody) != 0 {
				t.Errorf("HEAD: status %d Content-Length %q (GET sent %d), %d body bytes",
					hresp.StatusCode, hresp.Header.Get("Content-Length"), len(body), len(hbody))
			}
		})
	}
}

// TestE2EPipelined sends several requests in one write on one connection:
// each answer must be framed exactly (HEAD, 304 and 416 carry no stray
// bytes) or the following answers would be garbled.
func TestE2EPipelined(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	info := f.o.stat(t, dlBucket, dataKey)
	reqs := []struct {
		method, extra string
		status        int
		want          []byte
	}{
		{"HEAD", "", 200, nil},
		{"GET", "If-None-Match: " + info.ETag, 304, nil},
		{"GET", "Range: bytes=999999-", 416, nil},
		{"GET", "Range: bytes=0-4,10-14", 206, nil},
		{"HEAD", "Range: bytes=0-4,10-14", 206, nil},
		{"GET", "Range: bytes=990-", 206, f.data[990:]},
		{"GET", "", 200, f.data},
	}
	var b strings.Builder
	for _, r := range reqs {
		fmt.Fprintf(&b, "%s /download/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n", r.method, dataKey)
		if r.extra != "" {
			b.WriteString(r.extra + "\r\n")
		}
		b.WriteString("\r\n")
	}
	c, err := net.Dial("tcp", f.p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for i, r := range reqs {
		resp, err := http.ReadResponse(br, &http.Request{Method: r.method})
		if err != nil {
			t.Fatalf("response %d (%s %s): %v", i, r.method, r.extra, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if resp.StatusCode != r.status {
			t.Errorf("response %d (%s %s): status %d, want %d", i, r.method, r.extra, resp.StatusCode, r.status)
		}
		if r.want != nil && !bytes.Equal(body, r.want) {
			t.Errorf("response %d: %d body bytes, want %d", i, len(body), len(r.want))
		}
		if r.method == "HEAD" && len(body) != 0 {
			t.Errorf("response %d: HEAD with %d body bytes", i, len(body))
		}
	}
}

func TestE2EPreconditions(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	// Backdate the object: a Last-Modified less than a second old is a
	// weak validator, and "IR date match" needs a strong one.
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(f.o.Root, dlBucket, dataKey), past, past); err != nil {
		t.Fatal(err)
	}
	info := f.o.stat(t, dlBucket, dataKey)
	etag := info.ETag
	lm := info.LastModified.Format(http.TimeFormat)
	before := info.LastModified.Add(-time.Hour).Format(http.TimeFormat)
	after := info.LastModified.Add(time.Hour).Format(http.TimeFormat)
	full, part := f.data, f.data[10:20]
	const rng = "bytes=10-19"
	tests := []struct {
		name       string
		hdr        []string
		wantStatus int
		want       []byte
	}{
		{"INM exact", []string{"If-None-Match", etag}, 304, nil},
		{"INM list", []string{"If-None-Match", `"nope", ` + etag + `, "other"`}, 304, nil},
		{"INM star", []string{"If-None-Match", "*"}, 304, nil},
		{"INM weak form", []string{"If-None-Match", "W/" + etag}, 304, nil},
		{"INM mismatch", []string{"If-None-Match", `"nope"`}, 200, full},
		{"IMS at LM", []string{"If-Modified-Since", lm}, 304, nil},
		{"IMS after LM", []string{"If-Modified-Since", after}, 304, nil},
		{"IMS before LM", []string{"If-Modified-Since", before}, 200, full},
		{"IMS unparsable", []string{"If-Modified-Since", "yesterday"}, 200, full},
		{"INM mismatch beats IMS", []string{"If-None-Match", `"nope"`, "If-Modified-Since", lm}, 200, full},
		{"INM match beats IMS", []string{"If-None-Match", etag, "If-Modified-Since", before}, 304, nil},
		{"IM match", []string{"If-Match", etag}, 200, full},
		{"IM star", []string{"If-Match", "*"}, 200, full},
		{"IM mismatch", []string{"If-Match", `"nope"`}, 412, nil},
		{"IM weak never matches", []string{"If-Match", "W/" + etag}, 412, nil},
		{"IUS before LM", []string{"If-Unmodified-Since", before}, 412, nil},
		{"IUS at LM", []string{"If-Unmodified-Since", lm}, 200, full},
		{"IM match beats IUS", []string{"If-Match", etag, "If-Unmodified-Since", before}, 200, full},
		{"IM mismatch beats INM", []string{"If-Match", `"nope"`, "If-None-Match", etag}, 412, nil},
		{"IM mismatch with range", []string{"If-Match", `"nope"`, "Range", rng}, 412, nil},
		{"INM match with range", []string{"If-None-Match", etag, "Range", rng}, 304, nil},
		{"IR etag match", []string{"Range", rng, "If-Range", etag}, 206, part},
		{"IR etag mismatch", []string{"Range", rng, "If-Range", `"old"`}, 200, full},
		{"IR weak etag", []string{"Range", rng, "If-Range", "W/" + etag}, 200, full},
		{"IR date match", []string{"Range", rng, "If-Range", lm}, 206, part},
		{"IR older date", []string{"Range", rng, "If-Range", before}, 200, full},
		{"IR without range", []string{"If-Range", etag}, 200, full},
		{"IM match and IR", []string{"If-Match", etag, "Range", rng, "If-Range", etag}, 206, part},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, f.c, http.MethodGet, f.url(dataKey), tt.hdr...)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d (%q)", resp.StatusCode, tt.wantStatus, body)
			}
			switch tt.wantStatus {
			case 304:
				// RFC 9110 15.4.5: the validators a 200 would carry, no content.
				if resp.Header.Get("Etag") != etag || resp.Header.Get("Last-Modified") != lm {
					t.Errorf("304 ETag %q Last-Modified %q, want %q %q", resp.Header.Get("Etag"), resp.Header.Get("Last-Modified"), etag, lm)
				}
				if len(body) != 0 {
					t.Errorf("304 with %d body bytes", len(body))
				}
			case 412:
				wantError(t, resp, body, 412, "precondition_failed")
				if resp.Header.Get("Etag") != "" {
					t.Errorf("412 carries ETag %q", resp.Header.Get("Etag"))
				}
			default:
				if !bytes.Equal(body, tt.want) {
					t.Errorf("body %d bytes, want %d", len(body), len(tt.want))
				}
				if tt.wantStatus == 206 && resp.Header.Get("Content-Range") != "bytes 10-19/1000" {
					t.Errorf("Content-Range %q", resp.Header.Get("Content-Range"))
				}
				if tt.wantStatus == 200 && resp.Header.Get("Content-Range") != "" {
					t.Errorf("200 carries Content-Range %q", resp.Header.Get("Content-Range"))
				}
			}
		})
	}
}

// TestE2E304RawHead checks a 304 as sent: no body and no Content-Length
// other than the 200's (RFC 9110 8.6).
func TestE2E304RawHead(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	info := f.o.stat(t, dlBucket, dataKey)
	_, body, head := rawExchange(t, f.p.Addr, "GET", rawGet("GET", "/download/"+dataKey, "127.0.0.1", "If-None-Match: "+info.ETag))
	if !strings.HasPrefix(head, "HTTP/1.1 304 ") || len(body) != 0 {
		t.Fatalf("head %q, %d body bytes", head, len(body))
	}
	if strings.Contains(head, "\r\nContent-Length:") && !strings.Contains(head, "\r\nContent-Length: 1000\r\n") {
		t.Errorf("304 Content-Length differs from the 200's:\n%s", head)
	}
	if strings.Count(head, "\r\nETag: "+info.ETag+"\r\n") != 1 {
		t.Errorf("304 lacks ETag:\n%s", head)
	}
}

// TestE2EResumeAfterChange: a client resuming with If-Range and the old
// ETag after the object was replaced must get the whole new object, never
// a mix of two versions.
func TestE2EResumeAfterChange(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	old := randBytes(10, 64<<10)
	f.o.put(t, dlBucket, "resume.bin", old)
	resp, first := do(t, f.c, http.MethodGet, f.url("resume.bin"), "Range", "bytes=0-32767")
	if resp.StatusCode != 206 || !bytes.Equal(first, old[:32768]) {
		t.Fatalf("first half: status %d, %d bytes", resp.StatusCode, len(first))
	}
	oldTag := resp.Header.Get("Etag")

	cur := randBytes(11, 70<<10)
	f.o.put(t, dlBucket, "resume.bin", cur)
	resp, body := do(t, f.c, http.MethodGet, f.url("resume.bin"), "Range", "bytes=32768-", "If-Range", oldTag)
	if resp.StatusCode != 200 {
		t.Fatalf("resume after change: status %d, want 200", resp.StatusCode)
	}
	if !bytes.Equal(body, cur) {
		t.Errorf("resume after change: %d bytes (sha %s), want the new object (%d bytes, sha %s)", len(body), sha(body), len(cur), sha(cur))
	}
	if tag := resp.Header.Get("Etag"); tag == oldTag || tag != f.o.stat(t, dlBucket, "resume.bin").ETag {
		t.Errorf("ETag %q after change (old %q)", tag, oldTag)
	}
	// The same resume with the current ETag gets the rest.
	resp, body = do(t, f.c, http.MethodGet, f.url("resume.bin"), "Range", "bytes=32768-", "If-Range", resp.Header.Get("Etag"))
	if resp.StatusCode != 206 || !bytes.Equal(body, cur[32768:]) {
		t.Errorf("resume with current ETag: status %d, %d bytes", resp.StatusCode, len(body))
	}
}

// TestE2EChangeBetweenStatAndOpen: when the object changes between the
// proxy's Stat and its Open, the answer must be decided entirely on the new
// version; nothing decided for the old one (206, Content-Range) may leak
// into it. A resuming client that gets "206 bytes 10-19/OLD" over the new
// object's full body appends it at the wrong offset and corrupts its file.
func TestE2EChangeBetweenStatAndOpen(t *testing.T) {
	const key = "moving.bin"
	oldData, newData := randBytes(60, 4000), randBytes(61, 6000)
	past := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	tests := []struct {
		name       string
		hdr        func(oldTag, oldLM string) []string
		backdate   bool // give the new version a Last-Modified two days ago
		wantStatus int
		wantRange  string
		want       []byte
	}{
		{"plain GET", func(string, string) []string { return nil }, false, 200, "", newData},
		{"range", func(string, string) []string { return []string{"Range", "bytes=10-19"} }, false,
			206, "bytes 10-19/6000", newData[10:20]},
		{"range with If-Range of the old version", func(tag, _ string) []string {
			return []string{"Range", "bytes=10-19", "If-Range", tag}
		}, false, 200, "", newData},
		{"multi-range with If-Range of the old version", func(tag, _ string) []string {
			return []string{"Range", "bytes=0-9,100-109", "If-Range", tag}
		}, false, 200, "", newData},
		{"range with If-Range date of the old version", func(_, lm string) []string {
			return []string{"Range", "bytes=10-19", "If-Range", lm}
		}, true, 200, "", newData},
		{"range, new version not modified since", func(string, string) []string {
			return []string{"Range", "bytes=10-19", "If-Modified-Since", past.Add(time.Hour).Format(http.TimeFormat)}
		}, true, 304, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o *dirOrigin
			f := newFixture(t, proxy.Config{}, func(inner proxy.Objects) proxy.Objects {
				return &changeAfterStat{Objects: inner, key: key, change: func() {
					o.put(t, dlBucket, key, newData)
					if tt.backdate {
						p := filepath.Join(o.Root, dlBucket, key)
						if err := os.Chtimes(p, past, past); err != nil {
							t.Error(err)
						}
					}
				}}
			})
			o = f.o
			o.put(t, dlBucket, key, oldData)
			old := o.stat(t, dlBucket, key)

			resp, body := do(t, f.c, http.MethodGet, f.url(key), tt.hdr(old.ETag, old.LastModified.Format(http.TimeFormat))...)
			cur := o.stat(t, dlBucket, key)
			if cur.ETag == old.ETag {
				t.Fatal("the object did not change")
			}
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if got := resp.Header.Values("Content-Range"); tt.wantRange == "" && len(got) != 0 ||
				tt.wantRange != "" && (len(got) != 1 || got[0] != tt.wantRange) {
				t.Errorf("Content-Range %q, want %q", got, tt.wantRange)
			}
			if !bytes.Equal(body, tt.want) {
				t.Errorf("body %d bytes (sha %s), want %d bytes (sha %s)", len(body), sha(body), len(tt.want), sha(tt.want))
			}
			if tag := resp.Header.Get("Etag"); tag != cur.ETag {
				t.Errorf("ETag %q, want the new version's %q", tag, cur.ETag)
			}
			if tt.wantStatus == 200 {
				if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "multipart/") {
					t.Errorf("200 with Content-Type %q", ct)
				}
				if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(newData)) {
					t.Errorf("Content-Length %q", cl)
				}
			}
		})
	}
}

func TestE2EMethodNotAllowed(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
		t.Run(m, func(t *testing.T) {
			resp, body := do(t, f.c, m, f.url(dataKey))
			wantError(t, resp, body, 405, "method_not_allowed")
			if got := resp.Header.Values("Allow"); len(got) != 1 || got[0] != "GET, HEAD" {
				t.Errorf("Allow %q, want [\"GET, HEAD\"]", got)
			}
		})
	}
}

func TestE2ENotFound(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	for _, path := range []string{"/download/missing", "/download/报告", "/download/data.txt/x"} {
		resp, body := do(t, f.c, http.MethodGet, f.p.URL+path)
		wantError(t, resp, body, 404, "not_found")
		resp, body = do(t, f.c, http.MethodHead, f.p.URL+path)
		if resp.StatusCode != 404 || len(body) != 0 {
			t.Errorf("HEAD %s: status %d, %d body bytes", path, resp.StatusCode, len(body))
		}
	}
}

// TestE2EPathTricks sends hostile request targets as-is. Each must be
// refused as bad_path, and no answer may carry a byte of a file outside
// the bucket.
func TestE2EPathTricks(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	tests := []struct{ name, target, host string }{
		{"dot-dot", "/download/../secret.txt", "127.0.0.1"},
		{"dot-dot inside", "/download/a/../../secret.txt", "127.0.0.1"},
		{"encoded dot-dot", "/download/a/%2e%2e/b", "127.0.0.1"},
		{"encoded dot-dot escape", "/download/%2e%2e/secret.txt", "127.0.0.1"},
		{"encoded slash", "/download/..%2fsecret.txt", "127.0.0.1"},
		{"encoded leading slash", "/download/%2fetc/passwd", "127.0.0.1"},
		{"dot", "/download/./data.txt", "127.0.0.1"},
		{"NUL", "/download/%00", "127.0.0.1"},
		{"NUL in name", "/download/data.txt%00.png", "127.0.0.1"},
		{"empty segment", "/download/a//b", "127.0.0.1"},
		{"empty key", "/download/", "127.0.0.1"},
		{"backslash", "/download/..%5csecret.txt", "127.0.0.1"},
		{"bad escape", "/download/%zz", "127.0.0.1"},
		{"invalid utf-8", "/download/%ff", "127.0.0.1"},
		{"overlong", "/download/" + strings.Repeat("a", objectkey.MaxLength+1), "127.0.0.1"},
		{"host route dot-dot", "/../secret.txt", "files.example.com"},
		{"host route encoded", "/%2e%2e/secret.txt", "files.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, method := range []string{"GET", "HEAD"} {
				resp, body, head := rawExchange(t, f.p.Addr, method, rawGet(method, tt.target, tt.host))
				if strings.Contains(string(body), secret) || strings.Contains(head, secret) {
					t.Fatalf("%s %s leaked the file outside the bucket", method, tt.target)
				}
				if method == "HEAD" {
					if resp.StatusCode != 400 {
						t.Errorf("HEAD: status %d, want 400", resp.StatusCode)
					}
					continue
				}
				wantError(t, resp, body, 400, "bad_path")
			}
		})
	}
	// A symbolic link inside the bucket that points outside it is not followed.
	if err := os.Symlink(filepath.Join("..", "secret.txt"), filepath.Join(f.o.Root, dlBucket, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(f.o.Root, "secret.txt"), filepath.Join(f.o.Root, dlBucket, "abslink")); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"link", "abslink"} {
		resp, body := do(t, f.c, http.MethodGet, f.url(key))
		if strings.Contains(string(body), secret) {
			t.Fatalf("symlink %s leaked the file outside the bucket", key)
		}
		wantError(t, resp, body, 404, "not_found")
	}

	// The longest allowed key is a lookup, not an error.
	resp, body := do(t, f.c, http.MethodGet, f.url(strings.Repeat("a", objectkey.MaxLength)))
	wantError(t, resp, body, 404, "not_found")
}

func TestE2EHostRouting(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	tests := []struct {
		name, host, target string
		want               string // body; "" means 404 unknown_host
	}{
		{"exact", "files.example.com", "/obj", "host bucket\n"},
		{"exact any case", "FILES.Example.COM", "/obj", "host bucket\n"},
		{"exact with port", "files.example.com:8080", "/obj", "host bucket\n"},
		{"exact trailing dot", "files.example.com.", "/obj", "host bucket\n"},
		{"wildcard", "a.cdn.example.com", "/obj", "wildcard bucket\n"},
		{"wildcard with port", "b.cdn.example.com:443", "/obj", "wildcard bucket\n"},
		{"wildcard apex is not covered", "cdn.example.com", "/obj", ""},
		{"unknown", "evil.example.com", "/obj", ""},
		{"suffix lookalike", "files.example.com.evil.net", "/obj", ""},
		{"unknown host, download path", "evil.example.com", "/download/obj", "download bucket\n"},
		{"loopback address", "127.0.0.1", "/obj", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, f.c, http.MethodGet, f.p.URL+tt.target, "Host", tt.host)
			if tt.want == "" {
				wantError(t, resp, body, 404, "unknown_host")
				return
			}
			if resp.StatusCode != 200 || string(body) != tt.want {
				t.Errorf("status %d body %q, want 200 %q", resp.StatusCode, body, tt.want)
			}
		})
	}
}

// TestE2EHostHeaderRaw covers Host header cases net/http would not send.
func TestE2EHostHeaderRaw(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	// RFC 9112 3.2: a request without Host, or with two, is a 400.
	for name, req := range map[string]string{
		"missing": "GET /obj HTTP/1.1\r\nConnection: close\r\n\r\n",
		"twice":   "GET /obj HTTP/1.1\r\nHost: evil.example.com\r\nHost: files.example.com\r\nConnection: close\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			resp, body, _ := rawExchange(t, f.p.Addr, "GET", req)
			wantError(t, resp, body, 400, "bad_request")
			if strings.Contains(string(body), "bucket") {
				t.Errorf("served an object: %q", body)
			}
		})
	}
	t.Run("bad port", func(t *testing.T) {
		resp, body, _ := rawExchange(t, f.p.Addr, "GET", rawGet("GET", "/obj", "files.example.com:http"))
		if resp.StatusCode == 200 {
			t.Errorf("served %q for a malformed Host", body)
		}
	})
}

// TestE2EAbsoluteFormTarget: for a request target in absolute form the
// server MUST ignore Host and use the target's authority (RFC 9112 3.2.2),
// so routing agrees with what the access log (and any front proxy) sees.
func TestE2EAbsoluteFormTarget(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	tests := []struct{ name, req, want string }{
		{"target host routes", "GET http://files.example.com/obj HTTP/1.1\r\nHost: evil.example.com\r\nConnection: close\r\n\r\n", "host bucket\n"},
		{"Host header does not route", "GET http://evil.example.com/obj HTTP/1.1\r\nHost: files.example.com\r\nConnection: close\r\n\r\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, _ := rawExchange(t, f.p.Addr, "GET", tt.req)
			if tt.want == "" {
				wantError(t, resp, body, 404, "unknown_host")
				return
			}
			if resp.StatusCode != 200 || string(body) != tt.want {
				t.Errorf("status %d body %q, want 200 %q", resp.StatusCode, body, tt.want)
			}
		})
	}
}

func TestE2EHeadersTooLarge(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	big := "X-Padding: " + strings.Repeat("p", 10<<10)
	resp, body, _ := rawExchange(t, f.p.Addr, "GET", rawGet("GET", "/download/"+dataKey, "127.0.0.1", big))
	wantError(t, resp, body, 431, "headers_too_large")
	// Just under the limit still works.
	ok := "X-Padding: " + strings.Repeat("p", 6<<10)
	resp, body, _ = rawExchange(t, f.p.Addr, "GET", rawGet("GET", "/download/"+dataKey, "127.0.0.1", ok))
	if resp.StatusCode != 200 || !bytes.Equal(body, f.data) {
		t.Errorf("6 KiB of headers: status %d, %d bytes", resp.StatusCode, len(body))
	}
}

func TestE2EHealthAndReady(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, body := do(t, f.c, http.MethodGet, f.p.URL+path)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(string(body), `"ok"`) {
			t.Errorf("%s: status %d type %q body %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}

	// An S3 origin on a loopback port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	s3, err := origin.NewS3(origin.S3Config{Endpoint: dead, AccessKey: "k", SecretKey: "secret-key", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, proxy.Config{DownloadBucket: "downloads"}, proxy.Deps{Origin: s3})
	c := newClient(t)
	resp, body := do(t, c, http.MethodGet, p.URL+"/readyz")
	wantError(t, resp, body, 503, "not_ready")
	resp, body = do(t, c, http.MethodGet, p.URL+"/healthz")
	if resp.StatusCode != 200 {
		t.Errorf("/healthz with a dead origin: %d %q (liveness must not depend on the origin)", resp.StatusCode, body)
	}
	resp, body = do(t, c, http.MethodGet, p.URL+"/download/x")
	wantError(t, resp, body, 502, "origin_unavailable")
}

// TestE2EOriginTimeout: an S3 origin that accepts connections but never
// answers yields 504 origin_timeout within the origin's Timeout, and /readyz 503.
func TestE2EOriginTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var held []net.Conn
	var mu sync.Mutex
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	s3, err := origin.NewS3(origin.S3Config{Endpoint: ln.Addr().String(), AccessKey: "k", SecretKey: "secret-key",
		Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, proxy.Config{DownloadBucket: "downloads"}, proxy.Deps{Origin: s3})
	c := newClient(t)
	start := time.Now()
	resp, body := do(t, c, http.MethodGet, p.URL+"/download/x.bin")
	wantError(t, resp, body, 504, "origin_timeout")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("answered after %v with a 300ms origin timeout", d)
	}
	resp, body = do(t, c, http.MethodGet, p.URL+"/readyz")
	wantError(t, resp, body, 503, "not_ready")
}

// TestE2EClientHangup: a client that reads 1 MiB of a 64 MiB object and
// hangs up must make the proxy close the origin reader promptly and leave
// no goroutine behind.
func TestE2EClientHangup(t *testing.T) {
	const size = 64 << 20
	for _, tt := range []struct {
		name  string
		wrapR bool   // hide io.WriterTo, so the proxy copies through Read
		rng   string // Range header, if any
	}{
		{"writerto", false, ""},
		{"read", true, ""},
		{"multipart", false, "bytes=0-33554431,33554432-"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var counter *countingObjects
			f := newFixture(t, proxy.Config{}, func(o proxy.Objects) proxy.Objects {
				counter = &countingObjects{Objects: o}
				if tt.wrapR {
					return readOnlyObjects{counter}
				}
				return counter
			})
			f.o.putSparse(t, dlBucket, "big.bin", size)

			// Warm up: one complete download, then the baseline.
			resp, body := do(t, f.c, http.MethodGet, f.url(dataKey))
			if resp.StatusCode != 200 || len(body) != len(f.data) {
				t.Fatalf("warm-up: %d", resp.StatusCode)
			}
			f.c.CloseIdleConnections()
			testenv.WaitFor(t, 10*time.Second, "warm-up reader closed", func() bool { return !counter.open() })
			base := runtime.NumGoroutine()
			opensBefore := counter.opens.Load()
			readBefore := counter.read.Load()

			c, err := net.Dial("tcp", f.p.Addr)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(30 * time.Second))
			var extra []string
			if tt.rng != "" {
				extra = append(extra, "Range: "+tt.rng)
			}
			if _, err := io.WriteString(c, rawGet("GET", "/download/big.bin", "127.0.0.1", extra...)); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReaderSize(c, 64<<10)
			resp, err = http.ReadResponse(br, &http.Request{Method: "GET"})
			if err != nil || resp.StatusCode/100 != 2 || resp.ContentLength < size {
				t.Fatalf("response: %v, %+v", err, resp)
			}
			if n, err := io.CopyN(io.Discard, resp.Body, 1<<20); n != 1<<20 {
				t.Fatalf("read %d bytes: %v", n, err)
			}
			c.Close()

			testenv.WaitFor(t, 10*time.Second, "origin reader closed after the client hung up", func() bool {
				return counter.opens.Load() > opensBefore && !counter.open()
			})
			if got := counter.read.Load() - readBefore; got >= size/2 {
				t.Errorf("the proxy read %d bytes from the origin for a client that took 1 MiB", got)
			}
			testenv.WaitFor(t, 10*time.Second, "goroutines back to baseline", func() bool {
				return runtime.NumGoroutine() <= base+2
			})
			testenv.WaitFor(t, 10*time.Second, "access log records the hang-up", func() bool {
				return strings.Contains(f.p.Log.String(), "client closed connection")
			})
		})
	}
}

// TestE2ESlowClients: a client that stops reading is dropped after
// SendTimeout, and one that never finishes its request headers after
// ReadTimeout (slowloris); neither holds an origin reader.
func TestE2ESlowClients(t *testing.T) {
	var counter *countingObjects
	f := newFixture(t, proxy.Config{SendTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond},
		func(o proxy.Objects) proxy.Objects {
			counter = &countingObjects{Objects: o}
			return counter
		})
	const size = 64 << 20
	f.o.putSparse(t, dlBucket, "big.bin", size)

	t.Run("stops reading", func(t *testing.T) {
		c, err := net.Dial("tcp", f.p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.WriteString(c, rawGet("GET", "/download/big.bin", "127.0.0.1")); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 10*time.Second, "origin reader opened", func() bool { return counter.opens.Load() == 1 })
		testenv.WaitFor(t, 10*time.Second, "origin reader closed after SendTimeout", func() bool { return !counter.open() })
		n, err := io.Copy(io.Discard, c)
		if n >= size {
			t.Errorf("client got the whole %d bytes (%v)", n, err)
		}
	})

	t.Run("never finishes headers", func(t *testing.T) {
		c, err := net.Dial("tcp", f.p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /download/data.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("connection still open after %v (read %q)", time.Since(start), b)
		}
		if bytes.Contains(b, f.data[:16]) {
			t.Errorf("served the object to an incomplete request")
		}
	})
}

// TestE2EDrainCompletes: a download in flight when Serve's context is
// cancelled runs to the end within DrainTimeout.
func TestE2EDrainCompletes(t *testing.T) {
	const size, first = 1 << 20, 128 << 10
	var gate *gatedObjects
	f := newFixture(t, proxy.Config{DrainTimeout: 30 * time.Second}, func(o proxy.Objects) proxy.Objects {
		gate = newGatedObjects(t, o, first)
		return gate
	})
	data := randBytes(30, size)
	f.o.put(t, dlBucket, "drain.bin", data)

	c, err := net.Dial("tcp", f.p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, rawGet("GET", "/download/drain.bin", "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("response: %v %+v", err, resp)
	}
	got := make([]byte, 64<<10)
	if _, err := io.ReadFull(resp.Body, got); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gate.blocked: // the origin stream is now held mid-body
	case <-time.After(10 * time.Second):
		t.Fatal("the origin reader never reached the gate")
	}

	f.p.cancel()
	testenv.WaitFor(t, 10*time.Second, "listener closed by the drain", func() bool {
		c, err := net.DialTimeout("tcp", f.p.Addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-f.p.done:
		t.Fatalf("Serve returned %v while a download was in flight", err)
	default:
	}
	close(gate.release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("body cut during drain after %d bytes: %v", len(got)+len(rest), err)
	}
	if all := append(got, rest...); !bytes.Equal(all, data) {
		t.Errorf("drained body: %d bytes (sha %s), want %d (sha %s)", len(all), sha(all), len(data), sha(data))
	}
	if err := f.p.stop(10 * time.Second); err != nil {
		t.Errorf("Serve after drain: %v", err)
	}
}

// TestE2EDrainTimeout: a download that outlasts DrainTimeout is cut and
// Serve returns.
func TestE2EDrainTimeout(t *testing.T) {
	const size = 64 << 20
	var counter *countingObjects
	f := newFixture(t, proxy.Config{DrainTimeout: 300 * time.Millisecond}, func(o proxy.Objects) proxy.Objects {
		counter = &countingObjects{Objects: o}
		return counter
	})
	f.o.putSparse(t, dlBucket, "slow.bin", size)

	c, err := net.Dial("tcp", f.p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, rawGet("GET", "/download/slow.bin", "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("response: %v %+v", err, resp)
	}
	// The client stops reading: the proxy's writes block on a full socket.
	start := time.Now()
	if err := f.p.stop(15 * time.Second); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("Serve returned after %v, before DrainTimeout", d)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil || n >= size {
		t.Errorf("client got %d of %d bytes, err %v: the download was not cut", n, size, err)
	}
	testenv.WaitFor(t, 10*time.Second, "origin reader closed after the cut", func() bool { return !counter.open() })
	if !strings.Contains(f.p.Log.String(), "drain timeout") {
		t.Errorf("log lacks the drain timeout warning:\n%s", f.p.Log.String())
	}
}

// TestE2EDrainIdleConnections: idle keep-alive connections do not hold a
// drain for DrainTimeout; Serve returns as soon as nothing is in flight.
func TestE2EDrainIdleConnections(t *testing.T) {
	f := newFixture(t, proxy.Config{DrainTimeout: 30 * time.Second}, nil)
	for range 3 {
		resp, body := do(t, f.c, http.MethodGet, f.url(dataKey))
		if resp.StatusCode != 200 || len(body) != len(f.data) {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	// A raw keep-alive connection that has finished a request and sits idle.
	c, err := net.Dial("tcp", f.p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "GET"})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %+v", err, resp)
	}
	io.Copy(io.Discard, resp.Body)

	start := time.Now()
	if err := f.p.stop(10 * time.Second); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Serve took %v to return with only idle connections", d)
	}
}

// TestE2EConcurrentMixed runs many mixed requests at once (under -race this
// checks the pooled per-response state), each answer checked byte for byte.
func TestE2EConcurrentMixed(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	big := randBytes(70, 3<<20)
	f.o.put(t, dlBucket, "mixed.bin", big)
	etag := f.o.stat(t, dlBucket, "mixed.bin").ETag
	type check struct {
		hdr    []string
		method string
		status int
		want   []byte // nil: do not compare (multipart, HEAD, 304)
	}
	checks := []check{
		{nil, "GET", 200, big},
		{[]string{"Range", "bytes=1000-299999"}, "GET", 206, big[1000:300000]},
		{[]string{"Range", "bytes=-70000"}, "GET", 206, big[len(big)-70000:]},
		{[]string{"Range", "bytes=0-9,1000000-1999999"}, "GET", 206, nil},
		{[]string{"If-None-Match", etag}, "GET", 304, nil},
		{nil, "HEAD", 200, nil},
		{[]string{"If-Match", `"x"`}, "GET", 412, nil},
	}
	const workers, perWorker = 8, 7
	errs := make(chan string, workers*perWorker)
	var wg sync.WaitGroup
	c := newClient(t)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				ck := checks[(w+i)%len(checks)]
				req, _ := http.NewRequest(ck.method, f.url("mixed.bin"), nil)
				for j := 0; j+1 < len(ck.hdr); j += 2 {
					req.Header.Set(ck.hdr[j], ck.hdr[j+1])
				}
				resp, err := c.Do(req)
				if err != nil {
					errs <- err.Error()
					continue
				}
				body, err := readBody(resp)
				resp.Body.Close()
				switch {
				case err != nil:
					errs <- fmt.Sprintf("%v: read: %v", ck.hdr, err)
				case resp.StatusCode != ck.status:
					errs <- fmt.Sprintf("%s %v: status %d, want %d", ck.method, ck.hdr, resp.StatusCode, ck.status)
				case ck.want != nil && !bytes.Equal(body, ck.want):
					errs <- fmt.Sprintf("%s %v: %d bytes, want %d", ck.method, ck.hdr, len(body), len(ck.want))
				case resp.StatusCode == 206 && ck.want == nil:
					parts := 0
					_, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
					mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
					for range 3 {
						p, err := mr.NextPart()
						if err != nil {
							break
						}
						b, _ := io.ReadAll(p)
						if start, _, ok := strings.Cut(strings.TrimPrefix(p.Header.Get("Content-Range"), "bytes "), "-"); ok {
							n, _ := strconv.Atoi(start)
							if !bytes.Equal(b, big[n:n+len(b)]) {
								errs <- fmt.Sprintf("part at %d: wrong bytes", n)
							}
						}
						parts++
					}
					if parts != 2 {
						errs <- fmt.Sprintf("%d parts, want 2", parts)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestE2EAccessLog(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	const tok = "secretvalue123"
	resp, body := do(t, f.c, http.MethodGet, f.url(dataKey)+"?token="+tok)
	if resp.StatusCode != 200 || len(body) != 1000 {
		t.Fatalf("status %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, _ = do(t, f.c, http.MethodGet, f.url(dataKey)+"?token="+tok, "Range", "bytes=10-19")
	if resp.StatusCode != 206 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	resp, _ = do(t, f.c, http.MethodGet, f.url("missing")+"?x=1&token="+tok)
	if resp.StatusCode != 404 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	resp, _ = do(t, f.c, http.MethodHead, f.url(dataKey)+"?token="+tok)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	wantLines := [][]string{
		{"method=GET", "path=/download/data.txt", "status=200", "bytes=1000"},
		{"method=GET", "path=/download/data.txt", "status=206", "bytes=10"},
		{"method=GET", "path=/download/missing", "status=404"},
		{"method=HEAD", "path=/download/data.txt", "status=200", "bytes=0"},
	}
	// Streamed responses are logged when the body is closed, which may be
	// just after the client has the last byte.
	testenv.WaitFor(t, 10*time.Second, "access log lines", func() bool {
		lines := strings.Split(f.p.Log.String(), "\n")
		for _, want := range wantLines {
			if !slicesContainsAll(lines, want) {
				return false
			}
		}
		return true
	})
	if log := f.p.Log.String(); strings.Contains(log, tok) {
		t.Errorf("access log contains the token:\n%s", log)
	}
}

// TestE2ETokenNeverLogged: a request the HTTP parser rejects must not get
// its token written to any log either (the access log or fasthttp's error
// log, which by default goes to stderr with the raw request bytes).
func TestE2ETokenNeverLogged(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	const tok = "secretvalue123"
	reqs := []string{
		"GET /download/data.txt?token=" + tok + " HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
		"GET /download/data.txt?token=" + tok + " HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n",
		"GET /download/data.txt?token=" + tok + " HTTP/1.1\r\nConnection: close\r\n\r\n",
	}
	stderr := captureStderr(t, func() {
		for _, req := range reqs {
			c, err := net.Dial("tcp", f.p.Addr)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, req)
			// The server logs a connection's error before closing it,
			// so at EOF the log line has been written.
			raw, err := io.ReadAll(c)
			c.Close()
			if err != nil || !bytes.HasPrefix(raw, []byte("HTTP/1.1 400 ")) {
				t.Errorf("%q: got %q (%v), want a 400 and EOF", firstLine(req), raw, err)
			}
		}
	})
	if strings.Contains(stderr, tok) {
		t.Errorf("stderr contains the token:\n%s", stderr)
	}
	if strings.Contains(f.p.Log.String(), tok) {
		t.Errorf("the log contains the token:\n%s", f.p.Log.String())
	}
}
