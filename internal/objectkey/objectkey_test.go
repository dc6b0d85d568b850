package objectkey

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParse(t *testing.T) {
	long := strings.Repeat("a", MaxLength)
	bad := []struct {
		name, in string
		err      error
	}{
		{"empty", "", errKeyEmpty},
		{"lone percent", "a%", errKeyEscape},
		{"short escape", "a%2", errKeyEscape},
		{"non-hex escape", "a%zz", errKeyEscape},
		{"half-hex escape", "a%2g", errKeyEscape},
		{"percent then slash", "%/2", errKeyEscape},
		{"dot segment", ".", errKeySegment},
		{"dotdot segment", "..", errKeySegment},
		{"leading dotdot", "../etc/passwd", errKeySegment},
		{"inner dotdot", "a/../b", errKeySegment},
		{"inner dot", "a/./b", errKeySegment},
		{"trailing dotdot", "a/..", errKeySegment},
		{"encoded dotdot", "%2e%2e/x", errKeySegment},
		{"encoded upper dotdot", "a/%2E%2E", errKeySegment},
		{"mixed dotdot", "a/.%2e/b", errKeySegment},
		{"encoded slash dotdot", "a%2F..%2Fb", errKeySegment},
		{"leading slash", "/a", errKeySegment},
		{"encoded leading slash", "%2Fa", errKeySegment},
		{"trailing slash", "a/", errKeySegment},
		{"empty segment", "a//b", errKeySegment},
		{"slash only", "/", errKeySegment},
		{"backslash", `a\b`, errKeyBackslash},
		{"encoded backslash", "a%5Cb", errKeyBackslash},
		{"backslash dotdot", `..\x`, errKeyBackslash},
		{"nul", "a%00b", errKeyControl},
		{"raw nul", "a\x00b", errKeyControl},
		{"newline", "a%0Ab", errKeyControl},
		{"cr", "a%0db", errKeyControl},
		{"tab", "a%09b", errKeyControl},
		{"del", "a%7Fb", errKeyControl},
		{"c1 control", "a%C2%85b", errKeyControl},
		{"invalid utf-8", "a%FFb", errKeyUTF8},
		{"raw invalid utf-8", "a\xffb", errKeyUTF8},
		{"truncated utf-8", "a%E6%8A", errKeyUTF8},
		{"overlong slash", "a%C0%AFb", errKeyUTF8},
		{"surrogate", "a%ED%A0%80", errKeyUTF8},
		{"too long", long + "b", errKeyTooLong},
		{"too long encoded", strings.Repeat("%61", MaxLength+1), errKeyTooLong},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if err != tt.err || !errors.Is(err, ErrBad) || got != "" {
				t.Errorf("Parse(%q) = %q, %v; want error %v", tt.in, got, err, tt.err)
			}
		})
	}

	good := []struct{ name, in, want string }{
		{"simple", "a.txt", "a.txt"},
		{"nested", "dir/sub/file.bin", "dir/sub/file.bin"},
		{"plus is literal", "a+b.txt", "a+b.txt"},
		{"encoded space", "a%20b.txt", "a b.txt"},
		{"raw space", "a b.txt", "a b.txt"},
		{"double-encoded dot stays literal", "%252e%252e/x", "%2e%2e/x"},
		{"double-encoded once", "a%2520b", "a%20b"},
		{"encoded plus", "a%2Bb", "a+b"},
		{"lowercase hex", "a%2bb", "a+b"},
		{"encoded slash is a separator", "a%2Fb", "a/b"},
		{"dots inside names", "a..b/.c/d./...", "a..b/.c/d./..."},
		{"utf-8 raw", "报告/naïve.txt", "报告/naïve.txt"},
		{"utf-8 encoded", "%E6%8A%A5%E5%91%8A.pdf", "报告.pdf"},
		{"query-like chars", "a;b=c&d?e#f", "a;b=c&d?e#f"},
		{"percent-encoded percent", "100%25", "100%"},
		{"max length", long, long},
		{"max length encoded", strings.Repeat("%61", MaxLength), long},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if err != nil || got != tt.want {
				t.Errorf("Parse(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestObjectKeyCopies checks that the key does not alias the caller's buffer,
// which fasthttp reuses after the handler returns.
func TestObjectKeyCopies(t *testing.T) {
	raw := []byte("dir/file.txt")
	key, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	copy(raw, "XXXXXXXXXXXX")
	if key != "dir/file.txt" {
		t.Errorf("key changed with the input buffer: %q", key)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"a.txt", "dir/sub/file", "%2e%2e/x", "%252e", "a//b", "/a", `a\b`, "a%00", "a%FF", "报告.pdf",
		"a/.%2e/b", "%2F", "a+b", strings.Repeat("%61", MaxLength),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		key, err := Parse(raw)
		if err != nil {
			if !errors.Is(err, ErrBad) || key != "" {
				t.Fatalf("Parse(%q) = %q, %v", raw, key, err)
			}
			return
		}
		if key == "" || len(key) > MaxLength || !utf8.ValidString(key) {
			t.Fatalf("Parse(%q) = %q: empty, too long or invalid UTF-8", raw, key)
		}
		if strings.ContainsAny(key, "\x00\\") {
			t.Fatalf("Parse(%q) = %q contains NUL or backslash", raw, key)
		}
		for _, r := range key {
			if r < 0x20 || (r >= 0x7f && r < 0xa0) {
				t.Fatalf("Parse(%q) = %q contains control %U", raw, key, r)
			}
		}
		for seg := range strings.SplitSeq(key, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("Parse(%q) = %q has segment %q", raw, key, seg)
			}
		}
		// Decoding happens exactly once: a raw path without '%' is the key.
		if !strings.Contains(string(raw), "%") && key != string(raw) {
			t.Fatalf("Parse(%q) = %q changed a path with no escapes", raw, key)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	raw := []byte("releases/v2.3.1/%E6%8A%A5%E5%91%8A%202026/edgeproxy-linux-amd64.tar.gz")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func TestValid(t *testing.T) {
	for _, k := range []string{"a.iso", "iso/a b.iso", "x/y/z+1%2F.bin", "ü/ß"} {
		if !Valid(k) {
			t.Errorf("Valid(%q) = false", k)
		}
	}
	for _, k := range []string{"", "/a", "a/", "a//b", "a/../b", ".", "..", "a\\b", "a\x00b", "a\nb", strings.Repeat("k", 1025)} {
		if Valid(k) {
			t.Errorf("Valid(%q) = true", k)
		}
	}
}
