package auth

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// TestRedisOutage stops a dedicated redis-server under a live Verifier and
// starts it again: refusals must be quick, goroutines bounded, and service
// must come back without a new Verifier (including the revocation listener).
func TestRedisOutage(t *testing.T) {
	ctx := context.Background()
	r := testenv.NewRedis(t)
	c := newTestClient(t, r.Addr)
	cfg := testConfig(t)
	cfg.CacheTTL = -1 // every Verify goes to Redis
	cfg.Budget = 200 * time.Millisecond
	cfg.MaxInFlight = 8
	cfg.FailuresPerMinute = -1
	v := newTestVerifier(t, cfg, c)
	waitReady(t, v)

	tok, _, err := v.Create(ctx, TokenSpec{FileID: "f"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, tok, "f", ipA); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()

	r.Stop(t)
	start := time.Now()
	_, err = v.Verify(ctx, tok, "f", ipA)
	e := wantCode(t, err, ErrAuthUnavailable)
	if e.RetryAfter != 2*time.Second {
		t.Fatalf("RetryAfter = %v, want the 2s default", e.RetryAfter)
	}
	// A refused dial fails at once; 5 s (25 budgets) only catches a
	// refusal that waits for something else, and holds on a busy machine.
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("refusal took %v", d)
	}

	// A burst of 200 concurrent requests during the outage: all refused,
	// and once they return nothing is left running but the client's own
	// bounded dialers and the listener.
	var wg sync.WaitGroup
	var refused atomic.Int64
	for range 200 {
		wg.Go(func() {
			if _, err := v.Verify(ctx, tok, "f", ipA); errors.Is(err, ErrAuthUnavailable) {
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	if refused.Load() != 200 {
		t.Fatalf("%d of 200 refused with auth_unavailable", refused.Load())
	}
	if after := runtime.NumGoroutine(); after > before+25 {
		t.Fatalf("goroutines grew from %d to %d during the outage", before, after)
	}

	// Sustained traffic for a while must not accumulate goroutines either.
	peak := 0
	for i := 0; i < 100; i++ {
		_, _ = v.Verify(ctx, tok, "f", ipA)
		peak = max(peak, runtime.NumGoroutine())
	}
	if peak > before+25 {
		t.Fatalf("goroutines peaked at %d (before the outage %d)", peak, before)
	}

	r.Start(t) // empty dataset: the token has to be issued again
	var tok2 string
	testenv.WaitFor(t, 10*time.Second, "Redis to be usable again", func() bool {
		tok2, _, err = v.Create(ctx, TokenSpec{FileID: "f"})
		return err == nil
	})
	testenv.WaitFor(t, 10*time.Second, "Verify to succeed again", func() bool {
		_, err := v.Verify(ctx, tok2, "f", ipA)
		return err == nil
	})
	waitSubscribers(t, c, cfg.RevokeChannel, 1) // the listener resubscribed by itself
}

// TestFailOpenCached: with FailOpenCached, tokens read before the outage keep
// working through it; others and max_uses tokens fail closed.
func TestFailOpenCached(t *testing.T) {
	ctx := context.Background()
	r := testenv.NewRedis(t)
	c := newTestClient(t, r.Addr)
	cfg := testConfig(t)
	cfg.Budget = 200 * time.Millisecond
	cfg.CacheTTL = time.Millisecond // stale at once: only fail-open can serve it
	cfg.FailOpenCached = true
	v := newTestVerifier(t, cfg, c)
	// The listener purges the cache when it subscribes; let that happen
	// before filling the cache.
	waitReady(t, v)

	cached, _, err := v.Create(ctx, TokenSpec{FileID: "f", AllowedIP: []string{ipA.String()}})
	if err != nil {
		t.Fatal(err)
	}
	limited, _, err := v.Create(ctx, TokenSpec{FileID: "f", MaxUses: 5})
	if err != nil {
		t.Fatal(err)
	}
	uncached, _, err := v.Create(ctx, TokenSpec{FileID: "f"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{cached, limited} {
		if _, err := v.Verify(ctx, tok, "f", ipA); err != nil {
			t.Fatal(err)
		}
	}
	r.Stop(t)
	if _, err := v.Verify(ctx, cached, "f", ipA); err != nil {
		t.Fatalf("cached token during outage: %v", err)
	}
	_, err = v.Verify(ctx, cached, "f", ipB) // checks still apply
	wantCode(t, err, ErrIPNotAllowed)
	_, err = v.Verify(ctx, limited, "f", ipA)
	wantCode(t, err, ErrAuthUnavailable)
	_, err = v.Verify(ctx, uncached, "f", ipA)
	wantCode(t, err, ErrAuthUnavailable)
}

// TestSlowRedisBudget: against a server that never answers, Verify gives up
// at its budget. A budget that did not hold would show as a wait for the
// client's own ReadTimeout, so the bounds sit well between the two: far
// above the 50 ms budget for a loaded machine, well below the timeout.
func TestSlowRedisBudget(t *testing.T) {
	ctx := context.Background()
	addr := testenv.Blackhole(t)
	const bound = 10 * time.Second // with a 30 s ReadTimeout
	slowClient := func(ctxTimeouts bool, readTimeout time.Duration) *redis.Client {
		return testenv.RedisClient(t, addr, testenv.NoRetries, func(o *redis.Options) {
			o.ReadTimeout = readTimeout
			o.ContextTimeoutEnabled = ctxTimeouts
		})
	}

	t.Run("budget", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Budget = 0 // the 50ms default
		v := newTestVerifier(t, cfg, slowClient(true, 30*time.Second))
		start := time.Now()
		_, err := v.Verify(ctx, "sometoken", "f", ipA)
		d := time.Since(start)
		wantCode(t, err, ErrAuthUnavailable)
		if d < 50*time.Millisecond || d > bound {
			t.Fatalf("refusal after %v, want about the 50ms budget", d)
		}
	})

	t.Run("budget without context timeouts", func(t *testing.T) {
		// go-redis ignores context deadlines by default; the budget must
		// hold anyway. Here the verifier's Close waits for the client's
		// ReadTimeout (go-redis's PubSub.Close waits for the listener's
		// pending read), so the timeout is 6 s rather than 30, the bound 3 s.
		cfg := testConfig(t)
		cfg.Budget = 0
		v := newTestVerifier(t, cfg, slowClient(false, 6*time.Second))
		start := time.Now()
		_, err := v.Verify(ctx, "sometoken", "f", ipA)
		d := time.Since(start)
		wantCode(t, err, ErrAuthUnavailable)
		if d < 50*time.Millisecond || d > 3*time.Second {
			t.Fatalf("refusal after %v, want about the 50ms budget", d)
		}
	})

	t.Run("excess fails fast", func(t *testing.T) {
		cfg := testConfig(t)
		// The stuck lookups would hold their slots for the whole budget;
		// an excess lookup that waited for a slot would take as long.
		cfg.Budget = time.Minute
		cfg.MaxInFlight = 2
		v := newTestVerifier(t, cfg, slowClient(true, 30*time.Second))
		stuck, release := context.WithCancel(ctx)
		defer release()
		var wg sync.WaitGroup
		for range 2 { // occupy both lookup slots
			wg.Go(func() {
				_, err := v.Verify(stuck, "sometoken", "f", ipA)
				if !errors.Is(err, ErrAuthUnavailable) {
					t.Errorf("stuck lookup: %v", err)
				}
			})
		}
		testenv.WaitFor(t, 10*time.Second, "both lookup slots busy", func() bool { return len(v.sem) == 2 })
		start := time.Now()
		for i := range 50 {
			_, err := v.Verify(ctx, "sometoken", "f", ipA)
			e := wantCode(t, err, ErrAuthUnavailable)
			if e.Err == nil || !strings.Contains(e.Err.Error(), "in flight") {
				t.Fatalf("cause %v, want the in-flight bound", e.Err)
			}
			if d := time.Since(start); d > bound {
				t.Fatalf("%d excess lookups took %v, want them refused at once", i+1, d)
			}
		}
		release()
		wg.Wait()
	})
}
