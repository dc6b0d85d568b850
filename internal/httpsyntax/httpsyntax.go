// Package httpsyntax holds the character rules of RFC 9110 section 5.6
// that more than one of our header parsers needs: optional whitespace and
// the token characters. It works on byte slices and allocates nothing, so
// the request path (fasthttp's headers, the PROXY protocol and forwarding
// headers of clientip) can use it.
package httpsyntax

// TrimOWS drops optional whitespace (OWS: SP and HTAB, RFC 9110 5.6.3) at
// both ends of b, as around a field value (RFC 9110 5.5) or a list element.
func TrimOWS(b []byte) []byte {
	b = TrimLeftOWS(b)
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// TrimLeftOWS drops optional whitespace at the start of b, as after a
// list's comma.
func TrimLeftOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// IsTchar reports whether c may appear in a token (RFC 9110 5.6.2): a
// field name, a method, an auth scheme, a parameter name.
func IsTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
