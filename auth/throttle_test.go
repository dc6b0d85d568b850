package auth

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/fakeclock"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

func TestThrottle(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	th := newThrottle(3, 2)
	a := netip.MustParseAddr("192.0.2.1")
	for i := range 3 {
		if _, blocked := th.blocked(a, now); blocked {
			t.Fatalf("blocked after %d failures", i)
		}
		th.fail(a, now.Add(time.Duration(i)*time.Second))
	}
	wait, blocked := th.blocked(a, now.Add(20*time.Second))
	if !blocked || wait != 40*time.Second {
		t.Fatalf("after 3 failures: blocked=%v wait=%v, want true 40s", blocked, wait)
	}
	if _, blocked := th.blocked(netip.MustParseAddr("192.0.2.2"), now); blocked {
		t.Fatal("another client blocked")
	}
	if _, blocked := th.blocked(a, now.Add(time.Minute)); blocked {
		t.Fatal("still blocked in the next window")
	}

	// IPv6 clients count per /64.
	for i := range 3 {
		ip := netip.MustParseAddr("2001:db8:1:2::" + string(rune('a'+i)))
		th.fail(ip, now)
	}
	if _, blocked := th.blocked(netip.MustParseAddr("2001:db8:1:2:ffff::1"), now); !blocked {
		t.Fatal("same /64 not blocked")
	}
	if _, blocked := th.blocked(netip.MustParseAddr("2001:db8:1:3::1"), now); blocked {
		t.Fatal("other /64 blocked")
	}

	// The table is bounded: a third client evicts the least recent one.
	th.fail(netip.MustParseAddr("198.51.100.1"), now)
	th.fail(netip.MustParseAddr("198.51.100.2"), now)
	if n := th.clients.Len(); n != 2 {
		t.Fatalf("table holds %d clients, want 2", n)
	}

	off := newThrottle(-1, 10)
	for range 100 {
		off.fail(a, now)
	}
	if _, blocked := off.blocked(a, now); blocked {
		t.Fatal("disabled throttle blocked")
	}
}

// TestVerifierFailed: failures counted outside Verify (catalog misses)
// share the client's limit with Verify's own, and Throttled refuses past it
// with a Retry-After within the minute.
func TestVerifierFailed(t *testing.T) {
	cfg := testConfig(t)
	cfg.FailuresPerMinute = 3
	v := newTestVerifier(t, cfg, newTestClient(t, testenv.Redis(t).Addr))
	clk := fakeclock.At(time.Unix(1_700_000_000, 0))
	v.now = clk.Now
	ip, other := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for range 3 {
		if err := v.Throttled(ip); err != nil {
			t.Fatalf("Throttled before the limit: %v", err)
		}
		v.Failed(ip)
	}
	err := v.Throttled(ip)
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != CodeTooManyAttempts || ae.RetryAfter <= 0 || ae.RetryAfter > time.Minute {
		t.Fatalf("Throttled past the limit: %v", err)
	}
	if _, err := v.Verify(context.Background(), "sometoken", "1", ip); !errors.Is(err, ErrTooManyAttempts) {
		t.Fatalf("Verify past the limit: %v", err)
	}
	if err := v.Throttled(other); err != nil {
		t.Fatalf("another client: %v", err)
	}
	clk.Advance(time.Minute)
	if err := v.Throttled(ip); err != nil {
		t.Fatalf("next minute: %v", err)
	}
}
