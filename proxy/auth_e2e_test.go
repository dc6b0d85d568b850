package proxy_test

// End-to-end tests of download authorization through the real listener and
// a real redis-server: tokens in both record forms and in each place a
// client may put them, every refusal with its status and code, use
// counting, revocation across two edges, a Redis outage, throttling of
// guessers, signed URLs and the file catalog. Every test ends by checking
// that no token, signature or key reached the log.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/admin"
	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/proxy"
)

// authEnv is a local-directory origin, a Redis client and a log shared by
// the proxies and verifiers of one test. At cleanup, after every proxy has
// stopped (so every access log line is written), it fails the test if any
// registered secret appears in the log.
type authEnv struct {
	t      *testing.T
	o      *dirOrigin
	rdb    *redis.Client
	log    *testenv.LockedBuffer
	logger *slog.Logger
	c      *http.Client

	f1, f2 []byte // dlBucket/f1 and dlBucket/f2

	mu      sync.Mutex
	secrets []string
}

// Files of the auth fixture.
const (
	fileOne = "f1"
	fileTwo = "f2"
)

func newAuthEnv(t *testing.T, redisAddr string) *authEnv {
	t.Helper()
	e := &authEnv{t: t, log: new(testenv.LockedBuffer), c: newClient(t)}
	e.logger = slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// Registered first, so it runs last: after the proxies have drained.
	t.Cleanup(e.checkLog)
	e.o = newDirOrigin(t, dlBucket)
	e.f1, e.f2 = randBytes(101, 100<<10), randBytes(102, 10<<10)
	e.o.put(t, dlBucket, fileOne, e.f1)
	e.o.put(t, dlBucket, fileTwo, e.f2)
	e.rdb = newRedisClient(t, redisAddr)
	return e
}

// newRedisClient connects as the proxy does (context deadlines honoured),
// with no retries so that an outage fails at once.
func newRedisClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	return testenv.RedisClient(t, addr, testenv.NoRetries)
}

func (e *authEnv) checkLog() {
	e.mu.Lock()
	defer e.mu.Unlock()
	logText := e.log.String()
	if len(e.secrets) == 0 {
		e.t.Errorf("log check: no secrets were registered")
	}
	for _, s := range e.secrets {
		if strings.Contains(logText, s) {
			e.t.Errorf("the log contains the secret %q:\n%s", auth.Redact(s), logText)
		}
	}
}

// secret registers s as text that must never be logged, and returns it.
func (e *authEnv) secret(s string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.secrets = append(e.secrets, s)
	return s
}

// testAuthConfig is the verifier configuration of most tests: a Redis
// budget generous enough for -race on a loaded machine, and no throttle
// (tests that refuse on purpose would otherwise trip it).
func testAuthConfig() auth.Config {
	return auth.Config{Budget: 5 * time.Second, FailuresPerMinute: -1}
}

func (e *authEnv) verifier(cfg auth.Config) *auth.Verifier {
	e.t.Helper()
	v, err := auth.New(cfg, e.rdb, e.logger)
	if err != nil {
		e.t.Fatalf("auth.New: %v", err)
	}
	e.t.Cleanup(func() { v.Close() })
	// Once its listener has subscribed and purged the cache, revocations
	// reach it and what the test's requests cache stays cached.
	select {
	case <-v.Ready():
	case <-time.After(10 * time.Second):
		e.t.Fatal("verifier's revocation listener not ready within 10s")
	}
	return v
}

// start runs a proxy on the env's origin and log. A zero DownloadBucket
// means dlBucket unless a catalog is given.
func (e *authEnv) start(cfg proxy.Config, deps proxy.Deps) *testProxy {
	e.t.Helper()
	if cfg.DownloadBucket == "" && deps.Catalog == nil {
		cfg.DownloadBucket = dlBucket
	}
	deps.Origin = e.o.Store
	deps.Logger = e.logger
	return startProxy(e.t, cfg, deps)
}

// newToken returns a fresh random token (registered as a secret) that has
// no record yet.
func (e *authEnv) newToken() string {
	var b [24]byte
	rand.Read(b[:])
	return e.secret(base64.RawURLEncoding.EncodeToString(b[:]))
}

// setString stores a string-form record for tok, as existing backends do:
// SET download:token:<tok> "<record>" EX <ttl>.
func (e *authEnv) setString(tok, record string, ttl time.Duration) {
	e.t.Helper()
	if err := e.rdb.Set(context.Background(), "download:token:"+tok, record, ttl).Err(); err != nil {
		e.t.Fatal(err)
	}
}

