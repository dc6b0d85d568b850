package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// dirOriginConfig writes a config file serving a local directory origin
// with the disk tier in diskDir, and returns its path.
func dirOriginConfig(t *testing.T, diskDir string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "b", "hello.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	yaml := "proxy:\n  listen: 127.0.0.1:0\n  download_bucket: b\n" +
		"origin:\n  kind: dir\n  dir:\n    root: " + root + "\n" +
		"cache:\n  memory_bytes: 8MiB\n  disk_dir: " + diskDir + "\n" +
		"admin:\n  listen: \"off\"\n"
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// foreignTree is a directory someone set disk_dir to by mistake: a user
// file, a file in a two-hex subdirectory (where the cache keeps chunks) and
// a tmp directory (where it keeps partial writes).
var foreignTree = map[string]string{
	"notes.txt":        "my notes",
	"ab/notes.txt":     "more notes",
	"tmp/draft.txt":    "a draft",
	"00/0000000000000": "data",
}

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checkTree fails unless dir holds exactly files, with their contents.
func checkTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		want, ok := files[rel]
		b, _ := os.ReadFile(path)
		if !ok || string(b) != want {
			t.Errorf("%s: unexpected file or content %q", rel, b)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(files) {
		t.Errorf("%d files under %s, want %d: something was deleted", n, dir, len(files))
	}
}

// TestForeignDiskDirRefused: pointed at a directory that is not the
// cache's own, the real binary refuses to start (and -check reports it)
// with one line naming cache.disk_dir and exit code 2, and deletes nothing.
func TestForeignDiskDirRefused(t *testing.T) {
	bin := binary(t)
	for _, args := range [][]string{{"-check"}, nil} {
		name := "serve"
		if len(args) > 0 {
			name = "check"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, foreignTree)
			msg := runUsageError(t, bin, nil, append(args, "-config", dirOriginConfig(t, dir))...)
			if strings.Contains(msg, "\n") || !strings.Contains(msg, `"cache.disk_dir"`) || !strings.Contains(msg, dir) {
				t.Errorf("stderr %q: want one line naming \"cache.disk_dir\" and %s", msg, dir)
			}
			checkTree(t, dir, foreignTree)
		})
	}
}

// TestCheckTouchesNoDisk: -check validates disk_dir without creating it,
// writing the marker into an empty one, or cleaning one it owns.
func TestCheckTouchesNoDisk(t *testing.T) {
	bin := binary(t)
	check := func(t *testing.T, diskDir string) {
		t.Helper()
		cmd := exec.Command(bin, "-check", "-config", dirOriginConfig(t, diskDir))
		cmd.Env = cleanEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("-check: %v\n%s", err, out)
		}
	}
	t.Run("missing", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "cache")
		check(t, dir)
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("-check created %s: %v", dir, err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		dir := t.TempDir()
		check(t, dir)
		checkTree(t, dir, nil)
	})
	t.Run("owned", func(t *testing.T) {
		// Leftovers the serve path would clean up: a partial write in tmp
		// and a stray file in a chunk subdirectory.
		files := map[string]string{
			"EDGEPROXY-CACHE": "edgeproxy-cache\nformat 1\n",
			"tmp/chunk-1":     "partial",
			"ab/junk":         "x",
		}
		dir := t.TempDir()
		writeTree(t, dir, files)
		check(t, dir)
		checkTree(t, dir, files)
	})
}

// TestDiskDirClaimedAndReopened: the binary claims a missing disk_dir
// (creating it and its marker), and a restart reopens it with its chunks.
func TestDiskDirClaimedAndReopened(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	cfg := dirOriginConfig(t, dir)
	var before int
	for i := range 2 {
		p := start(t, []string{"-config", cfg}, nil)
		b, err := os.ReadFile(filepath.Join(dir, "EDGEPROXY-CACHE"))
		if err != nil || string(b) != "edgeproxy-cache\nformat 1\n" {
			t.Fatalf("run %d: marker %q, %v", i, b, err)
		}
		if i == 0 {
			httpGet(t, "http://"+p.addr+"/download/hello.txt", "hello\n")
			if !testenv.Poll(context.Background(), 10*time.Second, func() bool { before = countChunkFiles(t, dir); return before > 0 }) {
				t.Fatal("no chunk file written")
			}
		} else if n := countChunkFiles(t, dir); n != before {
			t.Fatalf("after restart %d chunk files, want %d", n, before)
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			if p.err != nil {
				t.Fatalf("run %d: exit %v\n%s", i, p.err, p.stderr.String())
			}
		case <-time.After(15 * time.Second):
			t.Fatal("edgeproxy did not exit within 15s of SIGTERM")
		}
	}
}

// countChunkFiles counts files in the two-hex subdirectories of dir.
func countChunkFiles(t *testing.T, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "[0-9a-f][0-9a-f]", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func httpGet(t *testing.T, url, want string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != want {
		t.Fatalf("GET %s = %d %q, want 200 %q", url, resp.StatusCode, body, want)
	}
}

// TestMemoryLimitOnlyWhenServing: -check leaves the Go memory limit alone;
// serving sets it from cache.memory_bytes. Runs in this process, since the
// limit is process-wide state.
func TestMemoryLimitOnlyWhenServing(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	prev := debug.SetMemoryLimit(math.MaxInt64)
	defer debug.SetMemoryLimit(prev)
	cfg := dirOriginConfig(t, filepath.Join(t.TempDir(), "cache"))

	var stdout, stderr bytes.Buffer
	if code := run([]string{"-check", "-config", cfg}, cleanEnv(), &stdout, &stderr); code != 0 {
		t.Fatalf("-check exit %d: %s", code, stderr.String())
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("-check set the memory limit to %d", got)
	}

	c, err := loadConfig(cfg, cleanEnv())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := serve(ctx, c, io.Discard, cancelWhenServing(t, cancel)); err != nil {
		t.Fatal(err)
	}
	if got, want := debug.SetMemoryLimit(-1), int64(8<<20+memoryOverhead); got != want {
		t.Fatalf("serving set the memory limit to %d, want %d", got, want)
	}
}

// noKeepAlive closes its connections after each request, so a server's
// drain does not wait for them.
var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// cancelWhenServing returns a ready callback for serve that calls cancel
// once the listener answers /healthz. Cancelling before fasthttp's accept
// loop runs would race its Shutdown (which then waits for nothing and
// returns while Serve starts afterwards).
func cancelWhenServing(t *testing.T, cancel func()) func(addr string) {
	return func(addr string) {
		go func() {
			defer cancel()
			if !testenv.Poll(context.Background(), 20*time.Second, func() bool {
				resp, err := noKeepAlive.Get("http://" + addr + "/healthz")
				if err == nil {
					resp.Body.Close()
				}
				return err == nil
			}) {
				t.Error("listener never answered /healthz")
			}
		}()
	}
}
