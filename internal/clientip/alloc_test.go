//go:build !race

package clientip

import (
	"net/netip"
	"testing"
)

// TestClientAllocations: resolving a forwarded client allocates nothing,
// since it runs for every request (the proxy's cache-hit path included).
func TestClientAllocations(t *testing.T) {
	remote := netip.MustParseAddr("10.0.0.1")
	for _, tc := range []struct {
		header string
		lines  []string
	}{
		{"", []string{"6.6.6.6", "198.51.100.4, 10.1.1.1"}},
		{"", []string{"[2001:db8::1]:80, fe80::1%eth0"}},
		{"x-real-ip", []string{"198.51.100.4"}},
		{"forwarded", []string{`for="[2001:db8:cafe::17]:4711";proto=https, for=10.1.1.1`}},
	} {
		r := mustNew(t, Config{TrustedProxies: trusted, Header: tc.header})
		var vals [][]byte
		for _, l := range tc.lines {
			vals = append(vals, []byte(l))
		}
		if n := testing.AllocsPerRun(1000, func() { r.Client(remote, vals) }); n != 0 {
			t.Errorf("%q %q: %.1f allocations per call, want 0", tc.header, tc.lines, n)
		}
	}
}
