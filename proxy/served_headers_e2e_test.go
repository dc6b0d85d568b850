package proxy_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/proxy"
)

// TestE2ENosniff: every served object (200, 206, multipart 206, and the
// HEAD that describes them) carries X-Content-Type-Options: nosniff, so a
// browser never sniffs an object into HTML or script on the edge's origin.
func TestE2ENosniff(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	for _, tt := range []struct {
		name, method string
		hdr          []string
		status       int
	}{
		{"200", http.MethodGet, nil, 200},
		{"HEAD", http.MethodHead, nil, 200},
		{"206", http.MethodGet, []string{"Range", "bytes=1-10"}, 206},
		{"multipart 206", http.MethodGet, []string{"Range", "bytes=1-10,20-30"}, 206},
	} {
		resp, body := do(t, f.c, tt.method, f.url(dataKey), tt.hdr...)
		if resp.StatusCode != tt.status {
			t.Fatalf("%s: status %d (%q)", tt.name, resp.StatusCode, body)
		}
		if got := resp.Header.Values("X-Content-Type-Options"); len(got) != 1 || got[0] != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q, want nosniff", tt.name, got)
		}
	}
}

// TestCatalogE2EContentType: the catalog's content_type is the
// Content-Type of catalog downloads (whole, ranged and in each multipart
// part); a value that is not a sane media type falls back to the
// object's own type and never reaches the header as written.
func TestCatalogE2EContentType(t *testing.T) {
	e := newAuthEnv(t, testenv.Redis(t).Addr)
	e.secret("no-secret-in-this-test") // checkLog wants one
	cat, err := auth.NewCatalog(auth.CatalogConfig{}, e.rdb, e.logger)
	if err != nil {
		t.Fatal(err)
	}
	const bucket = "store"
	data := randBytes(104, 5000)
	e.o.put(t, bucket, "objects/x.bin", data)
	own := wantType(e.o.stat(t, bucket, "objects/x.bin"))
	u := e.newToken()[:10]
	ctx := context.Background()
	cases := []struct{ id, stored, want string }{
		{"pdf-" + u, "application/pdf", "application/pdf"},
		{"params-" + u, `text/plain; charset="utf-8"`, `text/plain; charset="utf-8"`},
		{"none-" + u, "", own},
		{"bogus-" + u, "not a type", own},
		{"inject-" + u, "text/html\r\nSet-Cookie: session=x", own},
	}
	for _, c := range cases {
		if err := cat.Put(ctx, auth.FileMeta{ID: c.id, Bucket: bucket, Key: "objects/x.bin", Filename: "x.bin", ContentType: c.stored}); err != nil {
			t.Fatal(err)
		}
	}
	p := e.start(proxy.Config{}, proxy.Deps{Catalog: cat})
	for _, c := range cases {
		t.Run(c.id[:len(c.id)-len(u)-1], func(t *testing.T) {
			resp, body := do(t, e.c, http.MethodGet, p.URL+"/download/"+c.id)
			wantBody(t, resp, body, data)
			if got := resp.Header.Get("Content-Type"); got != c.want {
				t.Errorf("200 Content-Type %q, want %q", got, c.want)
			}
			if resp.Header.Get("Set-Cookie") != "" {
				t.Errorf("Set-Cookie %q injected", resp.Header.Get("Set-Cookie"))
			}
			resp, body = do(t, e.c, http.MethodGet, p.URL+"/download/"+c.id, "Range", "bytes=10-19")
			if resp.StatusCode != 206 || resp.Header.Get("Content-Type") != c.want || !bytes.Equal(body, data[10:20]) {
				t.Errorf("206: status %d, Content-Type %q, want %q", resp.StatusCode, resp.Header.Get("Content-Type"), c.want)
			}
			resp, body = do(t, e.c, http.MethodGet, p.URL+"/download/"+c.id, "Range", "bytes=0-9,100-109")
			if resp.StatusCode != 206 {
				t.Fatalf("multipart: status %d", resp.StatusCode)
			}
			for i, pt := range readByteranges(t, resp, body) {
				if pt.ctype != c.want {
					t.Errorf("part %d Content-Type %q, want %q", i, pt.ctype, c.want)
				}
			}
		})
	}
}
