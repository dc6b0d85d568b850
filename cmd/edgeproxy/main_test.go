package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/edgeproxy once per test run: these tests exercise the
// real process (exit codes, signals, RSS), not the functions inside it.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "edgeproxy-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "edgeproxy")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestConfigErrorsExitTwo(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	cases := []struct {
		name, yaml string
		env        []string
		want       string
	}{
		{"unknown key", "proxy:\n  listn: x\n", nil, `unknown key "proxy.listn"`},
		{"bad duration", "proxy:\n  read_timeout: 5x\n", nil, `"proxy.read_timeout"`},
		{"bad size", "proxy:\n  max_header_bytes: 2GB2\n", nil, `"proxy.max_header_bytes"`},
		{"missing bucket", "origin:\n  kind: dir\n  dir:\n    root: " + dir + "\n", nil, "download_bucket: required"},
		{"missing endpoint", "proxy:\n  download_bucket: b\norigin:\n  kind: s3\n", nil, "endpoint: required"},
		{"bad origin kind", "proxy:\n  download_bucket: b\norigin:\n  kind: ftp\n", nil, `"origin.kind"`},
		{"bad env value", "proxy:\n  download_bucket: b\n", []string{"EDGEPROXY_PROXY_SEND_TIMEOUT=soon"}, "EDGEPROXY_PROXY_SEND_TIMEOUT"},
		{"unknown env key", "proxy:\n  download_bucket: b\n", []string{"EDGEPROXY_PROXY_LISTN=:1"}, "EDGEPROXY_PROXY_LISTN"},
		{"bad log level", "proxy:\n  download_bucket: b\nlog:\n  level: loud\n", nil, `"log.level"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(c.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			msg := runUsageError(t, bin, c.env, "-check", "-config", path)
			if strings.Count(msg, "\n") != 0 {
				t.Errorf("want one line on stderr, got %q", msg)
			}
			if !strings.Contains(msg, c.want) {
				t.Errorf("stderr %q does not name %q", msg, c.want)
			}
		})
	}
}

func TestDefaultConfigFileIsValid(t *testing.T) {
	cmd := exec.Command(binary(t), "-check", "-config", "../../config.yaml")
	cmd.Env = cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("config.yaml does not validate: %v\n%s", err, out)
	}
}

// cleanEnv is the test's environment without EDGEPROXY_ settings.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EDGEPROXY_") {
			env = append(env, kv)
		}
	}
	return env
}

// proc is a running edgeproxy process.
type proc struct {
	cmd    *exec.Cmd
	addr   string
	stderr *testenv.LockedBuffer
	stdout *testenv.LockedBuffer
	done   chan struct{} // closed when the process has exited
	// adminAddr is the admin listener's address, when it logged one.
	adminAddr atomic.Value
	err       error // its exit error, valid after done
}

var listenRE = regexp.MustCompile(`"addr":"([0-9.:]+)"|addr=([0-9.:]+)`)

// start runs the binary and waits until it logs its listening address.
func start(t *testing.T, args []string, env []string) *proc {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(cleanEnv(), env...)
	pr, pw := io.Pipe()
	logs := &testenv.LockedBuffer{}
	cmd.Stderr = pw
	stdout := &testenv.LockedBuffer{}
	cmd.Stdout = stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stderr: logs, stdout: stdout, done: make(chan struct{})}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			logs.Write([]byte(line + "\n"))
			if m := listenRE.FindStringSubmatch(line); m != nil && strings.Contains(line, "admin listening") {
				p.adminAddr.Store(m[1] + m[2])
			} else if m != nil && strings.Contains(line, "edgeproxy listening") {
				addrc <- m[1] + m[2]
			}
		}
	}()
	go func() { p.err = cmd.Wait(); pw.Close(); close(p.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	select {
	case p.addr = <-addrc:
	case <-p.done:
		t.Fatalf("edgeproxy exited at start: %v\n%s", p.err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("edgeproxy did not start listening within 30s")
	}
	return p
}

var bearerRE = regexp.MustCompile(`Bearer ([A-Za-z0-9_-]+)' (http://\S+/download/hello.txt)`)

// TestDemoServesAndDrainsOnSIGTERM runs the README's first command: the
// printed curl line (with its minted token) downloads, a request without
// the token is refused, and SIGTERM stops the process cleanly.
func TestDemoServesAndDrainsOnSIGTERM(t *testing.T) {
	p := start(t, []string{"-demo"}, []string{"EDGEPROXY_PROXY_LISTEN=127.0.0.1:0"})
	var m []string
	if !testenv.Poll(context.Background(), 10*time.Second, func() bool {
		m = bearerRE.FindStringSubmatch(p.stdout.String())
		return m != nil
	}) {
		t.Fatalf("demo printed no curl line with a token:\n%s", p.stdout.String())
	}
	req, _ := http.NewRequest("GET", m[2], nil)
	req.Header.Set("Authorization", "Bearer "+m[1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "Hello from the edge.\n" {
		t.Fatalf("GET hello.txt with token = %d %q", resp.StatusCode, body)
	}
	resp, err = http.Get(m[2])
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET hello.txt without token = %d, want 401", resp.StatusCode)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("exit after SIGTERM: %v", p.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("edgeproxy did not exit within 15s of SIGTERM")
	}
}

// vmHWM reads the peak resident set size of pid in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// TestSlowClientLargeDownloadBoundedRSS downloads an object larger than
// 64 MiB from real MinIO through the real binary with a client that reads
// slowly, and checks the proxy's peak RSS grows by less than 64 MiB plus the
// memory tier's budget: bytes flow with backpressure instead of being
// buffered, and the cache holds no more than its budget.
func TestSlowClientLargeDownloadBoundedRSS(t *testing.T) {
	for _, c := range []struct {
		name   string
		env    []string
		budget int64
	}{
		{"no cache", []string{"EDGEPROXY_CACHE_ENABLED=false"}, 0},
		{"cache 32MiB", []string{"EDGEPROXY_CACHE_MEMORY_BYTES=32MiB"}, 32 << 20},
	} {
		t.Run(c.name, func(t *testing.T) { testSlowClientRSS(t, c.env, c.budget) })
	}
}

func testSlowClientRSS(t *testing.T, extraEnv []string, budget int64) {
	const size = 160 << 20
	m := testenv.MinIO(t)
	bucket := m.NewBucket(t)
	mc := m.Client(t)
	rng := rand.New(rand.NewPCG(1, 2))
	hash := sha256.New()
	src := io.TeeReader(io.LimitReader(rngReader{rng}, size), hash)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := mc.PutObject(ctx, bucket, "big.bin", src, size, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	want := hash.Sum(nil)

	p := start(t, []string{"-config", "../../config.yaml"}, append(extraEnv,
		"EDGEPROXY_PROXY_LISTEN=127.0.0.1:0",
		"EDGEPROXY_PROXY_DOWNLOAD_BUCKET="+bucket,
		"EDGEPROXY_PROXY_ACCESS_LOG=false",
		"EDGEPROXY_ORIGIN_S3_ENDPOINT="+m.Endpoint,
		"EDGEPROXY_ORIGIN_S3_ACCESS_KEY="+m.AccessKey,
		"EDGEPROXY_ORIGIN_S3_SECRET_KEY="+m.SecretKey,
	))
	// Warm up: one small request so the baseline includes the proxy's
	// steady-state buffers and connection pools.
	if resp, err := http.Get("http://" + p.addr + "/download/big.bin?warm"); err == nil {
		io.CopyN(io.Discard, resp.Body, 1<<20)
		resp.Body.Close()
	}
	base := vmHWM(t, p.cmd.Process.Pid)

	resp, err := http.Get("http://" + p.addr + "/download/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// A slow reader: 64 KiB at a time with a pause after every MiB, so the
	// socket buffers fill and the proxy must stop reading from the origin.
	got := sha256.New()
	buf := make([]byte, 64<<10)
	var n int64
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		k, err := resp.Body.Read(buf)
		got.Write(buf[:k])
		n += int64(k)
		if n%(1<<20) < int64(k) {
			time.Sleep(2 * time.Millisecond) // pacing the client, not synchronisation
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read after %d bytes: %v", n, err)
		}
	}
	if n != size || !bytes.Equal(got.Sum(nil), want) {
		t.Fatalf("downloaded %d bytes, sha256 match %v", n, bytes.Equal(got.Sum(nil), want))
	}
	peak := vmHWM(t, p.cmd.Process.Pid)
	t.Logf("proxy peak RSS: %d MiB before, %d MiB after a %d MiB download (+%d MiB)",
		base>>20, peak>>20, size>>20, (peak-base)>>20)
	if peak-base > budget+64<<20 {
		t.Fatalf("proxy RSS grew by %d MiB during the download, want < %d MiB", (peak-base)>>20, (budget+64<<20)>>20)
	}
}

type rngReader struct{ r *rand.Rand }

func (g rngReader) Read(p []byte) (int, error) {
	for i := 0; i+8 <= len(p); i += 8 {
		v := g.r.Uint64()
		for j := 0; j < 8; j++ {
			p[i+j] = byte(v >> (8 * j))
		}
	}
	for i := len(p) &^ 7; i < len(p); i++ {
		p[i] = byte(g.r.Uint32())
	}
	return len(p), nil
}

// runUsageError runs the binary with args and the variables env on top of
// cleanEnv, and fails the test unless it exits with code 2 (a usage error:
// the configuration is refused). It returns stderr without surrounding
// space. The run is bounded by 30 s.
func runUsageError(t *testing.T, bin string, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit = %v, want code 2; stderr: %s", err, stderr.String())
	}
	return strings.TrimSpace(stderr.String())
}

// tokenDirEnv is the environment of a binary on a loopback port serving
// bucket "b" of the directory root with token auth in the Redis at
// redisAddr, followed by extra. The test machine is shared and runs -race:
// the generous auth budget keeps the check from failing closed on
// scheduling delay.
func tokenDirEnv(root, redisAddr string, extra ...string) []string {
	return append([]string{
		"EDGEPROXY_PROXY_LISTEN=127.0.0.1:0",
		"EDGEPROXY_PROXY_DOWNLOAD_BUCKET=b",
		"EDGEPROXY_PROXY_DOWNLOAD_AUTH=token",
		"EDGEPROXY_ORIGIN_KIND=dir",
		"EDGEPROXY_ORIGIN_DIR_ROOT=" + root,
		"EDGEPROXY_REDIS_ADDRS=" + redisAddr,
		"EDGEPROXY_AUTH_BUDGET=2s",
	}, extra...)
}
