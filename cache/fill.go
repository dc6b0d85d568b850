package cache

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/edgeproxy/edgeproxy/origin"
)

// Coalescing and streaming fills.
//
// golang.org/x/sync/singleflight fits the metadata tier (one answer per
// call) but not chunk fills: its waiters see nothing until the whole
// function returns, so a reader joining an 8 MiB window fill could not
// stream the first chunk while the rest is in flight. Instead each missing
// chunk gets a slot in c.inflight, registered by whichever reader misses
// first; one origin request fetches a run of consecutive slots, publishing
// each chunk (closing its ready channel) the moment its bytes are in. A
// reader that misses finds the slot and waits on that chunk alone.
//
// The groupcache double check applies as in its load: under c.fmu a reader
// looks again in memory before starting a fill, and a fill leaves c.inflight
// only after ristretto has applied its Sets (mem.Wait), so a reader that
// arrives just after a fill finished finds the chunk instead of fetching it
// a second time.

// slotKey is the full identity of a chunk being filled. Using the strings
// rather than a hash makes collisions impossible in the coalescing map.
type slotKey struct {
	bucket, key, etag string
	idx               int64
}

func keyOf(id *objectID, idx int64) slotKey { return slotKey{id.bucket, id.key, id.etag, idx} }

// slot delivers one chunk of a fill. ch or err is set before ready is
// closed and never changes afterwards.
type slot struct {
	ready chan struct{}
	ch    *chunk
	err   error
	// next is the first chunk after the slot's fill: where a sequential
	// reader's readahead goes, so that windows stay contiguous however
	// far into a window the reader was when it first had to wait.
	next int64
}

// wait returns the slot's chunk, or the fill's error, or ctx's error if
// the caller gives up first; the fill goes on for the others either way.
func (s *slot) wait(ctx context.Context) (*chunk, error) {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if s.err != nil {
		return nil, s.err
	}
	return s.ch, nil
}

// acquire returns the slot that will deliver chunk idx of id, starting a
// fill of up to one window [idx, min(idx+window-1, limit)] if no fill has
// it. joined reports that the slot belonged to a fill already running. A
// nil slot without error means the chunk is now cached: look again. With
// force the cached check is skipped (used when the chunk keeps vanishing
// between the check and the lookup, e.g. under heavy eviction).
func (c *Cache) acquire(ctx context.Context, id *objectID, idx, limit int64, force bool) (s *slot, joined bool, err error) {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	if c.closed {
		return nil, false, errClosed
	}
	if s := c.inflight[keyOf(id, idx)]; s != nil {
		return s, true, nil
	}
	if !force && c.present(id, idx) {
		return nil, false, nil
	}
	end := min(limit, idx+c.window-1)
	slots := make([]*slot, 0, end-idx+1)
	for j := idx; j <= end; j++ {
		// A run stops at the first chunk that is cached or being fetched:
		// a miss fetches only missing chunks.
		if j > idx && (c.inflight[keyOf(id, j)] != nil || c.present(id, j)) {
			break
		}
		s := &slot{ready: make(chan struct{})}
		c.inflight[keyOf(id, j)] = s
		slots = append(slots, s)
	}
	for _, s := range slots {
		s.next = idx + int64(len(slots))
	}
	c.bg.Add(1) // under fmu with !closed, see Cache.bg
	go c.fill(ctx, id, idx, slots)
	return slots[0], false, nil
}

// prefetch starts a fill at chunk idx unless it is cached or in flight; it
// never waits. Readers call it one window ahead so a sequential cold read
// keeps the next origin request in flight while it consumes the current one.
func (c *Cache) prefetch(ctx context.Context, id *objectID, idx, limit int64) {
	if idx > limit {
		return
	}
	_, _, _ = c.acquire(ctx, id, idx, limit, false)
}

// fill fetches the chunks of slots (first, first+1, ...) with one ranged
// origin request and publishes each as it arrives. It runs on a context
// detached from the client that started it, bounded by FillTimeout, so a
// client that hangs up or reads slowly neither cancels nor throttles the
// fill for the others.
func (c *Cache) fill(parent context.Context, id *objectID, first int64, slots []*slot) {
	defer c.bg.Done()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), c.cfg.FillTimeout)
	defer cancel()

	off := first * c.span.size
	var n int64
	for i := range slots {
		n += c.span.length(id.size, first+int64(i))
	}
	c.st.fills.Add(1)
	if err := c.fillSem.Acquire(ctx, n); err != nil {
		c.fail(id, first, slots, fillError(id, first, ctx, err))
		return
	}
	defer c.fillSem.Release(n)

	body, err := c.origin.Open(ctx, id.bucket, id.key, id.etag, off, n)
	if err != nil {
		c.fail(id, first, slots, fillError(id, first, ctx, err))
		return
	}
	defer body.Close()
	for i, s := range slots {
		idx := first + int64(i)
		buf := make([]byte, c.span.length(id.size, idx))
		if _, err := io.ReadFull(body, buf); err != nil {
			c.fail(id, idx, slots[i:], fillError(id, idx, ctx, err))
			slots = slots[:i]
			break
		}
		c.st.originBytes.Add(int64(len(buf)))
		ch := &chunk{id: id, idx: idx, data: buf}
		c.memSet(ch)
		if c.disk != nil {
			c.disk.enqueue(ch, i > 0)
		}
		s.ch = ch
		close(s.ready)
	}
	if len(slots) == 0 {
		return
	}
	// Make the Sets visible before leaving c.inflight (see the double check
	// above); a chunk TinyLFU declined is simply fetched again next time.
	c.mem.Wait()
	c.fmu.Lock()
	for i := range slots {
		delete(c.inflight, keyOf(id, first+int64(i)))
	}
	c.fmu.Unlock()
}

// fail removes slots from the in-flight map and hands err to their waiters.
func (c *Cache) fail(id *objectID, first int64, slots []*slot, err error) {
	c.st.fillErrors.Add(1)
	if errors.Is(err, origin.ErrChanged) {
		// The version we serve is gone: make the next Stat ask the origin.
		c.meta.expire(id)
	}
	c.fmu.Lock()
	for i := range slots {
		delete(c.inflight, keyOf(id, first+int64(i)))
	}
	c.fmu.Unlock()
	for _, s := range slots {
		s.err = err
		close(s.ready)
	}
	c.logLimited(&c.originLog, "origin fill failed", "bucket", id.bucket, "key", id.key, "chunk", first, "err", err)
}

// fillError wraps a fill failure. A fill that ran out of FillTimeout also
// wraps origin.ErrTimeout so the proxy maps it like any origin timeout.
func fillError(id *objectID, idx int64, ctx context.Context, err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF // the origin sent fewer bytes than the object has
	}
	if ctx.Err() == context.DeadlineExceeded && !errors.Is(err, origin.ErrTimeout) {
		return fmt.Errorf("cache: fill %s/%s chunk %d: %w: %w", id.bucket, id.key, idx, origin.ErrTimeout, err)
	}
	return fmt.Errorf("cache: fill %s/%s chunk %d: %w", id.bucket, id.key, idx, err)
}
