package proxy

import (
	"net/http"

	"github.com/edgeproxy/edgeproxy/internal/httpsyntax"
)

// Refusals of a malformed Authorization field. Both are 400, not 401: the
// request is broken (RFC 6750 3.1, invalid_request), not its credential.
var (
	errDuplicateAuthorization = newAPIError(http.StatusBadRequest, "duplicate_authorization",
		"the request carries more than one Authorization header")
	errBadAuthorization = newAPIError(http.StatusBadRequest, "bad_authorization",
		"the Authorization header is not a valid Bearer credential")
)

// bearerToken extracts the download token from the request's Authorization
// field lines, as fasthttp's PeekAll returns them (one entry per line).
//
// Grammar (RFC 9110 11.4, RFC 6750 2.1):
//
//	credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//	token68     = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//
// The scheme is compared case-insensitively (RFC 9110 11.1), so "bearer x"
// and "BEARER x" carry the token "x". The result is:
//
//   - nil, nil when there is no Bearer credential: no Authorization line,
//     another scheme (it may belong to something in front of the edge), or
//     the Bearer scheme with nothing after it. The caller then looks in the
//     query and the cookie.
//   - errDuplicateAuthorization for more than one line. Authorization is not
//     a list (RFC 9110 5.3 forbids combining it), and taking one of several
//     would let two parsers on the path disagree about who the client is.
//   - errBadAuthorization for a Bearer credential that is not one token68
//     (auth-params, spaces or commas inside it, control bytes, a tab as the
//     separator).
//
// The token aliases lines[0]; it does not allocate.
func bearerToken(lines [][]byte) ([]byte, error) {
	switch len(lines) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, errDuplicateAuthorization
	}
	v := httpsyntax.TrimOWS(lines[0])
	n := 0 // the scheme is a token (RFC 9110 11.1)
	for n < len(v) && httpsyntax.IsTchar(v[n]) {
		n++
	}
	if !equalFoldASCII(v[:n], "bearer") {
		return nil, nil
	}
	rest := v[n:]
	if len(rest) > 0 && rest[0] != ' ' {
		return nil, errBadAuthorization
	}
	for len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	if len(rest) == 0 {
		return nil, nil
	}
	if !isToken68(rest) {
		return nil, errBadAuthorization
	}
	return rest, nil
}

// equalFoldASCII compares b with the lowercase ASCII word s, ignoring the
// case of b.
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// isToken68 reports whether b is a token68 (RFC 9110 11.2): at least one
// character of the set, then only '=' padding.
func isToken68(b []byte) bool {
	i := 0
	for i < len(b) && isToken68Char(b[i]) {
		i++
	}
	if i == 0 {
		return false
	}
	for ; i < len(b); i++ {
		if b[i] != '=' {
			return false
		}
	}
	return true
}

func isToken68Char(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '+', '/':
		return true
	}
	return false
}
