package clientip

import (
	"net/netip"
	"strings"
	"testing"
)

func mustNew(t testing.TB, cfg Config) *Resolver {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return r
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"bad proxy", Config{TrustedProxies: []string{"10.0.0.0/8", "nope"}}, "trusted_proxies[1]"},
		{"bad prefix", Config{TrustedProxies: []string{"10.0.0.0/33"}}, "trusted_proxies[0]"},
		{"mapped prefix", Config{TrustedProxies: []string{"::ffff:10.0.0.0/104"}}, "IPv4-mapped"},
		{"unknown header", Config{Header: "true-client-ip"}, "config header"},
		{"proxy protocol, no proxies", Config{Header: "proxy-protocol"}, "needs trusted_proxies"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "clientip: config ") {
				t.Fatalf("New: %v, want an error naming %q", err, tc.want)
			}
		})
	}
	for _, h := range []string{"", "x-forwarded-for", "X-Real-IP", "forwarded", "Proxy-Protocol"} {
		if _, err := New(Config{Header: h, TrustedProxies: []string{"10.0.0.1", "2001:db8::/32"}}); err != nil {
			t.Errorf("New(header %q): %v", h, err)
		}
	}
}

func TestHeader(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""}, // nothing trusted: nothing to read
		{Config{Header: "x-real-ip"}, ""},
		{Config{TrustedProxies: []string{"10.0.0.1"}}, "X-Forwarded-For"},
		{Config{TrustedProxies: []string{"10.0.0.1"}, Header: "x-real-ip"}, "X-Real-Ip"},
		{Config{TrustedProxies: []string{"10.0.0.1"}, Header: "forwarded"}, "Forwarded"},
		{Config{TrustedProxies: []string{"10.0.0.1"}, Header: "proxy-protocol"}, ""},
	} {
		if got := mustNew(t, tc.cfg).Header(); got != tc.want {
			t.Errorf("%+v: Header() = %q, want %q", tc.cfg, got, tc.want)
		}
	}
	if got := (*Resolver)(nil).Header(); got != "" {
		t.Errorf("nil Header() = %q", got)
	}
}

// trusted is the trust list of the Client tables.
var trusted = []string{"10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.1"}

type clientCase struct {
	name   string
	remote string
	lines  []string
	want   string
}

func runClient(t *testing.T, r *Resolver, cases []clientCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var remote netip.Addr
			if tc.remote != "" {
				remote = netip.MustParseAddr(tc.remote)
			}
			var vals [][]byte
			for _, l := range tc.lines {
				vals = append(vals, []byte(l))
			}
			got := r.Client(remote, vals)
			want := netip.Addr{}
			if tc.want != "" {
				want = netip.MustParseAddr(tc.want)
			}
			if got != want {
				t.Errorf("Client(%s, %q) = %v, want %v", tc.remote, tc.lines, got, want)
			}
		})
	}
}