// create stores a hash-form record through the verifier.
func (e *authEnv) create(v *auth.Verifier, spec auth.TokenSpec) string {
	e.t.Helper()
	tok, _, err := v.Create(context.Background(), spec)
	if err != nil {
		e.t.Fatalf("Create: %v", err)
	}
	return e.secret(tok)
}

// wantBody checks a 200 with exactly want as the body.
func wantBody(t testing.TB, resp *http.Response, body, want []byte) {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200 (body %.200q)", resp.StatusCode, body)
	}
	if sha(body) != sha(want) {
		t.Fatalf("body: %d bytes, sha %s; want %d bytes, sha %s", len(body), sha(body)[:12], len(want), sha(want)[:12])
	}
}

// wantAuthError checks a refusal, plus the headers RFC 6750 and RFC 9110
// require: WWW-Authenticate on 401, Retry-After when the client may retry.
func wantAuthError(t testing.TB, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	wantError(t, resp, body, status, code)
	if got := resp.Header.Get("WWW-Authenticate"); (status == 401) != (got != "") {
		t.Errorf("%s: WWW-Authenticate %q", code, got)
	} else if status == 401 && !strings.HasPrefix(got, "Bearer") {
		t.Errorf("%s: WWW-Authenticate %q, want the Bearer scheme", code, got)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s: Cache-Control %q, want no-store", code, cc)
	}
}

// retryAfterSeconds parses Retry-After as delta-seconds, failing the test
// when it is absent or not a positive number.
func retryAfterSeconds(t testing.TB, resp *http.Response) int {
	t.Helper()
	v := resp.Header.Get("Retry-After")
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("Retry-After %q, want positive delta-seconds", v)
	}
	return n
}

func TestAuthE2ETokenPlaces(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, testenv.Redis(t).Addr)
	v := e.verifier(testAuthConfig())
	p := e.start(proxy.Config{DownloadAuth: proxy.AuthToken}, proxy.Deps{Tokens: v})
	u := p.URL + "/download/" + fileOne

	forms := map[string]func() string{
		"string": func() string {
			tok := e.newToken()
			e.setString(tok, "file_id="+fileOne+"&user_id=9527", 300*time.Second)
			return tok
		},
		"hash": func() string { return e.create(v, auth.TokenSpec{FileID: fileOne, UserID: "9527"}) },
	}
	for form, mk := range forms {
		t.Run(form, func(t *testing.T) {
			tok := mk()
			for _, tt := range []struct {
				name string
				url  string
				hdr  []string
			}{
				{"bearer", u, []string{"Authorization", "Bearer " + tok}},
				{"query", u + "?token=" + url.QueryEscape(tok), nil},
				{"cookie", u, []string{"Cookie", "download_token=" + tok}},
				// Authorization wins over the query, the query over the cookie.
				{"bearer-over-query", u + "?token=bogus" + form, []string{"Authorization", "Bearer " + tok}},
				{"query-over-cookie", u + "?token=" + url.QueryEscape(tok), []string{"Cookie", "download_token=bogus"}},
			} {
				resp, body := do(t, e.c, http.MethodGet, tt.url, tt.hdr...)
				if resp.StatusCode != 200 {
					t.Errorf("%s: status %d (%s)", tt.name, resp.StatusCode, body)
					continue
				}
				wantBody(t, resp, body, e.f1)
			}
			// The order is real: a bad Authorization is not rescued by a
			// good query token.
			resp, body := do(t, e.c, http.MethodGet, u+"?token="+url.QueryEscape(tok), "Authorization", "Bearer nosuchtoken")
			wantAuthError(t, resp, body, 401, auth.CodeTokenInvalid)
		})
	}
}

