package cache

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
)

// sendState is what SendFile's callback works with; it lives in the span
// (and so in the pooled Reader) so that sending allocates nothing.
type sendState struct {
	short      bool // at most maxMappedSpan: SendMapped may take it
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
	s.oc.st.diskSendfile.Add(sent)
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

// maxMappedSpan is the longest span written from its file's mapping;
// longer ones go by sendfile. A mapped page stays in the process's RSS
// (as page cache) while its file is open, so the mapping is kept for what
// it is best at: short ranges, where sendfile's splice costs half as much
// again as a writev (docs/design.md, "Mapped spans"). Long spans, the bulk
// of the bytes and every slow stream, never touch the mapping.
const maxMappedSpan = 256 << 10

// mapChunk maps the chunk file fd of size bytes read-only, or returns nil
// if it cannot (the span is then sent with sendfile).
func mapChunk(fd chunkFD, size int64) []byte {
	if strconv.IntSize < 64 || size <= 0 {
		// A 32-bit address space cannot hold 1024 mapped chunks.
		return nil
	}
	b, err := syscall.Mmap(fd, 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil
	}
	return b
}

// unmapChunk undoes mapChunk.
func unmapChunk(b []byte) {
	if b != nil {
		syscall.Munmap(b)
	}
}

// SendMapped writes up to limit bytes of the span to w straight from the
// file's mapping, and returns how many went out. w must hand them to the
// kernel without reading them (a socket's Write: writev copies from the
// mapping inside the kernel), because a page the kernel cannot read (the
// file truncated, a disk error) faults: inside a syscall that is EFAULT,
// in Go code it would be a fatal SIGBUS. EFAULT ends the span as a failure
// of the file (ferr), like a short read; other errors are the socket's.
// ok is false when the file is not mapped: the caller sends another way.
func (s *fileSpan) SendMapped(w io.Writer, limit int64) (n int64, ok bool, err error) {
	want := min(limit, s.n)
	m := s.oc.mapped
	if m == nil || !s.short {
		return 0, false, nil
	}
	if want <= 0 || s.ferr != nil {
		return 0, true, nil
	}
	if s.oc.bad.Load() {
		s.ferr = errBadOpenFile
		return 0, true, nil
	}
	if s.off+want > int64(len(m)) {
		s.ferr = fmt.Errorf("%w: %s ends short at %d", errCorrupt, s.oc.k.fileName(), len(m))
		return 0, true, nil
	}
	wn, err := w.Write(m[s.off : s.off+want])
	s.off += int64(wn)
	s.n -= int64(wn)
	s.oc.st.diskMapped.Add(int64(wn))
	if errors.Is(err, syscall.EFAULT) {
		s.ferr = fmt.Errorf("cache: write from chunk %s: %w", s.oc.k.fileName(), err)
		err = nil
	}
	return int64(wn), true, err
}
