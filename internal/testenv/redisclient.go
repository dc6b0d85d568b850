package testenv

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/internal/redisconn"
)

// NewRedisClient returns a client of addr with the options the binary uses
// (redisconn.Options). A tweak adjusts them for what a test is about, such
// as retries off in an outage test or a long read timeout against a server
// that never answers.
func NewRedisClient(addr string, tweak ...func(*redis.Options)) *redis.Client {
	o := redisconn.Options(redis.UniversalOptions{Addrs: []string{addr}}).Simple()
	for _, f := range tweak {
		f(o)
	}
	return redis.NewClient(o)
}

// RedisClient is NewRedisClient closed when the test ends.
func RedisClient(t testing.TB, addr string, tweak ...func(*redis.Options)) *redis.Client {
	t.Helper()
	c := NewRedisClient(addr, tweak...)
	t.Cleanup(func() { c.Close() })
	return c
}

// Client returns a client of the server with production's options (see
// NewRedisClient), closed when the test ends.
func (r *RedisServer) Client(t testing.TB, tweak ...func(*redis.Options)) *redis.Client {
	t.Helper()
	return RedisClient(t, r.Addr, tweak...)
}

// NoRetries is the tweak of tests that count commands or time an outage:
// go-redis retries a failed command three times by default.
func NoRetries(o *redis.Options) { o.MaxRetries = -1 }
