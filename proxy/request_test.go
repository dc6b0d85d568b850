package proxy

import (
	"bytes"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/edgeproxy/edgeproxy/internal/httpsyntax"
)

func TestCheckHeaderBlock(t *testing.T) {
	tests := []struct {
		name, block string
		want        *apiError
	}{
		// Refused: malformed first, then body framing.
		{"bare LF ends a line", "Host: a\nX: b\r\n\r\n", errBadRequest},
		{"bare LF blank line", "Host: a\r\n\n", errBadRequest},
		{"bare CR in a value", "Cookie: t=SECRET\rX\r\n\r\n", errBadRequest},
		{"bare CR alone", "Host: a\r\r\n\r\n", errBadRequest},
		{"no line end", "Host: a", errBadRequest},
		{"space in a name", "Content Length: 46\r\n\r\n", errBadRequest},
		{"space before the colon", "Host : a\r\n\r\n", errBadRequest},
		{"obs-fold", "X: a\r\n b\r\n\r\n", errBadRequest},
		{"no colon", "Host a\r\n\r\n", errBadRequest},
		{"empty name", ": a\r\n\r\n", errBadRequest},
		{"CTL in a value", "Authorization: Bearer x\x01\r\n\r\n", errBadRequest},
		{"DEL in a value", "X: a\x7f\r\n\r\n", errBadRequest},
		{"bytes after the empty line", "Host: a\r\n\r\nX", errBadRequest},
		{"malformed beats framing", "Content-Length: 5\r\nX Y: z\r\n\r\n", errBadRequest},
		{"userinfo in Host", "Host: user@a\r\n\r\n", errBadHost},
		{"password in Host", "host: u:p@a:80\r\n\r\n", errBadHost},
		{"path in Host", "Host: a/b\r\n\r\n", errBadHost},
		{"space in Host", "Host: a b\r\n\r\n", errBadHost},
		{"TE identity", "Host: a\r\nTransfer-Encoding: identity\r\n\r\n", errBodyNotAllowed},
		{"TE chunked", "transfer-encoding: chunked\r\n\r\n", errBodyNotAllowed},
		{"TE empty", "Transfer-Encoding:\r\n\r\n", errBodyNotAllowed},
		{"Content-Length", "Content-Length: 46\r\n\r\n", errBodyNotAllowed},
		{"Content-Length not a number", "CONTENT-LENGTH: x\r\n\r\n", errBodyNotAllowed},
		{"Content-Length empty", "Content-Length: \r\n\r\n", errBodyNotAllowed},
		// Accepted.
		{"empty", "", nil},
		{"plain", "Host: a.example:8080\r\nAccept: */*\r\n\r\n", nil},
		{"Content-Length 0", "Host: a\r\nContent-Length: 0\r\n\r\n", nil},
		{"Content-Length 00 with OWS", "Content-Length: \t00 \r\n\r\n", nil},
		{"IPv6 Host", "Host: [::1]:80\r\n\r\n", nil},
		{"empty Host", "Host:\r\n\r\n", nil},
		{"obs-text and tabs in a value", "X: a\tb \xff\r\n\r\n", nil},
		{"no trailing empty line", "Host: a\r\n", nil},
	}
	for _, tt := range tests {
		if got := checkHeaderBlock([]byte(tt.block)); got != tt.want {
			t.Errorf("%s: checkHeaderBlock(%q) = %v, want %v", tt.name, tt.block, got, tt.want)
		}
	}
}

func TestHasUserinfo(t *testing.T) {
	for target, want := range map[string]bool{
		"http://user@host/a":          true,
		"HTTPS://u:p@host:443/a":      true,
		"http://user@host":            true,
		"http://host/a@b":             false,
		"http://host?x=a@b":           false,
		"http://host#a@b":             false,
		"/download/a@b":               false,
		"/a?u=http://user@host/":      false,
		"http://host/download/x":      false,
		"*":                           false,
		"host:443":                    false,
		"ftp://user@host/a":           true,
		"//user@host/a":               false, // origin-form path for fasthttp
		"http://[::1]:80/a":           false,
		"http://user%40x@[::1]:80/a@": true,
	} {
		if got := hasUserinfo([]byte(target)); got != want {
			t.Errorf("hasUserinfo(%q) = %v, want %v", target, got, want)
		}
	}
}

// TestCheckRequestParsed runs checkRequest on headers fasthttp parsed from
// the wire, so RawHeaders is what the server sees.
func TestCheckRequestParsed(t *testing.T) {
	tests := []struct {
		req  string
		want *apiError
	}{
		{"GET /a HTTP/2.0\r\nHost: a\r\n\r\n", errVersion},
		{"GET /a HTTP/9.9\r\nHost: a\r\n\r\n", errVersion},
		{"GET /a HTTP/0.9\r\nHost: a\r\n\r\n", errVersion},
		{"GET /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", errBodyNotAllowed},
		{"GET /a HTTP/1.1\r\nHost: a\r\nContent Length: 46\r\n\r\n", errBadRequest},
		{"GET /a HTTP/1.1\r\nHost: a\nContent-Length: 46\r\n\r\n", errBadRequest},
		{"GET http://u@a/x HTTP/1.1\r\nHost: a\r\n\r\n", errBadRequest},
		{"GET /a HTTP/1.1\r\nHost: u@a\r\n\r\n", errBadHost},
		{"GET /a HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"GET /a HTTP/1.0\r\n\r\n", nil},
		{"GET /a HTTP/1.2\r\nHost: a\r\n\r\n", nil},
	}
	for _, tt := range tests {
		var h fasthttp.RequestHeader
		if err := h.Read(bufioReader(tt.req)); err != nil {
			t.Errorf("%q: fasthttp refused it: %v", tt.req, err)
			continue
		}
		if got := checkRequest(&h); got != tt.want {
			t.Errorf("checkRequest(%q) = %v, want %v", tt.req, got, tt.want)
		}
	}
}

// FuzzCheckHeaderBlock: a block that passes has only CRLF line ends, token
// field names, and no body framing.
func FuzzCheckHeaderBlock(f *testing.F) {
	for _, s := range []string{"", "Host: a\r\n\r\n", "Host: a\nX: b\r\n\r\n", "Transfer-Encoding: identity\r\n\r\n",
		"Content-Length: 0\r\n\r\n", "X: a\r\n b\r\n\r\n", "Content Length: 4\r\n\r\n", "Host: u@h\r\n\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkHeaderBlock(b) != nil {
			return
		}
		for i, c := range b {
			if c == '\n' && (i == 0 || b[i-1] != '\r') || c == '\r' && (i+1 == len(b) || b[i+1] != '\n') {
				t.Fatalf("accepted a bare CR or LF at %d: %q", i, b)
			}
		}
		for _, line := range bytes.Split(b, []byte("\r\n")) {
			name, value, ok := bytes.Cut(line, []byte(":"))
			if !ok {
				continue
			}
			if !isToken(name) {
				t.Fatalf("accepted field name %q", name)
			}
			if bytes.EqualFold(name, strTransferEncoding) || bytes.EqualFold(name, strContentLength) && !isZero(httpsyntax.TrimOWS(value)) {
				t.Fatalf("accepted body framing %q", line)
			}
		}
	})
}
