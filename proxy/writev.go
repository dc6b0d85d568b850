package proxy

import (
	"net"
	"sync"
)

// maxHeldHeader bounds the bytes a connection holds back for a writev: a
// response header block (a few hundred bytes; a long Content-Disposition
// makes it longer). A larger flush, such as pipelined responses still in
// fasthttp's buffer ahead of the header, is written at once as before.
const maxHeldHeader = 4 << 10

var heldPool = sync.Pool{New: func() any { b := make([]byte, 0, maxHeldHeader); return &b }}

// holdHeader asks c to send the next flush of fasthttp's write buffer (the
// header block of a streamed response, flushed on its own by
// Response.ImmediateHeaderFlush) together with the body's first write, as
// one writev. Without it, a body larger than the write buffer costs a
// partial copy into the buffer behind the header, a write of the full
// buffer, and a second write of the rest: two syscalls and a 32 KiB copy
// per 64 KiB range (fasthttp's own writev covers only in-memory bodies).
//
// It reports whether c took the request: only a *frontConn over a plain
// *net.TCPConn does, where net.Buffers becomes one writev. Through TLS or
// another wrapper the header stays in the buffer as before. The caller
// must then set ImmediateHeaderFlush and call sendHeld when the body is
// done (trackedBody does), so that a header is never left behind.
func holdHeader(c net.Conn) bool {
	if !canSendFile(c) {
		return false
	}
	c.(*frontConn).holdNext = true
	return true
}

// canSendFile reports whether c is a *frontConn over a plain
// *net.TCPConn: one whose writes can be a writev and whose ReadFrom can
// sendfile a cache span.
func canSendFile(c net.Conn) bool {
	fc, ok := c.(*frontConn)
	if !ok {
		return false
	}
	_, ok = fc.Conn.(*net.TCPConn)
	return ok
}

// sendHeld writes what c still holds back (nothing when the body's first
// write took it along) and cancels a hold that no flush used.
func sendHeld(c net.Conn) error {
	fc, ok := c.(*frontConn)
	if !ok {
		return nil
	}
	fc.holdNext = false
	if fc.held == nil {
		return nil
	}
	_, err := fc.writeHeld(nil)
	return err
}

// Write sends p, after the held header if there is one, or holds p when a
// hold is pending.
func (c *frontConn) Write(p []byte) (int, error) {
	if c.holdNext {
		c.holdNext = false
		if len(p) <= maxHeldHeader {
			c.held = heldPool.Get().(*[]byte)
			*c.held = append((*c.held)[:0], p...)
			return len(p), nil
		}
	}
	if c.held == nil {
		return c.Conn.Write(p)
	}
	return c.writeHeld(p)
}

// writeHeld sends the held bytes and p in one writev and releases the held
// buffer. It counts only p's bytes as written, as Write must.
func (c *frontConn) writeHeld(p []byte) (int, error) {
	h := *c.held
	c.vec[0], c.vec[1] = h, p
	c.bufs = c.vec[:]
	n, err := c.bufs.WriteTo(c.Conn)
	// WriteTo consumes the slice; the array still refers to the body and
	// the header, which a connection idle in keep-alive must not pin.
	c.bufs = nil
	c.vec[0], c.vec[1] = nil, nil
	c.releaseHeld()
	return int(max(0, n-int64(len(h)))), err
}

// releaseHeld gives the held buffer, whose bytes went out, back to the pool.
func (c *frontConn) releaseHeld() {
	*c.held = (*c.held)[:0]
	heldPool.Put(c.held)
	c.held = nil
}
