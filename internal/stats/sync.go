package stats

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// SyncPendingKey is the hash holding the counts of an access-count sync
// run between their removal from the counters and their commit to the
// database (catalogdb's Syncer). Fields: "_run" (the run id), "_period"
// (unix seconds), "_sealed" once the counts are being committed, and
// "n:<file id>" per file. It does not match AccessKeyPrefix+"*".
const SyncPendingKey = "file:access-sync:pending"

// ErrSyncStale is returned by the sync steps when the pending hash belongs
// to another run (or was sealed): a syncer that lost its lock must stop.
var ErrSyncStale = errors.New("stats: sync run is not the pending one")

// beginSync creates the pending hash for run unless one exists.
var beginSync = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], '_run', ARGV[1], '_period', ARGV[2])
return 1
`)

// moveToSync moves one counter into the pending hash of run ARGV[1]: GET,
// DEL and HINCRBY in one step, so an increment is in exactly one place.
var moveToSync = redis.NewScript(`
if redis.call('HGET', KEYS[2], '_run') ~= ARGV[1] or redis.call('HEXISTS', KEYS[2], '_sealed') == 1 then
  return redis.error_reply('STALE sync run')
end
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HINCRBY', KEYS[2], ARGV[2], v)
return tonumber(v)
`)

// sealSync marks the pending hash of run ARGV[1] sealed and returns it.
var sealSync = redis.NewScript(`
if redis.call('HGET', KEYS[1], '_run') ~= ARGV[1] then
  return redis.error_reply('STALE sync run')
end
redis.call('HSET', KEYS[1], '_sealed', '1')
return redis.call('HGETALL', KEYS[1])
`)

// finishSync deletes the pending hash of run ARGV[1].
var finishSync = redis.NewScript(`
if redis.call('HGET', KEYS[1], '_run') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
`)

// PendingSync returns the run id of an unfinished sync run, or "" when
// there is none.
func (r *Recorder) PendingSync(ctx context.Context) (string, error) {
	run, err := r.rdb.HGet(ctx, SyncPendingKey, "_run").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", wrap("pending sync", err)
	}
	return run, nil
}

// BeginSync starts run for period; it fails with ErrSyncStale when
// another run is pending.
func (r *Recorder) BeginSync(ctx context.Context, run string, period time.Time) error {
	ok, err := beginSync.Run(ctx, r.rdb, []string{SyncPendingKey}, run, period.Unix()).Int()
	if err != nil {
		return wrap("begin sync", err)
	}
	if ok == 0 {
		return ErrSyncStale
	}
	return nil
}

// MoveToSync moves every access counter into run's pending hash and
// returns how many counters it moved. Counters created meanwhile are left
// for the next run. It needs a standalone Redis (or Sentinel): on a
// Cluster the pending hash and the counters are on different slots.
func (r *Recorder) MoveToSync(ctx context.Context, run string) (int, error) {
	// Loaded once per run, so the pipelines below can use EVALSHA.
	if err := moveToSync.Load(ctx, r.rdb).Err(); err != nil {
		return 0, wrap("sync load script", err)
	}
	moved := 0
	var cursor uint64
	for {
		keys, next, err := r.rdb.Scan(ctx, cursor, AccessKeyPrefix+"*", 1000).Result()
		if err != nil {
			return moved, wrap("sync scan", err)
		}
		if len(keys) > 0 {
			pipe := r.rdb.Pipeline()
			cmds := make([]*redis.Cmd, len(keys))
			for i, k := range keys {
				cmds[i] = moveToSync.EvalSha(ctx, pipe, []string{k, SyncPendingKey}, run, "n:"+strings.TrimPrefix(k, AccessKeyPrefix))
			}
			pipe.Exec(ctx) // errors are read per command
			for _, c := range cmds {
				if err := c.Err(); err != nil {
					if strings.Contains(err.Error(), "STALE") {
						return moved, ErrSyncStale
					}
					return moved, wrap("sync move", err)
				}
				if n, _ := c.Int64(); n > 0 {
					moved++
				}
			}
		}
		cursor = next
		if cursor == 0 {
			return moved, nil
		}
	}
}

// SealSync stops further moves into run's pending hash and returns its
// period and counts per file. Sealing an already sealed run returns the
// same counts, so a replay after a crash commits what the first try did.
func (r *Recorder) SealSync(ctx context.Context, run string) (time.Time, map[string]int64, error) {
	flat, err := sealSync.Run(ctx, r.rdb, []string{SyncPendingKey}, run).StringSlice()
	if err != nil {
		if strings.Contains(err.Error(), "STALE") {
			return time.Time{}, nil, ErrSyncStale
		}
		return time.Time{}, nil, wrap("seal sync", err)
	}
	var period time.Time
	counts := make(map[string]int64, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		f, v := flat[i], flat[i+1]
		switch {
		case f == "_period":
			sec, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return time.Time{}, nil, fmt.Errorf("stats: seal sync: bad _period %q", v)
			}
			period = time.Unix(sec, 0).UTC()
		case strings.HasPrefix(f, "n:"):
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return time.Time{}, nil, fmt.Errorf("stats: seal sync: bad count %q for %q", v, f)
			}
			if n != 0 {
				counts[f[2:]] = n
			}
		}
	}
	return period, counts, nil
}

// FinishSync deletes run's pending hash once its counts are committed.
func (r *Recorder) FinishSync(ctx context.Context, run string) error {
	if err := finishSync.Run(ctx, r.rdb, []string{SyncPendingKey}, run).Err(); err != nil {
		return wrap("finish sync", err)
	}
	return nil
}
