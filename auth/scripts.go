package auth

import "github.com/redis/go-redis/v9"

// Both scripts touch only KEYS[1], the token's own key, so they run on any
// Redis deployment, Cluster included.

// lookupScript returns {type, pttl, value...}: for the string form the
// stored string, for the hash form the fields named in ARGV (nil when
// absent), and just {type} when the key does not exist. One round trip
// whatever the form, and the use-counting fields are never transferred.
var lookupScript = redis.NewScript(`
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'string' then
  return {t, redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[1])}
elseif t == 'hash' then
  local r = {t, redis.call('PTTL', KEYS[1])}
  local v = redis.call('HMGET', KEYS[1], unpack(ARGV))
  for i = 1, #ARGV do r[i + 2] = v[i] end
  return r
end
return {t}
`)

// Results of useScript.
const (
	useGone      = -1 // the key vanished (revoked or expired) since the lookup
	useExhausted = 0  // a new session, but max_uses sessions have started already
	useContinued = 1  // the request belongs to a session that is still live
	useStarted   = 2  // a new session; it consumed one use
)

// useScript counts a use of a max_uses token. KEYS[1] is the token hash;
// ARGV: session field, now (unix ms), idle window (ms).
//
// State lives in the token hash itself: "uses" (sessions started) and one
// field per session holding its last-seen time. A request whose session was
// seen less than the idle window ago refreshes it and is free; otherwise it
// starts a session, which takes a use if any is left. Sessions fields are
// created only when a use is taken, so the hash holds at most max_uses of
// them, and they vanish with the key.
var useScript = redis.NewScript(`
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then return -1 end
local max = tonumber(redis.call('HGET', KEYS[1], 'max_uses') or '')
if not max or max <= 0 then return 1 end
local now = tonumber(ARGV[2])
local last = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '')
if last and now - last < tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
local uses = tonumber(redis.call('HGET', KEYS[1], 'uses') or '') or 0
if uses >= max then return 0 end
redis.call('HSET', KEYS[1], 'uses', uses + 1, ARGV[1], ARGV[2])
return 2
`)
