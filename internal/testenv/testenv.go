// Package testenv starts the real servers that integration tests run
// against: a MinIO server and redis-server, each on a free loopback port with
// its data under a temporary directory, stopped when the tests end.
//
// Shared servers (MinIO, Redis) are started once per test binary on first
// use and stopped by Main; dedicated ones (NewMinIO, NewRedis) belong to one
// test and can be stopped and restarted on the same port to simulate outages.
//
// Each server has a core that needs no testing.TB (StartRedis, StartMinIO,
// StartProcess: a value and an error, ended with Close or Stop), which the
// bench harness uses, and thin wrappers for tests that fail the test and
// register the cleanup. The helpers tests share live here too: WaitFor to
// wait on a condition, LockedBuffer to read what a logger wrote, and
// Redis clients with the options the binary uses (RedisClient).
//
// A missing server binary fails the test: the suite's entry point
// (scripts/test.sh) installs them, and a skipped integration test would hide
// exactly the failures these tests exist to catch.
package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds how long a server may take to become ready.
const startTimeout = 90 * time.Second

var (
	sharedMu    sync.Mutex
	sharedStops []func()
)

// Main runs the tests of a package that uses the shared servers and stops
// them afterwards. Use it as: func TestMain(m *testing.M) { testenv.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	sharedMu.Lock()
	stops := sharedStops
	sharedStops = nil
	sharedMu.Unlock()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
	os.Exit(code)
}

func registerShared(stop func()) {
	sharedMu.Lock()
	sharedStops = append(sharedStops, stop)
	sharedMu.Unlock()
}

// FreePort returns a loopback TCP port that was free a moment ago. Another
// process can take it before the caller binds it: starters retry.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testenv: find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// MinIOBinary finds the MinIO server: $TESTENV_MINIO_BIN, then PATH, then
// where scripts/test.sh installs it.
func MinIOBinary() (string, error) {
	return lookBinary("TESTENV_MINIO_BIN", "minio", MinIOInstallPath())
}

// MinIOInstallPath is where scripts/test.sh installs the MinIO binary.
func MinIOInstallPath() string { return filepath.Join(cacheDir(), "bin", "minio") }

// RedisBinary finds redis-server: $TESTENV_REDIS_BIN, then PATH, then the
// Debian package's place (/usr/bin, and /usr/sbin which is often not on a
// user's PATH).
func RedisBinary() (string, error) {
	return lookBinary("TESTENV_REDIS_BIN", "redis-server", "/usr/bin/redis-server", "/usr/sbin/redis-server")
}

// lookBinary finds a server binary: the environment variable env, then PATH,
// then the extra candidate paths.
func lookBinary(env, name string, extra ...string) (string, error) {
	if v := os.Getenv(env); v != "" {
		return v, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, c := range extra {
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c, nil
		}
	}
	return "", fmt.Errorf("testenv: %s not found (set %s, put it on PATH, or run scripts/test.sh which installs it)", name, env)
}

// cacheDir is where scripts/test.sh installs the MinIO binary.
func cacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "edgeproxy")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "edgeproxy")
}

// tcpRoundTrip sends req to addr and returns the first line of the answer.
func tcpRoundTrip(addr string, req []byte) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write(req); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return string(bytes.TrimSpace([]byte(line))), err
}

func itoa(i int) string { return strconv.Itoa(i) }
