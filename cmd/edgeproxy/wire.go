package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/admin"
	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/cache"
	"github.com/edgeproxy/edgeproxy/internal/clientip"
	"github.com/edgeproxy/edgeproxy/internal/logging"
	"github.com/edgeproxy/edgeproxy/internal/redisconn"
	"github.com/edgeproxy/edgeproxy/internal/stats"
	"github.com/edgeproxy/edgeproxy/limiter"
	"github.com/edgeproxy/edgeproxy/origin"
	"github.com/edgeproxy/edgeproxy/proxy"
	"github.com/edgeproxy/edgeproxy/upload"
)

// This file is the composition root: build makes every part from the
// configuration, in dependency order (origin, cache, PostgreSQL, Redis and
// access, statistics, the access-count sync, prefetching, the proxy, the
// admin API), and app.serve in
// main.go runs them. The configuration types are in config.go.

// app is the wired process.
type app struct {
	cfg Config
	// root is the process logger the parts get (each adds its component);
	// log is the binary's own, component=edgeproxy.
	root *slog.Logger
	log  *slog.Logger
	// level is the loggers' level, which a reload changes (reload.go).
	level *slog.LevelVar
	// configPath and environ are where a reload reads the configuration
	// again; no path, no reload.
	configPath string
	environ    []string
	// listen opens the listeners (see serveOptions.listen).
	listen func(network, addr string) (net.Listener, error)
	proxy  *proxy.Server
	admin  *admin.API
	// adminAddr is the admin listen address after defaults.
	adminAddr string
	cache     *cache.Cache // nil without the cache (or with -check)
	redis     redis.UniversalClient
	redisErrs *redisErrors
	stats     *stats.Recorder
	prefetch  *prefetcher
	limiter   *limiter.Limiter
	// timed measures origin latency for the metrics registry.
	timed *timedOrigin
	// endpoints reports the S3 origin's endpoints (nil for dir).
	endpoints func() []origin.EndpointStat
	// db is PostgreSQL, the system of record; nil without postgres.dsn.
	db *catalogDB
	// loops run in the background while serving (catalog invalidations,
	// the access-count sync); app.serve stops and waits for them.
	loops []func(context.Context)
	// proxyDeps and adminDeps collect each part as it is built, so that a
	// part left out stays a nil interface rather than a typed nil.
	proxyDeps proxy.Deps
	adminDeps admin.Deps
	// closes run last to first by close.
	closes []func() error
	// s3 is the S3 origin, nil for a directory; uploads write through it.
	s3 *origin.S3
}

// close releases every part, last built first, and returns their errors.
func (a *app) close() error {
	var errs []error
	for i := len(a.closes) - 1; i >= 0; i-- {
		errs = append(errs, a.closes[i]())
	}
	return errors.Join(errs...)
}

