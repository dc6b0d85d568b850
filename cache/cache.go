// Package cache keeps object bytes close to the clients: a memory tier
// (ristretto, TinyLFU admission), an optional disk tier (files with
// checksums, LRU by bytes) and a metadata tier (Stat results with a TTL,
// negative entries and stale-if-error), in front of an Origin.
//
// Objects are stored as fixed-size chunks named by bucket, key, ETag and
// index, so two versions of an object never mix bytes and a range touches
// only the chunks it needs. Misses are coalesced per chunk: however many
// readers want a missing chunk, one origin request fetches it, on a context
// no client can cancel, and every reader streams chunks as they land.
//
// *Cache has exactly origin.Store's Stat and Open, so the proxy runs the same
// with or without it.
package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"golang.org/x/sync/semaphore"
	"golang.org/x/sync/singleflight"

	"github.com/edgeproxy/edgeproxy/internal/logging"
	"github.com/edgeproxy/edgeproxy/origin"
)

// Origin is what the cache needs of an object store; origin.Store
// satisfies it. Implementations must be safe for concurrent use, and Open
// must honour its etag argument (fail with origin.ErrChanged rather than
// return bytes of another version): the cache stores whatever Open returns
// under that ETag.
type Origin interface {
	Stat(ctx context.Context, bucket, key string) (origin.Info, error)
	Open(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error)
}

var _ Origin = origin.Store(nil)

// errClosed is returned by calls made after Close.
var errClosed = errors.New("cache: closed")

// logInterval is the least time between two log lines about the same kind
// of failure, so an outage or a dead disk does not flood the log.
const logInterval = 10 * time.Second

// Cache is a chunked read-through cache in front of an Origin. It is safe
// for concurrent use.
type Cache struct {
	cfg    Config
	origin Origin
	log    *slog.Logger
	now    func() time.Time // clock.now; tests substitute a fake clock
	clock  *coarseClock
	span   span
	window int64 // chunks per origin request (Readahead / ChunkSize)

	mem  *ristretto.Cache[uint64, *chunk]
	meta *metaTier
	disk *diskTier // nil when the disk tier is disabled
	// pinned is the bytes of chunks readers hold that the memory tier let
	// go of; they come out of its budget (pin.go). pinMu orders updates.
	pinMu  sync.Mutex
	pinned atomic.Int64
	// promoting counts promotions from disk in flight (maxPromotions).
	promoting atomic.Int64

	metaGroup singleflight.Group
	fillSem   *semaphore.Weighted

	fmu      sync.Mutex
	inflight map[slotKey]*slot // chunks being fetched, guarded by fmu
	closed   bool              // guarded by fmu
	bg       sync.WaitGroup    // fills and revalidations; Add only under fmu while !closed

	st        counters
	originLog logLimiter
}

// New builds a cache in front of o. With a disk directory configured it
// claims the directory (see DiskDirError: an existing directory must be
// empty or carry the cache's marker file) and scans it to rebuild the disk
// index, so a restarted process starts warm. It fails if the directory is
// not the cache's own or cannot be created or read. A nil log discards
// messages.
func New(cfg Config, o Origin, log *slog.Logger) (*Cache, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if o == nil {
		return nil, errors.New("cache: origin is nil")
	}
	log = logging.For(log, "cache")
	c := &Cache{
		cfg:      cfg,
		origin:   o,
		log:      log,
		clock:    newCoarseClock(),
		span:     span{cfg.ChunkSize},
		window:   cfg.Readahead / cfg.ChunkSize,
		meta:     newMetaTier(cfg.MetaEntries),
		fillSem:  semaphore.NewWeighted(cfg.FillMemory),
		inflight: make(map[slotKey]*slot),
	}
	c.now = c.clock.now
	c.mem, err = ristretto.NewCache(&ristretto.Config[uint64, *chunk]{
		NumCounters: 10 * cfg.MemoryItems,
		MaxCost:     cfg.MemoryBytes,
		BufferItems: 64,
		OnExit:      c.exited,
	})
	if err != nil {
		c.clock.stop()
		return nil, fmt.Errorf("cache: memory tier: %w", err)
	}
	if cfg.DiskDir != "" {
		c.disk, err = openDisk(cfg.DiskDir, cfg.DiskBytes, cfg.DiskQueue, c)
		if err != nil {
			c.mem.Close()
			c.clock.stop()
			return nil, err
		}
	}
	return c, nil
}

