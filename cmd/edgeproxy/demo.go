package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/edgeproxy/edgeproxy/internal/config"
	"github.com/edgeproxy/edgeproxy/internal/demo"
)

// runDemo is the embedded default: it writes a small demo origin into a
// temporary directory, serves it on loopback with the settings of
// demoConfig (EDGEPROXY_* variables still apply), and prints curl lines.
// An in-process Redis-protocol server (package demo) stands in for Redis,
// so the token flow works with nothing installed.
func runDemo(ctx context.Context, environ []string, stdout, stderr io.Writer) error {
	env, err := demo.Start()
	if err != nil {
		return err
	}
	defer env.Close()
	cfg := demoConfig(env.Root, env.RedisAddr)
	if err := config.Decode(nil, &cfg, environ); err != nil {
		return usageError{err}
	}
	hello, tok := env.HelloToken, env.DemoToken
	return serve(ctx, cfg, stderr, func(addr string) {
		base := "http://" + addr
		fmt.Fprintf(stdout, `edgeproxy demo: serving %s on %s (Ctrl-C stops it)
Downloads need a token; two were minted in the embedded token store:
  curl -fsS -H 'Authorization: Bearer %s' %s/download/hello.txt
  curl -fsS -o demo.bin '%s/download/demo.bin?token=%s' && sha256sum demo.bin
  curl -fsS -r 1000-1999 -H 'Authorization: Bearer %s' %s/download/demo.bin | wc -c
Without a token:
  curl -sS %s/download/hello.txt
`, filepath.Join(env.Root, demo.Bucket), base, hello, base, base, tok, tok, base, base)
	})
}

// demoConfig is the embedded default configuration.
func demoConfig(root, redisAddr string) Config {
	cfg := defaultConfig()
	cfg.Log.Format = "text"
	cfg.Origin.Kind = "dir"
	cfg.Origin.Dir.Root = root
	cfg.Proxy.Listen = "127.0.0.1:8080"
	cfg.Proxy.DownloadBucket = demo.Bucket
	cfg.Proxy.DownloadAuth = "token"
	cfg.Redis.Addrs = []string{redisAddr}
	return cfg
}
