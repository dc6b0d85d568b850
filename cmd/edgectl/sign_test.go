package main

import (
	"bytes"
	"errors"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/auth"
)

const (
	secret1 = "0123456789abcdef0123456789abcdef"
	secret2 = "fedcba9876543210:with-a-colon-inside"
)

var signEnv = []string{"EDGECTL_SIGN_KEYS=k1:" + secret1 + ", k2:" + secret2, "EDGECTL_SIGN_KID=k2"}

// proxySigner is what the proxy would build from auth.signer in its config.
func proxySigner(t testing.TB, bindIP bool) *auth.Signer {
	t.Helper()
	s, err := auth.NewSigner(auth.SignerConfig{Keys: map[string]string{"k1": secret1, "k2": secret2}, ActiveKey: "k1", BindIP: bindIP})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func runSign(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	// No EDGECTL_ADDR and no admin key: sign must not need the API.
	code := run(append([]string{"sign"}, args...), env, &out, &errb)
	return code, out.String(), errb.String()
}

// request is what a client sends for a URL: the Host header and the path
// of the request line, exactly as the URL spells them, plus the query.
type request struct {
	host, path string
	query      url.Values
}

func requestFor(t testing.TB, s string) request {
	t.Helper()
	_, rest, ok := strings.Cut(s, "://")
	if !ok {
		t.Fatalf("%q: no scheme", s)
	}
	i := strings.IndexByte(rest, '/')
	if i < 0 {
		t.Fatalf("%q: no path", s)
	}
	host, pathQuery := rest[:i], rest[i:]
	path, rawQuery, _ := strings.Cut(pathQuery, "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		t.Fatalf("%q: query: %v", s, err)
	}
	return request{host, path, q}
}

func (r request) verify(s *auth.Signer, method, ip string, now time.Time) error {
	return s.Verify(method, r.host, r.path, []byte(r.query.Get("expires")), []byte(r.query.Get("kid")),
		[]byte(r.query.Get("sig")), ip, now)
}

func TestSignVerifies(t *testing.T) {
	now := time.Now()
	code, out, errs := runSign(t, signEnv, "-url", "https://Dl.Example.com:8443/download/10086/a%20b+c.iso?lang=en#frag", "-ttl", "1h")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d: %s", code, errs)
	}
	signed := strings.TrimSuffix(out, "\n")
	if strings.Contains(signed, "\n") || !strings.HasPrefix(signed, "https://Dl.Example.com:8443/download/10086/a%20b+c.iso?lang=en&expires=") ||
		strings.Contains(signed, "#") {
		t.Fatalf("signed URL %q", signed)
	}
	r := requestFor(t, signed)
	if r.query.Get("kid") != "k2" || r.query.Get("lang") != "en" {
		t.Fatalf("query %v: want kid k2 (EDGECTL_SIGN_KID) and lang kept", r.query)
	}
	s := proxySigner(t, false)
	if err := r.verify(s, "GET", "", now); err != nil {
		t.Fatalf("GET: %v", err)
	}
	if err := r.verify(s, "HEAD", "", now); err != nil {
		t.Fatalf("HEAD: %v", err)
	}
	// The proxy sees the port of its own listener, not the URL's.
	if err := s.Verify("GET", "dl.example.com:443", r.path, []byte(r.query.Get("expires")), []byte("k2"),
		[]byte(r.query.Get("sig")), "", now); err != nil {
		t.Fatalf("other port: %v", err)
	}
	exp := r.query.Get("expires")
	if want := now.Add(time.Hour).Unix(); exp != strconv.FormatInt(want, 10) && exp != strconv.FormatInt(want+1, 10) {
		t.Fatalf("expires %s, want about %d", exp, want)
	}
	for _, bad := range []struct {
		name string
		r    request
	}{
		{"other path", request{r.host, "/download/10087/a%20b+c.iso", r.query}},
		{"decoded path", request{r.host, "/download/10086/a b+c.iso", r.query}},
		{"other host", request{"dl.example.org", r.path, r.query}},
	} {
		if err := bad.r.verify(s, "GET", "", now); !errors.Is(err, auth.ErrSignatureInvalid) {
			t.Errorf("%s: %v, want signature_invalid", bad.name, err)
		}
	}
	if err := r.verify(s, "PUT", "", now); !errors.Is(err, auth.ErrSignatureInvalid) {
		t.Errorf("PUT: %v, want signature_invalid", err)
	}
	if err := r.verify(s, "GET", "", now.Add(2*time.Hour)); !errors.Is(err, auth.ErrSignatureExpired) {
		t.Errorf("2h later: %v, want signature_expired", err)
	}
}

