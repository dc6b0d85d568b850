package cache

import "time"

// Invalidation from outside: the origin's change notifications (wired by
// the binary) call Purge for each object written or deleted, and
// ExpireAll when notifications may have been lost.

// ExpireAll makes every metadata entry of bucket ("" for all buckets)
// untrusted, so the next request for each object asks the origin (one
// HEAD) before serving cached bytes. Nothing is deleted: chunks of a
// version the origin confirms are served again, and while the origin is
// down max_stale still applies. It returns how many entries it expired.
func (c *Cache) ExpireAll(bucket string) int {
	return c.meta.expireAll(bucket)
}

func (t *metaTier) expireAll(bucket string) int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if bucket != "" && k.bucket != bucket || e.expires.IsZero() {
				continue
			}
			cp := *e
			cp.expires = time.Time{} // as expire does: before any now
			s.m[k] = &cp
			n++
		}
		s.mu.Unlock()
	}
	return n
}
