package limiter

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/edgeproxy/edgeproxy/internal/logging"
)

// ErrClosed is returned by Admit and by shaped readers once the Limiter (or
// the reader) is closed.
var ErrClosed = errors.New("limiter: closed")

// Limiter tracks clients and shapes their downloads. It is safe for
// concurrent use.
type Limiter struct {
	s     settings
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
	rdb   redis.UniversalClient // nil: request rate is per node only
	log   *slog.Logger

	ctx    context.Context // cancelled by Close; parent of every shaped reader's wait
	cancel context.CancelFunc
	done   chan struct{} // janitor exited

	global *rate.Limiter // nil when GlobalRate == 0

	mu      sync.Mutex
	clients map[string]*client
	idle    client // sentinel of the idle list: idle.next is the most recently used
	nodeAct int    // downloads in progress; guarded by mu
	closed  bool   // guarded by mu

	redisUntil atomic.Int64 // unix nanos before which Redis is not asked

	// counters for Stats
	nClients      atomic.Int64
	activeClients atomic.Int64
	activeDL      atomic.Int64
	bytesShaped   atomic.Uint64
	waits         atomic.Uint64
	waitNanos     atomic.Int64
	evictions     atomic.Uint64
	rejClient     atomic.Uint64
	rejNode       atomic.Uint64
	rejRate       atomic.Uint64
	redisFallback atomic.Uint64
}

// client is one identity's state on this node.
type client struct {
	id string
	// prev and next link the client into the idle list while it has no
	// download in progress; both nil while it is pinned by a lease.
	prev, next *client
	lastSeen   int64 // unix nanos of the last Admit or Release; guarded by Limiter.mu
	active     int32 // downloads in progress; guarded by Limiter.mu

	reqs  *rate.Limiter                // requests; nil when RequestRate == 0
	bytes atomic.Pointer[rate.Limiter] // bytes; created by the first shaped read
}

// Option adjusts a Limiter beyond its Config: things that are not
// configuration data (a clock, a client).
type Option func(*Limiter)

// WithSleep replaces the wait shaped readers use; it must return early with
// ctx.Err() when ctx is cancelled. Together with New's now it lets tests run
// simulated seconds without sleeping. The default waits on a time.Timer.
func WithSleep(sleep func(ctx context.Context, d time.Duration) error) Option {
	return func(l *Limiter) { l.sleep = sleep }
}

// WithRedis enforces RequestRate cluster-wide through c (GCRA, one key per
// client, one round trip per admission). The per-node limit is still
// applied first, and is all that applies while Redis fails. The Limiter
// does not close c.
func WithRedis(c redis.UniversalClient) Option {
	return func(l *Limiter) { l.rdb = c }
}

// WithLogger sends the limiter's log lines (Redis fallbacks) to log, so
// they follow the process's log.format and log.level. The default is
// to discard them.
func WithLogger(log *slog.Logger) Option {
	return func(l *Limiter) { l.log = log }
}

