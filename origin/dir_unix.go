//go:build unix

package origin

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// openFlags opens without blocking on FIFOs; regular files ignore O_NONBLOCK.
const openFlags = os.O_RDONLY | syscall.O_NONBLOCK

// inode returns the file's inode number, part of Dir's ETag.
func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}

// unavailableFSError reports whether err is the file system failing or
// forbidding access, rather than a name that leads to no file. Name
// problems (ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG, EINVAL, a path that
// escapes the root, which os.Root reports without an errno) are not.
func unavailableFSError(err error) bool {
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if errors.Is(err, fs.ErrPermission) {
		return true
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case syscall.ENOTDIR, syscall.ELOOP, syscall.ENAMETOOLONG, syscall.EINVAL, syscall.ENXIO:
		return false
	}
	return true
}
