// Package proxy is the HTTP front end of the edge: it routes a request to an
// object, decides the HTTP semantics itself (preconditions, ranges, HEAD,
// errors) and streams the bytes from the cache or the origin to the client.
//
// The origin (MinIO) is never trusted with those decisions: it ignores
// If-Range, for one, so the proxy asks it only for metadata and for exact
// byte spans of a known version (ETag) of the object.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/clientip"
	"github.com/edgeproxy/edgeproxy/internal/logging"
	"github.com/edgeproxy/edgeproxy/limiter"
	"github.com/edgeproxy/edgeproxy/origin"
)

// Objects is what the proxy needs to read objects: origin.Store satisfies
// it, and so does the cache that sits in front of one.
type Objects interface {
	// Stat returns the current version's metadata.
	Stat(ctx context.Context, bucket, key string) (origin.Info, error)
	// Open streams bytes [off, off+n) of the version whose ETag is etag,
	// failing with origin.ErrChanged when the object changed meanwhile.
	Open(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error)
}

// cacheStatuser is implemented by the readers the cache returns; its answer
// goes into the X-Cache header and the access log.
type cacheStatuser interface{ CacheStatus() string }

// RouteConfig maps a set of host names to a bucket.
type RouteConfig struct {
	// Hosts are exact names ("files.example.com") or leading wildcards
	// ("*.cdn.example.com"). Required.
	Hosts []string `yaml:"hosts"`
	// Bucket is the origin bucket the hosts serve; the path is the key. Required.
	Bucket string `yaml:"bucket"`
	// Mode is "proxy" (default) or "redirect" (302 to a presigned origin
	// URL; the edge then carries no bytes, useful for very large files).
	Mode string `yaml:"mode"`
	// Auth is "none" (default), "token" or "signed".
	Auth string `yaml:"auth"`
	// RedirectTTL is the lifetime of presigned URLs in redirect mode. Default 15m.
	RedirectTTL time.Duration `yaml:"redirect_ttl"`
	// RateClass is a limiter class (limiter.classes) giving the per-client
	// rate of this route's downloads; a token's own rate wins. Default: the
	// limiter's default rate.
	RateClass string `yaml:"rate_class"`
}

// Config is the front end's configuration.
type Config struct {
	// Listen is the address of the download listener. Default ":8080".
	Listen string `yaml:"listen"`
	// DownloadBucket is the bucket that GET /download/{fileId} reads, with
	// fileId as the key, when no file catalog is configured. Required
	// unless every request is host-routed.
	DownloadBucket string `yaml:"download_bucket"`
	// DownloadAuth is the auth mode of /download/: "none" (default),
	// "token" or "signed".
	DownloadAuth string `yaml:"download_auth"`
	// Routes is the host routing table.
	Routes []RouteConfig `yaml:"routes"`
	// TLS serves the download listener over HTTPS (see TLSConfig).
	TLS TLSConfig `yaml:"tls"`
	// ReadTimeout bounds reading a request's headers (slowloris). Default 10s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// IdleTimeout closes keep-alive connections idle this long. Default 60s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// SendTimeout aborts a response when the client accepts no bytes for
	// this long (like nginx send_timeout). Default 60s.
	SendTimeout time.Duration `yaml:"send_timeout"`
	// MaxHeaderBytes bounds the request line plus headers; larger requests
	// get 431. Default 8 KiB.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// WriteBuffer is each connection's response buffer, kept by every
	// keep-alive connection, idle ones included. Headers plus a body below
	// half of it go out in one write; a larger body goes out with the
	// header in one writev (writev.go), so the buffer no longer decides
	// the syscalls of a hit. Default 8 KiB: 32 KiB cost 5.7 KiB more RSS
	// and 24 KiB more heap per idle connection for no faster hot path
	// (docs/design.md, "Memory per connection").
	WriteBuffer int `yaml:"write_buffer"`
	// MaxConns bounds concurrent connections. Default 65536. Each open
	// connection beyond 512 raises the soft memory limit by ConnMemory
	// (cmd/edgeproxy), so max_conns x ConnMemory is part of the memory a
	// node may use.
	MaxConns int `yaml:"max_conns"`
	// DrainTimeout is how long in-flight downloads may finish after
	// SIGTERM before connections are closed. Default 30s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// AccessLog turns the per-request log line on. Default true (set false
	// for benchmarks; errors are logged either way).
	AccessLog *bool `yaml:"access_log"`
	// ContentDisposition is "attachment" (default: browsers save the file
	// under its name) or "none" (no header, for inline media).
	ContentDisposition string `yaml:"content_disposition"`
	// DownloadRateClass is the limiter class of /download/ (see
	// RouteConfig.RateClass).
	DownloadRateClass string `yaml:"download_rate_class"`
	// TokenQuery is the query parameter that may carry the download token
	// (after Authorization: Bearer). Default "token".
	TokenQuery string `yaml:"token_query"`
	// TokenCookie is the cookie that may carry the download token (last
	// resort). Default "download_token".
	TokenCookie string `yaml:"token_cookie"`
}

