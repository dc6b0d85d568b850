package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"

	"github.com/valyala/fasthttp"
)

// NewHTTPServer returns the fasthttp server for the download listener,
// with the limits that keep slow or hostile clients from holding resources:
// a header read timeout (slowloris), an idle timeout, a send timeout, a
// maximum header size (larger requests get 431), no request bodies, and a
// bound on connections.
func (s *Server) NewHTTPServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:        s.Handler,
		Name:           "edgeproxy",
		ReadTimeout:    s.cfg.ReadTimeout,
		IdleTimeout:    s.cfg.IdleTimeout,
		WriteTimeout:   s.cfg.SendTimeout,
		ReadBufferSize: s.cfg.MaxHeaderBytes,
		// Headers plus a small body fit one buffer: one write per small hit.
		WriteBufferSize:              s.cfg.WriteBuffer,
		MaxRequestBodySize:           4 << 10,
		Concurrency:                  s.cfg.MaxConns,
		CloseOnShutdown:              true,
		NoDefaultContentType:         true,
		TCPKeepalive:                 true,
		DisablePreParseMultipartForm: true,
		ErrorHandler:                 s.connError,
		// fasthttp's own log lines would otherwise quote whole requests,
		// tokens in query strings included.
		SecureErrorLogMessage: true,
		Logger:                slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// connError answers requests fasthttp could not parse.
func (s *Server) connError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.As(err, &small), errors.Is(err, fasthttp.ErrSmallReadBuffer):
		writeError(ctx, errHeaderTooLarge)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeError(ctx, errBodyTooLarge)
	default:
		writeError(ctx, errBadRequest)
	}
}

// Serve accepts connections on ln until ctx is cancelled, then stops
// accepting and lets in-flight responses finish for up to DrainTimeout
// before closing the connections that are left.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ln = s.clientIP.Listener(ln, s.cfg.ReadTimeout) // PROXY protocol, when configured
	srv := s.NewHTTPServer()
	conns := &connSet{conns: make(map[net.Conn]struct{})}
	srv.ConnState = conns.track
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
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
	<-errc
	return err
}

// connSet remembers open connections (through fasthttp's ConnState hook)
// so that a drain that runs out of time can close them: fasthttp's own
// shutdown only waits.
type connSet struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (cs *connSet) track(c net.Conn, st fasthttp.ConnState) {
	cs.mu.Lock()
	switch st {
	case fasthttp.StateNew:
		cs.conns[c] = struct{}{}
	case fasthttp.StateClosed, fasthttp.StateHijacked:
		delete(cs.conns, c)
	}
	cs.mu.Unlock()
}

func (cs *connSet) closeAll() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for c := range cs.conns {
		c.Close()
	}
	return len(cs.conns)
}
