//go:build !unix

package cache

import "os"

// chunkFD is an open chunk file, shared by readers (diskfd.go) and never
// read through its file offset.
type chunkFD = *os.File

func openChunkFD(path string) (chunkFD, error) { return os.Open(path) }

func closeChunkFD(f chunkFD) { f.Close() }

func preadChunk(f chunkFD, b []byte, off int64) (int, error) { return f.ReadAt(b, off) }

func statChunk(f chunkFD) (int64, bool, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, false, err
	}
	return st.Size(), st.Mode().IsRegular(), nil
}