func TestSignBindIP(t *testing.T) {
	now := time.Now()
	code, out, errs := runSign(t, signEnv, "-url", "http://127.0.0.1:8080/download/7", "-ttl", "5m", "-ip", "203.0.113.7", "-method", "get")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	r := requestFor(t, strings.TrimSpace(out))
	s := proxySigner(t, true)
	if err := r.verify(s, "GET", "203.0.113.7", now); err != nil {
		t.Fatalf("bound address: %v", err)
	}
	if err := r.verify(s, "GET", "::ffff:203.0.113.7", now); err != nil {
		t.Fatalf("IPv4-mapped bound address: %v", err)
	}
	if err := r.verify(s, "GET", "203.0.113.8", now); !errors.Is(err, auth.ErrSignatureInvalid) {
		t.Fatalf("other address: %v, want signature_invalid", err)
	}
	// A proxy without bind_ip does not accept an IP-bound URL.
	if err := r.verify(proxySigner(t, false), "GET", "203.0.113.7", now); !errors.Is(err, auth.ErrSignatureInvalid) {
		t.Fatalf("bind_ip off: %v, want signature_invalid", err)
	}
}

// With one key, EDGECTL_SIGN_KID may be left out; a URL without a path is
// signed for "/", the path a client sends for it.
func TestSignOneKey(t *testing.T) {
	code, out, errs := runSign(t, []string{"EDGECTL_SIGN_KEYS=solo:" + secret1}, "-url", "http://edge.example", "-ttl", "10s")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	r := requestFor(t, strings.TrimSpace(out))
	s, err := auth.NewSigner(auth.SignerConfig{Keys: map[string]string{"solo": secret1}, ActiveKey: "solo"})
	if err != nil {
		t.Fatal(err)
	}
	if r.path != "/" || r.verify(s, "GET", "", time.Now()) != nil {
		t.Fatalf("path %q, verify %v", r.path, r.verify(s, "GET", "", time.Now()))
	}
}

func TestSignErrors(t *testing.T) {
	base := []string{"-url", "https://dl.example.com/download/1", "-ttl", "1h"}
	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"no keys", nil, base},
		{"no colon", []string{"EDGECTL_SIGN_KEYS=" + secret1}, base},
		{"empty secret", []string{"EDGECTL_SIGN_KEYS=k1:"}, base},
		{"duplicate", []string{"EDGECTL_SIGN_KEYS=k1:" + secret1 + ",k1:" + secret2, "EDGECTL_SIGN_KID=k1"}, base},
		{"short secret", []string{"EDGECTL_SIGN_KEYS=k1:Zq7xW"}, base},
		{"bad kid", []string{"EDGECTL_SIGN_KEYS=k/1:" + secret1}, base},
		{"two keys, no kid", []string{"EDGECTL_SIGN_KEYS=k1:" + secret1 + ",k2:" + secret2}, base},
		{"unknown kid", []string{"EDGECTL_SIGN_KEYS=k1:" + secret1, "EDGECTL_SIGN_KID=k9"}, base},
		{"no url", signEnv, []string{"-ttl", "1h"}},
		{"no ttl", signEnv, []string{"-url", "https://dl.example.com/x"}},
		{"negative ttl", signEnv, []string{"-url", "https://dl.example.com/x", "-ttl", "-1h"}},
		{"relative url", signEnv, []string{"-url", "/download/1", "-ttl", "1h"}},
		{"ftp url", signEnv, []string{"-url", "ftp://dl.example.com/x", "-ttl", "1h"}},
		{"userinfo", signEnv, []string{"-url", "https://u:p@dl.example.com/x", "-ttl", "1h"}},
		{"already signed", signEnv, []string{"-url", "https://dl.example.com/x?sig=abc", "-ttl", "1h"}},
		{"bad ip", signEnv, append(base, "-ip", "10.0.0.300")},
		{"bad method", signEnv, append(base, "-method", "GET X")},
		{"extra argument", signEnv, append(base, "extra")},
	} {
		code, out, errs := runSign(t, tc.env, tc.args...)
		if code != 2 || out != "" {
			t.Errorf("%s: exit %d, stdout %q; want 2 and nothing", tc.name, code, out)
		}
		// Errors never show a secret.
		if strings.Contains(errs, secret1) || strings.Contains(errs, secret2) || strings.Contains(errs, "Zq7xW") {
			t.Errorf("%s: stderr shows a secret: %q", tc.name, errs)
		}
	}
}

