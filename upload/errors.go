package upload

import (
	"net/http"
	"strconv"

	"github.com/valyala/fasthttp"
)

// apiError is an error answer: a status and a stable code, the shape of the
// proxy's own error bodies. Codes are part of the API: never rename one.
type apiError struct {
	status  int
	code    string
	message string
	body    []byte
}

func newError(status int, code, message string) *apiError {
	return &apiError{status: status, code: code, message: message,
		body: []byte(`{"code":"` + code + `","message":"` + message + `"}` + "\n")}
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

// statusChecksumMismatch is tus's 460 Checksum Mismatch.
const statusChecksumMismatch = 460

var (
	errVersion       = newError(http.StatusPreconditionFailed, "tus_version", "Tus-Resumable must be 1.0.0")
	errMethod        = newError(http.StatusMethodNotAllowed, "method_not_allowed", "not an upload method")
	errNotFound      = newError(http.StatusNotFound, "upload_not_found", "no such upload (never created, terminated or expired)")
	errToken         = newError(http.StatusUnauthorized, "upload_token_invalid", "a valid upload token is required")
	errTokenScope    = newError(http.StatusForbidden, "upload_token_scope", "the token does not allow this upload")
	errLength        = newError(http.StatusBadRequest, "bad_upload_length", "Upload-Length is missing or malformed")
	errOffsetHeader  = newError(http.StatusBadRequest, "bad_upload_offset", "Upload-Offset is missing or malformed")
	errOffset        = newError(http.StatusConflict, "offset_mismatch", "Upload-Offset is not the upload's offset")
	errContentType   = newError(http.StatusUnsupportedMediaType, "bad_content_type", "Content-Type must be application/offset+octet-stream")
	errTooLarge      = newError(http.StatusRequestEntityTooLarge, "upload_too_large", "the upload exceeds the maximum size")
	errBeyondLength  = newError(http.StatusRequestEntityTooLarge, "beyond_length", "the body goes past Upload-Length")
	errMetadataBad   = newError(http.StatusBadRequest, "bad_metadata", "Upload-Metadata is malformed or names a bad key")
	errChecksumBad   = newError(http.StatusBadRequest, "bad_checksum", "Upload-Checksum is malformed or its algorithm unsupported")
	errChecksumLarge = newError(http.StatusRequestEntityTooLarge, "checksum_chunk_too_large", "a checksummed PATCH may carry at most upload.part_size bytes")
	errChecksum      = newError(statusChecksumMismatch, "checksum_mismatch", "the body does not match Upload-Checksum; nothing was kept")
	errFileChecksum  = newError(statusChecksumMismatch, "sha256_mismatch", "the file does not match its declared sha256; the upload is discarded")
	errConcatBad     = newError(http.StatusBadRequest, "bad_concat", "Upload-Concat is malformed or names unusable partial uploads")
	errFinalPatch    = newError(http.StatusForbidden, "final_upload", "a final upload takes no PATCH")
	errLocked        = newError(http.StatusLocked, "upload_locked", "another request is writing this upload; retry")
	errBusy          = newError(http.StatusServiceUnavailable, "uploads_busy", "this node serves its maximum of uploads; retry")
	errStore         = newError(http.StatusBadGateway, "origin_unavailable", "the object store failed; retry")
	errState         = newError(http.StatusServiceUnavailable, "upload_state_unavailable", "upload state could not be read or written; retry")
	errInternal      = newError(http.StatusInternalServerError, "internal", "internal error")
)

// writeError sends e as the whole response, with the tus headers every
// response carries.
func writeError(ctx *fasthttp.RequestCtx, e *apiError) {
	ctx.Response.ResetBody()
	ctx.Response.SetStatusCode(e.status)
	ctx.Response.Header.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("Tus-Resumable", tusVersion)
	if e == errVersion {
		ctx.Response.Header.Set("Tus-Version", tusVersion)
	}
	ctx.Response.SetBody(e.body)
}

// retryAfter adds Retry-After, in whole seconds, at least 1.
func retryAfter(ctx *fasthttp.RequestCtx, secs int) {
	if secs < 1 {
		secs = 1
	}
	ctx.Response.Header.Set("Retry-After", strconv.Itoa(secs))
}
