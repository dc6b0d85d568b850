package cache

import (
	"context"
	"fmt"
	"io"
	"sync"
)

// Cache status values reported by Reader.CacheStatus.
const (
	StatusHit     = "HIT"     // every chunk of the range was cached
	StatusMiss    = "MISS"    // every chunk came from the origin
	StatusPartial = "PARTIAL" // some of each
	StatusStale   = "STALE"   // every chunk cached, metadata expired and the origin failing
)

// source says where a reader got a chunk.
type source uint8

const (
	srcMemory source = iota
	srcDisk
	srcOrigin
)

var readerPool = sync.Pool{New: func() any { return new(Reader) }}

// Reader streams one range of one object version out of the cache. It is
// what Cache.Open returns (as an io.ReadCloser).
//
// Readers are pooled so that a memory hit allocates nothing: Close returns
// the Reader to the pool, and using it after Close (including a second
// Close) is a bug that may corrupt another request's stream. A Reader is not
// safe for concurrent use.
type Reader struct {
	c        *Cache
	ctx      context.Context
	id       *objectID
	staleErr error // non-nil: metadata is stale, uncached bytes fail with it

	pos, end int64  // next byte to deliver and end of the range
	last     int64  // index of the range's last chunk
	cur      []byte // undelivered bytes of the current chunk, borrowed from it
	curSrc   source
	status   string
	err      error // sticky read error
}

// start decides the cache status, then loads the first chunk. The status
// goes out as a header before any byte, so it is decided up front: the
// chunks after the first are probed (a lookup each, not a read) before this
// reader starts any fill, and the first chunk's status is where it actually
// came from. A chunk evicted between the probe and its read is refetched
// without revising the status.
func (r *Reader) start() error {
	cached, missed := 0, 0
	for idx := r.c.span.index(r.pos) + 1; idx <= r.last; idx++ {
		if r.c.present(r.id, idx) {
			cached++
			continue
		}
		if r.staleErr != nil {
			// The origin is known to be failing: fail now, not mid-stream
			// after the headers went out.
			return r.staleErr
		}
		missed++
	}
	if err := r.next(); err != nil {
		return err
	}
	if r.curSrc == srcOrigin {
		missed++
	} else {
		cached++
	}
	switch {
	case missed == 0 && r.staleErr != nil:
		r.status = StatusStale
		r.c.st.staleServes.Add(1)
	case missed == 0:
		r.status = StatusHit
	case cached == 0:
		r.status = StatusMiss
	default:
		r.status = StatusPartial
	}
	return nil
}

// CacheStatus reports where the range's bytes come from: StatusHit,
// StatusMiss, StatusPartial or StatusStale. It is decided when Open
// returns.
func (r *Reader) CacheStatus() string { return r.status }

// Read implements io.Reader, copying from the cached chunks.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(r.cur) == 0 {
		if r.pos >= r.end {
			return 0, io.EOF
		}
		if err := r.next(); err != nil {
			r.err = err
			return 0, err
		}
	}
	n := copy(p, r.cur)
	r.advance(n)
	return n, nil
}

// WriteTo implements io.WriterTo: each chunk is handed to w straight from
// the cache's immutable slice, without a copy (w must not retain it, as
// io.Writer requires). fasthttp's SetBodyStream copies with WriterTo, and
// a large Write on an empty bufio.Writer goes straight to the socket.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if r.err != nil {
			return total, r.err
		}
		if len(r.cur) == 0 {
			if r.pos >= r.end {
				return total, nil
			}
			if err := r.next(); err != nil {
				r.err = err
				return total, err
			}
		}
		n, err := w.Write(r.cur)
		if n < 0 || n > len(r.cur) {
			n = 0 // a broken writer must not make us skip bytes
			if err == nil {
				err = fmt.Errorf("cache: writer returned invalid count")
			}
		}
		r.advance(n)
		total += int64(n)
		if err == nil && len(r.cur) > 0 && n == 0 {
			err = io.ErrShortWrite
		}
		if err != nil {
			r.err = err
			return total, err
		}
	}
}

// Close returns the reader to the pool. It never fails.
func (r *Reader) Close() error {
	if r.c == nil {
		return nil
	}
	*r = Reader{}
	readerPool.Put(r)
	return nil
}

// advance marks n bytes of the current chunk delivered.
func (r *Reader) advance(n int) {
	r.cur = r.cur[n:]
	r.pos += int64(n)
	switch r.curSrc {
	case srcMemory:
		r.c.st.bytesMem.Add(int64(n))
	case srcDisk:
		r.c.st.bytesDisk.Add(int64(n))
	default:
		r.c.st.bytesOrigin.Add(int64(n))
	}
}

// next makes the chunk holding r.pos current.
func (r *Reader) next() error {
	c := r.c
	idx := c.span.index(r.pos)
	data, src, err := r.load(idx)
	if err != nil {
		return err
	}
	if want := c.span.length(r.id.size, idx); int64(len(data)) != want {
		return fmt.Errorf("cache: bug: chunk %d of %s/%s has %d bytes, want %d", idx, r.id.bucket, r.id.key, len(data), want)
	}
	base := idx * c.span.size
	r.cur = data[r.pos-base : min(r.end-base, int64(len(data)))]
	r.curSrc = src
	return nil
}

// load returns chunk idx from memory, disk or origin, in that order.
func (r *Reader) load(idx int64) ([]byte, source, error) {
	c := r.c
	c.disk.seen(r.id, idx) // the disk policy counts reads served by any tier
	for attempt := range 3 {
		if ch := c.memGet(r.id, idx); ch != nil {
			c.st.memHits.Add(1)
			return ch.data, srcMemory, nil
		}
		if c.disk != nil {
			if ch := c.disk.get(r.id, idx); ch != nil {
				c.st.diskHits.Add(1)
				c.memSet(ch) // promotion; TinyLFU decides
				return ch.data, srcDisk, nil
			}
		}
		if r.staleErr != nil {
			return nil, 0, r.staleErr
		}
		s, joined, err := c.acquire(r.ctx, r.id, idx, r.last, attempt == 2)
		if err != nil {
			return nil, 0, err
		}
		if s == nil {
			continue // cached meanwhile: look again
		}
		if joined {
			c.st.coalesced.Add(1)
		}
		data, err := s.wait(r.ctx)
		if err != nil {
			return nil, 0, err
		}
		c.st.misses.Add(1)
		// Keep the next window in flight while this one is consumed.
		c.prefetch(r.ctx, r.id, idx+c.window, r.last)
		return data, srcOrigin, nil
	}
	panic("bug: cache: load: forced fill returned no slot")
}
