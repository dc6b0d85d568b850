package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// RedisServer is a running redis-server on a loopback port, without
// persistence.
type RedisServer struct {
	// Addr is "127.0.0.1:port".
	Addr string
	// Proc is the server process (the bench harness reads its CPU time).
	Proc *Process
}

var sharedRedis shared[*RedisServer]

// Redis returns the redis-server shared by the tests of this binary, starting
// it on first use. Tests share its keyspace: use keys unique to the test.
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	return sharedRedis.get(t, "redis", func(ctx context.Context, dir string) (*RedisServer, error) { return StartRedis(ctx, dir) })
}

// NewRedis starts a redis-server for this test alone; it is stopped when
// the test ends. Stop and Start simulate an outage on the same address.
func NewRedis(t testing.TB) *RedisServer {
	t.Helper()
	return dedicated(t, func(ctx context.Context, dir string) (*RedisServer, error) { return StartRedis(ctx, dir) })
}

// StartRedis starts a redis-server on a free loopback port with its files
// and log under dir (created if missing) and waits until it answers PING;
// extra arguments (e.g. --replicaof) are appended to the defaults. The
// caller ends it with Close.
func StartRedis(ctx context.Context, dir string, extra ...string) (*RedisServer, error) {
	bin, err := RedisBinary()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("testenv: redis dir: %w", err)
	}
	var last error
	for range 3 { // a freed port can be taken again before we bind it
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		r := &RedisServer{Addr: "127.0.0.1:" + itoa(port)}
		r.Proc = &Process{
			Name: "redis-server",
			Bin:  bin,
			Args: []string{"--port", itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
				"--dir", dir, "--protected-mode", "no", "--daemonize", "no"},
			LogPath: filepath.Join(dir, "redis.log"),
		}
		r.Proc.Args = append(r.Proc.Args, extra...)
		if last = r.Restart(ctx); last == nil {
			return r, nil
		}
		r.Close()
	}
	return nil, last
}

// Restart starts a stopped server again on the same address (with an
// empty dataset) and waits until it answers PING.
func (r *RedisServer) Restart(ctx context.Context) error {
	if err := r.Proc.Start(); err != nil {
		return err
	}
	return r.Proc.WaitReady(ctx, startTimeout, func() bool {
		line, err := tcpRoundTrip(r.Addr, []byte("PING\r\n"))
		return err == nil && line == "+PONG"
	})
}

// Close ends the server; its address refuses connections until Restart.
// It is safe to call more than once.
func (r *RedisServer) Close() {
	if r != nil {
		r.Proc.Stop()
	}
}

// Stop ends the server; its address refuses connections until Start.
func (r *RedisServer) Stop(t testing.TB) {
	t.Helper()
	r.Close()
}

// Start restarts a stopped server on the same address (with an empty dataset).
func (r *RedisServer) Start(t testing.TB) {
	t.Helper()
	if err := r.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
}
