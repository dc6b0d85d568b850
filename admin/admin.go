// Package admin is the operators' HTTP API (net/http): purge, tokens, the
// file catalog, statistics, metrics and profiling, all behind one key on a
// listener of its own, so that it can stay on loopback or a management
// network while downloads face the internet.
//
// The package owns the listener, the key check, every route and its JSON.
// It knows the rest of the system only through the small interfaces it
// declares (Purger, TokenStore, UploadTokens, Catalog, StatsReader); cmd/edgeproxy hands
// it the cache, auth and stats values that satisfy them. Errors are short
// JSON bodies {"code","message"} with a stable code, as on the download
// path.
package admin

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeproxy/edgeproxy/internal/logging"
)

// Config configures the admin listener.
type Config struct {
	// Listen is the admin address. Default "127.0.0.1:9090"; "off"
	// disables the admin listener.
	Listen string `yaml:"listen"`
	// Key authenticates every admin call (Authorization: Bearer KEY). At
	// least 16 characters. Empty (the default) keeps the admin listener
	// off: there is no unauthenticated admin API. Prefer the variable
	// EDGEPROXY_ADMIN_KEY to writing it in the file.
	Key string `yaml:"key"`
}

// Enabled reports whether the admin listener should run.
func (c Config) Enabled() bool { return c.Listen != "off" && c.Key != "" }

// WithDefaults returns c with the default listen address filled in, or an
// error when the key is too short (even with the listener off, so a bad key
// is found before someone turns it on). It is the withDefaults of the other
// packages' Configs, exported because the binary needs the filled Config
// to decide whether to start the listener (Enabled) before calling New.
func (c Config) WithDefaults() (Config, error) {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:9090"
	}
	if c.Key != "" && len(c.Key) < 16 {
		return c, errors.New("admin: key: at least 16 characters")
	}
	return c, nil
}

// Deps are the parts the admin API serves. Each may be nil (zero), which
// leaves its routes out: a proxy without a cache has nothing to purge.
type Deps struct {
	// Purger backs POST /v1/purge (the cache).
	Purger Purger
	// CacheStats, when set, is served as JSON at GET /v1/stats.
	CacheStats func() any
	// Tokens backs POST and DELETE /v1/tokens (auth.Verifier).
	Tokens TokenStore
	// UploadTokens backs POST /v1/upload-tokens (upload.Uploads).
	UploadTokens UploadTokens
	// Catalog backs PUT and GET /v1/files/{id} (auth.Catalog).
	Catalog Catalog
	// CatalogStore, for a catalog kept in PostgreSQL, backs POST and GET
	// /v1/files and DELETE /v1/files/{id} (cmd/edgeproxy over catalogdb).
	CatalogStore CatalogStore
	// DownloadBase is the public base URL of downloads, for the url field
	// of a new /download/ token, e.g. https://dl.example.com.
	DownloadBase string
	// Stats backs /v1/stats/hot, /v1/stats/files/{id} and /v1/tasks/{id}
	// (stats.Recorder).
	Stats StatsReader
	// Synced, when set, adds to /v1/stats/files/{id} the downloads the
	// access-count sync committed to PostgreSQL (catalogdb.Store).
	Synced SyncedCounts
	// Metrics, when set, is served at GET /metrics, and the runtime
	// profiles at /debug/pprof/ beside it.
	Metrics prometheus.Gatherer
	// Logger receives the audit lines (purges, tokens, files) with
	// component=admin. Nil discards.
	Logger *slog.Logger
}

// API is the admin API: an http.Handler that checks the key, then routes.
type API struct {
	key []byte
	mux *http.ServeMux
	log *slog.Logger
}

// New builds the admin API guarded by cfg.Key with the routes of the
// parts d holds.
func New(cfg Config, d Deps) *API {
	a := &API{key: []byte(cfg.Key), mux: http.NewServeMux(), log: logging.For(d.Logger, "admin")}
	if d.Purger != nil {
		a.mux.HandleFunc("POST /v1/purge", a.purge(d.Purger))
	}
	if d.CacheStats != nil {
		a.mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, d.CacheStats())
		})
	}
	if d.Tokens != nil {
		a.registerTokens(d.Tokens, d.DownloadBase)
	}
	if d.UploadTokens != nil {
		a.registerUploadTokens(d.UploadTokens, d.DownloadBase)
	}
	if d.Catalog != nil {
		a.registerCatalog(d.Catalog)
	}
	if d.CatalogStore != nil {
		a.registerCatalogStore(d.CatalogStore)
	}
	if d.Stats != nil {
		a.registerStats(d.Stats, d.Synced)
	}
	if d.Metrics != nil {
		a.registerOps(d.Metrics)
	}
	return a
}

// ServeHTTP checks the admin key in constant time, then dispatches.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), a.key) != 1 {
		writeError(w, http.StatusUnauthorized, "admin_unauthorized", "missing or wrong admin key")
		return
	}
	a.mux.ServeHTTP(w, r)
}

// Serve answers admin calls on ln until ctx ends, then closes the server
// and every connection (admin calls are short and retried by operators;
// nothing waits on them at shutdown). It returns nil after ctx ended, or
// the error that stopped serving. ln is closed either way.
func (a *API) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(closed)
		srv.Close()
	})
	err := srv.Serve(ln)
	if stop() {
		srv.Close() // serving failed: close the connections it left
	} else {
		<-closed // the close ctx started runs to its end before Serve returns
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