func TestAuthE2ERefusals(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, testenv.Redis(t).Addr)
	v := e.verifier(testAuthConfig())
	p := e.start(proxy.Config{DownloadAuth: proxy.AuthToken}, proxy.Deps{Tokens: v})
	u1, u2 := p.URL+"/download/"+fileOne, p.URL+"/download/"+fileTwo

	strTok := func(record string) string {
		tok := e.newToken()
		e.setString(tok, record, 300*time.Second)
		return tok
	}
	past := strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10)
	for _, tt := range []struct {
		name   string
		url    string
		tok    string // "" sends no token
		status int
		code   string // "" expects the file's bytes
	}{
		{"missing", u1, "", 401, auth.CodeTokenMissing},
		{"unknown", u1, e.newToken(), 401, auth.CodeTokenInvalid},
		{"expires_at in the past", u1, strTok("file_id=" + fileOne + "&expires_at=" + past), 401, auth.CodeTokenInvalid},
		{"malformed record", u1, strTok("user_id=1"), 401, auth.CodeTokenInvalid},
		{"max_uses in the string form", u1, strTok("file_id=" + fileOne + "&max_uses=1"), 401, auth.CodeTokenInvalid},
		{"wrong file string", u2, strTok("file_id=" + fileOne), 403, auth.CodeTokenWrongFile},
		{"wrong file hash", u2, e.create(v, auth.TokenSpec{FileID: fileOne}), 403, auth.CodeTokenWrongFile},
		{"ip outside string", u1, strTok("file_id=" + fileOne + "&allowed_ip=10.0.0.0/8,192.0.2.1"), 403, auth.CodeIPNotAllowed},
		{"ip outside hash", u1, e.create(v, auth.TokenSpec{FileID: fileOne, AllowedIP: []string{"10.0.0.0/8"}}), 403, auth.CodeIPNotAllowed},
		{"ip inside string", u1, strTok("file_id=" + fileOne + "&allowed_ip=10.0.0.0/8,127.0.0.0/8"), 200, ""},
		{"ip inside hash", u1, e.create(v, auth.TokenSpec{FileID: fileOne, AllowedIP: []string{"127.0.0.0/8"}}), 200, ""},
		{"exact ip hash", u1, e.create(v, auth.TokenSpec{FileID: fileOne, AllowedIP: []string{"127.0.0.1"}}), 200, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.tok != "" {
				hdr = []string{"Authorization", "Bearer " + tt.tok}
			}
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				resp, body := do(t, e.c, method, tt.url, hdr...)
				if tt.code == "" {
					if method == http.MethodGet {
						wantBody(t, resp, body, e.f1)
					} else if resp.StatusCode != 200 || resp.ContentLength != int64(len(e.f1)) {
						t.Errorf("HEAD: status %d, length %d", resp.StatusCode, resp.ContentLength)
					}
					continue
				}
				if method == http.MethodHead {
					if resp.StatusCode != tt.status || resp.Header.Get("Content-Disposition") != "" {
						t.Errorf("HEAD: status %d, want %d; headers %v", resp.StatusCode, tt.status, resp.Header)
					}
					continue
				}
				wantAuthError(t, resp, body, tt.status, tt.code)
				if resp.Header.Get("ETag") != "" || resp.Header.Get("Content-Disposition") != "" {
					t.Errorf("a refusal reveals the file's headers: %v", resp.Header)
				}
			}
		})
	}
}

// TestAuthE2EExpiredByTTL: a string-form token dies with its key. Once the
// key is gone the proxy refuses it, whether or not the verifier had cached
// it while it was alive (the cached entry carries the key's TTL).
func TestAuthE2EExpiredByTTL(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, testenv.Redis(t).Addr)
	cfg := testAuthConfig()
	cfg.CacheTTL = time.Minute // the cache must not outlive the key
	v := e.verifier(cfg)
	p := e.start(proxy.Config{DownloadAuth: proxy.AuthToken}, proxy.Deps{Tokens: v})
	u := p.URL + "/download/" + fileOne
	ctx := context.Background()

	keyGone := func(tok string) func() bool {
		return func() bool {
			n, err := e.rdb.Exists(ctx, "download:token:"+tok).Result()
			return err == nil && n == 0
		}
	}

	t.Run("never used", func(t *testing.T) {
		tok := e.newToken()
		e.setString(tok, "file_id="+fileOne, 300*time.Second)
		if err := e.rdb.PExpire(ctx, "download:token:"+tok, 50*time.Millisecond).Err(); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 5*time.Second, "the key expired", keyGone(tok))
		resp, body := do(t, e.c, http.MethodGet, u, "Authorization", "Bearer "+tok)
		wantAuthError(t, resp, body, 401, auth.CodeTokenInvalid)
	})
	t.Run("cached while alive", func(t *testing.T) {
		tok := e.newToken()
		e.setString(tok, "file_id="+fileOne, 300*time.Second)
		// 5 s: time for the first request on a loaded machine.
		if err := e.rdb.PExpire(ctx, "download:token:"+tok, 5*time.Second).Err(); err != nil {
			t.Fatal(err)
		}
		resp, body := do(t, e.c, http.MethodGet, u, "Authorization", "Bearer "+tok)
		wantBody(t, resp, body, e.f1)
		testenv.WaitFor(t, 15*time.Second, "the key expired", keyGone(tok))
		resp, body = do(t, e.c, http.MethodGet, u, "Authorization", "Bearer "+tok)
		wantAuthError(t, resp, body, 401, auth.CodeTokenInvalid)
	})
}

