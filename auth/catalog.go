package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/edgeproxy/edgeproxy/internal/logging"
)

// FileMeta describes a downloadable file: where it lives in the origin and
// what to tell the client about it.
type FileMeta struct {
	ID          string
	Bucket      string
	Key         string
	Filename    string // for Content-Disposition; may be empty
	SHA256      string // hex; may be empty
	Size        int64
	ContentType string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// CatalogConfig configures a Catalog; the zero value means the defaults.
type CatalogConfig struct {
	// KeyPrefix is prepended to a file id to form its Redis key.
	// Default "file:meta:".
	KeyPrefix string `yaml:"key_prefix"`
	// CacheTTL is how long a looked-up entry is served from memory. Put on
	// this process drops it at once; other processes see the change after
	// at most CacheTTL. Default 30s; negative disables the cache.
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// CacheSize bounds the number of cached entries. Default 10000.
	CacheSize int `yaml:"cache_size"`
	// Timeout bounds one Redis lookup. Default 100ms.
	Timeout time.Duration `yaml:"timeout"`
	// NegativeTTL is how long an id found missing is answered as missing
	// without asking Redis again, so requests for unknown ids cost one
	// HGETALL per id and period, not one each. Put on this process clears
	// the entry at once; a file registered through another process is seen
	// here after at most NegativeTTL. Default 5s; negative disables.
	NegativeTTL time.Duration `yaml:"negative_ttl"`
	// NegativeSize bounds the number of ids remembered as missing (least
	// recently used go first, so a flood of random ids evicts entries but
	// never grows memory: ids are at most 1 KiB). Default 10000.
	NegativeSize int `yaml:"negative_size"`
	// SourceTimeout bounds one read of the backing store (PostgreSQL) on
	// a Redis miss, on top of Timeout: an uncached id answers within
	// 2*Timeout+SourceTimeout (read, source, write-back to Redis) whatever
	// the store does. Default 250ms.
	SourceTimeout time.Duration `yaml:"source_timeout"`
	// RedisTTL is how long an entry read from the backing store stays in
	// Redis (entries written by others keep their own expiry). It bounds
	// how long a lost invalidation can serve a stale record. Default 1h.
	RedisTTL time.Duration `yaml:"redis_ttl"`
	// InvalidateChannel is the Pub/Sub channel Invalidate publishes on;
	// every Catalog running Listen drops the id from memory. Default
	// "file:meta:invalidated".
	InvalidateChannel string `yaml:"invalidate_channel"`
}

// CatalogSource is the system of record behind Redis (PostgreSQL, through
// catalogdb.Store). Lookup returns ErrFileNotFound for an unknown id and
// any other error when it cannot answer; it must honour ctx's deadline.
type CatalogSource interface {
	Lookup(ctx context.Context, id string) (FileMeta, error)
}

// CatalogOption changes how a Catalog is built.
type CatalogOption func(*Catalog)

// WithSource makes the Catalog read src when Redis has no entry (or does
// not answer), writing what it finds back to Redis for RedisTTL.
func WithSource(src CatalogSource) CatalogOption {
	return func(c *Catalog) { c.src = src }
}

// Catalog maps file ids to FileMeta, stored as hashes at "file:meta:<id>"
// with fields bucket, key, filename, sha256, size, content_type, created_at
// and updated_at (unix seconds). It is safe for concurrent use; concurrent
// misses for one id share a single Redis read.
type Catalog struct {
	cfg    CatalogConfig
	client redis.UniversalClient
	log    *slog.Logger
	cache  *expirable.LRU[string, FileMeta]
	// missing maps ids found absent to when that answer expires; nil when
	// NegativeTTL is negative. It has its own expiry (not expirable.LRU's)
	// so that tests can drive it with now.
	missing *lru.Cache[string, time.Time]
	now     func() time.Time // replaced in tests
	group   singleflight.Group
	src     CatalogSource // nil: Redis is the catalog

	fillMu sync.Mutex // orders cache fills after Put's invalidation
	gen    uint64     // guarded by fillMu; bumped by every Put
}

// NewCatalog validates cfg and returns a Catalog reading through client.
func NewCatalog(cfg CatalogConfig, client redis.UniversalClient, logger *slog.Logger, opts ...CatalogOption) (*Catalog, error) {
	if client == nil {
		return nil, errors.New("auth: NewCatalog: nil redis client")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Catalog{cfg: cfg, client: client, log: logging.For(logger, "catalog"), now: time.Now}
	for _, o := range opts {
		o(c)
	}
	if cfg.CacheTTL > 0 {
		c.cache = expirable.NewLRU[string, FileMeta](cfg.CacheSize, nil, cfg.CacheTTL)
	}
	if cfg.NegativeTTL > 0 {
		c.missing, _ = lru.New[string, time.Time](cfg.NegativeSize) // size > 0 checked above
	}
	return c, nil
}

// withDefaults returns c with zero fields set to their defaults, or an
// error naming the first invalid field.
func (c CatalogConfig) withDefaults() (CatalogConfig, error) {
	if c.KeyPrefix == "" {
		c.KeyPrefix = "file:meta:"
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = 30 * time.Second
	}
	if c.CacheSize == 0 {
		c.CacheSize = 10_000
	}
	if c.Timeout == 0 {
		c.Timeout = 100 * time.Millisecond
	}
	if c.NegativeTTL == 0 {
		c.NegativeTTL = 5 * time.Second
	}
	if c.NegativeSize == 0 {
		c.NegativeSize = 10_000
	}
	if c.SourceTimeout == 0 {
		c.SourceTimeout = 250 * time.Millisecond
	}
	if c.RedisTTL == 0 {
		c.RedisTTL = time.Hour
	}
	if c.InvalidateChannel == "" {
		c.InvalidateChannel = "file:meta:invalidated"
	}
	switch {
	case c.SourceTimeout < 0:
		return c, fmt.Errorf("auth: catalog config source_timeout=%v: must be positive", c.SourceTimeout)
	case c.RedisTTL < 0:
		return c, fmt.Errorf("auth: catalog config redis_ttl=%v: must be positive", c.RedisTTL)
	case c.CacheSize < 0:
		return c, fmt.Errorf("auth: catalog config cache_size=%d: must be positive", c.CacheSize)
	case c.Timeout < 0:
		return c, fmt.Errorf("auth: catalog config timeout=%v: must be positive", c.Timeout)
	case c.NegativeSize < 0:
		return c, fmt.Errorf("auth: catalog config negative_size=%d: must be positive", c.NegativeSize)
	}
	return c, nil
}

// Lookup returns the file's metadata, ErrFileNotFound when there is no such
// file, or an error wrapping the Redis failure (the caller should answer
// 503) or ErrMalformedRecord. An id found missing is answered from memory
// for CatalogConfig.NegativeTTL.
func (c *Catalog) Lookup(ctx context.Context, id string) (FileMeta, error) {
	if id == "" {
		return FileMeta{}, ErrFileNotFound
	}
	if c.cache != nil {
		if m, ok := c.cache.Get(id); ok {
			return m, nil
		}
	}
	if c.knownMissing(id) {
		return FileMeta{}, ErrFileNotFound
	}
	// The shared read runs on a context detached from any one caller, so
	// one caller giving up does not fail the others.
	ch := c.group.DoChan(id, func() (any, error) {
		c.fillMu.Lock()
		gen := c.gen
		c.fillMu.Unlock()
		m, err := c.read(context.WithoutCancel(ctx), id)
		if errors.Is(err, ErrFileNotFound) {
			if c.missing != nil {
				c.fillMu.Lock()
				if c.gen == gen { // else a Put raced with this read
					c.missing.Add(id, c.now().Add(c.cfg.NegativeTTL))
				}
				c.fillMu.Unlock()
			}
			return FileMeta{}, err
		}
		if err != nil {
			return FileMeta{}, err
		}
		if c.cache != nil {
			c.fillMu.Lock()
			if c.gen == gen { // else a Put raced with this read
				c.cache.Add(id, m)
			}
			c.fillMu.Unlock()
		}
		return m, nil
	})
	// The timer bounds the wait even when the client ignores context
	// deadlines (ContextTimeoutEnabled=false).
	budget := c.cfg.Timeout
	if c.src != nil {
		budget += c.cfg.SourceTimeout + c.cfg.Timeout // + the write-back
	}
	t := time.NewTimer(budget)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return FileMeta{}, fmt.Errorf("auth: catalog lookup %q: %w", id, ctx.Err())
	case <-t.C:
		return FileMeta{}, fmt.Errorf("auth: catalog lookup %q: %w", id, context.DeadlineExceeded)
	case r := <-ch:
		return r.Val.(FileMeta), r.Err
	}
}

// read asks Redis, then the source on a miss or a Redis failure, writing
// what the source found back to Redis.
func (c *Catalog) read(ctx context.Context, id string) (FileMeta, error) {
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	h, rerr := c.client.HGetAll(rctx, c.cfg.KeyPrefix+id).Result()
	cancel()
	if rerr == nil && len(h) > 0 {
		return ParseFileMeta(id, h)
	}
	if rerr != nil {
		rerr = fmt.Errorf("auth: catalog lookup %q: %w", id, rerr)
	}
	if c.src == nil {
		if rerr != nil {
			return FileMeta{}, rerr
		}
		return FileMeta{}, ErrFileNotFound
	}
	sctx, cancel := context.WithTimeout(ctx, c.cfg.SourceTimeout)
	m, err := c.src.Lookup(sctx, id)
	cancel()
	if errors.Is(err, ErrFileNotFound) {
		return FileMeta{}, ErrFileNotFound
	}
	if err != nil {
		return FileMeta{}, errors.Join(fmt.Errorf("auth: catalog source lookup %q: %w", id, err), rerr)
	}
	if rerr == nil {
		// Best effort: the next miss reads the source again.
		wctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		if err := c.writeRedis(wctx, m, c.cfg.RedisTTL); err != nil {
			c.log.Debug("catalog write-back to redis failed", "file_id", id, "err", err)
		}
		cancel()
	}
	return m, nil
}

// writeRedis replaces the file's hash; ttl 0 keeps it without expiry.
func (c *Catalog) writeRedis(ctx context.Context, m FileMeta, ttl time.Duration) error {
	key := c.cfg.KeyPrefix + m.ID
	_, err := c.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		p.HSet(ctx, key, map[string]any{
			"bucket":       m.Bucket,
			"key":          m.Key,
			"filename":     m.Filename,
			"sha256":       m.SHA256,
			"size":         strconv.FormatInt(m.Size, 10),
			"content_type": m.ContentType,
			"created_at":   strconv.FormatInt(m.CreatedAt.Unix(), 10),
			"updated_at":   strconv.FormatInt(m.UpdatedAt.Unix(), 10),
		})
		if ttl > 0 {
			p.Expire(ctx, key, ttl)
		}
		return nil
	})
	return err
}

