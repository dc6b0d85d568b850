package proxy

import (
	"mime"
	"strings"
)

// maxMediaTypeLen bounds a catalog content_type; real media types with
// their parameters are far shorter.
const maxMediaTypeLen = 255

// catalogContentType returns v when it is a media type fit to send as
// Content-Type (RFC 9110 8.3.1: type "/" subtype, then parameters), and ""
// otherwise, so the caller falls back to the object's own type. The
// catalog is written through the admin API, but a malformed value must not
// reach the header: no control characters (header injection), no
// non-ASCII, at most maxMediaTypeLen bytes, and mime.ParseMediaType must
// accept it.
func catalogContentType(v string) string {
	if v == "" || len(v) > maxMediaTypeLen {
		return ""
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c >= 0x7f {
			return ""
		}
	}
	mt, _, err := mime.ParseMediaType(v)
	if err != nil || !strings.Contains(mt, "/") {
		return ""
	}
	return v
}
