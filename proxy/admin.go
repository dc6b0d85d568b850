package proxy

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// AdminConfig configures the operators' listener: purge, tokens, catalog,
// statistics. It is a separate listener so that it can stay on loopback or
// a management network while downloads face the internet.
type AdminConfig struct {
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
func (c AdminConfig) Enabled() bool { return c.Listen != "off" && c.Key != "" }

// Validate fills defaults and checks the key.
func (c *AdminConfig) Validate() error {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:9090"
	}
	if c.Key != "" && len(c.Key) < 16 {
		return errors.New("admin: key: at least 16 characters")
	}
	return nil
}

// Purger drops cached objects (the cache implements it).
type Purger interface {
	Purge(bucket, key string) int
	PurgePrefix(bucket, prefix string) int
}

// Admin is the admin API. Routes are registered on Mux by NewAdmin and by
// the other parts (token and catalog handlers) through Handle.
type Admin struct {
	key []byte
	mux *http.ServeMux
	log *slog.Logger
}

// NewAdmin builds the admin API guarded by cfg.Key. purger may be nil
// when the proxy runs without a cache; stats, when not nil, is served as
// JSON at GET /v1/stats.
func NewAdmin(cfg AdminConfig, purger Purger, stats func() any, log *slog.Logger) *Admin {
	a := &Admin{key: []byte(cfg.Key), mux: http.NewServeMux(), log: log}
	if purger != nil {
		a.HandleFunc("POST /v1/purge", func(w http.ResponseWriter, r *http.Request) {
			var req struct {
				Bucket string `json:"bucket"`
				Key    string `json:"key"`
				Prefix string `json:"prefix"`
			}
			if !DecodeJSON(w, r, &req) {
				return
			}
			if req.Bucket == "" || (req.Key == "") == (req.Prefix == "") {
				WriteJSONError(w, http.StatusBadRequest, "bad_request", "give bucket and exactly one of key or prefix")
				return
			}
			var n int
			if req.Key != "" {
				n = purger.Purge(req.Bucket, req.Key)
			} else {
				n = purger.PurgePrefix(req.Bucket, req.Prefix)
			}
			log.Info("admin purge", "bucket", req.Bucket, "key", req.Key, "prefix", req.Prefix, "purged", n)
			WriteJSON(w, http.StatusOK, map[string]int{"purged": n})
		})
	}
	if stats != nil {
		a.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) {
			WriteJSON(w, http.StatusOK, stats())
		})
	}
	return a
}

// HandleFunc registers an authenticated admin route (a net/http pattern
// such as "DELETE /v1/tokens/{token}").
func (a *Admin) HandleFunc(pattern string, h http.HandlerFunc) { a.mux.HandleFunc(pattern, h) }

// Handle registers an authenticated admin handler.
func (a *Admin) Handle(pattern string, h http.Handler) { a.mux.Handle(pattern, h) }

// ServeHTTP checks the admin key in constant time, then dispatches.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), a.key) != 1 {
		WriteJSONError(w, http.StatusUnauthorized, "admin_unauthorized", "missing or wrong admin key")
		return
	}
	a.mux.ServeHTTP(w, r)
}

// NewHTTPServer returns the admin listener's server with conservative limits.
func (a *Admin) NewHTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           a,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
}

// maxAdminBody bounds JSON request bodies.
const maxAdminBody = 1 << 20

// DecodeJSON reads a JSON request body into v (unknown fields rejected),
// answering 400 itself on failure.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		WriteJSONError(w, http.StatusBadRequest, "bad_json", fmt.Sprintf("request body: %v", err))
		return false
	}
	return true
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// WriteJSONError answers with the standard error body.
func WriteJSONError(w http.ResponseWriter, status int, code, message string) {
	WriteJSON(w, status, map[string]string{"code": code, "message": message})
}
