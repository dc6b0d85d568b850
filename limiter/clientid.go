package limiter

import (
	"bytes"
	"net"
	"net/netip"
)

// ClientID names the client whose buckets a request uses.
//
// A non-empty userID wins ("u:"+userID): one account is one client wherever
// it connects from. Otherwise the client is its address: IPv4 as is, IPv6 by
// its /64, because one subscriber is usually given a whole /64 and could
// otherwise rotate addresses to get a fresh bucket per request.
//
// The forwarded headers are believed only when remoteIP is inside
// TrustedProxies, because anyone can send them. X-Forwarded-For is then
// walked right to left, skipping trusted hops; the first untrusted address
// is the client. If every hop is trusted the leftmost is the client; if a
// hop is not an address, the last good hop to its right is used (a trusted
// proxy sent something we cannot read, so we stop believing it). Entries may
// carry a port ("1.2.3.4:80", "[2001:db8::1]:80"). X-Real-IP is used only
// when X-Forwarded-For gives nothing. A remoteIP that is not an address
// gives "unknown". The header slices are not retained.
func (l *Limiter) ClientID(remoteIP net.IP, xForwardedFor, xRealIP []byte, userID string) string {
	if userID != "" {
		return "u:" + userID
	}
	addr, ok := l.ClientAddr(remoteIP, xForwardedFor, xRealIP)
	if !ok {
		return "unknown"
	}
	return idForAddr(addr)
}

// ClientAddr returns the client's address by the same rules as ClientID
// (forwarded headers believed only from TrustedProxies), as a full address
// rather than an identity: auth needs the exact address for allowed_ip and
// signed URLs, where ClientID folds IPv6 to its /64. ok is false when
// remoteIP is not an address.
func (l *Limiter) ClientAddr(remoteIP net.IP, xForwardedFor, xRealIP []byte) (netip.Addr, bool) {
	addr, ok := netip.AddrFromSlice(remoteIP)
	if !ok {
		return netip.Addr{}, false
	}
	addr = addr.Unmap()
	if l.trustedAddr(addr) {
		if a, ok := l.walkForwarded(addr, xForwardedFor); ok {
			addr = a
		} else if a, ok := parseHop(xRealIP); ok {
			addr = a
		}
	}
	return addr, true
}

// walkForwarded returns the client named by xff as seen from the trusted
// peer remote; ok is false when xff names no one.
func (l *Limiter) walkForwarded(remote netip.Addr, xff []byte) (netip.Addr, bool) {
	last, seen := remote, false
	for len(xff) > 0 {
		var hop []byte
		if i := bytes.LastIndexByte(xff, ','); i >= 0 {
			hop, xff = xff[i+1:], xff[:i]
		} else {
			hop, xff = xff, nil
		}
		if len(bytes.TrimSpace(hop)) == 0 {
			continue // "a, , b" or a trailing comma from joined header lines
		}
		a, ok := parseHop(hop)
		if !ok {
			return last, seen
		}
		seen = true
		if !l.trustedAddr(a) {
			return a, true
		}
		last = a
	}
	return last, seen
}

func (l *Limiter) trustedAddr(a netip.Addr) bool {
	for _, p := range l.s.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop reads one forwarded address, with or without a port.
func parseHop(b []byte) (netip.Addr, bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || len(b) > 64 {
		return netip.Addr{}, false
	}
	s := string(b) // small; does not escape when ParseAddr fails fast
	if s[0] == '[' {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		return ap.Addr().WithZone("").Unmap(), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.WithZone("").Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Is4() {
		return ap.Addr(), true
	}
	return netip.Addr{}, false
}

// idForAddr is the client id of an address: IPv4 itself, IPv6 its /64.
func idForAddr(a netip.Addr) string {
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}

// HasTrustedProxies reports whether any forwarded header can be believed,
// so callers can skip header parsing when none can.
func (l *Limiter) HasTrustedProxies() bool { return len(l.s.trusted) > 0 }
