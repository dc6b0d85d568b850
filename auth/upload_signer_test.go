package auth

import (
	"errors"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// TestSignUpload: a signed upload URL verifies with exactly what was
// signed; every field changed, an unknown key, a download signature and an
// expired URL are refused with the right code.
func TestSignUpload(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := newTestSigner(t, true)
	sc := UploadScope{Bucket: "up", Prefix: "in/", FileID: "f1", MaxSize: 1 << 20}
	q, err := s.SignUpload("Edge.Example.com:443", "/uploads/", sc, now.Add(time.Hour), "203.0.113.7")
	if err != nil {
		t.Fatal(err)
	}
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	got := UploadScope{Bucket: v.Get("bucket"), Key: v.Get("key"), Prefix: v.Get("prefix"), FileID: v.Get("file_id")}
	got.MaxSize, _ = strconv.ParseInt(v.Get("max_size"), 10, 64)
	if got != sc || v.Get("kid") != "k2" || v.Has("key") {
		t.Fatalf("SignUpload = %q: scope %+v", q, got)
	}
	exp, kid, sig := []byte(v.Get("expires")), []byte(v.Get("kid")), []byte(v.Get("sig"))
	verify := func(host, path string, sc UploadScope, exp, kid, sig []byte, ip string, now time.Time) string {
		err := s.VerifyUpload(host, path, sc, exp, kid, sig, ip, now)
		if err == nil {
			return ""
		}
		var ae *Error
		if !errors.As(err, &ae) {
			t.Fatalf("VerifyUpload: %v is not an *Error", err)
		}
		return ae.Code
	}
	if c := verify("edge.example.com", "/uploads/", sc, exp, kid, sig, "203.0.113.7", now); c != "" {
		t.Fatalf("genuine URL refused: %s", c)
	}
	with := func(f func(*UploadScope)) UploadScope { c := sc; f(&c); return c }
	dl, err := s.Sign("POST", "edge.example.com", "/uploads/", now.Add(time.Hour), "203.0.113.7")
	if err != nil {
		t.Fatal(err)
	}
	dv, _ := url.ParseQuery(dl)
	for _, c := range []struct {
		name     string
		host     string
		path     string
		sc       UploadScope
		exp, kid string
		sig      string
		ip       string
		now      time.Time
		wantCode string
	}{
		{name: "bucket", sc: with(func(c *UploadScope) { c.Bucket = "other" })},
		{name: "prefix", sc: with(func(c *UploadScope) { c.Prefix = "in/x/" })},
		{name: "prefix as key", sc: with(func(c *UploadScope) { c.Key, c.Prefix = c.Prefix, "" })},
		{name: "file id", sc: with(func(c *UploadScope) { c.FileID = "" })},
		{name: "max size", sc: with(func(c *UploadScope) { c.MaxSize = 2 << 20 })},
		{name: "no max size", sc: with(func(c *UploadScope) { c.MaxSize = 0 })},
		{name: "host", host: "other.example.com"},
		{name: "path", path: "/uploads/x"},
		{name: "ip", ip: "203.0.113.8"},
		{name: "later expiry", exp: strconv.FormatInt(now.Add(2*time.Hour).Unix(), 10)},
		{name: "unknown kid", kid: "k3"},
		{name: "other kid", kid: "k1"},
		{name: "download signature", sig: dv.Get("sig")},
		{name: "tampered signature", sig: string(sig[:len(sig)-2]) + "AA"},
		{name: "expired", now: now.Add(time.Hour + 11*time.Second), wantCode: CodeSignatureExpired},
	} {
		host, path, scope, e, k, sg, ip, at := "edge.example.com:8443", "/uploads/", sc, exp, kid, sig, "203.0.113.7", now
		if c.host != "" {
			host = c.host
		}
		if c.path != "" {
			path = c.path
		}
		if c.sc != (UploadScope{}) {
			scope = c.sc
		}
		if c.exp != "" {
			e = []byte(c.exp)
		}
		if c.kid != "" {
			k = []byte(c.kid)
		}
		if c.sig != "" {
			sg = []byte(c.sig)
		}
		if c.ip != "" {
			ip = c.ip
		}
		if !c.now.IsZero() {
			at = c.now
		}
		want := c.wantCode
		if want == "" {
			want = CodeSignatureInvalid
		}
		if got := verify(host, path, scope, e, k, sg, ip, at); got != want {
			t.Errorf("%s: %q, want %q", c.name, got, want)
		}
	}
	// Within the skew a URL is still good.
	if c := verify("edge.example.com", "/uploads/", sc, exp, kid, sig, "203.0.113.7", now.Add(time.Hour+9*time.Second)); c != "" {
		t.Fatalf("within skew: %s", c)
	}
}

func TestSignUploadRefusesBadScopes(t *testing.T) {
	s := newTestSigner(t, false)
	exp := time.Now().Add(time.Hour)
	for _, sc := range []UploadScope{
		{Key: "a"},
		{Bucket: "b"},
		{Bucket: "b", Key: "a", Prefix: "p/"},
		{Bucket: "b", Key: "a", MaxSize: -1},
		{Bucket: "b", Key: "a\nb"},
	} {
		if q, err := s.SignUpload("h", "/uploads/", sc, exp, ""); err == nil {
			t.Errorf("SignUpload(%+v) = %q, want an error", sc, q)
		}
	}
}

// FuzzVerifyUpload: a signed upload URL verifies only with the scope,
// path, expiry and key it was signed with (the host only up to case and
// port).
func FuzzVerifyUpload(f *testing.F) {
	s := newTestSigner(f, false)
	now := time.Unix(1_800_000_000, 0)
	signed := UploadScope{Bucket: "up", Prefix: "in/", FileID: "f1", MaxSize: 1 << 20}
	q, err := s.SignUpload("edge.example.com", "/uploads/", signed, now.Add(time.Hour), "")
	if err != nil {
		f.Fatal(err)
	}
	v, _ := url.ParseQuery(q)
	f.Add("up", "", "in/", "f1", int64(1<<20), "/uploads/", v.Get("expires"), v.Get("kid"), v.Get("sig"))
	f.Add("up", "in/", "", "f1", int64(1<<20), "/uploads/", v.Get("expires"), v.Get("kid"), v.Get("sig"))
	f.Add("up", "", "in/\n", "f1", int64(1<<20), "/uploads/", v.Get("expires"), "k1", v.Get("sig"))
	f.Fuzz(func(t *testing.T, bucket, key, prefix, fileID string, maxSize int64, path, exp, kid, sig string) {
		sc := UploadScope{Bucket: bucket, Key: key, Prefix: prefix, FileID: fileID, MaxSize: maxSize}
		err := s.VerifyUpload("EDGE.example.com:443", path, sc, []byte(exp), []byte(kid), []byte(sig), "", now)
		if err == nil && (sc != signed || path != "/uploads/" || exp != v.Get("expires") || kid != v.Get("kid")) {
			t.Fatalf("accepted %+v path %q expires %q kid %q", sc, path, exp, kid)
		}
	})
}
