package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/internal/logging"
)

// Grant is what a successful Verify hands the proxy.
type Grant struct {
	// Token is the verified token. Never log it; use Redact.
	Token  string
	FileID string
	UserID string
	// Rate is the per-token bandwidth limit in bytes per second; 0: none.
	Rate int64
	// Session identifies the download session the request belongs to (see
	// "What counts as a use" in the package documentation). It is a hash
	// and reveals nothing about the token, so it may be logged. It is set
	// only for tokens with max_uses, the only ones whose uses are counted.
	Session string
}

// Verifier checks download tokens stored in Redis and administers them.
// It is safe for concurrent use. Close stops its revocation listener.
type Verifier struct {
	cfg    Config
	client redis.UniversalClient
	log    *slog.Logger
	now    func() time.Time // replaced in tests

	// cache holds positive lookups of tokens without max_uses. gen is bumped
	// by every invalidation; a lookup stores its result only if gen did not
	// move while it was reading Redis, so a revocation racing with a read
	// cannot be undone by the read's late cache fill.
	cache  *expirable.LRU[string, *cacheEntry]
	fillMu sync.Mutex // orders fills after invalidations
	gen    uint64     // guarded by fillMu

	sem      chan struct{} // bounds in-flight Redis lookups
	throttle *throttle
	warn     logLimiter

	stop    context.CancelFunc
	done    chan struct{}
	ready   chan struct{} // closed by the listener after its first purge
	closeMu sync.Mutex
	closed  bool
	psMu    sync.Mutex
	ps      *redis.PubSub // current subscription, guarded by psMu
}

type cacheEntry struct {
	rec        Record
	freshUntil time.Time // trusted without Redis until then
	notAfter   time.Time // key TTL or expires_at; zero: none
}

// usable reports whether the entry still describes a live token.
func (e *cacheEntry) usable(now time.Time) bool {
	return !e.rec.expired(now) && (e.notAfter.IsZero() || now.Before(e.notAfter))
}

