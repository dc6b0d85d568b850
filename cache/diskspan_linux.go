package cache

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// sendState is what SendFile's callback works with; it lives in the span
// (and so in the pooled Reader) so that sending allocates nothing.
type sendState struct {
	want, sent int64
	serr       error
	send       func(fd uintptr) bool // s.sendReady, bound once per Reader
}

// SendFile sends up to limit bytes of the span to the socket of c with
// sendfile(2) at the span's own offset, waiting for the socket as c.Write
// does (its write deadline included), and returns the bytes sent. An
// error is the socket's; a failure of the file ends the span as Read does
// (ferr) and is not reported here, so the connection's writer stays
// usable and the reader can take the rest of the chunk from elsewhere.
func (s *fileSpan) SendFile(c syscall.RawConn, limit int64) (int64, error) {
	want := min(limit, s.n)
	if want <= 0 || s.ferr != nil {
		return 0, nil
	}
	if s.oc.bad.Load() {
		s.ferr = errBadOpenFile
		return 0, nil
	}
	s.want, s.sent, s.serr = want, 0, nil
	if s.send == nil {
		s.send = s.sendReady
	}
	err := c.Write(s.send)
	sent := s.sent
	s.off += sent
	s.n -= sent
	if err == nil {
		err = s.serr
	}
	s.serr = nil
	return sent, err
}

// sendReady is c.Write's callback: it sends until done, until the socket
// would block (false: c waits for it and calls again), or until an error.
func (s *fileSpan) sendReady(fd uintptr) bool {
	for s.sent < s.want {
		off := s.off + s.sent
		n, err := syscall.Sendfile(int(fd), s.oc.fd, &off, int(min(s.want-s.sent, 1<<30)))
		if n > 0 {
			s.sent += int64(n)
		}
		switch {
		case errors.Is(err, syscall.EINTR):
		case errors.Is(err, syscall.EAGAIN):
			return false
		case errors.Is(err, syscall.EIO):
			// The file's storage failed, not the socket.
			s.ferr = fmt.Errorf("cache: sendfile from chunk %s: %w", s.oc.k.fileName(), err)
			return true
		case err != nil:
			s.serr = os.NewSyscallError("sendfile", err)
			return true
		case n == 0:
			s.ferr = fmt.Errorf("%w: %s ends short at %d", errCorrupt, s.oc.k.fileName(), off)
			return true
		}
	}
	return true
}