// New validates cfg, fills in defaults and starts the idle-client janitor.
// now is the clock every bucket reads (nil = time.Now); Close must be called
// to stop the janitor.
func New(cfg Config, now func() time.Time, opts ...Option) (*Limiter, error) {
	s, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	l := &Limiter{
		s:       s,
		now:     now,
		sleep:   timerSleep,
		clients: make(map[string]*client),
		done:    make(chan struct{}),
	}
	l.idle.next, l.idle.prev = &l.idle, &l.idle
	for _, o := range opts {
		o(l)
	}
	l.log = logging.For(l.log, "limiter")
	if s.GlobalRate > 0 {
		l.global = rate.NewLimiter(rate.Limit(s.GlobalRate), int(max(s.GlobalRate/4, MinBurst)))
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	go l.janitor()
	return l, nil
}

// timerSleep waits d or until ctx is done.
func timerSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the janitor, wakes every shaped reader that is waiting (their
// Read returns ErrClosed) and makes Admit fail with ErrClosed. It is
// idempotent.
func (l *Limiter) Close() error {
	l.mu.Lock()
	was := l.closed
	l.closed = true
	l.mu.Unlock()
	l.cancel()
	if !was {
		<-l.done
	}
	return nil
}

// ClassRate resolves a rate class for Shape: the class's bytes/s, or
// Unlimited for a class configured as 0. Routes should resolve their class
// once at startup so a typo fails there.
func (l *Limiter) ClassRate(name string) (int64, error) {
	r, ok := l.s.Classes[name]
	if !ok {
		return 0, errors.New("limiter: unknown rate class " + quote(name))
	}
	if r == 0 {
		return Unlimited, nil
	}
	return r, nil
}

func quote(s string) string { return "\"" + s + "\"" }

// Stats is a snapshot of the Limiter's counters.
type Stats struct {
	Clients         int           // client entries tracked
	ActiveClients   int           // clients with at least one download in progress
	ActiveDownloads int           // leases not yet released
	BytesShaped     uint64        // bytes returned by shaped readers
	Waits           uint64        // slices that had to wait for tokens
	WaitTime        time.Duration // total time slices waited
	Evictions       uint64        // idle clients forgotten (TTL or MaxClients)
	Rejections      map[string]uint64
	RedisFallbacks  uint64 // admissions decided locally because Redis failed or was backing off
}

// Stats returns current counters. Rejections is keyed by Rejection.Reason.
func (l *Limiter) Stats() Stats {
	return Stats{
		Clients:         int(l.nClients.Load()),
		ActiveClients:   int(l.activeClients.Load()),
		ActiveDownloads: int(l.activeDL.Load()),
		BytesShaped:     l.bytesShaped.Load(),
		Waits:           l.waits.Load(),
		WaitTime:        time.Duration(l.waitNanos.Load()),
		Evictions:       l.evictions.Load(),
		Rejections: map[string]uint64{
			ReasonClientConcurrency: l.rejClient.Load(),
			ReasonNodeConcurrency:   l.rejNode.Load(),
			ReasonRequestRate:       l.rejRate.Load(),
		},
		RedisFallbacks: l.redisFallback.Load(),
	}
}

// janitor forgets idle clients while no Admit comes to do it.
func (l *Limiter) janitor() {
	defer close(l.done)
	every := min(max(l.s.IdleTTL/2, time.Second), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
			l.sweep()
		}
	}
}

// sweep evicts every client idle longer than IdleTTL, in batches so Admit
// is never held up long.
func (l *Limiter) sweep() {
	for {
		l.mu.Lock()
		n := l.evictLocked(l.now().UnixNano(), 1024)
		l.mu.Unlock()
		if n < 1024 {
			return
		}
	}
}

// getLocked returns id's client, creating it (and evicting to make room)
// when it is new. The client is moved to the front of the idle list if idle.
func (l *Limiter) getLocked(id string, now int64) *client {
	c := l.clients[id]
	if c == nil {
		// The table holds MaxClients idle clients at most: make room first.
		for len(l.clients) >= l.s.MaxClients && l.idle.prev != &l.idle {
			l.removeLocked(l.idle.prev)
		}
		c = &client{id: id}
		if l.s.RequestRate > 0 {
			c.reqs = rate.NewLimiter(rate.Limit(l.s.RequestRate), l.s.RequestBurst)
		}
		l.clients[id] = c
		l.nClients.Store(int64(len(l.clients)))
		c.lastSeen = now
		l.pushFrontLocked(c)
		return c
	}
	c.lastSeen = now
	if c.next != nil {
		l.unlinkLocked(c)
		l.pushFrontLocked(c)
	}
	return c
}

// evictLocked removes up to limit clients idle for longer than IdleTTL,
// oldest first, and returns how many it removed.
func (l *Limiter) evictLocked(now int64, limit int) int {
	n := 0
	ttl := int64(l.s.IdleTTL)
	for n < limit {
		c := l.idle.prev
		if c == &l.idle || now-c.lastSeen < ttl {
			break
		}
		l.removeLocked(c)
		n++
	}
	return n
}

func (l *Limiter) removeLocked(c *client) {
	l.unlinkLocked(c)
	delete(l.clients, c.id)
	l.nClients.Store(int64(len(l.clients)))
	l.evictions.Add(1)
}

func (l *Limiter) pushFrontLocked(c *client) {
	c.prev = &l.idle
	c.next = l.idle.next
	c.next.prev = c
	l.idle.next = c
}

func (l *Limiter) unlinkLocked(c *client) {
	c.prev.next = c.next
	c.next.prev = c.prev
	c.prev, c.next = nil, nil
}
