package proxy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/proxy"
)

// tlsProxy is a proxy.Server with TLS on a loopback listener.
type tlsProxy struct {
	srv      *proxy.Server
	addr     string
	ca       *testenv.CA
	certFile string
	keyFile  string
	log      *testenv.LockedBuffer
	data     []byte
}

// startTLSProxy serves dlBucket/dataKey over TLS with a certificate of
// serial 1 for 127.0.0.1 and localhost, issued by a CA of the test.
func startTLSProxy(t *testing.T, tc proxy.TLSConfig) *tlsProxy {
	t.Helper()
	o := newDirOrigin(t, dlBucket, hostBucket)
	p := &tlsProxy{ca: testenv.NewCA(t), log: new(testenv.LockedBuffer), data: randBytes(7, 64<<10)}
	o.put(t, dlBucket, dataKey, p.data)
	o.put(t, hostBucket, "obj", []byte("host bucket\n"))
	dir := t.TempDir()
	p.certFile, p.keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	p.ca.Issue(t, 1, p.certFile, p.keyFile, "127.0.0.1", "localhost")
	tc.CertFile, tc.KeyFile = p.certFile, p.keyFile
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	srv, err := proxy.New(proxy.Config{
		Listen: p.addr, DownloadBucket: dlBucket, TLS: tc, DrainTimeout: 5 * time.Second,
		Routes: []proxy.RouteConfig{{Hosts: []string{"files.example.com"}, Bucket: hostBucket}},
	}, proxy.Deps{Origin: o.Store, Logger: slog.New(slog.NewTextHandler(p.log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	p.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return p
}

func (p *tlsProxy) url() string { return "https://" + p.addr + "/download/" + dataKey }

// client trusts only the test's CA; keepAlive false makes every request
// a new connection (a new handshake).
func (p *tlsProxy) client(t *testing.T, keepAlive bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: p.ca.ClientConfig(), DisableKeepAlives: !keepAlive, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// serialOf returns the serial of the certificate a new connection gets.
func (p *tlsProxy) serialOf(t *testing.T) string {
	t.Helper()
	c, err := tls.Dial("tcp", p.addr, p.ca.ClientConfig())
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func TestTLSServesVerifiedDownloads(t *testing.T) {
	p := startTLSProxy(t, proxy.TLSConfig{})
	resp, err := p.client(t, true).Get(p.url())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, p.data) {
		t.Fatalf("status %d, %d bytes; want 200 with the object", resp.StatusCode, len(body))
	}
	if v := resp.TLS.Version; v < tls.VersionTLS12 {
		t.Errorf("TLS version %x, want 1.2 or later", v)
	}
	alpn := p.ca.ClientConfig()
	alpn.NextProtos = []string{"h2", "http/1.1"}
	if c, err := tls.Dial("tcp", p.addr, alpn); err != nil {
		t.Fatal(err)
	} else {
		if proto := c.ConnectionState().NegotiatedProtocol; proto != "http/1.1" {
			t.Errorf("ALPN %q, want http/1.1", proto)
		}
		c.Close()
	}
	// TLS 1.1 is refused.
	old := p.ca.ClientConfig()
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if c, err := tls.Dial("tcp", p.addr, old); err == nil {
		c.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}

	// curl verifies the chain against the test's CA only.
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	out, err := exec.Command(curl, "-sS", "--fail", "--cacert", p.ca.CertFile, "-o", "-", "-w", "\n%{http_code} %{ssl_verify_result}", p.url()).Output()
	if err != nil {
		t.Fatalf("curl --cacert: %v", err)
	}
	got, tail, _ := bytes.Cut(out, []byte("\n200 0"))
	if !bytes.Equal(got, p.data) || len(tail) != 0 {
		t.Fatalf("curl got %d bytes with trailer %q", len(got), out[max(0, len(out)-16):])
	}
	// Without the CA, curl refuses the certificate (exit 60).
	err = exec.Command(curl, "-sS", "-o", "/dev/null", "--capath", t.TempDir(), "--cacert", "/dev/null", p.url()).Run()
	var ee *exec.ExitError
	if !asExit(err, &ee) || ee.ExitCode() != 60 && ee.ExitCode() != 77 {
		t.Errorf("curl without the CA: %v, want exit 60 (peer certificate not verified)", err)
	}
}

func asExit(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*ee = e
	return ok
}

// A certificate rotated under a stream of requests: no request fails, new
// connections get the new serial, and a keep-alive connection opened
// before the rotation keeps working.
func TestTLSRotationUnderLoad(t *testing.T) {
	p := startTLSProxy(t, proxy.TLSConfig{ReloadInterval: -1})
	if s := p.serialOf(t); s != "1" {
		t.Fatalf("serial %s, want 1", s)
	}
	kept := p.client(t, true)
	if resp, err := kept.Get(p.url()); err != nil {
		t.Fatal(err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := p.client(t, w%2 == 0) // half reuse connections, half handshake each time
			for i := 0; i < 5000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(p.url())
				if err == nil {
					var n int64
					n, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && (resp.StatusCode != 200 || n != int64(len(p.data))) {
						err = io.ErrUnexpectedEOF
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	testenv.WaitFor(t, 30*time.Second, "requests before the rotation", func() bool { return ok.Load() > 100 })
	p.ca.Issue(t, 2, p.certFile, p.keyFile, "127.0.0.1", "localhost")
	if err := p.srv.ReloadTLS(proxy.TLSConfig{}); err != nil {
		t.Fatal(err)
	}
	before := ok.Load()
	testenv.WaitFor(t, 30*time.Second, "requests after the rotation", func() bool { return ok.Load() > before+100 })
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed across the rotation; first: %v", n, n+ok.Load(), firstErr.Load())
	}
	if s := p.serialOf(t); s != "2" {
		t.Errorf("new connection got serial %s, want 2", s)
	}
	resp, err := kept.Get(p.url())
	if err != nil {
		t.Fatalf("keep-alive connection from before the rotation: %v", err)
	}
	resp.Body.Close()
	t.Logf("rotation under load: %d requests, 0 failed", ok.Load())
}

// A pair that does not load (a key that does not match, a broken file)
// keeps the old certificate serving and logs one line.
func TestTLSInvalidPairKeepsOld(t *testing.T) {
	p := startTLSProxy(t, proxy.TLSConfig{ReloadInterval: -1})
	other := t.TempDir()
	p.ca.Issue(t, 3, filepath.Join(other, "c"), filepath.Join(other, "k"), "127.0.0.1")
	key, err := os.ReadFile(filepath.Join(other, "k"))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		name string
		file string
		data []byte
	}{
		{"mismatched key", p.keyFile, key},
		{"garbage certificate", p.certFile, []byte("not a certificate\n")},
	} {
		t.Run(bad.name, func(t *testing.T) {
			good, _ := os.ReadFile(bad.file)
			defer os.WriteFile(bad.file, good, 0o600)
			if err := os.WriteFile(bad.file, bad.data, 0o600); err != nil {
				t.Fatal(err)
			}
			lines := strings.Count(p.log.String(), "\n")
			if err := p.srv.ReloadTLS(proxy.TLSConfig{}); err == nil {
				t.Fatal("ReloadTLS accepted a broken pair")
			}
			logged := strings.Split(strings.TrimSpace(p.log.String()), "\n")[lines:]
			if len(logged) != 1 || !strings.Contains(logged[0], "old one keeps serving") {
				t.Errorf("log: %q, want one line saying the old certificate keeps serving", logged)
			}
			if s := p.serialOf(t); s != "1" {
				t.Errorf("serial %s after a refused reload, want 1", s)
			}
			if resp, err := p.client(t, false).Get(p.url()); err != nil {
				t.Fatal(err)
			} else {
				// Read it all: a body closed mid-way is a client gone,
				// which the proxy logs, into the next case's lines.
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, p.data) {
					t.Errorf("download with the old certificate: status %d, %d bytes, %v; want 200 with the object", resp.StatusCode, len(body), err)
				}
			}
		})
	}
}

// The file watch picks up a renewed pair without any signal.
func TestTLSWatchReloadsChangedFiles(t *testing.T) {
	p := startTLSProxy(t, proxy.TLSConfig{ReloadInterval: 20 * time.Millisecond})
	p.ca.Issue(t, 4, p.certFile, p.keyFile, "127.0.0.1")
	testenv.WaitFor(t, 30*time.Second, "the watch to load serial 4", func() bool { return p.serialOf(t) == "4" })
}

func TestTLSRedirect(t *testing.T) {
	p := startTLSProxy(t, proxy.TLSConfig{RedirectListen: "unused"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.srv.ServeRedirect(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeRedirect: %v", err)
		}
	}()
	_, port, _ := net.SplitHostPort(p.addr)
	cases := []struct {
		name, target, host string
		status             int
		location           string
	}{
		{"known host", "/a/b.bin?x=1&y=%2F", "files.example.com", 308, "https://files.example.com:" + port + "/a/b.bin?x=1&y=%2F"},
		{"known host with port", "/obj", "files.example.com:80", 308, "https://files.example.com:" + port + "/obj"},
		{"known host upper case", "/obj", "FILES.example.com", 308, "https://files.example.com:" + port + "/obj"},
		{"unknown host", "/obj", "evil.example.net", 404, ""},
		// fasthttp drops the userinfo: the target is the known host.
		{"userinfo", "/obj", "evil.example.net@files.example.com", 308, "https://files.example.com:" + port + "/obj"},
		{"userinfo of a known host", "/obj", "files.example.com@evil.example.net", 404, ""},
		{"absolute form to an unknown host", "http://evil.example.net/obj", "files.example.com", 404, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, _, _ := rawExchange(t, ln.Addr().String(), "GET", rawGet("GET", c.target, c.host))
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			if got := resp.Header.Get("Location"); got != c.location {
				t.Errorf("Location %q, want %q", got, c.location)
			}
		})
	}
}
