package testenv

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Relay is a TCP relay in front of a server that counts the bytes the
// server sends, so a test or the bench harness can measure what a client
// really fetched from an origin (headers included), whatever its own
// bookkeeping says. The count is live while connections stay open. When
// the server is gone the relay accepts and then drops each connection, as
// a client sees a node that died behind a load balancer.
type Relay struct {
	// Addr is the relay's host:port, on the same loopback address as the
	// target.
	Addr string
	down atomic.Int64
	rate atomic.Int64 // bytes/s per connection from the target; 0 unlimited
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	conn map[net.Conn]struct{} // nil once cut: no connection is relayed any more

	up       atomic.Int64 // client bytes passed to the target
	upLimit  atomic.Int64 // HoldClientAfter's limit; 0 none
	held     chan struct{}
	holdOnce sync.Once
	cut      chan struct{} // closed by Cut: held connections end
	cutOnce  sync.Once
}

// NewRelay starts a relay to target (host:port on loopback), closed when
// the test ends.
func NewRelay(t testing.TB, target string) *Relay {
	t.Helper()
	r, err := StartRelay(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// StartRelay starts a relay to target (host:port on loopback); the caller
// closes it.
func StartRelay(target string) (*Relay, error) {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return nil, fmt.Errorf("testenv: relay: %w", err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, fmt.Errorf("testenv: relay: %w", err)
	}
	r := &Relay{Addr: ln.Addr().String(), ln: ln, conn: make(map[net.Conn]struct{}),
		held: make(chan struct{}), cut: make(chan struct{})}
	r.wg.Add(1)
	go r.serve(target)
	return r, nil
}

// Port is the relay's port, for configurations that take the port alone.
func (r *Relay) Port() int { return r.ln.Addr().(*net.TCPAddr).Port }

// Throttle limits each connection to bytesPerSec from the target (0: no
// limit), so that a test can keep bodies in flight long enough to cut them.
func (r *Relay) Throttle(bytesPerSec int64) { r.rate.Store(bytesPerSec) }

// HoldClientAfter makes the relay stop passing client bytes on once limit
// of them (over all connections) reached the target, as when a client's
// network stalls mid-upload; the channel it returns closes then. However
// fast the client sends and however late a test looks, the target has
// received exactly limit bytes (connections that send at the same moment
// may pass one read more). Cut ends the held connections.
func (r *Relay) HoldClientAfter(limit int64) <-chan struct{} {
	r.upLimit.Store(limit)
	return r.held
}

// Bytes returns how many bytes the target has sent through the relay.
func (r *Relay) Bytes() int64 { return r.down.Load() }

func (r *Relay) serve(target string) {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.pipe(c, target)
		}()
	}
}

// track adds or removes c from the open connections; adding fails once the
// relay is cut, so a connection accepted just before it is not relayed.
func (r *Relay) track(c net.Conn, on bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		return false
	}
	if on {
		r.conn[c] = struct{}{}
	} else {
		delete(r.conn, c)
	}
	return true
}

func (r *Relay) pipe(c net.Conn, target string) {
	defer c.Close()
	up, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer up.Close()
	if !r.track(c, true) || !r.track(up, true) {
		return
	}
	defer r.track(c, false)
	defer r.track(up, false)
	done := make(chan struct{})
	go func() {
		r.copyUp(up, c)
		up.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.CopyBuffer(countWriter{c, &r.down, &r.rate}, up, make([]byte, 16<<10))
	// The server is done or dead: end the client side at once.
	c.Close()
	<-done
}

// copyUp passes the client's bytes to the target until the client ends or
// HoldClientAfter's limit is reached; then it waits for Cut.
func (r *Relay) copyUp(up, c net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		p := buf
		if limit := r.upLimit.Load(); limit > 0 {
			room := limit - r.up.Load()
			if room <= 0 {
				r.holdOnce.Do(func() { close(r.held) })
				<-r.cut
				return
			}
			p = buf[:min(int64(len(buf)), room)]
		}
		n, err := c.Read(p)
		if n > 0 {
			if _, werr := up.Write(p[:n]); werr != nil {
				return
			}
			r.up.Add(int64(n))
		}
		if err != nil {
			return
		}
	}
}

// Cut makes the relay behave as a crashed host: its listener closes (new
// connections are refused) and every open connection is reset, so bodies
// in flight end mid-way whatever the kernel's socket buffers still hold
// from the server.
func (r *Relay) Cut() {
	r.cutOnce.Do(func() { close(r.cut) })
	r.ln.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.conn {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
	r.conn = nil
}

// Close cuts the relay and waits until its goroutines have ended.
func (r *Relay) Close() {
	r.Cut()
	r.wg.Wait()
}

type countWriter struct {
	w    io.Writer
	n    *atomic.Int64
	rate *atomic.Int64
}

// Write counts p before passing it on: the count is what the target sent,
// and it must be visible by the time the client has read those bytes (a
// caller that reads Bytes right after a response would otherwise race the
// relay's goroutine and see a miss as a hit).
func (c countWriter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	n, err := c.w.Write(p)
	if r := c.rate.Load(); r > 0 {
		time.Sleep(time.Duration(int64(n) * int64(time.Second) / r)) // pacing, not synchronisation
	}
	return n, err
}
