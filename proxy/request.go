package proxy

import (
	"bytes"
	"net/http"

	"github.com/valyala/fasthttp"

	"github.com/edgeproxy/edgeproxy/internal/httpsyntax"
)

// The front door's own request checks: what fasthttp's parser lets through
// but an edge must refuse. They run first in Handler, on the parsed request
// line and on the exact wire bytes of the header block (fasthttp has been
// told to read no body, see headerReceived), and every refusal closes the
// connection, lingering (listener.go): after a framing
// error the next byte on the connection may be a smuggled request.
// docs/design.md "Request parsing" lists what fasthttp decides before them.

// errBadHost answers a Host header that is not a host (RFC 9112 3.2), such
// as "user@host". It is its own value so that the access log can leave the
// offending Host out: userinfo may be a password.
var errBadHost = newAPIError(http.StatusBadRequest, "bad_host", "the Host header is not a valid host")

var (
	strTransferEncoding = []byte("Transfer-Encoding")
	strContentLength    = []byte("Content-Length")
	strHost             = []byte("Host")
	strChunked          = []byte("chunked")
	strSchemeSep        = []byte("://")
)

// checkRequest returns the answer to a request the front door refuses, or
// nil. It allocates nothing.
func checkRequest(h *fasthttp.RequestHeader) *apiError { return checkRequestBody(h, false) }

// checkRequestBody is checkRequest for a request that may carry a body
// (bodyOK: an upload, see Server.uploadBody) or not.
func checkRequestBody(h *fasthttp.RequestHeader, bodyOK bool) *apiError {
	// RFC 9110 2.5 and 15.6.6: fasthttp accepts any "HTTP/d.d" and would
	// answer HTTP/2.0 or HTTP/9.9 as 1.x. A higher minor version of 1 is
	// served as 1.1.
	if p := h.Protocol(); len(p) != len("HTTP/1.1") || p[5] != '1' {
		return errVersion
	}
	if e := checkBlock(h.RawHeaders(), bodyOK); e != nil {
		return e
	}
	// RFC 9112 3.2: a target with userinfo is invalid; RFC 9110 4.2.4 says
	// why (it is a phishing tool and may carry a password).
	if hasUserinfo(h.RequestURI()) {
		return errBadRequest
	}
	return nil
}

// checkHeaderBlock checks the header block as received (field lines, each
// ending in CRLF, then the empty line), stricter than fasthttp:
//
//   - a bare LF or bare CR anywhere is errBadRequest (RFC 9112 2.2 allows a
//     bare LF as a line end, but a front proxy that does not would frame the
//     request differently: a Content-Length after a bare LF is a smuggling
//     vector);
//   - a field name that is not a token (a space in "Content Length", a
//     leading space of an obs-fold line) is errBadRequest (RFC 9112 5.1,
//     5.2 allows rejecting obs-fold);
//   - a field value with control characters is errBadRequest (RFC 9110 5.5);
//   - a Host that is not uri-host [":" port] (RFC 9110 7.2), userinfo
//     included, is errBadHost;
//   - any Transfer-Encoding (identity, which RFC 9112 6.3 says is a 400,
//     chunked, anything) and any Content-Length other than 0 are
//     errBodyNotAllowed: downloads take no request body.
//
// Malformed beats body framing. An empty block (no fields) is valid.
func checkHeaderBlock(b []byte) *apiError { return checkBlock(b, false) }

// checkBlock is checkHeaderBlock, or with bodyOK the same checks except
// that a body is allowed when its framing is unambiguous (RFC 9112 6.1,
// 6.3): one Transfer-Encoding field whose value is exactly "chunked", or
// one Content-Length of digits only, never both (a smuggling vector
// whichever one a front proxy believes); anything else is errBadRequest.
func checkBlock(b []byte, bodyOK bool) *apiError {
	framing := false
	var te, cl int
	badFraming := false
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 1 || b[i-1] != '\r' {
			return errBadRequest
		}
		line := b[:i-1]
		b = b[i+1:]
		if len(line) == 0 {
			if len(b) > 0 { // the block ends at its empty line
				return errBadRequest
			}
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 1 || !isToken(line[:colon]) {
			return errBadRequest
		}
		name, value := line[:colon], httpsyntax.TrimOWS(line[colon+1:])
		if !isFieldValue(value) {
			return errBadRequest
		}
		switch {
		case bytes.EqualFold(name, strTransferEncoding):
			framing = true
			te++
			badFraming = badFraming || !bytes.EqualFold(value, strChunked)
		case bytes.EqualFold(name, strContentLength):
			framing = framing || !isZero(value)
			cl++
			badFraming = badFraming || !isDigits(value)
		case bytes.EqualFold(name, strHost):
			if !isHost(value) {
				return errBadHost
			}
		}
	}
	if bodyOK {
		if badFraming || te > 1 || cl > 1 || te+cl > 1 {
			return errBadRequest
		}
		return nil
	}
	if framing {
		return errBodyNotAllowed
	}
	return nil
}

// hasUserinfo reports whether an absolute-form target has userinfo in its
// authority ("http://user@host/..."). Origin-form targets ("/..."), which
// fasthttp never reads an authority from, are not looked into.
func hasUserinfo(target []byte) bool {
	if len(target) == 0 || target[0] == '/' {
		return false
	}
	i := bytes.Index(target, strSchemeSep)
	if i < 0 {
		return false
	}
	auth := target[i+len(strSchemeSep):]
	for j, c := range auth {
		if c == '/' || c == '?' || c == '#' {
			auth = auth[:j]
			break
		}
	}
	return bytes.IndexByte(auth, '@') >= 0
}

// Byte classes of RFC 9110 5.5 (field-vchar, obs-text, SP, HTAB) and RFC
// 3986 3.2.2 (reg-name, IP-literal and port characters); tchar is
// httpsyntax.IsTchar.
var fieldValueByte, hostByte [256]bool

func init() {
	for c := 0; c < 256; c++ {
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		fieldValueByte[c] = c == '\t' || c >= ' ' && c != 0x7f
		hostByte[c] = alnum || bytes.IndexByte([]byte("-._~%!$&'()*+,;=:[]"), byte(c)) >= 0
	}
}

func isToken(b []byte) bool {
	for _, c := range b {
		if !httpsyntax.IsTchar(c) {
			return false
		}
	}
	return len(b) > 0
}

func isFieldValue(b []byte) bool {
	for _, c := range b {
		if !fieldValueByte[c] {
			return false
		}
	}
	return true
}

// isHost checks the characters of a Host value; the routing table decides
// whether it is a host we serve. Empty is left to fasthttp (required in
// HTTP/1.1, optional in 1.0).
func isHost(b []byte) bool {
	for _, c := range b {
		if !hostByte[c] {
			return false
		}
	}
	return true
}

// isDigits reports whether b is a non-empty run of ASCII digits.
func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// isZero reports whether a Content-Length value is a number equal to 0.
func isZero(b []byte) bool {
	for _, c := range b {
		if c != '0' {
			return false
		}
	}
	return len(b) > 0
}
