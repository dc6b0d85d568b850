package httpsyntax

import (
	"strings"
	"testing"
)

func TestTrimOWS(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{" \t ", ""},
		{"\r\nx", "\r\nx"}, // CR and LF are not OWS
		{"x\v", "x\v"},
		{"  a b\t", "a b"},
		{"\tBearer abc ", "Bearer abc"},
	} {
		if got := string(TrimOWS([]byte(tc.in))); got != tc.want {
			t.Errorf("TrimOWS(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTrimLeftOWS(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{" \t", ""},
		{"\t a ", "a "},
		{"\na", "\na"},
	} {
		if got := string(TrimLeftOWS([]byte(tc.in))); got != tc.want {
			t.Errorf("TrimLeftOWS(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestIsTchar(t *testing.T) {
	const tchars = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for c := 0; c < 256; c++ {
		want := strings.IndexByte(tchars, byte(c)) >= 0
		if got := IsTchar(byte(c)); got != want {
			t.Errorf("IsTchar(%q) = %v, want %v", byte(c), got, want)
		}
	}
}
