package proxy

import (
	"strings"
	"testing"
)

func TestCatalogContentType(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		// Refused: the object's own type is sent instead.
		{"", ""},
		{"pdf", ""},
		{"attachment", ""},
		{"application/", ""},
		{"/pdf", ""},
		{"text/html\r\nSet-Cookie: a=b", ""},
		{"text/html\nX: y", ""},
		{"text/plain; charset=\x00", ""},
		{"text/plain; charset", ""},
		{"text/plain; charset=\"utf-8", ""},
		{"application/pdf\x7f", ""},
		{"application/pdé", ""},
		{"a b/c", ""},
		{"a/b/c", ""},
		{"application/" + strings.Repeat("x", 250), ""},
		// Accepted as written.
		{"application/pdf", "application/pdf"},
		{"text/plain; charset=utf-8", "text/plain; charset=utf-8"},
		{"Text/Plain;\tcharset=\"utf-8\"", "Text/Plain;\tcharset=\"utf-8\""},
		{`video/mp4; codecs="avc1.64001F, mp4a.40.2"`, `video/mp4; codecs="avc1.64001F, mp4a.40.2"`},
		{"application/vnd.openxmlformats-officedocument.wordprocessingml.document", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
	} {
		if got := catalogContentType(tt.in); got != tt.want {
			t.Errorf("catalogContentType(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
