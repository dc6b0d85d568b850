package main

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
)

// relay is a TCP relay between one cache under test and MinIO that counts
// the bytes flowing from the origin. Each cache gets its own relay, so "bytes
// read from origin" is measured on the wire, the same way for all three,
// whatever each server reports about itself. It copies through a buffer
// rather than splice(2) so the count is live while connections stay open.
type relay struct {
	ln         net.Listener
	target     string
	fromOrigin atomic.Int64 // bytes origin -> cache, response headers included
	toOrigin   atomic.Int64 // bytes cache -> origin (requests)
	accepted   atomic.Int64 // connections opened by the cache

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// newRelay listens on a free loopback port and forwards to target.
func newRelay(target string) (*relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("harness: relay listen: %w", err)
	}
	r := &relay{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// Addr is the relay's "127.0.0.1:port".
func (r *relay) Addr() string { return r.ln.Addr().String() }

// Port is the relay's port.
func (r *relay) Port() int { return r.ln.Addr().(*net.TCPAddr).Port }

func (r *relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.accepted.Add(1)
		r.wg.Add(1)
		go r.serve(c)
	}
}

func (r *relay) track(c net.Conn, add bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns == nil {
		return false // closed
	}
	if add {
		r.conns[c] = struct{}{}
	} else {
		delete(r.conns, c)
	}
	return true
}

func (r *relay) serve(down net.Conn) {
	defer r.wg.Done()
	defer down.Close()
	up, err := net.Dial("tcp", r.target)
	if err != nil {
		return
	}
	defer up.Close()
	if !r.track(down, true) || !r.track(up, true) {
		return
	}
	defer r.track(down, false)
	defer r.track(up, false)
	done := make(chan struct{})
	go func() {
		pump(up, down, &r.toOrigin)
		close(done)
	}()
	pump(down, up, &r.fromOrigin)
	<-done
}

// pump copies src to dst, adding every chunk to n as it passes, then
// half-closes dst so the other side sees EOF.
func pump(dst, src net.Conn, n *atomic.Int64) {
	buf := make([]byte, 256<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			n.Add(int64(k))
			if _, werr := dst.Write(buf[:k]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	if tc, ok := src.(*net.TCPConn); ok {
		tc.CloseRead()
	}
}

// Close stops accepting, closes every open connection and waits for the
// copy goroutines.
func (r *relay) Close() {
	r.ln.Close()
	r.mu.Lock()
	conns := r.conns
	r.conns = nil
	r.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	r.wg.Wait()
}
