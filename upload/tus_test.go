package upload

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"reflect"
	"strings"
	"testing"
)

func TestParseMetadata(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	bad := []string{
		"a",                     // fine alone...
		"k " + b64("v") + ",k",  // ...but keys are unique
		"k !!!",                 // not base64
		",",                     // empty key
		"k " + b64("v") + ", ,", // empty pair
		"k\x01 " + b64("v"),     // control in key
		"k " + b64("v") + "====",
	}
	for _, s := range bad[1:] {
		if _, err := parseMetadata(s); err == nil {
			t.Errorf("parseMetadata(%q): no error", s)
		}
	}
	tooMany := make([]string, maxMetadataPairs+1)
	for i := range tooMany {
		tooMany[i] = "k" + strings.Repeat("x", i)
	}
	if _, err := parseMetadata(strings.Join(tooMany, ",")); err == nil {
		t.Error("more than maxMetadataPairs pairs accepted")
	}
	good := []struct {
		in   string
		want Metadata
	}{
		{"", Metadata{}},
		{"  ", Metadata{}},
		{"a", Metadata{"a": ""}},
		{"filename " + b64("a b.bin") + ",is_confidential", Metadata{"filename": "a b.bin", "is_confidential": ""}},
		{"filename " + b64("x") + " , sha256 " + b64("00"), Metadata{"filename": "x", "sha256": "00"}},
		{"empty ", Metadata{"empty": ""}},
	}
	for _, tt := range good {
		got, err := parseMetadata(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseMetadata(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseChecksum(t *testing.T) {
	s1 := sha1.Sum([]byte("x"))
	s2 := sha256.Sum256([]byte("x"))
	for in, want := range map[string]error{
		"":                      errChecksumSyntax,
		"sha1":                  errChecksumSyntax,
		"crc32 AAAAAA==":        errChecksumAlg,
		"SHA1 " + b64b(s1[:]):   errChecksumAlg, // algorithm names are lower case
		"sha1 !!!!":             errChecksumSyntax,
		"sha1 " + b64b(s2[:]):   errChecksumSyntax, // sha256's length
		"sha256 " + b64b(s1[:]): errChecksumSyntax,
		"sha1 " + b64b(s1[:]):   nil,
		"sha256 " + b64b(s2[:]): nil,
		"md5 " + b64b(s2[:16]):  nil,
		" sha1  " + b64b(s1[:]): nil,
	} {
		if _, err := parseChecksum(in); err != want {
			t.Errorf("parseChecksum(%q) = %v, want %v", in, err, want)
		}
	}
}

func b64b(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestParseConcat(t *testing.T) {
	id1, id2 := strings.Repeat("a", idLen), strings.Repeat("B", idLen)
	for _, s := range []string{"", "final;", "final", "partial;x", "final; /uploads/short", "final;" + strings.Repeat(" "+id1, maxConcatParts+1)} {
		if _, err := parseConcat(s); err == nil {
			t.Errorf("parseConcat(%q): no error", s)
		}
	}
	for in, want := range map[string]concat{
		"partial": {partial: true},
		"final;/uploads/" + id1 + " http://h:1/uploads/" + id2 + "/": {final: []string{id1, id2}},
		"final;" + id1: {final: []string{id1}},
		// Upload URLs of a signed creation carry their credential.
		"final;/uploads/" + id1 + "?token=abc http://h:1/uploads/" + id2 + "?token=abc": {final: []string{id1, id2}},
	} {
		got, err := parseConcat(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseConcat(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
}

func TestParseLength(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1073741824": 1 << 30, "000": 0} {
		if n, ok := parseLength(in); !ok || n != want {
			t.Errorf("parseLength(%q) = %d, %v", in, n, ok)
		}
	}
	for _, in := range []string{"", "-1", "+1", " 1", "1e3", "0x10", "1234567890123456789"} {
		if _, ok := parseLength(in); ok {
			t.Errorf("parseLength(%q) accepted", in)
		}
	}
}

func TestObjectKey(t *testing.T) {
	id := strings.Repeat("i", idLen)
	g := Grant{Prefix: "in/"}
	for name, want := range map[string]string{"": "in/" + id, "a.bin": "in/a.bin", "é 1.txt": "in/é 1.txt"} {
		m := Metadata{}
		if name != "" {
			m["filename"] = name
		}
		if got, ok := g.objectKey(id, m); !ok || got != want {
			t.Errorf("objectKey(filename %q) = %q, %v; want %q", name, got, ok, want)
		}
	}
	for _, name := range []string{"../x", "a/b", `a\b`, ".hidden", "a\x00b", "a\nb", strings.Repeat("x", 256), "\xff"} {
		if _, ok := g.objectKey(id, Metadata{"filename": name}); ok {
			t.Errorf("objectKey(filename %q) accepted", name)
		}
	}
	if got, _ := (Grant{Key: "fixed"}).objectKey(id, Metadata{"filename": "../x"}); got != "fixed" {
		t.Errorf("a token's key is not the key: %q", got)
	}
}

func FuzzParseMetadata(f *testing.F) {
	f.Add("filename YS5iaW4=,flag")
	f.Add("k !!!")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseMetadata(s)
		if err != nil {
			return
		}
		if len(m) > maxMetadataPairs {
			t.Fatalf("%d pairs", len(m))
		}
		for k := range m {
			if k == "" || strings.ContainsAny(k, " ,\t") {
				t.Fatalf("key %q", k)
			}
		}
	})
}

func FuzzParseConcat(f *testing.F) {
	f.Add("final;/uploads/" + strings.Repeat("a", idLen))
	f.Add("partial")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseConcat(s)
		if err != nil {
			return
		}
		if c.partial == (len(c.final) > 0) {
			t.Fatalf("%+v", c)
		}
		for _, id := range c.final {
			if !validID(id) {
				t.Fatalf("id %q", id)
			}
		}
	})
}

func FuzzParseChecksum(f *testing.F) {
	f.Add("sha1 C+7Hteo/D9vJXQ3UfzxbwnXaijM=")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseChecksum(s)
		if err == nil && len(c.digest) != newHash(c.alg).Size() {
			t.Fatalf("%q: digest of %d bytes for %s", s, len(c.digest), c.alg)
		}
	})
}
