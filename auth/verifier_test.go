package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/internal/fakeclock"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var nsSeq atomic.Int64

// testConfig gives each test its own key prefix and revocation channel on
// the shared server, and a generous budget: these tests are about
// behaviour, not latency, and run under -race on a busy machine.
func testConfig(t *testing.T) Config {
	ns := fmt.Sprintf("t%d:%s:", nsSeq.Add(1), t.Name())
	return Config{
		KeyPrefix:     ns + "download:token:",
		RevokeChannel: ns + "revoked",
		Budget:        5 * time.Second,
	}
}

func newTestClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	return testenv.RedisClient(t, addr, testenv.NoRetries)
}

func newTestVerifier(t *testing.T, cfg Config, c redis.UniversalClient) *Verifier {
	t.Helper()
	v, err := New(cfg, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// waitReady waits until each verifier's revocation listener is subscribed
// and has done its purge-on-subscribe: from then on a revocation reaches it,
// and what the test caches is not dropped by that purge. (Counting the
// channel's subscribers in Redis is not enough: the purge runs after Redis
// counts the subscription.)
func waitReady(t testing.TB, vs ...*Verifier) {
	t.Helper()
	for _, v := range vs {
		select {
		case <-v.Ready():
		case <-time.After(10 * time.Second):
			t.Fatal("revocation listener not ready within 10s")
		}
	}
}

// waitSubscribers waits until n clients listen on the verifier's channel.
func waitSubscribers(t *testing.T, c redis.UniversalClient, channel string, n int64) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, "revocation subscribers", func() bool {
		m, err := c.PubSubNumSub(context.Background(), channel).Result()
		return err == nil && m[channel] >= n
	})
}

func wantCode(t *testing.T, err error, want *Error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != want.Code || e.Status != want.Status {
		t.Fatalf("err = %v, want %s (%d)", err, want.Code, want.Status)
	}
	return e
}

var (
	ipA = netip.MustParseAddr("192.0.2.10")
	ipB = netip.MustParseAddr("198.51.100.20")
)

