//go:build !unix

package cache

import "os"

// openChunkFile opens a chunk file for reading.
func openChunkFile(path string) (*os.File, error) { return os.Open(path) }
