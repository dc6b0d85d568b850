package proxy

import (
	"github.com/valyala/fasthttp"

	"github.com/edgeproxy/edgeproxy/internal/stats"
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
// download log. It is the statistics package's type, so the fields and
// their rules are written once; strings must be copies (they outlive the
// request).
type TransferInfo = stats.TransferInfo

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
