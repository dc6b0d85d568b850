//go:build !linux

package cache

// sendState is empty where fileSpan has no SendFile: writers then copy a
// span through Read.
type sendState struct {
	short  bool                  // unused
	send   func(fd uintptr) bool // unused
	writev func(fd uintptr) bool // unused
}

// mapChunk maps nothing where spans are not sent from a mapping.
func mapChunk(chunkFD, int64) []byte { return nil }

func unmapChunk([]byte) {}

// maxMappedRange: nothing is mapped here.
const maxMappedRange = 0
