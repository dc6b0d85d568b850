package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"

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
	cfg := demoConfig(root)
	if err := config.Decode(nil, &cfg, environ); err != nil {
		return usageError{err}
	}
	return serve(ctx, cfg, stderr, func(addr string) {
		base := "http://" + addr
		fmt.Fprintf(stdout, `edgeproxy demo: serving %s on %s (Ctrl-C stops it)
  curl -fsS %s/download/hello.txt
  curl -fsS -o demo.bin %s/download/demo.bin && sha256sum demo.bin
  curl -fsS -r 1000-1999 %s/download/demo.bin | wc -c
`, filepath.Join(root, demoBucket), base, base, base, base)
	})
}

// demoConfig is the embedded default configuration.
func demoConfig(root string) Config {
	cfg := defaultConfig()
	cfg.Log.Format = "text"
	cfg.Origin.Kind = "dir"
	cfg.Origin.Dir.Root = root
	cfg.Proxy.Listen = "127.0.0.1:8080"
	cfg.Proxy.DownloadBucket = demoBucket
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
