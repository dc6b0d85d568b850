package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/edgeproxy/edgeproxy/origin"
)

// metaEntry is what the metadata tier knows about one object. Entries are
// immutable: an update replaces the pointer, so a reader holding one never
// sees a half-written entry.
type metaEntry struct {
	id   *objectID // nil for a negative entry
	info origin.Info
	err  error // non-nil: negative entry (the origin said ErrNotFound)

	// expires is when the entry stops being trusted and the origin is
	// asked again.
	expires time.Time
	// fresh is when the last successful validation expired (equal to
	// expires unless the entry is stale); stale serving ends at
	// fresh+MaxStale.
	fresh time.Time
	// staleErr is the origin error that made this a stale answer; nil for
	// an entry the origin confirmed. Open returns it for bytes it cannot
	// serve from cache.
	staleErr error
}

type metaKey struct{ bucket, key string }

const metaShards = 32

// metaTier maps objects to their metadata. It is sharded so that hits on
// different objects rarely touch the same lock; lookups with a struct of
// two strings as key do not allocate.
type metaTier struct {
	perShard int
	shards   [metaShards]metaShard
}

type metaShard struct {
	mu sync.RWMutex
	m  map[metaKey]*metaEntry
	_  [40]byte // keep shards on separate cache lines
}

func newMetaTier(entries int) *metaTier {
	t := &metaTier{perShard: max(entries/metaShards, 1)}
	for i := range t.shards {
		t.shards[i].m = make(map[metaKey]*metaEntry)
	}
	return t
}

func (t *metaTier) shard(bucket, key string) *metaShard {
	return &t.shards[keyHash(bucket, key)%metaShards]
}

func (t *metaTier) get(bucket, key string) *metaEntry {
	s := t.shard(bucket, key)
	s.mu.RLock()
	e := s.m[metaKey{bucket, key}]
	s.mu.RUnlock()
	return e
}

// put stores e under its owned strings. When the shard is full an arbitrary
// entry (Go's map iteration order) makes room.
func (t *metaTier) put(bucket, key string, e *metaEntry) {
	s := t.shard(bucket, key)
	k := metaKey{bucket, key}
	s.mu.Lock()
	if _, ok := s.m[k]; !ok && len(s.m) >= t.perShard {
		for victim := range s.m {
			delete(s.m, victim)
			break
		}
	}
	s.m[k] = e
	s.mu.Unlock()
}

// replace stores e only if the current entry is still old, so a slow
// revalidation cannot overwrite a newer answer or resurrect a purged one.
func (t *metaTier) replace(bucket, key string, old, e *metaEntry) bool {
	s := t.shard(bucket, key)
	k := metaKey{bucket, key}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[k] != old {
		return false
	}
	if old == nil && len(s.m) >= t.perShard {
		for victim := range s.m {
			delete(s.m, victim)
			break
		}
	}
	s.m[k] = e
	return true
}

func (t *metaTier) remove(bucket, key string) *metaEntry {
	s := t.shard(bucket, key)
	k := metaKey{bucket, key}
	s.mu.Lock()
	e := s.m[k]
	delete(s.m, k)
	s.mu.Unlock()
	return e
}

// removePrefix removes every entry of bucket whose key starts with prefix
// and returns them by key.
func (t *metaTier) removePrefix(bucket, prefix string) map[string]*metaEntry {
	out := make(map[string]*metaEntry)
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if k.bucket == bucket && strings.HasPrefix(k.key, prefix) {
				out[k.key] = e
				delete(s.m, k)
			}
		}
		s.mu.Unlock()
	}
	return out
}

// expire makes the entry for id untrusted if it still describes id, so the
// next Stat asks the origin (used when a fill learns the object changed).
func (t *metaTier) expire(id *objectID) {
	s := t.shard(id.bucket, id.key)
	k := metaKey{id.bucket, id.key}
	s.mu.Lock()
	if e := s.m[k]; e != nil && e.id != nil && e.id.same(id) {
		cp := *e
		cp.expires = time.Time{}
		s.m[k] = &cp
	}
	s.mu.Unlock()
}

func (t *metaTier) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Stat returns the object's metadata from the metadata tier, asking the
// origin when the entry is missing or older than MetaTTL. ErrNotFound is
// remembered for NegativeTTL. When the origin is unavailable or timing out
// and the entry expired less than MaxStale ago, Stat returns the last known
// Info and no error (stale-if-error); Open then serves cached bytes of that
// version with CacheStatus "STALE".
//
// Concurrent misses for one object make one origin call, run on a context
// detached from the callers (bounded by StatTimeout); each caller still
// stops waiting when its own ctx ends.
func (c *Cache) Stat(ctx context.Context, bucket, key string) (origin.Info, error) {
	e, err := c.lookup(ctx, bucket, key)
	if err != nil {
		return origin.Info{}, err
	}
	return e.info, e.err
}

