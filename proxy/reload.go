package proxy

import (
	"errors"
	"fmt"

	"github.com/edgeproxy/edgeproxy/limiter"
)

// routing is the part of a Server that a reload replaces as a whole: the
// host table, the /download/ route, the signed-URL keys and the limiter.
// A request loads it once (Server.rt) and uses that one value to the end,
// so a reload never mixes an old route with a new key; the hot path pays
// one atomic load.
type routing struct {
	hosts *hostTable
	// hasRoutes: the table is not empty (an unknown host is then 404
	// unknown_host rather than a /download/ lookup miss).
	hasRoutes bool
	// download is the route of /download/{fileId}.
	download route
	// downloadEnabled: /download/ has a bucket or a catalog to read.
	downloadEnabled bool
	signer          URLVerifier
	limiter         *limiter.Limiter
}

// LiveDeps are the parts a reload may replace.
type LiveDeps struct {
	// Signer checks signed URLs (new keys); nil when none are configured.
	Signer URLVerifier
	// Limiter admits and shapes downloads with the new limits; nil when
	// none are configured. Downloads already running keep the limiter that
	// admitted them: the caller closes an old limiter only when no
	// download can still use it (at exit), since closing it ends their
	// shaped bodies.
	Limiter *limiter.Limiter
}

// newRouting builds and checks the routing state of cfg (defaults
// filled), refusing a route whose auth or rate class has no backend:
// failing every request of that route at run time would be worse.
func (s *Server) newRouting(cfg *Config, live LiveDeps) (*routing, error) {
	hosts, err := cfg.hostTable()
	if err != nil {
		return nil, err
	}
	switch cfg.DownloadAuth {
	case AuthNone, AuthToken, AuthSigned:
	default:
		return nil, fmt.Errorf("proxy: download_auth: %q is not none, token or signed", cfg.DownloadAuth)
	}
	if cfg.DownloadBucket == "" && s.catalog == nil && len(cfg.Routes) == 0 {
		return nil, errors.New("proxy: download_bucket: required when there are no routes and no file catalog")
	}
	rt := &routing{
		hosts:     hosts,
		hasRoutes: len(cfg.Routes) > 0,
		download: route{Name: "download", Bucket: cfg.DownloadBucket, Mode: ModeProxy, Auth: cfg.DownloadAuth,
			RateClass: cfg.DownloadRateClass},
		downloadEnabled: cfg.DownloadBucket != "" || s.catalog != nil,
		signer:          live.Signer,
		limiter:         live.Limiter,
	}
	for _, r := range append(hosts.routes(), &rt.download) {
		switch {
		case r.Auth == AuthToken && s.tokens == nil:
			return nil, fmt.Errorf("proxy: route %q: auth token needs the token store (redis.addrs)", r.Name)
		case r.Auth == AuthSigned && rt.signer == nil:
			return nil, fmt.Errorf("proxy: route %q: auth signed needs signing keys (auth.signer.keys)", r.Name)
		}
		if r.RateClass != "" {
			if rt.limiter == nil {
				return nil, fmt.Errorf("proxy: route %q: rate_class %q needs the limiter", r.Name, r.RateClass)
			}
			rate, err := rt.limiter.ClassRate(r.RateClass)
			if err != nil {
				return nil, fmt.Errorf("proxy: route %q: %w", r.Name, err)
			}
			r.classRate = rate
		}
	}
	return rt, nil
}

// Reload replaces the routes (routes, download_bucket, download_auth,
// download_rate_class), the signed-URL keys and the limiter with those of
// cfg and live, atomically: each request sees either the old set or the
// new one. Requests in flight finish with the set they started with. Other
// fields of cfg are ignored (the caller reports them as needing a
// restart); proxy.tls is applied by ReloadTLS. On error nothing changes.
func (s *Server) Reload(cfg Config, live LiveDeps) error {
	// Only the defaults matter here: newRouting checks what Reload applies,
	// and the other fields are the caller's to report.
	cfg, _ = cfg.withDefaults()
	rt, err := s.newRouting(&cfg, live)
	if err != nil {
		return err
	}
	s.rt.Store(rt)
	return nil
}

// Limiter returns the limiter in effect, nil when none is configured.
func (s *Server) Limiter() *limiter.Limiter { return s.rt.Load().limiter }
