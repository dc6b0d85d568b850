package clientip

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/edgeproxy/edgeproxy/internal/httpsyntax"
)

// The sources Config.Header may name.
const (
	// HeaderXForwardedFor reads X-Forwarded-For, right to left. The default.
	HeaderXForwardedFor = "x-forwarded-for"
	// HeaderXRealIP reads the last X-Real-IP line.
	HeaderXRealIP = "x-real-ip"
	// HeaderForwarded reads the for= nodes of Forwarded (RFC 7239).
	HeaderForwarded = "forwarded"
	// HeaderProxyProtocol takes the address from the PROXY protocol header
	// (v1 or v2) at the listener; see Resolver.Listener.
	HeaderProxyProtocol = "proxy-protocol"
)

// Config says which peers are trusted proxies and what to believe from
// them. The zero value trusts no one: the client is always the
// connection's peer.
type Config struct {
	// TrustedProxies are the CIDRs ("10.0.0.0/8", "2001:db8::/32") or bare
	// addresses of the load balancers in front of the edge. Only a
	// connection from one of them may name another client, and only these
	// hops are skipped in a forwarded chain. Default empty. Keep it as
	// narrow as the balancers: a trusted range that contains clients lets
	// those clients choose their own address.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Header is the one source of the client's address that is believed
	// from a trusted proxy: "x-forwarded-for" (default), "x-real-ip",
	// "forwarded" (RFC 7239) or "proxy-protocol" (PROXY protocol v1/v2 at
	// the listener; needs TrustedProxies). Match it to what the balancer
	// sets: a header it does not overwrite can be forged by the client.
	Header string `yaml:"header"`
}

// source is a validated Config.Header.
type source uint8

const (
	srcXFF source = iota
	srcXRealIP
	srcForwarded
	srcProxyProtocol
)

// Resolver tells the client of a request. It is immutable and safe for
// concurrent use. A nil *Resolver trusts no one.
type Resolver struct {
	trusted []netip.Prefix
	src     source
	// header is the canonical name of the HTTP header to read, "" when
	// none is read (no trusted proxies, or the PROXY protocol).
	header string
}

// New validates cfg and returns its Resolver. Errors name the key.
func New(cfg Config) (*Resolver, error) {
	r := &Resolver{}
	switch strings.ToLower(strings.TrimSpace(cfg.Header)) {
	case "", HeaderXForwardedFor:
		r.src, r.header = srcXFF, "X-Forwarded-For"
	case HeaderXRealIP:
		r.src, r.header = srcXRealIP, "X-Real-Ip"
	case HeaderForwarded:
		r.src, r.header = srcForwarded, "Forwarded"
	case HeaderProxyProtocol:
		r.src = srcProxyProtocol
	default:
		return nil, fmt.Errorf("clientip: config header: %q is not x-forwarded-for, x-real-ip, forwarded or proxy-protocol", cfg.Header)
	}
	for i, v := range cfg.TrustedProxies {
		p, err := ParseTrusted(v)
		if err != nil {
			return nil, fmt.Errorf("clientip: config trusted_proxies[%d] %q: %w", i, v, err)
		}
		r.trusted = append(r.trusted, p)
	}
	if len(r.trusted) == 0 {
		if r.src == srcProxyProtocol {
			return nil, fmt.Errorf("clientip: config header: proxy-protocol needs trusted_proxies (the balancers that send it)")
		}
		r.header = ""
	}
	return r, nil
}

// ParseTrusted reads one trusted_proxies entry: a CIDR ("10.0.0.0/8",
// "2001:db8::/32") or a bare address. It is exported so that a deprecated
// key carrying the same list can be checked with the same rules.
func ParseTrusted(v string) (netip.Prefix, error) {
	v = strings.TrimSpace(v)
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() {
			return netip.Prefix{}, fmt.Errorf("IPv4-mapped prefix; write the IPv4 form")
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("zones are not allowed")
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.WithZone("").Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Header is the canonical name of the request header whose values Client
// needs, or "" when Client reads none (nothing is trusted, or the address
// comes from the PROXY protocol): callers then skip looking it up.
func (r *Resolver) Header() string {
	if r == nil {
		return ""
	}
	return r.header
}

// Trusted reports whether a is one of the trusted proxies.
func (r *Resolver) Trusted(a netip.Addr) bool {
	if r == nil {
		return false
	}
	a = a.WithZone("").Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Client returns the client of a request that arrived from remote (the
// connection's peer, as the listener reports it) carrying values, every
// line of the request header named by Header, in order. values are not
// retained. The result is remote itself (unmapped, without zone) unless
// remote is a trusted proxy and values name someone else; it is invalid
// only when remote is.
func (r *Resolver) Client(remote netip.Addr, values [][]byte) netip.Addr {
	remote = remote.WithZone("").Unmap()
	if r == nil || r.header == "" || len(values) == 0 || !r.Trusted(remote) {
		return remote
	}
	switch r.src {
	case srcXFF:
		return r.walk(remote, values, false)
	case srcForwarded:
		return r.walk(remote, values, true)
	case srcXRealIP:
		if a, ok := parseNode(values[len(values)-1]); ok {
			return a
		}
	}
	return remote
}

// walk finds the client in a forwarded chain: right to left over the
// lines, then over each line's elements, skipping trusted proxies. The
// first untrusted hop is the client; a hop that is not an address stops
// the walk at the last good hop; with every hop trusted, the leftmost is
// the client. Empty list elements are ignored (RFC 9110 5.6.1).
func (r *Resolver) walk(remote netip.Addr, values [][]byte, forwarded bool) netip.Addr {
	last := remote
	for i := len(values) - 1; i >= 0; i-- {
		line := values[i]
		for len(line) > 0 {
			var elem []byte
			elem, line = lastElement(line, forwarded)
			if len(httpsyntax.TrimOWS(elem)) == 0 {
				continue
			}
			var a netip.Addr
			var ok bool
			if forwarded {
				a, ok = forwardedFor(elem)
			} else {
				a, ok = parseNode(elem)
			}
			if !ok {
				return last
			}
			last = a
			if !r.Trusted(a) {
				return a
			}
		}
	}
	return last
}
