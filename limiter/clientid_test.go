package limiter

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestClientID(t *testing.T) {
	l, _ := newFake(t, Config{TrustedProxies: []string{"10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.7"}})
	tests := []struct {
		name     string
		remote   string
		xff, xri string
		user     string
		want     string
	}{
		// Headers from untrusted peers are ignored.
		{"untrusted peer, spoofed xff", "203.0.113.9", "1.1.1.1", "2.2.2.2", "", "203.0.113.9"},
		{"untrusted v4-mapped", "::ffff:203.0.113.9", "1.1.1.1", "", "", "203.0.113.9"},
		{"user wins", "10.0.0.1", "1.1.1.1", "", "alice", "u:alice"},
		{"user wins untrusted", "203.0.113.9", "", "", "bob", "u:bob"},
		// Trusted peers.
		{"trusted, no headers", "10.0.0.1", "", "", "", "10.0.0.1"},
		{"trusted, xff one hop", "10.0.0.1", "198.51.100.4", "", "", "198.51.100.4"},
		{"skip trusted hops", "10.0.0.1", "198.51.100.4, 10.1.1.1, 192.0.2.7", "", "", "198.51.100.4"},
		{"client spoof left of real", "10.0.0.1", "6.6.6.6, 198.51.100.4, 10.1.1.1", "", "", "198.51.100.4"},
		{"all trusted: leftmost", "10.0.0.1", "10.9.9.9, 10.1.1.1", "", "", "10.9.9.9"},
		{"garbage behind trusted hop", "10.0.0.1", "198.51.100.4, junk, 10.1.1.1", "", "", "10.1.1.1"},
		{"garbage first", "10.0.0.1", "198.51.100.4, junk", "203.0.113.1", "", "203.0.113.1"},
		{"ports", "10.0.0.1", "198.51.100.4:5555, 10.1.1.1:80", "", "", "198.51.100.4"},
		{"bracketed v6 with port", "10.0.0.1", "[2001:db8:1:2::99]:443", "", "", "2001:db8:1:2::/64"},
		{"v6 by /64", "10.0.0.1", "2001:db8:1:2:aaaa::1", "", "", "2001:db8:1:2::/64"},
		{"empty entries", "10.0.0.1", " , 198.51.100.4,,", "", "", "198.51.100.4"},
		{"x-real-ip fallback", "10.0.0.1", "", " 198.51.100.5 ", "", "198.51.100.5"},
		{"xff beats x-real-ip", "10.0.0.1", "198.51.100.4", "198.51.100.5", "", "198.51.100.4"},
		{"bad x-real-ip", "10.0.0.1", "", "nope", "", "10.0.0.1"},
		{"trusted v6 peer", "2001:db8:ffff:1::1", "198.51.100.4", "", "", "198.51.100.4"},
		{"untrusted v6 peer by /64", "2001:db8:aaaa:bbbb:1::1", "198.51.100.4", "", "", "2001:db8:aaaa:bbbb::/64"},
		{"zone stripped", "10.0.0.1", "fe80::1%eth0", "", "", "fe80::/64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := l.ClientID(net.ParseIP(tc.remote), []byte(tc.xff), []byte(tc.xri), tc.user)
			if got != tc.want {
				t.Errorf("ClientID = %q, want %q", got, tc.want)
			}
		})
	}
	if got := l.ClientID(nil, nil, nil, ""); got != "unknown" {
		t.Errorf("nil remote: %q", got)
	}
}

func TestClientIDNoTrustedProxies(t *testing.T) {
	l, _ := newFake(t, Config{})
	if got := l.ClientID(net.ParseIP("127.0.0.1"), []byte("198.51.100.4"), []byte("198.51.100.5"), ""); got != "127.0.0.1" {
		t.Errorf("ClientID = %q, headers must be ignored with no trusted proxies", got)
	}
}

// FuzzClientID checks that no header content can name a client unless the
// peer is trusted, and that every id is either a user or a well-formed
// address or /64.
func FuzzClientID(f *testing.F) {
	l, err := New(Config{TrustedProxies: []string{"10.0.0.0/8"}}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { l.Close() })
	f.Add([]byte{10, 0, 0, 1}, []byte("1.2.3.4, 10.0.0.2"), []byte("5.6.7.8"))
	f.Add([]byte{203, 0, 113, 1}, []byte("1.2.3.4"), []byte(""))
	f.Add([]byte(net.ParseIP("2001:db8::1").To16()), []byte("[::1]:80, ,"), []byte("junk"))
	f.Add([]byte{10, 9, 9, 9}, []byte(",,,[,]:,%"), []byte("fe80::1%eth0"))
	f.Fuzz(func(t *testing.T, remote, xff, xri []byte) {
		id := l.ClientID(net.IP(remote), xff, xri, "")
		addr, ok := netip.AddrFromSlice(remote)
		if !ok {
			if id != "unknown" {
				t.Fatalf("bad remote gave %q", id)
			}
			return
		}
		addr = addr.Unmap()
		if !netip.MustParsePrefix("10.0.0.0/8").Contains(addr) && id != idForAddr(addr) {
			t.Fatalf("untrusted peer %v: headers chose %q", addr, id)
		}
		if strings.Contains(id, "/") {
			p, err := netip.ParsePrefix(id)
			if err != nil || p.Bits() != 64 || !p.Addr().Is6() {
				t.Fatalf("id %q is not an IPv6 /64", id)
			}
		} else if a, err := netip.ParseAddr(id); err != nil || !a.Is4() {
			t.Fatalf("id %q is not an IPv4 address", id)
		}
	})
}