// withDefaults returns c with zero fields set to their defaults, or an
// error naming the first invalid field. Every constructor taking a Config
// starts with it.
func (c Config) withDefaults() (Config, error) {
	if c.Listen == "" {
		c.Listen = ":8080"
	}
	if c.DownloadAuth == "" {
		c.DownloadAuth = AuthNone
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = 60 * time.Second
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 8 << 10
	}
	if c.MaxConns == 0 {
		c.MaxConns = 65536
	}
	if c.WriteBuffer == 0 {
		c.WriteBuffer = 8 << 10
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.AccessLog == nil {
		on := true
		c.AccessLog = &on
	}
	if c.ContentDisposition == "" {
		c.ContentDisposition = "attachment"
	}
	if c.TokenQuery == "" {
		c.TokenQuery = "token"
	}
	if c.TokenCookie == "" {
		c.TokenCookie = "download_token"
	}
	c.TLS = c.TLS.withDefaults()
	return c, c.validate()
}

func (c *Config) validate() error {
	switch {
	case c.ReadTimeout < 0:
		return errors.New("proxy: read_timeout: must not be negative")
	case c.IdleTimeout < 0:
		return errors.New("proxy: idle_timeout: must not be negative")
	case c.SendTimeout < 0:
		return errors.New("proxy: send_timeout: must not be negative")
	case c.DrainTimeout < 0:
		return errors.New("proxy: drain_timeout: must not be negative")
	case c.MaxHeaderBytes < 1024:
		return errors.New("proxy: max_header_bytes: must be at least 1024")
	case c.MaxConns < 1:
		return errors.New("proxy: max_conns: must be positive")
	case c.WriteBuffer < 4<<10 || c.WriteBuffer > 16<<20:
		return errors.New("proxy: write_buffer: must be between 4KiB and 16MiB")
	case c.ContentDisposition != "attachment" && c.ContentDisposition != "none":
		return fmt.Errorf("proxy: content_disposition: %q is not attachment or none", c.ContentDisposition)
	}
	return c.TLS.validate()
}

// hostTable builds the routing table from the configured routes.
func (c *Config) hostTable() (*hostTable, error) {
	m := make(map[string]route)
	for i, rc := range c.Routes {
		if len(rc.Hosts) == 0 {
			return nil, fmt.Errorf("proxy: routes[%d].hosts: required", i)
		}
		if rc.Bucket == "" {
			return nil, fmt.Errorf("proxy: routes[%d].bucket: required", i)
		}
		ttl := rc.RedirectTTL
		if ttl == 0 {
			ttl = 15 * time.Minute
		}
		for _, h := range rc.Hosts {
			if _, dup := m[h]; dup {
				return nil, fmt.Errorf("proxy: routes[%d].hosts: %q listed twice", i, h)
			}
			m[h] = route{Name: h, Bucket: rc.Bucket, Mode: rc.Mode, Auth: rc.Auth, RedirectTTL: ttl, RateClass: rc.RateClass}
		}
	}
	return newHostTable(m) // its errors name the pattern
}

// Deps are the parts the proxy is wired to.
type Deps struct {
	// Objects serves metadata and bytes: the cache, or the origin itself.
	Objects Objects
	// Origin is the store behind Objects, used for /readyz and presigned
	// redirects. Required.
	Origin origin.Store
	// Logger receives the access log and errors, with component=proxy.
	// Nil discards them.
	Logger *slog.Logger
	// Tokens checks download tokens; required by routes with auth "token".
	Tokens TokenVerifier
	// Signer checks signed URLs; required by routes with auth "signed".
	Signer URLVerifier
	// Catalog, when set, resolves /download/{fileId} to an object and a
	// file name, once the request is authorised; ids it does not know are
	// 404.
	Catalog FileCatalog
	// Failures counts requests for ids the catalog does not know toward
	// the client's failure limit and refuses clients past it before the
	// catalog is read. Default: Tokens, when it implements FailureThrottle
	// (auth.Verifier does), so that token and id guesses share one limit.
	Failures FailureThrottle
	// Limiter, when set, admits and shapes downloads.
	Limiter *limiter.Limiter
	// ClientIP tells who the client of a request is, for auth, the
	// limiter, statistics and the access log alike (and wraps the
	// listener for the PROXY protocol). Default: nil, the connection's
	// peer is the client.
	ClientIP *clientip.Resolver
	// Stats, when set, receives access counts and transfer progress.
	Stats StatsRecorder
	// Uploads, when set, answers requests under its prefix (tus uploads),
	// the only requests that may carry a body.
	Uploads Uploads
	// CatalogStore, when set, is pinged by /readyz to report the state
	// of the catalog's system of record (PostgreSQL) in its body. Its
	// failure does not make the node unready: cached entries still serve.
	CatalogStore interface{ Ping(context.Context) error }
}

// Server is the download front end. Create it with New.
type Server struct {
	cfg     Config
	objects Objects
	origin  origin.Store
	log     *slog.Logger
	// rt is the routing state a reload replaces (reload.go).
	rt atomic.Pointer[routing]
	// certs is the download listener's certificate; nil without TLS.
	certs *certStore
	// accessLog caches *cfg.AccessLog for the hot path.
	accessLog bool

	tokens    TokenVerifier
	catalog   FileCatalog
	failures  FailureThrottle
	clientIP  *clientip.Resolver
	stats     StatsRecorder
	metrics   *requestCounters
	keys      keyCache
	readiness readiness // /readyz's cached origin check
	// uploads serves requests under uploadPrefix; nil: no uploads.
	uploads      Uploads
	uploadPrefix []byte
	// catalogStore and catalogReady report the catalog's database.
	catalogStore interface{ Ping(context.Context) error }
	catalogReady readiness
	// open counts the download listener's connections (server.go).
	open atomic.Int64
}

// New validates cfg and builds a Server.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if deps.Origin == nil {
		return nil, errors.New("proxy: deps: Origin is required")
	}
	if deps.Objects == nil {
		deps.Objects = deps.Origin
	}
	deps.Logger = logging.For(deps.Logger, "proxy")
	s := &Server{
		cfg:          cfg,
		objects:      deps.Objects,
		origin:       deps.Origin,
		log:          deps.Logger,
		accessLog:    *cfg.AccessLog,
		tokens:       deps.Tokens,
		catalog:      deps.Catalog,
		failures:     deps.Failures,
		clientIP:     deps.ClientIP,
		stats:        deps.Stats,
		metrics:      newRequestCounters(),
		catalogStore: deps.CatalogStore,
	}
	rt, err := s.newRouting(&s.cfg, LiveDeps{Signer: deps.Signer, Limiter: deps.Limiter})
	if err != nil {
		return nil, err
	}
	s.rt.Store(rt)
	if cfg.TLS.Enabled() {
		if s.certs, err = newCertStore(cfg.TLS.CertFile, cfg.TLS.KeyFile, s.log); err != nil {
			return nil, err
		}
	}
	if s.failures == nil {
		s.failures, _ = deps.Tokens.(FailureThrottle)
	}
	if deps.Uploads != nil {
		p := deps.Uploads.Prefix()
		if len(p) < 2 || p[0] != '/' || p[len(p)-1] != '/' || p == "/download/" || p == pathHealthz+"/" || p == pathReadyz+"/" {
			return nil, fmt.Errorf("proxy: upload prefix %q: must be /name/ and not /download/", p)
		}
		s.uploads, s.uploadPrefix = deps.Uploads, []byte(p)
	}
	return s, nil
}

// Config returns the configuration in effect, defaults filled in.
func (s *Server) Config() Config { return s.cfg }
