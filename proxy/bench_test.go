package proxy_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/cache"
	"github.com/edgeproxy/edgeproxy/internal/stats"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/limiter"
	"github.com/edgeproxy/edgeproxy/origin"
	"github.com/edgeproxy/edgeproxy/proxy"
)

// statsRecorder adapts stats.Recorder to proxy.StatsRecorder (cmd has the
// same adapter; the proxy does not import stats).
type statsRecorder struct{ r *stats.Recorder }

func (a statsRecorder) Access(id string) { a.r.Access(id) }
func (a statsRecorder) StartTransfer(i proxy.TransferInfo) proxy.TransferTracker {
	if t := a.r.StartTransfer(stats.TransferInfo(i)); t != nil {
		return t
	}
	return nil
}

// hitBench is a proxy over a warm cache, driven through its Handler with
// an in-memory request: it measures the proxy's own cost per cache hit,
// without sockets, so that variants (auth, limiter, stats) compare fairly.
type hitBench struct {
	srv   *proxy.Server
	ctx   *fasthttp.RequestCtx
	token string
}

const benchToken = "bench-token-0123456789abcdef"

func newHitBench(tb testing.TB, size int, withAuth, withLimiter, withStats bool) *hitBench {
	tb.Helper()
	cfg, deps, c := newHitProxy(tb, size)
	log := deps.Logger
	var rdb *redis.Client
	if withAuth || withStats {
		rdb = testenv.Redis(tb).Client(tb)
	}
	authorization := ""
	if withAuth {
		if err := rdb.Set(context.Background(), "download:token:"+benchToken, "file_id=obj&user_id=u", time.Hour).Err(); err != nil {
			tb.Fatal(err)
		}
		v, err := auth.New(auth.Config{CacheTTL: time.Hour, Budget: time.Second}, rdb, log)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { v.Close() })
		<-v.Ready() // its purge-on-subscribe must not empty the warm cache
		deps.Tokens = v
		cfg.DownloadAuth = proxy.AuthToken
		authorization = "Bearer " + benchToken
	}
	if withLimiter {
		// Admission on (concurrency caps), no rate: the unshaped path.
		l, err := limiter.New(limiter.Config{MaxConcurrentPerClient: 1 << 20, MaxConcurrent: 1 << 20}, time.Now)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { l.Close() })
		deps.Limiter = l
	}
	if withStats {
		r, err := stats.New(stats.Config{}, rdb, log)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { r.Close(context.Background()) })
		deps.Stats = statsRecorder{r}
	}
	return startHitBench(tb, cfg, deps, c, "/download/obj", authorization)
}

// newHitProxy is what every hit bench starts from: a directory origin
// holding b/obj (size zero bytes), a memory cache over it, and the proxy's
// Config and Deps serving /download/{key} from bucket b with no access
// layer and no access log. Variants add their layer to cfg and deps.
func newHitProxy(tb testing.TB, size int) (proxy.Config, proxy.Deps, *cache.Cache) {
	tb.Helper()
	root := tb.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "b"), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "b", "obj"), make([]byte, size), 0o644); err != nil {
		tb.Fatal(err)
	}
	dir, err := origin.NewDir(origin.DirConfig{Root: root})
	if err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := cache.New(cache.Config{MemoryBytes: 64 << 20}, dir, log)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	off := false
	return proxy.Config{DownloadBucket: "b", AccessLog: &off}, proxy.Deps{Objects: c, Origin: dir, Logger: log}, c
}

