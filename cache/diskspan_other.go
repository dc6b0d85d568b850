//go:build !linux

package cache

// sendState is empty where fileSpan has no SendFile: writers then copy a
// span through Read.
type sendState struct {
	send func(fd uintptr) bool // unused
}
