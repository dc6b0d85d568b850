package proxy

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// moreState is what sendHeldMore's callback works with, kept in the
// connection so that it allocates nothing.
type moreState struct {
	rest []byte
	err  error
	fn   func(fd uintptr) bool // c.sendMoreReady, bound once
	// iov, sent and once serve sendHeadWithSpan's single writev.
	iov  [2]syscall.Iovec
	sent int
	once func(fd uintptr) bool // c.writevOnce, bound once
}

// peekMax is the largest span sendHeadWithSpan copies: a 64 KiB range.
const peekMax = 64 << 10

var peekPool = sync.Pool{New: func() any { return new([peekMax]byte) }}

// sendHeadWithSpan sends the held header and a short span (at most
// peekMax) in one writev, as a memory hit does, and returns the span bytes
// sent. It makes one attempt and never waits: whatever the socket did not
// take (all of it when it is full) is left to sendHeldMore and sendfile,
// so the pooled copy is given back before this returns and a slow client
// never holds it. On loopback a 64 KiB pread and writev cost less kernel
// time than a sendmsg and a sendfile of the same bytes (docs/design.md).
func (c *frontConn) sendHeadWithSpan(fs fileSender, limit int64) int64 {
	if limit <= 0 || limit > peekMax {
		return 0
	}
	buf := peekPool.Get().(*[peekMax]byte)
	defer peekPool.Put(buf)
	m := fs.Peek(buf[:limit])
	if m == 0 {
		return 0
	}
	h := *c.held
	c.more.iov[0] = syscall.Iovec{Base: &h[0]}
	c.more.iov[0].SetLen(len(h))
	c.more.iov[1] = syscall.Iovec{Base: &buf[0]}
	c.more.iov[1].SetLen(m)
	c.more.sent = 0
	if c.more.once == nil {
		c.more.once = c.writevOnce
	}
	c.raw.Write(c.more.once) // its error shows again on the next write
	c.more.iov = [2]syscall.Iovec{}
	sent := c.more.sent
	switch {
	case sent <= 0:
		return 0
	case sent < len(h):
		*c.held = h[:copy(h, h[sent:])]
		return 0
	}
	*c.held = h[:0]
	heldPool.Put(c.held)
	c.held = nil
	data := int64(sent - len(h))
	fs.Skip(data)
	return data
}

// writevOnce is c.raw.Write's callback for sendHeadWithSpan: one writev,
// no wait.
func (c *frontConn) writevOnce(fd uintptr) bool {
	n, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&c.more.iov[0])), 2)
	if e == 0 {
		c.more.sent = int(n)
	}
	return true
}

// sendHeldMore sends the held header with MSG_MORE, which tells the kernel
// that more data follows at once (the sendfile of the body), so the header
// does not go out as a segment of its own; it costs the copy of a few
// hundred bytes instead of a transmission. It releases the held buffer.
func (c *frontConn) sendHeldMore() error {
	c.more.rest, c.more.err = *c.held, nil
	if c.more.fn == nil {
		c.more.fn = c.sendMoreReady
	}
	err := c.raw.Write(c.more.fn)
	if err == nil {
		err = c.more.err
	}
	c.more.rest, c.more.err = nil, nil
	*c.held = (*c.held)[:0]
	heldPool.Put(c.held)
	c.held = nil
	return err
}

// sendMoreReady is c.raw.Write's callback: false means wait until the
// socket is writable.
func (c *frontConn) sendMoreReady(fd uintptr) bool {
	for len(c.more.rest) > 0 {
		n, err := syscall.SendmsgN(int(fd), c.more.rest, nil, nil, syscall.MSG_MORE|syscall.MSG_NOSIGNAL)
		if n > 0 {
			c.more.rest = c.more.rest[n:]
		}
		switch {
		case errors.Is(err, syscall.EINTR):
		case errors.Is(err, syscall.EAGAIN):
			return false
		case err != nil:
			c.more.err = os.NewSyscallError("sendmsg", err)
			return true
		}
	}
	return true
}
