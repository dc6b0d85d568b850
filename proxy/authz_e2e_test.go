package proxy_test

// Tests of the authorization rules of issue 9: the configuration errors
// name real keys, a token is scoped to where it was minted, and on
// /download/ the token is checked before the catalog is consulted.

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/proxy"
)

// TestNewNamesRealConfigKeys: a route that needs a backend the edge lacks
// is refused at start with an error naming the configuration key that
// provides it (redis.addrs for the token store; there is no auth.redis).
func TestNewNamesRealConfigKeys(t *testing.T) {
	o := newDirOrigin(t, dlBucket)
	for _, tt := range []struct {
		name string
		cfg  proxy.Config
		want string
	}{
		{"download token", proxy.Config{DownloadBucket: dlBucket, DownloadAuth: proxy.AuthToken}, "redis.addrs"},
		{"route token", proxy.Config{Routes: []proxy.RouteConfig{{Hosts: []string{"premium.example.com"}, Bucket: dlBucket, Auth: proxy.AuthToken}}}, "redis.addrs"},
		{"download signed", proxy.Config{DownloadBucket: dlBucket, DownloadAuth: proxy.AuthSigned}, "auth.signer.keys"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := proxy.New(tt.cfg, proxy.Deps{Origin: o.Store})
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "auth.redis") {
				t.Fatalf("New: %v; want an error naming %s", err, tt.want)
			}
		})
	}
}

// TestAuthE2EAuthorizationField: the Bearer scheme is case-insensitive
// (RFC 9110 11.1) and may be followed by several spaces (11.4); a repeated
// or malformed Authorization field is a 400, never skipped in favour of
// another line, the query or the cookie. Requests are sent byte for byte.
func TestAuthE2EAuthorizationField(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, testenv.Redis(t).Addr)
	v := e.verifier(testAuthConfig())
	p := e.start(proxy.Config{DownloadAuth: proxy.AuthToken}, proxy.Deps{Tokens: v})
	tok := e.newToken()
	e.setString(tok, "file_id="+fileOne+"&user_id=9527", 300*time.Second)
	other := e.newToken()
	e.setString(other, "file_id="+fileTwo, 300*time.Second)
	target := "/download/" + fileOne

	for _, tt := range []struct {
		name   string
		query  string
		fields []string
		status int
		code   string // "" expects the file
	}{
		{"lowercase scheme", "", []string{"Authorization: bearer " + tok}, 200, ""},
		{"uppercase scheme", "", []string{"Authorization: BEARER " + tok}, 200, ""},
		{"several spaces", "", []string{"Authorization: Bearer   " + tok}, 200, ""},
		{"lowercase field name", "", []string{"authorization: bearer " + tok}, 200, ""},
		{"duplicate, good first", "", []string{"Authorization: Bearer " + tok, "Authorization: Bearer " + other}, 400, "duplicate_authorization"},
		{"duplicate, good second", "", []string{"Authorization: Bearer " + other, "Authorization: Bearer " + tok}, 400, "duplicate_authorization"},
		{"duplicate, same token", "", []string{"Authorization: Bearer " + tok, "Authorization: Bearer " + tok}, 400, "duplicate_authorization"},
		{"duplicate, other scheme", "?token=" + tok, []string{"Authorization: Basic Zm9vOmJhcg==", "Authorization: Basic Zm9vOmJhcg=="}, 400, "duplicate_authorization"},
		{"auth-params", "?token=" + tok, []string{`Authorization: Bearer realm="x"`}, 400, "bad_authorization"},
		{"two tokens", "", []string{"Authorization: Bearer " + tok + " " + tok}, 400, "bad_authorization"},
		{"other scheme leaves the query", "?token=" + tok, []string{"Authorization: Basic Zm9vOmJhcg=="}, 200, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, _ := rawExchange(t, p.Addr, http.MethodGet, rawGet(http.MethodGet, target+tt.query, p.Addr, tt.fields...))
			if tt.code == "" {
				wantBody(t, resp, body, e.f1)
				return
			}
			wantAuthError(t, resp, body, tt.status, tt.code)
		})
	}
	_ = auth.CodeTokenInvalid
}