func TestClientXForwardedFor(t *testing.T) {
	r := mustNew(t, Config{TrustedProxies: trusted})
	runClient(t, r, []clientCase{
		// Bad input and untrusted peers first: nothing they send counts.
		{"invalid remote", "", []string{"198.51.100.4"}, ""},
		{"untrusted peer, forged", "203.0.113.9", []string{"1.1.1.1"}, "203.0.113.9"},
		{"untrusted v4-mapped peer", "::ffff:203.0.113.9", []string{"1.1.1.1"}, "203.0.113.9"},
		{"untrusted v6 peer", "2001:db8:aaaa::1", []string{"198.51.100.4"}, "2001:db8:aaaa::1"},
		{"garbage only", "10.0.0.1", []string{"junk"}, "10.0.0.1"},
		{"garbage behind trusted hop", "10.0.0.1", []string{"198.51.100.4, junk, 10.1.1.1"}, "10.1.1.1"},
		{"garbage left of the client", "10.0.0.1", []string{"junk, 198.51.100.4"}, "198.51.100.4"},
		{"port on a bare IPv6 is an address", "10.0.0.1", []string{"2001:db8::1:80"}, "2001:db8::1:80"},
		{"IPv4 in brackets", "10.0.0.1", []string{"[198.51.100.4]"}, "10.0.0.1"},
		{"zone on IPv4", "10.0.0.1", []string{"198.51.100.4%eth0"}, "10.0.0.1"},
		{"bad port", "10.0.0.1", []string{"198.51.100.4:http"}, "10.0.0.1"},
		{"overlong hop", "10.0.0.1", []string{strings.Repeat("1", 200)}, "10.0.0.1"},
		// Good input.
		{"trusted, no header", "10.0.0.1", nil, "10.0.0.1"},
		{"trusted, empty line", "10.0.0.1", []string{""}, "10.0.0.1"},
		{"one hop", "10.0.0.1", []string{"198.51.100.4"}, "198.51.100.4"},
		{"trusted v4-mapped peer", "::ffff:10.0.0.1", []string{"198.51.100.4"}, "198.51.100.4"},
		{"trusted v6 peer", "2001:db8:ffff:1::1", []string{"198.51.100.4"}, "198.51.100.4"},
		{"bare trusted address", "192.0.2.1", []string{"198.51.100.4"}, "198.51.100.4"},
		{"skip trusted hops", "10.0.0.1", []string{"198.51.100.4, 10.1.1.1, 10.2.2.2"}, "198.51.100.4"},
		{"first untrusted from the right", "10.0.0.1", []string{"198.51.100.4, 192.0.2.7, 10.1.1.1"}, "192.0.2.7"},
		{"forged leftmost", "10.0.0.1", []string{"6.6.6.6, 198.51.100.4"}, "198.51.100.4"},
		{"all trusted: leftmost", "10.0.0.1", []string{"10.9.9.9, 10.1.1.1"}, "10.9.9.9"},
		{"empty elements", "10.0.0.1", []string{" , 198.51.100.4 ,, "}, "198.51.100.4"},
		{"port", "10.0.0.1", []string{"198.51.100.4:5555"}, "198.51.100.4"},
		{"obfuscated port", "10.0.0.1", []string{"198.51.100.4:_x1"}, "198.51.100.4"},
		{"IPv6", "10.0.0.1", []string{"2001:db8::1"}, "2001:db8::1"},
		{"IPv6 in brackets", "10.0.0.1", []string{"[2001:db8::1]"}, "2001:db8::1"},
		{"IPv6 with port", "10.0.0.1", []string{"[2001:db8::1]:443"}, "2001:db8::1"},
		{"IPv6 zone dropped", "10.0.0.1", []string{"fe80::1%eth0"}, "fe80::1"},
		{"IPv6 zone in brackets", "10.0.0.1", []string{"[fe80::1%25eth0]:80"}, "fe80::1"},
		{"v4-mapped hop", "10.0.0.1", []string{"::ffff:198.51.100.4"}, "198.51.100.4"},
		{"tabs", "10.0.0.1", []string{"\t198.51.100.4\t"}, "198.51.100.4"},
		// Defect 4: a balancer that appends its own line (HAProxy option
		// forwardfor) leaves the client's forged line first.
		{"forged first line", "10.0.0.1", []string{"6.6.6.6", "198.51.100.4"}, "198.51.100.4"},
		{"lines walked as one list", "10.0.0.1", []string{"198.51.100.4", "10.1.1.1, 10.2.2.2"}, "198.51.100.4"},
		{"trusted hops across lines", "10.0.0.1", []string{"6.6.6.6, 198.51.100.4", "10.1.1.1"}, "198.51.100.4"},
		{"garbage line behind the client", "10.0.0.1", []string{"junk", "198.51.100.4"}, "198.51.100.4"},
	})
}

