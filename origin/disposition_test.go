package origin

import (
	"mime"
	"strings"
	"testing"
)

func TestAttachment(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"report.pdf", `attachment; filename="report.pdf"`},
		{"a b.txt", `attachment; filename="a b.txt"`},
		{`say "hi".txt`, `attachment; filename="say _hi_.txt"; filename*=UTF-8''say%20%22hi%22.txt`},
		{`back\slash`, `attachment; filename="back_slash"; filename*=UTF-8''back%5Cslash`},
		{"报告.pdf", `attachment; filename="__.pdf"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.pdf`},
		{"naïve file.bin", `attachment; filename="na_ve file.bin"; filename*=UTF-8''na%C3%AFve%20file.bin`},
		{"cr\r\nlf", `attachment; filename="cr__lf"; filename*=UTF-8''cr%0D%0Alf`},
		{"50%", `attachment; filename="50%"`},
		{"bad\xffutf8", `attachment; filename="bad_utf8"; filename*=UTF-8''bad%EF%BF%BDutf8`},
	} {
		if got := attachment(tc.in); got != tc.want {
			t.Errorf("attachment(%q) =\n %s\nwant\n %s", tc.in, got, tc.want)
		}
	}
}

// FuzzAttachment asserts that the header value is printable ASCII and that
// a standard parser recovers the exact (valid UTF-8) name from it.
func FuzzAttachment(f *testing.F) {
	for _, s := range []string{"a.txt", "报告/naïve file.bin", `"quoted"`, "x\x00y", "\xff", "%41", "a;b=c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if name == "" {
			return
		}
		v := attachment(name)
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				t.Fatalf("attachment(%q) = %q has byte %#x", name, v, v[i])
			}
		}
		disp, params, err := mime.ParseMediaType(v)
		if err != nil {
			t.Fatalf("attachment(%q) = %q does not parse: %v", name, v, err)
		}
		want := strings.ToValidUTF8(name, "\uFFFD")
		if disp != "attachment" || params["filename"] != want {
			t.Fatalf("attachment(%q) = %q parses as %q %q, want filename %q", name, v, disp, params, want)
		}
	})
}
