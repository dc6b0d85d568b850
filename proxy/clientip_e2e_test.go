package proxy_test

// End-to-end tests of client identity (internal/clientip) through the real
// listener and a real redis-server: which address auth, the failure
// throttle and the access log see behind a load balancer, whatever limits
// are configured, for each forwarding source, the PROXY protocol included
// (raw sockets).

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/internal/clientip"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/proxy"
)

// loopbackBalancer trusts 127.0.0.1, where test requests come from, as a
// load balancer that forwards through header ("" = the default).
func loopbackBalancer(t testing.TB, header string) *clientip.Resolver {
	t.Helper()
	r, err := clientip.New(clientip.Config{TrustedProxies: []string{"127.0.0.1"}, Header: header})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestClientIPE2EThrottleBehindBalancer (issue 9, defect 3): with trusted
// proxies configured and no rate limit at all, one client behind the
// balancer who sends bad tokens is throttled alone; other clients behind
// the same balancer, and the balancer itself, keep working.
func TestClientIPE2EThrottleBehindBalancer(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, testenv.Redis(t).Addr)
	cfg := testAuthConfig()
	cfg.FailuresPerMinute = 20 // the default
	v := e.verifier(cfg)
	// No Limiter: no rate limit is set.
	p := e.start(proxy.Config{DownloadAuth: proxy.AuthToken}, proxy.Deps{Tokens: v, ClientIP: loopbackBalancer(t, "")})
	u := p.URL + "/download/" + fileOne
	tok := e.create(v, auth.TokenSpec{FileID: fileOne})

	const attacker = "203.0.113.66"
	throttled := false
	for i := 0; i < 25 && !throttled; i++ {
		resp, body := do(t, e.c, http.MethodGet, u, "Authorization", "Bearer "+e.newToken(), "X-Forwarded-For", attacker)
		switch resp.StatusCode {
		case 429:
			wantAuthError(t, resp, body, 429, auth.CodeTooManyAttempts)
			throttled = true
		default:
			wantAuthError(t, resp, body, 401, auth.CodeTokenInvalid)
		}
	}
	if !throttled {
		t.Fatal("25 bad tokens from one client were never throttled")
	}
	resp, body := do(t, e.c, http.MethodGet, u, "Authorization", "Bearer "+tok, "X-Forwarded-For", attacker)
	wantAuthError(t, resp, body, 429, auth.CodeTooManyAttempts)
	for _, hdr := range [][]string{
		{"X-Forwarded-For", "198.51.100.7"},
		{"X-Forwarded-For", "2001:db8:2::1"},
		{"X-Forwarded-For", attacker + ", 198.51.100.8"}, // the attacker as a forged hop
		nil, // the balancer's own requests (health checks)
	} {
		resp, body := do(t, e.c, http.MethodGet, u, append([]string{"Authorization", "Bearer " + tok}, hdr...)...)
		if resp.StatusCode != 200 || !bytes.Equal(body, e.f1) {
			t.Errorf("%q after another client's failures: %d %s, want 200", hdr, resp.StatusCode, body)
		}
	}
	if !strings.Contains(e.log.String(), "remote="+attacker) {
		t.Errorf("the access log does not name the forwarded client %s", attacker)
	}
}

// TestClientIPE2EForwardedHeaders (issue 9, defect 4): only the configured
// source is believed, every X-Forwarded-For line counts, right to left.
func TestClientIPE2EForwardedHeaders(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, testenv.Redis(t).Addr)
	v := e.verifier(testAuthConfig())
	tok := e.create(v, auth.TokenSpec{FileID: fileOne, AllowedIP: []string{"198.51.100.0/24", "2001:db8::/32"}})
	bearer := []string{"Authorization", "Bearer " + tok}
	check := func(t *testing.T, u string, want int, hdr ...string) {
		t.Helper()
		resp, body := do(t, e.c, http.MethodGet, u, append(bearer, hdr...)...)
		if want == 200 {
			if resp.StatusCode != 200 {
				t.Errorf("%q: %d %s, want 200", hdr, resp.StatusCode, body)
			}
			return
		}
		if resp.StatusCode != 403 {
			t.Errorf("%q: status %d, want 403", hdr, resp.StatusCode)
			return
		}
		wantAuthError(t, resp, body, 403, auth.CodeIPNotAllowed)
	}

	t.Run("x-forwarded-for", func(t *testing.T) {
		u := e.start(proxy.Config{DownloadAuth: proxy.AuthToken}, proxy.Deps{Tokens: v, ClientIP: loopbackBalancer(t, "")}).URL + "/download/" + fileOne
		// HAProxy's option forwardfor appends a line: the client's forged
		// line comes first, the balancer's (the real client) last.
		check(t, u, 403, "X-Forwarded-For", "198.51.100.7", "X-Forwarded-For", "203.0.113.5")
		check(t, u, 200, "X-Forwarded-For", "203.0.113.5", "X-Forwarded-For", "198.51.100.7")
		check(t, u, 403, "X-Forwarded-For", "198.51.100.7, 203.0.113.5")
		// X-Real-IP is not the configured source: a forged one is ignored.
		check(t, u, 403, "X-Real-IP", "198.51.100.7")
		check(t, u, 403, "X-Real-IP", "198.51.100.7", "X-Forwarded-For", "203.0.113.5")
		check(t, u, 403, "Forwarded", "for=198.51.100.7")
	})
	t.Run("x-real-ip", func(t *testing.T) {
		u := e.start(proxy.Config{DownloadAuth: proxy.AuthToken}, proxy.Deps{Tokens: v, ClientIP: loopbackBalancer(t, "x-real-ip")}).URL + "/download/" + fileOne
		check(t, u, 200, "X-Real-IP", "198.51.100.7")
		check(t, u, 403, "X-Real-IP", "198.51.100.7", "X-Real-IP", "203.0.113.5")
		check(t, u, 403, "X-Forwarded-For", "198.51.100.7")
	})
	t.Run("forwarded", func(t *testing.T) {
		u := e.start(proxy.Config{DownloadAuth: proxy.AuthToken}, proxy.Deps{Tokens: v, ClientIP: loopbackBalancer(t, "forwarded")}).URL + "/download/" + fileOne
		check(t, u, 200, "Forwarded", `for="[2001:db8:cafe::17]:4711";proto=http`)
		check(t, u, 200, "Forwarded", "for=203.0.113.5, for=198.51.100.7")
		check(t, u, 403, "Forwarded", "for=198.51.100.7, for=203.0.113.5")
		check(t, u, 403, "Forwarded", "for=198.51.100.7", "Forwarded", "for=unknown")
		check(t, u, 403, "X-Forwarded-For", "198.51.100.7")
	})
	t.Run("untrusted peer", func(t *testing.T) {
		r, err := clientip.New(clientip.Config{TrustedProxies: []string{"192.0.2.1"}})
		if err != nil {
			t.Fatal(err)
		}
		u := e.start(proxy.Config{DownloadAuth: proxy.AuthToken}, proxy.Deps{Tokens: v, ClientIP: r}).URL + "/download/" + fileOne
		check(t, u, 403, "X-Forwarded-For", "198.51.100.7")
		check(t, u, 403, "X-Real-IP", "198.51.100.7")
	})
}

