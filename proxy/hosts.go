package proxy

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// route is what a request's host maps to.
type route struct {
	// Name identifies the route in logs and metrics. Default: the pattern.
	Name string
	// Bucket is the origin bucket the host serves. Required.
	Bucket string
	// Mode is "proxy" (default): serve the bytes through the edge cache; or
	// "redirect": answer with a redirect to a presigned origin URL.
	Mode string
	// Auth is "none" (default), "token" or "signed".
	Auth string
	// RedirectTTL is how long a presigned redirect stays valid in redirect
	// mode. Zero means the proxy's default; negative is an error.
	RedirectTTL time.Duration
	// RateClass names the limiter class whose per-client rate applies to
	// downloads on this route when the token carries no rate of its own.
	RateClass string
	// classRate is RateClass resolved by the limiter at New.
	classRate int64
}

// Route modes and authentication schemes accepted by newHostTable.
const (
	ModeProxy    = "proxy"
	ModeRedirect = "redirect"
	AuthNone     = "none"
	AuthToken    = "token"
	AuthSigned   = "signed"
)

// maxHostName bounds a host name: 253 bytes for DNS (RFC 1035), which also
// covers any bracketed IPv6 literal. Longer hosts never match.
const maxHostName = 253

// hostTable maps Host header values to routes. It is immutable once built and
// safe for concurrent use.
type hostTable struct {
	exact map[string]*route // normalized host name -> route
	wild  map[string]*route // suffix after "*." -> route
}

// newHostTable builds a table from patterns to routes.
//
// A pattern is an exact host name ("files.example.com"), a bracketed IPv6
// literal ("[::1]"), or a leading wildcard ("*.cdn.example.com"). A wildcard
// matches one or more whole labels before the suffix, so both
// "a.cdn.example.com" and "a.b.cdn.example.com" match, but the bare
// "cdn.example.com" does not (add it as an exact pattern if wanted); when
// several wildcards match, the longest suffix wins. Patterns are
// case-insensitive and may end in a dot. A pattern that is not a valid host
// name (or has a port, or a '*' elsewhere), two patterns that are equal after
// normalization, and a route with a bad field are errors naming the pattern.
// Empty Name, Mode and Auth are filled with their defaults.
func newHostTable(routes map[string]route) (*hostTable, error) {
	t := &hostTable{
		exact: make(map[string]*route, len(routes)),
		wild:  make(map[string]*route),
	}
	// Sorted, so that the error for a duplicate names the same pattern on
	// every run.
	patterns := make([]string, 0, len(routes))
	for p := range routes {
		patterns = append(patterns, p)
	}
	slices.Sort(patterns)
	seen := make(map[string]string, len(routes)) // normalized -> pattern
	for _, p := range patterns {
		norm, wildcard, err := normalizePattern(p)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[norm]; dup {
			return nil, fmt.Errorf("proxy: host pattern %q duplicates %q", p, prev)
		}
		seen[norm] = p
		r, err := checkRoute(p, routes[p])
		if err != nil {
			return nil, err
		}
		if wildcard {
			t.wild[strings.TrimPrefix(norm, "*.")] = r
		} else {
			t.exact[norm] = r
		}
	}
	return t, nil
}

// normalizePattern lowercases p, drops a trailing dot and validates it.
func normalizePattern(p string) (norm string, wildcard bool, err error) {
	norm = strings.ToLower(strings.TrimSuffix(p, "."))
	name := norm
	if rest, ok := strings.CutPrefix(norm, "*."); ok {
		wildcard = true
		name = rest
	}
	valid := validHostName([]byte(name))
	if !wildcard && !valid {
		valid = validIPv6Literal([]byte(name))
	}
	if !valid {
		return "", false, fmt.Errorf("proxy: host pattern %q: not a host name or \"*.\" followed by one", p)
	}
	return norm, wildcard, nil
}

// checkRoute validates r and fills its defaults.
func checkRoute(pattern string, r route) (*route, error) {
	if r.Name == "" {
		r.Name = pattern
	}
	if r.Bucket == "" {
		return nil, fmt.Errorf("proxy: host %q: Bucket is empty", pattern)
	}
	switch r.Mode {
	case "":
		r.Mode = ModeProxy
	case ModeProxy, ModeRedirect:
	default:
		return nil, fmt.Errorf("proxy: host %q: Mode %q is not %q or %q", pattern, r.Mode, ModeProxy, ModeRedirect)
	}
	switch r.Auth {
	case "":
		r.Auth = AuthNone
	case AuthNone, AuthToken, AuthSigned:
	default:
		return nil, fmt.Errorf("proxy: host %q: Auth %q is not %q, %q or %q", pattern, r.Auth, AuthNone, AuthToken, AuthSigned)
	}
	if r.RedirectTTL < 0 {
		return nil, fmt.Errorf("proxy: host %q: RedirectTTL %v is negative", pattern, r.RedirectTTL)
	}
	return &r, nil
}

