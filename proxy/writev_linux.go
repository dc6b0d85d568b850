package proxy

import (
	"errors"
	"os"
	"syscall"
)

// moreState is what sendHeldMore's callback works with, kept in the
// connection so that it allocates nothing.
type moreState struct {
	rest []byte
	err  error
	fn   func(fd uintptr) bool // c.sendMoreReady, bound once
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
	c.releaseHeld()
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
