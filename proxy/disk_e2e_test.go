package proxy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/cache"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/proxy"
)

// diskEnv is a proxy whose cache serves from its disk tier: the memory
// tier holds one chunk, which ristretto never admits (its cost includes
// bookkeeping), so every hit is a disk hit.
type diskEnv struct {
	o *dirOrigin
	c *cache.Cache
	p *testProxy
	// misses is the cache's origin reads after warm: hits read none.
	misses int64
	hc     *http.Client
	data   []byte
	dir    string // the disk tier's
}

const diskObj = "disk.bin"

func newDiskEnv(t *testing.T, cfg proxy.Config, size int) *diskEnv {
	t.Helper()
	e := &diskEnv{o: newDirOrigin(t, dlBucket), data: randBytes(90, size), dir: t.TempDir()}
	e.o.put(t, dlBucket, diskObj, e.data)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := cache.New(cache.Config{MemoryBytes: 1 << 20, DiskDir: e.dir, Policy: "lru"}, e.o.Store, log)
	if err != nil {
		t.Fatal(err)
	}
	e.c = c
	cfg.DownloadBucket = dlBucket
	on := true
	cfg.AccessLog = &on
	e.p = startProxy(t, cfg, proxy.Deps{Origin: e.o.Store, Objects: c})
	t.Cleanup(func() {
		e.p.stop(20 * time.Second)
		c.Close()
	})
	e.hc = newClient(t)
	return e
}

// warm downloads the object until it is on disk, then once more from disk,
// which verifies every block (so later hits are trusted and sent with
// sendfile).
func (e *diskEnv) warm(t *testing.T) {
	t.Helper()
	chunks := int64(len(e.data)+(1<<20)-1) >> 20
	e.get(t, "", http.StatusOK)
	testenv.WaitFor(t, 10*time.Second, "chunks written to disk", func() bool { return e.c.Stats().DiskChunks == chunks })
	before := e.c.Stats()
	e.get(t, "", http.StatusOK)
	// The short last chunk may fit the memory tier.
	if st := e.c.Stats(); st.DiskHits-before.DiskHits < chunks-1 || st.Misses != before.Misses {
		t.Fatalf("warm read: %d disk hits, %d misses, want %d hits", st.DiskHits-before.DiskHits, st.Misses-before.Misses, chunks)
	}
	e.misses = before.Misses
}

// get downloads the object with Range rng ("" for none) and checks status
// and bytes.
func (e *diskEnv) get(t *testing.T, rng string, status int) {
	t.Helper()
	var hdr []string
	if rng != "" {
		hdr = []string{"Range", rng}
	}
	resp, body := do(t, e.hc, http.MethodGet, e.p.URL+"/download/"+diskObj, hdr...)
	if resp.StatusCode != status {
		t.Fatalf("Range %q: status %d, want %d", rng, resp.StatusCode, status)
	}
	want := e.data
	if rng != "" {
		var from, to int
		if _, err := fmt.Sscanf(rng, "bytes=%d-%d", &from, &to); err != nil {
			t.Fatal(err)
		}
		want = e.data[from : to+1]
	}
	if !bytes.Equal(body, want) {
		t.Fatalf("Range %q: %d bytes (sha %s), want %d (sha %s)", rng, len(body), sha(body), len(want), sha(want))
	}
	if xc := resp.Header.Get("X-Cache"); e.c.Stats().DiskChunks > 0 && xc != "HIT" && xc != "MISS" && xc != "PARTIAL" {
		t.Fatalf("X-Cache %q", xc)
	}
}

// delivered waits until the cache has counted every byte of the range
// rng it served since before, and returns its stats then: a client can
// read the last bytes before the proxy's goroutine counts them.
func (e *diskEnv) delivered(t *testing.T, before cache.Stats, rng string) cache.Stats {
	t.Helper()
	var from, to int64
	if _, err := fmt.Sscanf(rng, "bytes=%d-%d", &from, &to); err != nil {
		t.Fatal(err)
	}
	var st cache.Stats
	testenv.WaitFor(t, 10*time.Second, "the cache to count the range "+rng, func() bool {
		st = e.c.Stats()
		return st.BytesFromMemory+st.BytesFromDisk+st.BytesFromOrigin-before.BytesFromMemory-before.BytesFromDisk-before.BytesFromOrigin >= to-from+1
	})
	return st
}