// Check validates cfg as New does, and checks that cfg.DiskDir could be
// claimed, without creating, writing or removing anything: it is what
// "edgeproxy -check" runs. A missing directory passes (New creates it).
func Check(cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	if cfg.DiskDir != "" {
		if _, err := checkDiskDir(cfg.DiskDir); err != nil {
			return err
		}
	}
	return nil
}

// Wait blocks until chunks handed to the memory tier so far have been
// admitted or dropped (ristretto applies Set asynchronously) and the disk
// tier's start-up scan has indexed the files it found. It exists for tests
// and for warm-up code that must observe its own effect; serving never
// needs it.
func (c *Cache) Wait() {
	if c.disk != nil {
		c.disk.waitScan()
	}
	c.mem.Wait()
}

// Close waits for fills and revalidations in flight, flushes the disk
// write queue, and releases the memory tier. Call it after every reader is
// closed and no other call is in progress; calls after Close fail.
func (c *Cache) Close() error {
	c.fmu.Lock()
	if c.closed {
		c.fmu.Unlock()
		return nil
	}
	c.closed = true
	c.fmu.Unlock()
	c.bg.Wait()
	if c.disk != nil {
		c.disk.close()
	}
	c.mem.Close()
	c.clock.stop()
	return nil
}

// enterBackground registers a background operation, or reports false after
// Close. The caller must call c.bg.Done.
func (c *Cache) enterBackground() bool {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	if c.closed {
		return false
	}
	c.bg.Add(1)
	return true
}

