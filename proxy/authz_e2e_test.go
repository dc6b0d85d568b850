package proxy_test

// Tests of the authorization rules of issue 9: the configuration errors
// name real keys, a token is scoped to where it was minted, and on
// /download/ the token is checked before the catalog is consulted.

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
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
}

// TestAuthE2ETokenScope: a token opens only the namespace and bucket it
// was minted for. /download/ ids (catalog ids, keys of the download bucket)
// are one namespace; a host route needs the token's file_id to be
// "/<bucket>/<key>" (auth.ObjectFileID) for its own bucket.
//
// It fails before the fix: the host route checked the bare key, so the
// string-form token for /download/report.pdf opened report.pdf on
// premium.example.com, another bucket.
func TestAuthE2ETokenScope(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, testenv.Redis(t).Addr)
	const premium, public = "premium", "public"
	dl, prem, pub, nested := randBytes(201, 3000), randBytes(202, 4000), randBytes(203, 5000), randBytes(204, 6000)
	e.o.put(t, dlBucket, "report.pdf", dl)
	e.o.put(t, dlBucket, "premium/report.pdf", nested)
	e.o.put(t, dlBucket, "10086", e.f1)
	for _, b := range []string{premium, public} {
		if err := os.Mkdir(filepath.Join(e.o.Root, b), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.o.put(t, premium, "report.pdf", prem)
	e.o.put(t, public, "report.pdf", pub)
	v := e.verifier(testAuthConfig())
	p := e.start(proxy.Config{DownloadAuth: proxy.AuthToken, Routes: []proxy.RouteConfig{
		{Hosts: []string{"premium.example.com"}, Bucket: premium, Auth: proxy.AuthToken},
		{Hosts: []string{"public.example.com"}, Bucket: public, Auth: proxy.AuthToken},
	}}, proxy.Deps{Tokens: v})

	str := func(record string) string {
		tok := e.newToken()
		e.setString(tok, record, 300*time.Second)
		return tok
	}
	// The seed form of the issue, literally.
	seed := e.secret("abc123")
	if err := e.rdb.Do(context.Background(), "SET", "download:token:"+seed, "file_id=10086&user_id=9527", "EX", "300").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.rdb.Del(context.Background(), "download:token:"+seed) })

	dlTok := str("file_id=report.pdf")
	nestedTok := str("file_id=premium/report.pdf")
	premTok := str("file_id=" + url.QueryEscape(auth.ObjectFileID(premium, "report.pdf")))
	premHash := e.create(v, auth.TokenSpec{FileID: auth.ObjectFileID(premium, "report.pdf")})
	onPremium := []string{"Host", "premium.example.com"}
	onPublic := []string{"Host", "public.example.com"}

	for _, tt := range []struct {
		name string
		tok  string
		path string
		host []string
		want []byte // nil: 403 token_wrong_file
	}{
		{"seed form on /download/", seed, "/download/10086", nil, e.f1},
		{"download token on /download/", dlTok, "/download/report.pdf", nil, dl},
		{"download token on another bucket's host", dlTok, "/report.pdf", onPremium, nil},
		{"download token on a third bucket's host", dlTok, "/report.pdf", onPublic, nil},
		{"slashed download id on /download/", nestedTok, "/download/premium/report.pdf", nil, nested},
		{"slashed download id on the host of its prefix", nestedTok, "/report.pdf", onPremium, nil},
		{"scoped token on its host", premTok, "/report.pdf", onPremium, prem},
		{"scoped hash token on its host", premHash, "/report.pdf", onPremium, prem},
		{"scoped token on another bucket's host", premTok, "/report.pdf", onPublic, nil},
		{"scoped token on /download/", premTok, "/download/report.pdf", nil, nil},
		{"scoped hash token on /download/", premHash, "/download/report.pdf", nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hdr := append([]string{"Authorization", "Bearer " + tt.tok}, tt.host...)
			resp, body := do(t, e.c, http.MethodGet, p.URL+tt.path, hdr...)
			if tt.want == nil {
				wantAuthError(t, resp, body, 403, auth.CodeTokenWrongFile)
				return
			}
			wantBody(t, resp, body, tt.want)
		})
	}
}