// knownMissing reports whether id was found missing less than
// NegativeTTL ago.
func (c *Catalog) knownMissing(id string) bool {
	if c.missing == nil {
		return false
	}
	until, ok := c.missing.Get(id)
	if !ok {
		return false
	}
	if c.now().Before(until) {
		return true
	}
	c.missing.Remove(id)
	return false
}

// Put stores m (replacing every field) and drops this process's cached copy.
// UpdatedAt defaults to now and CreatedAt to UpdatedAt.
func (c *Catalog) Put(ctx context.Context, m FileMeta) error {
	switch {
	case m.ID == "":
		return fmt.Errorf("auth: catalog put: empty id: %w", ErrInvalidSpec)
	case m.Bucket == "" || m.Key == "":
		return fmt.Errorf("auth: catalog put %q: bucket and key are required: %w", m.ID, ErrInvalidSpec)
	case m.Size < 0:
		return fmt.Errorf("auth: catalog put %q: negative size: %w", m.ID, ErrInvalidSpec)
	}
	if m.UpdatedAt.IsZero() {
		m.UpdatedAt = time.Now()
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = m.UpdatedAt
	}
	err := c.writeRedis(ctx, m, 0)
	c.forget(m.ID)
	if err != nil {
		return fmt.Errorf("auth: catalog put %q: %w", m.ID, err)
	}
	return nil
}

