// Command edgeproxy runs the edge caching download proxy.
//
//	edgeproxy -config config.yaml   # production: settings from the file and EDGEPROXY_* variables
//	edgeproxy -demo                 # embedded default: no services, a local demo origin
//
// Exit codes: 0 after a clean shutdown, 1 on a runtime failure, 2 on an
// invalid command line or configuration (one line on stderr names the key).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/edgeproxy/edgeproxy/internal/logging"
)

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// usageError marks failures that exit with code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func run(args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edgeproxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "path of the YAML configuration (default: $EDGEPROXY_CONFIG, else ./config.yaml)")
	demo := fs.Bool("demo", false, "run the embedded default: a local demo origin, nothing to install")
	check := fs.Bool("check", false, "validate the configuration and exit")
	pidFile := fs.String("pidfile", "", "write the PID of the serving process here (it changes on a SIGUSR2 upgrade)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "edgeproxy: unexpected argument %q\n", fs.Arg(0))
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var err error
	if *demo {
		err = runDemo(ctx, environ, stdout, stderr)
	} else {
		path := *configPath
		if path == "" {
			path = lookupEnv(environ, "EDGEPROXY_CONFIG")
		}
		if path == "" {
			path = "config.yaml"
		}
		var cfg Config
		cfg, err = loadConfig(path, environ)
		if err == nil && *check {
			err = checkConfig(cfg, stderr)
			if err == nil {
				fmt.Fprintln(stdout, "edgeproxy: configuration OK")
				return 0
			}
		}
		if err == nil {
			err = serveUpgradable(ctx, cfg, stderr, *pidFile, serveOptions{configPath: path, environ: environ})
		}
	}
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "edgeproxy: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// checkConfig is "edgeproxy -check": it validates cfg by building every
// part as serve would, except that nothing on disk is created, written or
// removed (the cache's disk directory is only inspected) and no
// process-wide setting changes.
func checkConfig(cfg Config, stderr io.Writer) error {
	app, err := build(cfg, stderr, true)
	if err != nil {
		return err
	}
	return app.close()
}

// serve wires the parts, listens and runs until ctx ends. ready, when not
// nil, receives the bound address once the listener is up.
func serve(ctx context.Context, cfg Config, stderr io.Writer, ready func(addr string)) error {
	return serveWith(ctx, cfg, stderr, ready, serveOptions{})
}

// serveUpgradable is serve for the binary: SIGHUP reloads the
// configuration and SIGUSR2 hands the listeners to a new binary
// (upgrade.go).
func serveUpgradable(ctx context.Context, cfg Config, stderr io.Writer, pidFile string, opts serveOptions) error {
	log, err := newLogger(cfg.Log, stderr, new(slog.LevelVar))
	if err != nil {
		return err
	}
	log = logging.For(log, "edgeproxy")
	u, err := newUpgrader(ctx, pidFile, log)
	if err != nil {
		return err
	}
	defer u.stop()
	opts.listen = u.listen
	return serveWith(u.ctx, cfg, stderr, u.ready(log), opts)
}

// serveOptions are what the binary adds to serve: where a reload reads the
// configuration, and how listeners are made (inherited across a binary
// upgrade, upgrade.go).
type serveOptions struct {
	configPath string
	environ    []string
	// listen defaults to net.Listen.
	listen func(network, addr string) (net.Listener, error)
}

func serveWith(ctx context.Context, cfg Config, stderr io.Writer, ready func(addr string), opts serveOptions) error {
	app, err := build(cfg, stderr, false)
	if err != nil {
		return err
	}
	app.configPath, app.environ, app.listen = opts.configPath, opts.environ, opts.listen
	err = app.serve(ctx, ready)
	if cerr := app.close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close: %w", cerr))
	}
	return err
}

// serve applies the process-wide settings, listens and runs until ctx
// ends. The caller closes the app after it returns.
func (app *app) serve(ctx context.Context, ready func(addr string)) (err error) {
	cfg := app.cfg
	if app.listen == nil {
		app.listen = net.Listen
	}
	var memLimit *connLimit
	if app.cache != nil {
		if memLimit = newConnLimit(app.cache.Stats().MemoryMaxBytes, app.proxy); memLimit != nil {
			app.log.Debug("memory limit set", "bytes", memLimit.update(), "per_connection", memLimit.per)
		}
	}
	ln, err := app.listen("tcp", app.proxy.Config().Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// serve waits for every goroutine it starts before it returns: the
	// caller closes the cache and Redis next, and the prefetcher reads
	// through the cache.
	bgctx, stop := context.WithCancel(ctx)
	var bg errgroup.Group
	defer func() {
		stop()
		err = errors.Join(err, bg.Wait())
	}()
	if app.admin != nil {
		aln, err := app.listen("tcp", app.adminAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("admin listen: %w", err)
		}
		bg.Go(func() error {
			if err := app.admin.Serve(bgctx, aln); err != nil {
				return fmt.Errorf("admin: %w", err)
			}
			return nil
		})
		app.log.Info("admin listening", "addr", aln.Addr().String())
	} else {
		app.log.Info("admin listener off (set admin.key to enable it)")
	}
	if memLimit != nil {
		bg.Go(func() error {
			memLimit.follow(bgctx, memoryLimitEvery)
			return nil
		})
	}
	if app.prefetch != nil {
		bg.Go(func() error {
			app.prefetch.loop(bgctx)
			return nil
		})
	}
	for _, loop := range app.loops { // catalog invalidations, access-count sync
		bg.Go(func() error {
			loop(bgctx)
			return nil
		})
	}
	app.startReload(bgctx, &bg)
	if addr := cfg.Proxy.TLS.RedirectListen; addr != "" {
		rln, err := app.listen("tcp", addr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("redirect listen: %w", err)
		}
		bg.Go(func() error {
			if err := app.proxy.ServeRedirect(bgctx, rln); err != nil {
				return fmt.Errorf("redirect: %w", err)
			}
			return nil
		})
		app.log.Info("redirect listening", "addr", rln.Addr().String())
	}
	app.log.Info("edgeproxy listening", "addr", ln.Addr().String(), "pid", os.Getpid(), "origin", cfg.Origin.Kind, "cache", cfg.Cache.Enabled)
	if ready != nil {
		ready(ln.Addr().String())
	}
	err = app.proxy.Serve(ctx, ln)
	app.log.Info("edgeproxy stopped")
	return err
}

// newLogger builds the process logger from the log settings. Its level is
// lv, set here, which a reload may change.
func newLogger(c LogConfig, w io.Writer, lv *slog.LevelVar) (*slog.Logger, error) {
	level, err := parseLevel(c.Level)
	if err != nil {
		return nil, err
	}
	lv.Set(level)
	opts := &slog.HandlerOptions{Level: lv}
	switch c.Format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, usageError{fmt.Errorf("config: key %q: %q is not json or text", "log.format", c.Format)}
}

// parseLevel reads log.level.
func parseLevel(s string) (slog.Level, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s)); err != nil {
		return 0, usageError{fmt.Errorf("config: key %q: %v", "log.level", err)}
	}
	return level, nil
}

func lookupEnv(environ []string, name string) string {
	for _, kv := range environ {
		if len(kv) > len(name) && kv[len(name)] == '=' && kv[:len(name)] == name {
			return kv[len(name)+1:]
		}
	}
	return ""
}
