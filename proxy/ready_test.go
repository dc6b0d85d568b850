package proxy

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edgeproxy/edgeproxy/internal/fakeclock"
	"github.com/edgeproxy/edgeproxy/origin"
)

// pingOrigin is an origin.Store that only answers Ping, counting calls.
// While gate is not nil, each Ping waits for it to close.
type pingOrigin struct {
	origin.Store // nil: Stat and Open are never called here
	pings        atomic.Int64
	down         atomic.Bool
	gate         chan struct{}
}

func (o *pingOrigin) Ping(ctx context.Context) error {
	o.pings.Add(1)
	if o.gate != nil {
		<-o.gate
	}
	if o.down.Load() {
		return origin.ErrUnavailable
	}
	return nil
}

func newReadyServer(t *testing.T, o *pingOrigin) (*Server, *fakeclock.Clock) {
	t.Helper()
	s, err := New(Config{DownloadBucket: "b"}, Deps{Origin: o, Logger: nil})
	if err != nil {
		t.Fatal(err)
	}
	clk := fakeclock.At(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s.readiness.now = clk.Now
	return s, clk
}

// readyz runs one /readyz request through the handler and returns its
// status code.
func readyz(s *Server) int {
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/readyz")
	s.Handler(&ctx)
	return ctx.Response.StatusCode()
}

// TestReadyzCachesOriginCheck: within readyTTL, 100 /readyz calls cost one
// origin request; after it, the origin is asked again, so an origin that
// went down turns /readyz to 503 (and back to 200 when it recovers).
func TestReadyzCachesOriginCheck(t *testing.T) {
	o := &pingOrigin{}
	s, clk := newReadyServer(t, o)
	for i := range 100 {
		if code := readyz(s); code != 200 {
			t.Fatalf("call %d: status %d", i, code)
		}
		clk.Advance(readyTTL / 200)
	}
	if n := o.pings.Load(); n != 1 {
		t.Fatalf("100 calls within %v made %d origin requests, want 1", readyTTL, n)
	}

	o.down.Store(true)
	if code := readyz(s); code != 200 {
		t.Fatalf("within the window after the origin went down: %d, want the cached 200", code)
	}
	clk.Advance(readyTTL / 2)
	if code := readyz(s); code != 503 {
		t.Fatalf("after the window with the origin down: %d, want 503", code)
	}
	if code := readyz(s); code != 503 {
		t.Fatalf("failure cached: %d, want 503", code)
	}
	if n := o.pings.Load(); n != 2 {
		t.Fatalf("%d origin requests, want 2", n)
	}

	o.down.Store(false)
	clk.Advance(readyTTL)
	if code := readyz(s); code != 200 {
		t.Fatalf("after recovery: %d, want 200", code)
	}
	// A clock that steps back does not make a result fresh forever.
	clk.Advance(-time.Hour)
	o.down.Store(true)
	if code := readyz(s); code != 503 {
		t.Fatalf("after the clock stepped back: %d, want a new check (503)", code)
	}
}

// TestReadyzCollapsesConcurrentChecks: callers arriving while a check is in
// flight share it instead of each asking the origin.
func TestReadyzCollapsesConcurrentChecks(t *testing.T) {
	o := &pingOrigin{gate: make(chan struct{})}
	s, _ := newReadyServer(t, o)
	const callers = 100
	var started, done sync.WaitGroup
	codes := make(chan int, callers)
	for range callers {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			started.Done()
			codes <- readyz(s)
		}()
	}
	started.Wait()
	// The first check is held at the gate. Give the other callers time to
	// reach the origin if checks were not collapsed (each would then block
	// in a Ping of its own); with collapsing they wait for the held check,
	// and the count stays 1 however long this takes.
	deadline := time.Now().Add(300 * time.Millisecond)
	for o.pings.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(o.gate)
	done.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("status %d", c)
		}
	}
	if n := o.pings.Load(); n != 1 {
		t.Fatalf("%d concurrent calls made %d origin requests, want 1", callers, n)
	}
}
