//go:build !linux

package cache

// arenaFile is empty where there is no memfd: newMemArena returns nil and
// the memory tier keeps every chunk on the heap.
type arenaFile struct{ mem []byte }

func openArenaFile(int64) (arenaFile, error) { return arenaFile{}, nil }
func (*arenaFile) fdesc() uintptr            { return 0 }
func (*arenaFile) write([]byte, int64) error { return nil }
func (*arenaFile) punch(int64, int64) error  { return nil }
func (*arenaFile) close()                    {}