// TestE2EDiskHitsSendfile: disk-tier hits whose blocks were verified leave
// without entering the process: short spans by writev from the chunk
// file's mapping, long ones by sendfile. Byte-exact for whole objects,
// ranges inside a chunk and ranges across chunks, with the bytes counted
// in the access log, and on a keep-alive connection whose next response
// must not be corrupted by the file's offset or a held header.
func TestE2EDiskHitsSendfile(t *testing.T) {
	const size = 3<<20 + 100
	e := newDiskEnv(t, proxy.Config{}, size)
	e.warm(t)
	sent := func() (int64, int64) { st := e.c.Stats(); return st.DiskMappedBytes, st.DiskSendfileBytes }
	for _, tc := range []struct {
		rng   string
		short bool  // a short range: from the mapping, as far as the socket takes it at once
		spans int64 // bytes sent from the file, mapped or by sendfile
	}{
		{"bytes=0-65535", true, 65536},
		{"bytes=1000-66535", true, 65536},
		{"bytes=1048000-1049999", true, 0},        // across chunks 0 and 1; short bodies are copied behind their header
		{"bytes=100-3145827", false, 3<<20 - 100}, // the 100-byte last chunk fits the memory tier
		{fmt.Sprintf("bytes=%d-%d", size-70000, size-1), true, 70000 - 100},
		{"bytes=2097152-2097152", true, 0},
		{"bytes=1048576-1572863", false, 512 << 10},
	} {
		m0, s0 := sent()
		before := e.c.Stats()
		e.get(t, tc.rng, http.StatusPartialContent)
		e.delivered(t, before, tc.rng)
		m, s := sent()
		// How much one writev takes depends on the socket's send buffer,
		// so a short range may end by sendfile; a long one never maps.
		if m-m0+s-s0 != tc.spans || (tc.spans > 0 && tc.short != (m > m0)) {
			t.Errorf("Range %q: %d bytes mapped and %d by sendfile, want %d in all, mapped = %v", tc.rng, m-m0, s-s0, tc.spans, tc.short)
		}
	}
	e.get(t, "", http.StatusOK)
	if st := e.c.Stats(); st.DiskCorrupt != 0 || st.DiskErrors != 0 || st.Misses != e.misses {
		t.Fatalf("stats %+v (want no origin read after the warm-up's %d)", st, e.misses)
	}
	if st := e.c.Stats(); st.DiskMappedNow < 2<<20 {
		t.Errorf("%d bytes of chunk files mapped, want chunks 0 and 2 (short ranges were sent from them)", st.DiskMappedNow)
	}
	// The whole-object download's log line counts every byte.
	testenv.WaitFor(t, 10*time.Second, "access log of the last download", func() bool {
		return strings.Count(e.p.Log.String(), fmt.Sprintf("bytes=%d ", size)) >= 3
	})
}

