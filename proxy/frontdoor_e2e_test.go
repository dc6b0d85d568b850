package proxy_test

// Raw-socket tests of the front door (issue 9, defect 10): each sends the
// exact bytes of a hostile or malformed request through a real listener.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/proxy"
)

// rawConversation writes req on a new connection and reads everything the
// server sends until it closes the connection. It fails the test if the
// server does not close within 30 s (a stall) or ends with an error such
// as a reset instead of a clean EOF.
func rawConversation(t *testing.T, addr, req string) []byte {
	t.Helper()
	c := testenv.Dial(t, addr, "")
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("write %q: %v", firstLine(req), err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("%q: read until close: %v (got %q)", firstLine(req), err, got)
	}
	return got
}

// oneAnswer parses raw as exactly one response to method and returns its
// status, its error code (JSON body) and whether it said Connection: close.
// Bytes after it (an answer to a smuggled second request) fail the test.
func oneAnswer(t *testing.T, method string, raw []byte) (status int, code string) {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(raw))
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("parse response: %v (got %q)", err, raw)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v (got %q)", err, raw)
	}
	if rest, _ := io.ReadAll(br); len(rest) > 0 {
		t.Errorf("more than one answer on the connection: %q", raw)
	}
	if !resp.Close {
		t.Errorf("answer without Connection: close: %q", raw)
	}
	var e struct{ Code string }
	if len(body) > 0 && json.Unmarshal(body, &e) != nil {
		t.Errorf("body %q is not JSON", body)
	}
	return resp.StatusCode, e.Code
}

// TestE2EFrontDoorTokensNotLogged: fasthttp's parse-error warnings quote
// the bytes they refuse, SecureErrorLogMessage or not; no shape of a
// token in a malformed request may reach a log.
func TestE2EFrontDoorTokensNotLogged(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	const tok = "SECRETtok42"
	reqs := []string{
		"GET /download/data.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + tok + "\x01\r\n\r\n",
		"GET /download/data.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + tok + "\x7f\r\nConnection: close\r\n\r\n",
		"GET /download/data.txt?token=" + tok + " HTTP/1.1 x\r\nHost: 127.0.0.1\r\n\r\n",
		"GET /download/data.txt?token=" + tok + "\x01 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
		"GET /download/data.txt?token=" + tok + "\r\nHost: 127.0.0.1\r\n\r\n",
		"G\x01T /download/data.txt?token=" + tok + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
		"GET /download/data.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: download_token=" + tok + "\rX\r\n\r\n",
		"GET /download/data.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: a=b; download_token=" + tok + "\r\n X-Folded: \x02\r\n\r\n",
		"GET /download/data.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Token " + tok + "\r\n\r\n",
	}
	stderr := captureStderr(t, func() {
		for _, req := range reqs {
			raw := rawConversation(t, f.p.Addr, req)
			if !bytes.HasPrefix(raw, []byte("HTTP/1.1 400 ")) {
				t.Errorf("%q: got %q, want a 400", firstLine(req), raw)
			}
		}
	})
	for name, out := range map[string]string{"stderr": stderr, "log": f.p.Log.String()} {
		if strings.Contains(out, tok) {
			t.Errorf("%s contains the token:\n%s", name, out)
		}
	}
	// The warnings are still there, redacted.
	if !strings.Contains(f.p.Log.String(), "[redacted]") {
		t.Errorf("no redacted fasthttp warning in the log:\n%s", f.p.Log.String())
	}
}

