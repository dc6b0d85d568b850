package proxy

import "sync"

// maxInternedKeys bounds the key cache; when full it starts over, which
// costs one allocation per distinct key until it warms up again.
const maxInternedKeys = 1 << 16

// keyCache interns validated object keys by their raw request path, so a
// hot object's key is decoded and allocated once, not on every request:
// ObjectKey must return a string the cache can keep, and that string is
// the only allocation a cache hit would otherwise make. Looking up a map
// with string(bytes) does not allocate.
type keyCache struct {
	mu sync.RWMutex
	m  map[string]string
}

// objectKey returns ObjectKey(raw), from the cache when raw was seen.
func (c *keyCache) objectKey(raw []byte) (string, error) {
	c.mu.RLock()
	key, ok := c.m[string(raw)]
	c.mu.RUnlock()
	if ok {
		return key, nil
	}
	key, err := ObjectKey(raw)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxInternedKeys {
		c.m = make(map[string]string)
	}
	c.m[string(raw)] = key
	c.mu.Unlock()
	return key, nil
}
