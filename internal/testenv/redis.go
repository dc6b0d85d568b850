package testenv

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// RedisServer is a running redis-server on a loopback port.
type RedisServer struct {
	// Addr is "127.0.0.1:port".
	Addr string
	proc *process
}

var (
	sharedRedisOnce sync.Once
	sharedRedis     *RedisServer
	sharedRedisErr  error
)

// Redis returns the redis-server shared by the tests of this binary, starting
// it on first use. Tests share its keyspace: use keys unique to the test.
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	sharedRedisOnce.Do(func() {
		dir, err := os.MkdirTemp("", "edgeproxy-redis-")
		if err != nil {
			sharedRedisErr = err
			return
		}
		sharedRedis, sharedRedisErr = startRedis(dir)
		registerShared(func() {
			if sharedRedis != nil {
				sharedRedis.proc.stop()
			}
			os.RemoveAll(dir)
		})
	})
	if sharedRedisErr != nil {
		t.Fatal(sharedRedisErr)
	}
	return sharedRedis
}

// NewRedis starts a redis-server for this test alone; it is stopped when
// the test ends. Stop and Start simulate an outage on the same address.
func NewRedis(t testing.TB) *RedisServer {
	t.Helper()
	r, err := startRedis(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.proc.stop)
	return r
}

// startRedis starts a redis-server with its files in dir; extra arguments
// (e.g. --replicaof) are appended to the defaults.
func startRedis(dir string, extra ...string) (*RedisServer, error) {
	bin, err := lookBinary("TESTENV_REDIS_BIN", "redis-server")
	if err != nil {
		return nil, err
	}
	var last error
	for range 3 { // a freed port can be taken again before we bind it
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		r := &RedisServer{Addr: "127.0.0.1:" + itoa(port)}
		r.proc = &process{
			name: "redis-server",
			bin:  bin,
			args: []string{"--port", itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
				"--dir", dir, "--protected-mode", "no", "--daemonize", "no"},
			logPath: filepath.Join(dir, "redis.log"),
		}
		r.proc.args = append(r.proc.args, extra...)
		if last = r.start(); last == nil {
			return r, nil
		}
		r.proc.stop()
	}
	return nil, last
}

func (r *RedisServer) start() error {
	if err := r.proc.start(); err != nil {
		return err
	}
	return r.proc.waitReady(func() bool {
		line, err := tcpRoundTrip(r.Addr, []byte("PING\r\n"))
		return err == nil && line == "+PONG"
	})
}

// Stop ends the server; its address refuses connections until Start.
func (r *RedisServer) Stop(t testing.TB) {
	t.Helper()
	r.proc.stop()
}

// Start restarts a stopped server on the same address (with an empty dataset).
func (r *RedisServer) Start(t testing.TB) {
	t.Helper()
	if err := r.start(); err != nil {
		t.Fatal(err)
	}
}
