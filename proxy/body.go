package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/edgeproxy/edgeproxy/limiter"
)

// maxWriteSlice bounds one write to the client, so the send timeout is a
// limit on progress (like nginx send_timeout) and not on a whole chunk:
// a client must accept 256 KiB per SendTimeout to keep the connection.
const maxWriteSlice = 256 << 10

// trackedBody wraps a response body stream: it counts the bytes the client
// accepted, renews the connection's write deadline before each write, and
// writes the access log line when fasthttp closes it at the end of the
// response (or when the client went away).
//
// It keeps the wrapped reader's io.WriterTo, so cached chunks still go to
// the socket without a copy. Instances are pooled: one per streamed response.
type trackedBody struct {
	r       io.ReadCloser
	s       *Server
	ctx     *fasthttp.RequestCtx // valid until Close: fasthttp closes the stream before releasing ctx
	conn    net.Conn
	route   string
	timeout time.Duration
	n       int64
	err     error
	dw      deadlineWriter
	// renewed is set once the first write went out under the deadline
	// fasthttp set for the response (WriteTimeout = SendTimeout); later
	// writes renew it, so a small body costs no extra deadline update.
	renewed bool
	// lease is the limiter's admission, released after the body closes.
	lease *limiter.Lease
	// transfer receives progress; nil when statistics are off.
	transfer TransferTracker
	// parts locates the file bytes of a multipart body (nil otherwise):
	// only they are reported to transfer, never the part headers.
	parts []partData
}

var trackedBodyPool = sync.Pool{New: func() any { return new(trackedBody) }}

// track wraps rc for the response of ctx.
func (s *Server) track(ctx *fasthttp.RequestCtx, route string, rc io.ReadCloser) *trackedBody {
	t := trackedBodyPool.Get().(*trackedBody)
	*t = trackedBody{r: rc, s: s, ctx: ctx, conn: ctx.Conn(), route: route, timeout: s.cfg.SendTimeout}
	t.dw.t = t
	s.metrics.active.Add(1)
	return t
}

// renewDeadline renews the write deadline before a slice of the body is
// written, except before the first (see renewed).
func (t *trackedBody) renewDeadline() {
	if !t.renewed {
		t.renewed = true
		return
	}
	if t.conn != nil && t.timeout > 0 {
		t.conn.SetWriteDeadline(time.Now().Add(t.timeout))
	}
}

// Read serves fasthttp's copy loop when the stream has no WriterTo.
func (t *trackedBody) Read(p []byte) (int, error) {
	if len(p) > maxWriteSlice {
		p = p[:maxWriteSlice]
	}
	n, err := t.r.Read(p)
	t.advance(n)
	if err != nil && err != io.EOF {
		t.err = err
	}
	t.renewDeadline()
	return n, err
}

// advance counts n more body bytes handed to the connection and reports
// the file bytes among them. "Delivered" means accepted by the
// connection's writer: bytes still in its buffer (a few KiB) or in the
// kernel's socket buffer when the connection breaks cannot be told apart.
func (t *trackedBody) advance(n int) {
	if n <= 0 {
		return
	}
	from := t.n
	t.n += int64(n)
	if t.transfer == nil {
		return
	}
	k := int64(n)
	if t.parts != nil {
		k = fileBytesIn(t.parts, from, t.n)
	}
	if k > 0 {
		t.transfer.Delivered(k)
	}
}

// WriteTo lets the wrapped stream write straight to the connection. On a
// plain TCP connection it also offers the stream an io.ReaderFrom
// (fileWriter), through which the cache sends verified disk-tier bytes with
// sendfile.
func (t *trackedBody) WriteTo(w io.Writer) (int64, error) {
	t.dw.w = w
	var n int64
	var err error
	if wt, ok := t.r.(io.WriterTo); ok {
		var dst io.Writer = &t.dw
		if _, ok := w.(io.ReaderFrom); ok && canSendFile(t.conn) {
			dst = (*fileWriter)(&t.dw)
		}
		n, err = wt.WriteTo(dst)
	} else {
		n, err = io.Copy(&t.dw, onlyReader{t.r})
	}
	t.dw.w = nil
	// A header held for the first write must not stay behind when the
	// body wrote nothing (an error before its first byte).
	if herr := sendHeld(t.conn); err == nil {
		err = herr
	}
	if err != nil {
		t.err = err
	}
	return n, err
}

