package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// TestServeWaitsForAdminAndCloseReportsErrors: when app.serve returns, the
// admin listener's goroutine has returned too (the caller closes the parts
// next), and app.close returns the errors of the parts' Close.
func TestServeWaitsForAdminAndCloseReportsErrors(t *testing.T) {
	a := buildYAML(t, "cache:\n  enabled: false\n"+
		"admin:\n  listen: 127.0.0.1:0\n  key: "+adminKey+"\n")
	errBoom := errors.New("boom")
	a.closes = append(a.closes, func() error { return errBoom })

	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.serve(ctx, cancelWhenServing(t, cancel)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "admin.(*API).Serve") {
		t.Fatalf("the admin listener's goroutine outlived serve:\n%s", stacks)
	}
	if err := a.close(); !errors.Is(err, errBoom) {
		t.Fatalf("close = %v, want the error of a part's Close", err)
	}
}

// buildYAML builds the app as the binary would from a config file holding
// a loopback listener and a dir origin (bucket "b", empty) followed by
// extra, with no EDGEPROXY_ variables applied.
func buildYAML(t *testing.T, extra string) *app {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	yaml := "proxy:\n  listen: 127.0.0.1:0\n  download_bucket: b\n" +
		"origin:\n  kind: dir\n  dir:\n    root: " + root + "\n" + extra
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path, cleanEnv())
	if err != nil {
		t.Fatal(err)
	}
	a, err := build(cfg, io.Discard, false)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