func TestParseSignKeys(t *testing.T) {
	for _, bad := range []string{"", ",", "k1", ":s", "k1:", " k1 : ", "k1:a,k1:b", "k1:a,,k2"} {
		if m, err := parseSignKeys(bad); err == nil {
			t.Errorf("parseSignKeys(%q) = %v, want an error", bad, m)
		}
	}
	for _, tc := range []struct {
		in   string
		want map[string]string
	}{
		{"k1:s1", map[string]string{"k1": "s1"}},
		{" k1 : s1 , k2:s:2,", map[string]string{"k1": "s1", "k2": "s:2"}},
	} {
		got, err := parseSignKeys(tc.in)
		if err != nil || !maps.Equal(got, tc.want) {
			t.Errorf("parseSignKeys(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseSignKeys(f *testing.F) {
	for _, s := range []string{"k1:s1", " k1 : s1 , k2:s:2,", "k1", "a:b,a:c", ":", ",,,x:y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseSignKeys(s)
		if err != nil {
			return
		}
		if len(m) == 0 {
			t.Fatal("no keys and no error")
		}
		var items []string
		for _, kid := range slices.Sorted(maps.Keys(m)) {
			sec := m[kid]
			if kid == "" || sec == "" || strings.ContainsAny(kid, ":,") || strings.Contains(sec, ",") ||
				kid != strings.TrimSpace(kid) || sec != strings.TrimSpace(sec) {
				t.Fatalf("parseSignKeys(%q): bad entry %q:%q", s, kid, sec)
			}
			items = append(items, kid+":"+sec)
		}
		again, err := parseSignKeys(strings.Join(items, ","))
		if err != nil || !maps.Equal(again, m) {
			t.Fatalf("parseSignKeys(%q) = %v; reparsed as %v, %v", s, m, again, err)
		}
	})
}

// FuzzSignURL: every URL signURL accepts comes back as a URL whose request
// (Host header and path exactly as spelled) verifies.
func FuzzSignURL(f *testing.F) {
	for _, s := range []string{
		"https://dl.example.com/download/1", "http://[::1]:8080/d/a%2Fb?x=1", "http://h", "http://h/a b/ü?q#f",
		"http://h/%zz", "http://H:1/a;b/c?expires", "http://h/?a=1&&b", "http://h/a%20b%2fc+",
	} {
		f.Add(s)
	}
	s := proxySigner(f, false)
	now := time.Now()
	f.Fuzz(func(t *testing.T, raw string) {
		out, err := signURL(s, raw, "GET", now.Add(time.Minute), "")
		if err != nil {
			return
		}
		r := requestFor(t, out)
		if err := r.verify(s, "GET", "", now); err != nil {
			t.Fatalf("signURL(%q) = %q: request %+v does not verify: %v", raw, out, r, err)
		}
	})
}
