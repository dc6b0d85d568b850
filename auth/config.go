package auth

import (
	"fmt"
	"time"
)

// Config configures a Verifier. The zero value means the defaults given on
// each field; New fills them in and rejects values that make no sense,
// naming the field.
type Config struct {
	// KeyPrefix is prepended to a token to form its Redis key.
	// Default "download:token:".
	KeyPrefix string `yaml:"key_prefix"`

	// RevokeChannel is the Pub/Sub channel Revoke publishes on and every
	// Verifier listens to. Default "download:token:revoked".
	RevokeChannel string `yaml:"revoke_channel"`

	// Budget bounds the Redis time of one Verify (both round trips). A slower
	// answer is treated as Redis being down: auth_unavailable, or the cached
	// record with FailOpenCached. Default 50ms. Larger budgets ride out
	// latency spikes at the price of slower refusals during an outage.
	Budget time.Duration `yaml:"budget"`

	// RetryAfter is what auth_unavailable asks clients to wait. Default 2s.
	RetryAfter time.Duration `yaml:"retry_after"`

	// MaxInFlight bounds concurrent Redis lookups. When all are busy (Redis
	// slow or down) further lookups fail at once with auth_unavailable
	// instead of queueing, so an outage cannot pile up goroutines. Default 256.
	MaxInFlight int `yaml:"max_in_flight"`

	// CacheTTL is how long a positive lookup of a token without max_uses is
	// trusted without asking Redis again. Revocations are broadcast, so this
	// mostly bounds staleness when a broadcast is lost. Default 5s; negative
	// disables the cache.
	CacheTTL time.Duration `yaml:"cache_ttl"`

	// CacheSize bounds the number of cached tokens. Default 100000.
	CacheSize int `yaml:"cache_size"`

	// FailOpenCached serves tokens found in the local cache, even past
	// CacheTTL (up to FailOpenMaxAge), while Redis is unreachable or slow.
	// expires_at, the key's TTL and revocations received still apply; tokens
	// with max_uses are never cached so they always fail closed. Default
	// false: auth fails closed.
	FailOpenCached bool `yaml:"fail_open_cached"`

	// FailOpenMaxAge is how long a cached record may be served while Redis
	// is down, counted from when it was read. Default 10m. Only used with
	// FailOpenCached.
	FailOpenMaxAge time.Duration `yaml:"fail_open_max_age"`

	// SessionIdle is the idle window of a download session (see the package
	// documentation, "What counts as a use"). Default 10m. Shorter windows
	// make one-time links harder to share; longer ones tolerate clients that
	// pause longer between resumed ranges.
	SessionIdle time.Duration `yaml:"session_idle"`

	// SessionIgnoreIP leaves the client address out of the session identity,
	// for clients whose address changes in the middle of a download (mobile
	// networks, multi-exit NAT). Default false: each client network is its
	// own session, so a one-time link copied to another network is refused.
	SessionIgnoreIP bool `yaml:"session_ignore_ip"`

	// FailuresPerMinute is how many failed checks (token_invalid,
	// token_wrong_file) one client may make per minute before every check
	// from it is refused with too_many_attempts until the minute ends.
	// IPv6 clients are counted per /64. Default 20; negative disables.
	FailuresPerMinute int `yaml:"failures_per_minute"`

	// ThrottleSize bounds the number of clients whose failures are tracked
	// (least recently failing clients are forgotten first). Default 100000.
	ThrottleSize int `yaml:"throttle_size"`

	// DefaultTTL is the lifetime Create gives a token whose spec has no TTL.
	// Default 24h.
	DefaultTTL time.Duration `yaml:"default_ttl"`

	// MaxTTL caps the lifetime Create accepts. Default 720h (30 days).
	MaxTTL time.Duration `yaml:"max_ttl"`
}

// withDefaults returns c with zero fields set to their defaults, or an
// error naming the first invalid field. Every constructor taking a Config
// starts with it.
func (c Config) withDefaults() (Config, error) {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defD := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defI := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	def(&c.KeyPrefix, "download:token:")
	def(&c.RevokeChannel, "download:token:revoked")
	defD(&c.Budget, 50*time.Millisecond)
	defD(&c.RetryAfter, 2*time.Second)
	defI(&c.MaxInFlight, 256)
	defD(&c.CacheTTL, 5*time.Second)
	defI(&c.CacheSize, 100_000)
	defD(&c.FailOpenMaxAge, 10*time.Minute)
	defD(&c.SessionIdle, 10*time.Minute)
	defI(&c.FailuresPerMinute, 20)
	defI(&c.ThrottleSize, 100_000)
	defD(&c.DefaultTTL, 24*time.Hour)
	defD(&c.MaxTTL, 720*time.Hour)
	return c, c.validate()
}

func (c *Config) validate() error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("auth: config %s=%v: %s", field, v, why)
	}
	switch {
	case c.Budget < 0:
		return bad("budget", c.Budget, "must be positive")
	case c.RetryAfter < time.Second:
		return bad("retry_after", c.RetryAfter, "must be at least 1s (Retry-After has second resolution)")
	case c.MaxInFlight < 0:
		return bad("max_in_flight", c.MaxInFlight, "must be positive")
	case c.CacheSize < 0:
		return bad("cache_size", c.CacheSize, "must be positive")
	case c.FailOpenMaxAge < 0:
		return bad("fail_open_max_age", c.FailOpenMaxAge, "must be positive")
	case c.FailOpenCached && c.CacheTTL < 0:
		return bad("fail_open_cached", c.FailOpenCached, "needs the cache (cache_ttl is negative)")
	case c.SessionIdle < time.Second:
		return bad("session_idle", c.SessionIdle, "must be at least 1s")
	case c.ThrottleSize < 0:
		return bad("throttle_size", c.ThrottleSize, "must be positive")
	case c.DefaultTTL < time.Second:
		return bad("default_ttl", c.DefaultTTL, "must be at least 1s")
	case c.MaxTTL < c.DefaultTTL:
		return bad("max_ttl", c.MaxTTL, "must not be below default_ttl")
	}
	return nil
}