// TestE2EFrontDoorBodyFraming: downloads take no body, so any request with
// body framing other than Content-Length: 0, and any header block a front
// proxy could frame differently, gets 400 and the connection closes, before
// the second request hidden in the first is answered (RFC 9112 6.3, 2.2,
// 5.1).
func TestE2EFrontDoorBodyFraming(t *testing.T) {
	f := newFixture(t, proxy.Config{ReadTimeout: time.Minute}, nil)
	const smuggled = "GET /download/obj HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
	tests := []struct {
		name, method, req, code string
	}{
		{"TE identity", "GET", "GET /download/data.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: identity\r\n\r\n" + smuggled, "body_not_allowed"},
		{"TE chunked", "GET", "GET /download/data.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n" + "2e\r\n" + smuggled + "\r\n0\r\n\r\n", "body_not_allowed"},
		{"TE chunked HEAD", "HEAD", "HEAD /download/data.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, ""},
		{"Content-Length", "GET", "GET /download/data.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 46\r\n\r\n" + smuggled, "body_not_allowed"},
		{"Content-Length without the body", "GET", "GET /download/data.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 46\r\n\r\n", "body_not_allowed"},
		{"space in a field name", "GET", "GET /download/data.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent Length: 46\r\n\r\n" + smuggled, "bad_request"},
		{"bare LF in the block", "GET", "GET /download/data.txt HTTP/1.1\r\nHost: 127.0.0.1\nContent-Length: 46\r\n\r\n" + smuggled, "bad_request"},
		{"bare LF before a plain field", "GET", "GET /download/data.txt HTTP/1.1\r\nHost: 127.0.0.1\nX-A: b\r\n\r\n" + smuggled, "bad_request"},
		{"obs-fold", "GET", "GET /download/data.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: b\r\n c\r\n\r\n" + smuggled, "bad_request"},
		{"POST with a body", "POST", "POST /download/data.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 46\r\n\r\n" + smuggled, "body_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, code := oneAnswer(t, tt.method, rawConversation(t, f.p.Addr, tt.req))
			if status != 400 || code != tt.code {
				t.Errorf("status %d code %q, want 400 %q", status, code, tt.code)
			}
		})
	}
	t.Run("chunk extension is not read", func(t *testing.T) {
		// 8 MiB of chunk extension: the answer comes before it is sent,
		// and the connection is not held to read it.
		c, err := net.Dial("tcp", f.p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		io.WriteString(c, "GET /download/data.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=")
		go func() {
			ext := bytes.Repeat([]byte("x"), 64<<10)
			for range 128 {
				if _, err := c.Write(ext); err != nil {
					return
				}
			}
		}()
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "GET"})
		if err != nil {
			t.Fatalf("no answer while the extension is being sent: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("status %d, want 400", resp.StatusCode)
		}
	})
	// Content-Length: 0 is no body: served, and the connection stays open.
	resp, body, _ := rawExchange(t, f.p.Addr, "GET", rawGet("GET", "/download/"+dataKey, "127.0.0.1", "Content-Length: 0"))
	if resp.StatusCode != 200 || !bytes.Equal(body, f.data) {
		t.Errorf("Content-Length: 0: status %d, %d bytes", resp.StatusCode, len(body))
	}
}

// TestE2EFrontDoorLeadingEmptyLines: a request made of empty lines is
// answered at once, not held until ReadTimeout; one leading CRLF is
// ignored (RFC 9112 2.2).
func TestE2EFrontDoorLeadingEmptyLines(t *testing.T) {
	f := newFixture(t, proxy.Config{ReadTimeout: time.Minute}, nil)
	for _, req := range []string{"\n\n\n\n", "\n", "\r\n\r\n", "\r\n\n", "\r\r\n"} {
		c, err := net.Dial("tcp", f.p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		io.WriteString(c, req) // and nothing more: the connection stays open
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "GET"})
		c.Close()
		if err != nil {
			t.Errorf("%q: no answer: %v", req, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("%q: status %d, want 400", req, resp.StatusCode)
		}
	}
	resp, body, _ := rawExchange(t, f.p.Addr, "GET", "\r\n"+rawGet("GET", "/download/"+dataKey, "127.0.0.1"))
	if resp.StatusCode != 200 || !bytes.Equal(body, f.data) {
		t.Errorf("one leading CRLF: status %d, %d bytes", resp.StatusCode, len(body))
	}
}

