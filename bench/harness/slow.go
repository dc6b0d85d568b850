package main

// The slow-client section (-slow): what edgeproxy's memory does when its
// clients are slow, with the object on the disk tier. Two scenarios against
// one edgeproxy with a 64 MiB memory tier and hot-256m warmed onto disk:
//
//  1. 400 clients, each reading 16 MiB from its own offset of hot-256m at
//     10 KiB/s: RSS beside the memory budget (the bound: budget +
//     100 MiB).
//  2. 10,000 idle keep-alive connections (one 4 KiB request each, then
//     silence) plus 1,000 downloads at 10 KiB/s: RSS per connection.
//
// Clients ask for a 16 KiB receive buffer so the kernel cannot absorb a
// download (loopback autotuning would otherwise buffer megabytes per
// socket and the proxy would hold nothing). Each phase reads for
// -slow-duration, then RSS is sampled once more and every connection closed.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// slowOptions are the flags of the -slow section.
type slowOptions struct {
	duration time.Duration // how long slow clients read in each phase
	clients  int           // phase 1
	idle     int           // phase 2: idle keep-alive connections
	downs    int           // phase 2: slow downloads
	rate     int           // bytes per second per slow client
}

// slowSpan is what each phase-1 client asks for.
const slowSpan = 16 << 20

// runSlowBench runs the slow-client section alone and writes its report.
func runSlowBench(ctx context.Context, o options) error {
	root, tmp, done, err := prepare(ctx, o, "edgeproxy-slowbench-", nil)
	if err != nil {
		return err
	}
	defer done()
	logf("starting MinIO")
	org, err := startOrigin(ctx, filepath.Join(tmp, "minio"))
	if err != nil {
		return err
	}
	defer org.Close()
	if err := org.seed(ctx, []object{hot4K, hot256M}); err != nil {
		return err
	}
	logf("starting edgeproxy with a %s memory tier", diskMemory)
	// gctrace=1: the collector's CPU per phase, read back from the log
	// (gctrace.go).
	env := append(append([]string{"GODEBUG=gctrace=1"}, o.extraEnv...), "EDGEPROXY_CACHE_MEMORY_BYTES="+diskMemory)
	ep, err := startServer(ctx, "edgeproxy", root, filepath.Join(tmp, "edgeproxy"), org, env)
	if err != nil {
		return err
	}
	defer ep.stop()
	res := newResults(o, []*server{ep})
	if err := warm(ctx, ep, []object{hot4K}); err != nil {
		return err
	}
	if err := warmDisk(ctx, ep, []object{hot256M}, res); err != nil {
		return err
	}
	loadStart := loadAverage()
	rss := func() int64 { return ep.proc.sampleMemory().RSS }

	var b strings.Builder
	fmt.Fprintf(&b, "# edgeproxy with slow clients\n\ncommit %s, %s, load average %s at start", gitCommit(ctx, root), time.Now().UTC().Format(time.RFC3339), loadStart)
	fmt.Fprintf(&b, ", memory tier %s, hot-256m warmed onto the disk tier, clients read at %d KiB/s with a 16 KiB receive buffer for %v per phase.\n\n", diskMemory, o.slow.rate>>10, o.slow.duration)
	fmt.Fprintf(&b, "| measure | value |\n|---|---|\n")

	base := rss()
	fmt.Fprintf(&b, "| RSS after warm-up | %s |\n", mib(base))

	// Phase 1: slow readers at their own offsets.
	logf("slow: %d clients x %d MiB at %d KiB/s for %v", o.slow.clients, slowSpan>>20, o.slow.rate>>10, o.slow.duration)
	gc1 := startGCMeter(ep.proc)
	p1, err := slowPhase(ctx, ep, slowSpans(o.slow.clients), o.slow, rss)
	if err != nil {
		return err
	}
	g1 := gc1.done()
	fmt.Fprintf(&b, "| %d slow clients: peak RSS (sampled each second) | %s |\n", o.slow.clients, mib(p1.peak))
	fmt.Fprintf(&b, "| %d slow clients: peak RSS - memory tier (%s) | %s (bound: 100 MiB) |\n", o.slow.clients, diskMemory, mib(p1.peak-64<<20))
	fmt.Fprintf(&b, "| %d slow clients: bytes read, failed clients | %s, %d |\n", o.slow.clients, mib(p1.bytes), p1.failed)
	fmt.Fprintf(&b, "| file-backed part of RSS after phase 1 (executable, mapped chunk files) | %s |\n", mib(ep.proc.sampleMemory().File))
	fmt.Fprintf(&b, "| %d slow clients: GC | %s |\n", o.slow.clients, g1)

	// Phase 2: idle keep-alive connections plus slow downloads.
	base2 := rss()
	logf("slow: %d idle keep-alive connections", o.slow.idle)
	idle, err := openIdle(ctx, ep, o.slow.idle)
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	if err != nil {
		return err
	}
	withIdle := rss()
	logf("slow: plus %d slow downloads for %v", o.slow.downs, o.slow.duration)
	gc2 := startGCMeter(ep.proc)
	p2, err := slowPhase(ctx, ep, slowSpans(o.slow.downs), o.slow, rss)
	if err != nil {
		return err
	}
	g2 := gc2.done()
	conns := int64(o.slow.idle + o.slow.downs)
	fmt.Fprintf(&b, "| RSS before phase 2 | %s |\n", mib(base2))
	fmt.Fprintf(&b, "| %d idle keep-alive connections: RSS, per connection | %s, %.1f KiB |\n", o.slow.idle, mib(withIdle), float64(withIdle-base2)/float64(o.slow.idle)/1024)
	fmt.Fprintf(&b, "| plus %d slow downloads: peak RSS, per connection (all %d) | %s, %.1f KiB |\n", o.slow.downs, conns, mib(p2.peak), float64(p2.peak-base2)/float64(conns)/1024)
	fmt.Fprintf(&b, "| %d slow downloads: bytes read, failed | %s, %d |\n", o.slow.downs, mib(p2.bytes), p2.failed)
	fmt.Fprintf(&b, "| %d idle + %d slow: GC | %s |\n", o.slow.idle, o.slow.downs, g2)
	fmt.Fprintf(&b, "\nload average at end %s.\n", loadAverage())
	for _, p := range res.problems {
		fmt.Fprintf(&b, "\nproblem: %s\n", p)
	}
	return writeReport(root, o.out, b.String())
}