// lookup returns the current metadata entry (possibly negative or stale).
func (c *Cache) lookup(ctx context.Context, bucket, key string) (*metaEntry, error) {
	if e := c.meta.get(bucket, key); e != nil && c.now().Before(e.expires) {
		c.st.metaHits.Add(1)
		return e, nil
	}
	c.st.metaMisses.Add(1)
	bucket, key = cloneString(bucket), cloneString(key)
	ch := c.metaGroup.DoChan(bucket+"\x00"+key, func() (any, error) {
		if !c.enterBackground() {
			return nil, errClosed
		}
		defer c.bg.Done()
		return c.revalidate(ctx, bucket, key)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*metaEntry), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("cache: stat %s/%s: %w", bucket, key, ctx.Err())
	}
}

// revalidate asks the origin about bucket/key and updates the tier. It runs
// once per object at a time (singleflight) and owns bucket and key.
func (c *Cache) revalidate(ctx context.Context, bucket, key string) (*metaEntry, error) {
	old := c.meta.get(bucket, key)
	if old != nil && c.now().Before(old.expires) {
		// Another flight refreshed it between our miss and our turn
		// (groupcache's load does the same double check).
		return old, nil
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.StatTimeout)
	info, err := c.origin.Stat(sctx, bucket, key)
	cancel()
	now := c.now()
	switch {
	case err == nil:
		e := &metaEntry{info: info, expires: now.Add(c.cfg.MetaTTL)}
		e.fresh = e.expires
		if old != nil && old.id != nil && old.id.etag == info.ETag && old.id.size == info.Size {
			e.id = old.id // same version: keep sharing the identity with its chunks
		} else {
			e.id = newObjectID(bucket, key, info.ETag, info.Size)
		}
		if c.meta.replace(bucket, key, old, e) && old != nil && old.id != nil && !old.id.same(e.id) {
			c.dropVersion(old.id)
		}
		return e, nil
	case errors.Is(err, origin.ErrNotFound):
		e := &metaEntry{err: err, expires: now.Add(c.cfg.NegativeTTL)}
		if c.cfg.NegativeTTL > 0 {
			c.meta.replace(bucket, key, old, e)
		} else {
			c.meta.remove(bucket, key)
		}
		if old != nil && old.id != nil {
			c.dropVersion(old.id)
		}
		return e, nil
	case transient(err) && old != nil && old.id != nil && c.cfg.MaxStale >= 0 && now.Before(old.fresh.Add(c.cfg.MaxStale)):
		e := &metaEntry{
			id:       old.id,
			info:     old.info,
			fresh:    old.fresh,
			expires:  minTime(now.Add(c.cfg.StaleRetry), old.fresh.Add(c.cfg.MaxStale)),
			staleErr: fmt.Errorf("cache: %s/%s is stale: %w", bucket, key, err),
		}
		c.meta.replace(bucket, key, old, e)
		c.logLimited(&c.originLog, "origin failing; serving stale metadata", "bucket", bucket, "key", key, "err", err)
		return e, nil
	default:
		return nil, fmt.Errorf("cache: stat %s/%s: %w", bucket, key, err)
	}
}

// transient reports whether err means the origin may work again soon, the
// only errors that justify serving stale data.
func transient(err error) bool {
	return errors.Is(err, origin.ErrUnavailable) || errors.Is(err, origin.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// resolve returns the metadata entry Open works from. A known version whose
// ETag matches is used even when its entry expired: a strong ETag names
// fixed bytes and size, so no revalidation is needed to serve it.
func (c *Cache) resolve(ctx context.Context, bucket, key, etag string) (*metaEntry, error) {
	if e := c.meta.get(bucket, key); e != nil && e.id != nil {
		if etag == e.id.etag || (etag == "" && c.now().Before(e.expires)) {
			return e, nil
		}
	}
	e, err := c.lookup(ctx, bucket, key)
	if err != nil {
		return nil, err
	}
	if e.err != nil {
		return nil, e.err
	}
	if etag != "" && etag != e.id.etag {
		return nil, fmt.Errorf("cache: open %s/%s: want ETag %s, origin has %s: %w", bucket, key, etag, e.id.etag, origin.ErrChanged)
	}
	return e, nil
}