// build validates cfg by constructing every part; a configuration error is
// a usageError naming the key. With checkOnly (edgeproxy -check) the cache
// is validated but not built, so nothing on disk changes, and the proxy
// reads the origin directly. build never changes process-wide settings;
// app.serve does.
func build(cfg Config, logw io.Writer, checkOnly bool) (_ *app, err error) {
	level := new(slog.LevelVar)
	log, err := newLogger(cfg.Log, logw, level)
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, root: log, log: logging.For(log, "edgeproxy"), level: level}
	a.proxyDeps.Logger = log
	a.adminDeps.Logger = log
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	steps := []func(Config) error{
		a.buildOrigin,
		func(cfg Config) error { return a.buildCache(cfg, checkOnly) },
		a.buildCatalogDB,
		a.buildAccess,
		a.buildInvalidation,
		a.buildStats,
		a.buildSync,
		a.buildPrefetch,
		func(cfg Config) error { return a.buildUploads(cfg, checkOnly) },
		a.buildProxy,
		a.buildAdmin,
	}
	for _, step := range steps {
		if err := step(cfg); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// buildOrigin opens the object store, wrapped to time its requests.
func (a *app) buildOrigin(cfg Config) error {
	var store origin.Store
	switch cfg.Origin.Kind {
	case "s3":
		s, err := origin.NewS3(cfg.Origin.S3)
		if err != nil {
			return usageError{fmt.Errorf("config: origin.s3: %w", err)}
		}
		a.closes = append(a.closes, s.Close)
		a.endpoints = s.Endpoints
		store = s
	case "dir":
		d, err := origin.NewDir(cfg.Origin.Dir)
		if err != nil {
			return usageError{fmt.Errorf("config: origin.dir: %w", err)}
		}
		a.closes = append(a.closes, d.Close)
		store = d
	default:
		return usageError{fmt.Errorf("config: key %q: %q is not s3 or dir", "origin.kind", cfg.Origin.Kind)}
	}
	if s3, ok := store.(*origin.S3); ok {
		a.s3 = s3
	}
	store, a.timed = wrapTimed(store)
	a.proxyDeps.Origin = store
	a.proxyDeps.Objects = store
	return nil
}

// buildCache puts the chunk cache in front of the origin when enabled.
func (a *app) buildCache(cfg Config, checkOnly bool) error {
	switch {
	case !cfg.Cache.Enabled:
		return nil
	case checkOnly:
		if err := cache.Check(cfg.Cache.Config); err != nil {
			return cacheConfigError(err)
		}
		return nil
	}
	c, err := cache.New(cfg.Cache.Config, a.proxyDeps.Origin, a.root)
	if err != nil {
		return cacheConfigError(err)
	}
	a.closes = append(a.closes, c.Close)
	a.cache = c
	a.proxyDeps.Objects = c
	a.adminDeps.Purger = c
	a.adminDeps.CacheStats = func() any { return map[string]any{"cache": c.Stats()} }
	return nil
}

// cacheConfigError is the usage error for a cache that cannot be built. A
// refused disk directory gets the one-line form of the other config
// errors, naming the key.
func cacheConfigError(err error) error {
	var de *cache.DiskDirError
	if errors.As(err, &de) {
		return usageError{fmt.Errorf("config: key %q: %q %s", "cache.disk_dir", de.Dir, de.Reason)}
	}
	return usageError{fmt.Errorf("config: cache: %w", err)}
}

// buildAccess wires Redis, the token verifier, the catalog, the URL
// signer, the client-IP resolver and the limiter.
func (a *app) buildAccess(cfg Config) error {
	rdb := newRedis(cfg.Redis)
	if rdb != nil {
		a.closes = append(a.closes, rdb.Close)
		a.redis = rdb
		a.redisErrs = &redisErrors{}
		rdb.AddHook(a.redisErrs)
		v, err := auth.New(cfg.Auth.Config, rdb, a.root)
		if err != nil {
			return usageError{fmt.Errorf("config: %w", err)}
		}
		a.closes = append(a.closes, v.Close)
		a.proxyDeps.Tokens = v
		a.adminDeps.Tokens = v
		if cfg.Auth.Catalog.Enabled {
			if err := a.buildCatalog(cfg, rdb); err != nil {
				return err
			}
		}
	} else if cfg.Auth.Catalog.Enabled {
		return usageError{fmt.Errorf("config: key %q: the catalog needs redis.addrs", "auth.catalog.enabled")}
	}
	if len(cfg.Auth.Signer.Keys) > 0 {
		s, err := auth.NewSigner(cfg.Auth.Signer)
		if err != nil {
			return usageError{fmt.Errorf("config: %w", err)}
		}
		a.proxyDeps.Signer = s
	}
	cip, err := clientIPConfig(cfg, a.log)
	if err != nil {
		return usageError{err}
	}
	// The resolver is always set: it trusts no one unless client_ip says so.
	if a.proxyDeps.ClientIP, err = clientip.New(cip); err != nil {
		return usageError{fmt.Errorf("config: %w", err)}
	}
	l, err := a.newLimiter(cfg.Limiter)
	if err != nil {
		return err
	}
	if l != nil {
		a.limiter = l
		a.proxyDeps.Limiter = l
	}
	return nil
}

// newLimiter builds the limiter, or nil when no limit is configured. It
// closes with the app: a reload that replaces it leaves it to the
// downloads it admitted, which closing it would end.
func (a *app) newLimiter(c LimiterConfig) (*limiter.Limiter, error) {
	if !c.active() {
		return nil, nil
	}
	opts := []limiter.Option{limiter.WithLogger(a.root)}
	if c.ClusterWide {
		if a.redis == nil {
			return nil, usageError{fmt.Errorf("config: key %q: needs redis.addrs", "limiter.cluster_wide")}
		}
		opts = append(opts, limiter.WithRedis(a.redis))
	}
	l, err := limiter.New(c.Config, time.Now, opts...)
	if err != nil {
		return nil, usageError{fmt.Errorf("config: %w", err)}
	}
	a.closes = append(a.closes, l.Close)
	return l, nil
}

// newRedis builds the client, or nil when no address is configured. It
// does not connect: the parts that use it degrade as documented while
// Redis is unreachable, and go-redis reconnects by itself.
func newRedis(c RedisConfig) redis.UniversalClient {
	if len(c.Addrs) == 0 {
		return nil
	}
	return redis.NewUniversalClient(redisconn.Options(redis.UniversalOptions{
		Addrs:      c.Addrs,
		MasterName: c.MasterName,
		Username:   c.Username,
		Password:   c.Password,
		// Only the failover client (master_name set) uses these.
		SentinelUsername: c.SentinelUsername,
		SentinelPassword: c.SentinelPassword,
		DB:               c.DB,
		DialTimeout:      c.DialTimeout,
		ReadTimeout:      c.ReadTimeout,
		WriteTimeout:     c.WriteTimeout,
		PoolSize:         c.PoolSize,
	}))
}

// buildStats starts the statistics recorder (on by default with Redis).
func (a *app) buildStats(cfg Config) error {
	explicit := cfg.Stats.Enabled != nil
	switch {
	case a.redis == nil && explicit && *cfg.Stats.Enabled:
		return usageError{fmt.Errorf("config: key %q: statistics need redis.addrs", "stats.enabled")}
	case a.redis == nil || explicit && !*cfg.Stats.Enabled:
		return nil
	}
	r, err := stats.New(cfg.Stats.Config, a.redis, a.root)
	if err != nil {
		return usageError{fmt.Errorf("config: %w", err)}
	}
	a.closes = append(a.closes, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return r.Close(ctx)
	})
	a.stats = r
	a.proxyDeps.Stats = statsAdapter{r}
	a.adminDeps.Stats = r
	return nil
}

