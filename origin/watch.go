package origin

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
)

// A node that dies (a crash, SIGKILL, a power cut of its process) closes
// every connection the edge holds to it, idle ones included, and the
// transport's reader sees that at once. Live nodes of a distributed MinIO
// can answer NoSuchKey for an existing object within milliseconds of such
// a death, before any request of ours has failed on the dead node, so the
// pool also learns of deaths from the connections: a connection closed by
// the peer marks its endpoint suspect (404s are doubted, see doFrom) until
// an active check of it, started at once, answers. A node that merely
// closes an idle connection passes that check within a round trip; one
// that died fails it and counts as trouble like a failed request.

// watchedConn reports a close by the peer (EOF or reset on Read before we
// closed it ourselves).
type watchedConn struct {
	net.Conn
	closed     atomic.Bool
	peerClosed func()
}

func (c *watchedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && !c.closed.Load() && (err == io.EOF || errors.Is(err, syscall.ECONNRESET)) {
		c.peerClosed()
	}
	return n, err
}

func (c *watchedConn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

// watchDials wraps dial so that every connection to an endpoint of p
// reports a close by the peer to p.peerClosed.
func (p *pool) watchDials(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		e := p.byAddr(addr)
		if e == nil {
			return c, nil // an STS endpoint elsewhere, say
		}
		return &watchedConn{Conn: c, peerClosed: func() { p.peerClosed(e) }}, nil
	}
}

func (p *pool) byAddr(addr string) *endpoint {
	for _, e := range p.eps {
		if e.addr == addr {
			return e
		}
	}
	return nil
}

// peerClosed marks e suspect and checks it at once, unless a check is
// already running: a failed check is trouble and takes e out like a
// failed periodic check; a passing one clears the suspicion.
func (p *pool) peerClosed(e *endpoint) {
	if !e.suspect.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer e.suspect.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), p.hc.Timeout)
		defer cancel()
		if err := p.check(ctx, e); err != nil {
			p.sawTrouble()
			e.mu.Lock()
			e.down = true
			e.mu.Unlock()
		}
	}()
}