// New returns a Verifier using client, which may be a standalone, Sentinel or
// Cluster client. It starts listening for revocations at once; call Close
// when done. A nil logger discards.
//
// Create the client with ContextTimeoutEnabled: true. Verify returns at the
// budget either way, but without it go-redis ignores context deadlines, so a
// lookup stuck on a hung server keeps its in-flight slot (and a connection)
// until the client's own ReadTimeout. The client's PoolSize bounds how many
// connections an outage can leave dialling.
func New(cfg Config, client redis.UniversalClient, logger *slog.Logger) (*Verifier, error) {
	if client == nil {
		return nil, errors.New("auth: New: nil redis client")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	v := &Verifier{
		cfg:      cfg,
		client:   client,
		log:      logging.For(logger, "auth"),
		now:      time.Now,
		sem:      make(chan struct{}, cfg.MaxInFlight),
		throttle: newThrottle(cfg.FailuresPerMinute, cfg.ThrottleSize),
		done:     make(chan struct{}),
		ready:    make(chan struct{}),
	}
	if cfg.CacheTTL > 0 {
		ttl := cfg.CacheTTL
		if cfg.FailOpenCached && cfg.FailOpenMaxAge > ttl {
			ttl = cfg.FailOpenMaxAge
		}
		v.cache = expirable.NewLRU[string, *cacheEntry](cfg.CacheSize, nil, ttl)
	}
	if !contextTimeouts(client) {
		v.log.Info("redis client has ContextTimeoutEnabled=false; the budget still holds, " +
			"but a stuck lookup keeps its in-flight slot until the client's own timeouts")
	}
	ctx, cancel := context.WithCancel(context.Background())
	v.stop = cancel
	go v.listen(ctx)
	return v, nil
}

// Close stops the revocation listener and waits for it to exit.
func (v *Verifier) Close() error {
	v.closeMu.Lock()
	if !v.closed {
		v.closed = true
		v.stop()
		v.psMu.Lock()
		if v.ps != nil {
			_ = v.ps.Close() // unblocks a pending Receive
		}
		v.psMu.Unlock()
	}
	v.closeMu.Unlock()
	<-v.done
	return nil
}

// Ready returns a channel that is closed once the revocation listener holds
// its first subscription and has purged the cache for it. From then on a
// Revoke anywhere reaches this Verifier, and nothing cached afterwards is
// dropped by that purge. Callers that must not lose a cache entry to the
// purge, or that need revocations to arrive (tests, a readiness probe),
// wait on it; Verify itself never does. It stays open while Redis is
// unreachable at start.
func (v *Verifier) Ready() <-chan struct{} { return v.ready }

func (v *Verifier) key(token string) string { return v.cfg.KeyPrefix + token }

// Verify checks that token grants fileID to clientIP and, for tokens with
// max_uses, counts the use (see "What counts as a use"). Refusals are
// *Error values matching one of the Err* sentinels: token_missing,
// token_invalid (unknown, expired or malformed), token_wrong_file,
// ip_not_allowed, uses_exhausted, auth_unavailable (Redis down or slower than
// Config.Budget; carries RetryAfter) and too_many_attempts (carries
// RetryAfter).
func (v *Verifier) Verify(ctx context.Context, token, fileID string, clientIP netip.Addr) (Grant, error) {
	if token == "" {
		return Grant{}, refuse(ErrTokenMissing, nil)
	}
	now := v.now()
	if err := v.throttled(clientIP, now); err != nil {
		return Grant{}, err
	}
	g, err := v.verify(ctx, token, fileID, clientIP, now)
	if errors.Is(err, ErrTokenInvalid) || errors.Is(err, ErrTokenWrongFile) {
		v.throttle.fail(clientIP, now)
	}
	return g, err
}

// maxTokenLen bounds tokens looked up in Redis: created tokens have 32
// characters and backends' are similar; longer input is junk or an attempt
// to make Redis work on huge keys.
const maxTokenLen = 256

func (v *Verifier) verify(ctx context.Context, token, fileID string, ip netip.Addr, now time.Time) (Grant, error) {
	if len(token) > maxTokenLen {
		return Grant{}, refuse(ErrTokenInvalid, errors.New("token too long"))
	}
	if v.cache != nil {
		if e, ok := v.cache.Get(token); ok && now.Before(e.freshUntil) {
			if !e.usable(now) {
				v.cache.Remove(token)
				return Grant{}, refuse(ErrTokenInvalid, errors.New("expired"))
			}
			return v.grant(token, fileID, ip, &e.rec)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Budget)
	defer cancel()

	gen := v.generation()
	var (
		rec  Record
		form string
		ttl  time.Duration
	)
	err := v.call(ctx, func(ctx context.Context) (err error) {
		rec, form, ttl, err = v.fetch(ctx, token)
		return err
	})
	switch {
	case errors.Is(err, errNoRecord):
		return Grant{}, refuse(ErrTokenInvalid, err)
	case errors.Is(err, ErrMalformedRecord):
		v.log.Warn("malformed token record", "token", Redact(token), "err", err)
		return Grant{}, refuse(ErrTokenInvalid, err)
	case err != nil:
		return v.unavailable(token, fileID, ip, now, err)
	}
	if rec.expired(now) {
		return Grant{}, refuse(ErrTokenInvalid, errors.New("expired"))
	}
	if rec.MaxUses == 0 && v.cache != nil {
		e := &cacheEntry{rec: rec, freshUntil: now.Add(v.cfg.CacheTTL)}
		if ttl > 0 {
			e.notAfter = now.Add(ttl)
		}
		v.fill(token, e, gen)
	}
	g, err := v.grant(token, fileID, ip, &rec)
	if err != nil || rec.MaxUses == 0 {
		return g, err
	}
	if form != "hash" {
		// Uses can only be counted in the hash form; refusing is the only
		// way not to over-serve.
		v.log.Warn("max_uses on a string-form token record; refusing", "token", Redact(token))
		return Grant{}, refuse(ErrTokenInvalid, errors.New("max_uses needs the hash form"))
	}
	if err := v.call(ctx, func(ctx context.Context) error { return v.use(ctx, token, g.Session, now) }); err != nil {
		if errors.Is(err, ErrUsesExhausted) || errors.Is(err, ErrTokenInvalid) {
			return Grant{}, err
		}
		return Grant{}, v.unavailableErr(err)
	}
	return g, nil
}

var errInFlight = errors.New("too many token lookups in flight")

// call runs one Redis operation within ctx's deadline (the budget), holding
// an in-flight slot. The operation runs in its own goroutine, so the caller
// is released at the deadline even when the client does not honour context
// deadlines (go-redis without ContextTimeoutEnabled) or is stuck dialling;
// the goroutine keeps its slot until Redis actually answers or the client
// gives up, so at most MaxInFlight of them exist and the excess is refused
// at once instead of piling up.
func (v *Verifier) call(ctx context.Context, op func(context.Context) error) error {
	select {
	case v.sem <- struct{}{}:
	default:
		return errInFlight
	}
	done := make(chan error, 1)
	go func() {
		defer func() { <-v.sem }()
		done <- op(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("auth: token store: %w", ctx.Err())
	}
}

// grant checks a live record against the request.
func (v *Verifier) grant(token, fileID string, ip netip.Addr, rec *Record) (Grant, error) {
	if rec.FileID != fileID {
		return Grant{}, refuse(ErrTokenWrongFile, nil)
	}
	if !rec.allows(ip) {
		return Grant{}, refuse(ErrIPNotAllowed, nil)
	}
	g := Grant{Token: token, FileID: rec.FileID, UserID: rec.UserID, Rate: rec.Rate}
	if rec.MaxUses > 0 {
		// Only counted tokens need the session; hashing it for every
		// cached check was 2% of a hot hit's CPU.
		g.Session = v.sessionID(token, fileID, ip)
	}
	return g, nil
}

// unavailable handles a failed or refused Redis lookup: fail closed, or,
// with FailOpenCached, serve a cached record that is still live.
func (v *Verifier) unavailable(token, fileID string, ip netip.Addr, now time.Time, cause error) (Grant, error) {
	if v.cfg.FailOpenCached && v.cache != nil {
		if e, ok := v.cache.Peek(token); ok && e.usable(now) && now.Sub(e.freshUntil) < v.cfg.FailOpenMaxAge {
			return v.grant(token, fileID, ip, &e.rec)
		}
	}
	return Grant{}, v.unavailableErr(cause)
}

func (v *Verifier) unavailableErr(cause error) error {
	if v.warn.allow(time.Now()) {
		v.log.Warn("token store unavailable; failing closed", "err", cause)
	}
	e := refuse(ErrAuthUnavailable, cause)
	e.RetryAfter = v.cfg.RetryAfter
	return e
}

func (v *Verifier) generation() uint64 {
	v.fillMu.Lock()
	defer v.fillMu.Unlock()
	return v.gen
}

// fill caches e unless an invalidation happened since generation gen was
// read: the read that produced e may predate a revocation.
func (v *Verifier) fill(token string, e *cacheEntry, gen uint64) {
	v.fillMu.Lock()
	defer v.fillMu.Unlock()
	if v.gen == gen {
		v.cache.Add(token, e)
	}
}

// invalidate drops token from the local cache; "" drops everything.
func (v *Verifier) invalidate(token string) {
	v.fillMu.Lock()
	defer v.fillMu.Unlock()
	v.gen++
	if v.cache == nil {
		return
	}
	if token == "" {
		v.cache.Purge()
		return
	}
	v.cache.Remove(token)
}

// sessionID derives the session identity: token, file and, unless
// SessionIgnoreIP, the client's network (IPv4 address or IPv6 /64).
// 128 bits of SHA-256, base64url: safe to log and store.
func (v *Verifier) sessionID(token, fileID string, ip netip.Addr) string {
	var buf [256]byte
	b := append(buf[:0], token...)
	b = append(b, 0)
	b = append(b, fileID...)
	b = append(b, 0)
	if !v.cfg.SessionIgnoreIP {
		b = clientKey(ip).AppendTo(b)
	}
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

var errNoRecord = errors.New("no such token")

// fetch reads the token's record and remaining key TTL in one round trip.
func (v *Verifier) fetch(ctx context.Context, token string) (Record, string, time.Duration, error) {
	args := make([]any, len(recordFields))
	for i, f := range recordFields {
		args[i] = f
	}
	res, err := lookupScript.Run(ctx, v.client, []string{v.key(token)}, args...).Slice()
	if err != nil {
		return Record{}, "", 0, fmt.Errorf("auth: lookup: %w", err)
	}
	if len(res) < 3 {
		return Record{}, "", 0, errNoRecord
	}
	form, _ := res[0].(string)
	pttl, _ := res[1].(int64)
	var ttl time.Duration
	if pttl > 0 {
		ttl = time.Duration(pttl) * time.Millisecond
	}
	var rec Record
	switch form {
	case "string":
		s, _ := res[2].(string)
		rec, err = ParseRecord(s)
	case "hash":
		m := make(map[string]string, len(recordFields))
		for i, f := range recordFields {
			if i+2 < len(res) {
				if s, ok := res[i+2].(string); ok {
					m[f] = s
				}
			}
		}
		rec, err = ParseRecordFields(m)
	default:
		return Record{}, "", 0, errNoRecord
	}
	return rec, form, ttl, err
}

// use counts one use of a max_uses token for session, atomically in Redis.
func (v *Verifier) use(ctx context.Context, token, session string, now time.Time) error {
	n, err := useScript.Run(ctx, v.client, []string{v.key(token)},
		sessionPrefix+session, now.UnixMilli(), v.cfg.SessionIdle.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("auth: count use: %w", err)
	}
	switch n {
	case useGone:
		return refuse(ErrTokenInvalid, errors.New("revoked while counting"))
	case useExhausted:
		return refuse(ErrUsesExhausted, nil)
	}
	return nil
}

// logLimiter lets one warning through per second, so an outage hitting every
// request does not flood the log.
type logLimiter struct{ last atomic.Int64 }

func (l *logLimiter) allow(now time.Time) bool {
	t := now.UnixNano()
	last := l.last.Load()
	return t-last >= int64(time.Second) && l.last.CompareAndSwap(last, t)
}

// contextTimeouts reports whether client honours context deadlines, when
// that can be known.
func contextTimeouts(client redis.UniversalClient) bool {
	switch c := client.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled
	}
	return true
}
