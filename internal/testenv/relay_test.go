package testenv

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// TestRelay: the relay started without a test counts every byte the
// target sends, delivers them whole, and refuses connections once closed.
func TestRelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	payload := bytes.Repeat([]byte("0123456789abcdef"), 10<<10) // 160 KiB: several buffers
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := io.ReadFull(c, make([]byte, 5)); err == nil {
					c.Write(payload)
				}
			}()
		}
	}()
	r, err := StartRelay(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, port, _ := net.SplitHostPort(r.Addr); port != itoa(r.Port()) {
		t.Fatalf("Port %d, Addr %s", r.Port(), r.Addr)
	}
	c, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "hello"); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("read %d bytes (%v), want %d", len(got), err, len(payload))
	}
	if n := r.Bytes(); n != int64(len(payload)) {
		t.Fatalf("Bytes() = %d, want %d", n, len(payload))
	}
	r.Close()
	if c, err := net.DialTimeout("tcp", r.Addr, 5*time.Second); err == nil {
		c.Close()
		t.Fatal("a closed relay accepted a connection")
	}
}

// TestRelayHoldClientAfter: a client that sends 1 MiB through a relay held
// after 100,000 bytes gets exactly that far: the target reads 100,000
// bytes and then nothing until the relay is cut, which ends its stream.
func TestRelayHoldClientAfter(t *testing.T) {
	const limit = 100_000
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		n, _ := io.Copy(io.Discard, c)
		got <- n
	}()
	r := NewRelay(t, ln.Addr().String())
	held := r.HoldClientAfter(limit)
	c, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go c.Write(make([]byte, 1<<20)) // blocks once the relay stops reading
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("the relay never reached its limit")
	}
	r.Cut()
	select {
	case n := <-got:
		if n != limit {
			t.Fatalf("target read %d bytes, want exactly %d", n, limit)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the target's stream did not end when the relay was cut")
	}
}
