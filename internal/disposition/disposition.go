// Package disposition builds the Content-Disposition field value that makes
// a client save a download under a given name (RFC 6266). It is the one
// implementation used by the proxy's own responses and by the presigned URLs
// of redirect mode (origin), so both sanitise names alike: base name only,
// no control or bidirectional-control characters, a length cap.
package disposition

import (
	"unicode"
	"unicode/utf8"
)

// maxDispositionName bounds the file name put in Content-Disposition, in
// bytes of the base name. 255 is the common file-system limit, so a longer
// name would be cut by the client anyway; the bound also keeps the header
// (up to three bytes per byte when percent-encoded) well under header limits.
const maxDispositionName = 255

// maxDispositionExt is the longest extension (including the dot) kept when a
// long name is shortened, so "very…long.tar.gz" still ends in ".gz".
const maxDispositionExt = 16

// Append appends a Content-Disposition field value that
// makes the client save the response as filename (RFC 6266):
//
//	attachment; filename="report.pdf"
//	attachment; filename="__ 2026.pdf"; filename*=UTF-8''%E6%8A%A5%E5%91%8A%202026.pdf
//
// Only the base name is used: anything up to the last '/' or '\' is dropped,
// and an empty, "." or ".." base yields a bare "attachment". The quoted
// filename is a plain-ASCII fallback in which non-ASCII characters, control
// characters, '"', '\' and '%' (which some clients percent-decode) each become
// '_'; it never needs escaping. When that fallback lost information, the exact
// name follows as filename* in the RFC 8187 encoding, which clients prefer.
// Control characters (including CR and LF) and Unicode bidirectional controls
// (which can disguise an extension) become '_' in both forms, so the output
// never contains a control byte. Invalid UTF-8 bytes become '_' too. A base
// name longer than 255 bytes is shortened at a character boundary, keeping a
// short extension.
//
// It allocates only if dst lacks capacity.
func Append(dst []byte, filename string) []byte {
	stem, ext := dispositionBase(filename)
	if stem == "" && ext == "" {
		return append(dst, "attachment"...)
	}
	dst = append(dst, `attachment; filename="`...)
	dst, lossy1 := appendDispositionFallback(dst, stem)
	dst, lossy2 := appendDispositionFallback(dst, ext)
	dst = append(dst, '"')
	if !lossy1 && !lossy2 {
		return dst
	}
	dst = append(dst, "; filename*=UTF-8''"...)
	dst = appendDispositionExt(dst, stem)
	return appendDispositionExt(dst, ext)
}

// dispositionBase returns the base name of filename as a stem and an
// extension whose concatenation is at most maxDispositionName bytes; both are
// empty when there is no usable name. Two substrings rather than one string
// keep shortening free of allocation.
func dispositionBase(filename string) (stem, ext string) {
	for i := len(filename) - 1; i >= 0; i-- {
		if filename[i] == '/' || filename[i] == '\\' {
			filename = filename[i+1:]
			break
		}
	}
	if filename == "." || filename == ".." {
		return "", ""
	}
	if len(filename) <= maxDispositionName {
		return filename, ""
	}
	for i := len(filename) - 1; i > 0 && len(filename)-i <= maxDispositionExt; i-- {
		if filename[i] == '.' {
			ext = filename[i:]
			break
		}
	}
	cut := maxDispositionName - len(ext)
	for cut > 0 && !utf8.RuneStart(filename[cut]) {
		cut--
	}
	return filename[:cut], ext
}

// appendDispositionFallback appends the plain-ASCII form of s for the quoted
// filename parameter. lossy reports whether a character that filename* can
// carry had to be replaced.
func appendDispositionFallback(dst []byte, s string) (_ []byte, lossy bool) {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case dispositionDropped(r, size):
			dst = append(dst, '_')
		case r < utf8.RuneSelf && r != '"' && r != '\\' && r != '%':
			dst = append(dst, byte(r))
		default:
			dst = append(dst, '_')
			lossy = true
		}
	}
	return dst, lossy
}

// appendDispositionExt appends s percent-encoded as an RFC 8187 ext-value
// (the part after the charset and the empty language tag).
func appendDispositionExt(dst []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if dispositionDropped(r, size) {
			dst = append(dst, '_')
			i += size
			continue
		}
		for end := i + size; i < end; i++ {
			if c := s[i]; isAttrChar(c) {
				dst = append(dst, c)
			} else {
				dst = append(dst, '%', hex[c>>4], hex[c&0xf])
			}
		}
	}
	return dst
}

// dispositionDropped reports whether a decoded rune becomes '_' in both forms:
// invalid UTF-8, control characters and bidirectional controls.
func dispositionDropped(r rune, size int) bool {
	if r == utf8.RuneError && size == 1 {
		return true
	}
	if r < 0x20 || r == 0x7f {
		return true
	}
	return r >= 0x80 && (unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r))
}

// isAttrChar reports whether c may appear unencoded in an RFC 8187 value:
// ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~".
func isAttrChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '&', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
