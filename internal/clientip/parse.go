package clientip

import (
	"bytes"
	"net/netip"
	"unsafe"

	"github.com/edgeproxy/edgeproxy/internal/httpsyntax"
)

// maxNode bounds one hop's text: the longest bracketed IPv6 address with a
// zone and a port is well under it, and longer input is not an address.
const maxNode = 128

// lastElement splits the last list element off line: the text after the
// last comma. In a Forwarded line (quoted) commas inside a quoted-string
// do not count; quotes are toggled without regard to escapes, which is
// exact for every element a proxy writes (a node has no backslash) and
// only misplaces boundaries left of an element that then fails to parse
// and stops the walk anyway.
func lastElement(line []byte, quoted bool) (elem, rest []byte) {
	in := false
	for i := len(line) - 1; i >= 0; i-- {
		switch c := line[i]; {
		case quoted && c == '"':
			in = !in
		case c == ',' && !in:
			return line[i+1:], line[:i]
		}
	}
	return line, nil
}

// parseNode reads one forwarded address: "192.0.2.1", "192.0.2.1:80",
// "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:80", with or without an
// IPv6 zone (dropped). A port may be numeric or obfuscated ("_abc", RFC
// 7239 6.3). IPv4-mapped addresses come back as IPv4. ok is false for
// anything else, "unknown" and obfuscated identifiers included.
func parseNode(b []byte) (netip.Addr, bool) {
	b = httpsyntax.TrimOWS(b)
	if len(b) == 0 || len(b) > maxNode {
		return netip.Addr{}, false
	}
	var host []byte
	switch {
	case b[0] == '[':
		end := bytes.IndexByte(b, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		host = b[1:end]
		if rest := b[end+1:]; len(rest) > 0 && (rest[0] != ':' || !validPort(rest[1:])) {
			return netip.Addr{}, false
		}
		if bytes.IndexByte(host, ':') < 0 {
			return netip.Addr{}, false // brackets are for IPv6 only
		}
	case bytes.Count(b, []byte{':'}) == 1:
		i := bytes.IndexByte(b, ':')
		if !validPort(b[i+1:]) || bytes.IndexByte(b[:i], '.') < 0 {
			return netip.Addr{}, false
		}
		host = b[:i]
	default:
		host = b
	}
	if i := bytes.IndexByte(host, '%'); i >= 0 {
		if bytes.IndexByte(host, ':') < 0 {
			return netip.Addr{}, false // zones are for IPv6 only
		}
		host = host[:i]
	}
	a, err := netip.ParseAddr(b2s(host))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// validPort accepts a decimal port (at most 5 digits, RFC 7239's
// node-port) or an obfuscated one ("_" followed by ALPHA / DIGIT / "." /
// "_" / "-").
func validPort(p []byte) bool {
	if len(p) == 0 {
		return false
	}
	if p[0] == '_' {
		for _, c := range p[1:] {
			if !isAlnum(c) && c != '.' && c != '_' && c != '-' {
				return false
			}
		}
		return len(p) > 1
	}
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

// forwardedFor returns the address of the for= parameter of one
// forwarded-element (RFC 7239 4):
//
//	forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )
//	forwarded-pair    = token "=" value
//	value             = token / quoted-string
//
// ok is false when the element is malformed, has no for= or more than one
// (RFC 7239 4: a parameter MUST NOT occur more than once), or names an
// unknown or obfuscated node.
func forwardedFor(elem []byte) (netip.Addr, bool) {
	var node []byte
	seen := false
	for {
		elem = httpsyntax.TrimOWS(elem)
		if len(elem) == 0 {
			break
		}
		if elem[0] == ';' {
			elem = elem[1:] // an empty pair
			continue
		}
		n := tokenLen(elem)
		if n == 0 || n == len(elem) || elem[n] != '=' {
			return netip.Addr{}, false
		}
		name := elem[:n]
		elem = elem[n+1:]
		var val []byte
		if len(elem) > 0 && elem[0] == '"' {
			end, escaped := quotedEnd(elem)
			if end < 0 {
				return netip.Addr{}, false
			}
			val, elem = elem[1:end], elem[end+1:]
			if escaped {
				val = nil // no node contains a backslash: not an address
			}
		} else {
			m := tokenLen(elem)
			if m == 0 {
				return netip.Addr{}, false
			}
			val, elem = elem[:m], elem[m:]
		}
		elem = httpsyntax.TrimOWS(elem)
		if len(elem) > 0 {
			if elem[0] != ';' {
				return netip.Addr{}, false
			}
			elem = elem[1:]
		}
		if bytes.EqualFold(name, []byte("for")) {
			if seen {
				return netip.Addr{}, false
			}
			seen, node = true, val
		}
	}
	if !seen || len(node) == 0 || node[0] == '_' {
		return netip.Addr{}, false // missing, obfuscated; "unknown" fails parseNode
	}
	return parseNode(node)
}

// quotedEnd returns the index of the quote closing the quoted-string that
// b starts with (-1 if none) and whether it holds a quoted-pair.
func quotedEnd(b []byte) (end int, escaped bool) {
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '\\':
			escaped = true
			i++
		case c == '"':
			return i, escaped
		case c < 0x20 && c != '\t', c == 0x7f:
			return -1, escaped
		}
	}
	return -1, escaped
}

// tokenLen is the length of the token (RFC 9110 5.6.2) b starts with.
func tokenLen(b []byte) int {
	for i, c := range b {
		if !httpsyntax.IsTchar(c) {
			return i
		}
	}
	return len(b)
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// b2s views b as a string without copying, so that parsing a header
// allocates nothing. The string must not outlive the call: netip.ParseAddr
// keeps no reference to its input once the zone is cut off.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