// phaseResult is what one slow phase measured.
type phaseResult struct {
	peak   int64 // RSS, bytes
	bytes  int64 // read by all clients
	failed int   // clients that got an error or a status other than 206
}

// slowDialer asks the kernel for a small receive buffer, so a slow client
// is slow at the proxy's socket too.
var slowDialer = net.Dialer{Timeout: 10 * time.Second, Control: func(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
	})
	if err != nil {
		return err
	}
	return serr
}}

// slowSpans spreads n ranges of slowSpan bytes evenly over hot256M.
func slowSpans(n int) [][2]int64 {
	step := (hot256M.Size - slowSpan) / int64(n)
	spans := make([][2]int64, n)
	for i := range spans {
		off := int64(i) * step
		spans[i] = [2]int64{off, off + slowSpan - 1}
	}
	return spans
}

// slowPhase runs one slow client per span of hot256M for opts.duration,
// sampling RSS each second, and closes them all.
func slowPhase(ctx context.Context, s *server, spans [][2]int64, opts slowOptions, rss func() int64) (phaseResult, error) {
	var (
		res    phaseResult
		total  atomic.Int64
		failed atomic.Int64
		wg     sync.WaitGroup
	)
	pctx, cancel := context.WithTimeout(ctx, opts.duration)
	defer cancel()
	const tick = 250 * time.Millisecond
	per := opts.rate / int(time.Second/tick)
	path := s.prefix + hot256M.Key
	for _, sp := range spans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := slowDialer.DialContext(pctx, "tcp", s.Addr)
			if err != nil {
				failed.Add(1)
				return
			}
			defer c.Close()
			go func() { <-pctx.Done(); c.Close() }()
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nRange: bytes=%d-%d\r\n\r\n", path, s.Addr, sp[0], sp[1])
			buf := make([]byte, per)
			if _, err := io.ReadFull(c, buf[:12]); err != nil || string(buf[9:12]) != "206" {
				if pctx.Err() == nil {
					failed.Add(1)
				}
				return
			}
			t := time.NewTicker(tick)
			defer t.Stop()
			for {
				select {
				case <-pctx.Done():
					return
				case <-t.C:
				}
				n, err := io.ReadFull(c, buf)
				total.Add(int64(n))
				if err != nil {
					if pctx.Err() == nil {
						failed.Add(1)
					}
					return
				}
			}
		}()
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for done := false; !done; {
		select {
		case <-pctx.Done():
			done = true
		case <-t.C:
		}
		if r := rss(); r > res.peak {
			res.peak = r
		}
	}
	wg.Wait()
	res.bytes, res.failed = total.Load(), int(failed.Load())
	return res, ctx.Err()
}

// openIdle opens n keep-alive connections to s, each having fetched hot4K
// once, and leaves them idle.
func openIdle(ctx context.Context, s *server, n int) ([]net.Conn, error) {
	var (
		mu    sync.Mutex
		conns = make([]net.Conn, 0, n)
		first error
		wg    sync.WaitGroup
		next  = make(chan struct{})
	)
	req := fmt.Sprintf("GET %s%s HTTP/1.1\r\nHost: %s\r\n\r\n", s.prefix, hot4K.Key, s.Addr)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				c, err := slowDialer.DialContext(ctx, "tcp", s.Addr)
				if err == nil {
					c.SetDeadline(time.Now().Add(30 * time.Second))
					_, err = io.WriteString(c, req)
				}
				if err == nil {
					var resp *http.Response
					if resp, err = http.ReadResponse(bufio.NewReader(c), nil); err == nil {
						_, err = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if err == nil && resp.StatusCode != http.StatusOK {
							err = fmt.Errorf("status %d", resp.StatusCode)
						}
					}
					c.SetDeadline(time.Time{})
				}
				mu.Lock()
				if err != nil {
					if c != nil {
						c.Close()
					}
					if first == nil {
						first = fmt.Errorf("harness: idle connection %d: %w", len(conns), err)
					}
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
	for range n {
		select {
		case next <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return conns, first
}
