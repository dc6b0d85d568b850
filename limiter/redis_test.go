package limiter

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/internal/fakeclock"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newRedisClient(t *testing.T, addr string) *redis.Client {
	return testenv.RedisClient(t, addr)
}

func TestRedisClusterRequestRate(t *testing.T) {
	rdb := newRedisClient(t, testenv.Redis(t).Addr)
	// Two nodes sharing one cluster-wide limit: one request per 10s, burst 3.
	cfg := Config{RequestRate: 0.1, RequestBurst: 3, Redis: RedisConfig{KeyPrefix: fmt.Sprintf("t:%s:%d:", t.Name(), time.Now().UnixNano()), Timeout: 5 * time.Second}}
	var nodes []*Limiter
	for range 2 {
		l, err := New(cfg, nil, WithRedis(rdb))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		nodes = append(nodes, l)
	}
	// Each node alone would admit 3; together they may admit 3.
	admitted := 0
	var last error
	for i := range 6 {
		le, err := nodes[i%2].Admit("198.51.100.1")
		if err == nil {
			admitted++
			le.Release()
		}
		last = err
	}
	if admitted != 3 {
		t.Fatalf("two nodes admitted %d, want the cluster burst of 3", admitted)
	}
	rej := rejection(t, last, ReasonRequestRate)
	if rej.RetryAfter < 8*time.Second || rej.RetryAfter > 10*time.Second {
		t.Errorf("RetryAfter = %v, want just under 10s (one emission interval)", rej.RetryAfter)
	}
	if le, err := nodes[0].Admit("198.51.100.2"); err != nil {
		t.Errorf("another client refused: %v", err)
	} else {
		le.Release()
	}
	ttl, err := rdb.PTTL(context.Background(), cfg.Redis.KeyPrefix+"198.51.100.1").Result()
	if err != nil || ttl <= 0 || ttl > 31*time.Second {
		t.Errorf("key TTL %v (%v), want set and at most burst×interval", ttl, err)
	}
	for _, l := range nodes {
		if st := l.Stats(); st.RedisFallbacks != 0 || st.ActiveDownloads != 0 {
			t.Errorf("stats %+v: want no fallbacks and no slot held by rejected requests", st)
		}
	}
}

func TestRedisOutageFallsBackToLocal(t *testing.T) {
	srv := testenv.NewRedis(t)
	rdb := newRedisClient(t, srv.Addr)
	clk := fakeclock.New()
	// A budget roomy enough for a loaded test machine; the hung-server test
	// checks the default one.
	cfg := Config{RequestRate: 0.1, RequestBurst: 2, Redis: RedisConfig{Backoff: time.Minute, Timeout: 200 * time.Millisecond}}
	l, err := New(cfg, clk.Now, WithRedis(rdb))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	admitRelease(t, l, "a") // Redis is up: one request counted there
	if n, err := rdb.Exists(context.Background(), DefaultRedisKeyPrefix+"a").Result(); err != nil || n != 1 {
		t.Fatalf("GCRA key not written (exists=%d, %v)", n, err)
	}

	srv.Stop(t)
	start := time.Now()
	admitRelease(t, l, "b") // Redis is down: admitted on the local limit
	// A refused connection fails at once and the budget caps the rest;
	// 5 s only catches an Admit that hangs (the hung-server test bounds
	// the budget itself), and holds on a loaded machine.
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Admit with Redis down took %v, budget is %v", el, cfg.Redis.Timeout)
	}
	admitRelease(t, l, "b")
	// The local limit still holds while Redis is out.
	_, err = l.Admit("b")
	rejection(t, err, ReasonRequestRate)
	if st := l.Stats(); st.RedisFallbacks != 2 {
		t.Errorf("RedisFallbacks = %d, want 2", st.RedisFallbacks)
	}

	// Back up: after the backoff Redis is asked again.
	srv.Start(t)
	clk.Advance(2 * time.Minute)
	admitRelease(t, l, "c")
	if n, err := rdb.Exists(context.Background(), DefaultRedisKeyPrefix+"c").Result(); err != nil || n != 1 {
		t.Errorf("after recovery the check did not reach Redis (exists=%d, %v)", n, err)
	}
}

func TestRedisHungServerKeepsBudget(t *testing.T) {
	// A server that accepts and never answers: only the budget can save Admit.
	addr := testenv.Blackhole(t)
	// The client's own timeout is 30 s, so an Admit that ignored its
	// 20 ms budget would take that long; 10 s leaves a loaded machine
	// plenty of room. Context deadlines are off in this client, so only
	// the limiter's own bound can end the call early.
	rdb := testenv.RedisClient(t, addr, func(o *redis.Options) {
		o.ReadTimeout, o.WriteTimeout = 30*time.Second, 30*time.Second
		o.ContextTimeoutEnabled = false
	})
	l, err := New(Config{RequestRate: 100}, nil, WithRedis(rdb))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 3 {
		start := time.Now()
		admitRelease(t, l, "a")
		if el := time.Since(start); el > 10*time.Second {
			t.Fatalf("Admit %d took %v against a hung Redis, budget %v", i, el, DefaultRedisTimeout)
		}
	}
	if st := l.Stats(); st.RedisFallbacks != 3 {
		t.Errorf("RedisFallbacks = %d, want 3 (one timeout, then backoff)", st.RedisFallbacks)
	}
}

// TestRedisFailureLogsToConfiguredLogger: the fallback warning goes to the
// logger the process configured (log.format, log.level), not to the global
// slog default.
func TestRedisFailureLogsToConfiguredLogger(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: every command fails at once
	rdb := testenv.RedisClient(t, addr, testenv.NoRetries)
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := Config{RequestRate: 1, Redis: RedisConfig{Timeout: 5 * time.Second}}
	l, err := New(cfg, fakeclock.New().Now, WithRedis(rdb), WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	admitRelease(t, l, "a")
	if st := l.Stats(); st.RedisFallbacks != 1 {
		t.Fatalf("RedisFallbacks = %d, want 1", st.RedisFallbacks)
	}
	var line struct{ Level, Msg string }
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil || line.Level != "WARN" || !strings.Contains(line.Msg, "redis request-rate check failed") {
		t.Fatalf("configured logger got %q (%v), want one JSON warning", buf.String(), err)
	}
}
