package stats

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// writeBatch bounds the updates or log entries sent in one pipeline.
const writeBatch = 512

// progressScript writes one task update and publishes status changes. It
// runs in Redis so the decision "did the status change" is made against
// the stored hash, not this node's memory: COMPLETED is final and published
// once per task even if a write is retried after a lost reply, the task was
// evicted here and downloaded again, or another node also completes it.
// bytes_delivered never decreases for the same bytes_total (two nodes each
// report their own distinct bytes; the larger stays), and PENDING is only
// written to a hash that does not exist yet.
//
// KEYS[1] download:task:<id>
// ARGV status, bytes_delivered, bytes_total, task_id, file_id, user_id,
// node, ttl_ms, channel, updated_at_ms
// Returns 0 ignored, 1 written, 2 written and published.
var progressScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'status')
local st = ARGV[1]
if cur == 'COMPLETED' or (cur and st == 'PENDING') then return 0 end
local delivered = tonumber(ARGV[2])
if redis.call('HGET', KEYS[1], 'bytes_total') == ARGV[3] then
  local old = tonumber(redis.call('HGET', KEYS[1], 'bytes_delivered'))
  if old and old > delivered then delivered = old end
end
local ds = string.format('%d', delivered)
redis.call('HSET', KEYS[1], 'status', st, 'bytes_delivered', ds, 'bytes_total', ARGV[3],
  'file_id', ARGV[5], 'user_id', ARGV[6], 'node', ARGV[7], 'updated_at', ARGV[10])
redis.call('PEXPIRE', KEYS[1], ARGV[8])
if cur == st then return 1 end
redis.call('PUBLISH', ARGV[9], '{"task_id":' .. cjson.encode(ARGV[4]) ..
  ',"file_id":' .. cjson.encode(ARGV[5]) .. ',"user_id":' .. cjson.encode(ARGV[6]) ..
  ',"status":"' .. st .. '","bytes_delivered":' .. ds .. ',"bytes_total":' .. ARGV[3] .. '}')
return 2
`)

// writeBatches drains ch until Close, one batch at a time: a batch starts
// with the first queued item, lingers up to writeLinger for company, takes
// whatever else is queued (up to writeBatch) and is written under one batch
// context. The progress updates and the download log share it.
func writeBatches[T any](r *Recorder, ch <-chan T, write func(context.Context, []T)) {
	defer r.wg.Done()
	batch := make([]T, 0, writeBatch)
	linger := time.NewTimer(writeLinger)
	defer linger.Stop()
	for {
		select {
		case <-r.stop:
			return
		case x := <-ch:
			batch = append(batch[:0], x)
			lingerFor(linger, r.stop, ch)
			batch = fillBatch(batch, ch)
			ctx, cancel := r.batchCtx()
			write(ctx, batch)
			cancel()
			clear(batch) // let what the items point to (finished transfers) go
		}
	}
}

// every runs fn every interval until Close.
func (r *Recorder) every(interval time.Duration, fn func()) {
	defer r.wg.Done()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-tick.C:
			fn()
		}
	}
}

// writeLinger is how long a background writer lets a batch gather after
// its first item arrives. Handing items one by one to a writer that is
// parked costs a wake-up (a futex call) per item on the request path and a
// Redis round trip per item in the background; after waiting, one wake-up
// and one round trip carry everything queued meanwhile. Items are written
// at most this much later, and a queue of DefaultLogQueue or
// DefaultProgressQueue fills in this time only past 2M items a second.
const writeLinger = 5 * time.Millisecond

// lingerFor waits writeLinger, unless a full batch is already queued or
// Close has begun.
func lingerFor[T any](t *time.Timer, stop <-chan struct{}, ch <-chan T) {
	if len(ch) >= writeBatch-1 {
		return
	}
	t.Reset(writeLinger)
	select {
	case <-t.C:
	case <-stop:
		t.Stop()
	}
}

// fillBatch appends to batch what is waiting in ch, up to writeBatch.
func fillBatch[T any](batch []T, ch <-chan T) []T {
	for len(batch) < writeBatch {
		select {
		case v := <-ch:
			batch = append(batch, v)
		default:
			return batch
		}
	}
	return batch
}

// drainUpdates writes what is queued, for Close.
func (r *Recorder) drainUpdates(ctx context.Context) error {
	batch := make([]update, 0, writeBatch)
	for {
		batch = fillBatch(batch[:0], r.updates)
		if len(batch) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			r.m.progressDropped.Add(int64(len(batch) + len(r.updates)))
			return wrap("close: progress updates", err)
		}
		if n := r.writeUpdates(ctx, batch); n > 0 {
			return wrap("close: progress updates", errors.New(strconv.Itoa(n)+" failed"))
		}
	}
}

// writeUpdates writes batch in one pipeline (two if the script had to be
// loaded) and returns how many failed. Failed tasks are marked for the
// next sweep with their then current state.
func (r *Recorder) writeUpdates(ctx context.Context, batch []update) int {
	if !r.scriptOK.Load() {
		if err := progressScript.Load(ctx, r.rdb).Err(); err == nil {
			r.scriptOK.Store(true)
		}
	}
	failed := r.evalUpdates(ctx, batch)
	if len(failed) > 0 && isNoScript(failed[0].err) {
		// Redis restarted (or flushed its scripts): load and retry once.
		r.scriptOK.Store(false)
		if err := progressScript.Load(ctx, r.rdb).Err(); err == nil {
			r.scriptOK.Store(true)
			retry := make([]update, len(failed))
			for i, f := range failed {
				retry[i] = f.u
			}
			failed = r.evalUpdates(ctx, retry)
		}
	}
	r.m.progressWrites.Add(int64(len(batch) - len(failed)))
	if len(failed) > 0 {
		r.m.progressFailures.Add(int64(len(failed)))
		r.log.Warn("stats: progress writes failed; retrying on the next sweep", "failed", len(failed), "err", failed[0].err)
		for _, f := range failed {
			r.markDirty(f.u.t)
		}
	}
	return len(failed)
}

type failedUpdate struct {
	u   update
	err error
}

// evalUpdates runs the progress script for each update in one pipeline.
func (r *Recorder) evalUpdates(ctx context.Context, batch []update) []failedUpdate {
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	ttl := strconv.FormatInt(r.cfg.ProgressTTL.Milliseconds(), 10)
	now := strconv.FormatInt(r.now().UnixMilli(), 10)
	for i, u := range batch {
		cmds[i] = progressScript.EvalSha(ctx, pipe, []string{TaskKeyPrefix + u.t.id},
			string(u.status), u.bytes, u.total, u.t.id, u.t.fileID, u.t.userID,
			r.cfg.NodeID, ttl, r.cfg.ProgressChannel, now)
	}
	_, err := pipe.Exec(ctx)
	if err == nil {
		return nil
	}
	var failed []failedUpdate
	for i, c := range cmds {
		if c.Err() != nil {
			failed = append(failed, failedUpdate{batch[i], c.Err()})
		}
	}
	if len(failed) == 0 { // Exec failed without failing a command
		for _, u := range batch {
			failed = append(failed, failedUpdate{u, err})
		}
	}
	return failed
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}
