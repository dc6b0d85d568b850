package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/cache"
	"github.com/edgeproxy/edgeproxy/internal/clientip"
	"github.com/edgeproxy/edgeproxy/internal/config"
	"github.com/edgeproxy/edgeproxy/internal/stats"
	"github.com/edgeproxy/edgeproxy/origin"
	"github.com/edgeproxy/edgeproxy/proxy"
)

// Config is the whole configuration file: one section per package, each
// documented where it is declared. config.yaml at the repository root is
// the annotated default.
type Config struct {
	Proxy    proxy.Config      `yaml:"proxy"`
	Origin   OriginConfig      `yaml:"origin"`
	Cache    CacheConfig       `yaml:"cache"`
	Redis    RedisConfig       `yaml:"redis"`
	Auth     AuthConfig        `yaml:"auth"`
	Limiter  LimiterConfig     `yaml:"limiter"`
	ClientIP clientip.Config   `yaml:"client_ip"`
	Stats    StatsConfig       `yaml:"stats"`
	Prefetch PrefetchConfig    `yaml:"prefetch"`
	Admin    proxy.AdminConfig `yaml:"admin"`
	Log      LogConfig         `yaml:"log"`
}

// OriginConfig selects and configures the object store behind the edge.
type OriginConfig struct {
	// Kind is "s3" (MinIO or any S3-compatible store) or "dir" (a local
	// directory with one subdirectory per bucket). Default "s3".
	Kind string           `yaml:"kind"`
	S3   origin.S3Config  `yaml:"s3"`
	Dir  origin.DirConfig `yaml:"dir"`
}

// CacheConfig is the cache section: the cache's own settings plus a switch.
type CacheConfig struct {
	// Enabled puts the chunk cache between the proxy and the origin.
	// Default true; false streams every request from the origin.
	Enabled      bool `yaml:"enabled"`
	cache.Config `yaml:",inline"`
}

// LogConfig configures the process log (access log lines included).
type LogConfig struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is json (default) or text.
	Format string `yaml:"format"`
}

// defaultConfig returns the values a key takes when the file omits it.
// Per-package defaults are filled by each package's New.
func defaultConfig() Config {
	return Config{
		Origin: OriginConfig{Kind: "s3"},
		Cache:  CacheConfig{Enabled: true},
		Log:    LogConfig{Level: "info", Format: "json"},
	}
}

// loadConfig reads path and the environment. Every error is a usage error.
func loadConfig(path string, environ []string) (Config, error) {
	cfg := defaultConfig()
	if err := config.Load(path, &cfg, environ); err != nil {
		return cfg, usageError{err}
	}
	return cfg, nil
}

// app is the wired process.
type app struct {
	cfg   Config
	log   *slog.Logger
	proxy *proxy.Server
	admin *proxy.Admin
	// adminAddr is the admin listen address after defaults.
	adminAddr string
	cache     *cache.Cache
	redis     redis.UniversalClient
	redisErrs *redisErrors
	stats     *stats.Recorder
	prefetch  *prefetcher
	access    accessDeps
	closes    []func() error
}

func (a *app) close() {
	for i := len(a.closes) - 1; i >= 0; i-- {
		a.closes[i]()
	}
}