func TestClientXRealIP(t *testing.T) {
	r := mustNew(t, Config{TrustedProxies: trusted, Header: "x-real-ip"})
	runClient(t, r, []clientCase{
		{"untrusted peer, forged", "203.0.113.9", []string{"1.1.1.1"}, "203.0.113.9"},
		{"garbage", "10.0.0.1", []string{"junk"}, "10.0.0.1"},
		{"a list is not one address", "10.0.0.1", []string{"1.1.1.1, 198.51.100.4"}, "10.0.0.1"},
		{"trusted", "10.0.0.1", []string{"198.51.100.4"}, "198.51.100.4"},
		{"port", "10.0.0.1", []string{"198.51.100.4:80"}, "198.51.100.4"},
		{"IPv6", "10.0.0.1", []string{"2001:db8::1"}, "2001:db8::1"},
		{"the nearest proxy's line", "10.0.0.1", []string{"6.6.6.6", "198.51.100.4"}, "198.51.100.4"},
		// The value is the proxy's word even if it names a trusted address.
		{"names a trusted address", "10.0.0.1", []string{"10.0.0.7"}, "10.0.0.7"},
	})
}

// X-Real-IP is not believed while X-Forwarded-For is configured: the
// caller passes only the configured header's lines, and this checks that
// Header names only it.
func TestOnlyConfiguredHeader(t *testing.T) {
	for h, want := range map[string]string{"": "X-Forwarded-For", "x-real-ip": "X-Real-Ip", "forwarded": "Forwarded"} {
		if got := mustNew(t, Config{TrustedProxies: trusted, Header: h}).Header(); got != want {
			t.Errorf("header %q: Header() = %q, want %q", h, got, want)
		}
	}
}

func TestClientForwarded(t *testing.T) {
	r := mustNew(t, Config{TrustedProxies: trusted, Header: "forwarded"})
	runClient(t, r, []clientCase{
		{"untrusted peer, forged", "203.0.113.9", []string{"for=1.1.1.1"}, "203.0.113.9"},
		{"no for", "10.0.0.1", []string{"proto=https;by=10.0.0.1"}, "10.0.0.1"},
		{"unknown stops", "10.0.0.1", []string{"for=198.51.100.4, for=unknown"}, "10.0.0.1"},
		{"unknown behind trusted", "10.0.0.1", []string{"for=198.51.100.4, for=unknown, for=10.1.1.1"}, "10.1.1.1"},
		{"obfuscated stops", "10.0.0.1", []string{"for=_hidden"}, "10.0.0.1"},
		{"obfuscated quoted", "10.0.0.1", []string{`for="_hidden"`}, "10.0.0.1"},
		{"unquoted port is a syntax error", "10.0.0.1", []string{"for=198.51.100.4:80"}, "10.0.0.1"},
		{"unquoted IPv6 is a syntax error", "10.0.0.1", []string{"for=[2001:db8::1]"}, "10.0.0.1"},
		{"two for in one element", "10.0.0.1", []string{"for=198.51.100.4;for=198.51.100.5"}, "10.0.0.1"},
		{"unterminated quote", "10.0.0.1", []string{`for="198.51.100.4`}, "10.0.0.1"},
		{"escape in the node", "10.0.0.1", []string{`for="198.51.100.\4"`}, "10.0.0.1"},
		{"missing value", "10.0.0.1", []string{"for="}, "10.0.0.1"},
		{"no equals", "10.0.0.1", []string{"for"}, "10.0.0.1"},
		{"space in name", "10.0.0.1", []string{"f or=198.51.100.4"}, "10.0.0.1"},
		// Good input.
		{"one hop", "10.0.0.1", []string{"for=198.51.100.4"}, "198.51.100.4"},
		{"case-insensitive name", "10.0.0.1", []string{"For=198.51.100.4"}, "198.51.100.4"},
		{"other params", "10.0.0.1", []string{"by=10.0.0.1;for=198.51.100.4;proto=https;host=\"a, b\""}, "198.51.100.4"},
		{"quoted IPv4 with port", "10.0.0.1", []string{`for="198.51.100.4:4711"`}, "198.51.100.4"},
		{"quoted IPv6 with port", "10.0.0.1", []string{`for="[2001:db8:cafe::17]:4711"`}, "2001:db8:cafe::17"},
		{"quoted IPv6", "10.0.0.1", []string{`for="[2001:db8:cafe::17]"`}, "2001:db8:cafe::17"},
		{"obfuscated port", "10.0.0.1", []string{`for="198.51.100.4:_p1"`}, "198.51.100.4"},
		{"RFC 7239 example", "10.0.0.1", []string{"for=192.0.2.43, for=198.51.100.17"}, "198.51.100.17"},
		{"skip trusted", "10.0.0.1", []string{"for=198.51.100.17;proto=https, for=10.1.1.1;by=10.0.0.1"}, "198.51.100.17"},
		{"all trusted: leftmost", "10.0.0.1", []string{"for=10.9.9.9, for=10.1.1.1"}, "10.9.9.9"},
		{"empty pairs and elements", "10.0.0.1", []string{" ;for=198.51.100.4; , ,"}, "198.51.100.4"},
		{"forged first line", "10.0.0.1", []string{"for=6.6.6.6", "for=198.51.100.4"}, "198.51.100.4"},
		// A client's unterminated quote cannot swallow the element its
		// balancer appended to the same line.
		{"open quote left of the client", "10.0.0.1", []string{`for="6.6.6.6, for=198.51.100.4`}, "198.51.100.4"},
		{"quoted comma left of the client", "10.0.0.1", []string{`for="6.6, 6.6", for=198.51.100.4`}, "198.51.100.4"},
		{"forged element in a quote", "10.0.0.1", []string{`host="x, for=6.6.6.6"`}, "10.0.0.1"},
	})
}

