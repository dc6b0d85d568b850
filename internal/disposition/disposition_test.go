package disposition

import (
	"fmt"
	"mime"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppend(t *testing.T) {
	long := strings.Repeat("a", 300)
	longCJK := strings.Repeat("报", 100) // 300 bytes
	tests := []struct {
		name, in, want string
	}{
		{"plain", "report.pdf", `attachment; filename="report.pdf"`},
		{"spaces and punctuation", "my file (1);v=2,x.tar.gz", `attachment; filename="my file (1);v=2,x.tar.gz"`},
		{"empty", "", `attachment`},
		{"dir only", "a/b/", `attachment`},
		{"dot", "a/.", `attachment`},
		{"dotdot", `a\..`, `attachment`},
		{"unix path", "/etc/secret/report.pdf", `attachment; filename="report.pdf"`},
		{"windows path", `C:\Users\x\report.pdf`, `attachment; filename="report.pdf"`},
		{"mixed separators", `a\b/c\d.txt`, `attachment; filename="d.txt"`},
		{"chinese", "报告 2026.pdf", `attachment; filename="__ 2026.pdf"; filename*=UTF-8''%E6%8A%A5%E5%91%8A%202026.pdf`},
		{"latin", "naïve.txt", `attachment; filename="na_ve.txt"; filename*=UTF-8''na%C3%AFve.txt`},
		{"quote", `say "hi".txt`, `attachment; filename="say _hi_.txt"; filename*=UTF-8''say%20%22hi%22.txt`},
		{"percent", "100%.txt", `attachment; filename="100_.txt"; filename*=UTF-8''100%25.txt`},
		{"encoded-looking", "a%20b.txt", `attachment; filename="a_20b.txt"; filename*=UTF-8''a%2520b.txt`},
		{"attr-chars kept", "a!#$&+-.^_`|~z", "attachment; filename=\"a!#$&+-.^_`|~z\""},
		{"attr-chars with non-ascii", "é!#$&+-.^_`|~*'()", "attachment; filename=\"_!#$&+-.^_`|~*'()\"; filename*=UTF-8''%C3%A9!#$&+-.^_`|~%2A%27%28%29"},
		{"crlf", "a\r\nSet-Cookie: x.txt", `attachment; filename="a__Set-Cookie: x.txt"`},
		{"crlf and non-ascii", "é\r\n.txt", `attachment; filename="___.txt"; filename*=UTF-8''%C3%A9__.txt`},
		{"tab and nul and del", "a\tb\x00c\x7f.txt", `attachment; filename="a_b_c_.txt"`},
		{"c1 control", "a\u0085b.txt", `attachment; filename="a_b.txt"`},
		{"bidi override", "invoice\u202Efdp.exe", `attachment; filename="invoice_fdp.exe"`},
		{"bidi override and non-ascii", "é\u202Efdp.exe", `attachment; filename="__fdp.exe"; filename*=UTF-8''%C3%A9_fdp.exe`},
		{"invalid utf-8", "a\xffb.txt", `attachment; filename="a_b.txt"`},
		{"invalid utf-8 and non-ascii", "é\xff.txt", `attachment; filename="__.txt"; filename*=UTF-8''%C3%A9_.txt`},
		{"emoji", "😀.png", `attachment; filename="_.png"; filename*=UTF-8''%F0%9F%98%80.png`},
		{"long ascii", long, `attachment; filename="` + long[:255] + `"`},
		{"long ascii with ext", long + ".pdf", `attachment; filename="` + long[:251] + `.pdf"`},
		{"long ext not kept", long + "." + strings.Repeat("x", 20), `attachment; filename="` + long[:255] + `"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(Append(nil, tt.in))
			if got != tt.want {
				t.Errorf("Append(%q)\n got %s\nwant %s", tt.in, got, tt.want)
			}
		})
	}

	// A long non-ASCII name is cut at a character boundary, keeping .pdf.
	got := string(Append(nil, longCJK+".pdf"))
	_, ext, ok := strings.Cut(got, "filename*=UTF-8''")
	if !ok {
		t.Fatalf("long CJK name: no filename*: %s", got)
	}
	name, err := url.PathUnescape(ext)
	if err != nil || !utf8.ValidString(name) || !strings.HasSuffix(name, ".pdf") || len(name) > maxDispositionName ||
		name != strings.Repeat("报", 83)+".pdf" {
		t.Errorf("long CJK name decoded to %q (%d bytes), err %v", name, len(name), err)
	}
}

func TestAppendAppends(t *testing.T) {
	dst := []byte("Content-Disposition: ")
	got := string(Append(dst, "a.txt"))
	if want := `Content-Disposition: attachment; filename="a.txt"`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// parseDispositionForTest reads back what Append writes,
// the way a client would: the quoted filename, and filename* decoded.
func parseDispositionForTest(t *testing.T, v string) (fallback, ext string, hasExt bool) {
	t.Helper()
	if v == "attachment" {
		return "", "", false
	}
	rest, ok := strings.CutPrefix(v, `attachment; filename="`)
	if !ok {
		t.Fatalf("no filename parameter: %q", v)
	}
	end := strings.IndexByte(rest, '"')
	if end < 0 {
		t.Fatalf("unterminated filename: %q", v)
	}
	fallback, rest = rest[:end], rest[end+1:]
	if rest == "" {
		return fallback, "", false
	}
	enc, ok := strings.CutPrefix(rest, "; filename*=UTF-8''")
	if !ok {
		t.Fatalf("unexpected tail %q in %q", rest, v)
	}
	for i := 0; i < len(enc); i++ {
		if c := enc[i]; c != '%' && !isAttrChar(c) {
			t.Fatalf("filename* has %q outside attr-char: %q", c, v)
		}
	}
	ext, err := url.PathUnescape(enc)
	if err != nil {
		t.Fatalf("filename* %q: %v", enc, err)
	}
	return fallback, ext, true
}

func FuzzAppend(f *testing.F) {
	for _, s := range []string{"report.pdf", "报告 2026.pdf", "naïve.txt", `a"b\c%d`, "a\r\nb", "dir/..", "\xff\xfe", "x\u202Ey", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := string(Append(nil, in))
		for i := 0; i < len(out); i++ {
			if c := out[i]; c < 0x20 || c >= 0x7f {
				t.Fatalf("output byte %#x in %q (input %q)", c, out, in)
			}
		}
		fallback, ext, hasExt := parseDispositionForTest(t, out)
		// A standard parser reads the same name, preferring filename*.
		if out != "attachment" {
			disp, params, err := mime.ParseMediaType(out)
			want := fallback
			if hasExt {
				want = ext
			}
			if err != nil || disp != "attachment" || params["filename"] != want {
				t.Fatalf("mime.ParseMediaType(%q) = %q %q %v, want filename %q", out, disp, params, err, want)
			}
		}
		if strings.ContainsAny(fallback, `"\%/`) {
			t.Fatalf("fallback %q needs escaping (input %q)", fallback, in)
		}
		if hasExt {
			if !utf8.ValidString(ext) || strings.ContainsAny(ext, "/\\\r\n\x00") {
				t.Fatalf("filename* decodes to %q (input %q)", ext, in)
			}
			if utf8.RuneCountInString(ext) != len(fallback) {
				t.Fatalf("filename* %q and fallback %q differ in length (input %q)", ext, fallback, in)
			}
		}
		// A clean name round-trips exactly.
		stem, suffix := dispositionBase(in)
		base := stem + suffix
		clean := utf8.ValidString(base) && !strings.ContainsFunc(base, func(r rune) bool { return dispositionDropped(r, 1) })
		if clean && base != "" && base != "." && base != ".." {
			got := fallback
			if hasExt {
				got = ext
			}
			if got != base {
				t.Fatalf("name %q came back as %q", base, got)
			}
		}
	})
}

func ExampleAppend() {
	fmt.Println(string(Append(nil, "reports/报告 2026.pdf")))
	// Output: attachment; filename="__ 2026.pdf"; filename*=UTF-8''%E6%8A%A5%E5%91%8A%202026.pdf
}

func BenchmarkAppend(b *testing.B) {
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = Append(buf[:0], "reports/报告 2026.pdf")
	}
}