// Close closes the wrapped stream and logs the finished transfer.
func (t *trackedBody) Close() error {
	sendHeld(t.conn) // a hold no body write used (the copy never ran)
	err := t.r.Close()
	t.lease.Release()
	t.s.metrics.active.Add(-1)
	t.s.metrics.bytes.Add(t.n)
	t.s.metrics.count(t.ctx, t.route)
	if t.transfer != nil {
		if t.err == nil && t.n < int64(t.ctx.Response.Header.ContentLength()) {
			t.err = io.ErrUnexpectedEOF // closed before the end: the client went away
		}
		t.transfer.Finish(t.err)
	}
	if t.s.accessLog || t.err != nil {
		t.s.logTransfer(t.ctx, t.route, t.n, t.err)
	}
	*t = trackedBody{}
	trackedBodyPool.Put(t)
	return err
}

// deadlineWriter splits writes into slices of at most maxWriteSlice and
// renews the write deadline before each.
type deadlineWriter struct {
	t  *trackedBody
	w  io.Writer
	lr io.LimitedReader // fileWriter's current slice
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		chunk := p
		if len(chunk) > maxWriteSlice {
			chunk = chunk[:maxWriteSlice]
		}
		d.t.renewDeadline()
		n, err := d.w.Write(chunk)
		written += n
		d.t.advance(n)
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// fileWriter is a deadlineWriter that also takes a reader through
// ReadFrom, in the same slices with the same deadline renewals and
// progress counting, and passes each slice to the connection's writer's
// ReadFrom (fasthttp's body writer, its bufio.Writer, then frontConn), so
// that a file span from the cache reaches frontConn.ReadFrom and goes out
// with sendfile. Only used when w is an io.ReaderFrom.
type fileWriter deadlineWriter

func (f *fileWriter) Write(p []byte) (int, error) { return (*deadlineWriter)(f).Write(p) }

// ReadFrom copies r to the connection until r ends or a write fails.
func (f *fileWriter) ReadFrom(r io.Reader) (int64, error) {
	rf := f.w.(io.ReaderFrom)
	var total int64
	for {
		f.t.renewDeadline()
		f.lr = io.LimitedReader{R: r, N: maxWriteSlice}
		n, err := rf.ReadFrom(&f.lr)
		ended := f.lr.N > 0
		f.lr = io.LimitedReader{}
		total += n
		f.t.advance(int(n))
		if err != nil || ended {
			return total, err
		}
	}
}

// onlyReader hides a reader's other methods from io.Copy.
type onlyReader struct{ io.Reader }

// logTransfer writes the access log line of a streamed response.
func (s *Server) logTransfer(ctx *fasthttp.RequestCtx, route string, n int64, err error) {
	level := slog.LevelInfo
	status := ctx.Response.StatusCode()
	var errText string
	if err != nil {
		level = slog.LevelWarn
		errText = err.Error()
		if isClientGone(err) {
			errText = "client closed connection"
		}
	}
	s.log.LogAttrs(context.Background(), level, "request",
		slog.Uint64("id", ctx.ID()),
		slog.String("method", string(ctx.Method())),
		slog.String("host", string(ctx.Host())),
		slog.String("path", string(ctx.Request.URI().PathOriginal())),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Int64("bytes", n),
		slog.Duration("duration", time.Since(ctx.Time())),
		slog.String("cache", string(ctx.Response.Header.PeekBytes(hdrXCache))),
		slog.String("remote", s.clientAddr(ctx).String()),
		slog.String("error", errText),
	)
}

// logRequest logs a response that has no streamed body (errors, HEAD,
// 304, redirects) right away.
func (s *Server) logRequest(ctx *fasthttp.RequestCtx, route string, err error) {
	s.metrics.count(ctx, route)
	if !s.accessLog && err == nil {
		return
	}
	if ae := (*apiError)(nil); err != nil && errors.As(err, &ae) && ae.status < 500 && !s.accessLog {
		return // a client mistake, not worth a line when access logs are off
	}
	var n int64
	if !ctx.IsHead() {
		n = int64(len(ctx.Response.Body()))
	}
	s.logTransfer(ctx, route, n, err)
}

// isClientGone reports whether err means the client hung up.
func isClientGone(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe)
}

// s2b views s as bytes without copying; the result must not be modified.
func s2b(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
