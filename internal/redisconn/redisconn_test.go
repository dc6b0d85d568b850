package redisconn

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestOptionsFillsOnlyZeroTimeouts(t *testing.T) {
	got := Options(redis.UniversalOptions{Addrs: []string{"127.0.0.1:1"}, ReadTimeout: 3 * time.Second})
	if got.DialTimeout != DialTimeout || got.WriteTimeout != IOTimeout {
		t.Errorf("dial %v write %v, want the defaults %v %v", got.DialTimeout, got.WriteTimeout, DialTimeout, IOTimeout)
	}
	if got.ReadTimeout != 3*time.Second {
		t.Errorf("read timeout %v, want the caller's 3s kept", got.ReadTimeout)
	}
	if !got.ContextTimeoutEnabled {
		t.Error("ContextTimeoutEnabled is off: go-redis would ignore context deadlines")
	}
}
