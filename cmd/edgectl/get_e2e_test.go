package main

// End-to-end tests of edgectl get through the real download front end
// (proxy.Server with token auth and the catalog) over real MinIO and Redis,
// including the real edgectl binary killed with SIGKILL mid-download.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/origin"
	"github.com/edgeproxy/edgeproxy/proxy"
)

// getProxy is the real proxy in front of realEnv's MinIO, on a listener
// that counts the bytes it sends to clients and, when slow is set, sends
// them at about 2 MiB/s per connection so a test can interrupt a transfer.
type getProxy struct {
	*realEnv
	url  string // http://127.0.0.1:port
	sent atomic.Int64
	recv atomic.Int64 // bytes the proxy read from clients (uploads)
	slow atomic.Bool
}

type meteredListener struct {
	net.Listener
	p *getProxy
}

func (l meteredListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return meteredConn{Conn: c, p: l.p}, nil
}

type meteredConn struct {
	net.Conn
	p *getProxy
}

// Read counts what the proxy reads and, when slow is set, reads at most
// 16 KiB every 8 ms (uploads).
func (c meteredConn) Read(b []byte) (int, error) {
	if c.p.slow.Load() {
		time.Sleep(8 * time.Millisecond)
		b = b[:min(len(b), 16<<10)]
	}
	n, err := c.Conn.Read(b)
	c.p.recv.Add(int64(n))
	return n, err
}

func (c meteredConn) Write(b []byte) (int, error) {
	var n int
	for len(b) > 0 {
		k := len(b)
		if c.p.slow.Load() {
			k = min(k, 16<<10)
		}
		m, err := c.Conn.Write(b[:k])
		n += m
		c.p.sent.Add(int64(m))
		if err != nil {
			return n, err
		}
		b = b[k:]
		if c.p.slow.Load() {
			time.Sleep(8 * time.Millisecond)
		}
	}
	return n, nil
}

// startGetProxy starts the proxy with token auth on /download/; adjust,
// when not nil, changes its configuration first.
func startGetProxy(t *testing.T, adjust func(*proxy.Config, *proxy.Deps)) *getProxy {
	t.Helper()
	e := startReal(t)
	s3, err := origin.NewS3(origin.S3Config{Endpoint: e.minio.Endpoint, AccessKey: e.minio.AccessKey, SecretKey: e.minio.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s3.Close() })
	off := false
	cfg := proxy.Config{DownloadAuth: proxy.AuthToken, DrainTimeout: 5 * time.Second, AccessLog: &off}
	deps := proxy.Deps{Origin: s3, Tokens: e.verifier, Catalog: e.catalog, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}
	if adjust != nil {
		adjust(&cfg, &deps)
	}
	srv, err := proxy.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &getProxy{realEnv: e, url: "http://" + ln.Addr().String()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, meteredListener{Listener: ln, p: p}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("proxy did not stop")
		}
	})
	return p
}

// buildEdgectl builds the real binary, for tests that kill it.
func buildEdgectl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "edgectl")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// killMidway runs the binary and SIGKILLs it once its state file claims at
// least min bytes; it returns the state as the kill left it.
func killMidway(t *testing.T, bin string, env []string, out string, minBytes int64, args ...string) *getState {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitBeforeKill(t, cmd, exited, 90*time.Second, fmt.Sprintf("the state to claim %d bytes", minBytes), func() bool {
		st, _ := loadState(out + stateSuffix)
		return st != nil && st.spans().Total() >= minBytes
	})
	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	err := <-exited
	if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("wait after kill: %v", err)
	}
	st, err := loadState(out + stateSuffix)
	if err != nil || st == nil {
		t.Fatalf("state after kill -9: %v, %v", st, err)
	}
	return st
}

