package proxy_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/limiter"
	"github.com/edgeproxy/edgeproxy/proxy"
)

// Reload swaps routes and signing keys at once; a reload it refuses
// changes nothing.
func TestReloadRoutesAndKeys(t *testing.T) {
	o := newDirOrigin(t, dlBucket, hostBucket, wildBucket)
	o.put(t, dlBucket, "obj", []byte("download bucket\n"))
	o.put(t, hostBucket, "obj", []byte("host bucket\n"))
	o.put(t, wildBucket, "obj", []byte("wildcard bucket\n"))
	signer := func(kid, secret string) *auth.Signer {
		s, err := auth.NewSigner(auth.SignerConfig{Keys: map[string]string{kid: secret}, ActiveKey: kid})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	oldKey, newKey := signer("k1", "0123456789abcdef0123"), signer("k2", "fedcba9876543210fedc")
	cfg := proxy.Config{DownloadBucket: dlBucket, DownloadAuth: proxy.AuthSigned, DrainTimeout: 5 * time.Second,
		Routes: []proxy.RouteConfig{{Hosts: []string{"files.example.com"}, Bucket: hostBucket}}}
	srv, err := proxy.New(cfg, proxy.Deps{Origin: o.Store, Signer: oldKey, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	base := "http://" + ln.Addr().String()
	c := newClient(t)
	status := func(host, path string) int {
		t.Helper()
		h := []string{}
		if host != "" {
			h = append(h, "Host", host)
		}
		resp, _ := do(t, c, "GET", base+path, h...)
		return resp.StatusCode
	}
	signed := func(s *auth.Signer) string {
		q, err := s.Sign("GET", "127.0.0.1", "/download/obj", time.Now().Add(time.Hour), "")
		if err != nil {
			t.Fatal(err)
		}
		return "/download/obj?" + q
	}
	oldURL, newURL := signed(oldKey), signed(newKey)
	check := func(what string, want map[string]int) {
		t.Helper()
		got := map[string]int{
			"files":   status("files.example.com", "/obj"),
			"wild":    status("a.cdn.example.com", "/obj"),
			"old key": status("", oldURL),
			"new key": status("", newURL),
		}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: %s: status %d, want %d", what, k, got[k], w)
			}
		}
	}
	check("before", map[string]int{"files": 200, "wild": 404, "old key": 200, "new key": http.StatusForbidden})

	next := cfg
	next.Routes = append(next.Routes, proxy.RouteConfig{Hosts: []string{"*.cdn.example.com"}, Bucket: wildBucket})
	if err := srv.Reload(next, proxy.LiveDeps{Signer: newKey}); err != nil {
		t.Fatal(err)
	}
	check("after", map[string]int{"files": 200, "wild": 200, "old key": http.StatusForbidden, "new key": 200})

	// Refused: signed auth without keys, a host listed twice. Nothing changes.
	bad := next
	bad.Routes = append(bad.Routes, proxy.RouteConfig{Hosts: []string{"x.example.com"}, Bucket: hostBucket, Auth: proxy.AuthSigned})
	if err := srv.Reload(bad, proxy.LiveDeps{}); err == nil {
		t.Error("Reload accepted a signed route without keys")
	}
	dup := next
	dup.Routes = append(dup.Routes, proxy.RouteConfig{Hosts: []string{"files.example.com"}, Bucket: wildBucket})
	if err := srv.Reload(dup, proxy.LiveDeps{Signer: oldKey}); err == nil {
		t.Error("Reload accepted a host listed twice")
	}
	check("after refused reloads", map[string]int{"files": 200, "wild": 200, "old key": http.StatusForbidden, "new key": 200})

	// New limits: one request, then 429 for a long while.
	lim, err := limiter.New(limiter.Config{RequestRate: 0.001, RequestBurst: 1}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer lim.Close()
	if err := srv.Reload(next, proxy.LiveDeps{Signer: newKey, Limiter: lim}); err != nil {
		t.Fatal(err)
	}
	if got := status("files.example.com", "/obj"); got != 200 {
		t.Fatalf("first request under the new limiter: %d", got)
	}
	if got := status("files.example.com", "/obj"); got != http.StatusTooManyRequests {
		t.Errorf("second request under the new limiter: %d, want 429", got)
	}
	if srv.Limiter() != lim {
		t.Error("Limiter() does not return the reloaded limiter")
	}
}
