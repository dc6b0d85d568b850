package proxy

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// newHTTPServer returns the fasthttp server for the download listener,
// with the limits that keep slow or hostile clients from holding resources:
// a header read timeout (slowloris), an idle timeout, a send timeout, a
// maximum header size (larger requests get 431), no request bodies, and a
// bound on connections. Serve also wraps the listener (listener.go).
func (s *Server) newHTTPServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:        s.Handler,
		Name:           "edgeproxy",
		ReadTimeout:    s.cfg.ReadTimeout,
		IdleTimeout:    s.cfg.IdleTimeout,
		WriteTimeout:   s.cfg.SendTimeout,
		ReadBufferSize: s.cfg.MaxHeaderBytes,
		// Headers plus a small body fit one buffer: one write per small hit.
		WriteBufferSize:    s.cfg.WriteBuffer,
		MaxRequestBodySize: 4 << 10,
		// Upload bodies are read by the handler as they arrive, never
		// whole; downloads have none (headerReceived).
		StreamRequestBody: true,
		// Reads no body and sends no 100 (Continue): see headerReceived.
		HeaderReceived:               s.headerReceived,
		Concurrency:                  s.cfg.MaxConns,
		CloseOnShutdown:              true,
		NoDefaultContentType:         true,
		TCPKeepalive:                 true,
		DisablePreParseMultipartForm: true,
		ErrorHandler:                 s.connError,
		// fasthttp's own log lines would otherwise quote whole requests,
		// tokens in query strings included; fasthttpLogger redacts what
		// they still quote.
		SecureErrorLogMessage: true,
		Logger:                fasthttpLogger{s.log},
	}
}

// connError answers requests fasthttp could not parse. fasthttp closes the
// connection after it, with input possibly unread: the close lingers.
func (s *Server) connError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.As(err, &small), errors.Is(err, fasthttp.ErrSmallReadBuffer):
		writeError(ctx, errHeaderTooLarge)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeError(ctx, errBodyTooLarge)
	case errors.Is(err, os.ErrDeadlineExceeded):
		// ReadTimeout passed before the request was complete (RFC 9110 15.5.9).
		writeError(ctx, errRequestTimeout)
	default:
		writeError(ctx, errBadRequest)
	}
	lingerOnClose(ctx.Conn())
}

var hdrExpect = []byte("Expect")

// headerReceived runs when fasthttp has parsed the header, before it reads
// a body or sends 100 (Continue). Downloads take no body, and Handler
// refuses any body framing, judged on the header block as received
// (checkRequest). Here fasthttp is told that there is no body, so it reads
// none (not a chunk extension of any size, not a Content-Length whose body
// never comes) and the handler answers at once; and the expectation is
// dropped, so no download gets 100 (Continue): RFC 9110 10.1.1 lets a
// server omit it when there is no content, and a request that announces
// content gets a final 400 instead. fasthttp's ContinueHandler and
// ExpectHandler cannot do this: they send 100 or skip the handler.
//
// Uploads (Deps.Uploads) are the exception: their PATCH and POST bodies are
// left to fasthttp, which streams them (StreamRequestBody: it reads at most
// 8 KiB ahead, and MaxRequestBodySize does not apply to a streamed body),
// and it answers their 100-continue.
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if s.uploadBody(h) {
		return fasthttp.RequestConfig{}
	}
	if cl := h.ContentLength(); cl != 0 && cl != -2 { // -2: no framing at all
		h.SetContentLength(0)
	}
	if len(h.PeekBytes(hdrExpect)) > 0 {
		h.DelBytes(hdrExpect)
	}
	return fasthttp.RequestConfig{}
}

// reject answers a request checkRequest refused and closes the connection,
// lingering: the rest of the request may still be arriving. Handler logs it.
func (s *Server) reject(ctx *fasthttp.RequestCtx, e *apiError) {
	writeError(ctx, e)
	ctx.SetConnectionClose()
	lingerOnClose(ctx.Conn())
	if e == errBadHost {
		ctx.URI().SetHostBytes(nil) // keep userinfo out of the access log
	}
}

// Serve accepts connections on ln until ctx is cancelled, then stops
// accepting and lets in-flight responses finish for up to DrainTimeout
// before closing the connections that are left.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ln = s.clientIP.Listener(ln, s.cfg.ReadTimeout) // PROXY protocol, when configured
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	ln = s.wrapTLS(wctx, ln) // inside the PROXY header, which comes in clear
	srv := s.newHTTPServer()
	conns := &connSet{conns: make(map[net.Conn]struct{}), open: &s.open}
	srv.ConnState = conns.track
	errc := make(chan error, 1)
	fl := newFrontListener(ln) // outermost: see frontListener
	defer fl.shutdown()
	go func() { errc <- srv.Serve(fl) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	dctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	err := srv.ShutdownWithContext(dctx)
	if errors.Is(err, context.DeadlineExceeded) {
		n := conns.closeAll()
		s.log.Warn("drain timeout: closed remaining connections", "connections", n, "drain_timeout", s.cfg.DrainTimeout)
		err = nil
	}
	// fasthttp's Shutdown closes only the listeners its Serve has already
	// registered: cancelled before that goroutine ran, Serve would start
	// accepting afterwards and never return. Closing the listener here ends
	// it in either case.
	fl.Close()
	<-errc
	return err
}

// connSet remembers open connections (through fasthttp's ConnState hook)
// so that a drain that runs out of time can close them: fasthttp's own
// shutdown only waits.
type connSet struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	open  *atomic.Int64 // Server.open, shared by every Serve of the Server
}

func (cs *connSet) track(c net.Conn, st fasthttp.ConnState) {
	cs.mu.Lock()
	switch st {
	case fasthttp.StateNew:
		cs.conns[c] = struct{}{}
		cs.open.Add(1)
	case fasthttp.StateClosed, fasthttp.StateHijacked:
		if _, ok := cs.conns[c]; ok {
			delete(cs.conns, c)
			cs.open.Add(-1)
		}
	}
	cs.mu.Unlock()
}

// ConnOverhead is what an open download connection holds beside its read
// buffer (MaxHeaderBytes) and write buffer (WriteBuffer), counted as the
// Go runtime counts memory against its soft limit: the serving
// goroutine's stack (8 KiB, grown to 16 KiB by a deep request), fasthttp's
// RequestCtx (about 2 KiB touched), the socket's netFD and our frontConn,
// and the tracking maps' entries. TestConnMemoryCoversIdleConnections
// measures it.
const ConnOverhead = 16 << 10

// ConnMemory is the memory an open connection costs the process, idle or
// between chunks of a response: its two buffers and ConnOverhead. What a
// response in flight holds beyond that (chunks, disk block buffers) is the
// cache's, bounded by cache.memory_bytes and cache.fill_memory.
func (s *Server) ConnMemory() int64 {
	return int64(s.cfg.MaxHeaderBytes) + int64(s.cfg.WriteBuffer) + ConnOverhead
}

// OpenConns is the number of download connections open now, on every
// listener Serve runs. It is at most MaxConns per listener.
func (s *Server) OpenConns() int64 { return s.open.Load() }

func (cs *connSet) closeAll() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for c := range cs.conns {
		c.Close()
	}
	return len(cs.conns)
}
