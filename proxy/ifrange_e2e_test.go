package proxy_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/proxy"
)

// TestE2EIfRangeDateSameSecond: an object replaced within the second of
// its Last-Modified keeps that Last-Modified, so a client resuming with
// If-Range: <that date> cannot tell the versions apart. RFC 9110 13.1.5 and
// 8.8.2.2 make such a date weak (Last-Modified not a second before the
// response's Date): the proxy must answer 200 with the whole current
// object, never 206 with the new bytes after the old ones.
func TestE2EIfRangeDateSameSecond(t *testing.T) {
	f := newFixture(t, proxy.Config{}, nil)
	const size = 4000
	// The decision is only certain when the resume reaches the proxy less
	// than a second after the object's Last-Modified; on a stalled machine
	// an attempt may miss that window and is then repeated (bounded).
	for attempt := 0; attempt < 20; attempt++ {
		key := "same-second-" + strconv.Itoa(attempt) + ".bin"
		if frac := time.Duration(time.Now().Nanosecond()); frac > 300*time.Millisecond {
			time.Sleep(time.Second - frac) // start near the beginning of a second
		}
		old, cur := randBytes(uint64(100+2*attempt), size), randBytes(uint64(101+2*attempt), size)
		f.o.put(t, dlBucket, key, old)
		resp, first := do(t, f.c, http.MethodGet, f.url(key), "Range", "bytes=0-1999")
		if resp.StatusCode != 206 || !bytes.Equal(first, old[:2000]) {
			t.Fatalf("first half: status %d, %d bytes", resp.StatusCode, len(first))
		}
		lmHdr := resp.Header.Get("Last-Modified")
		lm, err := http.ParseTime(lmHdr)
		if err != nil {
			t.Fatalf("Last-Modified %q: %v", lmHdr, err)
		}

		// Replace it, with a modification time in the same second.
		f.o.put(t, dlBucket, key, cur)
		p := filepath.Join(f.o.Root, dlBucket, key)
		if err := os.Chtimes(p, lm, lm); err != nil {
			t.Fatal(err)
		}
		if got := f.o.stat(t, dlBucket, key).LastModified; !got.Equal(lm) {
			t.Fatalf("replaced object's Last-Modified %v, want %v", got, lm)
		}
		resp, body := do(t, f.c, http.MethodGet, f.url(key), "Range", "bytes=2000-", "If-Range", lmHdr)
		if time.Since(lm) >= time.Second {
			t.Logf("attempt %d: resume arrived %v after Last-Modified; repeating", attempt, time.Since(lm))
			continue
		}
		if resp.StatusCode != 200 {
			t.Fatalf("resume on a same-second Last-Modified: status %d (Content-Range %q), want 200 with the whole current object",
				resp.StatusCode, resp.Header.Get("Content-Range"))
		}
		if !bytes.Equal(body, cur) {
			t.Fatalf("resume on a same-second Last-Modified: %d bytes (sha %s), want the current object (sha %s)", len(body), sha(body), sha(cur))
		}
		return
	}
	t.Fatal("no attempt reached the proxy within a second of the object's Last-Modified")
}
