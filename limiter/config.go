package limiter

import (
	"fmt"
	"strings"
	"time"
)

// Defaults applied by New to zero Config fields.
const (
	// DefaultIdleTTL is how long a client with no download and no request is
	// remembered. Five minutes is far longer than any bucket takes to refill,
	// so forgetting such a client gives it nothing it would not have had.
	DefaultIdleTTL = 5 * time.Minute
	// DefaultMaxClients bounds the client table. An entry with both buckets
	// costs about 280 bytes (TestMemoryPerClient), so the default holds at
	// most ~28 MB.
	DefaultMaxClients = 100_000
	// DefaultRetryAfter is the hint given with concurrency rejections, for
	// which no exact time is known.
	DefaultRetryAfter = time.Second
	// MinBurst is the floor of the derived byte burst and the largest slice
	// Shape releases at once: one 64 KiB read is what a socket write takes
	// anyway, and slices this size keep wakeups at rate/64KiB a second.
	// Slower clients get smaller slices, a quarter second of their rate.
	MinBurst = 64 << 10
	// DefaultRedisTimeout is the budget of one Redis admission check.
	DefaultRedisTimeout = 20 * time.Millisecond
	// DefaultRedisBackoff is how long admission stays local after a Redis failure.
	DefaultRedisBackoff = time.Second
	// DefaultRedisKeyPrefix prefixes the per-client GCRA keys.
	DefaultRedisKeyPrefix = "edgeproxy:limiter:"
)

// Unlimited, passed as Shape's rate, lifts the per-client rate for one
// download (the node's GlobalRate still applies). A class whose rate is 0
// resolves to Unlimited.
const Unlimited int64 = -1

// Config configures a Limiter. The zero value means: no shaping, no caps,
// no request rate, default bookkeeping bounds.
type Config struct {
	// Rate is the default per-client rate in bytes/s, shared by all of a
	// client's concurrent downloads on this node; 0 = unlimited. A download
	// may override it (Shape's rate argument, ClassRate).
	Rate int64 `yaml:"rate"`

	// Burst is the per-client bucket size in bytes: what an idle client may
	// receive at once before the rate applies. Default max(rate/4, 64 KiB),
	// derived from the rate in effect: a quarter second of data absorbs
	// scheduler and TCP jitter without letting a client visibly exceed its
	// rate; the 64 KiB floor keeps slices a useful size at low rates. A
	// bigger burst makes short downloads faster and shaping burstier; a
	// smaller one (down to 1 KiB) makes shaping smoother but wakes readers
	// more often. Shape releases at most min(Burst, 64 KiB) per wait.
	Burst int64 `yaml:"burst"`

	// RateAfter is how many bytes of each download pass before shaping
	// starts (nginx's limit_rate_after): small files and the start of a
	// video are not slowed. 0 = shape from the first byte. It lifts the
	// per-client rate only, not GlobalRate, and it is per download, so a
	// client gets it again with every request (MaxConcurrentPerClient and
	// RequestRate bound the abuse).
	RateAfter int64 `yaml:"rate_after"`

	// Classes are named per-client rates routes can refer to (ClassRate);
	// 0 means unlimited. Empty by default.
	Classes map[string]int64 `yaml:"classes"`

	// GlobalRate caps the node's shaped egress in bytes/s, shared fairly
	// between the clients that have downloads in progress (see the package
	// doc); 0 = no cap. When set, every download is shaped, so sendfile is
	// given up for all of them: set it only when the uplink needs protecting.
	GlobalRate int64 `yaml:"global_rate"`

	// MaxConcurrentPerClient caps one client's simultaneous downloads on this
	// node; 0 = unlimited. Download managers open 8-16 connections; the
	// per-client bucket already keeps them from getting more bandwidth, this
	// bounds the file descriptors and origin reads they cost.
	MaxConcurrentPerClient int `yaml:"max_concurrent_per_client"`

	// MaxConcurrent caps simultaneous downloads on the node; 0 = unlimited.
	MaxConcurrent int `yaml:"max_concurrent"`

	// RequestRate is the per-client admission rate in requests/s; 0 =
	// unlimited. With a Redis client (WithRedis) it is enforced cluster-wide
	// as well as per node.
	RequestRate float64 `yaml:"request_rate"`

	// RequestBurst is how many requests a client may make at once; default
	// max(1, RequestRate), one second's worth.
	RequestBurst int `yaml:"request_burst"`

	// RetryAfter is the hint returned with concurrency rejections (a
	// request-rate rejection carries the exact time); default 1s.
	RetryAfter time.Duration `yaml:"retry_after"`

	// IdleTTL is how long a client with no download in progress is kept;
	// default 5m. Shorter frees memory sooner; a client forgotten before its
	// buckets refill would get a fresh burst on return.
	IdleTTL time.Duration `yaml:"idle_ttl"`

	// MaxClients is the hard bound on idle clients kept (least recently used
	// are evicted first); default 100000. Clients with downloads in progress
	// are never evicted, so the table may exceed it by at most the number of
	// concurrent downloads.
	MaxClients int `yaml:"max_clients"`

	// Redis tunes the optional cluster-wide request rate; the client itself
	// is passed with WithRedis.
	Redis RedisConfig `yaml:"redis"`
}

