//go:build !unix

package origin

import (
	"errors"
	"io/fs"
	"os"
)

const openFlags = os.O_RDONLY

// inode is 0 where the platform's FileInfo has none; Dir's ETag then rests
// on size and modification time alone.
func inode(fs.FileInfo) uint64 { return 0 }

// unavailableFSError: see dir_unix.go. Without errnos to inspect, only
// permission errors count as the origin failing.
func unavailableFSError(err error) bool {
	return errors.Is(err, fs.ErrPermission)
}
