package main

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/edgeproxy/edgeproxy/internal/config"
)

// demoBucket is the bucket (subdirectory) the demo serves.
const demoBucket = "demo"

// runDemo is the embedded default: it writes a small demo origin into a
// temporary directory, serves it on loopback with the settings of
// demoConfig (EDGEPROXY_* variables still apply), and prints curl lines.
func runDemo(ctx context.Context, environ []string, stdout, stderr io.Writer) error {
	root, err := os.MkdirTemp("", "edgeproxy-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	if err := writeDemoFiles(filepath.Join(root, demoBucket)); err != nil {
		return err
	}
	// An in-process Redis-protocol server stands in for Redis, so the
	// token flow works with nothing installed.
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		return fmt.Errorf("demo: token store: %w", err)
	}
	defer mr.Close()
	hello, demo, err := mintDemoTokens(mr)
	if err != nil {
		return err
	}
	cfg := demoConfig(root, mr.Addr())
	if err := config.Decode(nil, &cfg, environ); err != nil {
		return usageError{err}
	}
	return serve(ctx, cfg, stderr, func(addr string) {
		base := "http://" + addr
		fmt.Fprintf(stdout, `edgeproxy demo: serving %s on %s (Ctrl-C stops it)
Downloads need a token; two were minted in the embedded token store:
  curl -fsS -H 'Authorization: Bearer %s' %s/download/hello.txt
  curl -fsS -o demo.bin '%s/download/demo.bin?token=%s' && sha256sum demo.bin
  curl -fsS -r 1000-1999 -H 'Authorization: Bearer %s' %s/download/demo.bin | wc -c
Without a token:
  curl -sS %s/download/hello.txt
`, filepath.Join(root, demoBucket), base, hello, base, base, demo, demo, base, base)
	})
}

// mintDemoTokens stores one token per demo file in the string form that
// application backends write (SET download:token:<t> "file_id=..&user_id=.." EX ...).
func mintDemoTokens(mr *miniredis.Miniredis) (hello, demo string, err error) {
	mint := func(fileID string) (string, error) {
		var b [18]byte
		if _, err := crand.Read(b[:]); err != nil {
			return "", err
		}
		tok := base64.RawURLEncoding.EncodeToString(b[:])
		key := "download:token:" + tok
		if err := mr.Set(key, "file_id="+url.QueryEscape(fileID)+"&user_id=demo"); err != nil {
			return "", err
		}
		mr.SetTTL(key, 24*time.Hour)
		return tok, nil
	}
	if hello, err = mint("hello.txt"); err != nil {
		return "", "", fmt.Errorf("demo: mint token: %w", err)
	}
	if demo, err = mint("demo.bin"); err != nil {
		return "", "", fmt.Errorf("demo: mint token: %w", err)
	}
	return hello, demo, nil
}

// demoConfig is the embedded default configuration.
func demoConfig(root, redisAddr string) Config {
	cfg := defaultConfig()
	cfg.Log.Format = "text"
	cfg.Origin.Kind = "dir"
	cfg.Origin.Dir.Root = root
	cfg.Proxy.Listen = "127.0.0.1:8080"
	cfg.Proxy.DownloadBucket = demoBucket
	cfg.Proxy.DownloadAuth = "token"
	cfg.Redis.Addrs = []string{redisAddr}
	return cfg
}

// writeDemoFiles creates a greeting and a 16 MiB file of pseudo-random
// bytes (the same every run) to try ranges and resumes on.
func writeDemoFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("Hello from the edge.\n"), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "demo.bin"))
	if err != nil {
		return err
	}
	rng := rand.NewChaCha8([32]byte{'e', 'd', 'g', 'e'})
	if _, err := io.CopyN(f, rng, 16<<20); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
