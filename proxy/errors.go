package proxy

import (
	"context"
	"errors"
	"net/http"

	"github.com/valyala/fasthttp"

	"github.com/edgeproxy/edgeproxy/origin"
)

// apiError is an error answer: a status and a stable machine-readable code.
// Clients see only the code and the fixed message, never an internal
// error's text (which may name buckets, hosts or tokens); logs get the rest.
type apiError struct {
	status  int
	code    string
	message string
	// body is the pre-rendered JSON, so writing an error allocates nothing.
	body []byte
}

func newAPIError(status int, code, message string) *apiError {
	e := &apiError{status: status, code: code, message: message}
	e.body = []byte(`{"code":"` + code + `","message":"` + message + `"}` + "\n")
	return e
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

// The client-visible errors. Codes are part of the API: never rename one.
var (
	errNotFound         = newAPIError(http.StatusNotFound, "not_found", "no such file")
	errUnknownHost      = newAPIError(http.StatusNotFound, "unknown_host", "this host is not served here")
	errBadKey           = newAPIError(http.StatusBadRequest, "bad_path", "the path is not a valid object key")
	errMethod           = newAPIError(http.StatusMethodNotAllowed, "method_not_allowed", "only GET and HEAD are allowed")
	errPrecondition     = newAPIError(http.StatusPreconditionFailed, "precondition_failed", "a precondition header did not match")
	errUnsatisfiable    = newAPIError(http.StatusRequestedRangeNotSatisfiable, "range_not_satisfiable", "no requested range overlaps the file")
	errOriginDown       = newAPIError(http.StatusBadGateway, "origin_unavailable", "the origin could not be reached")
	errOriginTimeout    = newAPIError(http.StatusGatewayTimeout, "origin_timeout", "the origin did not answer in time")
	errOriginChanged    = newAPIError(http.StatusServiceUnavailable, "origin_changing", "the file changed while being read; retry")
	errRedirectDisabled = newAPIError(http.StatusInternalServerError, "redirect_unsupported", "this origin cannot presign URLs")
	errInternal         = newAPIError(http.StatusInternalServerError, "internal", "internal error")
	errNotReady         = newAPIError(http.StatusServiceUnavailable, "not_ready", "the origin is not reachable")
)

// errorFor maps an error from the cache, origin or another component to
// the answer the client gets. It is the one place statuses are decided.
func errorFor(err error) *apiError {
	var ae *apiError
	if e, ok := accessError(err); ok {
		return e
	}
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, origin.ErrNotFound):
		return errNotFound
	case errors.Is(err, origin.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return errOriginTimeout
	case errors.Is(err, origin.ErrUnavailable):
		return errOriginDown
	case errors.Is(err, origin.ErrChanged):
		return errOriginChanged
	}
	return errInternal
}

var (
	hdrContentTypeJSON = []byte("application/json")
	hdrNoStore         = []byte("no-store")
)

// writeError sends e as the whole response, replacing anything the handler
// had set so far (validators of a representation that is not being sent).
func writeError(ctx *fasthttp.RequestCtx, e *apiError) {
	ctx.Response.ResetBody()
	ctx.Response.Header.Reset()
	ctx.Response.Header.SetStatusCode(e.status)
	ctx.Response.Header.SetContentTypeBytes(hdrContentTypeJSON)
	ctx.Response.Header.SetCanonical(hdrCacheControl, hdrNoStore)
	ctx.Response.SetBodyRaw(e.body)
}

// Errors fasthttp reports before our handler runs.
var (
	errBadRequest     = newAPIError(http.StatusBadRequest, "bad_request", "the request could not be parsed")
	errHeaderTooLarge = newAPIError(http.StatusRequestHeaderFieldsTooLarge, "headers_too_large", "the request headers are too large")
	errBodyTooLarge   = newAPIError(http.StatusRequestEntityTooLarge, "body_too_large", "requests carry no body here")
	errRequestTimeout = newAPIError(http.StatusRequestTimeout, "request_timeout", "the request was not received in time")
)

// Errors of the front door's own request checks (request.go); each one
// closes the connection.
var (
	errBodyNotAllowed = newAPIError(http.StatusBadRequest, "body_not_allowed", "requests carry no body here")
	errVersion        = newAPIError(http.StatusHTTPVersionNotSupported, "version_not_supported", "only HTTP/1.x is served here")
)