func TestVerifyBothForms(t *testing.T) {
	ctx := context.Background()
	c := newTestClient(t, testenv.Redis(t).Addr)
	cfg := testConfig(t)
	v := newTestVerifier(t, cfg, c)

	if err := c.Set(ctx, cfg.KeyPrefix+"abc123", "file_id=10086&user_id=9527", 300*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	g, err := v.Verify(ctx, "abc123", "10086", ipA)
	if err != nil {
		t.Fatalf("string form: %v", err)
	}
	if g.Token != "abc123" || g.FileID != "10086" || g.UserID != "9527" || g.Rate != 0 || g.Session != "" {
		t.Fatalf("string form grant %+v", g)
	}

	if err := c.HSet(ctx, cfg.KeyPrefix+"h1", "file_id", "7", "user_id", "u7", "rate", "65536", "extra", "x").Err(); err != nil {
		t.Fatal(err)
	}
	g, err = v.Verify(ctx, "h1", "7", ipA)
	if err != nil || g.FileID != "7" || g.UserID != "u7" || g.Rate != 65536 {
		t.Fatalf("hash form: %+v, %v", g, err)
	}

	tok, exp, err := v.Create(ctx, TokenSpec{FileID: "8", UserID: "u8", Rate: 1000, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != 32 || strings.ContainsAny(tok, "+/=") {
		t.Fatalf("created token %q is not 32 base64url characters", tok)
	}
	if d := time.Until(exp); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("expiresAt %v not an hour ahead", exp)
	}
	if ttl := c.TTL(ctx, cfg.KeyPrefix+tok).Val(); ttl < 59*time.Minute || ttl > time.Hour {
		t.Fatalf("key TTL %v", ttl)
	}
	if g, err = v.Verify(ctx, tok, "8", ipB); err != nil || g.UserID != "u8" || g.Rate != 1000 {
		t.Fatalf("created token: %+v, %v", g, err)
	}

	// Refusals.
	_, err = v.Verify(ctx, "", "8", ipA)
	wantCode(t, err, ErrTokenMissing)
	_, err = v.Verify(ctx, "nosuchtoken", "8", ipA)
	wantCode(t, err, ErrTokenInvalid)
	_, err = v.Verify(ctx, strings.Repeat("a", 257), "8", ipA)
	wantCode(t, err, ErrTokenInvalid)
	_, err = v.Verify(ctx, tok, "9", ipA)
	wantCode(t, err, ErrTokenWrongFile)
	_, err = v.Verify(ctx, "abc123", "10087", ipA) // cached record, wrong file
	wantCode(t, err, ErrTokenWrongFile)
	c.Set(ctx, cfg.KeyPrefix+"broken", "user_id=1", time.Minute)
	_, err = v.Verify(ctx, "broken", "1", ipA)
	wantCode(t, err, ErrTokenInvalid)
	c.Set(ctx, cfg.KeyPrefix+"strmax", "file_id=1&max_uses=1", time.Minute)
	_, err = v.Verify(ctx, "strmax", "1", ipA)
	wantCode(t, err, ErrTokenInvalid) // uses cannot be counted in the string form
}

func TestVerifyExpiry(t *testing.T) {
	ctx := context.Background()
	c := newTestClient(t, testenv.Redis(t).Addr)

	t.Run("key TTL bounds the cache", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.CacheTTL = time.Hour
		v := newTestVerifier(t, cfg, c)
		waitReady(t, v) // its purge must not empty the cache later
		clk := fakeclock.At(time.Unix(1_900_000_000, 0))
		v.now = clk.Now
		c.Set(ctx, cfg.KeyPrefix+"short", "file_id=1", time.Minute)
		if _, err := v.Verify(ctx, "short", "1", ipA); err != nil {
			t.Fatal(err)
		}
		if _, ok := v.cache.Peek("short"); !ok {
			t.Fatal("not cached")
		}
		c.Del(ctx, cfg.KeyPrefix+"short") // from now on only the cache knows the token
		// The TTL was read within seconds of the SET even on a busy
		// machine; 50 s later the key still lives.
		clk.Advance(50 * time.Second)
		if _, err := v.Verify(ctx, "short", "1", ipA); err != nil {
			t.Fatalf("cached token refused before its key TTL: %v", err)
		}
		// The cache TTL is an hour: only the key's TTL, remembered with
		// the cached record, can refuse it a minute after the SET.
		clk.Advance(10*time.Second + time.Millisecond)
		_, err := v.Verify(ctx, "short", "1", ipA)
		wantCode(t, err, ErrTokenInvalid)
	})

	t.Run("expires_at respected from cache", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.CacheTTL = time.Hour
		v := newTestVerifier(t, cfg, c)
		waitReady(t, v) // its purge must not empty the cache later
		clk := fakeclock.At(time.Unix(1_900_000_000, 0))
		v.now = clk.Now
		c.HSet(ctx, cfg.KeyPrefix+"exp", "file_id", "1", "expires_at", clk.Now().Add(10*time.Second).Unix())
		if _, err := v.Verify(ctx, "exp", "1", ipA); err != nil {
			t.Fatal(err)
		}
		c.Del(ctx, cfg.KeyPrefix+"exp") // from now on only the cache knows the token
		clk.Advance(9 * time.Second)
		if _, err := v.Verify(ctx, "exp", "1", ipA); err != nil {
			t.Fatalf("cached token refused before expires_at: %v", err)
		}
		clk.Advance(time.Second)
		_, err := v.Verify(ctx, "exp", "1", ipA)
		wantCode(t, err, ErrTokenInvalid)
	})

	t.Run("expires_at in Redis", func(t *testing.T) {
		cfg := testConfig(t)
		v := newTestVerifier(t, cfg, c)
		c.HSet(ctx, cfg.KeyPrefix+"past", "file_id", "1", "expires_at", time.Now().Add(-time.Second).Unix())
		_, err := v.Verify(ctx, "past", "1", ipA)
		wantCode(t, err, ErrTokenInvalid)
	})
}