func TestTrusted(t *testing.T) {
	r := mustNew(t, Config{TrustedProxies: trusted})
	for a, want := range map[string]bool{
		"10.1.2.3": true, "::ffff:10.1.2.3": true, "192.0.2.1": true, "192.0.2.2": false,
		"2001:db8:ffff:1::1": true, "2001:db8:fffe::1": false, "fe80::1%eth0": false,
	} {
		if got := r.Trusted(netip.MustParseAddr(a)); got != want {
			t.Errorf("Trusted(%s) = %v, want %v", a, got, want)
		}
	}
	if (*Resolver)(nil).Trusted(netip.MustParseAddr("10.0.0.1")) {
		t.Error("a nil Resolver trusts someone")
	}
}

// A Resolver without trusted proxies, and a nil one, ignore every header.
func TestClientNoTrust(t *testing.T) {
	for _, r := range []*Resolver{nil, mustNew(t, Config{})} {
		got := r.Client(netip.MustParseAddr("::ffff:127.0.0.1"), [][]byte{[]byte("198.51.100.4")})
		if got != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("Client = %v, want the peer 127.0.0.1", got)
		}
	}
}

func TestParseNode(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" = not an address
	}{
		{"", ""}, {"   ", ""}, {"unknown", ""}, {"_obf", ""}, {"1.2.3", ""}, {"01.2.3.4", ""},
		{"1.2.3.4:", ""}, {"1.2.3.4:123456", ""}, {"1.2.3.4:_", ""}, {"1.2.3.4:_a/b", ""},
		{"[2001:db8::1", ""}, {"[2001:db8::1]x", ""}, {"[2001:db8::1]:", ""}, {"[1.2.3.4]", ""},
		{"1.2.3.4%eth0", ""}, {"[]", ""}, {"2001:db8::g", ""},
		{"1.2.3.4", "1.2.3.4"}, {" 1.2.3.4 ", "1.2.3.4"}, {"1.2.3.4:80", "1.2.3.4"},
		{"1.2.3.4:_a.b-c_", "1.2.3.4"}, {"2001:db8::1", "2001:db8::1"}, {"[2001:db8::1]:65535", "2001:db8::1"},
		{"[::ffff:1.2.3.4]:80", "1.2.3.4"}, {"fe80::1%eth0", "fe80::1"}, {"[fe80::1%25eth0]", "fe80::1"},
	} {
		a, ok := parseNode([]byte(tc.in))
		if tc.want == "" {
			if ok {
				t.Errorf("parseNode(%q) = %v, want not an address", tc.in, a)
			}
			continue
		}
		if !ok || a != netip.MustParseAddr(tc.want) {
			t.Errorf("parseNode(%q) = %v, %v; want %s", tc.in, a, ok, tc.want)
		}
	}
}
