//go:build unix

package cache

import (
	"errors"
	"io/fs"
	"syscall"
)

// chunkFD is an open chunk file: a bare descriptor, shared by readers
// (diskfd.go) and never read through its file offset.
type chunkFD = int

// openChunkFD opens a chunk file for reading. os.Open would offer the
// descriptor to the netpoller, which refuses regular files: on Linux that
// is four fcntl calls and a failing epoll_ctl per open, and os.NewFile
// still costs one fcntl. A bare blocking descriptor costs one openat.
func openChunkFD(path string) (chunkFD, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

func closeChunkFD(fd chunkFD) { syscall.Close(fd) }

// preadChunk reads from fd at off; it retries on EINTR.
func preadChunk(fd chunkFD, b []byte, off int64) (int, error) {
	for {
		n, err := syscall.Pread(fd, b, off)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		return max(n, 0), err
	}
}

// statChunk returns the size of fd's file and whether it is a regular file.
func statChunk(fd chunkFD) (int64, bool, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return 0, false, err
	}
	return st.Size, st.Mode&syscall.S_IFMT == syscall.S_IFREG, nil
}