// buildPrefetch prepares the cache warmer; app.serve runs it.
func (a *app) buildPrefetch(cfg Config) error {
	if !cfg.Prefetch.Enabled {
		return nil
	}
	if a.stats == nil || !cfg.Cache.Enabled {
		return usageError{fmt.Errorf("config: key %q: prefetching needs stats (redis.addrs) and the cache", "prefetch.enabled")}
	}
	pc := cfg.Prefetch.withDefaults()
	a.prefetch = &prefetcher{cfg: pc, cache: a.cache, hot: a.stats.Hot, catalog: a.proxyDeps.Catalog,
		bucket: cfg.Proxy.DownloadBucket, log: logging.For(a.root, "prefetch")}
	return nil
}

// buildUploads mounts the tus upload endpoint (package upload) on the
// download listener, with its janitor and the subscriber that applies the
// other nodes' purges, unless -check.
func (a *app) buildUploads(cfg Config, checkOnly bool) error {
	if !cfg.Upload.Enabled {
		return nil
	}
	if a.redis == nil || a.s3 == nil {
		return usageError{fmt.Errorf("config: key %q: uploads need redis.addrs and origin.kind s3", "upload.enabled")}
	}
	d := upload.Deps{Redis: a.redis, S3: a.s3, Limiter: a.limiter, Logger: a.root}
	if c, ok := a.proxyDeps.Catalog.(upload.Registry); ok {
		d.Catalog = c
	}
	if a.cache != nil {
		d.Purger = a.cache
	}
	if s, ok := a.proxyDeps.Signer.(upload.URLSigner); ok {
		d.Signer = s // auth.signer's keys sign upload URLs too
	}
	u, err := upload.New(cfg.Upload, d)
	if err != nil {
		return usageError{fmt.Errorf("config: %w", err)}
	}
	a.closes = append(a.closes, u.Close)
	if !checkOnly {
		ctx, cancel := context.WithCancel(context.Background())
		go u.Run(ctx)
		go u.Subscribe(ctx)
		a.closes = append(a.closes, func() error { cancel(); return nil })
	}
	a.proxyDeps.Uploads = u
	a.adminDeps.UploadTokens = u
	return nil
}

// buildProxy makes the download front end from the parts built so far.
func (a *app) buildProxy(cfg Config) error {
	p, err := proxy.New(cfg.Proxy, a.proxyDeps)
	if err != nil {
		return usageError{fmt.Errorf("config: %w", err)}
	}
	a.proxy = p
	return nil
}

