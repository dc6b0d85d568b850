package stats

import (
	"context"
	"errors"
	"hash/maphash"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// accessShards spreads Access over this many locks so concurrent requests
// for different files rarely meet; 64 is well past the core counts edge
// nodes run on.
const accessShards = 64

// flushChunk bounds the files written by one pipeline, so a flush after a
// long outage does not build one enormous request.
const flushChunk = 5000

// accessShard is one lock and its counts, padded to its own cache line.
type accessShard struct {
	mu      sync.Mutex
	m       map[string]int64
	counted int64 // entries of m counted in Recorder.live
	_       [40]byte
}

// Access counts one access of fileID. It only touches memory (one short
// lock on a shard); the count reaches Redis with the next flush. When
// MaxPending distinct files are already held, an access to a further file
// is dropped and counted; files already held keep counting. fileID must
// not alias memory the caller reuses (fasthttp buffers): copy it first.
func (r *Recorder) Access(fileID string) {
	if r.closed.Load() {
		return
	}
	sh := &r.shards[maphash.String(r.seed, fileID)%accessShards]
	sh.mu.Lock()
	if n, ok := sh.m[fileID]; ok {
		sh.m[fileID] = n + 1
		sh.mu.Unlock()
		return
	}
	if r.live.Add(1)+r.pendingN.Load() <= int64(r.cfg.MaxPending) {
		sh.m[fileID] = 1
		sh.counted++
		sh.mu.Unlock()
		return
	}
	r.live.Add(-1)
	// Over the bound: only files already held from a failed flush count.
	if held := r.held.Load(); held != nil {
		if _, ok := (*held)[fileID]; ok {
			sh.m[fileID] = 1
			sh.mu.Unlock()
			return
		}
	}
	sh.mu.Unlock()
	r.m.droppedAccesses.Add(1)
}

// flushOnce flushes the pending counts; the Recorder runs it every
// FlushInterval.
func (r *Recorder) flushOnce() {
	ctx, cancel := r.batchCtx()
	defer cancel()
	if err := r.Flush(ctx); err != nil {
		r.log.Warn("stats: access flush failed; counts kept for the next", "err", err, "pending", r.pendingN.Load())
	}
}

// Flush writes the access counts gathered so far now, instead of waiting
// for the next FlushInterval tick: per file INCRBY file:access:<id> n,
// EXPIRE it AccessTTL, and ZINCRBY HotKey n id, pipelined. Counts whose
// INCRBY failed are kept and merged into the next flush, within
// MaxPending. Delivery is at least once: a flush whose replies are lost
// after Redis applied it is counted again by the next.
func (r *Recorder) Flush(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.drainShardsLocked()
	if len(r.pending) == 0 {
		return nil
	}
	r.publishHeldLocked() // Access may consult it while the pipeline runs
	r.m.flushes.Add(1)
	type item struct {
		id   string
		incr *redis.IntCmd
	}
	items := make([]item, 0, min(len(r.pending), flushChunk))
	var errs []error
	hotKey := r.hotKey(r.now())
	flushChunkFn := func() {
		pipe := r.rdb.Pipeline()
		for i := range items {
			key := AccessKeyPrefix + items[i].id
			n := r.pending[items[i].id]
			items[i].incr = pipe.IncrBy(ctx, key, n)
			pipe.Expire(ctx, key, r.cfg.AccessTTL)
			pipe.ZIncrBy(ctx, hotKey, float64(n), items[i].id)
		}
		if r.cfg.HotDaily {
			pipe.Expire(ctx, hotKey, hotDayTTL)
		}
		_, err := pipe.Exec(ctx)
		sent := 0
		for _, it := range items {
			// A file whose INCRBY was applied is delivered even if its
			// EXPIRE or ZINCRBY failed: resending would count it twice.
			if it.incr.Err() == nil {
				delete(r.pending, it.id)
				r.heldStale = true
				sent++
			}
		}
		r.m.flushedCommands.Add(int64(3 * sent))
		if err != nil {
			errs = append(errs, err)
		}
		items = items[:0]
	}
	for id := range r.pending {
		items = append(items, item{id: id})
		if len(items) == flushChunk {
			flushChunkFn()
		}
	}
	if len(items) > 0 {
		flushChunkFn()
	}
	r.publishHeldLocked()
	if len(errs) > 0 {
		r.m.flushFailures.Add(1)
		return wrap("flush access counts", errors.Join(errs...))
	}
	return nil
}

// drainShardsLocked moves the shards' counts into pending, dropping (and
// counting) files beyond MaxPending. The caller holds flushMu.
func (r *Recorder) drainShardsLocked() {
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		m := sh.m
		if len(m) == 0 {
			sh.mu.Unlock()
			continue
		}
		counted := sh.counted
		sh.m, sh.counted = make(map[string]int64, len(m)), 0
		sh.mu.Unlock()
		r.live.Add(-counted)
		for id, n := range m {
			if old, ok := r.pending[id]; ok {
				r.pending[id] = old + n
			} else if len(r.pending) < r.cfg.MaxPending {
				r.pending[id] = n
				r.heldStale = true
			} else {
				r.m.droppedAccesses.Add(n)
			}
		}
		r.pendingN.Store(int64(len(r.pending)))
	}
}

