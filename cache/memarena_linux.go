package cache

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// arenaFile is the memory arena's memfd, mapped read-only.
type arenaFile struct {
	fd  int
	mem []byte
}

func openArenaFile(size int64) (arenaFile, error) {
	fd, err := unix.MemfdCreate("edgeproxy-memory-tier", unix.MFD_CLOEXEC)
	if err != nil {
		return arenaFile{}, fmt.Errorf("cache: memory arena: memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		unix.Close(fd)
		return arenaFile{}, fmt.Errorf("cache: memory arena: size %d: %w", size, err)
	}
	mem, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return arenaFile{}, fmt.Errorf("cache: memory arena: mmap %d bytes: %w", size, err)
	}
	return arenaFile{fd: fd, mem: mem}, nil
}

// fd is the descriptor FileWriter.WriteFile receives.
func (f *arenaFile) fdesc() uintptr { return uintptr(f.fd) }

func (f *arenaFile) write(p []byte, off int64) error {
	for len(p) > 0 {
		n, err := unix.Pwrite(f.fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("cache: memory arena: write: %w", err)
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// punch releases the pages of [off, off+n). Pages a socket still holds
// (sendfile) stay with the socket, unchanged; the file gets new ones.
func (f *arenaFile) punch(off, n int64) error {
	for {
		err := unix.Fallocate(f.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
		if err != unix.EINTR {
			return err
		}
	}
}

func (f *arenaFile) close() {
	unix.Munmap(f.mem)
	unix.Close(f.fd)
}