// Lookup returns the route for a Host header value. The value may carry a
// port, upper case and a trailing dot ("Files.Example.COM.:8443"), or be a
// bracketed IPv6 literal ("[::1]:8080"). An exact pattern wins over
// wildcards; among wildcards the longest suffix wins. An empty or malformed
// host matches nothing. The returned route is shared: do not modify it.
// Lookup does not allocate.
func (t *hostTable) Lookup(host []byte) (*route, bool) {
	if t == nil {
		return nil, false
	}
	var buf [maxHostName]byte
	name, ipv6, ok := normalizeHost(&buf, host)
	if !ok {
		return nil, false
	}
	if r, ok := t.exact[string(name)]; ok {
		return r, true
	}
	if ipv6 || len(t.wild) == 0 {
		return nil, false
	}
	// The first dot from the left leaves the longest suffix; i > 0 always,
	// since validated names have no empty label.
	for i, c := range name {
		if c == '.' {
			if r, ok := t.wild[string(name[i+1:])]; ok {
				return r, true
			}
		}
	}
	return nil, false
}

// normalizeHost strips the port and one trailing dot from host, lowercases
// it into buf and validates it.
func normalizeHost(buf *[maxHostName]byte, host []byte) (name []byte, ipv6, ok bool) {
	var port []byte
	if len(host) > 0 && host[0] == '[' {
		end := -1
		for i, c := range host {
			if c == ']' {
				end = i
				break
			}
		}
		if end < 0 {
			return nil, false, false
		}
		host, port, ipv6 = host[:end+1], host[end+1:], true
		if len(port) > 0 && port[0] != ':' {
			return nil, false, false
		}
	} else {
		for i := len(host) - 1; i >= 0; i-- {
			if host[i] == ':' {
				host, port = host[:i], host[i:]
				break
			}
		}
		if len(host) > 0 && host[len(host)-1] == '.' {
			host = host[:len(host)-1]
		}
	}
	if len(port) > 0 && !validPort(port[1:]) {
		return nil, false, false
	}
	if len(host) == 0 || len(host) > len(buf) {
		return nil, false, false
	}
	for i, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	name = buf[:len(host)]
	if ipv6 {
		return name, true, validIPv6Literal(name)
	}
	return name, false, validHostName(name)
}

// validPort accepts the port after the colon: at most five digits, possibly
// none (RFC 3986 allows "host:").
func validPort(p []byte) bool {
	if len(p) > 5 {
		return false
	}
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// validHostName accepts a lowercase DNS name without trailing dot: labels of
// 1 to 63 bytes of [a-z0-9_-], at most maxHostName bytes in all. The
// underscore is allowed because some deployed names use it. IPv4 literals
// pass as names of digits.
func validHostName(name []byte) bool {
	if len(name) == 0 || len(name) > maxHostName {
		return false
	}
	label := 0
	for _, c := range name {
		switch {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
			continue
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
		label++
		if label > 63 {
			return false
		}
	}
	return label > 0
}

// validIPv6Literal accepts a lowercase bracketed IPv6 address syntactically:
// hex digits, colons and dots (for an embedded IPv4), at least two colons.
// Zone identifiers are not accepted. It does not check the address further;
// an odd spelling simply matches no pattern.
func validIPv6Literal(name []byte) bool {
	if len(name) < 4 || name[0] != '[' || name[len(name)-1] != ']' {
		return false
	}
	colons := 0
	for _, c := range name[1 : len(name)-1] {
		switch {
		case c == ':':
			colons++
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', c == '.':
		default:
			return false
		}
	}
	return colons >= 2
}

// routes lists the table's routes (for start-time checks), each once.
func (t *hostTable) routes() []*route {
	seen := make(map[*route]bool)
	var out []*route
	for _, m := range []map[string]*route{t.exact, t.wild} {
		for _, r := range m {
			if !seen[r] {
				seen[r] = true
				out = append(out, r)
			}
		}
	}
	return out
}
