// Package objectkey holds the rules for object keys: which request paths
// name an object, and which raw keys the admin API and edgectl accept. It
// is a leaf (standard library only) so that the operator CLI can apply the
// download path's rules without linking the HTTP server.
package objectkey

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrBad is returned (wrapped) by Parse for every path that does not name
// an object. The proxy answers 400 and does not say which rule failed.
var ErrBad = errors.New("objectkey: bad object key")

// MaxLength is the longest object key, in bytes after decoding: the S3
// limit, so every key that passes can be stored.
const MaxLength = 1024

// The reasons wrap ErrBad; they are built once so that rejecting a key
// does not allocate.
var (
	errKeyEmpty     = fmt.Errorf("%w: empty", ErrBad)
	errKeyEscape    = fmt.Errorf("%w: invalid percent escape", ErrBad)
	errKeyTooLong   = fmt.Errorf("%w: longer than %d bytes", ErrBad, MaxLength)
	errKeyUTF8      = fmt.Errorf("%w: invalid UTF-8", ErrBad)
	errKeyControl   = fmt.Errorf("%w: control character", ErrBad)
	errKeyBackslash = fmt.Errorf("%w: backslash", ErrBad)
	errKeySegment   = fmt.Errorf("%w: empty, \".\" or \"..\" segment", ErrBad)
)

// Parse turns the raw request path after the route prefix, exactly as
// the client sent it (still percent-encoded), into an object key.
//
// It percent-decodes exactly once, so "%252e" is the literal "%2e" and never
// a dot, and "+" stays a plus (this is a path, not a query). It then checks
// the decoded key, so an encoded "%2e%2e" or "%2F" cannot smuggle a segment
// past the checks. It rejects with an error wrapping ErrBad: an empty key,
// an invalid percent escape, invalid UTF-8, control characters (C0, DEL and
// C1, which would also corrupt logs), backslashes (a path separator on some
// origins), a leading or trailing '/', empty segments ("a//b"), "." and ".."
// segments, and keys longer than MaxLength bytes.
//
// Decoding happens in a stack buffer; the only allocation is the returned
// string, which the caller may keep after the request ends.
func Parse(rawPath []byte) (string, error) {
	if len(rawPath) == 0 {
		return "", errKeyEmpty
	}
	var buf [MaxLength]byte
	n := 0
	for i := 0; i < len(rawPath); i++ {
		c := rawPath[i]
		if c == '%' {
			if i+2 >= len(rawPath) {
				return "", errKeyEscape
			}
			hi, ok1 := keyUnhex(rawPath[i+1])
			lo, ok2 := keyUnhex(rawPath[i+2])
			if !ok1 || !ok2 {
				return "", errKeyEscape
			}
			c = hi<<4 | lo
			i += 2
		}
		if n == len(buf) {
			return "", errKeyTooLong
		}
		buf[n] = c
		n++
	}
	key := buf[:n]
	if err := checkKey(key); err != nil {
		return "", err
	}
	return string(key), nil
}

// checkKey applies Parse's rules to a decoded key.
func checkKey(key []byte) error {
	segStart := 0
	for i := 0; i < len(key); {
		c := key[i]
		switch {
		case c == '/':
			if !keySegmentOK(key[segStart:i]) {
				return errKeySegment
			}
			segStart = i + 1
		case c == '\\':
			return errKeyBackslash
		case c < 0x20 || c == 0x7f:
			return errKeyControl
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(key[i:])
			if r == utf8.RuneError && size <= 1 {
				return errKeyUTF8
			}
			if unicode.IsControl(r) {
				return errKeyControl
			}
			i += size
			continue
		}
		i++
	}
	if !keySegmentOK(key[segStart:]) {
		return errKeySegment
	}
	return nil
}

// keySegmentOK reports whether seg may be one '/'-separated part of a key.
func keySegmentOK(seg []byte) bool {
	switch string(seg) {
	case "", ".", "..":
		return false
	}
	return true
}

func keyUnhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Valid reports whether key, a decoded key as the admin API and edgectl
// receive it, is one the download path could name: escaping each segment
// and parsing the result must give key back. It applies Parse's rules (no
// empty, "." or ".." segments, no control bytes, no backslash, length), so
// a key the proxy could never serve is refused when it is registered.
func Valid(key string) bool {
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	got, err := Parse([]byte(strings.Join(segs, "/")))
	return err == nil && got == key
}