// proxyV2 is a PROXY protocol v2 header for TCP over IPv4 from src to dst.
func proxyV2(src, dst netip.AddrPort) string {
	var b bytes.Buffer
	b.WriteString("\r\n\r\n\x00\r\nQUIT\n")
	b.Write([]byte{0x21, 0x11}) // v2 PROXY; AF_INET STREAM
	binary.Write(&b, binary.BigEndian, uint16(12))
	s, d := src.Addr().As4(), dst.Addr().As4()
	b.Write(s[:])
	b.Write(d[:])
	binary.Write(&b, binary.BigEndian, src.Port())
	binary.Write(&b, binary.BigEndian, dst.Port())
	return b.String()
}

// rawFrom sends req from the loopback address local and returns the
// response's status line, or "" when the server closed the connection
// without answering.
func rawFrom(t *testing.T, addr, local, req string) string {
	t.Helper()
	c := testenv.Dial(t, addr, local)
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		return ""
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return ""
	}
	return strings.TrimSpace(line)
}

// TestClientIPE2EProxyProtocol: with header proxy-protocol, a trusted
// balancer's PROXY v1 or v2 header sets the client's address; a trusted
// peer must send one; an untrusted peer that sends one is refused, and
// one that does not is a direct client.
func TestClientIPE2EProxyProtocol(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, testenv.Redis(t).Addr)
	v := e.verifier(testAuthConfig())
	tok := e.create(v, auth.TokenSpec{FileID: fileOne, AllowedIP: []string{"198.51.100.7", "127.0.0.1"}})
	r, err := clientip.New(clientip.Config{TrustedProxies: []string{"127.0.0.2"}, Header: "proxy-protocol"})
	if err != nil {
		t.Fatal(err)
	}
	p := e.start(proxy.Config{DownloadAuth: proxy.AuthToken}, proxy.Deps{Tokens: v, ClientIP: r})
	get := rawGet("GET", "/download/"+fileOne, "edge.test", "Authorization: Bearer "+tok, "X-Forwarded-For: 198.51.100.7")
	v1 := func(src string) string { return "PROXY TCP4 " + src + " 127.0.0.1 4000 80\r\n" }
	v2 := func(src string) string {
		return proxyV2(netip.AddrPortFrom(netip.MustParseAddr(src), 4000), netip.MustParseAddrPort("127.0.0.1:80"))
	}

	for _, tc := range []struct {
		name, local, req, want string
	}{
		{"trusted, v1", "127.0.0.2", v1("198.51.100.7") + get, "HTTP/1.1 200 OK"},
		{"trusted, v2", "127.0.0.2", v2("198.51.100.7") + get, "HTTP/1.1 200 OK"},
		{"trusted, v1, other client", "127.0.0.2", v1("203.0.113.5") + get, "HTTP/1.1 403 Forbidden"},
		{"trusted, v2, other client", "127.0.0.2", v2("203.0.113.5") + get, "HTTP/1.1 403 Forbidden"},
		{"trusted, no header", "127.0.0.2", get, ""},
		{"untrusted, v1", "127.0.0.1", v1("198.51.100.7") + get, ""},
		{"untrusted, v2", "127.0.0.1", v2("198.51.100.7") + get, ""},
		// A direct client: its own address (allowed), the forged
		// X-Forwarded-For ignored.
		{"untrusted, no header", "127.0.0.1", get, "HTTP/1.1 200 OK"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rawFrom(t, p.Addr, tc.local, tc.req); got != tc.want {
				t.Errorf("status line %q, want %q (\"\" = closed unanswered)", got, tc.want)
			}
		})
	}
	if !strings.Contains(e.log.String(), "remote=198.51.100.7") {
		t.Errorf("the access log does not name the PROXY protocol's client")
	}
}