// TestAuthE2EMaxUses: max_uses counts download sessions, not requests
// (auth/doc.go, "What counts as a use"). One client's 50 parallel requests
// are one session; a new session (another network, or the same client after
// the idle window) is refused with uses_exhausted, and refusals do not end
// the open session.
func TestAuthE2EMaxUses(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, testenv.Redis(t).Addr)
	ctx := context.Background()
	// serve starts a proxy whose verifier has the given idle window. It
	// trusts the loopback as a load balancer, so X-Forwarded-For gives
	// requests another client network.
	serve := func(idle time.Duration) (*auth.Verifier, string) {
		cfg := testAuthConfig()
		cfg.SessionIdle = idle
		v := e.verifier(cfg)
		p := e.start(proxy.Config{DownloadAuth: proxy.AuthToken}, proxy.Deps{Tokens: v, ClientIP: loopbackBalancer(t, "")})
		return v, p.URL + "/download/" + fileOne
	}

	uses := func(tok string) map[string]string {
		h, err := e.rdb.HGetAll(ctx, "download:token:"+tok).Result()
		if err != nil {
			t.Fatal(err)
		}
		return h
	}

	t.Run("one session, many requests", func(t *testing.T) {
		v, u := serve(10 * time.Minute)
		tok := e.create(v, auth.TokenSpec{FileID: fileOne, MaxUses: 1})
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
		t.Cleanup(c.CloseIdleConnections)
		const n = 50
		type result struct {
			status int
			sha    string
			err    error
		}
		results := make([]result, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				req, _ := http.NewRequest(http.MethodGet, u, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				if i%2 == 1 { // download managers mix ranges in
					req.Header.Set("Range", "bytes=1000-")
				}
				resp, err := c.Do(req)
				if err != nil {
					results[i].err = err
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				results[i] = result{resp.StatusCode, sha(b), err}
			})
		}
		close(start)
		wg.Wait()
		for i, r := range results {
			want, wantSHA := 200, sha(e.f1)
			if i%2 == 1 {
				want, wantSHA = 206, sha(e.f1[1000:])
			}
			if r.err != nil || r.status != want || r.sha != wantSHA {
				t.Errorf("request %d: status %d, err %v, body ok %v; want %d", i, r.status, r.err, r.sha == wantSHA, want)
			}

		}
		if t.Failed() {
			logRefusals(t, e.log.String())
		}
		if h := uses(tok); h["uses"] != "1" {
			t.Errorf("uses = %q after one session of %d requests, want 1 (hash %v)", h["uses"], n, h)
		}

		// Another network is another session: refused, and not counted.
		resp, body := do(t, e.c, http.MethodGet, u, "Authorization", "Bearer "+tok, "X-Forwarded-For", "198.51.100.7")
		wantAuthError(t, resp, body, 403, auth.CodeUsesExhausted)
		// The open session keeps working.
		resp, body = do(t, e.c, http.MethodGet, u, "Authorization", "Bearer "+tok)
		wantBody(t, resp, body, e.f1)
		if h := uses(tok); h["uses"] != "1" {
			t.Errorf("uses = %q after a refusal, want 1", h["uses"])
		}
	})

	t.Run("idle window", func(t *testing.T) {
		const idle = time.Second
		v, u := serve(idle)
		tok := e.create(v, auth.TokenSpec{FileID: fileOne, MaxUses: 1})
		for range 2 { // the second is within the window: free
			resp, body := do(t, e.c, http.MethodGet, u, "Authorization", "Bearer "+tok)
			wantBody(t, resp, body, e.f1)
		}
		// Wait until Redis says the session has been idle for longer than
		// SessionIdle (its last-seen time is in the token's hash).
		testenv.WaitFor(t, 10*time.Second, "the session went idle", func() bool {
			var last int64
			for k, val := range uses(tok) {
				if strings.HasPrefix(k, "session_") {
					n, _ := strconv.ParseInt(val, 10, 64)
					last = max(last, n)
				}
			}
			return last > 0 && time.Now().UnixMilli()-last > idle.Milliseconds()+100
		})
		resp, body := do(t, e.c, http.MethodGet, u, "Authorization", "Bearer "+tok)
		wantAuthError(t, resp, body, 403, auth.CodeUsesExhausted)
	})

	t.Run("two uses", func(t *testing.T) {
		v, u := serve(10 * time.Minute)
		tok := e.create(v, auth.TokenSpec{FileID: fileOne, MaxUses: 2})
		for _, xff := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.1"} {
			resp, body := do(t, e.c, http.MethodGet, u, "Authorization", "Bearer "+tok, "X-Forwarded-For", xff)
			wantBody(t, resp, body, e.f1)
		}
		resp, body := do(t, e.c, http.MethodGet, u, "Authorization", "Bearer "+tok, "X-Forwarded-For", "198.51.100.3")
		wantAuthError(t, resp, body, 403, auth.CodeUsesExhausted)
	})
}

