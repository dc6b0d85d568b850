package limiter

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// gcra is the Generic Cell Rate Algorithm in one round trip. The key holds
// the client's theoretical arrival time (TAT) in microseconds of Redis's own
// clock, so nodes with skewed clocks still agree. ARGV[1] is the emission
// interval (µs per request), ARGV[2] the burst tolerance (burst × interval).
// It returns {1, 0} when admitted, {0, µs until admissible} otherwise, and
// the key expires once it would no longer constrain anything.
var gcra = redis.NewScript(`
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local new = tat + interval
local allow_at = new - tolerance
if allow_at > now then
  return {0, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%d', new), 'PX', math.ceil((new - now) / 1000))
return {1, 0}
`)

// redisAllow asks Redis whether id may make a request, within the
// configured budget. Any failure admits (the local limit already passed)
// and keeps Redis out of the path for Config.Redis.Backoff.
func (l *Limiter) redisAllow(id string, now time.Time) (bool, time.Duration) {
	if now.UnixNano() < l.redisUntil.Load() {
		l.redisFallback.Add(1)
		return true, 0
	}
	interval := max(int64(1e6/l.s.RequestRate), 1)
	tolerance := interval * int64(l.s.RequestBurst)
	key := l.s.Redis.KeyPrefix + id

	// The call runs in its own goroutine so the budget holds even when the
	// client was built without ContextTimeoutEnabled (go-redis then uses
	// its ReadTimeout, 3s by default, whatever the context says).
	type result struct {
		v   []int64
		err error
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.s.Redis.Timeout)
	defer cancel()
	ch := make(chan result, 1)
	go func() {
		v, err := gcra.Run(ctx, l.rdb, []string{key}, interval, tolerance).Int64Slice()
		ch <- result{v, err}
	}()
	var res result
	select {
	case res = <-ch:
	case <-ctx.Done():
		res.err = ctx.Err()
	}
	if res.err == nil && len(res.v) != 2 {
		res.err = errBadReply
	}
	if res.err != nil {
		l.redisUntil.Store(now.Add(l.s.Redis.Backoff).UnixNano())
		l.redisFallback.Add(1)
		l.log.Warn("limiter: redis request-rate check failed; using the local limit",
			"backoff", l.s.Redis.Backoff, "err", res.err)
		return true, 0
	}
	if res.v[0] == 1 {
		return true, 0
	}
	return false, time.Duration(res.v[1]) * time.Microsecond
}

type redisError string

func (e redisError) Error() string { return string(e) }

const errBadReply = redisError("limiter: redis: unexpected GCRA reply")
