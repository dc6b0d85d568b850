package limiter

import (
	"net/netip"
	"strings"
	"testing"
)

func TestClientID(t *testing.T) {
	l, _ := newFake(t, Config{})
	tests := []struct {
		name, addr, user, want string
	}{
		{"invalid address", "", "", "unknown"},
		{"user wins", "198.51.100.4", "alice", "u:alice"},
		{"user wins without address", "", "bob", "u:bob"},
		{"IPv4", "198.51.100.4", "", "198.51.100.4"},
		{"v4-mapped", "::ffff:198.51.100.4", "", "198.51.100.4"},
		{"IPv6 by /64", "2001:db8:1:2:aaaa::1", "", "2001:db8:1:2::/64"},
		{"zone stripped", "fe80::1%eth0", "", "fe80::/64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var a netip.Addr
			if tc.addr != "" {
				a = netip.MustParseAddr(tc.addr)
			}
			if got := l.ClientID(a, tc.user); got != tc.want {
				t.Errorf("ClientID(%v, %q) = %q, want %q", a, tc.user, got, tc.want)
			}
		})
	}
}

// FuzzClientID checks that every id is a user, "unknown", an IPv4
// address or an IPv6 /64 holding the address.
func FuzzClientID(f *testing.F) {
	l, err := New(Config{}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { l.Close() })
	f.Add([]byte{10, 0, 0, 1})
	f.Add(netip.MustParseAddr("2001:db8::1").AsSlice())
	f.Add(netip.MustParseAddr("::ffff:1.2.3.4").AsSlice())
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, remote []byte) {
		addr, ok := netip.AddrFromSlice(remote)
		id := l.ClientID(addr, "")
		if !ok {
			if id != "unknown" {
				t.Fatalf("bad address gave %q", id)
			}
			return
		}
		addr = addr.Unmap()
		if strings.Contains(id, "/") {
			p, err := netip.ParsePrefix(id)
			if err != nil || p.Bits() != 64 || !p.Addr().Is6() || !p.Contains(addr) {
				t.Fatalf("id %q is not the IPv6 /64 of %v", id, addr)
			}
		} else if a, err := netip.ParseAddr(id); err != nil || !a.Is4() || a != addr {
			t.Fatalf("id %q is not the IPv4 address %v", id, addr)
		}
	})
}
