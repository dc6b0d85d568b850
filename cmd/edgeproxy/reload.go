package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/proxy"
	"github.com/edgeproxy/edgeproxy/upload"
)

// Hot reload: SIGHUP reads the configuration file (and the environment
// the process started with) again and applies what can change while
// serving, without closing a connection:
//
//   - proxy.routes, proxy.download_bucket, proxy.download_auth,
//     proxy.download_rate_class: the routing table;
//   - auth.signer: the signed-URL keys (downloads and upload creations);
//   - limiter (but cluster_wide, trusted_proxies): the limits, by a new limiter; downloads
//     running keep the one that admitted them, and per-client counters
//     start again from zero;
//   - log.level;
//   - proxy.tls.cert_file and key_file: the certificate is read again
//     (also when the paths did not change: that is how a renewed pair is
//     picked up without waiting for the file watch).
//
// The routing table, keys and limiter are swapped together, atomically:
// a request sees the old set or the new one. A configuration that does
// not load or validate is refused as a whole with one log line, and the
// old one keeps serving. Every other key that differs (listen addresses,
// the origin, the cache, Redis...) is reported in one line as needing a
// restart and otherwise ignored; a binary upgrade (upgrade.go) is such a
// restart without downtime.

// liveKeys are the configuration keys a reload applies, as dotted paths;
// a key applies with everything under it.
var liveKeys = []string{
	"proxy.routes", "proxy.download_bucket", "proxy.download_auth", "proxy.download_rate_class",
	"proxy.tls.cert_file", "proxy.tls.key_file",
	"auth.signer", "limiter", "log.level",
}

// restartKeys are keys under liveKeys that still need a restart.
var restartKeys = []string{"limiter.cluster_wide", "limiter.trusted_proxies"}

// isLive reports whether key is, or is under, one of liveKeys.
func isLive(key string) bool {
	if slices.Contains(restartKeys, key) {
		return false
	}
	for _, k := range liveKeys {
		if key == k || strings.HasPrefix(key, k+".") {
			return true
		}
	}
	return false
}

// startReload makes SIGHUP reload the configuration until ctx ends. The
// signal is caught from the moment it returns, so a SIGHUP sent once the
// process has logged that it listens never kills it.
func (a *app) startReload(ctx context.Context, bg *errgroup.Group) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	bg.Go(func() error {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-hup:
				a.reload()
			}
		}
	})
}

// reload reads the configuration again and applies it (see the top of
// this file). It returns the error that refused the new configuration, if
// any; it has been logged.
func (a *app) reload() error {
	if a.configPath == "" {
		a.log.Warn("reload: no configuration file to read again")
		return nil
	}
	next, err := loadConfig(a.configPath, a.environ)
	if err == nil {
		err = a.apply(next)
	}
	if err != nil {
		a.log.Error("reload: new configuration refused; the old one keeps serving", "err", err)
		return err
	}
	return nil
}

// apply validates next's live keys, swaps them in, and reports the keys
// that need a restart.
func (a *app) apply(next Config) error {
	level, err := parseLevel(next.Log.Level)
	if err != nil {
		return err
	}
	var signer proxy.URLVerifier
	if len(next.Auth.Signer.Keys) > 0 {
		s, err := auth.NewSigner(next.Auth.Signer)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		signer = s
	}
	cur := a.cfg
	lim := a.proxy.Limiter()
	if !reflect.DeepEqual(limiterLive(cur.Limiter), limiterLive(next.Limiter)) {
		nl := cur.Limiter
		nl.Config = next.Limiter.Config // cluster_wide needs a restart
		if lim, err = a.newLimiter(nl); err != nil {
			return err
		}
	}
	if err := a.proxy.Reload(next.Proxy, proxy.LiveDeps{Signer: signer, Limiter: lim}); err != nil {
		if lim != nil && lim != a.proxy.Limiter() {
			lim.Close() // never served a request
		}
		return fmt.Errorf("config: %w", err)
	}
	if u, ok := a.proxyDeps.Uploads.(*upload.Uploads); ok { // signed upload URLs use the same keys
		var us upload.URLSigner
		if signer != nil {
			us, _ = signer.(upload.URLSigner)
		}
		u.SetSigner(us)
	}

	applied := cur
	applied.Proxy.Routes = next.Proxy.Routes
	applied.Proxy.DownloadBucket = next.Proxy.DownloadBucket
	applied.Proxy.DownloadAuth = next.Proxy.DownloadAuth
	applied.Proxy.DownloadRateClass = next.Proxy.DownloadRateClass
	applied.Auth.Signer = next.Auth.Signer
	applied.Limiter.Config = next.Limiter.Config
	applied.Log.Level = next.Log.Level
	if a.proxy.TLSEnabled() && next.Proxy.TLS.Enabled() {
		// A refused pair is logged by the proxy; the rest still applies.
		if a.proxy.ReloadTLS(next.Proxy.TLS) == nil {
			applied.Proxy.TLS.CertFile, applied.Proxy.TLS.KeyFile = next.Proxy.TLS.CertFile, next.Proxy.TLS.KeyFile
		}
	}
	restart := slices.DeleteFunc(configDiff(applied, next), isLive)
	if a.proxy.TLSEnabled() != next.Proxy.TLS.Enabled() {
		restart = append(restart, "proxy.tls.cert_file") // TLS on or off changes the listener
	}
	a.cfg = applied
	a.log.Info("reload: configuration applied", "routes", len(next.Proxy.Routes), "log_level", level.String())
	a.level.Set(level) // after the line above, which a higher level would hide
	if len(restart) > 0 {
		a.log.Warn("reload: these keys need a restart and were left as they are", "keys", restart)
	}
	return nil
}

// limiterLive is the part of the limiter section a reload applies.
func limiterLive(c LimiterConfig) any { return c.Config }

// configDiff lists the dotted yaml keys whose values differ between a
// and b, at the deepest struct level (maps, slices and scalars compare
// whole).
func configDiff(a, b Config) []string {
	var out []string
	diffValue(reflect.ValueOf(a), reflect.ValueOf(b), "", &out)
	return out
}

func diffValue(a, b reflect.Value, prefix string, out *[]string) {
	if a.Kind() == reflect.Pointer && !a.IsNil() && !b.IsNil() {
		a, b = a.Elem(), b.Elem()
	}
	if a.Kind() != reflect.Struct {
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, prefix)
		}
		return
	}
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		key := prefix
		if opts != "inline" {
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			if key != "" {
				key += "."
			}
			key += name
		}
		diffValue(a.Field(i), b.Field(i), key, out)
	}
}
