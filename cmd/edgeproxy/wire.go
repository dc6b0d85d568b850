package main

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/internal/clientip"
	"github.com/edgeproxy/edgeproxy/internal/redisconn"
	"github.com/edgeproxy/edgeproxy/limiter"
)

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
	DB       int    `yaml:"db"`
	// DialTimeout bounds a connect. Default 1s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ReadTimeout and WriteTimeout bound one command's I/O. Default 500ms:
	// callers on the request path set tighter budgets of their own.
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// PoolSize is connections per node. Default 10 per CPU (go-redis).
	PoolSize int `yaml:"pool_size"`
}

// newRedis builds the client, or nil when no address is configured. It
// does not connect: the parts that use it degrade as documented while
// Redis is unreachable, and go-redis reconnects by itself.
func newRedis(c RedisConfig) redis.UniversalClient {
	if len(c.Addrs) == 0 {
		return nil
	}
	return redis.NewUniversalClient(redisconn.Options(redis.UniversalOptions{
		Addrs:        c.Addrs,
		MasterName:   c.MasterName,
		Username:     c.Username,
		Password:     c.Password,
		DB:           c.DB,
		DialTimeout:  c.DialTimeout,
		ReadTimeout:  c.ReadTimeout,
		WriteTimeout: c.WriteTimeout,
		PoolSize:     c.PoolSize,
	}))
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
	// new tokens, e.g. https://dl.example.com. Default http:// + proxy.listen.
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

// buildAccess wires Redis, auth and the limiter into a.
func (a *app) buildAccess(cfg Config) (deps accessDeps, err error) {
	rdb := newRedis(cfg.Redis)
	if rdb != nil {
		a.closes = append(a.closes, rdb.Close)
		a.redis = rdb
		a.redisErrs = &redisErrors{}
		rdb.AddHook(a.redisErrs)
		v, err := auth.New(cfg.Auth.Config, rdb, a.log)
		if err != nil {
			return deps, usageError{fmt.Errorf("config: %w", err)}
		}
		a.closes = append(a.closes, v.Close)
		deps.tokens = v
		if cfg.Auth.Catalog.Enabled {
			c, err := auth.NewCatalog(cfg.Auth.Catalog.CatalogConfig, rdb, a.log)
			if err != nil {
				return deps, usageError{fmt.Errorf("config: %w", err)}
			}
			deps.catalog = c
		}
	} else if cfg.Auth.Catalog.Enabled {
		return deps, usageError{fmt.Errorf("config: key %q: the catalog needs redis.addrs", "auth.catalog.enabled")}
	}
	if len(cfg.Auth.Signer.Keys) > 0 {
		s, err := auth.NewSigner(cfg.Auth.Signer)
		if err != nil {
			return deps, usageError{fmt.Errorf("config: %w", err)}
		}
		deps.signer = s
	}
	cip, err := clientIPConfig(cfg, a.log)
	if err != nil {
		return deps, usageError{err}
	}
	if deps.clientIP, err = clientip.New(cip); err != nil {
		return deps, usageError{fmt.Errorf("config: %w", err)}
	}
	if cfg.Limiter.active() {
		opts := []limiter.Option{limiter.WithLogger(a.log)}
		if cfg.Limiter.ClusterWide {
			if rdb == nil {
				return deps, usageError{fmt.Errorf("config: key %q: needs redis.addrs", "limiter.cluster_wide")}
			}
			opts = append(opts, limiter.WithRedis(rdb))
		}
		l, err := limiter.New(cfg.Limiter.Config, time.Now, opts...)
		if err != nil {
			return deps, usageError{fmt.Errorf("config: %w", err)}
		}
		a.closes = append(a.closes, l.Close)
		deps.limiter = l
	}
	return deps, nil
}

// accessDeps are the optional parts buildAccess made.
type accessDeps struct {
	tokens  *auth.Verifier
	signer  *auth.Signer
	catalog *auth.Catalog
	limiter *limiter.Limiter
	// clientIP tells who the client is; always set (it trusts no one
	// unless client_ip says so).
	clientIP *clientip.Resolver
}
