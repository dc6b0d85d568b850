package limiter

import (
	"sync/atomic"
	"time"
)

// Rejection reasons, also the keys of Stats.Rejections.
const (
	ReasonClientConcurrency = "client_concurrency" // MaxConcurrentPerClient reached
	ReasonNodeConcurrency   = "node_concurrency"   // MaxConcurrent reached
	ReasonRequestRate       = "request_rate"       // RequestRate exceeded (node or cluster)
)

// Rejection is the error Admit returns when a download may not start. The
// proxy answers 429 (503 for node_concurrency) with a Retry-After header.
type Rejection struct {
	Reason     string        // one of the Reason constants
	RetryAfter time.Duration // when trying again may succeed; > 0
}

// Error says why and for how long; it carries no client data.
func (r *Rejection) Error() string {
	return "limiter: rejected (" + r.Reason + "), retry after " + r.RetryAfter.String()
}

// Lease is an admitted download. It holds the client's concurrency slots
// and pins the client's state (its buckets are not evicted while any of its
// leases is held). Release it when the response body is done, after closing
// the reader Shape returned.
type Lease struct {
	l        *Limiter
	c        *client
	released atomic.Bool
}

// ClientID returns the identity the lease was admitted for.
func (le *Lease) ClientID() string { return le.c.id }

// Release frees the lease's concurrency slots. It is idempotent and safe on
// a nil Lease.
func (le *Lease) Release() {
	if le == nil || !le.released.CompareAndSwap(false, true) {
		return
	}
	le.l.unpin(le.c)
}

// Admit decides whether clientID may start a download now: it checks the
// client's and the node's concurrency caps, then the per-node request rate,
// then (with WithRedis) the cluster-wide one. A refusal is a *Rejection; a
// closed Limiter returns ErrClosed. Admit never blocks on the network for
// longer than Config.Redis.Timeout.
func (l *Limiter) Admit(clientID string) (*Lease, error) {
	t := l.now()
	now := t.UnixNano()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	// Amortised idle eviction: each admission retires at most two expired
	// clients, so the janitor is needed only when the node is quiet.
	l.evictLocked(now, 2)
	c := l.getLocked(clientID, now)
	if m := l.s.MaxConcurrentPerClient; m > 0 && int(c.active) >= m {
		l.mu.Unlock()
		l.rejClient.Add(1)
		return nil, &Rejection{Reason: ReasonClientConcurrency, RetryAfter: l.s.RetryAfter}
	}
	if m := l.s.MaxConcurrent; m > 0 && l.nodeAct >= m {
		l.mu.Unlock()
		l.rejNode.Add(1)
		return nil, &Rejection{Reason: ReasonNodeConcurrency, RetryAfter: l.s.RetryAfter}
	}
	if c.reqs != nil && !c.reqs.AllowN(t, 1) {
		// Time until one whole token has accrued.
		missing := 1 - c.reqs.TokensAt(t)
		l.mu.Unlock()
		l.rejRate.Add(1)
		retry := time.Duration(missing / l.s.RequestRate * float64(time.Second))
		return nil, &Rejection{Reason: ReasonRequestRate, RetryAfter: max(retry, time.Millisecond)}
	}
	l.pinLocked(c)
	l.mu.Unlock()

	if l.rdb != nil && c.reqs != nil {
		if ok, retry := l.redisAllow(clientID, t); !ok {
			l.unpin(c)
			l.rejRate.Add(1)
			return nil, &Rejection{Reason: ReasonRequestRate, RetryAfter: max(retry, time.Millisecond)}
		}
	}
	return &Lease{l: l, c: c}, nil
}

// pinLocked takes one download slot for c and removes it from the idle list.
func (l *Limiter) pinLocked(c *client) {
	c.active++
	if c.active == 1 {
		l.unlinkLocked(c)
		l.activeClients.Add(1)
	}
	l.nodeAct++
	l.activeDL.Add(1)
}

// unpin gives back one slot; a client left with none becomes idle again.
func (l *Limiter) unpin(c *client) {
	now := l.now().UnixNano()
	l.mu.Lock()
	c.active--
	if c.active == 0 {
		c.lastSeen = now
		l.pushFrontLocked(c)
		l.activeClients.Add(-1)
	}
	l.nodeAct--
	l.activeDL.Add(-1)
	l.mu.Unlock()
}