// ParseFileMeta builds a FileMeta from a file:meta hash. bucket and key are
// required; size must be a non-negative integer when present; created_at
// and updated_at are unix seconds or RFC 3339. Unknown fields are ignored.
func ParseFileMeta(id string, h map[string]string) (FileMeta, error) {
	m := FileMeta{
		ID: id, Bucket: h["bucket"], Key: h["key"], Filename: h["filename"],
		SHA256: h["sha256"], ContentType: h["content_type"],
	}
	bad := func(field, val string) error {
		return fmt.Errorf("%w: file %q: %s %q", ErrMalformedRecord, id, field, val)
	}
	if m.Bucket == "" {
		return FileMeta{}, bad("bucket", "")
	}
	if m.Key == "" {
		return FileMeta{}, bad("key", "")
	}
	if s := h["size"]; s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return FileMeta{}, bad("size", s)
		}
		m.Size = n
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"created_at", &m.CreatedAt}, {"updated_at", &m.UpdatedAt}} {
		s := h[f.name]
		if s == "" {
			continue
		}
		t, err := parseTime(s)
		if err != nil {
			return FileMeta{}, bad(f.name, s)
		}
		*f.dst = t
	}
	return m, nil
}

func parseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > 253402300799 {
			return time.Time{}, errors.New("out of range")
		}
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Parse(time.RFC3339, s)
}

