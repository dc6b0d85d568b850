package auth

import (
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Throttled returns a too_many_attempts *Error, with RetryAfter, while
// client is past Config.FailuresPerMinute failed checks in the current
// minute; otherwise nil. Verify applies it itself; callers that consult
// other sources on a client's behalf (the file catalog) ask first, so that
// a throttled client costs no Redis lookups at all.
func (v *Verifier) Throttled(client netip.Addr) error {
	return v.throttled(client, v.now())
}

// Failed counts one failed check by client that Verify did not see: a
// request for a file id the catalog does not know. Guessing ids then
// shares the per-client limit with guessing tokens.
func (v *Verifier) Failed(client netip.Addr) {
	v.throttle.fail(client, v.now())
}

func (v *Verifier) throttled(client netip.Addr, now time.Time) error {
	if wait, blocked := v.throttle.blocked(client, now); blocked {
		e := refuse(ErrTooManyAttempts, nil)
		e.RetryAfter = wait
		return e
	}
	return nil
}

// throttle counts failed checks per client in fixed one-minute windows. It
// exists to make guessing tokens (or file ids for a stolen token) slow; it
// is local to one process, which is enough because guessing a 128-bit token
// is hopeless anyway and the point is to keep the load off Redis.
//
// IPv6 clients are keyed by their /64 so that one host cannot escape the
// limit by hopping addresses inside its own subnet. The table is a bounded
// LRU; an attacker with many networks can evict entries, which only costs
// them the per-network limit, never memory.
type throttle struct {
	limit int // failures allowed per window; <= 0 disables

	mu      sync.Mutex
	clients *simplelru.LRU[netip.Addr, *failWindow] // guarded by mu
}

type failWindow struct {
	start time.Time
	n     int
}

const throttleWindow = time.Minute

func newThrottle(limit, size int) *throttle {
	t := &throttle{limit: limit}
	if limit > 0 {
		t.clients, _ = simplelru.NewLRU[netip.Addr, *failWindow](size, nil) // size > 0 checked by Config
	}
	return t
}

// clientKey maps an address to the unit the throttle counts: the address
// itself for IPv4, the /64 for IPv6.
func clientKey(ip netip.Addr) netip.Addr {
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// blocked reports whether ip has used up its failures in the current window
// and, if so, how long until the window ends.
func (t *throttle) blocked(ip netip.Addr, now time.Time) (time.Duration, bool) {
	if t.limit <= 0 {
		return 0, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	w, ok := t.clients.Peek(clientKey(ip))
	if !ok || now.Sub(w.start) >= throttleWindow || w.n < t.limit {
		return 0, false
	}
	return w.start.Add(throttleWindow).Sub(now), true
}

// fail records a failed check by ip.
func (t *throttle) fail(ip netip.Addr, now time.Time) {
	if t.limit <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	k := clientKey(ip)
	w, ok := t.clients.Get(k)
	if !ok || now.Sub(w.start) >= throttleWindow {
		t.clients.Add(k, &failWindow{start: now, n: 1})
		return
	}
	w.n++
}
