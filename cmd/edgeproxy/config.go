package main

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/edgeproxy/edgeproxy/admin"
	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/cache"
	"github.com/edgeproxy/edgeproxy/catalogdb"
	"github.com/edgeproxy/edgeproxy/internal/clientip"
	"github.com/edgeproxy/edgeproxy/internal/config"
	"github.com/edgeproxy/edgeproxy/internal/stats"
	"github.com/edgeproxy/edgeproxy/limiter"
	"github.com/edgeproxy/edgeproxy/origin"
	"github.com/edgeproxy/edgeproxy/proxy"
	"github.com/edgeproxy/edgeproxy/upload"
)

// Config is the whole configuration file: one section per package, each
// documented where it is declared. config.yaml at the repository root is
// the annotated default.
type Config struct {
	Proxy    proxy.Config    `yaml:"proxy"`
	Origin   OriginConfig    `yaml:"origin"`
	Cache    CacheConfig     `yaml:"cache"`
	Redis    RedisConfig     `yaml:"redis"`
	Postgres PostgresConfig  `yaml:"postgres"`
	Auth     AuthConfig      `yaml:"auth"`
	Limiter  LimiterConfig   `yaml:"limiter"`
	ClientIP clientip.Config `yaml:"client_ip"`
	Stats    StatsConfig     `yaml:"stats"`
	Prefetch PrefetchConfig  `yaml:"prefetch"`
	Admin    admin.Config    `yaml:"admin"`
	Log      LogConfig       `yaml:"log"`
	Upload   upload.Config   `yaml:"upload"`

	// Invalidation relays MinIO's object events to every edge (invalidate.go).
	Invalidation InvalidationConfig `yaml:"invalidation"`
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

// StatsConfig is the stats section: access counts, download progress and
// the download log in Redis.
type StatsConfig struct {
	// Enabled records statistics (needs redis.addrs). Default true when
	// Redis is configured.
	Enabled      *bool `yaml:"enabled"`
	stats.Config `yaml:",inline"`
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

// RedisConfig locates the Redis that holds tokens, the catalog, statistics
// and cluster-wide limits. One address is a standalone server; several are
// a Cluster, or Sentinels when master_name is set. No address: no Redis,
// and the features that need it are off (a route with auth "token" then
// fails at start, not at run time).
type RedisConfig struct {
	Addrs      []string `yaml:"addrs"`
	MasterName string   `yaml:"master_name"`
	Username   string   `yaml:"username"`
	// Password; prefer EDGEPROXY_REDIS_PASSWORD.
	Password string `yaml:"password"`
	// SentinelUsername and SentinelPassword authenticate to the Sentinels
	// (their requirepass, or an ACL user), with master_name set; Username
	// and Password are for the Redis nodes. Default none. Prefer
	// EDGEPROXY_REDIS_SENTINEL_PASSWORD.
	SentinelUsername string `yaml:"sentinel_username"`
	SentinelPassword string `yaml:"sentinel_password"`
	DB               int    `yaml:"db"`
	// DialTimeout bounds a connect. Default 1s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ReadTimeout and WriteTimeout bound one command's I/O. Default 500ms:
	// callers on the request path set tighter budgets of their own.
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// PoolSize is connections per node. Default 10 per CPU (go-redis).
	PoolSize int `yaml:"pool_size"`
}

// AuthConfig is the auth section: the token verifier's settings, the
// signed-URL keys and the file catalog.
type AuthConfig struct {
	auth.Config `yaml:",inline"`
	// Signer holds the signed-URL keys; routes with auth "signed" need it.
	Signer auth.SignerConfig `yaml:"signer"`
	// Catalog resolves /download/{fileId} through Redis hashes
	// file:meta:<id> when enabled.
	Catalog CatalogConfig `yaml:"catalog"`
	// PublicURL is the base of download URLs the admin API hands out with
	// new tokens, e.g. https://dl.example.com. Default http:// (https://
	// with proxy.tls) + proxy.listen.
	PublicURL string `yaml:"public_url"`
}

// CatalogConfig switches the file catalog on.
type CatalogConfig struct {
	// Enabled: /download/{fileId} looks fileId up in the catalog (404 when
	// absent) instead of reading it as a key of proxy.download_bucket.
	// Default false.
	Enabled            bool `yaml:"enabled"`
	auth.CatalogConfig `yaml:",inline"`
}

// LimiterConfig is the limiter section.
type LimiterConfig struct {
	limiter.Config `yaml:",inline"`
	// ClusterWide enforces request_rate across all edge nodes through Redis
	// as well as per node. Default false.
	ClusterWide bool `yaml:"cluster_wide"`
	// TrustedProxies is deprecated: it is client_ip.trusted_proxies, read
	// from here (with a warning at start) so that old files keep working.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// clientIPConfig is the client_ip section with the deprecated
// limiter.trusted_proxies mapped onto it: used when client_ip has none,
// an error when both are set and differ.
func clientIPConfig(cfg Config, log *slog.Logger) (clientip.Config, error) {
	c := cfg.ClientIP
	old := cfg.Limiter.TrustedProxies
	if len(old) == 0 {
		return c, nil
	}
	log.Warn("config: limiter.trusted_proxies is deprecated; move it to client_ip.trusted_proxies")
	if len(c.TrustedProxies) == 0 {
		c.TrustedProxies = old
		return c, nil
	}
	if !samePrefixes(old, c.TrustedProxies) {
		return c, fmt.Errorf("config: key %q: differs from client_ip.trusted_proxies; keep only client_ip.trusted_proxies", "limiter.trusted_proxies")
	}
	return c, nil
}

// samePrefixes reports whether two trusted_proxies lists trust the same
// addresses, entry for entry in any order. Entries that do not parse are
// compared as text (client_ip's validation reports them).
func samePrefixes(a, b []string) bool {
	norm := func(l []string) []string {
		out := make([]string, len(l))
		for i, v := range l {
			if p, err := clientip.ParseTrusted(v); err == nil {
				out[i] = p.String()
			} else {
				out[i] = v
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(norm(a), norm(b))
}

// active reports whether any limit is configured; without one the proxy
// skips the limiter entirely (no per-request bookkeeping).
func (c LimiterConfig) active() bool {
	return c.Rate > 0 || c.GlobalRate > 0 || c.MaxConcurrentPerClient > 0 || c.MaxConcurrent > 0 ||
		c.RequestRate > 0 || len(c.Classes) > 0
}

// PostgresConfig is the postgres section: the system of record of the
// catalog and of access counts. No DSN: no PostgreSQL, and the catalog is
// Redis alone (file:meta:<id> hashes), as before.
type PostgresConfig struct {
	// DSN, pool size and timeouts; prefer EDGEPROXY_POSTGRES_DSN for the
	// DSN, which holds a password.
	catalogdb.Config `yaml:",inline"`
	// Migrate applies the embedded schema migrations at start (nodes
	// starting together wait for each other). Default false: run
	// `edgectl db migrate` once per release instead, and a node whose
	// schema is behind logs a warning.
	Migrate bool `yaml:"migrate"`
	// Sync moves the Redis access counters into PostgreSQL; needs stats.
	Sync catalogdb.SyncConfig `yaml:"sync"`
}