// publishHeldLocked records len(pending) and, when counts are held across
// a failed flush, a read-only copy of their ids for Access. The copy costs
// O(pending), only when the set of ids changed during an outage. The
// caller holds flushMu.
func (r *Recorder) publishHeldLocked() {
	r.pendingN.Store(int64(len(r.pending)))
	if !r.heldStale {
		return
	}
	r.heldStale = false
	if len(r.pending) == 0 {
		r.held.Store(nil)
		return
	}
	held := make(map[string]struct{}, len(r.pending))
	for id := range r.pending {
		held[id] = struct{}{}
	}
	r.held.Store(&held)
}

// pendingFiles is the number of distinct files whose counts are held.
func (r *Recorder) pendingFiles() int {
	return int(r.live.Load() + r.pendingN.Load())
}

// readAndReset returns a counter and deletes it in one step, so an INCRBY
// from any node lands either in the value returned or in the next counter,
// never in between.
var readAndReset = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
redis.call('DEL', KEYS[1])
return tonumber(v)
`)

// ReadAndReset atomically returns a file's access counter and zeroes it,
// for backends that move counts into their database: adding what each call
// returns never loses or double counts an access Redis has received.
// Accesses still in this node's memory arrive with its next flush and are
// returned by a later call. A missing counter reads as 0.
func (r *Recorder) ReadAndReset(ctx context.Context, fileID string) (int64, error) {
	n, err := readAndReset.Run(ctx, r.rdb, []string{AccessKeyPrefix + fileID}).Int64()
	if err != nil {
		return 0, wrap("read and reset "+fileID, err)
	}
	return n, nil
}

// Count returns a file's access counter in Redis: the accesses flushed by
// every node within AccessTTL, less those taken by ReadAndReset. A missing
// counter reads as 0.
func (r *Recorder) Count(ctx context.Context, fileID string) (int64, error) {
	n, err := r.rdb.Get(ctx, AccessKeyPrefix+fileID).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, wrap("count "+fileID, err)
	}
	return n, nil
}

// hotDayTTL keeps a daily hot set for today and tomorrow (as yesterday).
const hotDayTTL = 48 * time.Hour

// hotKey is the sorted set flushes add to at time now.
func (r *Recorder) hotKey(now time.Time) string {
	if !r.cfg.HotDaily {
		return r.cfg.HotKey
	}
	return r.cfg.HotKey + ":" + now.UTC().Format("20060102")
}

// hotTwoDays ranks the sum of two daily hot sets. KEYS[3] is scratch,
// created and deleted within the script.
var hotTwoDays = redis.NewScript(`
redis.call('ZUNIONSTORE', KEYS[3], 2, KEYS[1], KEYS[2])
local top = redis.call('ZREVRANGE', KEYS[3], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
redis.call('DEL', KEYS[3])
return top
`)

// HotFile is one entry of the hot set.
type HotFile struct {
	FileID   string
	Accesses int64
}

// Hot returns the n most accessed files of the hot set (with HotDaily, of
// today and yesterday together), most accessed first. n <= 0 returns
// nothing.
func (r *Recorder) Hot(ctx context.Context, n int) ([]HotFile, error) {
	if n <= 0 {
		return nil, nil
	}
	if !r.cfg.HotDaily {
		zs, err := r.rdb.ZRevRangeWithScores(ctx, r.cfg.HotKey, 0, int64(n-1)).Result()
		if err != nil {
			return nil, wrap("hot set", err)
		}
		out := make([]HotFile, 0, len(zs))
		for _, z := range zs {
			id, _ := z.Member.(string)
			out = append(out, HotFile{FileID: id, Accesses: int64(z.Score)})
		}
		return out, nil
	}
	now := r.now()
	keys := []string{r.hotKey(now), r.hotKey(now.AddDate(0, 0, -1)), r.cfg.HotKey + ":scratch"}
	flat, err := hotTwoDays.Run(ctx, r.rdb, keys, n).StringSlice()
	if err != nil {
		return nil, wrap("hot set", err)
	}
	out := make([]HotFile, 0, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		score, err := strconv.ParseFloat(flat[i+1], 64)
		if err != nil {
			return nil, wrap("hot set", err)
		}
		out = append(out, HotFile{FileID: flat[i], Accesses: int64(score)})
	}
	return out, nil
}

// ErrNoTask is returned by Task when the task hash does not exist (never
// started, or expired after ProgressTTL).
var ErrNoTask = errors.New("stats: no such task")

// Task returns the progress hash of one download task (see TaskID) as
// Redis holds it, fields as strings. It is the one reader of that hash
// outside this package, so callers need not know the key layout.
func (r *Recorder) Task(ctx context.Context, id string) (map[string]string, error) {
	h, err := r.rdb.HGetAll(ctx, TaskKeyPrefix+id).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, wrap("task "+id, err)
	}
	if len(h) == 0 {
		return nil, ErrNoTask
	}
	return h, nil
}
