//go:build !race

package proxy

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// TestRequestChecksDoNotAllocate: the checks every request goes through
// (headerReceived, checkRequest) keep the cache-hit path allocation-free.
func TestRequestChecksDoNotAllocate(t *testing.T) {
	const req = "GET /download/x?token=t HTTP/1.1\r\nHost: a.example\r\nAuthorization: Bearer t\r\n" +
		"Range: bytes=0-9\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n"
	// With uploads mounted, so the upload-prefix checks run too.
	s := &Server{uploads: noUploads{}, uploadPrefix: []byte("/uploads/")}
	h := new(fasthttp.RequestHeader)
	if err := h.Read(bufioReader(req)); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		s.headerReceived(h)
		if checkRequestBody(h, s.uploadBody(h)) != nil {
			t.Fatal("refused")
		}
	}); n != 0 {
		t.Errorf("headerReceived + checkRequest allocate %v times per request", n)
	}
}