// waitBeforeKill waits until cond holds while cmd runs (exited receives
// its Wait), so that a test kills it at the point it chose. It fails the
// test if the process ends first or cond does not hold within the given
// time (the process is then killed), showing cmd's stderr when it is a
// buffer.
func waitBeforeKill(t *testing.T, cmd *exec.Cmd, exited <-chan error, within time.Duration, what string, cond func() bool) {
	t.Helper()
	ended := false
	var err error
	held := testenv.Poll(context.Background(), within, func() bool {
		if cond() {
			return true
		}
		select {
		case err = <-exited:
			ended = true
			return true
		default:
			return false
		}
	})
	if held && !ended {
		return
	}
	if !ended {
		cmd.Process.Kill()
		err = <-exited
	}
	var stderr string
	if b, ok := cmd.Stderr.(*bytes.Buffer); ok {
		stderr = b.String() // read after Wait returned: no race with the copy
	}
	if ended {
		t.Fatalf("edgectl ended (%v) before it was killed, waiting for %s: %s", err, what, stderr)
	}
	t.Fatalf("timed out after %v waiting for %s: %s", within, what, stderr)
}

// execBinary is the binary's command with exactly env as environment.
func execBinary(bin string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	return cmd
}

func runBinary(t *testing.T, bin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

func TestGetE2E(t *testing.T) {
	p := startGetProxy(t, nil)
	bin := buildEdgectl(t)
	bucket := p.minio.NewBucket(t)
	const size = 40<<20 + 12345 // ten full pieces and a short one
	v1 := randomBytes(t, size)
	upload := func(t *testing.T, data []byte) {
		t.Helper()
		src := writeTemp(t, "src.bin", data)
		if code, _, errs := p.run(t, nil, "file", "put", "-id", "big", "-bucket", bucket, "-src", src, "-key", "obj/big.bin"); code != 0 {
			t.Fatalf("file put: exit %d: %s", code, errs)
		}
	}
	upload(t, v1)
	code, out, errs := p.run(t, nil, "token", "create", "-file", "big", "-ttl", "1h")
	var created struct{ Token string }
	if code != 0 || json.Unmarshal([]byte(out), &created) != nil || created.Token == "" {
		t.Fatalf("token create: exit %d, %q, %s", code, out, errs)
	}
	token := created.Token
	dlURL := p.url + "/download/big"
	// The environment of the real binary: the admin API for the catalog's
	// SHA-256, the token from the environment.
	binEnv := []string{"EDGECTL_ADDR=" + p.addr, "EDGECTL_ADMIN_KEY=" + adminKey16, "EDGECTL_TOKEN=" + token, "PATH=" + os.Getenv("PATH")}
	noToken := func(t *testing.T, where, s string) {
		t.Helper()
		if strings.Contains(s, token) {
			t.Fatalf("%s shows the token: %q", where, s)
		}
	}
	check := func(t *testing.T, file string, want []byte, stdout string) getResult {
		t.Helper()
		got, err := os.ReadFile(file)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes (%v), not the object's %d", file, len(got), err, len(want))
		}
		var res getResult
		if err := json.Unmarshal([]byte(stdout), &res); err != nil || !res.Verified || res.SHA256 != hexSHA(want) {
			t.Fatalf("stdout %q (%v): want verified against the catalog", stdout, err)
		}
		if _, err := os.Stat(file + stateSuffix); !os.IsNotExist(err) {
			t.Fatalf("state file left: %v", err)
		}
		return res
	}

	t.Run("8 connections, token in the URL, verified", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "a.bin")
		before := p.sent.Load()
		code, stdout, stderr := p.run(t, nil, "get", dlURL+"?token="+token, "-c", "8", "-o", file)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		check(t, file, v1, stdout)
		noToken(t, "stderr", stderr)
		// Each byte once, plus response headers.
		if sent := p.sent.Load() - before; sent < size || sent > size+64<<10 {
			t.Fatalf("proxy sent %d bytes for a %d-byte object", sent, size)
		}
	})

	t.Run("kill -9 and resume", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "k.bin")
		p.slow.Store(true)
		st := killMidway(t, bin, binEnv, file, 6<<20, "get", dlURL, "-c", "4", "-o", file)
		p.slow.Store(false)
		claimed := st.spans().Total()
		raw, _ := os.ReadFile(file + stateSuffix)
		noToken(t, "the state file", string(raw))
		if claimed >= size {
			t.Fatalf("killed after the whole object was claimed (%d bytes)", claimed)
		}
		// Every claimed byte is really there.
		part, _ := os.ReadFile(file)
		for _, sp := range st.spans().Spans() {
			if !bytes.Equal(part[sp.Start:sp.End], v1[sp.Start:sp.End]) {
				t.Fatalf("claimed span %v does not hold the object's bytes", sp)
			}
		}
		before := p.sent.Load()
		code, stdout, stderr := runBinary(t, bin, binEnv, "get", dlURL, "-c", "4", "-o", file)
		if code != 0 {
			t.Fatalf("resume: exit %d: %s", code, stderr)
		}
		res := check(t, file, v1, stdout)
		noToken(t, "stderr", stderr)
		sent := p.sent.Load() - before
		if res.ResumedFrom != claimed || sent >= size || sent > size-claimed+256<<10 {
			t.Fatalf("resume sent %d bytes, resumed from %d; %d were claimed of %d", sent, res.ResumedFrom, claimed, size)
		}
	})

	t.Run("object replaced between runs: starts over", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "r.bin")
		p.slow.Store(true)
		killMidway(t, bin, binEnv, file, 6<<20, "get", dlURL, "-c", "4", "-o", file)
		p.slow.Store(false)
		v2 := randomBytes(t, size) // same size: only the ETag tells them apart
		upload(t, v2)
		code, stdout, stderr := runBinary(t, bin, binEnv, "get", dlURL, "-c", "4", "-o", file)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		res := check(t, file, v2, stdout) // verified against the catalog's new SHA-256
		if res.ResumedFrom != 0 || res.Received != size {
			t.Fatalf("result %+v: want a fresh download of the new version", res)
		}
		v1 = v2
	})

	t.Run("refused token is not printed", func(t *testing.T) {
		if code, _, errs := p.run(t, nil, "token", "revoke", token); code != 0 {
			t.Fatalf("revoke: %s", errs)
		}
		file := filepath.Join(t.TempDir(), "x.bin")
		code, stdout, stderr := runBinary(t, bin, binEnv, "get", dlURL+"?token="+token, "-o", file)
		if code != exitFailed || stdout != "" || !strings.Contains(stderr, "401") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		noToken(t, "stderr", stderr)
	})
}

