// Package demo is the world of `edgeproxy -demo`: a generated origin
// directory and an in-process Redis-protocol token store (miniredis) with
// a token minted per file, so that the README's first command works with
// nothing installed. Only the -demo flag uses it; the binary's serving
// path never does.
package demo

import (
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
)

// Bucket is the bucket (subdirectory of Root) the demo serves.
const Bucket = "demo"

// Env is a running demo environment. Close removes it.
type Env struct {
	// Root is the origin directory (kind "dir"); the files are in Root/Bucket.
	Root string
	// RedisAddr is the token store's loopback address.
	RedisAddr string
	// HelloToken and DemoToken are download tokens for hello.txt and
	// demo.bin, valid for a day.
	HelloToken, DemoToken string

	mr *miniredis.Miniredis
}

// Start writes the demo files into a new temporary directory and starts
// the token store with one token per file.
func Start() (_ *Env, err error) {
	root, err := os.MkdirTemp("", "edgeproxy-demo-")
	if err != nil {
		return nil, err
	}
	e := &Env{Root: root}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if err := writeFiles(filepath.Join(root, Bucket)); err != nil {
		return nil, err
	}
	e.mr = miniredis.NewMiniRedis()
	if err := e.mr.Start(); err != nil {
		e.mr = nil
		return nil, fmt.Errorf("demo: token store: %w", err)
	}
	e.RedisAddr = e.mr.Addr()
	if e.HelloToken, err = e.mint("hello.txt"); err != nil {
		return nil, err
	}
	if e.DemoToken, err = e.mint("demo.bin"); err != nil {
		return nil, err
	}
	return e, nil
}

// Close stops the token store and removes the files.
func (e *Env) Close() {
	if e.mr != nil {
		e.mr.Close()
	}
	os.RemoveAll(e.Root)
}

// mint stores a token for fileID in the string form that application
// backends write (SET download:token:<t> "file_id=..&user_id=.." EX ...).
func (e *Env) mint(fileID string) (string, error) {
	var b [18]byte
	if _, err := crand.Read(b[:]); err != nil {
		return "", fmt.Errorf("demo: mint token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	key := "download:token:" + tok
	if err := e.mr.Set(key, "file_id="+url.QueryEscape(fileID)+"&user_id=demo"); err != nil {
		return "", fmt.Errorf("demo: mint token: %w", err)
	}
	e.mr.SetTTL(key, 24*time.Hour)
	return tok, nil
}

// writeFiles creates a greeting and a 16 MiB file of pseudo-random bytes
// (the same every run) to try ranges and resumes on.
func writeFiles(dir string) error {
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
