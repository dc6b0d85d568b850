package proxy

import (
	"bytes"
	"net/netip"

	"github.com/valyala/fasthttp"
)

// Uploads is an upload endpoint mounted on the download listener under
// its Prefix (package upload implements tus there). It is the one place
// the front door lets a request body in: PATCH and POST requests whose
// target starts with Prefix may carry a body, unambiguously framed
// (checkBlock), which fasthttp streams (StreamRequestBody) to
// ServeUpload; every other request keeps the download rules.
type Uploads interface {
	// Prefix is the path prefix, "/" at both ends.
	Prefix() string
	// ServeUpload answers a request under Prefix, any method. client is
	// the client as client_ip resolves it.
	ServeUpload(ctx *fasthttp.RequestCtx, client netip.Addr)
}

var (
	strPatch = []byte("PATCH")
	strPost  = []byte("POST")
)

// uploadPath reports whether a request target (as received, origin-form)
// lies under the upload prefix. The target is matched as sent, before any
// decoding or dot-segment removal, so that the request routed here is the
// request whose body the front door let in.
func (s *Server) uploadPath(target []byte) bool {
	if s.uploads == nil {
		return false
	}
	if bytes.HasPrefix(target, s.uploadPrefix) {
		return true
	}
	// The prefix without its last "/" names the collection too (POST /uploads).
	base := s.uploadPrefix[:len(s.uploadPrefix)-1]
	return bytes.HasPrefix(target, base) && (len(target) == len(base) || target[len(base)] == '?')
}

// uploadBody reports whether the request may carry a body: a PATCH or
// POST under the upload prefix.
func (s *Server) uploadBody(h *fasthttp.RequestHeader) bool {
	if s.uploads == nil {
		return false
	}
	m := h.Method()
	return (bytes.Equal(m, strPatch) || bytes.Equal(m, strPost)) && s.uploadPath(h.RequestURI())
}

// uploadRoute names requests under the upload prefix in the access log
// and the request metrics.
var uploadRoute = route{Name: "upload"}