func TestVerifyAllowedIP(t *testing.T) {
	ctx := context.Background()
	c := newTestClient(t, testenv.Redis(t).Addr)
	cfg := testConfig(t)
	cfg.FailuresPerMinute = -1
	v := newTestVerifier(t, cfg, c)
	tok, _, err := v.Create(ctx, TokenSpec{FileID: "1", AllowedIP: []string{"203.0.113.7", "10.0.0.0/8", "2001:db8:1::/48"}})
	if err != nil {
		t.Fatal(err)
	}
	c.Set(ctx, cfg.KeyPrefix+"str", "file_id=1&allowed_ip=2001:db8::5", time.Minute)
	for _, tc := range []struct {
		token, ip string
		ok        bool
	}{
		{tok, "203.0.113.7", true},
		{tok, "203.0.113.8", false},
		{tok, "::ffff:203.0.113.7", true},
		{tok, "10.9.8.7", true},
		{tok, "11.0.0.1", false},
		{tok, "2001:db8:1:abcd::1", true},
		{tok, "2001:db8:2::1", false},
		{"str", "2001:db8::5", true},
		{"str", "2001:db8::6", false},
	} {
		_, err := v.Verify(ctx, tc.token, "1", netip.MustParseAddr(tc.ip))
		if tc.ok && err != nil {
			t.Errorf("%s from %s: %v", Redact(tc.token), tc.ip, err)
		}
		if !tc.ok && !errors.Is(err, ErrIPNotAllowed) {
			t.Errorf("%s from %s: %v, want ip_not_allowed", Redact(tc.token), tc.ip, err)
		}
	}
	if _, _, err := v.Create(ctx, TokenSpec{FileID: "1", AllowedIP: []string{"300.0.0.1"}}); err == nil || !strings.Contains(err.Error(), "allowed_ip") {
		t.Fatalf("Create with a bad address: %v", err)
	}
}

func TestCreateValidates(t *testing.T) {
	c := newTestClient(t, testenv.Redis(t).Addr)
	v := newTestVerifier(t, testConfig(t), c)
	for _, tc := range []struct {
		spec  TokenSpec
		field string
	}{
		{TokenSpec{}, "file_id"},
		{TokenSpec{FileID: "1", MaxUses: -1}, "max_uses"},
		{TokenSpec{FileID: "1", Rate: -1}, "rate"},
		{TokenSpec{FileID: "1", TTL: time.Millisecond}, "ttl"},
		{TokenSpec{FileID: "1", TTL: 1000 * time.Hour}, "ttl"},
	} {
		if _, _, err := v.Create(context.Background(), tc.spec); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("Create(%+v) = %v, want error naming %s", tc.spec, err, tc.field)
		}
	}
}

func TestNewValidates(t *testing.T) {
	c := newTestClient(t, "127.0.0.1:1")
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{Budget: -1}, "budget"},
		{Config{RetryAfter: time.Millisecond}, "retry_after"},
		{Config{MaxInFlight: -1}, "max_in_flight"},
		{Config{SessionIdle: time.Millisecond}, "session_idle"},
		{Config{CacheTTL: -1, FailOpenCached: true}, "fail_open_cached"},
		{Config{DefaultTTL: time.Hour, MaxTTL: time.Minute}, "max_ttl"},
	} {
		if _, err := New(tc.cfg, c, nil); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("New(%+v) = %v, want error naming %s", tc.cfg, err, tc.field)
		}
	}
	if _, err := New(Config{}, nil, nil); err == nil {
		t.Error("New with a nil client succeeded")
	}
}

// clientIPs returns n distinct client addresses.
func clientIPs(n int) []netip.Addr {
	ips := make([]netip.Addr, n)
	for i := range ips {
		ips[i] = netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
	}
	return ips
}

