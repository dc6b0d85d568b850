package proxy

import (
	"time"

	"github.com/valyala/fasthttp"
)

// StatsRecorder receives access counts and download progress. Both calls
// are on the request path, so implementations must not block (the Redis
// recorder aggregates in memory and flushes in the background).
type StatsRecorder interface {
	// Access counts one download request of fileID.
	Access(fileID string)
	// StartTransfer begins tracking one response body; it may return nil.
	StartTransfer(TransferInfo) TransferTracker
}

// TransferInfo describes one response body for progress tracking and the
// download log. Strings must be copies (they outlive the request).
type TransferInfo struct {
	Token       string
	FileID      string
	UserID      string
	Route       string
	ClientIP    string
	CacheStatus string
	Off         int64 // first byte of the file carried; -1 for multipart bodies
	N           int64
	Total       int64
	Start       time.Time
}

// TransferTracker is fed as the body's bytes reach the client.
type TransferTracker interface {
	Delivered(n int64)
	Finish(err error)
}

// startStats counts the access and starts progress tracking for t.
func (s *Server) startStats(t *trackedBody, ctx *fasthttp.RequestCtx, d *download, off, n, size int64) {
	if s.stats == nil {
		return
	}
	s.stats.Access(d.fileID)
	ip := ""
	if a := s.clientAddr(ctx); a.IsValid() {
		ip = a.String()
	}
	tr := s.stats.StartTransfer(TransferInfo{
		Token:       d.grant.Token,
		FileID:      d.fileID,
		UserID:      d.grant.UserID,
		Route:       d.route.Name,
		ClientIP:    ip,
		CacheStatus: string(ctx.Response.Header.PeekBytes(hdrXCache)),
		Off:         off,
		N:           n,
		Total:       size,
		Start:       ctx.Time(),
	})
	if tr != nil {
		t.transfer = tr
	}
}
