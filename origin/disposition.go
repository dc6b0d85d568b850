package origin

import (
	"strings"
)

// attachment returns a Content-Disposition value that makes a browser save
// the response as filename (RFC 6266 section 4).
//
// The plain filename parameter carries an ASCII stand-in (non-ASCII, quotes,
// backslashes and controls replaced by '_') for old clients; when that
// differs from the real name, filename* carries the exact name as UTF-8,
// percent-encoded per RFC 8187, which current clients prefer. Invalid UTF-8
// in filename becomes U+FFFD rather than being declared UTF-8 falsely. The
// result is printable ASCII, safe in a header and in a URL query.
func attachment(filename string) string {
	name := strings.ToValidUTF8(filename, "\uFFFD")
	var ascii strings.Builder
	for _, r := range name {
		if r < 0x20 || r >= 0x7f || r == '"' || r == '\\' {
			ascii.WriteByte('_')
			continue
		}
		ascii.WriteRune(r)
	}
	v := `attachment; filename="` + ascii.String() + `"`
	if ascii.String() == name {
		return v
	}
	return v + "; filename*=UTF-8''" + pctEncode(name)
}

// pctEncode encodes s as an RFC 8187 value-chars: attr-char bytes stay,
// every other byte becomes %XX.
func pctEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) * 3)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAttrChar(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// isAttrChar reports whether c is an RFC 8187 attr-char.
func isAttrChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}
