package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/proxy"
)

func TestConfigDiffNamesKeys(t *testing.T) {
	a := defaultConfig()
	b := defaultConfig()
	if d := configDiff(a, b); len(d) != 0 {
		t.Fatalf("equal configs differ in %v", d)
	}
	b.Proxy.Listen = ":9"
	b.Proxy.Routes = []proxy.RouteConfig{{Hosts: []string{"a"}, Bucket: "b"}}
	b.Proxy.TLS.RedirectListen = ":80"
	b.Cache.MemoryBytes = 1
	b.Limiter.Rate = 5
	b.Limiter.ClusterWide = true
	b.Log.Level = "debug"
	b.Log.Format = "text"
	b.Auth.Signer.ActiveKey = "k"
	got := configDiff(a, b)
	want := []string{"proxy.listen", "proxy.routes", "proxy.tls.redirect_listen", "cache.memory_bytes",
		"auth.signer.active_key", "limiter.rate", "limiter.cluster_wide", "log.level", "log.format"}
	if !slices.Equal(got, want) {
		t.Errorf("diff = %v\nwant %v", got, want)
	}
	restart := slices.DeleteFunc(got, isLive)
	if want := []string{"proxy.listen", "proxy.tls.redirect_listen", "cache.memory_bytes", "limiter.cluster_wide", "log.format"}; !slices.Equal(restart, want) {
		t.Errorf("needs restart = %v\nwant %v", restart, want)
	}
}

// reloadEnv is a TLS edge on a directory origin, configured by a file the
// test rewrites.
type reloadEnv struct {
	ca       *testenv.CA
	dir      string
	root     string
	path     string
	data     map[string][]byte // bucket -> the object "obj"
	listen   string
	certFile string
	keyFile  string
}

func newReloadEnv(t *testing.T) *reloadEnv {
	e := &reloadEnv{ca: testenv.NewCA(t), dir: t.TempDir(), root: t.TempDir(), data: map[string][]byte{}}
	for i, b := range []string{"one", "two"} {
		if err := os.MkdirAll(filepath.Join(e.root, b), 0o755); err != nil {
			t.Fatal(err)
		}
		e.data[b] = []byte(strings.Repeat(fmt.Sprintf("bucket %s %d\n", b, i), 2000))
		if err := os.WriteFile(filepath.Join(e.root, b, "obj"), e.data[b], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.path = filepath.Join(e.dir, "config.yaml")
	e.listen = "127.0.0.1:0"
	return e
}

// issue makes a certificate of serial n under new file names.
func (e *reloadEnv) issue(t *testing.T, n int64) {
	e.certFile = filepath.Join(e.dir, fmt.Sprintf("tls%d.crt", n))
	e.keyFile = filepath.Join(e.dir, fmt.Sprintf("tls%d.key", n))
	e.ca.Issue(t, n, e.certFile, e.keyFile, "127.0.0.1", "localhost")
}

// write writes the configuration with the given routes, as YAML lines.
func (e *reloadEnv) write(t *testing.T, routes string, extra string) {
	yaml := "proxy:\n  listen: " + e.listen + "\n  download_bucket: one\n  drain_timeout: 20s\n  access_log: false\n" +
		"  tls:\n    cert_file: " + e.certFile + "\n    key_file: " + e.keyFile + "\n    reload_interval: -1s\n" +
		"  routes:\n" + routes +
		"origin:\n  kind: dir\n  dir:\n    root: " + e.root + "\n" +
		"cache:\n  memory_bytes: 8MiB\n  disk_dir: \"\"\n" +
		"admin:\n  listen: \"off\"\n" + extra
	if err := os.WriteFile(e.path+".tmp", []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(e.path+".tmp", e.path); err != nil {
		t.Fatal(err)
	}
}

const routeOne = "    - hosts: [one.example.com]\n      bucket: one\n"
const routeTwo = "    - hosts: [two.example.com]\n      bucket: two\n"

// load runs bounded request loops against the edge until stop is closed:
// half the workers reuse connections, half open one per request (a new
// handshake each time), over every path in targets (host -> bucket).
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	stop       chan struct{}
	once       sync.Once
	wg         sync.WaitGroup
}

func startLoad(t *testing.T, addr string, ca *testenv.CA, workers int, targets func() map[string]string, data map[string][]byte) *load {
	l := &load{stop: make(chan struct{})}
	for w := range workers {
		tr := &http.Transport{TLSClientConfig: ca.ClientConfig(), DisableKeepAlives: w%2 == 1}
		t.Cleanup(tr.CloseIdleConnections)
		c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; i < 200000; i++ { // bounded; stop ends it long before
				for host, bucket := range targets() {
					select {
					case <-l.stop:
						return
					default:
					}
					req, _ := http.NewRequest("GET", "https://"+addr+"/obj", nil)
					req.Host = host
					err := fetch(c, req, data[bucket])
					if err != nil {
						l.failed.Add(1)
						l.mu.Lock()
						if len(l.errs) < 5 {
							l.errs = append(l.errs, host+": "+err.Error())
						}
						l.mu.Unlock()
						continue
					}
					l.ok.Add(1)
				}
			}
		}()
	}
	return l
}

func (l *load) finish() { l.once.Do(func() { close(l.stop) }); l.wg.Wait() }

func fetch(c *http.Client, req *http.Request, want []byte) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || string(body) != string(want) {
		return fmt.Errorf("status %d, %d bytes", resp.StatusCode, len(body))
	}
	return nil
}

