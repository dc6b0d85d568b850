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
	N           int64 // bytes of the file carried (for multipart, the parts' total)
	Total       int64
	Start       time.Time
	// Parts are a multipart body's file ranges {off, len} in part order;
	// Delivered then counts the file bytes of the parts, never their headers.
	Parts [][2]int64
}

// TransferTracker is fed as the body's bytes reach the client.
type TransferTracker interface {
	// Delivered adds n file bytes accepted by the connection: the next n of
	// [Off, Off+N), or of Parts in order. Bytes the client never accepted
	// (a response cut short) are never reported.
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
	var parts [][2]int64
	if d.parts != nil {
		parts = make([][2]int64, len(d.parts))
		n = 0
		for i, p := range d.parts {
			parts[i] = [2]int64{p.span.Start, p.span.Length}
			n += p.span.Length
		}
		off = -1
		t.parts = d.parts
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
		Parts:       parts,
	})
	if tr != nil {
		t.transfer = tr
	}
}
