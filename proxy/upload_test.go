package proxy

import (
	"net/netip"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestCheckBlockUploadBody: under the upload prefix a body is allowed only
// with unambiguous framing; malformed blocks are refused as ever.
func TestCheckBlockUploadBody(t *testing.T) {
	tests := []struct {
		name, block string
		want        *apiError
	}{
		// Refused.
		{"malformed still refused", "Content-Length: 5\r\nX Y: z\r\n\r\n", errBadRequest},
		{"CL and TE", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", errBadRequest},
		{"two CL", "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", errBadRequest},
		{"two TE", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", errBadRequest},
		{"TE list", "Transfer-Encoding: gzip, chunked\r\n\r\n", errBadRequest},
		{"TE identity", "Transfer-Encoding: identity\r\n\r\n", errBadRequest},
		{"CL not digits", "Content-Length: +5\r\n\r\n", errBadRequest},
		{"CL empty", "Content-Length: \r\n\r\n", errBadRequest},
		{"userinfo in Host", "Host: u@a\r\n\r\n", errBadHost},
		// Accepted.
		{"CL", "Host: a\r\nContent-Length: 1048576\r\n\r\n", nil},
		{"TE chunked any case", "Transfer-Encoding: Chunked\r\n\r\n", nil},
		{"no body", "Host: a\r\n\r\n", nil},
	}
	for _, tt := range tests {
		if got := checkBlock([]byte(tt.block), true); got != tt.want {
			t.Errorf("%s: checkBlock(%q, true) = %v, want %v", tt.name, tt.block, got, tt.want)
		}
	}
}

// TestUploadBody: exactly PATCH and POST under the prefix (or the prefix
// without its last slash) may carry a body, matched on the target as sent.
func TestUploadBody(t *testing.T) {
	s := &Server{uploads: noUploads{}, uploadPrefix: []byte("/uploads/")}
	for req, want := range map[string]bool{
		"PATCH /uploads/abc HTTP/1.1":     true,
		"POST /uploads/ HTTP/1.1":         true,
		"POST /uploads HTTP/1.1":          true,
		"POST /uploads?x=1 HTTP/1.1":      true,
		"POST /uploadsx HTTP/1.1":         false,
		"POST /upload HTTP/1.1":           false,
		"PUT /uploads/abc HTTP/1.1":       false,
		"GET /uploads/abc HTTP/1.1":       false,
		"DELETE /uploads/abc HTTP/1.1":    false,
		"PATCH /download/x HTTP/1.1":      false,
		"PATCH /%75ploads/abc HTTP/1.1":   false,
		"PATCH /x/../uploads/a HTTP/1.1":  false,
		"POST http://a/uploads/ HTTP/1.1": false,
	} {
		var h fasthttp.RequestHeader
		if err := h.Read(bufioReader(req + "\r\nHost: a\r\n\r\n")); err != nil {
			t.Fatalf("%q: %v", req, err)
		}
		if got := s.uploadBody(&h); got != want {
			t.Errorf("uploadBody(%q) = %v, want %v", req, got, want)
		}
	}
	if (&Server{}).uploadBody(&fasthttp.RequestHeader{}) {
		t.Error("uploadBody without uploads = true")
	}
}

// noUploads is an upload endpoint that is never called.
type noUploads struct{}

func (noUploads) Prefix() string { return "/uploads/" }
func (noUploads) ServeUpload(ctx *fasthttp.RequestCtx, _ netip.Addr) {
	panic("bug: ServeUpload called")
}
