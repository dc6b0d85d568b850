// Package clientip decides who the client of a request is: the one address
// that auth (allowed_ip, signed-URL bind_ip, the failure throttle, max_uses
// sessions), the limiter, statistics and the access log all use. It is
// configured once (the client_ip section) and consulted whether or not any
// limit is set, so that no part of the edge can disagree with another about
// who asked.
//
// # The rules
//
// The client is the connection's peer address unless that peer is a
// trusted proxy (Config.TrustedProxies). Only then is one source believed,
// the one Config.Header names; every other forwarding header is ignored,
// so a client cannot pick the header that suits it:
//
//   - x-forwarded-for (default): every X-Forwarded-For line, joined in
//     order (RFC 9110 5.3), is walked right to left. Hops that are trusted
//     proxies are skipped; the first untrusted hop is the client. Each
//     trusted proxy appends the address it saw, so the hops right of the
//     first untrusted one were written by our own proxies and everything
//     left of it may be forged. A proxy that appends a second header line
//     (HAProxy's option forwardfor) instead of extending the first is
//     read the same way, since lines are joined before the walk.
//   - x-real-ip: the last X-Real-IP line, one address, written by the
//     trusted peer itself (a proxy that sets it replaces what the client
//     sent).
//   - forwarded: RFC 7239. The for= parameter of each forwarded-element,
//     walked right to left like X-Forwarded-For. Nodes may be quoted and
//     carry ports ("[2001:db8::1]:4711", "192.0.2.1:80").
//   - proxy-protocol: the address comes from the PROXY protocol (v1 or
//     v2) header that the balancer sends before the HTTP bytes; no HTTP
//     header is read. Listener wraps the download listener: a connection
//     from a trusted proxy MUST open with the header (it is closed
//     otherwise), a connection from anyone else must NOT (it is closed if
//     it does) and is served as a direct client.
//
// Hops may carry a port ("1.2.3.4:80", "[2001:db8::1]:80"); IPv6 zones
// are dropped and IPv4-mapped IPv6 addresses are read as IPv4. A hop that
// is not an address (garbage, or a Forwarded node that is "unknown" or
// obfuscated) stops the walk: the last address to its right is the client,
// which is the nearest trusted proxy when nothing to its right is
// readable. If every hop is trusted, the leftmost is the client (a request
// that started inside the trusted network).
//
// A forged header from a peer that is not a trusted proxy changes nothing.
//
// # Why right to left, and why one header
//
// Reading the leftmost X-Forwarded-For entry, or the first line, lets any
// client name itself: balancers append to what they received. Believing
// several headers in an order of preference lets a client add the
// preferred one that the balancer does not set. Both were holes in the
// edge before this package (issue 9).
//
// The limiter folds the address further (an IPv6 client by its /64); that
// is the limiter's policy, not the client's identity, and stays there.
package clientip
