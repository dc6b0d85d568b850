package auth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Revocation broadcast. Revoke publishes the token on Config.RevokeChannel;
// every Verifier keeps one subscription and drops the token from its cache
// when the message arrives (milliseconds after the PUBLISH in practice).
//
// Pub/Sub delivers at most once: messages published while a subscriber is
// disconnected are lost. So whenever the subscription is (re)established the
// whole cache is purged: whatever was revoked in the gap is forgotten too.
// Without any subscription at all, staleness is still bounded by CacheTTL.

const (
	subscribeTimeout = 2 * time.Second
	// idlePing: after this long without traffic the listener pings, and a
	// second silent period means the connection is dead.
	idlePing       = 5 * time.Second
	backoffInitial = 50 * time.Millisecond
	backoffMax     = 2 * time.Second
)

// listen keeps a subscription to the revocation channel until ctx ends,
// reconnecting with capped exponential backoff.
func (v *Verifier) listen(ctx context.Context) {
	defer close(v.done)
	backoff := backoffInitial
	var readyOnce sync.Once
	for {
		err := v.subscribeOnce(ctx, func() {
			backoff = backoffInitial
			readyOnce.Do(func() { close(v.ready) })
		})
		if ctx.Err() != nil {
			return
		}
		if v.warn.allow(time.Now()) {
			v.log.Warn("revocation listener lost its subscription; retrying", "err", err, "backoff", backoff)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, backoffMax)
	}
}

// subscribeOnce subscribes, then applies revocations until the connection
// fails or ctx ends. subscribed is called once the subscription is live and
// the cache purged.
func (v *Verifier) subscribeOnce(ctx context.Context, subscribed func()) error {
	ps := v.client.Subscribe(ctx)
	v.psMu.Lock()
	if ctx.Err() != nil {
		v.psMu.Unlock()
		_ = ps.Close()
		return ctx.Err()
	}
	v.ps = ps
	v.psMu.Unlock()
	defer func() {
		v.psMu.Lock()
		v.ps = nil
		v.psMu.Unlock()
		_ = ps.Close()
	}()

	sctx, cancel := context.WithTimeout(ctx, subscribeTimeout)
	err := ps.Subscribe(sctx, v.cfg.RevokeChannel)
	cancel()
	if err != nil {
		return fmt.Errorf("auth: subscribe %s: %w", v.cfg.RevokeChannel, err)
	}
	msg, err := ps.ReceiveTimeout(ctx, subscribeTimeout)
	if err != nil {
		return fmt.Errorf("auth: subscribe %s: %w", v.cfg.RevokeChannel, err)
	}
	if _, ok := msg.(*redis.Subscription); !ok {
		return fmt.Errorf("auth: subscribe %s: unexpected reply %T", v.cfg.RevokeChannel, msg)
	}
	v.invalidate("") // revocations may have been missed while unsubscribed
	subscribed()

	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, idlePing)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged && ctx.Err() == nil {
				if err := ps.Ping(ctx); err != nil {
					return fmt.Errorf("auth: revocation ping: %w", err)
				}
				pinged = true
				continue
			}
			return fmt.Errorf("auth: revocation receive: %w", err)
		}
		pinged = false
		if m, ok := msg.(*redis.Message); ok {
			v.invalidate(m.Payload)
		}
	}
}
