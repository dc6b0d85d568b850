package clientip

import (
	"bytes"
	"net/netip"
	"testing"
)

// FuzzParseNode: whatever parseNode accepts is a valid address without a
// zone or an IPv4-mapped form, and it is one that the input spells out.
func FuzzParseNode(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "1.2.3.4:80", "[2001:db8::1]:80", "fe80::1%eth0", "[fe80::1%25x]", "unknown", "_x", "1.2.3.4:_p", "::ffff:1.2.3.4"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := parseNode(b)
		if !ok {
			return
		}
		if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
			t.Fatalf("parseNode(%q) = %#v", b, a)
		}
		if !bytes.Contains(b, []byte(a.String())) && !a.Is6() && !bytes.Contains(bytes.ToLower(b), []byte("ffff:")) {
			t.Fatalf("parseNode(%q) = %v, not in the input", b, a)
		}
	})
}

// FuzzForwardedFor: an accepted element has exactly one for= parameter
// and its node is an address.
func FuzzForwardedFor(f *testing.F) {
	for _, s := range []string{"for=1.2.3.4", `for="[2001:db8::1]:4711";proto=https`, "by=x;for=unknown", `host="a;b";for=_x`, `for="1.2.3.4`, ";;for=1.2.3.4;;"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := forwardedFor(b)
		if !ok {
			return
		}
		if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
			t.Fatalf("forwardedFor(%q) = %#v", b, a)
		}
		if n := bytes.Count(bytes.ToLower(b), []byte("for=")); n == 0 {
			t.Fatalf("forwardedFor(%q) = %v without a for= parameter", b, a)
		}
	})
}

// FuzzClient: no header content can name a client unless the peer is a
// trusted proxy; a trusted peer's answer is itself, a trusted address, or
// an address found in the header text.
func FuzzClient(f *testing.F) {
	f.Add([]byte{10, 0, 0, 1}, []byte("198.51.100.4, 10.1.1.1"), []byte("for=6.6.6.6"), uint8(0))
	f.Add([]byte{203, 0, 113, 9}, []byte("1.1.1.1"), []byte(""), uint8(1))
	f.Add([]byte{10, 0, 0, 1}, []byte(`for="[2001:db8::1]:1"`), []byte("for=unknown"), uint8(2))
	rs := []*Resolver{
		mustNew(f, Config{TrustedProxies: trusted}),
		mustNew(f, Config{TrustedProxies: trusted, Header: "x-real-ip"}),
		mustNew(f, Config{TrustedProxies: trusted, Header: "forwarded"}),
	}
	f.Fuzz(func(t *testing.T, remote, line1, line2 []byte, which uint8) {
		r := rs[int(which)%len(rs)]
		peer, ok := netip.AddrFromSlice(remote)
		if !ok {
			return
		}
		peer = peer.Unmap()
		got := r.Client(peer, [][]byte{line1, line2})
		if !r.Trusted(peer) {
			if got != peer {
				t.Fatalf("untrusted peer %v: headers chose %v", peer, got)
			}
			return
		}
		if !got.IsValid() || got.Zone() != "" || got.Is4In6() {
			t.Fatalf("Client = %#v", got)
		}
		if got == peer || r.Trusted(got) {
			return
		}
		joined := bytes.ToLower(bytes.Join([][]byte{line1, line2}, []byte(",")))
		if !bytes.Contains(joined, []byte(got.String())) && !got.Is6() {
			t.Fatalf("Client(%v, %q, %q) = %v, not in the headers", peer, line1, line2, got)
		}
	})
}
