//go:build unix

package origin

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dirFixture lays out:
//
//	root/b/a.txt            "hello, world\n"
//	root/b/sub/x.qqq        4 KiB pattern
//	root/b/empty            0 bytes
//	root/b/dir/             directory
//	root/b/in -> a.txt      symlink inside the bucket
//	root/b/out -> ../../outside/secret   escapes the root
//	root/b/other -> ../c/secret          escapes the bucket, stays in root
//	root/b/abs -> /abs/path/secret       absolute symlink
//	root/b/fifo             named pipe
//	root/c/secret           another bucket
//	outside/secret          outside the root
type dirFixture struct {
	root, outside string
	big           []byte
	d             *Dir
}

func newDirFixture(t testing.TB) *dirFixture {
	t.Helper()
	base := t.TempDir()
	f := &dirFixture{root: filepath.Join(base, "root"), outside: filepath.Join(base, "outside")}
	f.big = make([]byte, 4096)
	for i := range f.big {
		f.big[i] = byte(i * 7)
	}
	write := func(p string, data []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := filepath.Join(f.root, "b")
	write(filepath.Join(b, "a.txt"), []byte("hello, world\n"))
	write(filepath.Join(b, "sub", "x.qqq"), f.big)
	write(filepath.Join(b, "empty"), nil)
	write(filepath.Join(f.root, "c", "secret"), []byte("bucket c"))
	write(filepath.Join(f.outside, "secret"), []byte("outside"))
	if err := os.Mkdir(filepath.Join(b, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"in":    "a.txt",
		"out":   "../../outside/secret",
		"other": "../c/secret",
		"abs":   filepath.Join(f.outside, "secret"),
	} {
		if err := os.Symlink(target, filepath.Join(b, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(b, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := NewDir(DirConfig{Root: f.root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	f.d = d
	return f
}

func TestNewDirConfig(t *testing.T) {
	for _, tc := range []struct {
		root, want string
	}{
		{"", "origin: root: required"},
		{filepath.Join(t.TempDir(), "missing"), "origin: root: "},
	} {
		_, err := NewDir(DirConfig{Root: tc.root})
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("NewDir(%q) = %v, want prefix %q", tc.root, err, tc.want)
		}
	}
}

func TestDirStat(t *testing.T) {
	f := newDirFixture(t)
	ctx := context.Background()
	for _, tc := range []struct {
		bucket, key string
		err         error
		size        int64
		ctype       string
	}{
		// Names that must not resolve.
		{"b", "../c/secret", ErrNotFound, 0, ""},
		{"b", "/etc/passwd", ErrNotFound, 0, ""},
		{"b", "sub/../a.txt", ErrNotFound, 0, ""},
		{"b", "./a.txt", ErrNotFound, 0, ""},
		{"b", "a.txt/", ErrNotFound, 0, ""},
		{"b", "", ErrNotFound, 0, ""},
		{"b", ".", ErrNotFound, 0, ""},
		{"b", "a\x00b", ErrNotFound, 0, ""},
		{"b", "out", ErrNotFound, 0, ""},
		{"b", "other", ErrNotFound, 0, ""},
		{"b", "abs", ErrNotFound, 0, ""},
		{"..", "outside/secret", ErrNotFound, 0, ""},
		{"../outside", "secret", ErrNotFound, 0, ""},
		{"", "b/a.txt", ErrNotFound, 0, ""},
		{".", "b/a.txt", ErrNotFound, 0, ""},
		{"b/sub", "x.qqq", ErrNotFound, 0, ""},
		{"/tmp", "x", ErrNotFound, 0, ""},
		{"b", "missing", ErrNotFound, 0, ""},
		{"nob", "a.txt", ErrNotFound, 0, ""},
		{"b", "a.txt/x", ErrNotFound, 0, ""},
		{"b", "dir", ErrNotFound, 0, ""},
		{"b", "fifo", ErrNotFound, 0, ""},
		// Files.
		{"b", "a.txt", nil, 13, "text/plain; charset=utf-8"},
		{"b", "in", nil, 13, ""},
		{"b", "sub/x.qqq", nil, 4096, ""},
		{"b", "empty", nil, 0, ""},
		{"c", "secret", nil, 8, ""},
	} {
		info, err := f.d.Stat(ctx, tc.bucket, tc.key)
		if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("Stat(%q, %q) error = %v, want %v", tc.bucket, tc.key, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		if info.Size != tc.size || info.ContentType != tc.ctype {
			t.Errorf("Stat(%q, %q) = %+v, want size %d type %q", tc.bucket, tc.key, info, tc.size, tc.ctype)
		}
		fi, _ := os.Stat(filepath.Join(f.root, tc.bucket, tc.key))
		if want := fi.ModTime().UTC().Truncate(time.Second); !info.LastModified.Equal(want) || info.LastModified.Location() != time.UTC {
			t.Errorf("Stat(%q, %q).LastModified = %v, want %v", tc.bucket, tc.key, info.LastModified, want)
		}
		if len(info.ETag) < 3 || info.ETag[0] != '"' || info.ETag[len(info.ETag)-1] != '"' || strings.HasPrefix(info.ETag, "W/") {
			t.Errorf("Stat(%q, %q).ETag = %s, want a quoted strong tag", tc.bucket, tc.key, info.ETag)
		}
	}
}

func TestDirOpenRanges(t *testing.T) {
	f := newDirFixture(t)
	ctx := context.Background()
	info, err := f.d.Stat(ctx, "b", "sub/x.qqq")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		etag   string
		off, n int64
		err    error
	}{
		{info.ETag, 0, 4096, nil},
		{"", 0, 4096, nil},
		{info.ETag, 0, 1, nil},
		{info.ETag, 4095, 1, nil},
		{info.ETag, 1000, 2000, nil},
		{`"0-0-0"`, 0, 1, ErrChanged},
		{strings.Trim(info.ETag, `"`), 0, 1, ErrChanged}, // unquoted is a different tag
		{info.ETag, 4000, 97, ErrChanged},                // beyond the size: it shrank
		{"", 4096, 1, ErrChanged},
	} {
		rc, err := f.d.Open(ctx, "b", "sub/x.qqq", tc.etag, tc.off, tc.n)
		if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("Open(%s, %d, %d) error = %v, want %v", tc.etag, tc.off, tc.n, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, f.big[tc.off:tc.off+tc.n]) {
			t.Errorf("Open(%d, %d) read %d bytes, err %v; want the %d bytes at %d", tc.off, tc.n, len(got), err, tc.n, tc.off)
		}
	}
	for _, key := range []string{"out", "other", "abs", "../c/secret", "dir", "fifo", "missing"} {
		if _, err := f.d.Open(ctx, "b", key, "", 0, 1); !errors.Is(err, ErrNotFound) {
			t.Errorf("Open(b, %q) = %v, want ErrNotFound", key, err)
		}
	}
	for _, r := range [][2]int64{{-1, 1}, {0, 0}, {0, -1}} {
		if _, err := f.d.Open(ctx, "b", "a.txt", "", r[0], r[1]); err == nil {
			t.Errorf("Open(off=%d, n=%d) succeeded", r[0], r[1])
		}
	}
}

func TestDirETagChanges(t *testing.T) {
	f := newDirFixture(t)
	ctx := context.Background()
	p := filepath.Join(f.root, "b", "a.txt")
	before, err := f.d.Stat(ctx, "b", "a.txt")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := f.d.Stat(ctx, "b", "a.txt")
	if again.ETag != before.ETag {
		t.Fatalf("ETag unstable: %s then %s", before.ETag, again.ETag)
	}
	// Same size, new content, mtime moved by one nanosecond.
	if err := os.WriteFile(p, []byte("HELLO, WORLD\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	mt := fi.ModTime().Add(time.Nanosecond)
	if err := os.Chtimes(p, mt, mt); err != nil {
		t.Fatal(err)
	}
	after, err := f.d.Stat(ctx, "b", "a.txt")
	if err != nil {
		t.Fatal(err)
	}
	if after.ETag == before.ETag {
		t.Fatalf("ETag %s did not change after rewrite", after.ETag)
	}
	if _, err := f.d.Open(ctx, "b", "a.txt", before.ETag, 0, 1); !errors.Is(err, ErrChanged) {
		t.Fatalf("Open with old ETag = %v, want ErrChanged", err)
	}
	// Atomic replace with identical size and mtime: the inode differs.
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte("hello, again\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, mt, mt); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	if _, err := f.d.Open(ctx, "b", "a.txt", after.ETag, 0, 1); !errors.Is(err, ErrChanged) {
		t.Fatalf("Open after rename-into-place = %v, want ErrChanged", err)
	}
}

func TestDirReaderShortFile(t *testing.T) {
	f := newDirFixture(t)
	ctx := context.Background()
	for _, useWriteTo := range []bool{false, true} {
		p := filepath.Join(f.root, "b", "sub", "x.qqq")
		if err := os.WriteFile(p, f.big, 0o644); err != nil {
			t.Fatal(err)
		}
		rc, err := f.d.Open(ctx, "b", "sub/x.qqq", "", 0, 4096)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, 100); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if useWriteTo {
			_, err = rc.(io.WriterTo).WriteTo(&buf)
		} else {
			_, err = io.Copy(&buf, struct{ io.Reader }{rc})
		}
		rc.Close()
		if !errors.Is(err, io.ErrUnexpectedEOF) || buf.Len() != 100 {
			t.Errorf("WriteTo=%v: read %d bytes, err %v; want 100 and io.ErrUnexpectedEOF", useWriteTo, buf.Len(), err)
		}
	}
}

func TestDirReaderCancel(t *testing.T) {
	f := newDirFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	rc, err := f.d.Open(ctx, "b", "sub/x.qqq", "", 0, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	p := make([]byte, 10)
	if _, err := rc.Read(p); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := rc.Read(p); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel = %v, want context.Canceled", err)
	}
	if _, err := f.d.Open(ctx, "b", "a.txt", "", 0, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open with cancelled ctx = %v", err)
	}
}

// TestDirWriteToSocket copies a range to a loopback TCP connection through
// io.Copy, the path on which the kernel can use sendfile.
func TestDirWriteToSocket(t *testing.T) {
	f := newDirFixture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		got <- b
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	rc, err := f.d.Open(context.Background(), "b", "sub/x.qqq", "", 100, 3000)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rc.(io.WriterTo); !ok {
		t.Fatal("Dir reader is not an io.WriterTo")
	}
	n, err := io.Copy(c, rc)
	rc.Close()
	c.Close()
	if err != nil || n != 3000 {
		t.Fatalf("io.Copy = %d, %v", n, err)
	}
	if b := <-got; !bytes.Equal(b, f.big[100:3100]) {
		t.Fatalf("peer got %d bytes, not the range", len(b))
	}
}

func TestDirPing(t *testing.T) {
	f := newDirFixture(t)
	ctx := context.Background()
	if err := f.d.Ping(ctx); err != nil {
		t.Fatalf("Ping = %v", err)
	}
	moved := f.root + ".old"
	if err := os.Rename(f.root, moved); err != nil {
		t.Fatal(err)
	}
	if err := f.d.Ping(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ping with root gone = %v, want ErrUnavailable", err)
	}
	if err := os.Mkdir(f.root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.d.Ping(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ping with root replaced = %v, want ErrUnavailable", err)
	}
}

// FuzzDirContainment asserts that whatever bucket and key Dir is given, a
// successful Stat names a regular file whose real path is inside that
// bucket's directory.
func FuzzDirContainment(f *testing.F) {
	for _, s := range [][2]string{
		{"b", "a.txt"}, {"b", "../c/secret"}, {"b", "out"}, {"b", "other"}, {"b", "in"},
		{"..", "outside/secret"}, {"b/../c", "secret"}, {"c", "secret"}, {"b", "sub/x.qqq"},
		{"b", "/etc/passwd"}, {"b", "sub//x.qqq"}, {"b", "sub/./x.qqq"},
	} {
		f.Add(s[0], s[1])
	}
	fx := newDirFixture(f)
	realRoot, err := filepath.EvalSymlinks(fx.root)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, bucket, key string) {
		info, err := fx.d.Stat(context.Background(), bucket, key)
		if err != nil {
			if !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Stat(%q, %q) = %v, want a sentinel", bucket, key, err)
			}
			return
		}
		real, err := filepath.EvalSymlinks(filepath.Join(fx.root, bucket, key))
		if err != nil {
			t.Fatalf("Stat(%q, %q) succeeded but the path does not resolve: %v", bucket, key, err)
		}
		bucketDir := filepath.Join(realRoot, bucket) + string(filepath.Separator)
		if !strings.HasPrefix(real, bucketDir) {
			t.Fatalf("Stat(%q, %q) reached %s, outside %s", bucket, key, real, bucketDir)
		}
		if fi, err := os.Stat(real); err != nil || fi.Size() != info.Size {
			t.Fatalf("Stat(%q, %q) size %d disagrees with %s", bucket, key, info.Size, real)
		}
	})
}
