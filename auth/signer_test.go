package auth

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

func newTestSigner(t testing.TB, bindIP bool) *Signer {
	t.Helper()
	s, err := NewSigner(SignerConfig{
		Keys:      map[string]string{"k1": "0123456789abcdef0123456789abcdef", "k2": "fedcba9876543210fedcba9876543210"},
		ActiveKey: "k2",
		Skew:      10 * time.Second,
		BindIP:    bindIP,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type signedParams struct{ expires, kid, sig string }

func splitSigned(t testing.TB, q string) signedParams {
	t.Helper()
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	return signedParams{v.Get("expires"), v.Get("kid"), v.Get("sig")}
}

func TestSigner(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	exp := now.Add(time.Hour)
	s := newTestSigner(t, true)
	q, err := s.Sign("GET", "Files.Example.com:443", "/d/10086/report.pdf", exp, "203.0.113.7")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(q, "expires=1800003600&kid=k2&sig=") || strings.Count(q, "=") != 3 || strings.ContainsAny(q, "+/") {
		t.Fatalf("Sign = %q", q)
	}
	p := splitSigned(t, q)
	flip := func(s string) string { // change the last character
		b := []byte(s)
		if b[len(b)-1] == 'A' {
			b[len(b)-1] = 'B'
		} else {
			b[len(b)-1] = 'A'
		}
		return string(b)
	}

	type req struct {
		method, host, path string
		p                  signedParams
		ip                 string
		now                time.Time
	}
	base := req{"GET", "files.example.com", "/d/10086/report.pdf", p, "203.0.113.7", now}
	cases := []struct {
		name string
		mod  func(r *req)
		want *Error // nil: accepted
	}{
		{"tampered method", func(r *req) { r.method = "POST" }, ErrSignatureInvalid},
		{"tampered host", func(r *req) { r.host = "evil.example.com" }, ErrSignatureInvalid},
		{"tampered path", func(r *req) { r.path = "/d/10087/report.pdf" }, ErrSignatureInvalid},
		{"path case", func(r *req) { r.path = "/D/10086/report.pdf" }, ErrSignatureInvalid},
		{"tampered expires", func(r *req) { r.p.expires = "1800003601" }, ErrSignatureInvalid},
		{"leading zero expires", func(r *req) { r.p.expires = "01800003600" }, nil},
		{"signed expires", func(r *req) { r.p.expires = "+1800003600" }, ErrSignatureInvalid},
		{"empty expires", func(r *req) { r.p.expires = "" }, ErrSignatureInvalid},
		{"other ip", func(r *req) { r.ip = "203.0.113.8" }, ErrSignatureInvalid},
		{"bad ip", func(r *req) { r.ip = "nope" }, ErrSignatureInvalid},
		{"tampered sig", func(r *req) { r.p.sig = flip(r.p.sig) }, ErrSignatureInvalid},
		{"truncated sig", func(r *req) { r.p.sig = r.p.sig[:len(r.p.sig)-2] }, ErrSignatureInvalid},
		{"padded sig", func(r *req) { r.p.sig += "=" }, ErrSignatureInvalid},
		{"empty sig", func(r *req) { r.p.sig = "" }, ErrSignatureInvalid},
		{"unknown kid", func(r *req) { r.p.kid = "k3" }, ErrSignatureInvalid},
		{"other known kid", func(r *req) { r.p.kid = "k1" }, ErrSignatureInvalid},
		{"expired beyond skew", func(r *req) { r.now = exp.Add(11 * time.Second) }, ErrSignatureExpired},
		{"newline in path", func(r *req) { r.path += "\n" }, ErrSignatureInvalid},
		{"valid", func(r *req) {}, nil},
		{"within skew", func(r *req) { r.now = exp.Add(10 * time.Second) }, nil},
		{"host with port and case", func(r *req) { r.host = "FILES.example.COM:8443" }, nil},
		{"HEAD for GET", func(r *req) { r.method = "HEAD" }, nil},
		{"lower-case method", func(r *req) { r.method = "get" }, nil},
		{"mapped ip", func(r *req) { r.ip = "::ffff:203.0.113.7" }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			tc.mod(&r)
			err := s.Verify(r.method, r.host, r.path, []byte(r.p.expires), []byte(r.p.kid), []byte(r.p.sig), r.ip, r.now)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, tc.want) || e.Status != 403 {
				t.Fatalf("Verify = %v, want %s", err, tc.want.Code)
			}
		})
	}
}

func TestSignerRotationAndUnbound(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	old, err := NewSigner(SignerConfig{Keys: map[string]string{"k1": "0123456789abcdef0123456789abcdef"}, ActiveKey: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	q, err := old.Sign("GET", "[2001:db8::1]:443", "/f", now.Add(time.Minute), "")
	if err != nil {
		t.Fatal(err)
	}
	p := splitSigned(t, q)
	// The rotated signer (active k2, still knowing k1) accepts the old URL,
	// from any address since neither binds the IP.
	s := newTestSigner(t, false)
	if err := s.Verify("GET", "2001:db8::1", "/f", []byte(p.expires), []byte(p.kid), []byte(p.sig), "198.51.100.1", now); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	// Default skew is 30s.
	if err := old.Verify("GET", "[2001:db8::1]", "/f", []byte(p.expires), []byte(p.kid), []byte(p.sig), "", now.Add(90*time.Second)); err != nil {
		t.Fatalf("within default skew: %v", err)
	}
	if err := old.Verify("GET", "[2001:db8::1]", "/f", []byte(p.expires), []byte(p.kid), []byte(p.sig), "", now.Add(91*time.Second)); !errors.Is(err, ErrSignatureExpired) {
		t.Fatalf("past default skew: %v", err)
	}
	// BindIP needs an address to sign.
	if _, err := newTestSigner(t, true).Sign("GET", "h", "/f", now, ""); err == nil {
		t.Fatal("Sign with BindIP and no address succeeded")
	}
}

func TestNewSignerValidates(t *testing.T) {
	secret := "0123456789abcdef"
	for _, tc := range []struct {
		name string
		cfg  SignerConfig
		want string
	}{
		{"no keys", SignerConfig{}, "keys"},
		{"short secret", SignerConfig{Keys: map[string]string{"a": "short"}, ActiveKey: "a"}, "keys[a]"},
		{"bad kid", SignerConfig{Keys: map[string]string{"a&b": secret}, ActiveKey: "a&b"}, "id"},
		{"active missing", SignerConfig{Keys: map[string]string{"a": secret}, ActiveKey: "b"}, "active_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSigner(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewSigner: %v, want error naming %q", err, tc.want)
			}
		})
	}
}

