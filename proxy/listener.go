package proxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Bounds of a lingering close (see frontConn.Close). nginx lingers up to
// lingering_timeout (5 s) between reads and lingering_time (30 s) in all;
// one short deadline and a byte budget are enough for a client to read an
// error answer, and keep a flood of bad requests from holding sockets.
const (
	lingerTimeout  = 5 * time.Second
	lingerMaxBytes = 1 << 20
	// maxLingering bounds connections lingering at once; beyond it a
	// connection is closed at once (the pre-lingering behaviour).
	maxLingering = 1024
)

// errLeadingEmptyLines is the read error a connection whose first bytes
// are empty lines gets; fasthttp passes it to connError, which answers 400.
var errLeadingEmptyLines = errors.New("proxy: empty lines before the request line")

// frontListener wraps the download listener for two jobs that fasthttp's
// parser leaves to the connection:
//
//   - Lingering close. After an error answer the server closes the
//     connection while the client may still be sending (the rest of a 64
//     KiB header block, a body). Closing a socket with unread input makes
//     the kernel send a reset, which can destroy the answer before the
//     client reads it. A connection marked with lingerOnClose is instead
//     half-closed (FIN after the answer) and its input read and dropped
//     until the client closes, lingerTimeout passes or lingerMaxBytes
//     arrive, as nginx's lingering_close does.
//   - Leading empty lines. fasthttp skips any number of empty lines before
//     the request line and waits for more, so "\n\n\n" holds a connection
//     until ReadTimeout and is then closed without an answer. RFC 9112 2.2
//     asks a server to ignore at least one CRLF there; one is allowed, and
//     a bare LF, a bare CR or a second empty line are refused at once.
//     Only the connection's first request is seen: later ones start inside
//     fasthttp's read buffer.
//
// It must be the outermost wrapper, so that the RequestCtx's connection is
// a *frontConn. Lingering needs a TCP connection under the wrapped one (a
// *net.TCPConn, or a wrapper with a TCPConn method as go-proxyproto's Conn
// has); without one, connections close at once as before.
type frontListener struct {
	net.Listener
	timeout  time.Duration // lingerTimeout; a field so tests can set it
	maxBytes int64         // lingerMaxBytes
	slots    chan struct{} // one per lingering connection, maxLingering

	mu        sync.Mutex
	lingering map[*frontConn]struct{}
	closed    bool
	wg        sync.WaitGroup
}

func newFrontListener(ln net.Listener) *frontListener {
	return &frontListener{
		Listener:  ln,
		timeout:   lingerTimeout,
		maxBytes:  lingerMaxBytes,
		slots:     make(chan struct{}, maxLingering),
		lingering: make(map[*frontConn]struct{}),
	}
}

// Accept wraps each accepted connection.
func (l *frontListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &frontConn{Conn: c, l: l}, nil
}

