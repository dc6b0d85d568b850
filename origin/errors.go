package origin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/minio/minio-go/v7"
)

// s3Error wraps err, a failure of operation op on bucket/key, so that
// errors.Is finds the sentinel that classify picks while the original error
// (with the store's code, message and request id) stays in the chain and in
// the text for logs:
//
//	origin: stat b/k: origin: object not found: The specified key does not exist.
//
// The caller's own cancellation carries no sentinel: it is not the store's
// fault, and errors.Is(err, context.Canceled) still holds.
func s3Error(op, bucket, key string, err error) error {
	sentinel := classify(err)
	if sentinel == nil {
		return fmt.Errorf("origin: %s %s/%s: %w", op, bucket, key, err)
	}
	return fmt.Errorf("origin: %s %s/%s: %w: %w", op, bucket, key, sentinel, err)
}

// classify maps an error from minio-go or net/http to one of the sentinel
// errors, or to nil for the caller's own cancellation.
//
//   - NoSuchKey, NoSuchBucket, any 404, and names the client library rejects
//     before sending (InvalidBucketName, XMinioInvalidObjectName: such an
//     object cannot exist) -> ErrNotFound.
//   - PreconditionFailed / 412 (If-Match lost) -> ErrChanged. InvalidRange /
//     416 -> ErrChanged too: Open's caller only asks for ranges inside the
//     size it saw, so a 416 means the object has shrunk since.
//   - context.DeadlineExceeded, or any net.Error that timed out (dial,
//     response headers) -> ErrTimeout.
//   - AccessDenied and every other 4xx -> ErrUnavailable: wrong credentials
//     or policy are a misconfiguration of the edge that its client cannot
//     fix, so they must read as "origin broken" (502), never as "no such
//     object" (404) that a CDN in front would cache.
//   - 5xx, SlowDown, connection refused or reset, and any other network or
//     protocol failure -> ErrUnavailable.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		return classifyResponse(resp)
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ErrTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ErrTimeout
	}
	return ErrUnavailable
}

func classifyResponse(resp minio.ErrorResponse) error {
	switch resp.Code {
	case minio.NoSuchKey, minio.NoSuchBucket, "NoSuchVersion",
		minio.InvalidBucketName, minio.XMinioInvalidObjectName:
		return ErrNotFound
	case minio.PreconditionFailed, minio.InvalidRange:
		return ErrChanged
	case minio.AccessDenied:
		return ErrUnavailable
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusPreconditionFailed, http.StatusRequestedRangeNotSatisfiable:
		return ErrChanged
	}
	return ErrUnavailable
}

// retryable reports whether err is worth another attempt: the store or the
// path to it failed in a way that a later attempt may not (refused or reset
// connections, 5xx, SlowDown). Answers about the object (404, 412, any other
// 4xx), timeouts (a retry would multiply the wait the caller already paid)
// and cancellation are final.
func retryable(err error) bool {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		// SlowDown, InternalError and ServiceUnavailable all come as 5xx;
		// an error the client library made up has no status and is final.
		return resp.StatusCode >= 500
	}
	return classify(err) == ErrUnavailable
}