// Open returns a reader of bytes [off, off+n) of the object, served from
// memory, disk or origin chunk by chunk. When etag is not empty it names
// the version wanted: a cached copy of that version is served without
// asking the origin, and if the object now has another ETag the error wraps
// origin.ErrChanged. The caller guarantees 0 <= off, n > 0 and off+n <= Size
// (an out-of-range request is an error). The strings must not be modified
// while the reader is open.
//
// Open returns once the first chunk is available, so a cold read starts
// streaming after one chunk; an origin failure on the first chunk is
// returned here, later ones by Read/WriteTo. The returned reader also
// implements io.WriterTo and CacheStatus() string.
func (c *Cache) Open(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error) {
	e, err := c.resolve(ctx, bucket, key, etag)
	if err != nil {
		return nil, err
	}
	if off < 0 || n <= 0 || off > e.id.size-n {
		return nil, fmt.Errorf("cache: open %s/%s: range at %d of %d bytes outside object of %d bytes", bucket, key, off, n, e.id.size)
	}
	r := readerPool.Get().(*Reader)
	r.c, r.ctx, r.id, r.staleErr = c, ctx, e.id, e.staleErr
	r.pos, r.end = off, off+n
	r.span.short = n <= maxMappedRange
	r.last = c.span.index(off + n - 1)
	if err := r.start(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Purge drops everything cached about bucket/key: metadata, the memory
// chunks of the version the metadata names, and every version's disk
// chunks. It returns 1 if anything was cached, else 0. Fills in flight are
// not interrupted; what they store afterwards is still correct for its ETag.
func (c *Cache) Purge(bucket, key string) int {
	found := false
	if e := c.meta.remove(bucket, key); e != nil {
		found = true
		if e.id != nil {
			c.dropVersion(e.id)
		}
	}
	if c.disk != nil && c.disk.removeObject(keyHash(bucket, key)) > 0 {
		found = true
	}
	if found {
		c.st.purged.Add(1)
		return 1
	}
	return 0
}

// PurgePrefix purges every object of bucket whose key starts with prefix
// (as Purge) and returns how many objects had something cached. After a
// restart it reads one chunk header per object on disk to learn its key.
func (c *Cache) PurgePrefix(bucket, prefix string) int {
	keys := make(map[string]struct{})
	for k, e := range c.meta.removePrefix(bucket, prefix) {
		keys[k] = struct{}{}
		if e.id != nil {
			c.dropVersion(e.id)
		}
	}
	if c.disk != nil {
		for _, k := range c.disk.removePrefix(bucket, prefix) {
			keys[k] = struct{}{}
		}
	}
	c.st.purged.Add(int64(len(keys)))
	return len(keys)
}

// maxEagerDrop bounds how many memory chunks dropVersion deletes one by one;
// beyond it the unreachable chunks are left to age out of the memory tier.
const maxEagerDrop = 1 << 16

// dropVersion removes the chunks of a version that can no longer be served
// (its object changed, vanished or was purged) instead of waiting for them
// to age out.
func (c *Cache) dropVersion(id *objectID) {
	if !c.enterBackground() {
		return
	}
	defer c.bg.Done()
	if n := c.span.count(id.size); n <= maxEagerDrop {
		for idx := range n {
			c.mem.Del(memKey(id, idx))
		}
	}
	if c.disk != nil {
		c.disk.removeVersion(id.kh, id.eh)
	}
}

// memGet returns chunk idx of id from the memory tier, or nil. The identity
// check makes a 64-bit key collision a miss instead of wrong bytes.
func (c *Cache) memGet(id *objectID, idx int64) *chunk {
	ch, ok := c.mem.Get(memKey(id, idx))
	if !ok || ch == nil || ch.idx != idx || !ch.id.same(id) {
		return nil
	}
	return ch
}

// memSet offers a chunk to the memory tier; TinyLFU may decline it. A Set
// that ristretto drops (its buffer full) gets no OnExit, so it counts as
// one here.
func (c *Cache) memSet(ch *chunk) {
	if !c.mem.Set(memKey(ch.id, ch.idx), ch, int64(len(ch.data))) {
		c.exited(ch)
	}
}

// present reports whether chunk idx of id is in memory or on disk.
func (c *Cache) present(id *objectID, idx int64) bool {
	return c.memGet(id, idx) != nil || (c.disk != nil && c.disk.has(id, idx))
}

// logLimiter lets one message through per logInterval.
type logLimiter struct{ last atomic.Int64 }

func (c *Cache) logLimited(l *logLimiter, msg string, args ...any) {
	now := c.now().UnixNano()
	last := l.last.Load()
	if last != 0 && now-last < int64(logInterval) {
		return
	}
	if l.last.CompareAndSwap(last, now) {
		c.log.Warn("cache: "+msg, args...)
	}
}

// clockTick is the resolution of the cache's clock. TTLs are seconds, so
// 10ms is plenty.
const clockTick = 10 * time.Millisecond

// coarseClock is a wall clock read from an atomic, refreshed every
// clockTick. time.Now costs 50-80ns on some virtual machines (no vDSO
// clock source), a sixth of a memory hit; reading an atomic costs ~1ns.
type coarseClock struct {
	ns   atomic.Int64
	done chan struct{}
}

func newCoarseClock() *coarseClock {
	c := &coarseClock{done: make(chan struct{})}
	c.ns.Store(time.Now().UnixNano())
	go func() {
		t := time.NewTicker(clockTick)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				c.ns.Store(now.UnixNano())
			case <-c.done:
				return
			}
		}
	}()
	return c
}

func (c *coarseClock) now() time.Time { return time.Unix(0, c.ns.Load()) }

func (c *coarseClock) stop() { close(c.done) }