func serialAt(t *testing.T, addr string, ca *testenv.CA) string {
	c, err := tls.Dial("tcp", addr, ca.ClientConfig())
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// TestSIGHUPNewRouteAndCertificateUnderLoad is the issue's must-show: the
// real binary under a stream of HTTPS requests gets SIGHUP with a new
// route and a new certificate; no request fails, the new route serves,
// and new connections get the new certificate. An invalid file sent next
// is refused in one line and the edge keeps serving; a changed listen
// address is reported as needing a restart.
func TestSIGHUPNewRouteAndCertificateUnderLoad(t *testing.T) {
	e := newReloadEnv(t)
	e.issue(t, 1)
	e.write(t, routeOne, "")
	p := start(t, []string{"-config", e.path}, nil)
	var routes atomic.Value
	routes.Store(map[string]string{"one.example.com": "one"})
	loadStart := time.Now()
	l := startLoad(t, p.addr, e.ca, 8, func() map[string]string { return routes.Load().(map[string]string) }, e.data)
	defer l.finish()
	if !testenv.Poll(context.Background(), 30*time.Second, func() bool { return l.ok.Load() > 200 && time.Since(loadStart) > time.Second }) {
		t.Fatalf("load did not start: %d ok, %d failed %v", l.ok.Load(), l.failed.Load(), l.errs)
	}
	if s := serialAt(t, p.addr, e.ca); s != "1" {
		t.Fatalf("serial %s, want 1", s)
	}

	// The new route and certificate, under load.
	e.issue(t, 2)
	e.write(t, routeOne+routeTwo, "log:\n  level: warn\n")
	began := time.Now()
	p.cmd.Process.Signal(syscall.SIGHUP)
	if !testenv.Poll(context.Background(), 30*time.Second, func() bool { return strings.Contains(p.stderr.String(), "reload: configuration applied") }) {
		t.Fatalf("no reload logged:\n%s", p.stderr.String())
	}
	req, _ := http.NewRequest("GET", "https://"+p.addr+"/obj", nil)
	req.Host = "two.example.com"
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: e.ca.ClientConfig()}, Timeout: 30 * time.Second}
	if err := fetch(c, req, e.data["two"]); err != nil {
		t.Fatalf("new route after SIGHUP: %v", err)
	}
	if s := serialAt(t, p.addr, e.ca); s != "2" {
		t.Errorf("serial %s after SIGHUP, want 2", s)
	}
	routes.Store(map[string]string{"one.example.com": "one", "two.example.com": "two"})
	before := l.ok.Load()
	if !testenv.Poll(context.Background(), 30*time.Second, func() bool { return l.ok.Load() > before+200 && time.Since(began) > 2*time.Second }) {
		t.Fatalf("load stalled after reload: %d ok, %d failed %v", l.ok.Load(), l.failed.Load(), l.errs)
	}

	// An invalid file: refused in one line, the new state keeps serving.
	if err := os.WriteFile(e.path, []byte("proxy:\n  routes: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	if !testenv.Poll(context.Background(), 30*time.Second, func() bool { return strings.Contains(p.stderr.String(), "new configuration refused") }) {
		t.Fatalf("invalid configuration not refused:\n%s", p.stderr.String())
	}
	if n := strings.Count(p.stderr.String(), "new configuration refused"); n != 1 {
		t.Errorf("%d refusal lines, want 1", n)
	}
	// A route whose auth has no backend is refused as a whole.
	e.write(t, routeOne+routeTwo+"    - hosts: [three.example.com]\n      bucket: two\n      auth: signed\n", "")
	p.cmd.Process.Signal(syscall.SIGHUP)
	if !testenv.Poll(context.Background(), 30*time.Second, func() bool { return strings.Count(p.stderr.String(), "new configuration refused") == 2 }) {
		t.Fatalf("route without keys not refused:\n%s", p.stderr.String())
	}
	// A changed listen address: applied otherwise, reported in one line.
	e.listen = "127.0.0.1:1"
	e.write(t, routeOne+routeTwo, "log:\n  level: warn\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	if !testenv.Poll(context.Background(), 30*time.Second, func() bool { return strings.Contains(p.stderr.String(), "need a restart") }) {
		t.Fatalf("no restart warning:\n%s", p.stderr.String())
	}
	// log.level warn took effect: the later reloads' info lines are gone.
	if n := strings.Count(p.stderr.String(), "reload: configuration applied"); n != 1 {
		t.Errorf("%d info lines of applied reloads, want 1 (the first, before log.level warn)", n)
	}
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(line, "need a restart") && !strings.Contains(line, "proxy.listen") {
			t.Errorf("restart line does not name proxy.listen: %s", line)
		}
	}
	if err := fetch(c, req, e.data["two"]); err != nil {
		t.Fatalf("after refused reloads: %v", err)
	}
	l.finish()
	if n := l.failed.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed across reloads: %v", n, n+l.ok.Load(), l.errs)
	}
	el := time.Since(loadStart)
	t.Logf("SIGHUP under load: %d HTTPS requests (8 workers, half a new TLS connection per request) in %v (%.0f req/s), 0 failed, across 4 SIGHUPs; new route and serial 2 live after the first",
		l.ok.Load(), el.Round(time.Millisecond), float64(l.ok.Load())/el.Seconds())
	p.cmd.Process.Signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case <-p.done:
	case <-ctx.Done():
		t.Fatal("no exit after SIGTERM")
	}
}

