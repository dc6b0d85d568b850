package proxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/internal/objectkey"
	"github.com/edgeproxy/edgeproxy/origin"
)

// oneTokenVerifier accepts only the token "good", for any file.
type oneTokenVerifier struct{}

func (oneTokenVerifier) Verify(_ context.Context, token, fileID string, _ netip.Addr) (auth.Grant, error) {
	if token != "good" {
		return auth.Grant{}, &auth.Error{Code: auth.CodeTokenInvalid, Status: 401}
	}
	return auth.Grant{Token: token, FileID: fileID}, nil
}

// newKeyCacheServer serves a directory origin with the object b/obj on
// token-protected /download/ and on the host route files.test.
func newKeyCacheServer(t *testing.T) *Server {
	t.Helper()
	root := t.TempDir()
	for _, b := range []string{"b", "h"} {
		if err := os.MkdirAll(filepath.Join(root, b), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, b, "obj"), []byte("hello"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := origin.NewDir(origin.DirConfig{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dir.Close() })
	off := false
	s, err := New(Config{DownloadBucket: "b", DownloadAuth: AuthToken, AccessLog: &off,
		Routes: []RouteConfig{{Hosts: []string{"files.test"}, Bucket: "h", Auth: AuthToken}}},
		Deps{Origin: dir, Tokens: oneTokenVerifier{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// serveOnce runs one in-memory GET through the handler and returns the status.
func serveOnce(t *testing.T, s *Server, host, path, token string) int {
	t.Helper()
	var req fasthttp.Request
	req.SetRequestURI(path)
	req.Header.SetHost(host)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
	s.Handler(&ctx)
	if err := ctx.Response.BodyWriteTo(io.Discard); err != nil {
		t.Fatal(err)
	}
	if c, ok := ctx.Response.BodyStream().(io.Closer); ok {
		c.Close()
	}
	return ctx.Response.StatusCode()
}

// TestKeyCacheFilledOnlyWhenAuthorised: issue 9, defect 6. Requests
// without a valid token, and authorised requests for objects that do not
// exist, must not add to the key cache; authorised hits do, once.
func TestKeyCacheFilledOnlyWhenAuthorised(t *testing.T) {
	s := newKeyCacheServer(t)
	long := strings.Repeat("x", 900)
	for i := range 300 {
		p := "/download/" + long + strconv.Itoa(i)
		if code := serveOnce(t, s, "edge.test", p, ""); code != 401 {
			t.Fatalf("no token: status %d, want 401", code)
		}
		if code := serveOnce(t, s, "edge.test", p, "bad"); code != 401 {
			t.Fatalf("bad token: status %d, want 401", code)
		}
		if code := serveOnce(t, s, "edge.test", p, "good"); code != 404 {
			t.Fatalf("good token, no object: status %d, want 404", code)
		}
		if code := serveOnce(t, s, "files.test", "/"+long+strconv.Itoa(i), "good"); code != 404 {
			t.Fatalf("host route, no object: status %d, want 404", code)
		}
	}
	// Unauthorised requests for an object that exists do not fill it either.
	for _, tok := range []string{"", "bad"} {
		serveOnce(t, s, "edge.test", "/download/obj", tok)
		serveOnce(t, s, "files.test", "/obj", tok)
	}
	if n, b := s.keys.size(); n != 0 || b != 0 {
		t.Fatalf("after refused and not-found requests: %d keys (%d bytes) cached, want none", n, b)
	}

	for range 3 {
		if code := serveOnce(t, s, "edge.test", "/download/obj", "good"); code != 200 {
			t.Fatalf("authorised hit: status %d", code)
		}
		if code := serveOnce(t, s, "files.test", "/obj", "good"); code != 200 {
			t.Fatalf("authorised host hit: status %d", code)
		}
	}
	if n, b := s.keys.size(); n != 1 || b != len("obj")*2+keyEntryOverhead {
		// Both routes' raw path is "obj": one entry.
		t.Fatalf("after authorised hits: %d keys (%d bytes), want 1", n, b)
	}
	key, cached, err := s.keys.objectKey([]byte("obj"))
	if key != "obj" || !cached || err != nil {
		t.Fatalf("objectKey(obj) = %q, %v, %v; want a cache hit", key, cached, err)
	}
}

// TestKeyCacheByteBound: however many and however long the keys added,
// the cache stays within keyCacheBytes.
func TestKeyCacheByteBound(t *testing.T) {
	var c keyCache
	long := strings.Repeat("k", objectkey.MaxLength-8)
	peak := 0
	for i := range 3 * keyCacheBytes / (2*objectkey.MaxLength + keyEntryOverhead) {
		raw := []byte(long + strconv.Itoa(i))
		key, cached, err := c.objectKey(raw)
		if err != nil || cached {
			t.Fatalf("objectKey: %v, cached %v", err, cached)
		}
		c.add(raw, key)
		n, b := c.size()
		if b > keyCacheBytes || n == 0 {
			t.Fatalf("after %d adds: %d keys, %d bytes; bound %d", i+1, n, b, keyCacheBytes)
		}
		peak = max(peak, b)
		if got, cached, _ := c.objectKey(raw); !cached || got != key {
			t.Fatalf("key just added is not a hit")
		}
	}
	if peak < keyCacheBytes/2 {
		t.Fatalf("peak %d bytes: the cache never filled", peak)
	}
}
