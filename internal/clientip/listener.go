package clientip

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// Listener wraps the download listener for the PROXY protocol when Header
// is "proxy-protocol", and returns ln unchanged otherwise (a nil Resolver
// included). Connections from trusted proxies must open with a v1 or v2
// header and report its source address as their RemoteAddr; a trusted
// connection without one fails its first read and is closed. Connections
// from anyone else are served as direct clients and must not send a
// header: one that does fails its first read and is closed, so no client
// can name another address by talking PROXY itself. A header has
// readTimeout to arrive (0 = go-proxyproto's default, 10 s).
func (r *Resolver) Listener(ln net.Listener, readTimeout time.Duration) net.Listener {
	if r == nil || r.src != srcProxyProtocol {
		return ln
	}
	return &proxyproto.Listener{
		Listener:          ln,
		ConnPolicy:        r.proxyPolicy,
		ReadHeaderTimeout: readTimeout,
	}
}

// proxyPolicy is the go-proxyproto policy of Listener: REQUIRE from
// trusted peers, REJECT (no header allowed) from the others. A peer whose
// address cannot be read is dropped without stopping the listener.
func (r *Resolver) proxyPolicy(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
	a, ok := addrOf(o.Upstream)
	if !ok {
		return proxyproto.REJECT, fmt.Errorf("%w: clientip: peer address %v", proxyproto.ErrInvalidUpstream, o.Upstream)
	}
	if r.Trusted(a) {
		return proxyproto.REQUIRE, nil
	}
	return proxyproto.REJECT, nil
}

// addrOf is the IP address of a connection's peer.
func addrOf(na net.Addr) (netip.Addr, bool) {
	switch v := na.(type) {
	case *net.TCPAddr:
		a, ok := netip.AddrFromSlice(v.IP)
		return a.Unmap(), ok
	case nil:
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(na.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}