// A TLS pair that does not load stops the start (and -check) with exit
// code 2 and one line naming the keys.
func TestBadTLSPairExitsTwo(t *testing.T) {
	e := newReloadEnv(t)
	e.certFile, e.keyFile = filepath.Join(e.dir, "none.crt"), filepath.Join(e.dir, "none.key")
	e.write(t, routeOne, "")
	for _, args := range [][]string{{"-check", "-config", e.path}, {"-config", e.path}} {
		cmd := exec.Command(binary(t), args...)
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Fatalf("%v: exit %v, want 2\n%s", args, err, out)
		}
		msg := strings.TrimSpace(string(out))
		if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "tls.cert_file") {
			t.Errorf("%v: output %q, want one line naming tls.cert_file", args, msg)
		}
	}
}

// apply, in process: a limiter change builds a new limiter, an unchanged
// one is kept, and turning TLS on is reported as needing a restart.
func TestApplyLimiterAndTLSToggle(t *testing.T) {
	e := newReloadEnv(t)
	e.issue(t, 1)
	e.write(t, routeOne, "limiter:\n  request_rate: 100\n")
	cfg, err := loadConfig(e.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	plain := cfg
	plain.Proxy.TLS = proxy.TLSConfig{}
	var logs testenv.LockedBuffer
	a, err := build(plain, &logs, false)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	first := a.proxy.Limiter()
	if first == nil {
		t.Fatal("no limiter built")
	}
	if err := a.apply(plain); err != nil {
		t.Fatal(err)
	}
	if a.proxy.Limiter() != first {
		t.Error("an unchanged limiter section replaced the limiter")
	}
	if strings.Contains(logs.String(), "need a restart") {
		t.Errorf("an unchanged file reported keys needing a restart:\n%s", logs.String())
	}
	next := cfg // TLS on, and a new rate
	next.Limiter.RequestRate = 5
	if err := a.apply(next); err != nil {
		t.Fatal(err)
	}
	if a.proxy.Limiter() == first {
		t.Error("a new request_rate kept the old limiter")
	}
	if !strings.Contains(logs.String(), `"proxy.tls.cert_file"]`) {
		t.Errorf("turning TLS on not reported as needing a restart:\n%s", logs.String())
	}
}
