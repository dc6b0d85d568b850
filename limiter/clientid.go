package limiter

import "net/netip"

// ClientID names the client whose buckets a request uses, from the user
// (when the request carries one) and the client's address as the proxy
// resolved it (internal/clientip: the limiter does not read forwarded
// headers itself, so every part of the edge agrees on who the client is).
//
// A non-empty userID wins ("u:"+userID): one account is one client wherever
// it connects from. Otherwise the client is its address: IPv4 as is, IPv6 by
// its /64, because one subscriber is usually given a whole /64 and could
// otherwise rotate addresses to get a fresh bucket per request. An invalid
// addr gives "unknown".
func (l *Limiter) ClientID(addr netip.Addr, userID string) string {
	if userID != "" {
		return "u:" + userID
	}
	if !addr.IsValid() {
		return "unknown"
	}
	return idForAddr(addr.WithZone("").Unmap())
}

// idForAddr is the client id of an address: IPv4 itself, IPv6 its /64.
func idForAddr(a netip.Addr) string {
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}
