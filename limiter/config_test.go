package limiter

import (
	"strings"
	"testing"
	"time"
)

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"negative rate", Config{Rate: -1}, "rate:"},
		{"tiny burst", Config{Burst: 10}, "burst:"},
		{"negative burst", Config{Burst: -5}, "burst:"},
		{"negative rate_after", Config{RateAfter: -1}, "rate_after:"},
		{"negative global", Config{GlobalRate: -1}, "global_rate:"},
		{"negative per-client cap", Config{MaxConcurrentPerClient: -1}, "max_concurrent_per_client:"},
		{"negative node cap", Config{MaxConcurrent: -2}, "max_concurrent:"},
		{"negative request rate", Config{RequestRate: -0.5}, "request_rate:"},
		{"negative request burst", Config{RequestBurst: -1}, "request_burst:"},
		{"negative ttl", Config{IdleTTL: -time.Second}, "idle_ttl:"},
		{"negative max clients", Config{MaxClients: -1}, "max_clients:"},
		{"negative class", Config{Classes: map[string]int64{"slow": -1}}, `classes["slow"]`},
		{"empty class name", Config{Classes: map[string]int64{" ": 1}}, "classes:"},
		{"negative redis timeout", Config{Redis: RedisConfig{Timeout: -1}}, "redis.timeout:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := New(tc.cfg, nil)
			if err == nil {
				l.Close()
				t.Fatal("New accepted a bad config")
			}
			if !strings.Contains(err.Error(), tc.field) || !strings.HasPrefix(err.Error(), "limiter: ") {
				t.Fatalf("error %q does not name %q", err, tc.field)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	s, err := Config{RequestRate: 2.5}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if s.IdleTTL != DefaultIdleTTL || s.MaxClients != DefaultMaxClients || s.RetryAfter != DefaultRetryAfter {
		t.Errorf("bookkeeping defaults not applied: %+v", s.Config)
	}
	if s.RequestBurst != 2 {
		t.Errorf("RequestBurst = %d, want one second's worth (2)", s.RequestBurst)
	}
	if s.Redis.Timeout != DefaultRedisTimeout || s.Redis.Backoff != DefaultRedisBackoff || s.Redis.KeyPrefix != DefaultRedisKeyPrefix {
		t.Errorf("redis defaults not applied: %+v", s.Redis)
	}
	if s.slice != MinBurst {
		t.Errorf("slice = %d, want %d", s.slice, MinBurst)
	}
	for _, tc := range []struct{ rate, want int64 }{{1 << 10, MinBurst}, {1 << 20, 1 << 18}, {100 << 20, 25 << 20}} {
		if got := s.burstFor(tc.rate); int64(got) != tc.want {
			t.Errorf("burstFor(%d) = %d, want %d", tc.rate, got, tc.want)
		}
	}
	s, _ = Config{Burst: 4096}.withDefaults()
	if s.slice != 4096 || s.burstFor(1<<30) != 4096 {
		t.Errorf("explicit burst: slice %d burst %d, want 4096 both", s.slice, s.burstFor(1<<30))
	}
}

func TestClassRate(t *testing.T) {
	l, _ := newFake(t, Config{Classes: map[string]int64{"free": 1 << 20, "staff": 0}})
	if r, err := l.ClassRate("free"); err != nil || r != 1<<20 {
		t.Errorf("free = %d, %v", r, err)
	}
	if r, err := l.ClassRate("staff"); err != nil || r != Unlimited {
		t.Errorf("staff = %d, %v; want Unlimited", r, err)
	}
	if _, err := l.ClassRate("gold"); err == nil || !strings.Contains(err.Error(), `"gold"`) {
		t.Errorf("unknown class: err = %v", err)
	}
}
