package upload_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/upload"
)

// TestTusPartFailsWhileNextLands forces the interleaving that parts in
// flight allow: part 2 fails only after part 3 has reached S3. The PATCH
// fails and the offset stays where the state saved before it ends (0):
// part 3 is never counted without part 2. The resumed PATCH, from the
// offset HEAD reports, sends parts 2 and 3 again and completes with the
// exact bytes.
func TestTusPartFailsWhileNextLands(t *testing.T) {
	const part = 5 << 20
	e := newEnv(t)
	target, err := url.Parse("http://" + e.origin.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target) // keeps the signed Host header
	part3 := make(chan struct{})
	var part3Once sync.Once
	var failed atomic.Bool
	fault := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := r.URL.Query().Get("partNumber")
		switch {
		case r.Method == http.MethodPut && n == "3" && !failed.Load():
			rp.ServeHTTP(w, r)
			part3Once.Do(func() { close(part3) })
		case r.Method == http.MethodPut && n == "2" && !failed.Load():
			select {
			case <-part3:
			case <-time.After(2 * time.Minute):
				t.Error("part 3 was not sent while part 2 was in flight")
			}
			failed.Store(true) // part 2 is sent once more only by the resumed PATCH, after this
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidRequest</Code><Message>injected</Message></Error>`)
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	defer fault.Close()
	e.origin.Endpoint = strings.TrimPrefix(fault.URL, "http://")
	cfg := e.config()
	n := e.node(cfg)

	data := make([]byte, 5*part+123)
	io.ReadFull(newGen(int64(len(data))), data)
	tok := e.token(n.Uploads, upload.Grant{Key: "inflight/a", FileID: "inflight-a"})
	loc := n.URL + create(t, n, tok, int64(len(data)))
	resp, body := patch(t, loc, tok, 0, data)
	if resp.StatusCode == 204 {
		t.Fatal("the PATCH succeeded although part 2 failed")
	}
	off := offset(t, loc, tok)
	if off != 0 {
		t.Fatalf("offset %d after part 2 failed, want 0 (%d %s)", off, resp.StatusCode, body)
	}
	if !failed.Load() {
		t.Fatal("part 2 was never refused")
	}
	resp, body = patch(t, loc, tok, off, data[off:])
	wantStatus(t, resp, body, 204, "")
	wantDownload(t, n, "inflight-a", data)
	e.wantClean()
}
