package testenv

import (
	"net"
	"testing"
	"time"
)

// Dial opens a raw TCP connection to addr for a test that speaks the wire
// protocol byte for byte. With local set (a loopback address such as
// 127.0.0.2) the connection comes from that address, for tests of client
// address handling. The connection has a 30 s deadline, so a server that
// stalls fails the test instead of hanging it. Dial fails the test if it
// cannot connect; the caller closes the connection.
func Dial(t testing.TB, addr, local string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}