// RedisConfig tunes the cluster-wide request rate (GCRA in Redis).
type RedisConfig struct {
	// Timeout is the budget of one check; default 20ms. On timeout the
	// request is admitted on the local limit alone: a slow Redis must never
	// slow downloads. Too short and a busy Redis is bypassed needlessly.
	Timeout time.Duration `yaml:"timeout"`
	// Backoff is how long admission stays local-only after a Redis error,
	// so an outage costs one Timeout per Backoff rather than per request;
	// default 1s.
	Backoff time.Duration `yaml:"backoff"`
	// KeyPrefix prefixes the per-client keys; default "edgeproxy:limiter:".
	// Nodes sharing a limit must share it.
	KeyPrefix string `yaml:"key_prefix"`
}

// settings is a validated Config with defaults filled in.
type settings struct {
	Config
	slice int64 // largest slice released per wait
}

// withDefaults returns cfg with defaults filled in and what follows from
// them, or an error naming the first invalid field.
func (cfg Config) withDefaults() (settings, error) {
	s := settings{Config: cfg}
	neg := func(name string, v int64) error {
		if v < 0 {
			return fmt.Errorf("limiter: config %s: must not be negative (got %d)", name, v)
		}
		return nil
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"rate", cfg.Rate}, {"burst", cfg.Burst}, {"rate_after", cfg.RateAfter},
		{"global_rate", cfg.GlobalRate},
		{"max_concurrent_per_client", int64(cfg.MaxConcurrentPerClient)},
		{"max_concurrent", int64(cfg.MaxConcurrent)},
		{"request_burst", int64(cfg.RequestBurst)},
		{"retry_after", int64(cfg.RetryAfter)}, {"idle_ttl", int64(cfg.IdleTTL)},
		{"max_clients", int64(cfg.MaxClients)},
		{"redis.timeout", int64(cfg.Redis.Timeout)}, {"redis.backoff", int64(cfg.Redis.Backoff)},
	} {
		if err := neg(f.name, f.v); err != nil {
			return s, err
		}
	}
	if cfg.Burst != 0 && cfg.Burst < 1024 {
		return s, fmt.Errorf("limiter: config burst: must be 0 (default) or at least 1024 bytes (got %d)", cfg.Burst)
	}
	if cfg.RequestRate < 0 || cfg.RequestRate != cfg.RequestRate {
		return s, fmt.Errorf("limiter: config request_rate: must be a non-negative number (got %v)", cfg.RequestRate)
	}
	for name, r := range cfg.Classes {
		if strings.TrimSpace(name) == "" {
			return s, fmt.Errorf("limiter: config classes: empty class name")
		}
		if r < 0 {
			return s, fmt.Errorf("limiter: config classes[%q]: must not be negative (got %d)", name, r)
		}
	}

	if s.RequestRate > 0 && s.RequestBurst == 0 {
		s.RequestBurst = max(1, int(s.RequestRate))
	}
	if s.RetryAfter == 0 {
		s.RetryAfter = DefaultRetryAfter
	}
	if s.IdleTTL == 0 {
		s.IdleTTL = DefaultIdleTTL
	}
	if s.MaxClients == 0 {
		s.MaxClients = DefaultMaxClients
	}
	if s.Redis.Timeout == 0 {
		s.Redis.Timeout = DefaultRedisTimeout
	}
	if s.Redis.Backoff == 0 {
		s.Redis.Backoff = DefaultRedisBackoff
	}
	if s.Redis.KeyPrefix == "" {
		s.Redis.KeyPrefix = DefaultRedisKeyPrefix
	}
	s.slice = MinBurst
	if s.Burst != 0 && s.Burst < s.slice {
		s.slice = s.Burst
	}
	return s, nil
}

// burstFor is the byte bucket size for a client limited to r bytes/s.
func (s *settings) burstFor(r int64) int {
	if s.Burst > 0 {
		return int(s.Burst)
	}
	return int(max(r/4, MinBurst))
}