// catalogEnv is an auth env with a catalog read through its own Redis
// client, whose commands are counted, holding one known id for dlBucket/f1.
type catalogEnv struct {
	*authEnv
	cat   *auth.Catalog
	reads *testenv.CommandCounter
	known string
}

func newCatalogEnv(t *testing.T, cfg auth.CatalogConfig) *catalogEnv {
	e := newAuthEnv(t, testenv.Redis(t).Addr)
	rc := newRedisClient(t, testenv.Redis(t).Addr)
	reads := testenv.Count(rc)
	cat, err := auth.NewCatalog(cfg, rc, e.logger)
	if err != nil {
		t.Fatal(err)
	}
	known := "doc-" + e.newToken()[:12]
	if err := cat.Put(context.Background(), auth.FileMeta{ID: known, Bucket: dlBucket, Key: fileOne, Filename: "one.bin"}); err != nil {
		t.Fatal(err)
	}
	return &catalogEnv{authEnv: e, cat: cat, reads: reads, known: known}
}

// TestCatalogE2ETokenFirst: on /download/ the token is checked against the
// requested id before the catalog is read, so without a valid token an
// existing and an unknown id get byte-identical answers; a token for an id
// the catalog does not know gets 404.
//
// It fails before the fix: the catalog was read first, so an unknown id
// answered 404 not_found and a known one 401.
func TestCatalogE2ETokenFirst(t *testing.T) {
	t.Parallel()
	e := newCatalogEnv(t, auth.CatalogConfig{})
	v := e.verifier(testAuthConfig())
	p := e.start(proxy.Config{DownloadAuth: proxy.AuthToken}, proxy.Deps{Catalog: e.cat, Tokens: v})
	unknown := "doc-" + e.newToken()[:12]
	knownTok := e.create(v, auth.TokenSpec{FileID: e.known})

	for _, tt := range []struct {
		name string
		hdr  []string
	}{
		{"no token", nil},
		{"unknown token", []string{"Authorization", "Bearer " + e.newToken()}},
		{"token for another id", []string{"Authorization", "Bearer " + e.create(v, auth.TokenSpec{FileID: "doc-other"})}},
		{"malformed Authorization", []string{"Authorization", "Bearer a b"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				rk, bk := do(t, e.c, method, p.URL+"/download/"+e.known, tt.hdr...)
				ru, bu := do(t, e.c, method, p.URL+"/download/"+unknown, tt.hdr...)
				if rk.StatusCode != ru.StatusCode || string(bk) != string(bu) {
					t.Errorf("%s: known id %d %q, unknown id %d %q; want the same answer", method, rk.StatusCode, bk, ru.StatusCode, bu)
				}
				for _, h := range []string{"WWW-Authenticate", "Retry-After", "Content-Type", "Content-Length", "Cache-Control"} {
					if rk.Header.Get(h) != ru.Header.Get(h) {
						t.Errorf("%s: %s %q for the known id, %q for the unknown one", method, h, rk.Header.Get(h), ru.Header.Get(h))
					}
				}
				if rk.StatusCode == 200 || rk.StatusCode == 404 {
					t.Errorf("%s: status %d without a valid token", method, rk.StatusCode)
				}
			}
		})
	}
	if n := e.reads.N("hgetall"); n != 0 {
		t.Errorf("%d catalog reads for unauthorised requests, want 0", n)
	}

	resp, body := do(t, e.c, http.MethodGet, p.URL+"/download/"+e.known, "Authorization", "Bearer "+knownTok)
	wantBody(t, resp, body, e.f1)
	resp, body = do(t, e.c, http.MethodGet, p.URL+"/download/"+unknown, "Authorization", "Bearer "+e.create(v, auth.TokenSpec{FileID: unknown}))
	wantError(t, resp, body, 404, "not_found")
}