// startHitBench builds the proxy and an in-memory request for uri (with
// that Authorization header unless empty), then warms the cache (and any
// token or catalog cache) so that every measured request is a hit.
func startHitBench(tb testing.TB, cfg proxy.Config, deps proxy.Deps, c *cache.Cache, uri, authorization string) *hitBench {
	tb.Helper()
	srv, err := proxy.New(cfg, deps)
	if err != nil {
		tb.Fatal(err)
	}
	h := &hitBench{srv: srv, ctx: new(fasthttp.RequestCtx)}
	var req fasthttp.Request
	req.SetRequestURI(uri)
	req.Header.SetHost("edge.test")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	h.ctx.Init2(nopConn{}, nil, false)
	req.CopyTo(&h.ctx.Request)
	// Warm the cache and the token cache; Wait lets ristretto apply its
	// asynchronous Set before the next request must be a hit.
	h.do(tb)
	c.Wait()
	h.do(tb)
	if got := string(h.ctx.Response.Header.Peek("X-Cache")); got != "HIT" {
		tb.Fatalf("second request: X-Cache %q, want HIT", got)
	}
	return h
}

// do serves one request and drains the body as fasthttp would.
func (h *hitBench) do(tb testing.TB) { h.doStatus(tb, fasthttp.StatusOK) }

// doStatus is do for a request whose answer must have status want.
func (h *hitBench) doStatus(tb testing.TB, want int) {
	h.ctx.Response.Reset()
	h.srv.Handler(h.ctx)
	if code := h.ctx.Response.StatusCode(); code != want {
		tb.Fatalf("status %d: %s", code, h.ctx.Response.Body())
	}
	if err := h.ctx.Response.BodyWriteTo(io.Discard); err != nil {
		tb.Fatal(err)
	}
	if c, ok := h.ctx.Response.BodyStream().(io.Closer); ok {
		c.Close()
	}
}

// BenchmarkHit measures the proxy's cost per cache hit of a 4 KiB and a
// 1 MiB object, alone and with each access layer turned on, so that the
// layers' costs read as ratios against "plain" (issue targets: token auth
// >= 0.9x, shaping layer and statistics each < 5%).
func BenchmarkHit(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"4KiB", 4 << 10}, {"1MiB", 1 << 20}} {
		for _, v := range []struct {
			name                 string
			auth, limiter, stats bool
		}{
			{"plain", false, false, false},
			{"token", true, false, false},
			{"limiter", false, true, false},
			{"stats", false, false, true},
			{"all", true, true, true},
		} {
			b.Run(size.name+"/"+v.name, func(b *testing.B) {
				h := newHitBench(b, size.n, v.auth, v.limiter, v.stats)
				b.ReportAllocs()
				b.SetBytes(int64(size.n))
				b.ResetTimer()
				for range b.N {
					h.do(b)
				}
			})
		}
	}
}

// BenchmarkRangeHit measures the proxy's cost per memory-tier hit of a
// random 64 KiB range, the harness's "random 64 KiB ranges" scenario
// without sockets: half the ranges start on a 64 KiB boundary, half at any
// byte, so some straddle two chunks (bench/wrk/range.lua draws the same
// mix). The object is 8 MiB so every chunk stays in the memory tier.
func BenchmarkRangeHit(b *testing.B) {
	const size, spanLen = 8 << 20, 64 << 10
	h := newHitBench(b, size, false, false, false)
	rng := rand.New(rand.NewPCG(1, 2))
	var hdrs [256][]byte
	for i := range hdrs {
		off := rng.Int64N(size/spanLen) * spanLen
		if i%2 == 1 {
			off = rng.Int64N(size - spanLen + 1)
		}
		hdrs[i] = fmt.Appendf(nil, "bytes=%d-%d", off, off+spanLen-1)
	}
	b.ReportAllocs()
	b.SetBytes(spanLen)
	b.ResetTimer()
	for i := range b.N {
		h.ctx.Request.Header.SetBytesV("Range", hdrs[i%len(hdrs)])
		h.doStatus(b, fasthttp.StatusPartialContent)
	}
}

// nopConn is the benchmark's connection: it has a loopback address and
// accepts deadlines, and nothing is read or written through it (the body
// is drained with BodyWriteTo).
type nopConn struct{ net.Conn }

func (nopConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4242} }
func (nopConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080} }
func (nopConn) SetWriteDeadline(time.Time) error { return nil }
func (nopConn) SetReadDeadline(time.Time) error  { return nil }
func (nopConn) SetDeadline(time.Time) error      { return nil }