// build validates cfg by constructing every part; a configuration error is
// a usageError naming the key. With checkOnly (edgeproxy -check) the cache
// is validated but not built, so nothing on disk changes, and the proxy
// reads the origin directly. build never changes process-wide settings;
// app.serve does.
func build(cfg Config, logw io.Writer, checkOnly bool) (_ *app, err error) {
	log, err := newLogger(cfg.Log, logw)
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	var store origin.Store
	switch cfg.Origin.Kind {
	case "s3":
		s, err := origin.NewS3(cfg.Origin.S3)
		if err != nil {
			return nil, usageError{fmt.Errorf("config: origin.s3: %w", err)}
		}
		a.closes = append(a.closes, s.Close)
		store = s
	case "dir":
		d, err := origin.NewDir(cfg.Origin.Dir)
		if err != nil {
			return nil, usageError{fmt.Errorf("config: origin.dir: %w", err)}
		}
		a.closes = append(a.closes, d.Close)
		store = d
	default:
		return nil, usageError{fmt.Errorf("config: key %q: %q is not s3 or dir", "origin.kind", cfg.Origin.Kind)}
	}

	store, timed := wrapTimed(store)
	var objects proxy.Objects = store
	var purger proxy.Purger
	var adminStats func() any
	if cfg.Cache.Enabled && checkOnly {
		if err := cache.Check(cfg.Cache.Config); err != nil {
			return nil, cacheConfigError(err)
		}
	} else if cfg.Cache.Enabled {
		c, err := cache.New(cfg.Cache.Config, store, log)
		if err != nil {
			return nil, cacheConfigError(err)
		}
		a.closes = append(a.closes, c.Close)
		a.cache = c
		objects, purger = c, c
		adminStats = func() any { return map[string]any{"cache": c.Stats()} }
	}

	acc, err := a.buildAccess(cfg)
	if err != nil {
		return nil, err
	}
	a.access = acc
	deps := proxy.Deps{Objects: objects, Origin: store, Logger: log}
	if acc.tokens != nil {
		deps.Tokens = acc.tokens
	}
	if acc.signer != nil {
		deps.Signer = acc.signer
	}
	if acc.catalog != nil {
		deps.Catalog = acc.catalog
	}
	deps.Limiter = acc.limiter
	deps.ClientIP = acc.clientIP
	if a.redis != nil && (cfg.Stats.Enabled == nil || *cfg.Stats.Enabled) {
		r, err := stats.New(cfg.Stats.Config, a.redis, log)
		if err != nil {
			return nil, usageError{fmt.Errorf("config: %w", err)}
		}
		a.closes = append(a.closes, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return r.Close(ctx)
		})
		a.stats = r
		deps.Stats = statsAdapter{r}
	} else if cfg.Stats.Enabled != nil && *cfg.Stats.Enabled {
		return nil, usageError{fmt.Errorf("config: key %q: statistics need redis.addrs", "stats.enabled")}
	}
	if cfg.Prefetch.Enabled {
		if a.stats == nil || !cfg.Cache.Enabled {
			return nil, usageError{fmt.Errorf("config: key %q: prefetching needs stats (redis.addrs) and the cache", "prefetch.enabled")}
		}
		cfg.Prefetch = cfg.Prefetch.withDefaults()
		a.prefetch = &prefetcher{cfg: cfg.Prefetch, cache: a.cache, hot: a.stats.Hot, catalog: acc.catalog,
			bucket: cfg.Proxy.DownloadBucket, log: log.With("component", "prefetch")}
	}
	p, err := proxy.New(cfg.Proxy, deps)
	if err != nil {
		return nil, usageError{fmt.Errorf("config: %w", err)}
	}
	a.proxy = p
	if err := cfg.Admin.Validate(); err != nil {
		return nil, usageError{fmt.Errorf("config: %w", err)}
	}
	if cfg.Admin.Enabled() {
		a.admin = proxy.NewAdmin(cfg.Admin, purger, adminStats, log)
		base := cfg.Auth.PublicURL
		if base == "" {
			base = "http://" + p.Config().Listen
		}
		var tokens proxy.TokenAdmin
		var catalog proxy.CatalogAdmin
		if acc.tokens != nil {
			tokens = acc.tokens
		}
		if acc.catalog != nil {
			catalog = acc.catalog
		}
		a.admin.RegisterAuth(tokens, catalog, base)
		mountOps(a.admin, a.newRegistry(timed, a.redisErrs))
		if a.stats != nil {
			registerStatsAdmin(a.admin, a.stats, a.redis)
		}
		a.adminAddr = cfg.Admin.Listen
	}
	return a, nil
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

// memoryOverhead is what the heap may hold beside the memory tier: chunks
// of fills in flight (bounded by cache.fill_memory), connection buffers,
// request state. Non-heap memory (stacks, runtime) comes on top, so the
// process stays near memory_bytes + 100 MiB, the bound the cache promises.
const memoryOverhead = 88 << 20

// setMemoryLimit gives the Go runtime a soft memory limit of the memory
// tier's budget plus memoryOverhead, unless GOMEMLIMIT is set. Without it
// the garbage collector lets the heap reach twice the live data: a 256 MiB
// memory tier measured +568 MiB RSS over a 4 GiB download.
func setMemoryLimit(c cache.Config, log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	mem := c.MemoryBytes
	if mem == 0 {
		mem = cache.DefaultMemoryBytes
	}
	limit := mem + memoryOverhead
	debug.SetMemoryLimit(limit)
	log.Debug("memory limit set", "bytes", limit)
}