// logRefusals shows the log lines of refused requests, for diagnosis.
func logRefusals(t testing.TB, log string) {
	t.Helper()
	for l := range strings.SplitSeq(log, "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "status=4") || strings.Contains(l, "status=5") {
			t.Log(l)
		}
	}
}

// TestAuthE2ERevocation: a token revoked through one edge's admin API stops
// working on another edge that has it cached, within seconds (the
// revocation broadcast, milliseconds in practice: auth's
// BenchmarkRevokePropagation; B's cache would otherwise trust it for an
// hour).
func TestAuthE2ERevocation(t *testing.T) {
	// Not parallel: it bounds response times.
	e := newAuthEnv(t, testenv.Redis(t).Addr)
	cfg := testAuthConfig()
	cfg.RevokeChannel = "download:token:revoked:" + e.newToken()[:8] // this test's edges only
	cfg.CacheTTL = time.Hour
	vA, vB := e.verifier(cfg), e.verifier(cfg) // both listening
	pA := e.start(proxy.Config{DownloadAuth: proxy.AuthToken}, proxy.Deps{Tokens: vA})
	pB := e.start(proxy.Config{DownloadAuth: proxy.AuthToken}, proxy.Deps{Tokens: vB})

	adminKey := e.secret("admin-key-0123456789abcdef")
	api := admin.New(admin.Config{Key: adminKey}, admin.Deps{Tokens: vA, DownloadBase: pA.URL, Logger: e.logger})
	as := httptest.NewServer(api)
	t.Cleanup(as.Close)
	adminDo := func(method, path, body string) (*http.Response, []byte) {
		req, _ := http.NewRequest(method, as.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminKey)
		resp, err := e.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	resp, body := adminDo(http.MethodPost, "/v1/tokens", `{"file_id":"`+fileOne+`","user_id":"u1","ttl":"1h"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/tokens: %d %s", resp.StatusCode, body)
	}
	var created struct{ Token, URL string }
	if err := json.Unmarshal(body, &created); err != nil || created.Token == "" {
		t.Fatalf("POST /v1/tokens answer %s: %v", body, err)
	}
	tok := e.secret(created.Token)

	// The url the admin API hands out works on A; B learns the token and
	// caches it.
	resp, body = do(t, e.c, http.MethodGet, created.URL)
	wantBody(t, resp, body, e.f1)
	for range 2 {
		resp, body = do(t, e.c, http.MethodGet, pB.URL+"/download/"+fileOne, "Authorization", "Bearer "+tok)
		wantBody(t, resp, body, e.f1)
	}

	// Control: B really answers from its cache, so only the broadcast can
	// make it refuse within the bound below. A key deleted behind the
	// verifiers' backs (no broadcast) is still served by B.
	ctl := e.create(vA, auth.TokenSpec{FileID: fileOne})
	resp, body = do(t, e.c, http.MethodGet, pB.URL+"/download/"+fileOne, "Authorization", "Bearer "+ctl)
	wantBody(t, resp, body, e.f1)
	if err := e.rdb.Del(context.Background(), "download:token:"+ctl).Err(); err != nil {
		t.Fatal(err)
	}
	resp, body = do(t, e.c, http.MethodGet, pB.URL+"/download/"+fileOne, "Authorization", "Bearer "+ctl)
	wantBody(t, resp, body, e.f1)

	resp, body = adminDo(http.MethodDelete, "/v1/tokens/"+url.PathEscape(tok), "")
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE /v1/tokens: %d %s", resp.StatusCode, body)
	}
	revoked := time.Now()
	resp, body = do(t, e.c, http.MethodGet, pA.URL+"/download/"+fileOne, "Authorization", "Bearer "+tok)
	wantAuthError(t, resp, body, 401, auth.CodeTokenInvalid)

	testenv.WaitFor(t, 10*time.Second, "edge B refuses the revoked token", func() bool {
		resp, body = do(t, e.c, http.MethodGet, pB.URL+"/download/"+fileOne, "Authorization", "Bearer "+tok)
		return resp.StatusCode != 200
	})
	wantAuthError(t, resp, body, 401, auth.CodeTokenInvalid)
	t.Logf("edge B refused the revoked token after %v", time.Since(revoked))

	resp, body = adminDo(http.MethodDelete, "/v1/tokens/"+url.PathEscape(tok), "")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "token_not_found") {
		t.Errorf("second DELETE: %d %s, want 404 token_not_found", resp.StatusCode, body)
	}
}

// TestAuthE2ERedisDown: with the token store gone, token routes fail closed
// at once with 503 auth_unavailable and a Retry-After, and the same proxy
// serves again when Redis is back.
func TestAuthE2ERedisDown(t *testing.T) {
	// Not parallel: it bounds response times.
	r := testenv.NewRedis(t)
	e := newAuthEnv(t, r.Addr)
	cfg := testAuthConfig()
	cfg.Budget = 250 * time.Millisecond
	cfg.CacheTTL = -1 // every request asks Redis
	v := e.verifier(cfg)
	p := e.start(proxy.Config{DownloadAuth: proxy.AuthToken}, proxy.Deps{Tokens: v})
	u := p.URL + "/download/" + fileOne
	tok := e.newToken()
	e.setString(tok, "file_id="+fileOne, time.Hour)
	resp, body := do(t, e.c, http.MethodGet, u, "Authorization", "Bearer "+tok)
	wantBody(t, resp, body, e.f1)

	r.Stop(t)
	for i := range 5 {
		start := time.Now()
		resp, body := do(t, e.c, http.MethodGet, u, "Authorization", "Bearer "+tok)
		took := time.Since(start)
		wantAuthError(t, resp, body, 503, auth.CodeAuthUnavailable)
		if n := retryAfterSeconds(t, resp); n != 2 {
			t.Errorf("Retry-After %d, want the verifier's 2 s", n)
		}
		// A refused dial fails at once and the budget caps a slow one;
		// 5 s (20 budgets) catches a request that waits for Redis anyway.
		if took > 5*time.Second {
			t.Errorf("request %d during the outage took %v", i, took)
		}
	}
	// Not-yet-known tokens fail closed too, not with token_invalid.
	resp, body = do(t, e.c, http.MethodGet, u, "Authorization", "Bearer "+e.newToken())
	wantAuthError(t, resp, body, 503, auth.CodeAuthUnavailable)

	r.Start(t)
	e.setString(tok, "file_id="+fileOne, time.Hour) // Start comes back empty
	testenv.WaitFor(t, 10*time.Second, "the proxy serves again after Redis returned", func() bool {
		resp, body := do(t, e.c, http.MethodGet, u, "Authorization", "Bearer "+tok)
		return resp.StatusCode == 200 && sha(body) == sha(e.f1)
	})
}

// TestAuthE2ETooManyAttempts: a client guessing tokens or files is refused
// with 429 too_many_attempts, even with a valid token, until the minute ends.
func TestAuthE2ETooManyAttempts(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, testenv.Redis(t).Addr)
	cfg := testAuthConfig()
	cfg.FailuresPerMinute = 5
	v := e.verifier(cfg)
	p := e.start(proxy.Config{DownloadAuth: proxy.AuthToken}, proxy.Deps{Tokens: v})
	good := e.create(v, auth.TokenSpec{FileID: fileOne})

	// Refusals that are not guesses do not count.
	for range 6 {
		resp, body := do(t, e.c, http.MethodGet, p.URL+"/download/"+fileOne)
		wantAuthError(t, resp, body, 401, auth.CodeTokenMissing)
	}
	resp, body := do(t, e.c, http.MethodGet, p.URL+"/download/"+fileOne, "Authorization", "Bearer "+good)
	wantBody(t, resp, body, e.f1)

	for i := range 5 {
		u, tok := p.URL+"/download/"+fileOne, e.newToken()
		code, status := auth.CodeTokenInvalid, 401
		if i >= 3 {
			u, tok, code, status = p.URL+"/download/"+fileTwo, good, auth.CodeTokenWrongFile, 403
		}
		resp, body := do(t, e.c, http.MethodGet, u, "Authorization", "Bearer "+tok)
		wantAuthError(t, resp, body, status, code)
	}
	resp, body = do(t, e.c, http.MethodGet, p.URL+"/download/"+fileOne, "Authorization", "Bearer "+good)
	wantAuthError(t, resp, body, 429, auth.CodeTooManyAttempts)
	if n := retryAfterSeconds(t, resp); n > 60 {
		t.Errorf("Retry-After %d s, beyond the one-minute window", n)
	}
}

// TestSignedE2E: signed URLs checked by the proxy for the request's own
// method, host and path.
func TestSignedE2E(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, testenv.Redis(t).Addr)
	keys := map[string]string{"k1": e.secret("signing-secret-one-0123456789"), "k0": e.secret("signing-secret-old-0123456789")}
	signer, err := auth.NewSigner(auth.SignerConfig{Keys: keys, ActiveKey: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	old, err := auth.NewSigner(auth.SignerConfig{Keys: keys, ActiveKey: "k0"})
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := auth.NewSigner(auth.SignerConfig{Keys: map[string]string{"k1": "another-secret-0123456789"}, ActiveKey: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	p := e.start(proxy.Config{DownloadAuth: proxy.AuthSigned}, proxy.Deps{Signer: signer})
	path1, path2 := "/download/"+fileOne, "/download/"+fileTwo

	sign := func(s *auth.Signer, method, host, path string, exp time.Time) string {
		q, err := s.Sign(method, host, path, exp, "")
		if err != nil {
			t.Fatal(err)
		}
		vals, _ := url.ParseQuery(q)
		e.secret(vals.Get("sig"))
		return q
	}
	soon := time.Now().Add(time.Minute)
	valid := sign(signer, "GET", p.Addr, path1, soon)
	vals, _ := url.ParseQuery(valid)
	sig := vals.Get("sig")
	flipped := []byte(sig)
	flipped[0] = 'A' // still base64url, another MAC
	if sig[0] == 'A' {
		flipped[0] = 'B'
	}
	tampered := strings.Replace(valid, "sig="+sig, "sig="+string(flipped), 1)
	later := strings.Replace(valid, "expires="+vals.Get("expires"), "expires="+strconv.FormatInt(soon.Unix()+3600, 10), 1)

	for _, tt := range []struct {
		name   string
		method string
		path   string
		query  string
		code   string // "" expects 200
	}{
		{"valid", "GET", path1, valid, ""},
		{"HEAD with a GET signature", "HEAD", path1, valid, ""},
		{"host named with another port", "GET", path1, sign(signer, "GET", "127.0.0.1:443", path1, soon), ""},
		{"old key still listed", "GET", path1, sign(old, "GET", p.Addr, path1, soon), ""},
		{"tampered signature", "GET", path1, tampered, auth.CodeSignatureInvalid},
		{"extended expiry", "GET", path1, later, auth.CodeSignatureInvalid},
		{"other path", "GET", path2, valid, auth.CodeSignatureInvalid},
		{"other host", "GET", path1, sign(signer, "GET", "files.example.com", path1, soon), auth.CodeSignatureInvalid},
		{"unknown key", "GET", path1, sign(stranger, "GET", p.Addr, path1, soon), auth.CodeSignatureInvalid},
		{"no signature", "GET", path1, "", auth.CodeSignatureInvalid},
		{"expired", "GET", path1, sign(signer, "GET", p.Addr, path1, time.Now().Add(-2*time.Minute)), auth.CodeSignatureExpired},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := p.URL + tt.path
			if tt.query != "" {
				u += "?" + tt.query
			}
			resp, body := do(t, e.c, tt.method, u)
			switch {
			case tt.code == "" && tt.method == "HEAD":
				if resp.StatusCode != 200 || resp.ContentLength != int64(len(e.f1)) {
					t.Errorf("status %d, length %d", resp.StatusCode, resp.ContentLength)
				}
			case tt.code == "":
				wantBody(t, resp, body, e.f1)
			default:
				wantAuthError(t, resp, body, 403, tt.code)
			}
		})
	}

	t.Run("bound to the client address", func(t *testing.T) {
		bound, err := auth.NewSigner(auth.SignerConfig{Keys: keys, ActiveKey: "k1", BindIP: true})
		if err != nil {
			t.Fatal(err)
		}
		pb := e.start(proxy.Config{DownloadAuth: proxy.AuthSigned}, proxy.Deps{Signer: bound})
		for ip, want := range map[string]int{"127.0.0.1": 200, "192.0.2.1": 403} {
			q, err := bound.Sign("GET", pb.Addr, path1, soon, ip)
			if err != nil {
				t.Fatal(err)
			}
			qv, _ := url.ParseQuery(q)
			e.secret(qv.Get("sig"))
			resp, body := do(t, e.c, "GET", pb.URL+path1+"?"+q)
			if want == 200 {
				wantBody(t, resp, body, e.f1)
			} else {
				wantAuthError(t, resp, body, 403, auth.CodeSignatureInvalid)
			}
		}
	})
}

// TestCatalogE2E: /download/{id} serves the object the catalog names, under
// the catalog's file name; ids the catalog does not know are 404 even when
// an object has that key.
func TestCatalogE2E(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, testenv.Redis(t).Addr)
	cat, err := auth.NewCatalog(auth.CatalogConfig{}, e.rdb, e.logger)
	if err != nil {
		t.Fatal(err)
	}
	const bucket = "store"
	data := randBytes(103, 70<<10)
	e.o.put(t, bucket, "objects/2024/ab12.bin", data)
	e.o.put(t, dlBucket, "objects/2024/ab12.bin", []byte("not this one"))
	id := "doc-" + e.newToken()[:12]
	uid := "doc-" + e.newToken()[:12]
	ctx := context.Background()
	for _, m := range []auth.FileMeta{
		{ID: id, Bucket: bucket, Key: "objects/2024/ab12.bin", Filename: "Quarterly report 2024.pdf", ContentType: "application/pdf"},
		{ID: uid, Bucket: bucket, Key: "objects/2024/ab12.bin", Filename: "报告 2024.pdf"},
	} {
		if err := cat.Put(ctx, m); err != nil {
			t.Fatal(err)
		}
	}

	v := e.verifier(testAuthConfig())
	open := e.start(proxy.Config{}, proxy.Deps{Catalog: cat})
	tokened := e.start(proxy.Config{DownloadAuth: proxy.AuthToken}, proxy.Deps{Catalog: cat, Tokens: v})

	for name, tt := range map[string]struct{ id, filename string }{
		"ascii name":   {id, "Quarterly report 2024.pdf"},
		"unicode name": {uid, "报告 2024.pdf"},
	} {
		t.Run(name, func(t *testing.T) {
			resp, body := do(t, e.c, http.MethodGet, open.URL+"/download/"+tt.id)
			wantBody(t, resp, body, data)
			disp, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
			if err != nil || disp != "attachment" || params["filename"] != tt.filename {
				t.Errorf("Content-Disposition %q: %v, %v; want attachment with filename %q",
					resp.Header.Get("Content-Disposition"), err, params, tt.filename)
			}
		})
	}

	for _, path := range []string{"/download/doc-" + e.newToken()[:12], "/download/objects/2024/ab12.bin"} {
		resp, body := do(t, e.c, http.MethodGet, open.URL+path)
		wantError(t, resp, body, 404, "not_found")
	}

	// Tokens are issued for catalog ids.
	tok := e.create(v, auth.TokenSpec{FileID: id})
	resp, body := do(t, e.c, http.MethodGet, tokened.URL+"/download/"+id, "Authorization", "Bearer "+tok)
	wantBody(t, resp, body, data)
	resp, body = do(t, e.c, http.MethodGet, tokened.URL+"/download/"+uid, "Authorization", "Bearer "+tok)
	wantAuthError(t, resp, body, 403, auth.CodeTokenWrongFile)
	resp, body = do(t, e.c, http.MethodGet, tokened.URL+"/download/"+id)
	wantAuthError(t, resp, body, 401, auth.CodeTokenMissing)
}

// TestCatalogE2ERedisDown: when the catalog cannot be read, /download/ of an
// id it has not cached answers 503 with a Retry-After (auth.Catalog.Lookup:
// "the caller should answer 503"), quickly; cached ids keep working, and
// service returns with Redis.
//
// It fails today: the lookup's context.DeadlineExceeded reaches errorFor,
// which maps it to 504 origin_timeout (an origin problem, and no
// Retry-After); a Redis error that is not a timeout becomes 500 internal.
func TestCatalogE2ERedisDown(t *testing.T) {
	// Not parallel: it bounds response times.
	r := testenv.NewRedis(t)
	e := newAuthEnv(t, r.Addr)
	cat, err := auth.NewCatalog(auth.CatalogConfig{}, e.rdb, e.logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(id string) {
		if err := cat.Put(ctx, auth.FileMeta{ID: id, Bucket: dlBucket, Key: fileOne, Filename: "one.bin"}); err != nil {
			t.Fatal(err)
		}
	}
	put("cached")
	put("uncached")
	v := e.verifier(testAuthConfig())
	p := e.start(proxy.Config{}, proxy.Deps{Catalog: cat})
	pt := e.start(proxy.Config{DownloadAuth: proxy.AuthToken}, proxy.Deps{Catalog: cat, Tokens: v})
	tok := e.create(v, auth.TokenSpec{FileID: "uncached"})
	resp, body := do(t, e.c, http.MethodGet, p.URL+"/download/cached")
	wantBody(t, resp, body, e.f1)

	r.Stop(t)
	for _, u := range []string{p.URL + "/download/uncached", pt.URL + "/download/uncached?token=" + tok} {
		start := time.Now()
		resp, body = do(t, e.c, http.MethodGet, u)
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("refusal took %v", took)
		}
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Errorf("catalog down: %d, Retry-After %q, body %s; want 503 with a Retry-After",
				resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	resp, body = do(t, e.c, http.MethodGet, p.URL+"/download/cached")
	wantBody(t, resp, body, e.f1)

	r.Start(t)
	put("uncached") // Start comes back empty
	testenv.WaitFor(t, 10*time.Second, "the catalog answers again", func() bool {
		resp, body := do(t, e.c, http.MethodGet, p.URL+"/download/uncached")
		return resp.StatusCode == 200 && sha(body) == sha(e.f1)
	})
}
