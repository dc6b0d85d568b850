//go:build !race

package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/proxy"
)

// heapAndStacks is the memory the Go runtime counts against its soft limit
// that idle connections add to: live heap after a full collection, and
// goroutine stacks.
func heapAndStacks() int64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64() + s[1].Value.Uint64())
}

// TestConnMemoryCoversIdleConnections: what ConnMemory claims per open
// connection (and so what the binary's soft memory limit grants each) is at
// least what an idle keep-alive connection holds, measured in process over
// a few hundred of them; and OpenConns counts them as they open and close.
// The client ends of the connections are in the same process, so the
// measure slightly overstates the server's share. Built without -race,
// whose instrumentation grows stacks.
func TestConnMemoryCoversIdleConnections(t *testing.T) {
	o := newDirOrigin(t, dlBucket)
	o.put(t, dlBucket, "small", randBytes(7, 4<<10))
	off := false
	p := startProxy(t, proxy.Config{DownloadBucket: dlBucket, AccessLog: &off},
		proxy.Deps{Origin: o.Store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv := p.Srv
	req := fmt.Sprintf("GET /download/small HTTP/1.1\r\nHost: %s\r\n\r\n", p.Addr)
	get := func() net.Conn {
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReaderSize(c, 16<<10), nil)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != 200 || n != 4<<10 {
			t.Fatalf("GET = %d, %d bytes, %v", resp.StatusCode, n, err)
		}
		c.SetDeadline(time.Time{})
		return c
	}
	// Warm the pools and the server's maps, then measure from no connection.
	get().Close()
	testenv.WaitFor(t, 10*time.Second, "the warm-up connection to close", func() bool { return srv.OpenConns() == 0 })
	before := heapAndStacks()

	const n = 400
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		conns = append(conns, get())
	}
	testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("%d open connections", n), func() bool { return srv.OpenConns() == n })
	per := (heapAndStacks() - before) / n
	t.Logf("idle connection: %d bytes measured, ConnMemory %d", per, srv.ConnMemory())
	if per > srv.ConnMemory() {
		t.Errorf("an idle connection holds %d bytes, ConnMemory claims %d: raise proxy.ConnOverhead", per, srv.ConnMemory())
	}
	if per < srv.ConnMemory()/4 {
		t.Errorf("an idle connection holds %d bytes, ConnMemory claims %d: the measure is broken", per, srv.ConnMemory())
	}

	for _, c := range conns {
		c.Close()
	}
	conns = nil
	testenv.WaitFor(t, 10*time.Second, "every connection to be counted closed", func() bool { return srv.OpenConns() == 0 })
}
