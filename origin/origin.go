// Package origin reads objects from the store behind the edge: an S3-compatible
// service such as MinIO, or a local directory. It knows nothing of HTTP clients
// or caching; it turns each store's failures into the sentinel errors below so
// that callers can map them to statuses with errors.Is.
package origin

import (
	"context"
	"errors"
	"io"
	"time"
)

// Info describes one version of an object.
type Info struct {
	// Size is the object's length in bytes.
	Size int64
	// ETag is the entity-tag exactly as it goes on the wire, quotes included
	// (`"9b2cf535f27731c974343645a3985328"`). It is strong: the cache keys
	// chunks on it, so two different contents never share an ETag.
	ETag string
	// LastModified is the object's modification time, UTC, second precision.
	LastModified time.Time
	// ContentType is the stored media type; empty when the store has none.
	ContentType string
}

// Sentinel errors every Store returns (wrapped) so callers can decide statuses.
// The store's own error stays in the chain and in the text, for logs. A
// failure caused by the caller cancelling ctx carries none of them
// (errors.Is(err, context.Canceled) holds instead); an expired ctx deadline
// is ErrTimeout.
var (
	// ErrNotFound: the bucket or the object does not exist.
	ErrNotFound = errors.New("origin: object not found")
	// ErrChanged: Open was given an ETag and the object now has another one.
	ErrChanged = errors.New("origin: object changed")
	// ErrUnavailable: the store could not be reached or answered with a server error.
	ErrUnavailable = errors.New("origin: unavailable")
	// ErrTimeout: the store did not answer within the configured time.
	ErrTimeout = errors.New("origin: timeout")
)

// Store is an object store the edge reads from.
//
// Implementations must be safe for concurrent use.
type Store interface {
	// Stat returns the current version's metadata.
	Stat(ctx context.Context, bucket, key string) (Info, error)
	// Open streams bytes [off, off+n) of the object. When etag is not empty
	// and the object's current ETag differs, Open fails with ErrChanged, so a
	// reader never mixes bytes of two versions. The caller guarantees
	// 0 <= off, n > 0 and off+n <= Size. Closing the reader early releases
	// the underlying connection promptly; ctx cancellation does too.
	Open(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error)
	// Ping reports whether the store is reachable (used by /readyz).
	Ping(ctx context.Context) error
}

// Presigner is implemented by stores that can hand clients a time-limited
// direct URL (the per-route "redirect" mode).
type Presigner interface {
	// PresignGet returns a GET URL valid for ttl. When filename is not empty
	// the URL asks the store to answer with Content-Disposition: attachment.
	PresignGet(ctx context.Context, bucket, key string, ttl time.Duration, filename string) (string, error)
}
