package proxy

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// TestHoldHeader: a held header is not written on its own; it goes out
// in front of the next write, byte for byte, and the connection keeps
// nothing of either afterwards.
func TestHoldHeader(t *testing.T) {
	l := newTestFrontListener(t, time.Hour, 1<<20, 4)
	client, server := lingerPair(t, l)
	hdr := []byte("HTTP/1.1 206 Partial Content\r\nContent-Length: 70000\r\n\r\n")
	body := bytes.Repeat([]byte("0123456789"), 7000)

	if !holdHeader(server) {
		t.Fatal("holdHeader refused a front connection over TCP")
	}
	if n, err := server.Write(hdr); n != len(hdr) || err != nil {
		t.Fatalf("Write(header) = %d, %v", n, err)
	}
	if server.held == nil || !bytes.Equal(*server.held, hdr) {
		t.Fatal("the header was written instead of held")
	}
	if n, err := server.Write(body); n != len(body) || err != nil {
		t.Fatalf("Write(body) = %d, %v; want %d (the body's bytes only)", n, err, len(body))
	}
	if server.held != nil || server.vec[0] != nil || server.vec[1] != nil || server.bufs != nil {
		t.Fatal("the connection still refers to the header or body after the writev")
	}
	want := append(append([]byte(nil), hdr...), body...)
	got := make([]byte, len(want))
	client.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the client received other bytes than header then body")
	}

	// The next response is not held: writes go through as before.
	if n, err := server.Write([]byte("next")); n != 4 || err != nil || server.held != nil {
		t.Fatalf("unheld Write = %d, %v (held %v)", n, err, server.held != nil)
	}
	if _, err := io.ReadFull(client, got[:4]); err != nil || string(got[:4]) != "next" {
		t.Fatalf("read %q, %v", got[:4], err)
	}
}

// TestSendHeld: a header whose body never wrote (an error before the first
// byte) still goes out, and a hold no flush used does not catch a later
// write.
func TestSendHeld(t *testing.T) {
	l := newTestFrontListener(t, time.Hour, 1<<20, 4)
	client, server := lingerPair(t, l)
	client.SetReadDeadline(time.Now().Add(30 * time.Second))

	holdHeader(server)
	server.Write([]byte("header"))
	if err := sendHeld(server); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 6)
	if _, err := io.ReadFull(client, got); err != nil || string(got) != "header" {
		t.Fatalf("read %q, %v", got, err)
	}

	holdHeader(server)
	if err := sendHeld(server); err != nil { // nothing held: nothing written
		t.Fatal(err)
	}
	server.Write([]byte("later"))
	if server.held != nil {
		t.Fatal("a cancelled hold held a later write")
	}
	if _, err := io.ReadFull(client, got[:5]); err != nil || string(got[:5]) != "later" {
		t.Fatalf("read %q, %v", got[:5], err)
	}

	// A connection that reads (waits for the next request) sends what it
	// held first, whatever the server did in between.
	holdHeader(server)
	server.Write([]byte("answer"))
	client.Write([]byte("x"))
	server.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := server.Read(make([]byte, 1)); n != 1 || err != nil {
		t.Fatalf("server Read = %d, %v", n, err)
	}
	if _, err := io.ReadFull(client, got); err != nil || string(got) != "answer" {
		t.Fatalf("read %q, %v", got, err)
	}
}

// TestHoldHeaderLimits: a flush larger than a header block (pipelined
// responses ahead of it) is written at once, and only a front connection
// over a plain TCP connection holds (through TLS or another wrapper,
// net.Buffers would write the pieces one by one anyway).
func TestHoldHeaderLimits(t *testing.T) {
	l := newTestFrontListener(t, time.Hour, 1<<20, 4)
	client, server := lingerPair(t, l)
	holdHeader(server)
	big := bytes.Repeat([]byte{'x'}, maxHeldHeader+1)
	if n, err := server.Write(big); n != len(big) || err != nil || server.held != nil {
		t.Fatalf("Write(%d bytes) = %d, %v (held %v): want written at once", len(big), n, err, server.held != nil)
	}
	client.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(client, make([]byte, len(big))); err != nil {
		t.Fatal(err)
	}

	if holdHeader(wrappedConn{server.Conn.(*net.TCPConn)}) {
		t.Error("holdHeader took a connection that is not a front connection")
	}
	if holdHeader(&frontConn{Conn: wrappedConn{server.Conn.(*net.TCPConn)}}) {
		t.Error("holdHeader took a front connection over a wrapper")
	}
}
