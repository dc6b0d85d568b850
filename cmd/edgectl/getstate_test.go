package main

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeproxy/edgeproxy/internal/byteranges"
)

func TestParseContentRange(t *testing.T) {
	for _, bad := range []string{
		"", "bytes", "bytes 0-1", "bytes 0-1/*", "bytes */100", "bits 0-1/10", "bytes  0-1/10",
		"bytes 5-4/10", "bytes 0-10/10", "bytes -1-3/10", "bytes 0-+3/10", "bytes 0-3/1 0",
		"bytes 0-3/99999999999999999999", "bytes 0x1-3/10", "bytes 0-3/10 ",
	} {
		if _, _, _, err := parseContentRange(bad); err == nil {
			t.Errorf("parseContentRange(%q) accepted", bad)
		}
	}
	for _, tc := range []struct {
		in                string
		first, last, size int64
	}{
		{"bytes 0-0/1", 0, 0, 1},
		{"bytes 0-4194303/1073741824", 0, 4194303, 1 << 30},
		{"bytes 1073741823-1073741823/1073741824", 1<<30 - 1, 1<<30 - 1, 1 << 30},
	} {
		a, b, n, err := parseContentRange(tc.in)
		if err != nil || a != tc.first || b != tc.last || n != tc.size {
			t.Errorf("parseContentRange(%q) = %d, %d, %d, %v", tc.in, a, b, n, err)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	f.Add("bytes 0-9/10")
	f.Add("bytes 3-3/4")
	f.Fuzz(func(t *testing.T, s string) {
		a, b, n, err := parseContentRange(s)
		if err == nil && (a < 0 || a > b || b >= n) {
			t.Fatalf("%q -> %d-%d/%d", s, a, b, n)
		}
	})
}

func TestIsStrongETag(t *testing.T) {
	for v, want := range map[string]bool{
		`"abc"`: true, `""`: true, `"d41d8cd98f00b204e9800998ecf8427e-3"`: true,
		`W/"abc"`: false, `abc`: false, `"a"b"`: false, `"a b"`: false, `"`: false, ``: false,
	} {
		if got := isStrongETag(v); got != want {
			t.Errorf("isStrongETag(%q) = %v", v, got)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.bin"+stateSuffix)
	if st, err := loadState(p); st != nil || err != nil {
		t.Fatalf("missing state: %v, %v", st, err)
	}
	u, _ := url.Parse("http://u:p@127.0.0.1:1/download/10086?token=secret-token#x")
	st := &getState{URL: urlIdentity(u), ETag: `"e1"`, Size: 100}
	var done byteranges.Set
	done.Add(span{Start: 0, End: 10})
	done.Add(span{Start: 20, End: 30})
	st.setSpans(&done)
	if err := saveState(p, st); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(p)
	if strings.Contains(string(raw), "secret") || strings.Contains(string(raw), "u:p") {
		t.Fatalf("state holds credentials: %s", raw)
	}
	got, err := loadState(p)
	if err != nil || got.URL != "http://127.0.0.1:1/download/10086" || got.ETag != `"e1"` || got.Size != 100 || got.spans().Total() != 20 {
		t.Fatalf("loadState = %+v, %v", got, err)
	}
	if _, err := os.Stat(p + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left: %v", err)
	}
	for _, bad := range []string{
		`{`, `{"url":"x","etag":"W/\"a\"","size":10}`, `{"url":"x","etag":"\"a\"","size":10,"done":[[0,11]]}`,
		`{"url":"x","etag":"\"a\"","size":10,"done":[[4,6],[0,5]]}`, `{"etag":"\"a\"","size":10}`,
	} {
		os.WriteFile(p, []byte(bad), 0o600)
		if _, err := loadState(p); err == nil {
			t.Errorf("loadState accepted %s", bad)
		}
	}
	if err := removeState(p); err != nil {
		t.Fatal(err)
	}
	if err := removeState(p); err != nil {
		t.Fatalf("second remove: %v", err)
	}
}