// verifyConcurrently runs one Verify per address at once and counts outcomes by code ("" for success).
func verifyConcurrently(t *testing.T, v *Verifier, token, fileID string, ips []netip.Addr) map[string]int {
	t.Helper()
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		wg     sync.WaitGroup
		start  = make(chan struct{})
	)
	for _, ip := range ips {
		wg.Go(func() {
			<-start
			_, err := v.Verify(context.Background(), token, fileID, ip)
			code := ""
			if err != nil {
				var e *Error
				if !errors.As(err, &e) {
					t.Errorf("non-auth error %v", err)
					return
				}
				code = e.Code
			}
			mu.Lock()
			counts[code]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return counts
}

// testMaxUses is shared by the standalone and Cluster tests.
func testMaxUses(t *testing.T, c redis.UniversalClient, cfg Config) {
	ctx := context.Background()
	cfg.FailuresPerMinute = -1
	v := newTestVerifier(t, cfg, c)
	ips := clientIPs(50)

	for _, maxUses := range []int{1, 3} {
		t.Run(fmt.Sprintf("max_uses=%d, 50 sessions", maxUses), func(t *testing.T) {
			tok, _, err := v.Create(ctx, TokenSpec{FileID: "f", MaxUses: maxUses, TTL: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			counts := verifyConcurrently(t, v, tok, "f", ips)
			if counts[""] != maxUses || counts[CodeUsesExhausted] != 50-maxUses {
				t.Fatalf("outcomes %v, want %d granted and the rest uses_exhausted", counts, maxUses)
			}
			if n, _ := c.HGet(ctx, cfg.KeyPrefix+tok, "uses").Int(); n != maxUses {
				t.Fatalf("uses = %d, want %d", n, maxUses)
			}
		})
	}

	t.Run("one session counts once", func(t *testing.T) {
		tok, _, err := v.Create(ctx, TokenSpec{FileID: "f", MaxUses: 1, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		same := make([]netip.Addr, 50)
		for i := range same {
			same[i] = ipA
		}
		counts := verifyConcurrently(t, v, tok, "f", same)
		if counts[""] != 50 {
			t.Fatalf("outcomes %v, want all 50 requests of one session granted", counts)
		}
		if n, _ := c.HGet(ctx, cfg.KeyPrefix+tok, "uses").Int(); n != 1 {
			t.Fatalf("uses = %d, want 1", n)
		}
		// Another network is another session; the wrong file is not a use.
		_, err = v.Verify(ctx, tok, "f", ipB)
		wantCode(t, err, ErrUsesExhausted)
		_, err = v.Verify(ctx, tok, "other", ipA)
		wantCode(t, err, ErrTokenWrongFile)
	})
}

func TestMaxUses(t *testing.T) {
	testMaxUses(t, newTestClient(t, testenv.Redis(t).Addr), testConfig(t))
}

func TestSessionIdleWindow(t *testing.T) {
	ctx := context.Background()
	c := newTestClient(t, testenv.Redis(t).Addr)
	cfg := testConfig(t)
	cfg.SessionIdle = time.Minute
	v := newTestVerifier(t, cfg, c)
	clk := fakeclock.At(time.Now())
	v.now = clk.Now

	tok, _, err := v.Create(ctx, TokenSpec{FileID: "f", MaxUses: 2, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	uses := func() int { n, _ := c.HGet(ctx, cfg.KeyPrefix+tok, "uses").Int(); return n }
	step := func(d time.Duration, ip netip.Addr, want *Error, wantUses int) {
		t.Helper()
		clk.Advance(d)
		_, err := v.Verify(ctx, tok, "f", ip)
		if want == nil && err != nil {
			t.Fatalf("at +%v from %v: %v", d, ip, err)
		}
		if want != nil {
			wantCode(t, err, want)
		}
		if u := uses(); u != wantUses {
			t.Fatalf("uses = %d, want %d", u, wantUses)
		}
	}
	step(0, ipA, nil, 1)
	step(50*time.Second, ipA, nil, 1) // each request renews the session...
	step(50*time.Second, ipA, nil, 1) // ...so it outlives the first request by more than the window
	step(61*time.Second, ipA, nil, 2) // idle too long: a new session, a new use
	step(time.Second, ipB, ErrUsesExhausted, 2)
	step(time.Second, ipA, nil, 2) // the open session keeps working

	// With SessionIgnoreIP another network joins the same session.
	cfg2 := testConfig(t)
	cfg2.SessionIgnoreIP = true
	cfg2.KeyPrefix = cfg.KeyPrefix
	v2 := newTestVerifier(t, cfg2, c)
	tok2, _, err := v2.Create(ctx, TokenSpec{FileID: "f", MaxUses: 1, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range []netip.Addr{ipA, ipB, netip.MustParseAddr("2001:db8::1")} {
		if _, err := v2.Verify(ctx, tok2, "f", ip); err != nil {
			t.Fatalf("SessionIgnoreIP from %v: %v", ip, err)
		}
	}
}

func TestRevokeBroadcast(t *testing.T) {
	ctx := context.Background()
	addr := testenv.Redis(t).Addr
	cfg := testConfig(t)
	cfg.CacheTTL = time.Hour // only the broadcast can drop the cached entry
	v1 := newTestVerifier(t, cfg, newTestClient(t, addr))
	v2 := newTestVerifier(t, cfg, newTestClient(t, addr))
	waitReady(t, v1, v2)

	tok, _, err := v1.Create(ctx, TokenSpec{FileID: "f"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v2.Verify(ctx, tok, "f", ipA); err != nil {
		t.Fatal(err)
	}
	if _, ok := v2.cache.Peek(tok); !ok {
		t.Fatal("token not cached by the second verifier")
	}
	start := time.Now()
	if err := v1.Revoke(ctx, tok); err != nil {
		t.Fatal(err)
	}
	// Milliseconds in practice (BenchmarkRevokePropagation); the cache
	// would keep the entry for an hour, so 10 s still proves the broadcast.
	testenv.WaitFor(t, 10*time.Second, "revocation to reach the second verifier", func() bool {
		_, ok := v2.cache.Peek(tok)
		return !ok
	})
	t.Logf("revocation seen after %v", time.Since(start))
	_, err = v2.Verify(ctx, tok, "f", ipA)
	wantCode(t, err, ErrTokenInvalid)
	if err := v1.Revoke(ctx, tok); !errors.Is(err, ErrTokenNotFound) {
		t.Fatalf("second Revoke = %v, want ErrTokenNotFound", err)
	}
}

func TestThrottleGuessing(t *testing.T) {
	ctx := context.Background()
	c := newTestClient(t, testenv.Redis(t).Addr)
	cfg := testConfig(t)
	cfg.FailuresPerMinute = 5
	v := newTestVerifier(t, cfg, c)
	clk := fakeclock.At(time.Now())
	v.now = clk.Now
	tok, _, err := v.Create(ctx, TokenSpec{FileID: "f"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		_, err := v.Verify(ctx, fmt.Sprintf("guess%d", i), "f", ipA)
		wantCode(t, err, ErrTokenInvalid)
	}
	_, err = v.Verify(ctx, tok, "f", ipA)
	e := wantCode(t, err, ErrTooManyAttempts)
	if e.RetryAfter <= 0 || e.RetryAfter > time.Minute {
		t.Fatalf("RetryAfter = %v", e.RetryAfter)
	}
	if _, err := v.Verify(ctx, tok, "f", ipB); err != nil {
		t.Fatalf("other client: %v", err)
	}
	clk.Advance(time.Minute)
	if _, err := v.Verify(ctx, tok, "f", ipA); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// A lookup that read Redis before a revocation must not re-fill the cache
// after the revocation was applied (the interleaving is forced here).
func TestFillAfterRevocationDropped(t *testing.T) {
	cfg := testConfig(t)
	c := newTestClient(t, testenv.Redis(t).Addr)
	v := newTestVerifier(t, cfg, c)
	waitReady(t, v) // its purge must not interfere
	e := &cacheEntry{rec: Record{FileID: "f"}, freshUntil: time.Now().Add(time.Hour)}
	gen := v.generation() // the lookup starts reading Redis
	v.invalidate("tok")   // the revocation arrives meanwhile
	v.fill("tok", e, gen) // the lookup finishes
	if _, ok := v.cache.Peek("tok"); ok {
		t.Fatal("stale read re-filled the cache after a revocation")
	}
	v.fill("tok", e, v.generation())
	if _, ok := v.cache.Peek("tok"); !ok {
		t.Fatal("fill without a racing revocation was dropped")
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil { // idempotent; cleanup calls it again
		t.Fatal(err)
	}
}