// forget drops id from this process's memory (both tables) and makes a
// read in flight not cache what it read. id "" drops everything.
func (c *Catalog) forget(id string) {
	c.fillMu.Lock()
	c.gen++
	if id == "" {
		if c.cache != nil {
			c.cache.Purge()
		}
		if c.missing != nil {
			c.missing.Purge()
		}
	} else {
		if c.cache != nil {
			c.cache.Remove(id)
		}
		if c.missing != nil {
			c.missing.Remove(id)
		}
	}
	c.fillMu.Unlock()
	if id != "" {
		c.group.Forget(id)
	}
}

// Invalidate is called after the system of record changed id: it deletes
// the Redis entry and tells every Catalog running Listen (this one too) to
// drop id from memory. Pub/Sub delivers at most once; a node that missed
// the message serves its copy for at most CacheTTL (NegativeTTL for an id
// it had found missing).
func (c *Catalog) Invalidate(ctx context.Context, id string) error {
	c.forget(id)
	if err := c.client.Del(ctx, c.cfg.KeyPrefix+id).Err(); err != nil {
		return fmt.Errorf("auth: catalog invalidate %q: %w", id, err)
	}
	if err := c.client.Publish(ctx, c.cfg.InvalidateChannel, id).Err(); err != nil {
		return fmt.Errorf("auth: catalog invalidate %q: publish: %w", id, err)
	}
	return nil
}

// Listen applies invalidations published by any node until ctx ends. The
// client resubscribes by itself after a connection loss; each
// (re)subscription purges the memory tables, since messages sent in the
// gap are lost. ready, when not nil, is closed after the first
// subscription is live.
func (c *Catalog) Listen(ctx context.Context, ready chan<- struct{}) {
	ps := c.client.Subscribe(ctx, c.cfg.InvalidateChannel)
	defer ps.Close()
	ch := ps.ChannelWithSubscriptions(redis.WithChannelHealthCheckInterval(5 * time.Second))
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			switch m := msg.(type) {
			case *redis.Subscription:
				c.forget("")
				if ready != nil {
					close(ready)
					ready = nil
				}
			case *redis.Message:
				c.forget(m.Payload)
			}
		}
	}
}