// TestE2EFrontDoorExpect: downloads never get 100 (Continue). A bodiless
// request with the expectation is answered as usual; one announcing a
// body gets its final 400 at once, without waiting for the body.
func TestE2EFrontDoorExpect(t *testing.T) {
	f := newFixture(t, proxy.Config{ReadTimeout: time.Minute}, nil)
	raw := rawConversation(t, f.p.Addr, rawGet("GET", "/download/"+dataKey, "127.0.0.1", "Expect: 100-continue"))
	if !bytes.HasPrefix(raw, []byte("HTTP/1.1 200 ")) || !bytes.HasSuffix(raw, f.data) {
		t.Errorf("bodiless GET with Expect: got %q, want 200 and the file, no 100", raw[:min(len(raw), 200)])
	}
	for _, framing := range []string{"Content-Length: 5", "Transfer-Encoding: chunked"} {
		c, err := net.Dial("tcp", f.p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		// The client waits for 100 before sending the body, so the body
		// never comes: the answer must not wait for it.
		io.WriteString(c, "GET /download/data.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"+framing+"\r\n\r\n")
		var got bytes.Buffer
		resp, err := http.ReadResponse(bufio.NewReader(io.TeeReader(c, &got)), &http.Request{Method: "GET"})
		c.Close()
		if err != nil {
			t.Errorf("%s: no answer: %v", framing, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 400 || !resp.Close || !bytes.Contains(body, []byte(`"body_not_allowed"`)) {
			t.Errorf("%s: got %q, want a final 400 body_not_allowed that closes", framing, got.String())
		}
	}
}

// TestE2EFrontDoorVersion: a request line with a major version other than
// 1 gets 505 (RFC 9110 15.6.6) and the connection closes.
func TestE2EFrontDoorVersion(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	for _, v := range []string{"HTTP/2.0", "HTTP/9.9", "HTTP/0.9", "HTTP/3.1"} {
		status, code := oneAnswer(t, "GET", rawConversation(t, f.p.Addr, "GET /download/data.txt "+v+"\r\nHost: 127.0.0.1\r\n\r\n"))
		if status != 505 || code != "version_not_supported" {
			t.Errorf("%s: status %d code %q, want 505 version_not_supported", v, status, code)
		}
	}
	for _, v := range []string{"HTTP/1.0", "HTTP/1.1", "HTTP/1.2"} {
		raw := rawConversation(t, f.p.Addr, "GET /download/data.txt "+v+"\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
		if !bytes.HasPrefix(raw, []byte("HTTP/1.1 200 ")) {
			t.Errorf("%s: got %q, want 200", v, raw[:min(len(raw), 100)])
		}
	}
}

// TestE2EFrontDoorReadTimeout: a request not complete within ReadTimeout
// gets 408 (RFC 9110 15.5.9), not 400, and the connection closes.
func TestE2EFrontDoorReadTimeout(t *testing.T) {
	f := newFixture(t, proxy.Config{ReadTimeout: 200 * time.Millisecond}, nil)
	for _, partial := range []string{"GET /download/data.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n", "GET /downl", ""} {
		status, code := oneAnswer(t, "GET", rawConversation(t, f.p.Addr, partial))
		if status != 408 || code != "request_timeout" {
			t.Errorf("%q: status %d code %q, want 408 request_timeout", partial, status, code)
		}
	}
}

// TestE2EFrontDoorLingeringClose: an error answer sent while the client is
// still sending is not destroyed by a reset: the client reads the whole
// 431 and then a clean EOF (nginx's lingering close).
func TestE2EFrontDoorLingeringClose(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	req := rawGet("GET", "/download/"+dataKey, "127.0.0.1", "X-Padding: "+strings.Repeat("p", 64<<10))
	for i := range 8 {
		raw := rawConversation(t, f.p.Addr, req) // fails on ECONNRESET
		status, code := oneAnswer(t, "GET", raw)
		if status != 431 || code != "headers_too_large" {
			t.Fatalf("attempt %d: status %d code %q, want 431 headers_too_large", i, status, code)
		}
	}
	// A 400 for a body framing, with the body still coming.
	body := strings.Repeat("b", 256<<10)
	raw := rawConversation(t, f.p.Addr, "GET /download/data.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 262144\r\n\r\n"+body)
	if status, code := oneAnswer(t, "GET", raw); status != 400 || code != "body_not_allowed" {
		t.Errorf("status %d code %q, want 400 body_not_allowed", status, code)
	}
}

// TestE2EFrontDoorUserinfo: userinfo in Host or in an absolute-form target
// gets 400 (RFC 9112 3.2), and the password stays out of the log.
func TestE2EFrontDoorUserinfo(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	const pw = "hunter2pw"
	tests := []struct{ name, req, code string }{
		{"Host user@host", "GET /obj HTTP/1.1\r\nHost: user@files.example.com\r\n\r\n", "bad_host"},
		{"Host user:password@host", "GET /obj HTTP/1.1\r\nHost: user:" + pw + "@files.example.com\r\n\r\n", "bad_host"},
		{"Host on /download/", "GET /download/data.txt HTTP/1.1\r\nHost: user@127.0.0.1\r\n\r\n", "bad_host"},
		{"absolute-form user@host", "GET http://user@files.example.com/obj HTTP/1.1\r\nHost: files.example.com\r\n\r\n", "bad_request"},
		{"absolute-form user:password@host", "GET http://user:" + pw + "@files.example.com/obj HTTP/1.1\r\nHost: files.example.com\r\n\r\n", "bad_request"},
		{"absolute-form on /download/", "GET http://user@127.0.0.1/download/data.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "bad_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, code := oneAnswer(t, "GET", rawConversation(t, f.p.Addr, tt.req))
			if status != 400 || code != tt.code {
				t.Errorf("status %d code %q, want 400 %q", status, code, tt.code)
			}
		})
	}
	if strings.Contains(f.p.Log.String(), pw) {
		t.Errorf("the log contains the password:\n%s", f.p.Log.String())
	}
	// An @ in the path of an origin-form target is not userinfo.
	resp, _, _ := rawExchange(t, f.p.Addr, "GET", rawGet("GET", "/download/a@b", "127.0.0.1"))
	if resp.StatusCode != 404 {
		t.Errorf("/download/a@b: status %d, want 404", resp.StatusCode)
	}
}
