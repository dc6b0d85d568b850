// Package testenv starts the real servers that integration tests run
// against: a MinIO server and redis-server, each on a free loopback port with
// its data under a temporary directory, stopped when the tests end.
//
// Shared servers (MinIO, Redis) are started once per test binary on first
// use and stopped by Main; dedicated ones (NewMinIO, NewRedis) belong to one
// test and can be stopped and restarted on the same port to simulate outages.
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
	"syscall"
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

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testenv: find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// process is one server child process with its log file.
type process struct {
	name    string
	bin     string
	args    []string
	env     []string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("testenv: %s log: %w", p.name, err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Kill the server if the test binary dies without running cleanups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("testenv: start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

// exited reports whether the process has ended on its own.
func (p *process) exited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return true
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd, p.done = nil, nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// logTail returns the last lines of the server's log for failure messages.
func (p *process) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// waitReady polls ready until it succeeds, the process exits or the deadline passes.
func (p *process) waitReady(ready func() bool) error {
	deadline := time.Now().Add(startTimeout)
	for delay := 20 * time.Millisecond; time.Now().Before(deadline); {
		if ready() {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("testenv: %s exited during start:\n%s", p.name, p.logTail())
		}
		time.Sleep(delay)
		if delay < 250*time.Millisecond {
			delay *= 2
		}
	}
	return fmt.Errorf("testenv: %s not ready after %s:\n%s", p.name, startTimeout, p.logTail())
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
