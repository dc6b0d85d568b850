package proxy

import (
	"strings"
	"testing"
	"time"
)

func testHostTable(t testing.TB) *hostTable {
	t.Helper()
	tab, err := newHostTable(map[string]route{
		"files.example.com":      {Name: "files", Bucket: "files"},
		"Media.Example.com.":     {Bucket: "media", Mode: ModeRedirect, RedirectTTL: time.Minute},
		"*.cdn.example.com":      {Name: "cdn", Bucket: "cdn", Auth: AuthSigned},
		"*.eu.cdn.example.com":   {Name: "eu-cdn", Bucket: "cdn-eu", Auth: AuthToken},
		"direct.cdn.example.com": {Name: "cdn-direct", Bucket: "direct"},
		"[::1]":                  {Name: "v6", Bucket: "local"},
		"127.0.0.1":              {Name: "v4", Bucket: "local4"},
		"*.example.org":          {Name: "org", Bucket: "org"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestHostTableLookup(t *testing.T) {
	tab := testHostTable(t)
	tests := []struct {
		host string
		want string // route Name; "" means no match
	}{
		{"files.example.com", "files"},
		{"files.example.com:8080", "files"},
		{"FILES.Example.COM", "files"},
		{"files.example.com.", "files"},
		{"files.example.com.:443", "files"},
		{"files.example.com:", "files"},
		{"media.example.com", "Media.Example.com."},
		{"x.files.example.com", ""},
		{"example.com", ""},
		{"files.example.co", ""},
		{"files.example.com..", ""},
		{"files.example.com:80:80", ""},
		{"files.example.com:http", ""},
		{"files.example.com:123456", ""},

		// Wildcards: one or more labels, longest suffix first, exact first.
		{"a.cdn.example.com", "cdn"},
		{"A.CDN.example.com:8443", "cdn"},
		{"a.b.cdn.example.com", "cdn"},
		{"cdn.example.com", ""},
		{"x.eu.cdn.example.com", "eu-cdn"},
		{"y.x.eu.cdn.example.com", "eu-cdn"},
		{"eu.cdn.example.com", "cdn"},
		{"direct.cdn.example.com", "cdn-direct"},
		{"a.direct.cdn.example.com", "cdn"},
		{"acdn.example.com", ""},
		{".cdn.example.com", ""},
		{"a..cdn.example.com", ""},
		{"a/b.cdn.example.com", ""},
		{"a b.cdn.example.com", ""},
		{"a%2e.cdn.example.com", ""},
		{"*.cdn.example.com", ""},
		{"a.example.org", "org"},
		{"a.cdn.example.org", "org"},

		// IP literals.
		{"[::1]", "v6"},
		{"[::1]:8080", "v6"},
		{"[::1]x", ""},
		{"[::1", ""},
		{"::1", ""},
		{"[::2]:8080", ""},
		{"[fe80::1%25eth0]", ""},
		{"127.0.0.1", "v4"},
		{"127.0.0.1:9000", "v4"},

		// Empty and junk.
		{"", ""},
		{":8080", ""},
		{".", ""},
		{"[]", ""},
		{strings.Repeat("a", 300) + ".example.org", ""},
		{strings.Repeat("a", 64) + ".example.org", ""},
		{strings.Repeat("a", 63) + ".example.org", "org"},
	}
	for _, tt := range tests {
		r, ok := tab.Lookup([]byte(tt.host))
		got := ""
		if ok {
			got = r.Name
		}
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("Lookup(%q) = %q, %v; want %q", tt.host, got, ok, tt.want)
		}
	}
}

func TestHostTableDefaults(t *testing.T) {
	tab := testHostTable(t)
	r, ok := tab.Lookup([]byte("files.example.com"))
	if !ok || r.Mode != ModeProxy || r.Auth != AuthNone || r.Bucket != "files" || r.RedirectTTL != 0 {
		t.Errorf("files route = %+v, %v; want defaults filled", r, ok)
	}
	r, ok = tab.Lookup([]byte("media.example.com"))
	if !ok || r.Mode != ModeRedirect || r.RedirectTTL != time.Minute || r.Name != "Media.Example.com." {
		t.Errorf("media route = %+v, %v", r, ok)
	}
	r, ok = tab.Lookup([]byte("z.cdn.example.com"))
	if !ok || r.Auth != AuthSigned || r.Bucket != "cdn" {
		t.Errorf("cdn route = %+v, %v", r, ok)
	}
	var nilTable *hostTable
	if r, ok := nilTable.Lookup([]byte("files.example.com")); ok || r != nil {
		t.Errorf("nil table matched: %+v", r)
	}
	empty, err := newHostTable(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := empty.Lookup([]byte("files.example.com")); ok {
		t.Error("empty table matched")
	}
}

func TestNewHostTableErrors(t *testing.T) {
	ok := route{Bucket: "b"}
	tests := []struct {
		name    string
		routes  map[string]route
		wantErr string
	}{
		{"duplicate by case", map[string]route{"files.example.com": ok, "FILES.example.com": ok}, `"files.example.com" duplicates "FILES.example.com"`},
		{"duplicate by trailing dot", map[string]route{"a.com": ok, "a.com.": ok}, `"a.com." duplicates "a.com"`},
		{"duplicate wildcard", map[string]route{"*.a.com": ok, "*.A.com": ok}, `"*.a.com" duplicates "*.A.com"`},
		{"empty pattern", map[string]route{"": ok}, `host pattern ""`},
		{"bare star", map[string]route{"*": ok}, `host pattern "*"`},
		{"star dot", map[string]route{"*.": ok}, `host pattern "*."`},
		{"inner star", map[string]route{"a.*.com": ok}, `host pattern "a.*.com"`},
		{"star without dot", map[string]route{"*a.com": ok}, `host pattern "*a.com"`},
		{"double star", map[string]route{"*.*.a.com": ok}, `host pattern "*.*.a.com"`},
		{"port", map[string]route{"a.com:8080": ok}, `host pattern "a.com:8080"`},
		{"empty label", map[string]route{"a..com": ok}, `host pattern "a..com"`},
		{"leading dot", map[string]route{".a.com": ok}, `host pattern ".a.com"`},
		{"slash", map[string]route{"a.com/x": ok}, `host pattern "a.com/x"`},
		{"space", map[string]route{"a .com": ok}, `host pattern "a .com"`},
		{"long label", map[string]route{strings.Repeat("a", 64) + ".com": ok}, `host pattern`},
		{"wildcard ipv6", map[string]route{"*.[::1]": ok}, `host pattern "*.[::1]"`},
		{"unbracketed ipv6", map[string]route{"::1": ok}, `host pattern "::1"`},
		{"missing bucket", map[string]route{"a.com": {}}, `host "a.com": Bucket is empty`},
		{"bad mode", map[string]route{"a.com": {Bucket: "b", Mode: "mirror"}}, `host "a.com": Mode "mirror"`},
		{"bad auth", map[string]route{"a.com": {Bucket: "b", Auth: "basic"}}, `host "a.com": Auth "basic"`},
		{"negative ttl", map[string]route{"a.com": {Bucket: "b", RedirectTTL: -time.Second}}, `host "a.com": RedirectTTL -1s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 5 { // map order varies; the error must not
				tab, err := newHostTable(tt.routes)
				if err == nil || tab != nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "proxy: ") {
					t.Fatalf("newHostTable: %v, %v; want error containing %s", tab, err, tt.wantErr)
				}
			}
		})
	}
}

// TestHostTableDistinctKinds checks that "*.a.com" and "a.com" are two
// patterns, not duplicates, and that each matches only its own hosts.
func TestHostTableDistinctKinds(t *testing.T) {
	tab, err := newHostTable(map[string]route{"a.com": {Name: "apex", Bucket: "b"}, "*.a.com": {Name: "sub", Bucket: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{"a.com": "apex", "x.a.com": "sub"} {
		if r, ok := tab.Lookup([]byte(host)); !ok || r.Name != want {
			t.Errorf("Lookup(%q) = %+v, %v; want %s", host, r, ok, want)
		}
	}
}

func FuzzHostTableLookup(f *testing.F) {
	for _, s := range []string{"files.example.com:8080", "[::1]:80", "a.b.cdn.example.com.", "", "[", ":", "A.CDN.EXAMPLE.COM"} {
		f.Add(s)
	}
	tab := testHostTable(f)
	f.Fuzz(func(t *testing.T, host string) {
		r, ok := tab.Lookup([]byte(host))
		if ok != (r != nil) {
			t.Fatalf("Lookup(%q) = %v, %v", host, r, ok)
		}
		if !ok {
			return
		}
		// A match is a host made of host-name characters only.
		lower := strings.ToLower(host)
		if strings.ContainsFunc(lower, func(r rune) bool {
			return !strings.ContainsRune("abcdefghijklmnopqrstuvwxyz0123456789-_.:[]", r)
		}) {
			t.Fatalf("Lookup(%q) matched %q", host, r.Name)
		}
	})
}

// BenchmarkHostTableLookup covers the slowest common case: a wildcard host
// with a port, found after the exact map and one shorter-suffix miss.
func BenchmarkHostTableLookup(b *testing.B) {
	tab := testHostTable(b)
	host := []byte("Img.Static.x.cdn.example.com:443")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := tab.Lookup(host); !ok {
				b.Error("no match")
				return
			}
		}
	})
}