// buildAdmin makes the admin API over the parts built so far, unless its
// listener is off.
func (a *app) buildAdmin(cfg Config) error {
	ac, err := cfg.Admin.WithDefaults()
	if err != nil {
		return usageError{fmt.Errorf("config: %w", err)}
	}
	if !ac.Enabled() {
		return nil
	}
	d := a.adminDeps
	d.DownloadBase = cfg.Auth.PublicURL
	if d.DownloadBase == "" {
		scheme := "http://"
		if a.proxy.TLSEnabled() {
			scheme = "https://"
		}
		d.DownloadBase = scheme + a.proxy.Config().Listen
	}
	d.Metrics = a.newRegistry()
	a.admin = admin.New(ac, d)
	a.adminAddr = ac.Listen
	return nil
}

// memoryOverhead is what the Go runtime may hold beside the memory tier
// and the connections' own memory: chunks of fills in flight (bounded by
// cache.fill_memory), disk block buffers of responses in flight, and
// goroutine stacks and the runtime's own metadata, which the soft limit
// covers too. What it does not cover is the binary's resident image (18
// MiB of file-backed pages, Pss_File in /proc/PID/smaps_rollup), and once
// the heap has reached the limit the runtime keeps about that much
// resident. So the limit is 100 MiB less that image and a little margin,
// and the process stays within memory_bytes + 100 MiB (+ its connections,
// below), the bound the cache promises, whenever its live data fits the
// limit. At 88 MiB, 400 slow clients over a 64 MiB tier peaked at 162 to
// 166 MiB of RSS (issue 10).
const memoryOverhead = 80 << 20

// overheadConns is how many connections memoryOverhead already covers:
// 400 slow clients (their buffers, stacks and request state, 16 MiB at 40
// KiB each) fit in it with the bound kept (155 to 158 MiB of RSS over a 64
// MiB tier), and counting them again pushed that run to 164 MiB.
const overheadConns = 512

// memoryLimit is the soft memory limit of a node with a memory tier of mem
// bytes and conns open download connections of perConn bytes each
// (proxy.Server.ConnMemory). Connections are counted because they are
// configuration too (proxy.max_conns bounds them) and their buffers are
// live heap the collector cannot free: 11,000 connections held 370 MiB of
// write buffers, and a limit that left them out had the collector running
// back to back. Counting the open ones beyond overheadConns, rather than
// max_conns, keeps the bound tight for a node with few connections: the
// process stays within memory_bytes + 100 MiB + (open - 512) x perConn.
func memoryLimit(mem, conns, perConn int64) int64 {
	return mem + memoryOverhead + max(0, conns-overheadConns)*perConn
}

// connCounter is what the memory limit needs of the download listener.
type connCounter interface {
	OpenConns() int64
	ConnMemory() int64
}

// memoryLimitEvery is how often the limit follows the open connections:
// often enough that a burst of connections meets a raised limit within a
// second, rarely enough to cost nothing.
const memoryLimitEvery = time.Second

// connLimit keeps the Go runtime's soft memory limit at memoryLimit for
// the memory tier's budget and the connections open now. Without a limit
// the garbage collector lets the heap reach twice the live data: a 256 MiB
// memory tier measured +568 MiB RSS over a 4 GiB download.
type connLimit struct {
	mem, per int64
	conns    connCounter
	last     int64
}

// newConnLimit keeps the limit for a memory tier of mem bytes: the budget
// the cache runs with, its default filled in by the cache itself
// (cache.Stats().MemoryMaxBytes), so the two never disagree. It returns nil
// when GOMEMLIMIT is set: the operator's limit then stands, fixed.
func newConnLimit(mem int64, conns connCounter) *connLimit {
	if os.Getenv("GOMEMLIMIT") != "" {
		return nil
	}
	return &connLimit{mem: mem, per: conns.ConnMemory(), conns: conns}
}

// update sets the limit for the connections open now, if it changed, and
// returns it.
func (l *connLimit) update() int64 {
	if limit := memoryLimit(l.mem, l.conns.OpenConns(), l.per); limit != l.last {
		debug.SetMemoryLimit(limit)
		l.last = limit
	}
	return l.last
}

// follow updates the limit every interval until ctx ends.
func (l *connLimit) follow(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.update()
		}
	}
}
