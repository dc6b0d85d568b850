package upload

import (
	"container/list"
	"os"
	"sync"
)

// tailCache keeps the local copy of the staged tail this node wrote last
// for an upload, so that when the same node gets the upload's next PATCH
// (the usual case: a client keeps its connection) it reads the tail from
// disk instead of GETting the staging object back. tusd's s3store pays
// that GET on every PATCH that follows a short one (tus/tusd#219); go-tus
// sends 2 MiB chunks by default, so most of its PATCHes would. A copy is
// used only when its ETag and length are the ones the state names: a
// tail another node wrote since is fetched from S3. At most max copies
// are kept (least recently stored go first), each under PartSize, so the
// disk they take is bounded like the spools'.
type tailCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *cachedTail, most recent first
	byID  map[string]*list.Element
}

type cachedTail struct {
	id   string
	f    *os.File
	etag string
	size int64
	crc  uint32 // CRC32C of the size bytes, for the part they start
}

func newTailCache(max int) *tailCache {
	return &tailCache{max: max, order: list.New(), byID: make(map[string]*list.Element)}
}

// put keeps f as id's tail (f's first size bytes, stored with etag, whose
// CRC32C is crc); the cache owns f from now on.
func (c *tailCache) put(id string, f *os.File, etag string, size int64, crc uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked(id)
	c.byID[id] = c.order.PushFront(&cachedTail{id: id, f: f, etag: etag, size: size, crc: crc})
	for c.order.Len() > c.max {
		c.dropLocked(c.order.Back().Value.(*cachedTail).id)
	}
}

// take removes id's copy and returns it, with its CRC32C, if it is the
// tail named by etag and size; the caller owns the file. A stale copy is
// deleted.
func (c *tailCache) take(id, etag string, size int64) (*os.File, uint32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byID[id]
	if !ok {
		return nil, 0, false
	}
	t := e.Value.(*cachedTail)
	if t.etag != etag || t.size != size {
		c.dropLocked(id)
		return nil, 0, false
	}
	c.order.Remove(e)
	delete(c.byID, id)
	return t.f, t.crc, true
}

// drop deletes id's copy, if any.
func (c *tailCache) drop(id string) {
	c.mu.Lock()
	c.dropLocked(id)
	c.mu.Unlock()
}

func (c *tailCache) dropLocked(id string) {
	e, ok := c.byID[id]
	if !ok {
		return
	}
	t := e.Value.(*cachedTail)
	t.f.Close()
	os.Remove(t.f.Name())
	c.order.Remove(e)
	delete(c.byID, id)
}

// closeAll deletes every copy (the endpoint is shutting down).
func (c *tailCache) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.byID {
		c.dropLocked(id)
	}
}
