package clientip

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// echoRemote serves ln: each connection reads one line and answers with
// the connection's RemoteAddr, or with nothing (closing) when the read
// fails, as the HTTP server would.
func echoRemote(t *testing.T, ln net.Listener) {
	t.Helper()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
					return
				}
				io.WriteString(c, c.RemoteAddr().String()+"\n")
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
}

// exchange connects from local (a loopback address), sends b and returns
// the answer line, or an error when the server closed without one.
func exchange(t *testing.T, addr, local string, b []byte) (string, error) {
	t.Helper()
	c := testenv.Dial(t, addr, local)
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return line[:len(line)-1], nil
}

// proxyV2 builds a PROXY protocol v2 header for a TCP over IPv4 stream.
func proxyV2(src, dst netip.AddrPort) []byte {
	var b bytes.Buffer
	b.WriteString("\r\n\r\n\x00\r\nQUIT\n")
	b.WriteByte(0x21) // version 2, PROXY
	b.WriteByte(0x11) // AF_INET, STREAM
	binary.Write(&b, binary.BigEndian, uint16(12))
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	b.Write(s4[:])
	b.Write(d4[:])
	binary.Write(&b, binary.BigEndian, src.Port())
	binary.Write(&b, binary.BigEndian, dst.Port())
	return b.Bytes()
}

// TestListenerProxyProtocol: a trusted balancer's PROXY header (v1 or v2)
// sets the client's address; a trusted peer without one, and an untrusted
// peer with one, are refused; an untrusted peer without one is a direct
// client.
func TestListenerProxyProtocol(t *testing.T) {
	r := mustNew(t, Config{TrustedProxies: []string{"127.0.0.2"}, Header: "proxy-protocol"})
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echoRemote(t, r.Listener(raw, 5*time.Second))
	addr := raw.Addr().String()
	v2 := proxyV2(netip.MustParseAddrPort("198.51.100.9:5000"), netip.MustParseAddrPort("127.0.0.1:80"))

	for _, tc := range []struct {
		name, local string
		send        []byte
		want        string // "" = refused
	}{
		{"trusted, v1", "127.0.0.2", []byte("PROXY TCP4 198.51.100.7 127.0.0.1 4000 80\r\nhello\n"), "198.51.100.7:4000"},
		{"trusted, v1 IPv6", "127.0.0.2", []byte("PROXY TCP6 2001:db8::7 ::1 4000 80\r\nhello\n"), "[2001:db8::7]:4000"},
		{"trusted, v2", "127.0.0.2", append(v2, "hello\n"...), "198.51.100.9:5000"},
		{"trusted, no header", "127.0.0.2", []byte("GET / HTTP/1.1\r\n\r\n"), ""},
		{"untrusted, v1", "127.0.0.1", []byte("PROXY TCP4 198.51.100.7 127.0.0.1 4000 80\r\nhello\n"), ""},
		{"untrusted, v2", "127.0.0.1", append(v2, "hello\n"...), ""},
		{"untrusted, no header", "127.0.0.1", []byte("hello\n"), "127.0.0.1:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := exchange(t, addr, tc.local, tc.send)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("served as %q, want the connection refused", got)
				}
				if !errors.Is(err, io.EOF) && !isReset(err) {
					t.Fatalf("err %v, want the server to close", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused (%v), want served as %s", err, tc.want)
			}
			if got != tc.want && !(tc.want[len(tc.want)-1] == ':' && len(got) > len(tc.want) && got[:len(tc.want)] == tc.want) {
				t.Fatalf("RemoteAddr %q, want %q", got, tc.want)
			}
		})
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}

// Only proxy-protocol wraps the listener.
func TestListenerOtherHeaders(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, r := range []*Resolver{nil, mustNew(t, Config{TrustedProxies: []string{"127.0.0.1"}})} {
		if got := r.Listener(raw, 0); got != raw {
			t.Errorf("Listener wrapped %T", got)
		}
	}
}