// TestCatalogE2EEnumerationThrottled: guessing ids costs at most the
// failure limit in catalog reads per client and minute. With a bad token
// the catalog is never read; on an open route each unknown id counts as a
// failure, and past the limit the client gets 429 too_many_attempts before
// any read.
func TestCatalogE2EEnumerationThrottled(t *testing.T) {
	t.Parallel()
	e := newCatalogEnv(t, auth.CatalogConfig{})
	cfg := testAuthConfig()
	cfg.FailuresPerMinute = 20
	v := e.verifier(cfg)
	tokened := e.start(proxy.Config{DownloadAuth: proxy.AuthToken}, proxy.Deps{Catalog: e.cat, Tokens: v})
	bad := e.newToken()
	start := time.Now()
	for i := range 1000 {
		resp, body := do(t, e.c, http.MethodGet, tokened.URL+"/download/guess-"+strconv.Itoa(i), "Authorization", "Bearer "+bad)
		if resp.StatusCode != 401 && resp.StatusCode != 429 {
			t.Fatalf("guess %d: %d %s", i, resp.StatusCode, body)
		}
	}
	if n, max := e.reads.N("hgetall"), windows(start)*cfg.FailuresPerMinute; n > max {
		t.Errorf("1000 guesses with a bad token: %d catalog reads, want at most %d", n, max)
	}

	// An open route: its own verifier, so the limit starts afresh.
	e2 := newCatalogEnv(t, auth.CatalogConfig{})
	v2 := e2.verifier(cfg)
	open := e2.start(proxy.Config{}, proxy.Deps{Catalog: e2.cat, Failures: v2})
	start = time.Now()
	var notFound, throttled int
	for i := range 1000 {
		resp, body := do(t, e2.c, http.MethodGet, open.URL+"/download/guess-"+strconv.Itoa(i))
		switch resp.StatusCode {
		case 404:
			notFound++
		case 429:
			wantError(t, resp, body, 429, auth.CodeTooManyAttempts)
			throttled++
		default:
			t.Fatalf("guess %d: %d %s", i, resp.StatusCode, body)
		}
	}
	max := windows(start) * cfg.FailuresPerMinute
	if n := e2.reads.N("hgetall"); n > max || notFound > max || throttled == 0 {
		t.Errorf("1000 guesses on an open route: %d catalog reads, %d not_found, %d too_many_attempts; want at most %d reads",
			n, notFound, throttled, max)
	}
	// The limit is per client: the throttled client is refused even for a
	// known id, and must wait.
	resp, body := do(t, e2.c, http.MethodGet, open.URL+"/download/"+e2.known)
	wantError(t, resp, body, 429, auth.CodeTooManyAttempts)
	retryAfterSeconds(t, resp)
}

// windows is how many one-minute throttle windows may have begun since
// start (the first failure opens one): the limit applies per window, and a
// slow machine may cross into the next.
func windows(start time.Time) int {
	return 1 + int(time.Since(start)/time.Minute)
}

// TestCatalogE2ENegativeCache: an unknown id read once is answered from
// the catalog's memory afterwards, without a second HGETALL.
func TestCatalogE2ENegativeCache(t *testing.T) {
	t.Parallel()
	e := newCatalogEnv(t, auth.CatalogConfig{NegativeTTL: time.Hour})
	p := e.start(proxy.Config{}, proxy.Deps{Catalog: e.cat})
	unknown := "doc-missing"
	for range 3 {
		resp, body := do(t, e.c, http.MethodGet, p.URL+"/download/"+unknown)
		wantError(t, resp, body, 404, "not_found")
	}
	if n := e.reads.N("hgetall"); n != 1 {
		t.Fatalf("%d HGETALLs for three requests of one unknown id, want 1", n)
	}
	resp, body := do(t, e.c, http.MethodGet, p.URL+"/download/"+e.known)
	wantBody(t, resp, body, e.f1)
}
