// Package redisconn holds the go-redis options every Redis client of
// edgeproxy uses, so that the binary, the tests and the bench harness talk
// to Redis the same way: a test that passes with these options passes with
// the client production builds.
package redisconn

import (
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults for the timeouts left zero.
const (
	// DialTimeout bounds connecting to one node.
	DialTimeout = time.Second
	// IOTimeout bounds one command's read and write. Callers on the request
	// path set tighter budgets of their own through their contexts.
	IOTimeout = 500 * time.Millisecond
)

// Options returns o with zero timeouts set to the defaults above and
// context deadlines honoured. Without ContextTimeoutEnabled go-redis ignores
// context deadlines, and a hung Redis would hold each caller until the
// socket timeouts.
func Options(o redis.UniversalOptions) *redis.UniversalOptions {
	if o.DialTimeout == 0 {
		o.DialTimeout = DialTimeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = IOTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = IOTimeout
	}
	o.ContextTimeoutEnabled = true
	return &o
}