// shutdown closes the connections still lingering and waits until their
// goroutines have ended; lingering connections start no more after it.
func (l *frontListener) shutdown() {
	l.mu.Lock()
	l.closed = true
	for c := range l.lingering {
		c.Conn.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// startLinger claims a slot for c, or reports that c must close at once.
func (l *frontListener) startLinger(c *frontConn) bool {
	select {
	case l.slots <- struct{}{}:
	default:
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		<-l.slots
		return false
	}
	l.lingering[c] = struct{}{}
	l.wg.Add(1)
	return true
}

// linger half-closes c, drops its input within the bounds, then closes it.
func (l *frontListener) linger(c *frontConn) {
	defer func() {
		c.Conn.Close()
		l.mu.Lock()
		delete(l.lingering, c)
		l.mu.Unlock()
		<-l.slots
		l.wg.Done()
	}()
	tc, ok := tcpConn(c.Conn)
	if !ok || tc.CloseWrite() != nil || c.Conn.SetReadDeadline(time.Now().Add(l.timeout)) != nil {
		return
	}
	io.CopyN(io.Discard, c.Conn, l.maxBytes) // ends at EOF, deadline, budget or shutdown
}

// Connection states of frontConn.Close.
const (
	connOpen int32 = iota
	connLingering
	connClosed
)

// frontConn is a connection accepted by frontListener.
type frontConn struct {
	net.Conn
	l      *frontListener
	linger atomic.Bool  // set by lingerOnClose
	state  atomic.Int32 // connOpen, connLingering, connClosed
	// lead is the state of the leading-empty-line check; only the
	// connection's fasthttp goroutine reads, so it needs no lock.
	lead uint8
	// holdNext, held, vec and bufs send a streamed response's header and
	// its body's first write as one writev (writev.go). Only the
	// connection's fasthttp goroutine writes, so they need no lock.
	holdNext bool
	held     *[]byte // pooled; nil when nothing is held
	vec      [2][]byte
	bufs     net.Buffers
	// raw is the TCP connection's RawConn for sendfile, made once; more
	// is the state of sendHeldMore.
	raw  syscall.RawConn
	more moreState
}

// States of the leading-empty-line check.
const (
	leadStart uint8 = iota
	leadCR          // saw "\r"
	leadCRLF        // saw one empty line
	leadDone        // saw the request line's first byte
)

// Read checks the connection's first bytes for leading empty lines.
// It first sends what a hold still keeps back.
func (c *frontConn) Read(p []byte) (int, error) {
	if c.held != nil {
		// Never wait for the client while holding its answer (writev.go).
		if err := sendHeld(c); err != nil {
			return 0, err
		}
	}
	n, err := c.Conn.Read(p)
	if c.lead != leadDone && n > 0 && !c.leadOK(p[:n]) {
		c.linger.Store(true)
		return 0, errLeadingEmptyLines
	}
	return n, err
}

// leadOK advances the leading-empty-line check over b and reports whether
// the bytes so far may still start a request.
func (c *frontConn) leadOK(b []byte) bool {
	for _, ch := range b {
		switch c.lead {
		case leadStart:
			switch ch {
			case '\r':
				c.lead = leadCR
			case '\n':
				return false
			default:
				c.lead = leadDone
				return true
			}
		case leadCR:
			if ch != '\n' {
				return false
			}
			c.lead = leadCRLF
		case leadCRLF:
			if ch == '\r' || ch == '\n' {
				return false
			}
			c.lead = leadDone
			return true
		}
	}
	return true
}

// Close closes the connection, lingering first when it was marked with
// lingerOnClose and a slot is free. A second Close (a drain that ran out
// of time) ends a linger at once.
func (c *frontConn) Close() error {
	if !c.state.CompareAndSwap(connOpen, connLingering) {
		return c.Conn.Close()
	}
	if !c.linger.Load() || !c.l.startLinger(c) {
		c.state.Store(connClosed)
		return c.Conn.Close()
	}
	go c.l.linger(c)
	return nil
}

// ReadFrom keeps the wrapped connection's sendfile and splice path, which
// bufio.Writer.ReadFrom uses when the connection has it, and sends a
// cache's file span (fileSender) with sendfile at the span's own offset.
func (c *frontConn) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		if fs, ok := lr.R.(fileSender); ok {
			if tc, ok := c.Conn.(*net.TCPConn); ok {
				return c.sendFile(tc, fs, lr)
			}
		}
	}
	if err := sendHeld(c); err != nil {
		return 0, err
	}
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// fileSender is a reader of a file span that can send itself to a socket
// with sendfile(2) (the cache's disk-tier spans). SendFile sends up to
// limit bytes through c.Write, returns how many went out, and reports only
// the socket's errors; 0 bytes and no error mean the span has ended.
type fileSender interface {
	io.Reader
	SendFile(c syscall.RawConn, limit int64) (int64, error)
}

// mappedSender is a file span that can send itself, short ones only, from
// its file's mapping together with the held header in one writev
// (cache.fileSpan.SendMapped): one attempt that does not wait for the
// socket; tried is false, with nothing sent, for a span it does not take.
type mappedSender interface {
	SendMapped(c syscall.RawConn, head []byte, limit int64) (headSent int, n int64, tried bool, err error)
}

// sendMapped offers lr's span and the held header to ms in one writev,
// copied by the kernel from the page cache: a 64 KiB range then costs what
// a memory-tier hit does, where sendfile's splice costs half as much again
// (docs/design.md, "Mapped spans"). What the socket did not take, header
// or span, is left to the sendfile path.
func (c *frontConn) sendMapped(ms mappedSender, lr *io.LimitedReader) (int64, error) {
	var head []byte
	if c.held != nil {
		head = *c.held
	}
	hs, n, tried, err := ms.SendMapped(c.raw, head, lr.N)
	if !tried {
		return 0, nil
	}
	lr.N -= n
	switch {
	case hs == len(head) && c.held != nil:
		c.releaseHeld()
	case hs > 0:
		*c.held = head[:copy(head, head[hs:])]
	}
	if err != nil {
		return n, &net.OpError{Op: "writev", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	return n, nil
}

// sendFile sends lr's span from its file, from the mapping (sendMapped)
// or with sendfile, until lr is used up or the span ends. Before a
// sendfile the held header goes first, flagged as having more to come
// (sendHeldMore), so that it leaves in the same segment as the span's
// first bytes rather than in a packet of its own.
func (c *frontConn) sendFile(tc *net.TCPConn, fs fileSender, lr *io.LimitedReader) (int64, error) {
	if c.raw == nil {
		rc, err := tc.SyscallConn()
		if err != nil {
			return 0, err
		}
		c.raw = rc
	}
	c.holdNext = false // nothing to hold for: the header goes now
	var total int64
	if ms, ok := fs.(mappedSender); ok {
		n, err := c.sendMapped(ms, lr)
		if err != nil || lr.N == 0 {
			return n, err
		}
		total = n
	}
	if c.held != nil {
		if err := c.sendHeldMore(); err != nil {
			return total, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
		}
	}
	for lr.N > 0 {
		n, err := fs.SendFile(c.raw, lr.N)
		lr.N -= n
		total += n
		if err != nil {
			return total, &net.OpError{Op: "sendfile", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
		}
		if n == 0 {
			break
		}
	}
	return total, nil
}

// SetKeepAlive and SetKeepAlivePeriod keep fasthttp's TCPKeepalive working
// through the wrapper (and through a PROXY protocol connection).
func (c *frontConn) SetKeepAlive(on bool) error {
	if tc, ok := tcpConn(c.Conn); ok {
		return tc.SetKeepAlive(on)
	}
	return nil
}

// SetKeepAlivePeriod: see SetKeepAlive.
func (c *frontConn) SetKeepAlivePeriod(d time.Duration) error {
	if tc, ok := tcpConn(c.Conn); ok {
		return tc.SetKeepAlivePeriod(d)
	}
	return nil
}

// tcpConn returns the TCP connection under c: c itself, or the one a
// wrapper exposes as go-proxyproto's Conn does (TCPConn method).
func tcpConn(c net.Conn) (*net.TCPConn, bool) {
	switch c := c.(type) {
	case *net.TCPConn:
		return c, true
	case interface{ TCPConn() (*net.TCPConn, bool) }:
		return c.TCPConn()
	}
	return nil, false
}

// lingerOnClose marks the connection of an answer that closes it (an error
// sent while input may be unread) for a lingering close.
func lingerOnClose(c net.Conn) {
	if fc, ok := c.(*frontConn); ok {
		fc.linger.Store(true)
	}
}
