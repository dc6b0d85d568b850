package cache

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// sendState is what SendFile's callback works with; it lives in the span
// (and so in the pooled Reader) so that sending allocates nothing.
type sendState struct {
	short      bool // the reader's range is at most maxMappedRange: SendMapped may take its spans
	want, sent int64
	serr       error
	send       func(fd uintptr) bool // s.sendReady, bound once per Reader

	// SendMapped's writev: the header and the mapped span, the result.
	iov    [2]syscall.Iovec
	wrote  int
	werr   syscall.Errno
	writev func(fd uintptr) bool // s.writevOnce, bound once per Reader
}

// SendFile sends up to limit bytes of the span to the socket of c with
// sendfile(2) at the span's own offset, waiting for the socket as c.Write
// does (its write deadline included), and returns the bytes sent. An
// error is the socket's; a failure of the file ends the span as Read does
// (ferr) and is not reported here, so the connection's writer stays
// usable and the reader can take the rest of the chunk from elsewhere.
func (s *fileSpan) SendFile(c syscall.RawConn, limit int64) (int64, error) {
	want := min(limit, s.n)
	if want <= 0 || !s.usable() {
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

// maxMappedRange is the longest range (response body) whose disk-tier
// spans are written from their files' mappings; longer ones go by
// sendfile. A mapped page stays in the process's RSS (as page cache) while
// its file is open, so the mapping is kept for what it is best at: short
// ranges, whose cost is per request, and where sendfile's splice costs half
// as much again as a writev (docs/design.md, "Mapped spans"). Long
// responses, the bulk of the bytes and every slow stream, never touch it.
const maxMappedRange = 256 << 10

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

// SendMapped makes one attempt, without waiting for the socket of c, to
// send head (the response header held back for it; may be empty) and up
// to limit bytes of the span in one writev, the span's bytes straight
// from the file's mapping: the kernel copies them from the page cache, and
// no Go code ever loads them, because a page the kernel cannot read (the
// file cut short, a disk error) faults: inside the syscall that is EFAULT,
// in Go code it would be a fatal SIGBUS. It returns how much of head and
// of the span went out; tried is false, with nothing sent, when the span
// is not to be sent this way (not mapped, or a long range: maxMappedRange).
//
// What the socket cannot take at once the caller sends with sendfile, so
// the pages a client maps into the process are what its socket took in one
// go (and the neighbours the kernel maps around a fault, up to 64 KiB).
// EFAULT ends the span as a failure of the file (ferr), like a short read;
// other errors are the socket's. A file cut short by someone else faults
// only past the page holding its new end: the rest of that page reads as
// zeros, the one change to a trusted file a mapping sees differently from
// sendfile (docs/design.md, "Mapped spans").
func (s *fileSpan) SendMapped(c syscall.RawConn, head []byte, limit int64) (headSent int, n int64, tried bool, err error) {
	want := min(limit, s.n)
	if !s.short {
		return 0, 0, false, nil
	}
	if want <= 0 || !s.usable() {
		return 0, 0, true, nil
	}
	m := s.oc.mapped()
	if m == nil {
		return 0, 0, false, nil
	}
	if s.off+want > int64(len(m)) {
		s.ferr = fmt.Errorf("%w: %s ends short at %d", errCorrupt, s.oc.k.fileName(), len(m))
		return 0, 0, true, nil
	}
	s.iov[0].Base, s.iov[0].Len = nil, 0
	if len(head) > 0 {
		s.iov[0].Base = &head[0]
		s.iov[0].SetLen(len(head))
	}
	s.iov[1].Base = &m[s.off]
	s.iov[1].SetLen(int(want))
	s.wrote, s.werr = 0, 0
	if s.writev == nil {
		s.writev = s.writevOnce
	}
	err = c.Write(s.writev)
	s.iov[0].Base, s.iov[1].Base = nil, nil // pin neither the header nor the mapping
	if err != nil {
		return 0, 0, true, err // the deadline passed, or the connection closed
	}
	wrote := s.wrote
	headSent = min(wrote, len(head))
	n = int64(wrote - headSent)
	s.off += n
	s.n -= n
	s.oc.st.diskMapped.Add(n)
	switch {
	case s.werr == syscall.EFAULT:
		s.ferr = fmt.Errorf("cache: write from chunk %s: %w", s.oc.k.fileName(), os.NewSyscallError("writev", s.werr))
	case s.werr != 0 && s.werr != syscall.EAGAIN:
		return headSent, n, true, os.NewSyscallError("writev", s.werr)
	}
	return headSent, n, true, nil
}

// writevOnce is c.Write's callback for SendMapped: one writev, retried only
// on EINTR; it never asks to wait for the socket.
func (s *fileSpan) writevOnce(fd uintptr) bool {
	for {
		r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&s.iov[0])), uintptr(len(s.iov)))
		if e == syscall.EINTR {
			continue
		}
		if e == 0 {
			s.wrote = int(r)
		}
		s.werr = e
		return true
	}
}
