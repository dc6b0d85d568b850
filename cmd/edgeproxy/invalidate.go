package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/cache"
	"github.com/edgeproxy/edgeproxy/internal/logging"
	"github.com/edgeproxy/edgeproxy/origin"
)

// Instant invalidation. MinIO's Redis notification target pushes every
// object event onto a list (invalidation.events_key). Each edge runs two
// loops on the shared Redis:
//
//   - relay: BLPOP takes each event from the list (exactly one edge gets
//     it) and PUBLISHes the objects it names on invalidation.channel;
//   - listen: every edge subscribes to the channel and purges those
//     objects from its cache (metadata, memory and disk chunks).
//
// So every node stops serving an overwritten or deleted object within
// milliseconds of MinIO's event instead of cache.meta_ttl. Pub/Sub
// delivers at most once: whenever the subscription is (re)established the
// edge expires all its cached metadata (cache.ExpireAll), so each next
// request revalidates with one HEAD and nothing missed in the gap is
// served stale; chunks of unchanged versions stay. An event popped by an
// edge that dies before publishing is lost (the object is then fresh
// again after meta_ttl).

// InvalidationConfig is the invalidation section.
type InvalidationConfig struct {
	// EventsKey is the Redis list MinIO's Redis notification target
	// pushes to (MINIO_NOTIFY_REDIS_KEY_<ID>, with
	// MINIO_NOTIFY_REDIS_FORMAT_<ID>=access), on the Redis of redis.addrs.
	// Empty: off, and an overwritten object is served until meta_ttl.
	EventsKey string `yaml:"events_key"`
	// Channel is the Pub/Sub channel the edges relay changes on. Default
	// "cache:invalidate".
	Channel string `yaml:"channel"`
}

const (
	defaultInvalidateChannel = "cache:invalidate"
	// relayBlock is how long one BLPOP waits; it bounds how long the
	// relay takes to notice shutdown.
	relayBlock = time.Second
	// invalidateBackoffMax caps the wait before retrying a failed loop.
	invalidateBackoffMax = 2 * time.Second
	// invalidatePing: after this long without a message the listener
	// pings; a second silent period means the connection is dead.
	invalidatePing = 5 * time.Second
)

// invalidator applies change notifications to the cache.
type invalidator struct {
	cfg   InvalidationConfig
	rdb   redis.UniversalClient
	cache *cache.Cache
	log   *slog.Logger
	// lastWarn rate-limits loop failure warnings to one per warnEvery.
	lastWarn atomic.Int64
}

const warnEvery = 30 * time.Second

// buildInvalidation starts the relay and the listener when
// invalidation.events_key is set; it needs Redis and the cache.
func (a *app) buildInvalidation(cfg Config) error {
	ic := cfg.Invalidation
	switch {
	case ic.EventsKey == "":
		return nil
	case a.redis == nil:
		return usageError{fmt.Errorf("config: key %q: needs redis.addrs", "invalidation.events_key")}
	case a.cache == nil:
		// Without the cache (or with -check) there is nothing to purge.
		return nil
	}
	if ic.Channel == "" {
		ic.Channel = defaultInvalidateChannel
	}
	v := &invalidator{cfg: ic, rdb: a.redis, cache: a.cache, log: logging.For(a.root, "invalidate")}
	a.loops = append(a.loops, v.relay, v.listen)
	return nil
}

// relay moves MinIO's events from the list to the channel until ctx ends.
func (v *invalidator) relay(ctx context.Context) {
	retry(ctx, v, "relay", func() error {
		res, err := v.rdb.BLPop(ctx, relayBlock, v.cfg.EventsKey).Result()
		switch {
		case errors.Is(err, redis.Nil):
			return nil
		case err != nil:
			return err
		}
		changes, err := origin.ParseEvents([]byte(res[1]))
		if err != nil {
			v.warn("dropping an unreadable MinIO event", err)
			return nil
		}
		for _, c := range changes {
			// Bucket names cannot contain "/", so the first one splits.
			if err := v.rdb.Publish(ctx, v.cfg.Channel, c.Bucket+"/"+c.Key).Err(); err != nil {
				return err
			}
		}
		return nil
	})
}

// listen applies the channel's changes until ctx ends, resubscribing
// after a failure.
func (v *invalidator) listen(ctx context.Context) {
	retry(ctx, v, "listen", func() error { return v.subscribeOnce(ctx) })
}

// retry runs step until ctx ends, waiting with capped exponential backoff
// after each failure.
func retry(ctx context.Context, v *invalidator, what string, step func() error) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := step()
		if err == nil || ctx.Err() != nil {
			backoff = 50 * time.Millisecond
			continue
		}
		v.warn("invalidation "+what+" failed; retrying", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		backoff = min(2*backoff, invalidateBackoffMax)
	}
}

// subscribeOnce subscribes, expires the cached metadata (changes may have
// been missed while unsubscribed), then purges each object announced
// until the connection fails.
func (v *invalidator) subscribeOnce(ctx context.Context) error {
	ps := v.rdb.Subscribe(ctx)
	defer ps.Close()
	if err := ps.Subscribe(ctx, v.cfg.Channel); err != nil {
		return fmt.Errorf("invalidate: subscribe: %w", err)
	}
	msg, err := ps.ReceiveTimeout(ctx, invalidatePing)
	if err != nil {
		return fmt.Errorf("invalidate: subscribe: %w", err)
	}
	if _, ok := msg.(*redis.Subscription); !ok {
		return fmt.Errorf("invalidate: subscribe: unexpected reply %T", msg)
	}
	if n := v.cache.ExpireAll(""); n > 0 {
		v.log.Info("subscribed to invalidations; cached metadata expired", "entries", n)
	}
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, invalidatePing)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged && ctx.Err() == nil {
				if err := ps.Ping(ctx); err != nil {
					return fmt.Errorf("invalidate: ping: %w", err)
				}
				pinged = true
				continue
			}
			return fmt.Errorf("invalidate: receive: %w", err)
		}
		pinged = false
		if m, ok := msg.(*redis.Message); ok {
			if bucket, key, ok := strings.Cut(m.Payload, "/"); ok {
				n := v.cache.Purge(bucket, key)
				v.log.Debug("object changed", "bucket", bucket, "key", key, "purged", n)
			}
		}
	}
}

func (v *invalidator) warn(msg string, err error) {
	now := time.Now().UnixNano()
	if last := v.lastWarn.Load(); now-last >= int64(warnEvery) && v.lastWarn.CompareAndSwap(last, now) {
		v.log.Warn(msg, "err", err)
	}
}
