package proxy

import (
	"sync"

	"github.com/edgeproxy/edgeproxy/internal/objectkey"
)

// keyCacheBytes bounds the key cache: the raw paths and keys it holds plus
// keyEntryOverhead per entry. It is a fixed budget, part of the heap the
// process allows beside the memory tier for request state (memoryOverhead
// in cmd/edgeproxy), not a knob: 4 MiB holds about 30,000 keys of typical
// length, or 1,500 of the longest, which covers the hot set whose
// allocation it saves.
const keyCacheBytes = 4 << 20

// keyEntryOverhead approximates a map entry's cost beside its bytes: two
// string headers, the map's bucket slot and the strings' allocation
// rounding.
const keyEntryOverhead = 64

// keyCache interns validated object keys by their raw request path, so a
// hot object's key is decoded and allocated once, not on every request:
// objectkey.Parse must return a string the cache can keep, and that string is
// the only allocation a cache hit would otherwise make. Looking up a map
// with string(bytes) does not allocate.
//
// Lookups happen before authorisation, but entries are added only by add,
// which the server calls once a request passed authorisation and its
// object exists: a client without a token, or asking for objects that do
// not exist, cannot fill it. When an entry would pass keyCacheBytes the
// cache starts over, which costs one allocation per distinct key until it
// warms up again.
type keyCache struct {
	mu    sync.RWMutex
	m     map[string]string
	bytes int // cost of the entries of m, at most keyCacheBytes
}

// objectKey returns objectkey.Parse(raw), from the cache when raw was added.
// cached reports a cache hit; otherwise the key is a fresh string the
// caller may pass to add once the request has earned it.
func (c *keyCache) objectKey(raw []byte) (key string, cached bool, err error) {
	c.mu.RLock()
	key, ok := c.m[string(raw)]
	c.mu.RUnlock()
	if ok {
		return key, true, nil
	}
	key, err = objectkey.Parse(raw)
	return key, false, err
}

// add interns key, the objectkey.Parse of raw. Entries too large for the budget
// are not kept.
func (c *keyCache) add(raw []byte, key string) {
	cost := len(raw) + len(key) + keyEntryOverhead
	if cost > keyCacheBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[string(raw)]; ok {
		return
	}
	if c.m == nil || c.bytes+cost > keyCacheBytes {
		c.m, c.bytes = make(map[string]string), 0
	}
	c.m[string(raw)] = key
	c.bytes += cost
}

// size returns the entries and the bytes they are counted for.
func (c *keyCache) size() (entries, bytes int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m), c.bytes
}
