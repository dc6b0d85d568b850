//go:build unix

package cache

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// openChunkFile opens a chunk file for reading. os.Open would offer the
// descriptor to the netpoller, which refuses regular files: on Linux that
// is four fcntl calls and a failing epoll_ctl per open, more syscalls than
// a 64 KiB range hit makes for its data. A descriptor handed to os.NewFile
// in blocking mode skips all of it; reads and Close work as with os.Open.
func openChunkFile(path string) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}