func FuzzSignerVerify(f *testing.F) {
	s := newTestSigner(f, true)
	now := time.Unix(1_800_000_000, 0)
	q, err := s.Sign("GET", "h.example", "/a/b", now.Add(time.Hour), "10.0.0.1")
	if err != nil {
		f.Fatal(err)
	}
	p := splitSigned(f, q)
	f.Add("GET", "h.example", "/a/b", p.expires, p.kid, p.sig, "10.0.0.1")
	f.Add("", "", "", "", "", "", "")
	f.Add("GET", "[::1", "/\n", "99999999999999", "k1", "====", "::1%eth0")
	f.Fuzz(func(t *testing.T, method, host, path, expires, kid, sig, ip string) {
		err := s.Verify(method, host, path, []byte(expires), []byte(kid), []byte(sig), ip, now)
		if err == nil {
			// Only the genuine parameters (modulo documented canonicalisation)
			// may verify: re-signing must give the same signature.
			q2, serr := s.Sign(method, host, path, time.Unix(mustExpires(t, expires), 0), ip)
			if serr != nil || kid != "k2" || splitSigned(t, q2).sig != sig {
				t.Fatalf("accepted %q %q %q %q %q %q %q", method, host, path, expires, kid, sig, ip)
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) || e.Status != 403 {
			t.Fatalf("Verify error %v is not a 403 *Error", err)
		}
	})
}

func mustExpires(t *testing.T, s string) int64 {
	n, err := parseExpires([]byte(s))
	if err != nil {
		t.Fatalf("accepted unparsable expires %q", s)
	}
	return n
}