// TestE2EDiskFileShrinksWhileOpen: a chunk file cut short by someone else
// while it is open, mapped and trusted. A short span then faults inside
// writev (EFAULT; in Go code it would be a fatal SIGBUS) and a long one
// ends early in sendfile; either way the file is dropped, the rest of the
// response comes from the origin byte-exact, and the connection serves
// the next request.
func TestE2EDiskFileShrinksWhileOpen(t *testing.T) {
	const size = 3 << 20
	e := newDiskEnv(t, proxy.Config{}, size)
	e.warm(t)
	files, err := filepath.Glob(filepath.Join(e.dir, "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	cut := 0
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() && st.Size() > 1<<20 {
			// Not at a page boundary: the rest of the page holding the new
			// end reads as zeros from a mapping (docs/design.md); past it,
			// the kernel's copy faults.
			if err := os.Truncate(f, 512<<10+100); err != nil {
				t.Fatal(err)
			}
			cut++
		}
	}
	if cut != 3 {
		t.Fatalf("cut %d chunk files, want 3 (files: %v)", cut, files)
	}
	before := e.c.Stats()
	failed := func(want int64) {
		t.Helper()
		st := e.c.Stats()
		if n := st.DiskErrors + st.DiskCorrupt - before.DiskErrors - before.DiskCorrupt; n != want {
			t.Errorf("%d chunk files dropped as failed, want %d", n, want)
		}
		if n := st.Misses - before.Misses; n < want {
			t.Errorf("%d chunks read from the origin, want >= %d", n, want)
		}
	}
	for _, rng := range []string{
		"bytes=600000-665535",   // chunk 0: a mapped span past the new end
		"bytes=1048576-1700000", // chunk 1: sendfile from before the end to past it
		"bytes=2097152-2162687", // chunk 2: a mapped span before the end (its bytes are still right)
		"bytes=0-1000",          // chunk 0 again, now from the origin
	} {
		e.get(t, rng, http.StatusPartialContent)
	}
	failed(2)
	e.get(t, "", http.StatusOK) // chunk 2's sendfile ends short
	failed(3)
}

// TestE2EDiskMappedShortRangesOnly: the spans of a short range leave by
// writev from the chunk file's mapping, and their pages stay mapped (page
// cache, reused by the next range); a long range, even one whose first
// span is short, goes by sendfile and maps nothing, so long and slow
// streams never bring file pages into the process's RSS. The mappings'
// resident size is read from /proc/self/smaps.
func TestE2EDiskMappedShortRangesOnly(t *testing.T) {
	const size = 3 << 20
	e := newDiskEnv(t, proxy.Config{}, size)
	e.warm(t)
	for _, tc := range []struct {
		rng         string
		mapped, rss bool
	}{
		{"bytes=0-3145727", false, false},      // whole reads (as the warm-up's): nothing mapped
		{"bytes=943718-2097151", false, false}, // a 100 KiB first span, 1.1 MiB in all
		{"bytes=1048576-1310719", true, true},  // 256 KiB
	} {
		before := e.c.Stats()
		e.get(t, tc.rng, http.StatusPartialContent)
		st := e.delivered(t, before, tc.rng)
		if mapped := st.DiskMappedBytes > before.DiskMappedBytes; mapped != tc.mapped {
			t.Errorf("Range %q: sent from the mapping = %v, want %v", tc.rng, mapped, tc.mapped)
		}
		if now := st.DiskMappedNow; (now > 0) != tc.mapped {
			t.Errorf("Range %q: %d bytes of chunk files mapped, want some = %v (files are mapped on their first short range)", tc.rng, now, tc.mapped)
		}
		if rss := mappedRSS(t, e.dir); (rss > 0) != tc.rss {
			t.Errorf("Range %q: %d bytes of chunk files resident in mappings, want some = %v", tc.rng, rss, tc.rss)
		}
	}
}

// mappedRSS sums the resident size of this process's mappings of files
// under dir, from /proc/self/smaps.
func mappedRSS(t *testing.T, dir string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var total int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		switch {
		case len(fs) >= 5 && strings.Contains(fs[0], "-") && !strings.HasSuffix(fs[0], ":"):
			in = len(fs) >= 6 && strings.HasPrefix(fs[5], dir+"/")
		case in && len(fs) == 3 && fs[0] == "Rss:" && fs[2] == "kB":
			kb, err := strconv.ParseInt(fs[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			total += kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}

// TestE2EDiskSlowClientHoldsNothing: a client that stops reading a
// download served from trusted disk blocks holds no read buffer while the
// proxy waits for its socket (sendfile keeps the bytes in the page cache),
// and the send timeout still cuts it: the response ends short and the
// access log counts what the connection accepted, not the object.
func TestE2EDiskSlowClientHoldsNothing(t *testing.T) {
	const size = 16 << 20
	// The send timeout must outlast observing the stall (about a second,
	// more on a loaded machine): the buffers are sampled while the
	// response is blocked, before the timeout cuts it.
	const sendTimeout = 10 * time.Second
	e := newDiskEnv(t, proxy.Config{SendTimeout: sendTimeout}, size)
	e.warm(t)
	c, err := net.Dial("tcp", e.p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(64 << 10)
	c.SetDeadline(time.Now().Add(3 * sendTimeout))
	if _, err := io.WriteString(c, rawGet("GET", "/download/"+diskObj, "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	var first [1]byte
	if _, err := io.ReadFull(c, first[:]); err != nil {
		t.Fatal(err)
	}
	// The stall is established once, while the client reads nothing, the
	// kernel holds bytes on both sides of the connection (the client's
	// receive queue full, the proxy's send queue waiting on a closed
	// window) and neither they nor the bytes the disk tier sent move for
	// stallPolls polls in a row (10 ms apart, more under load).
	const stallPolls = 30
	client := c.LocalAddr().(*net.TCPAddr)
	server := c.RemoteAddr().(*net.TCPAddr)
	var last stallSample
	same := 0
	testenv.WaitFor(t, sendTimeout/2, "the proxy to block on the client's full socket", func() bool {
		st := e.c.Stats()
		now := stallSample{sent: st.BytesFromDisk + st.DiskSendfileBytes + st.DiskMappedBytes}
		_, now.clientRx = tcpQueues(t, client, server)
		now.serverTx, _ = tcpQueues(t, server, client)
		if now.clientRx == 0 || now.serverTx == 0 || now != last {
			last, same = now, 0
			return false
		}
		same++
		return same >= stallPolls
	})
	if st := e.c.Stats(); st.DiskReadBuffers != 0 {
		t.Fatalf("a stalled client of trusted blocks holds %d read buffers (stall: %+v)", st.DiskReadBuffers, last)
	}
	if downloadCut(e.p.Log.String()) {
		t.Fatalf("the send timeout cut the download before the stall was sampled: nothing was checked")
	}
	testenv.WaitFor(t, 3*sendTimeout, "the send timeout to cut the download", func() bool { return downloadCut(e.p.Log.String()) })
	n, _ := io.Copy(io.Discard, c)
	if n+1 >= size {
		t.Fatalf("the stalled client got all %d bytes", n+1)
	}
	if st := e.c.Stats(); st.DiskReadBuffers != 0 || st.DiskCorrupt != 0 {
		t.Fatalf("after the cut: stats %+v", st)
	}
	if n := strings.Count(e.p.Log.String(), fmt.Sprintf("bytes=%d ", size)); n != 2 {
		t.Fatalf("%d downloads logged whole, want the 2 warm-up ones:\n%s", n, e.p.Log.String())
	}
}

// downloadCut reports whether the access log shows a download ended by the client
// or the send timeout.
func downloadCut(log string) bool {
	return strings.Contains(log, "client closed connection") || strings.Contains(log, "timeout")
}

// stallSample is what must stand still while a response is blocked on a
// client that reads nothing: the disk tier's bytes sent, and the kernel's
// queues of the connection.
type stallSample struct{ sent, clientRx, serverTx int64 }

// tcpQueues returns the send and receive queue lengths the kernel reports
// in /proc/net/tcp for the IPv4 socket from local to remote (both ends of a
// loopback connection are in this process's network namespace).
func tcpQueues(t *testing.T, local, remote *net.TCPAddr) (tx, rx int64) {
	t.Helper()
	raw, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatalf("the stall is read from /proc/net/tcp: %v", err)
	}
	hexAddr := func(a *net.TCPAddr) string {
		ip := a.IP.To4()
		return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], a.Port)
	}
	l, r := hexAddr(local), hexAddr(remote)
	for _, line := range strings.Split(string(raw), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 5 || f[1] != l || f[2] != r {
			continue
		}
		q := strings.SplitN(f[4], ":", 2)
		tx, err1 := strconv.ParseInt(q[0], 16, 64)
		rx, err2 := strconv.ParseInt(q[len(q)-1], 16, 64)
		if len(q) != 2 || err1 != nil || err2 != nil {
			t.Fatalf("/proc/net/tcp: bad queues %q", f[4])
		}
		return tx, rx
	}
	return 0, 0
}

// TestE2EDiskConcurrentHits: eight clients at once, random 64 KiB ranges
// (from the chunk files' mappings) and whole downloads (sendfile) of one
// object on disk: every body byte-exact, no chunk file failed, and nothing
// read from the origin after the warm-up; files opened, mapped and shared
// by concurrent readers never lose a reader's bytes.
func TestE2EDiskConcurrentHits(t *testing.T) {
	const size = 8 << 20
	e := newDiskEnv(t, proxy.Config{}, size)
	e.warm(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for i := range 500 {
				if t.Failed() {
					return
				}
				if i%50 == 0 {
					e.get(t, "", http.StatusOK)
					continue
				}
				off := rng.Int64N(size - 65536)
				e.get(t, fmt.Sprintf("bytes=%d-%d", off, off+65535), http.StatusPartialContent)
			}
		}()
	}
	wg.Wait()
	if st := e.c.Stats(); st.DiskErrors != 0 || st.DiskCorrupt != 0 || st.Misses != e.misses || st.DiskMappedBytes == 0 || st.DiskSendfileBytes == 0 {
		t.Fatalf("stats %+v: want no failed file, no origin read after the warm-up's %d, and both ways of sending", st, e.misses)
	}
}
