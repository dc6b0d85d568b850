package origin

import (
	"context"

	"github.com/minio/minio-go/v7"
)

// Do runs op, one S3 call made through the client it is given, under this
// store's retry policy and pool, so that writers (the upload endpoint)
// get what Stat and Open get instead of a retry loop of their own:
//
//   - op is tried again only after a transient failure (retryable: refused
//     or reset connections, a body cut short, 5xx, SlowDown), at most
//     S3Config.Retries times. Answers about the request (403 AccessDenied,
//     404 NoSuchUpload, any other 4xx), timeouts and errors minio-go made
//     up before sending are final at once. A 404 while the pool has just
//     seen a node fail is confirmed once on another node, as for reads.
//   - A retry goes at once to an endpoint this call has not tried; only
//     when every endpoint was tried does the next one wait RetryBackoff,
//     doubled each time and jittered.
//   - Each attempt's outcome counts for its endpoint's health (passive
//     ejection), except for its duration: an attempt that sends a body
//     takes as long as the body does, which says nothing of the node, so
//     SlowThreshold does not apply.
//   - ctx ending stops the retries at once, also in the middle of a
//     back-off; op's own calls should take ctx (or one derived from it)
//     so that the attempt in progress ends too.
//
// op may run several times, each time with another endpoint's client, so
// it must build everything it consumes afresh on each call: a request
// body in particular (minio-go's own retries are off because seeking a
// body back races with the transport still reading it). Do returns op's
// last error unwrapped, so that minio.ToErrorResponse still reads the
// store's code; after ctx ended it returns the store's last answer, or
// ctx's error when there was none.
func (s *S3) Do(ctx context.Context, op func(*minio.Core) error) error {
	return s.pool.doFrom(ctx, s.retry, 0, 0, func(e *endpoint) error { return op(e.core) })
}