// A signed URL (edgectl sign) is honoured on every range request, and its
// signature is never printed, also when the proxy refuses it.
func TestGetE2ESigned(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	p := startGetProxy(t, func(cfg *proxy.Config, deps *proxy.Deps) {
		s, err := auth.NewSigner(auth.SignerConfig{Keys: map[string]string{"k1": secret}, ActiveKey: "k1"})
		if err != nil {
			t.Fatal(err)
		}
		cfg.DownloadAuth, deps.Signer = proxy.AuthSigned, s
	})
	bucket := p.minio.NewBucket(t)
	data := randomBytes(t, 9<<20+5)
	src := writeTemp(t, "s.bin", data)
	if code, _, errs := p.run(t, nil, "file", "put", "-id", "signed", "-bucket", bucket, "-src", src); code != 0 {
		t.Fatalf("file put: %s", errs)
	}
	signEnv := []string{"EDGECTL_SIGN_KEYS=k1:" + secret, "EDGECTL_SIGN_KID=k1"}
	code, out, errs := p.run(t, signEnv, "sign", "-url", p.url+"/download/signed", "-ttl", "1h")
	signed := strings.TrimSpace(out)
	u, err := url.Parse(signed)
	if code != 0 || err != nil || u.Query().Get("sig") == "" {
		t.Fatalf("sign: exit %d, %q, %s", code, out, errs)
	}
	sig := u.Query().Get("sig")
	file := filepath.Join(t.TempDir(), "s.bin")
	code, stdout, stderr := p.run(t, nil, "get", signed, "-c", "4", "-o", file)
	if code != 0 || strings.Contains(stderr, sig) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var res getResult
	got, _ := os.ReadFile(file)
	if json.Unmarshal([]byte(stdout), &res) != nil || !res.Verified || !bytes.Equal(got, data) {
		t.Fatalf("stdout %q, equal %v", stdout, bytes.Equal(got, data))
	}
	// A tampered signature: refused, and neither signature shown.
	q := u.Query()
	q.Set("sig", strings.Repeat("A", len(sig)))
	u.RawQuery = q.Encode()
	code, _, stderr = p.run(t, nil, "get", u.String(), "-o", file)
	if code != exitFailed || strings.Contains(stderr, sig) || strings.Contains(stderr, strings.Repeat("A", len(sig))) || !strings.Contains(stderr, "40") {
		t.Fatalf("tampered: exit %d, stderr %q", code, stderr)
	}
}
